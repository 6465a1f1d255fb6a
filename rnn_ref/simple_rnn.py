"""Keras ``SimpleRNN`` forward pass in NumPy.

The equation, one step per time index t::

    h_t = activation(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)

The output at step t is h_t. Every Keras option is handled at the edges of
that one loop: ``go_backwards`` flips the inputs before it, ``mask`` keeps the
state and repeats the previous output at padded steps, ``initial_state`` sets
h_{-1}, and ``return_sequences`` / ``return_state`` choose what comes back.
"""

from __future__ import annotations

import numpy as np

from . import _checks
from .activations import get as get_activation


def simple_rnn(
    inputs,
    kernel,
    recurrent_kernel,
    bias=None,
    *,
    activation="tanh",
    return_sequences=False,
    return_state=False,
    go_backwards=False,
    mask=None,
    initial_state=None,
    zero_output_for_mask=False,
):
    """Run a Keras ``SimpleRNN`` layer on ``inputs`` with the given weights.

    Letters: B batch, T time steps, D input features, U units.

    Parameters
    ----------
    inputs : (B, T, D), or one sequence (T, D)
        Integer inputs are cast to float32 as Keras does; the computation
        runs in the inputs' floating dtype (float32 stays float32).
    kernel : (D, U)
        Keras layout: ``x @ kernel``. A textbook ``W (U, D)`` is ``kernel.T``.
    recurrent_kernel : (U, U)
        ``h @ recurrent_kernel``; a textbook ``U_rec`` is ``recurrent_kernel.T``.
    bias : (U,) or None
        None is Keras's ``use_bias=False``.
    activation : str, callable or None
        Any Keras activation name (``rnn_ref.activations.ACTIVATIONS``);
        None means linear.
    return_sequences : bool
        Return every step's output (B, T, U) instead of the last one (B, U).
    return_state : bool
        Also return the final state (B, U): ``(output, final_state)``.
    go_backwards : bool
        Process the steps from last to first. As in Keras, the outputs stay
        in processing order: ``out[:, k]`` belongs to input step ``T-1-k``.
    mask : (B, T) or (T,) for one sequence, bool, or None
        False marks a padded step: the state is kept and the output repeats
        the previous step's output (zeros before the first valid step, even
        with a non-zero ``initial_state``).
    initial_state : (B, U), (U,) for one sequence, a list of one of those, or None
        The state before the first step; zeros by default.
    zero_output_for_mask : bool
        Output zeros at padded steps instead of repeating the previous output.
        This also applies to the last output when the last step is padded.

    Returns
    -------
    output : (B, U) or, with ``return_sequences``, (B, T, U)
    final_state : (B, U), only with ``return_state``
        For one sequence the leading B axis is dropped.
    """
    x = _checks.float_array("inputs", inputs)
    if x.ndim not in (2, 3):
        raise ValueError(
            f"inputs must have shape (B, T, D) or (T, D) for one sequence, got {x.shape}"
        )
    unbatched = x.ndim == 2
    if unbatched:
        x = x[None]  # (1, T, D)
    B, T, D = x.shape
    if T == 0:
        raise ValueError("inputs must have at least one time step (T >= 1), got T = 0; Keras refuses T = 0 too")
    dtype = x.dtype

    kernel = _checks.float_array("kernel", kernel, dtype)
    recurrent_kernel = _checks.float_array("recurrent_kernel", recurrent_kernel, dtype)
    # U is read from the recurrent kernel, so a transposed kernel is named as such.
    U = recurrent_kernel.shape[0] if recurrent_kernel.ndim == 2 else kernel.shape[-1]
    _checks.shape("kernel", kernel, "D, U", (D, U))
    _checks.shape("recurrent_kernel", recurrent_kernel, "U, U", (U, U))
    if bias is not None:
        bias = _checks.float_array("bias", bias, dtype)
        _checks.shape("bias", bias, "U", (U,))
    act = get_activation(activation)

    h = _initial_state(initial_state, B, U, dtype, unbatched)  # (B, U)
    m = _mask(mask, B, T, unbatched)  # (B, T) bool or None

    if go_backwards:
        x = x[:, ::-1]  # (B, T, D), last step first
        m = None if m is None else m[:, ::-1]

    # The input projection does not depend on the state: compute it for all
    # steps at once, outside the loop.
    x_proj = x @ kernel  # (B, T, U)
    if bias is not None:
        x_proj += bias

    outputs = np.empty((B, T, U), dtype=dtype)  # (B, T, U)
    prev_output = np.zeros((B, U), dtype=dtype)  # (B, U)
    for t in range(T):
        h_new = act(x_proj[:, t] + h @ recurrent_kernel)  # (B, U)
        if m is None:
            h = output = h_new
        else:
            keep = m[:, t, None]  # (B, 1)
            h = np.where(keep, h_new, h)  # padded rows keep their state
            output = np.where(keep, h_new, 0 if zero_output_for_mask else prev_output)
        outputs[:, t] = output
        prev_output = output

    result = outputs if return_sequences else outputs[:, -1]  # (B, T, U) or (B, U)
    if unbatched:
        result, h = result[0], h[0]
    return (result, h) if return_state else result


def _initial_state(initial_state, B, U, dtype, unbatched):
    if initial_state is None:
        return np.zeros((B, U), dtype=dtype)
    if isinstance(initial_state, (list, tuple)):
        if len(initial_state) != 1:
            raise ValueError(
                f"initial_state must be one array (B, U) or a list of one, got a list of {len(initial_state)}"
            )
        initial_state = initial_state[0]
    h0 = _checks.float_array("initial_state", initial_state, dtype)
    if unbatched:
        _checks.shape("initial_state", h0, "U", (U,))
        return h0[None].copy()
    _checks.shape("initial_state", h0, "B, U", (B, U))
    return h0.copy()


def _mask(mask, B, T, unbatched):
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.dtype == object or m.dtype.kind not in "biuf":
        raise TypeError(f"mask must be a boolean array, got dtype {m.dtype}")
    if unbatched:
        _checks.shape("mask", m, "T", (T,))
        m = m[None]
    else:
        _checks.shape("mask", m, "B, T", (B, T))
    return m.astype(bool)  # Keras casts a numeric mask to bool
