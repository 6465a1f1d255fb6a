"""Argument checks shared by the reference functions.

Every message names the argument, the expected shape in the letters of the
docstrings (B batch, T time, D input features, U units; N, K for Dense;
V vocabulary, E embedding size) and what was given, so a wrong layout never
turns into a plausible number through NumPy broadcasting.
"""

from __future__ import annotations

import numpy as np


def numeric_array(name: str, value) -> np.ndarray:
    """``value`` as a real numeric array (bool, int or float); anything else is refused.

    Complex numbers are refused (Keras refuses them too); so are strings,
    object arrays (None, mixed types) and ragged nested lists.
    """
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as e:  # ragged nested sequences
        raise ValueError(f"{name} must be a rectangular numeric array, got {type(value).__name__}: {e}") from None
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} must be real, got the complex dtype {arr.dtype} (Keras refuses complex inputs too)")
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric array (bool, int or float), got dtype {arr.dtype}")
    return arr


def float_array(name: str, value, dtype=None) -> np.ndarray:
    """``value`` as a real floating array (integers and bools cast to float32 like Keras)."""
    arr = numeric_array(name, value)
    if dtype is not None:
        return arr.astype(dtype, copy=False)
    if arr.dtype.kind != "f":
        return arr.astype(np.float32)  # Keras casts integer and bool inputs to float32
    return arr


def flag(name: str, value) -> bool:
    """A boolean option; a string such as "False" would otherwise count as True."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def shape(name: str, arr: np.ndarray, letters: str, expected: tuple, hint: str = "") -> None:
    """Refuse ``arr`` unless its shape is ``expected`` (None matches any size).

    ``hint`` is appended to the message (what the wrong shape probably means).
    """
    ok = arr.ndim == len(expected) and all(
        e is None or e == s for e, s in zip(expected, arr.shape)
    )
    if not ok:
        want = ", ".join("?" if e is None else str(e) for e in expected)
        if len(expected) == 1:
            want, letters = want + ",", letters + ","
        raise ValueError(
            f"{name} must have shape ({letters}) = ({want}), got {tuple(arr.shape)}" + (f"; {hint}" if hint else "")
        )
