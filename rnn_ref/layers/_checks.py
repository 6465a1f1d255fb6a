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


def gated_kernels(kernel, recurrent_kernel, D: int, dtype, gates: int, layer: str):
    """``(kernel (D, G), recurrent_kernel (U, G), U)`` for a layer with ``gates`` blocks of
    U columns (G = gates * U); U is read from the recurrent kernel, so a transposed
    kernel is named as such."""
    rk = float_array("recurrent_kernel", recurrent_kernel, dtype)
    s, g = rk.shape, f"{gates}U"
    if len(s) != 2 or s[0] == 0 or s[1] != gates * s[0]:
        hint = ""
        if len(s) == 2 and s[0] == gates * s[1] and s[1] > 0:
            hint = "; it looks transposed: Keras computes h @ recurrent_kernel (PyTorch's weight_hh is its .T)"
        elif len(s) == 2 and s[0] == s[1]:
            hint = f"; a square (U, U) matrix is a SimpleRNN's, {layer} has {gates} gate blocks"
        raise ValueError(f"recurrent_kernel must have shape (U, {g}) with U >= 1, got {s}{hint}")
    U = s[0]
    k = float_array("kernel", kernel, dtype)
    hint = f"D = {D} comes from inputs, U = {U} from recurrent_kernel {s}"
    if k.shape == (gates * U, D) and D != gates * U:
        hint = "it looks transposed: Keras computes x @ kernel (PyTorch's weight_ih is its .T)"
    shape("kernel", k, f"D, {g}", (D, gates * U), hint=hint)
    return k, rk, U
