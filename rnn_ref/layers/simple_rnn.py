"""Keras ``SimpleRNN`` forward pass in NumPy.

The equation, one step per time index t::

    h_t = activation(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)

The output at step t is h_t. ``SimpleRNNCell`` computes one step; the time
loop, shared with the other recurrent layers, is ``rnn_ref.layers.recurrence.run``,
and every Keras option is handled at its edges: ``go_backwards`` flips the
inputs before it, ``mask`` keeps the state and repeats the previous output at
padded steps, ``initial_state`` sets h_{-1}, and ``return_sequences`` /
``return_state`` choose what comes back.
"""

from __future__ import annotations

import inspect

import numpy as np

from rnn_ref.layers import _checks, recurrence
from rnn_ref.layers.activations import get as get_activation

#: The state of a SimpleRNN, as ``initial_state`` and ``return_state`` hold it.
STATES = ("h",)


def simple_rnn(inputs, kernel, recurrent_kernel, bias=None, *, activation="tanh", return_sequences=False,
               return_state=False, go_backwards=False, mask=None, initial_state=None, zero_output_for_mask=False):
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
        Any Keras activation name (``rnn_ref.layers.activations.ACTIVATIONS``);
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
    x, unbatched = recurrence.batched_inputs(inputs)  # (B, T, D)
    cell = SimpleRNNCell(kernel, recurrent_kernel, bias, activation, x.shape[2], x.dtype, np.shape(inputs))
    return recurrence.run(cell, x, state_names=STATES, unbatched=unbatched, return_sequences=return_sequences,
                          return_state=return_state, go_backwards=go_backwards, mask=mask,
                          initial_state=initial_state, zero_output_for_mask=zero_output_for_mask)


class SimpleRNNCell:
    """One SimpleRNN step: ``h_t = activation(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)``."""

    #: Rows never meet, ``project`` is the same on any steps and a call keeps nothing but a
    #: per-call buffer: ``rnn_ref.layers.parallel`` may run the loop on row blocks (a shallow copy each).
    SPLITS_BY_ROWS = True

    def __init__(self, kernel, recurrent_kernel, bias, activation, D, dtype, inputs_shape=()):
        self.recurrent_kernel = _checks.float_array("recurrent_kernel", recurrent_kernel, dtype)
        # U is read from the recurrent kernel, so a transposed kernel is named as such.
        rk_shape = self.recurrent_kernel.shape
        if len(rk_shape) != 2 or rk_shape[0] != rk_shape[1] or rk_shape[0] == 0:
            raise ValueError(f"recurrent_kernel must be a square (U, U) array with U >= 1, got shape {rk_shape}")
        self.units = U = rk_shape[0]
        self.kernel = _checks.float_array("kernel", kernel, dtype)
        _checks.shape("kernel", self.kernel, "D, U", (D, U), hint=_kernel_hint(self.kernel, D, U, inputs_shape))
        self.bias = None
        if bias is not None:
            self.bias = _checks.float_array("bias", bias, dtype)
            _checks.shape("bias", self.bias, "U", (U,), hint="one bias per unit; Keras refuses other shapes too")
        self.activation = get_activation(activation)
        self.pre_activation = None  # the last step's z (B, U), a buffer reused from step to step

    def project(self, x, out=None):
        """x (B, T, D) -> x @ kernel + bias for every step, time-major (T, B, U)."""
        if self.pre_activation is None or self.pre_activation.shape != (x.shape[0], self.units):
            self.pre_activation = np.empty((x.shape[0], self.units), dtype=x.dtype)  # (B, U)
        return recurrence.input_projection(x, self.kernel, self.bias, out)  # (T, B, U)

    def step(self, x_t, states):
        """x_t = x_t @ kernel + bias (B, U), states [h_{t-1} (B, U)] -> h_t, [h_t]."""
        (h,) = states
        z = self.pre_activation
        np.dot(h, self.recurrent_kernel, out=z)  # z = h_{t-1} @ recurrent_kernel, in place
        z += x_t  # z = x_t @ kernel + bias + h_{t-1} @ recurrent_kernel
        h = self.activation(z)  # (B, U)
        if h is z:  # linear returns its argument: keep the buffer for the next step
            h = z.copy()
        return h, [h]


def _kernel_hint(kernel, D, U, x_shape):
    """What a wrong kernel shape probably means."""
    if kernel.shape == (U, D) and D != U:
        return "it looks transposed: Keras computes x @ kernel, so a textbook W of shape (U, D) is passed as W.T"
    return f"D = {D} comes from inputs {tuple(x_shape)}, U = {U} from recurrent_kernel {(U, U)}"


#: The keyword options of ``simple_rnn`` and their defaults (Keras's names and defaults).
OPTIONS = {p.name: p.default for p in inspect.signature(simple_rnn).parameters.values() if p.kind is p.KEYWORD_ONLY}
