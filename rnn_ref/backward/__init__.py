"""The backward pass: vector-Jacobian products of the reference functions, one module a layer.

    >>> out, backward = rnn_ref.vjp(rnn_ref.simple_rnn, x, kernel, recurrent_kernel, bias,
    ...                             return_sequences=True)
    >>> grads = backward(d_out)      # d_out (B, T, U), the cotangent of out
    >>> grads.kernel                 # (D, U): d sum(out * d_out) / d kernel

``vjp(fn, *args, **options)`` runs ``fn(*args, **options)`` once, recording
what the backward pass needs, and returns its output with a function
``backward`` of the output's cotangent (with ``return_state``:
``backward(d_output, d_final_state)``; None stands for zeros). ``backward``
returns a NamedTuple named like ``fn``'s array arguments, each gradient
shaped like its argument; None for an argument that was None (no bias, no
initial_state).

Supported: ``simple_rnn``, ``lstm`` and ``gru`` (every option; their loops
are in ``simple_rnn``, ``lstm`` and ``gru`` here), ``dense``,
``embedding`` and ``masking`` (``feedforward``), with every Keras activation name (the derivatives are
``rnn_ref.backward.activations.activation_vjp``; a callable activation only if it
is one of ``rnn_ref.layers.activations``'s functions), and ``bidirectional`` around any of the
three (``bidirectional``: each direction's vjp, joined through the
merge; ``backward(d_output, *d_states)`` returns ``BidirectionalGrads``).

``rnn_ref.vjp`` finds a function's vjp in the layer registry
(``rnn_ref.models.registry``); this package knows no table of layers.
``cotangents`` checks and names the cotangents; ``activations`` holds every
activation's derivative.

Letters: B batch, T time steps, D input features, U units; N, K for Dense;
V vocabulary, E embedding size.
"""

from rnn_ref.backward.bidirectional import BidirectionalGrads, bidirectional_vjp
from rnn_ref.backward.feedforward import (DenseGrads, EmbeddingGrads, MaskingGrads, dense_vjp, embedding_vjp,
                                          masking_vjp)
from rnn_ref.backward.gru import GRUGrads, gru_vjp
from rnn_ref.backward.lstm import LSTMGrads, lstm_vjp
from rnn_ref.backward.simple_rnn import SimpleRNNGrads, simple_rnn_vjp

__all__ = ["SimpleRNNGrads", "LSTMGrads", "GRUGrads", "BidirectionalGrads", "DenseGrads", "EmbeddingGrads",
           "MaskingGrads", "simple_rnn_vjp", "lstm_vjp", "gru_vjp", "bidirectional_vjp", "dense_vjp", "embedding_vjp",
           "masking_vjp"]
