"""rnn_ref: a readable NumPy reference of the Keras SimpleRNN forward pass.

    >>> import rnn_ref
    >>> y = rnn_ref.simple_rnn(x, kernel, recurrent_kernel, bias)   # x (B, T, D) -> (B, U)
    >>> y, backward = rnn_ref.vjp(rnn_ref.simple_rnn, x, kernel, recurrent_kernel, bias)
    >>> grads = backward(dy)   # grads.inputs (B, T, D), grads.kernel (D, U), ...
"""

from rnn_ref.layers.activations import ACTIVATIONS
from rnn_ref.layers.bidirectional import bidirectional
from rnn_ref.layers.dense import dense
from rnn_ref.layers.embedding import embedding
from rnn_ref.layers.gru import gru
from rnn_ref.layers.lstm import lstm
from rnn_ref.layers.masking import masking
from rnn_ref.layers.simple_rnn import simple_rnn
from rnn_ref.models.registry import vjp

# Not lazy like from_keras: importing the submodule rnn_ref.load later would
# rebind the name ``rnn_ref.load`` from the function to the module. load.py
# imports Keras only when it reads a .keras file, so this stays cheap.
from rnn_ref.models.load import load, save_npz

__all__ = ["ACTIVATIONS", "dense", "embedding", "masking", "simple_rnn", "lstm", "gru", "bidirectional",
           "from_keras", "load", "save_npz", "vjp"]
__version__ = "0.1.0"


def from_keras(model):
    """Rebuild a Keras model as a NumPy model: ``from_keras(model)(x) == model.predict(x)``."""
    from rnn_ref.models.keras_graph import from_keras as _from_keras

    return _from_keras(model)

