"""The time loop every Keras recurrent layer shares, with the options at its edges.

A layer supplies a *cell*: ``project(x)`` computes the part of every step
that does not depend on the state, for many steps at once (the input
projection ``x @ kernel + bias``, hoisted out of the step loop), and
``step(x_t, states)`` computes one step from it and the previous states.
``run`` does the rest, the same way for every cell (on a large batch, on
blocks of rows in threads: ``rnn_ref.layers.parallel``):

* ``go_backwards`` reverses the steps before the loop; the outputs stay in
  processing order, as Keras returns them;
* at a padded step (mask False) every state is kept and the output repeats
  the previous output, zeros before the first valid step (or zeros
  everywhere padded with ``zero_output_for_mask``);
* ``initial_state`` is one array per state, zeros by default;
* ``return_sequences`` and ``return_state`` choose what comes back.

Letters: B batch, T time steps, D input features, U units, G the width of
the projection (U for SimpleRNN).
"""

from __future__ import annotations

from functools import partial
from typing import Protocol, Sequence

import numpy as np

from rnn_ref.layers import _checks, memory, parallel

#: The options of every recurrent layer that are arrays of the call, not settings of
#: the layer (Keras passes them to the layer's call, not to its constructor).
CALL_OPTIONS = ("mask", "initial_state")


class Cell(Protocol):
    units: int

    def project(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """x (B, C, D), C steps in processing order -> (C, B, G), time-major; written into
        ``out`` (C, B, G) when given (the loop's buffer), else a new array."""

    def step(self, x_t: np.ndarray, states: list) -> tuple[np.ndarray, list]:
        """x_t (B, G), states [(B, U), ...] -> output (B, U), new states. x_t is this step's
        block of the projection, read by this step only: the cell may overwrite it."""


def input_projection(x: np.ndarray, kernel: np.ndarray, bias, out: np.ndarray | None = None) -> np.ndarray:
    """x (B, C, D) @ kernel (D, G) + bias (G,) for C steps at once, time-major (C, B, G), so
    that step t reads one contiguous block; written into ``out`` (C, B, G) when given.

    A step's numbers do not depend on which steps a call is given: all T, or the chunks of
    ``parallel.projection_chunk``. BLAS may round a product differently with its shape, so the
    products here never depend on C: on a large batch one (B, D) @ (D, G) per step, on a small
    one NumPy's batched product ``parallel.PROJECTION_STEPS`` steps at a time from the first
    (``parallel.projection_by_step`` says which). So a loop that projects in chunks and the
    recording loop of a vjp, which projects all T steps at once, compute the same outputs, bit
    for bit.
    """
    B, C, _ = x.shape
    x_proj = np.empty((C, B, kernel.shape[1]), dtype=x.dtype) if out is None else out  # (C, B, G)
    if parallel.projection_by_step(B, kernel.shape[1], x.dtype.itemsize):
        for t in range(C):
            np.matmul(x[:, t], kernel, out=x_proj[t])  # (B, G)
    else:
        n = parallel.PROJECTION_STEPS
        for s in range(0, C, n):
            np.matmul(x[:, s:s + n], kernel, out=x_proj[s:s + n].transpose(1, 0, 2))  # (B, n, G)
    if bias is not None:
        x_proj += bias
    return x_proj


def batched_inputs(inputs) -> tuple[np.ndarray, bool]:
    """``inputs`` as a float array (B, T, D), and whether it was one sequence (T, D)."""
    x = _checks.float_array("inputs", inputs)
    if x.ndim not in (2, 3):
        raise ValueError(f"inputs must have shape (B, T, D) or (T, D) for one sequence, got {x.shape}")
    unbatched = x.ndim == 2
    if unbatched:
        x = x[None]  # (1, T, D)
    if x.shape[1] == 0:
        raise ValueError("inputs must have at least one time step (T >= 1), got T = 0; Keras refuses T = 0 too")
    return x, unbatched


def run(
    cell: Cell,
    x: np.ndarray,
    *,
    state_names: Sequence[str] = ("h",),
    unbatched: bool = False,
    return_sequences: bool = False,
    return_state: bool = False,
    go_backwards: bool = False,
    mask=None,
    initial_state=None,
    zero_output_for_mask: bool = False,
):
    """Run ``cell`` over x (B, T, D); the options as in ``rnn_ref.simple_rnn``.

    Returns the output, (B, U) or (B, T, U), followed by the final states
    when ``return_state`` (for one sequence the leading B axis is dropped).
    """
    B, T, _ = x.shape
    U, dtype = cell.units, x.dtype
    return_sequences = _checks.flag("return_sequences", return_sequences)
    return_state = _checks.flag("return_state", return_state)
    go_backwards = _checks.flag("go_backwards", go_backwards)
    zero_output_for_mask = _checks.flag("zero_output_for_mask", zero_output_for_mask)
    states = initial_states(initial_state, state_names, B, U, dtype, unbatched)  # [(B, U), ...]
    m = mask_array(mask, B, T, unbatched)  # (B, T) bool or None

    if go_backwards:
        x = x[:, ::-1]  # (B, T, D), last step first
        m = None if m is None else m[:, ::-1]
    # The result (B, T, U), which the loop fills step by step through a (T, B, U) view of it:
    # no copy to transpose afterwards (at B = 1024, T = 250, U = 64: 65 MB less to allocate and
    # copy a call, and a Bidirectional has two); in memory an earlier result no longer uses
    # (rnn_ref.layers.memory).
    sequence = memory.take((B, T, U), dtype) if return_sequences else None  # (B, T, U)
    outputs = None if sequence is None else sequence.transpose(1, 0, 2)  # (T, B, U), a view
    # The loop itself; on a large batch, on row blocks in threads (rows never meet: rnn_ref.layers.parallel).
    last_output, states = parallel.run_loop(partial(loop, zero_output_for_mask=zero_output_for_mask),
                                            cell, x, states, m, outputs)

    if return_sequences:
        result = sequence  # (B, T, U)
    else:
        result = np.array(last_output, dtype=dtype)  # (B, U), its own copy
    if unbatched:
        result, states = result[0], [s[0] for s in states]
    return (result, *states) if return_state else result


def loop(cell: Cell, x: np.ndarray, states: list, m, outputs, *, zero_output_for_mask: bool = False,
         chunk: int | None = None):
    """The time loop: x (B, T, D) in processing order, states [(B, U), ...], m (B, T) bool or None.

    Writes step t's output to ``outputs[t]`` (T, B, U) when given; returns the last output (B, U)
    and the final states. The input projection is computed ``chunk`` steps at a time (None: all
    T at once); the numbers are the same either way (``rnn_ref.layers.parallel.projection_chunk``).
    In chunks, each chunk is written into one buffer that this thread keeps for its next call
    (``parallel.scratch``): only the steps read it, so nothing returned refers to it.
    """
    B, T = x.shape[:2]
    prev_output = np.zeros((B, cell.units), dtype=x.dtype)  # (B, U)
    if chunk is None:  # all steps at once, in a new array (a recording cell keeps it)
        return _steps(cell, cell.project(x), 0, states, m, outputs, prev_output, zero_output_for_mask)
    chunk = min(chunk, T)
    with parallel.scratch((chunk, B, cell.kernel.shape[1]), x.dtype) as buffer:  # (C, B, G)
        for start in range(0, T, chunk):
            steps = x[:, start:start + chunk]  # (B, C, D)
            x_proj = cell.project(steps, out=buffer[:steps.shape[1]])  # (C, B, G): it does not depend on the state
            prev_output, states = _steps(cell, x_proj, start, states, m, outputs, prev_output, zero_output_for_mask)
    return prev_output, states


def _steps(cell, x_proj, start, states, m, outputs, prev_output, zero_output_for_mask):
    """Steps start, start + 1, ... of the loop, one for each block of x_proj (C, B, G)."""
    for t, x_t in enumerate(x_proj, start):  # x_t (B, G)
        output, new_states = cell.step(x_t, states)  # (B, U), [(B, U), ...]
        if m is None:
            states = new_states
        else:
            keep = m[:, t, None]  # (B, 1)
            states = [np.where(keep, new, old) for new, old in zip(new_states, states)]  # padded rows keep them
            output = np.where(keep, output, 0 if zero_output_for_mask else prev_output)
        if outputs is not None:
            outputs[t] = output
        prev_output = output
    return prev_output, states


def initial_states(initial_state, names: Sequence[str], B: int, U: int, dtype, unbatched: bool) -> list:
    """The states before the first step, one (B, U) array per name: zeros, or ``initial_state``
    (one array for a single state, a list of one array per state)."""
    if initial_state is None:
        return [np.zeros((B, U), dtype=dtype) for _ in names]
    given = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
    if len(given) != len(names):
        want = ("one array (B, U) or a list of one" if len(names) == 1
                else f"a list of {len(names)} arrays (B, U) ({', '.join(names)})")
        raise ValueError(f"initial_state must be {want}, got a list of {len(given)}")
    return [_initial(s, "initial_state" if len(names) == 1 else f"initial_state[{i}] ({n})", B, U, dtype, unbatched)
            for i, (s, n) in enumerate(zip(given, names))]


def _initial(value, name, B, U, dtype, unbatched):
    h0 = _checks.float_array(name, value, dtype)
    if unbatched:
        _checks.shape(name, h0, "U", (U,), hint="inputs are one sequence (T, D)")
        return h0[None].copy()
    hint = ""
    if h0.shape in ((U,), (1, U)) and B != 1:
        # Keras broadcasts these over the batch; a reference asks for the intent.
        hint = f"Keras broadcasts a {h0.shape} state over the batch; pass np.broadcast_to(initial_state, ({B}, {U})) to mean that"
    _checks.shape(name, h0, "B, U", (B, U), hint=hint)
    return h0.copy()


def mask_array(mask, B: int, T: int, unbatched: bool):
    """``mask`` as (B, T) bool, or None."""
    if mask is None:
        return None
    m = _checks.numeric_array("mask", mask)
    if unbatched:
        _checks.shape("mask", m, "T", (T,), hint="inputs are one sequence (T, D)")
        m = m[None]
    else:
        hint = ""
        if m.shape == (T,):
            hint = f"one mask row per sequence; pass np.broadcast_to(mask, ({B}, {T})) to use it for every row"
        elif m.shape == (1, T) and B != 1:
            hint = f"Keras broadcasts a (1, T) mask over the batch; pass np.broadcast_to(mask, ({B}, {T})) to mean that"
        elif m.shape == (B, T, 1):
            hint = "Keras accepts (B, T, 1) too; pass mask[..., 0]"
        _checks.shape("mask", m, "B, T", (B, T), hint=hint)
    # Keras casts a numeric mask to bool: any non-zero value (0.5, -1, NaN) is a valid step.
    return m.astype(bool)
