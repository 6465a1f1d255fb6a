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
        with a non-zero ``initial_state``). Numbers are cast to bool as Keras
        does: any non-zero value (0.5, -1, NaN) marks a valid step.
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
    rk_shape = recurrent_kernel.shape
    if len(rk_shape) != 2 or rk_shape[0] != rk_shape[1] or rk_shape[0] == 0:
        raise ValueError(f"recurrent_kernel must be a square (U, U) array with U >= 1, got shape {rk_shape}")
    U = rk_shape[0]
    _checks.shape("kernel", kernel, "D, U", (D, U), hint=_kernel_hint(kernel, D, U, np.shape(inputs)))
    if bias is not None:
        bias = _checks.float_array("bias", bias, dtype)
        _checks.shape("bias", bias, "U", (U,), hint="one bias per unit; Keras refuses other shapes too")
    act = get_activation(activation)
    return_sequences = _checks.flag("return_sequences", return_sequences)
    return_state = _checks.flag("return_state", return_state)
    go_backwards = _checks.flag("go_backwards", go_backwards)
    zero_output_for_mask = _checks.flag("zero_output_for_mask", zero_output_for_mask)

    h = _initial_state(initial_state, B, U, dtype, unbatched)  # (B, U)
    m = _mask(mask, B, T, unbatched)  # (B, T) bool or None

    if go_backwards:
        x = x[:, ::-1]  # (B, T, D), last step first
        m = None if m is None else m[:, ::-1]

    # The input projection does not depend on the state: compute it for all
    # steps at once, outside the loop. It is stored time-major, so that step t
    # reads one contiguous block x_proj[t].
    x_proj = np.empty((T, B, U), dtype=dtype)  # (T, B, U)
    np.matmul(x, kernel, out=x_proj.transpose(1, 0, 2))  # x @ kernel
    if bias is not None:
        x_proj += bias

    outputs = x_proj  # (T, B, U): step t's output overwrites x_proj[t], used up by then
    prev_output = np.zeros((B, U), dtype=dtype)  # (B, U)
    z = np.empty((B, U), dtype=dtype)  # one step's pre-activation, reused at every step
    for t in range(T):
        np.dot(h, recurrent_kernel, out=z)  # z = h_{t-1} @ recurrent_kernel, in place
        z += x_proj[t]  # z = x_t @ kernel + bias + h_{t-1} @ recurrent_kernel
        h_new = act(z)  # (B, U)
        if m is None:
            h = output = h_new
        else:
            keep = m[:, t, None]  # (B, 1)
            h = np.where(keep, h_new, h)  # padded rows keep their state
            output = np.where(keep, h_new, 0 if zero_output_for_mask else prev_output)
        outputs[t] = output
        prev_output = output

    if return_sequences:
        result = np.ascontiguousarray(outputs.transpose(1, 0, 2))  # (B, T, U)
    else:
        result = outputs[-1].copy()  # (B, U), without keeping the (T, B, U) buffer alive
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
        _checks.shape("initial_state", h0, "U", (U,), hint="inputs are one sequence (T, D)")
        return h0[None].copy()
    hint = ""
    if h0.shape in ((U,), (1, U)) and B != 1:
        # Keras broadcasts these over the batch; a reference asks for the intent.
        hint = f"Keras broadcasts a {h0.shape} state over the batch; pass np.broadcast_to(initial_state, ({B}, {U})) to mean that"
    _checks.shape("initial_state", h0, "B, U", (B, U), hint=hint)
    return h0.copy()


def _mask(mask, B, T, unbatched):
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


def _kernel_hint(kernel, D, U, x_shape):
    """What a wrong kernel shape probably means."""
    if kernel.shape == (U, D) and D != U:
        return "it looks transposed: Keras computes x @ kernel, so a textbook W of shape (U, D) is passed as W.T"
    return f"D = {D} comes from inputs {tuple(x_shape)}, U = {U} from recurrent_kernel {(U, U)}"
