"""Backpropagation: vector-Jacobian products of the reference functions.

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
are in ``backward_simple_rnn``, ``backward_lstm`` and ``backward_gru``), ``dense`` and
``embedding``, with every Keras activation name (the derivatives are
``rnn_ref.activation_grads.activation_vjp``; a callable activation only if it
is one of ``rnn_ref.activations``'s functions), and ``bidirectional`` around any of the
three (``backward_bidirectional``: each direction's vjp, joined through the
merge; ``backward(d_output, *d_states)`` returns ``BidirectionalGrads``).

Letters: B batch, T time steps, D input features, U units; N, K for Dense;
V vocabulary, E embedding size.
"""

from __future__ import annotations

import inspect
from typing import NamedTuple, Optional

import numpy as np

from . import _checks
from .activation_grads import activation_vjp
from .cotangents import activation_name
from .backward_bidirectional import LAYER_VJPS, bidirectional_vjp
from .backward_simple_rnn import SimpleRNNGrads
from .bidirectional import bidirectional
from .dense import dense
from .embedding import embedding

__all__ = ["vjp", "SimpleRNNGrads", "DenseGrads", "EmbeddingGrads"]


class DenseGrads(NamedTuple):
    inputs: np.ndarray  # (..., N)
    kernel: np.ndarray  # (N, K)
    bias: Optional[np.ndarray]  # (K,), None without a bias


class EmbeddingGrads(NamedTuple):
    embeddings: np.ndarray  # (V, E), dense: repeated ids add up; ids have no gradient


def vjp(fn, *args, **options):
    """``(fn(*args, **options), backward)``: the output and its vector-Jacobian product.

    fn : ``rnn_ref.simple_rnn``, ``lstm``, ``gru``, ``dense``, ``embedding`` or ``bidirectional``
    backward(d_output) or, with ``return_state``, backward(d_output, *d_states)
        d_output shaped like the output, each final state's cotangent (B, U)
        (an LSTM's d_h, d_c; a Bidirectional's forward states, then backward
        ones; with merge_mode None d_output is the pair (d_y, d_y_rev)); None
        means zeros. Returns ``SimpleRNNGrads``, ``LSTMGrads``, ``GRUGrads``,
        ``DenseGrads``, ``EmbeddingGrads`` or ``BidirectionalGrads``: the
        gradients of ``sum(output * d_output) [+ sum(state * d_state) ...]``.
    """
    backward_of = next((b for f, b in _VJPS.items() if f is fn), None)
    if backward_of is None:
        name = getattr(fn, "__name__", repr(fn))
        raise TypeError(f"vjp supports rnn_ref.simple_rnn, rnn_ref.lstm, rnn_ref.gru, rnn_ref.dense, "
                        f"rnn_ref.embedding and rnn_ref.bidirectional, got {name}")
    inspect.signature(fn).bind(*args, **options)  # a wrong call is refused in fn's own terms
    return backward_of(*args, **options)


# ---------------------------------------------------------------------------
# Dense and Embedding
# ---------------------------------------------------------------------------


def _dense_vjp(inputs, kernel, bias=None, activation=None):
    act_name = activation_name(activation)
    out = dense(inputs, kernel, bias, activation)  # (..., K), checks the arguments
    x = _checks.float_array("inputs", inputs)  # (..., N)
    W = _checks.float_array("kernel", kernel, x.dtype)  # (N, K)
    z = x @ W  # (..., K), as dense computes it
    if bias is not None:
        z = z + _checks.float_array("bias", bias, x.dtype)
    N, K = W.shape

    def backward(d_output):
        """d_output (..., K) -> DenseGrads."""
        d = _checks.float_array("d_output", d_output, x.dtype)
        _checks.shape("d_output", d, "..., K", out.shape, hint="the cotangent has the output's shape")
        dz = activation_vjp(act_name, z, out, d)  # (..., K)
        rows_x, rows_dz = x.reshape(-1, N), dz.reshape(-1, K)  # (n, N), (n, K): every leading axis is a batch
        return DenseGrads(
            inputs=dz @ W.T,  # (..., N)
            kernel=rows_x.T @ rows_dz,  # (N, K)
            bias=None if bias is None else rows_dz.sum(axis=0),  # (K,)
        )

    return out, backward


def _embedding_vjp(ids, embeddings):
    out = embedding(ids, embeddings)  # (..., E), checks the ids
    V, E = np.shape(embeddings)
    rows = _embedding_rows(ids, V)  # (...), in [0, V)

    def backward(d_output):
        """d_output (..., E) -> EmbeddingGrads: row v of the gradient sums d_output over the ids that read row v."""
        d = _checks.float_array("d_output", d_output, out.dtype)
        _checks.shape("d_output", d, "..., E", out.shape, hint="the cotangent has the output's shape")
        d_table = np.zeros((V, E), dtype=out.dtype)  # (V, E)
        # A scatter-add, repeated ids accumulating: np.add.at(d_table, rows, d), done on the flattened
        # table, element by element (NumPy's fast path for np.add.at is one-dimensional: 3x faster).
        flat_index = rows.reshape(-1, 1) * E + np.arange(E)  # (n, E): element e of row v is v * E + e
        np.add.at(d_table.reshape(-1), flat_index.reshape(-1), d.reshape(-1))
        return EmbeddingGrads(embeddings=d_table)

    return out, backward


def _embedding_rows(ids, V):
    """The row each id reads, as ``embedding`` looks it up: bools are 0/1, floats truncated, -1 the last row."""
    ids = np.asarray(ids)
    rows = np.trunc(ids) if ids.dtype.kind == "f" else ids
    rows = rows.astype(np.int64)  # (...)
    return np.where(rows < 0, rows + V, rows)  # (...)


# ---------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------


#: Every supported function -> its vjp (the recurrent layers' from ``backward_bidirectional.LAYER_VJPS``).
_VJPS = {**LAYER_VJPS, dense: _dense_vjp, embedding: _embedding_vjp, bidirectional: bidirectional_vjp}
