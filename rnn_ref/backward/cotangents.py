"""Pieces every backward pass shares: the cotangents it is given, the gradient of an
initial state in the form it was given, and the activation's name that its derivative
is looked up by (``activation_grads.activation_vjp``)."""

from __future__ import annotations

import numpy as np

from rnn_ref.layers import _checks, recurrence
from rnn_ref.layers.activations import ACTIVATIONS, get as get_activation


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


# -- the edges of every backward time loop ----------------------------------------------
# The forward loop (recurrence.run) handles the options at its edges for every cell; these
# two functions are the same edges run backwards, so that a layer's backward loop holds
# only its own step.

def processing_keep(mask, B: int, T: int, unbatched: bool, go_backwards: bool):
    """The mask as the forward loop applied it: (B, T) bool in processing order, or None
    without a mask (every row valid at every step: ``step_edges`` then skips the masking)."""
    m = recurrence.mask_array(mask, B, T, unbatched)  # (B, T) bool or None, validated by run
    if m is None:
        return None
    return m[:, ::-1] if go_backwards else m  # (B, T), processing order


def final_cotangents(cotangents, *, call: str, state_names, return_sequences: bool, return_state: bool,
                     T: int, B: int, U: int, unbatched: bool, dtype):
    """The cotangents ``backward`` was given, checked: ``(d_out, d_states, do)`` with d_out
    (B, T, U) or (B, U), one (B, U) per state (zeros without return_state), and do (B, U),
    that of the last output o_{T-1} (zeros with return_sequences: d_out[:, t] is added at
    each step instead). ``state_names`` name the states' cotangents in messages."""
    names = ("d_output", *state_names) if return_state else ("d_output",)
    if len(cotangents) != len(names):
        raise TypeError(f"backward of {call} takes ({', '.join(names)}), got {len(cotangents)} cotangents")
    out_shape = (T, U) if return_sequences else (U,)
    d_out = cotangent("d_output", cotangents[0], out_shape, B, unbatched, dtype)  # (B, T, U) or (B, U)
    if return_state:
        d_states = [cotangent(n, c, (U,), B, unbatched, dtype) for n, c in zip(names[1:], cotangents[1:])]
    else:
        d_states = [np.zeros((B, U), dtype=dtype) for _ in state_names]  # (B, U) each
    do = np.zeros((B, U), dtype=dtype) if return_sequences else d_out  # (B, U)
    return d_out, d_states, do


def step_edges(t: int, keep, d_states: list, do, d_out, *, return_sequences: bool, zero_output_for_mask: bool):
    """One step of the backward loop at its edges, before the cell's own step.

    d_states are the cotangents of the states after step t (h first: the step's output
    y_t became h_t), do that of the output o_t. Returns ``(dy, valid, passed, do)``:
    dy (B, U) of y_t (zero on padded rows, where y_t reached nothing); ``valid``, the
    cotangents of the other new states on valid rows (an LSTM's c_t); ``passed``, the
    states' cotangents that go to step t-1 unchanged on padded rows (which kept their
    states), zero on valid rows; and do for o_{t-1}, which a padded row repeated
    (dropped with zero_output_for_mask).

    Without a mask (keep None) every row is valid, and a zero cotangent is the scalar 0:
    passed and the new do are 0 (nothing goes to step t-1 but through the cell), and no
    np.where runs. ``0 + array`` is that array, so the callers need no case of their own.
    """
    if return_sequences:
        do = do + d_out[:, t]  # (B, U): o_t is read by the result, and repeated at later padded steps
    if keep is None:
        return d_states[0] + do, d_states[1:], [0] * len(d_states), 0
    k = keep[:, t, None]  # (B, 1)
    dy = np.where(k, d_states[0] + do, 0)  # (B, U)
    valid = [np.where(k, d, 0) for d in d_states[1:]]  # (B, U) each
    passed = [np.where(k, 0, d) for d in d_states]  # (B, U) each
    do = np.zeros_like(do) if zero_output_for_mask else np.where(k, 0, do)  # (B, U)
    return dy, valid, passed, do
