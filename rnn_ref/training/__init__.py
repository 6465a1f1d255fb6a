"""Training: Keras 3's optimizers in NumPy (``rnn_ref.training.optimizers``) and ``fit``
(``rnn_ref.training.fit``), a NumpyModel trained as Keras's ``model.fit(shuffle=False)``.

    >>> from rnn_ref.training import fit, optimizers
    >>> fit(np_model, x, y, "binary_crossentropy", optimizers.Adam(0.01), epochs=2, batch_size=32)
"""

from rnn_ref.training import optimizers
from rnn_ref.training.fit import fit, train_step
from rnn_ref.training.optimizers import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop, State

__all__ = ["fit", "train_step", "optimizers", "Optimizer", "State", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad"]
