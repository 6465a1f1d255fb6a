"""Keras ``GRU`` forward pass in NumPy.

The equations, one step per time index t. The weights hold three gate
blocks of U columns each, in Keras's order z, r, h; sigma is
``recurrent_activation`` (sigmoid), act is ``activation`` (tanh), and
``[:, z]`` stands for the z block of the columns::

    reset_after=True (Keras's default; bias (2, 3U): row 0 input, row 1 recurrent)
        a   = x_t @ kernel + bias[0]                            # (B, 3U)
        b   = h_{t-1} @ recurrent_kernel + bias[1]              # (B, 3U)
        z   = sigma(a[:, z] + b[:, z])                          # update gate
        r   = sigma(a[:, r] + b[:, r])                          # reset gate
        h~  = act(a[:, h] + r * b[:, h])                        # reset after the product

    reset_after=False (bias (3U,))
        a   = x_t @ kernel + bias                               # (B, 3U)
        z   = sigma(a[:, z] + h_{t-1} @ recurrent_kernel[:, z])
        r   = sigma(a[:, r] + h_{t-1} @ recurrent_kernel[:, r])
        h~  = act(a[:, h] + (r * h_{t-1}) @ recurrent_kernel[:, h])

    h_t = z * h_{t-1} + (1 - z) * h~                            # z weighs the OLD state

The output at step t is h_t, the only state. PyTorch's ``nn.GRU`` is
``reset_after=True`` with its blocks in the order r, z, n: reorder them to
z, r, n, then ``kernel = weight_ih_l0.T``, ``recurrent_kernel =
weight_hh_l0.T``, ``bias = [bias_ih_l0, bias_hh_l0]``.

The time loop and every option are ``rnn_ref.layers.recurrence.run``, shared with
``simple_rnn``.
"""

from __future__ import annotations

import inspect



from rnn_ref.layers import _checks, recurrence
from rnn_ref.layers.activations import get as get_activation
from rnn_ref.layers.activations import is_elementwise

#: The states of a GRU, in the order of ``initial_state`` and of ``return_state``.
STATES = ("h",)


def gru(inputs, kernel, recurrent_kernel, bias=None, *, activation="tanh", recurrent_activation="sigmoid",
        reset_after=True, return_sequences=False, return_state=False, go_backwards=False, mask=None,
        initial_state=None, zero_output_for_mask=False):
    """Run a Keras ``GRU`` layer on ``inputs`` with the given weights.

    Letters: B batch, T time steps, D input features, U units.

    Parameters
    ----------
    inputs : (B, T, D), or one sequence (T, D)
        Integer inputs are cast to float32 as Keras does; the computation
        runs in the inputs' floating dtype.
    kernel : (D, 3U)
        ``x @ kernel``, gate blocks z, r, h.
    recurrent_kernel : (U, 3U)
        ``h @ recurrent_kernel``, same blocks.
    bias : (2, 3U) with ``reset_after``, else (3U,); or None
        With ``reset_after`` row 0 is added to the input product and row 1
        to the recurrent one. None is Keras's ``use_bias=False``.
    activation, recurrent_activation : str, callable or None
        Any Keras activation name; None means linear. ``activation`` makes
        the candidate h~, ``recurrent_activation`` the gates z and r.
    reset_after : bool
        Apply the reset gate after the recurrent product (Keras's default,
        cuDNN's and PyTorch's form) or before it.
    return_sequences, return_state, go_backwards, mask, zero_output_for_mask
        As in ``rnn_ref.simple_rnn``.
    initial_state : (B, U), (U,) for one sequence, a list of one of those, or None
        Zeros by default.

    Returns
    -------
    output : (B, U) or, with ``return_sequences``, (B, T, U)
    h : (B, U), the final state, only with ``return_state``
        For one sequence the leading B axis is dropped.
    """
    x, unbatched = recurrence.batched_inputs(inputs)  # (B, T, D)
    reset_after = _checks.flag("reset_after", reset_after)
    cell = GRUCell(kernel, recurrent_kernel, bias, activation, recurrent_activation, reset_after, x.shape[2], x.dtype)
    return recurrence.run(cell, x, state_names=STATES, unbatched=unbatched, return_sequences=return_sequences,
                          return_state=return_state, go_backwards=go_backwards, mask=mask,
                          initial_state=initial_state, zero_output_for_mask=zero_output_for_mask)


class GRUCell:
    """One GRU step (the equations at the top of this module)."""

    #: Rows never meet, ``project`` is the same on any steps and a call keeps nothing but a
    #: per-call buffer: ``rnn_ref.layers.parallel`` may run the loop on row blocks (a shallow copy each).
    SPLITS_BY_ROWS = True

    def __init__(self, kernel, recurrent_kernel, bias, activation, recurrent_activation, reset_after, D, dtype):
        self.kernel, self.recurrent_kernel, U = _checks.gated_kernels(
            kernel, recurrent_kernel, D, dtype, 3, "a GRU")  # (D, 3U), (U, 3U)
        self.units = U
        self.reset_after = reset_after
        self.input_bias = self.recurrent_bias = None
        if bias is not None:
            b = _checks.float_array("bias", bias, dtype)
            if reset_after:
                hint = ("reset_after=True takes two rows, input and recurrent; a (3U,) bias is reset_after=False's"
                        if b.shape == (3 * U,) else "row 0 for the input product, row 1 for the recurrent one")
                _checks.shape("bias", b, "2, 3U", (2, 3 * U), hint=hint)
                self.input_bias, self.recurrent_bias = b[0], b[1]  # (3U,) each
            else:
                hint = ("reset_after=False takes one row; a (2, 3U) bias is reset_after=True's"
                        if b.shape == (2, 3 * U) else "one bias of 3 gate blocks")
                _checks.shape("bias", b, "3U", (3 * U,), hint=hint)
                self.input_bias = b
        self.activation = get_activation(activation)
        self.recurrent_activation = get_activation(recurrent_activation)
        self.side_by_side = is_elementwise(recurrent_activation)  # the gates in one call, else one by one

    def project(self, x, out=None):
        """x (B, T, D) -> x @ kernel + input bias for every step, time-major (T, B, 3U)."""
        return recurrence.input_projection(x, self.kernel, self.input_bias, out)  # (T, B, 3U)

    def step(self, x_t, states):
        """x_t = x_t @ kernel + input bias (B, 3U), states [h_{t-1}] (B, U) -> h_t, [h_t]."""
        (h,) = states
        U = self.units
        if self.reset_after:
            rec = h @ self.recurrent_kernel  # (B, 3U)
            if self.recurrent_bias is not None:
                rec += self.recurrent_bias
            zr = x_t[:, :2 * U]  # (B, 2U): this step's block of the projection, used once
            zr += rec[:, :2 * U]
            if self.side_by_side:
                z_r = self.recurrent_activation(zr)  # (B, 2U): the update and reset gates
                z, r = z_r[:, :U], z_r[:, U:]  # (B, U) each
            else:
                z, r = self.recurrent_activation(zr[:, :U]), self.recurrent_activation(zr[:, U:])  # (B, U) each
            candidate = self.activation(x_t[:, 2 * U:] + r * rec[:, 2 * U:])  # (B, U)
        else:
            rec_zr = h @ self.recurrent_kernel[:, :2 * U]  # (B, 2U)
            z = self.recurrent_activation(x_t[:, :U] + rec_zr[:, :U])  # (B, U)
            r = self.recurrent_activation(x_t[:, U:2 * U] + rec_zr[:, U:])  # (B, U)
            candidate = self.activation(x_t[:, 2 * U:] + (r * h) @ self.recurrent_kernel[:, 2 * U:])  # (B, U)
        h = z * h + (1 - z) * candidate
        return h, [h]


#: The keyword options of ``gru`` and their defaults (Keras's names and defaults).
OPTIONS = {p.name: p.default for p in inspect.signature(gru).parameters.values() if p.kind is p.KEYWORD_ONLY}
