"""Argument checks shared by the reference functions.

Every message names the argument, the expected shape in the letters of the
docstrings (B batch, T time, D input features, U units, V vocabulary) and
what was given, so a wrong layout never turns into a plausible number through
NumPy broadcasting.
"""

from __future__ import annotations

import numpy as np


def float_array(name: str, value, dtype=None) -> np.ndarray:
    """``value`` as a real floating array (integers and bools cast like Keras)."""
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if dtype is not None:
        return arr.astype(dtype, copy=False)
    if arr.dtype.kind != "f":
        return arr.astype(np.float32)  # Keras casts integer inputs to float32
    return arr


def shape(name: str, arr: np.ndarray, letters: str, expected: tuple) -> None:
    """Refuse ``arr`` unless its shape is ``expected`` (None matches any size)."""
    ok = arr.ndim == len(expected) and all(
        e is None or e == s for e, s in zip(expected, arr.shape)
    )
    if not ok:
        want = ", ".join("?" if e is None else str(e) for e in expected)
        if len(expected) == 1:
            want += ","
        raise ValueError(f"{name} must have shape ({letters}) = ({want}), got {tuple(arr.shape)}")
