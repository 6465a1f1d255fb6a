"""The vector-Jacobian products of ``rnn_ref.dense``, ``rnn_ref.embedding`` and ``rnn_ref.masking``.

Letters: N, K a Dense layer's input and output features; V vocabulary, E
embedding size; ``...`` any leading axes (batch, time).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from rnn_ref.layers import _checks
from rnn_ref.layers.dense import dense
from rnn_ref.layers.embedding import embedding
from rnn_ref.layers.masking import compute_mask as masking_mask
from rnn_ref.layers.masking import masking
from rnn_ref.backward.activations import activation_vjp
from rnn_ref.backward.cotangents import activation_name

class DenseGrads(NamedTuple):
    inputs: np.ndarray  # (..., N)
    kernel: np.ndarray  # (N, K)
    bias: Optional[np.ndarray]  # (K,), None without a bias


class EmbeddingGrads(NamedTuple):
    embeddings: np.ndarray  # (V, E), dense: repeated ids add up; ids have no gradient


class MaskingGrads(NamedTuple):
    inputs: np.ndarray  # (..., D): d_output at kept steps, 0 at masked ones


# ---------------------------------------------------------------------------
# Dense and Embedding
# ---------------------------------------------------------------------------


def dense_vjp(inputs, kernel, bias=None, activation=None):
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


def embedding_vjp(ids, embeddings):
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


def masking_vjp(inputs, mask_value=0.0):
    """``(masking(inputs, mask_value), backward)``; backward(d_output (..., D)) -> MaskingGrads.

    A kept step passes its cotangent through; a masked step was replaced by a constant
    0, so its input gets none (the mask itself is piecewise constant: no gradient).
    """
    out = masking(inputs, mask_value)  # (..., D), checks the inputs
    keep = masking_mask(inputs, mask_value)[..., None]  # (..., 1)

    def backward(d_output):
        d = _checks.float_array("d_output", d_output, out.dtype)
        _checks.shape("d_output", d, "..., D", out.shape, hint="the cotangent has the output's shape")
        return MaskingGrads(inputs=np.where(keep, d, np.zeros((), d.dtype)))  # (..., D)

    return out, backward
