"""Keras ``LSTM`` forward pass in NumPy.

The equations, one step per time index t. The weights hold four gate blocks
of U columns each, in Keras's order i, f, c, o; sigma is
``recurrent_activation`` (sigmoid), act is ``activation`` (tanh)::

    z   = x_t @ kernel + bias + h_{t-1} @ recurrent_kernel     # (B, 4U)
    i   = sigma(z[:, 0U:1U])                                   # input gate
    f   = sigma(z[:, 1U:2U])                                   # forget gate
    g   = act(z[:, 2U:3U])                                     # candidate ("c" block)
    o   = sigma(z[:, 3U:4U])                                   # output gate
    c_t = f * c_{t-1} + i * g
    h_t = o * act(c_t)                                         # the output at step t

The states are [h, c], both (B, U). PyTorch's ``nn.LSTM`` stacks its gates
in the same order (i, f, g, o): ``kernel = weight_ih_l0.T``,
``recurrent_kernel = weight_hh_l0.T``, ``bias = bias_ih_l0 + bias_hh_l0``.
TensorFlow 1's ``LSTMCell`` (i, c, f, o) and ONNX (i, o, f, c) do not.

The time loop and every option (``go_backwards``, ``mask``,
``initial_state``, ``return_sequences``, ``return_state``) are
``rnn_ref.layers.recurrence.run``, shared with ``simple_rnn``.
"""

from __future__ import annotations

import inspect



from rnn_ref.layers import _checks, recurrence
from rnn_ref.layers.activations import get as get_activation
from rnn_ref.layers.activations import is_elementwise

#: The states of an LSTM, in the order of ``initial_state`` and of ``return_state``.
STATES = ("h", "c")


def lstm(inputs, kernel, recurrent_kernel, bias=None, *, activation="tanh", recurrent_activation="sigmoid",
         return_sequences=False, return_state=False, go_backwards=False, mask=None, initial_state=None,
         zero_output_for_mask=False):
    """Run a Keras ``LSTM`` layer on ``inputs`` with the given weights.

    Letters: B batch, T time steps, D input features, U units.

    Parameters
    ----------
    inputs : (B, T, D), or one sequence (T, D)
        Integer inputs are cast to float32 as Keras does; the computation
        runs in the inputs' floating dtype.
    kernel : (D, 4U)
        ``x @ kernel``, gate blocks i, f, c, o.
    recurrent_kernel : (U, 4U)
        ``h @ recurrent_kernel``, same blocks.
    bias : (4U,) or None
        None is Keras's ``use_bias=False``.
    activation, recurrent_activation : str, callable or None
        Any Keras activation name; None means linear. ``activation`` acts on
        the candidate and on the cell state, ``recurrent_activation`` on the
        gates i, f, o.
    return_sequences, return_state, go_backwards, zero_output_for_mask : bool
        As in ``rnn_ref.simple_rnn``.
    mask : (B, T) or (T,) for one sequence, or None
        At a padded step h and c are kept and the output repeats the
        previous output (zeros before the first valid step).
    initial_state : [h0, c0], each (B, U) ((U,) for one sequence), or None
        Zeros by default.

    Returns
    -------
    output : (B, U) or, with ``return_sequences``, (B, T, U)
    h, c : (B, U) each, the final states, only with ``return_state``
        For one sequence the leading B axis is dropped.
    """
    x, unbatched = recurrence.batched_inputs(inputs)  # (B, T, D)
    cell = LSTMCell(kernel, recurrent_kernel, bias, activation, recurrent_activation, x.shape[2], x.dtype)
    return recurrence.run(cell, x, state_names=STATES, unbatched=unbatched, return_sequences=return_sequences,
                          return_state=return_state, go_backwards=go_backwards, mask=mask,
                          initial_state=initial_state, zero_output_for_mask=zero_output_for_mask)


class LSTMCell:
    """One LSTM step (the equations at the top of this module)."""

    #: Rows never meet, ``project`` is the same on any steps and a call keeps nothing but a
    #: per-call buffer: ``rnn_ref.layers.parallel`` may run the loop on row blocks (a shallow copy each).
    SPLITS_BY_ROWS = True

    def __init__(self, kernel, recurrent_kernel, bias, activation, recurrent_activation, D, dtype):
        self.kernel, self.recurrent_kernel, U = _checks.gated_kernels(
            kernel, recurrent_kernel, D, dtype, 4, "an LSTM")  # (D, 4U), (U, 4U)
        self.units = U
        self.bias = None
        if bias is not None:
            self.bias = _checks.float_array("bias", bias, dtype)
            hint = "one bias of 4 gate blocks; PyTorch's two biases are passed as bias_ih + bias_hh"
            _checks.shape("bias", self.bias, "4U", (4 * U,), hint=hint)
        self.activation = get_activation(activation)
        self.recurrent_activation = get_activation(recurrent_activation)
        self.side_by_side = is_elementwise(recurrent_activation)  # the gates in one call, else one by one

    def project(self, x, out=None):
        """x (B, T, D) -> x @ kernel + bias for every step, time-major (T, B, 4U)."""
        return recurrence.input_projection(x, self.kernel, self.bias, out)  # (T, B, 4U)

    def step(self, x_t, states):
        """x_t = x_t @ kernel + bias (B, 4U), states [h, c] (B, U) each -> h_t, [h_t, c_t]."""
        h, c = states
        U = self.units
        z = x_t  # (B, 4U): this step's block of the projection, used once, so turned into z in place
        z += h @ self.recurrent_kernel  # z = x_t @ kernel + bias + h @ recurrent_kernel
        if self.side_by_side and one_call(z):
            gates = self.recurrent_activation(z)  # (B, 4U): i, f and o (the c block's values unused)
            i, f, o = gates[:, :U], gates[:, U:2 * U], gates[:, 3 * U:]  # (B, U) each
        else:  # block by block
            if self.side_by_side:
                i_f = self.recurrent_activation(z[:, :2 * U])  # (B, 2U): the input and forget gates
                i, f = i_f[:, :U], i_f[:, U:]  # (B, U) each
            else:
                i, f = self.recurrent_activation(z[:, :U]), self.recurrent_activation(z[:, U:2 * U])  # (B, U) each
            o = self.recurrent_activation(z[:, 3 * U:])  # (B, U)
        g = self.activation(z[:, 2 * U:3 * U])  # (B, U)
        c = f * c
        c += i * g  # c_t = f * c_{t-1} + i * g
        h = o * self.activation(c)
        return h, [h, c]


#: Elements of a (B, 4U) step up to which an elementwise ``recurrent_activation`` goes over all four
#: blocks in one call (the c block's values thrown away) rather than over i, f and o in two: a call
#: costs more than a quarter more elements there. Measured (T = 250, D = 32, U = 100, median of
#: 15, the two alternated): B = 1 2.6 -> 2.0 ms, B = 8 6.2 -> 5.4 ms, B = 32 13.7 -> 13.0 ms,
#: B = 64 22.9 against 22.8 ms; the same numbers bit for bit (the activation is elementwise).
ONE_CALL_MAX = 4 * 4096


def one_call(z) -> bool:
    """Whether a step's pre-activations z (B, 4U) are few enough for ``ONE_CALL_MAX``."""
    return z.size <= ONE_CALL_MAX


#: The keyword options of ``lstm`` and their defaults (Keras's names and defaults).
OPTIONS = {p.name: p.default for p in inspect.signature(lstm).parameters.values() if p.kind is p.KEYWORD_ONLY}
