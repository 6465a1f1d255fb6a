"""Training: Keras 3's optimizers in NumPy (``rnn_ref.training.optimizers``)."""

from rnn_ref.training.optimizers import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop, State

__all__ = ["Optimizer", "State", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad"]
