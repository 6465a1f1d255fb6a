"""Keras ``Embedding`` lookup in NumPy."""

from __future__ import annotations

import numpy as np

from rnn_ref.layers import _checks


def embedding(ids, embeddings):
    """Look up rows of ``embeddings``, as Keras ``Embedding`` does on CPU.

    Letters: V vocabulary size, E embedding size; ``...`` any shape of ids
    (usually (B, T)).

    ids : (...) integers in [-V, V); embeddings : (V, E) -> (..., E)

    Measured on Keras 3.15.1 with TensorFlow 2.21 (CPU), and followed here:

    * negative ids count from the end (-1 is the last row), down to -V;
    * ids at or above V, or below -V, raise an error (here a ValueError
      naming the id, its position and V);
    * float ids are truncated toward zero, as Keras's cast to int32 does
      (2.7 looks up row 2, -0.5 row 0, -1.7 row -1); NaN and infinite ids
      raise an error;
    * bool ids are 0 and 1.

    One deliberate difference: Keras casts unsigned ids to int32, so a
    uint32 id 4294967295 silently becomes -1 (the last row); here it is
    out of range and refused.

    Zero ids are looked up like any other: masking them is the job of the
    ``mask_zero`` mask, see ``compute_mask``.
    """
    ids = _checks.numeric_array("ids", ids)
    table = _checks.float_array("embeddings", embeddings)
    _checks.shape("embeddings", table, "V, E", (None, None), hint="one row of E numbers per id")
    V = table.shape[0]
    given = ids
    if ids.dtype.kind == "b":
        ids = ids.astype(np.int64)  # Keras casts bool ids to int32: True is id 1
    elif ids.dtype.kind == "f":
        finite = np.isfinite(ids)
        if not np.all(finite):
            i = _first(~finite)
            raise ValueError(f"ids must be finite, got {ids[i]} at index {i}; Keras raises on it too")
        ids = np.trunc(ids)  # toward zero, as Keras's cast of float ids to int32
    bad = ids >= V if ids.dtype.kind == "u" else (ids >= V) | (ids < -V)
    if np.any(bad):
        i = _first(bad)
        raise ValueError(
            f"ids must lie in [-V, V) = [{-V}, {V}) for a vocabulary of V = {V} rows, "
            f"got id {given[i].item()!r} at index {i}"
        )
    return table[ids.astype(np.int64)]  # (..., E)


def _first(where: np.ndarray) -> tuple:
    """Index of the first True element."""
    return tuple(int(j) for j in np.argwhere(where)[0])


def compute_mask(ids):
    """The mask ``Embedding(mask_zero=True)`` passes on: True where the id is not 0."""
    return np.asarray(ids) != 0  # (...)
