"""rnn_ref: a readable NumPy reference of the Keras SimpleRNN forward pass.

    >>> import rnn_ref
    >>> y = rnn_ref.simple_rnn(x, kernel, recurrent_kernel, bias)   # x (B, T, D) -> (B, U)
"""

from .activations import ACTIVATIONS
from .dense import dense
from .embedding import embedding
from .simple_rnn import simple_rnn

__all__ = ["ACTIVATIONS", "dense", "embedding", "simple_rnn", "from_keras"]
__version__ = "0.1.0"


def from_keras(model):
    """Rebuild a Keras model as a NumPy model: ``from_keras(model)(x) == model.predict(x)``."""
    from .model import from_keras as _from_keras

    return _from_keras(model)
