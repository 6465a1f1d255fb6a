"""Pieces every backward pass shares: the cotangents it is given, the gradient of an
initial state in the form it was given, and the activation's name that its derivative
is looked up by (``activation_grads.activation_vjp``)."""

from __future__ import annotations

import numpy as np

from . import _checks
from .activations import ACTIVATIONS, get as get_activation


def cotangent(name, value, shape, B, unbatched, dtype):
    """A cotangent as (B, *shape) in ``dtype``; None is zeros. ``shape`` without the batch axis."""
    if value is None:
        return np.zeros((B, *shape), dtype=dtype)
    d = _checks.float_array(name, value, dtype)
    letters = ", ".join("T" if i == 0 and len(shape) == 2 else "U" for i in range(len(shape)))
    if unbatched:
        _checks.shape(name, d, letters, shape, hint="inputs are one sequence: the output has no batch axis")
        return d[None]  # (1, *shape)
    _checks.shape(name, d, "B, " + letters, (B, *shape), hint="the cotangent has the output's shape")
    return d


def like_given(initial_state, dh):
    """The initial state's gradient in the structure it was given: None, an array, a list of one."""
    if initial_state is None:
        return None
    if isinstance(initial_state, (list, tuple)):
        return type(initial_state)([dh])
    return dh


def activation_name(activation) -> str:
    """The Keras name of ``activation`` (a name, None for linear, or one of rnn_ref's functions),
    checked before the forward pass: ``activation_vjp`` needs the derivative by name."""
    if activation is None:
        return "linear"
    if isinstance(activation, str):
        get_activation(activation)  # the ValueError listing the known names
        return activation
    if not callable(activation):
        get_activation(activation)  # the TypeError naming what an activation can be
    named = [n for n, f in ACTIVATIONS.items() if f is activation]
    if not named:
        raise TypeError(f"vjp needs the activation's derivative: pass a Keras activation name, "
                        f"got the callable {getattr(activation, '__name__', activation)!r}")
    return named[0]
