"""Keras ``Embedding`` lookup in NumPy."""

from __future__ import annotations

import numpy as np

from . import _checks


def embedding(ids, embeddings):
    """Look up rows of ``embeddings``, as Keras ``Embedding`` does on CPU.

    Letters: V vocabulary size, E embedding size; ``...`` any shape of ids
    (usually (B, T)).

    ids : (...) integers in [-V, V); embeddings : (V, E) -> (..., E)

    Negative ids count from the end (-1 is the last row), as TensorFlow's
    gather does; ids at or above V are refused (Keras on CPU raises too).
    Zero ids are looked up like any other: masking them is the job of the
    ``mask_zero`` mask, see ``compute_mask``.
    """
    ids = np.asarray(ids)
    if ids.dtype.kind == "f" and np.all(np.isfinite(ids)) and np.all(ids == np.trunc(ids)):
        ids = ids.astype(np.int64)  # Keras casts float ids to int
    if ids.dtype.kind not in "iu":
        raise TypeError(f"ids must be integers, got dtype {ids.dtype}")
    table = _checks.float_array("embeddings", embeddings)
    if table.ndim != 2:
        raise ValueError(f"embeddings must have shape (V, E), got {table.shape}")
    V = table.shape[0]
    bad = (ids >= V) | (ids < -V)
    if np.any(bad):
        first = ids[bad].flat[0]
        raise ValueError(f"ids must lie in [-V, V) = [{-V}, {V}), got id {first} (vocabulary size V = {V})")
    return table[ids]  # (..., E)


def compute_mask(ids):
    """The mask ``Embedding(mask_zero=True)`` passes on: True where the id is not 0."""
    return np.asarray(ids) != 0  # (...)
