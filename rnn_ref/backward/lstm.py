"""Backpropagation through time for ``rnn_ref.lstm``.

    >>> out, backward = lstm_vjp(x, kernel, recurrent_kernel, bias, return_sequences=True)
    >>> grads = backward(d_out)      # d_out (B, T, U), the cotangent of out
    >>> grads.kernel                 # (D, 4U): d sum(out * d_out) / d kernel

``lstm_vjp(inputs, kernel, recurrent_kernel, bias=None, **options)`` takes
the arguments and every option of ``rnn_ref.lstm``, runs it once, recording
what the backward pass needs, and returns its output (exactly ``lstm``'s)
with a function ``backward`` of the output's cotangent. With
``return_state``: ``backward(d_output, d_h, d_c)``, the cotangents of the
final states h and c; None stands for zeros. ``backward`` returns
``LSTMGrads``, the gradients of ``sum(output * d_output) [+ sum(h * d_h) +
sum(c * d_c)]``, each shaped like its argument; ``bias`` is None without a
bias, ``initial_state`` None if it was not given, else a list ``[dh0, dc0]``.

The design is that of the SimpleRNN backward pass in ``rnn_ref.backward.simple_rnn``
(its module docstring): the forward pass is ``lstm``'s own loop with a cell
that records each step, and the backward loop carries the cotangents of the
states and of the output from the last step to the first.

The forward loop, in processing order (after ``go_backwards`` has flipped
the steps), keep_t the mask at step t (all True without a mask), sigma the
``recurrent_activation``, act the ``activation``::

    z_t = x_t @ kernel + bias + h_{t-1} @ recurrent_kernel      # (B, 4U), blocks i, f, c, o
    i, f, o = sigma(z_t[i]), sigma(z_t[f]), sigma(z_t[o])         # (B, U) each
    g = act(z_t[c])                                               # (B, U), the candidate
    c~_t = f * c_{t-1} + i * g                                    # (B, U)
    y_t = o * act(c~_t)                                           # (B, U)
    h_t = where(keep_t, y_t, h_{t-1});  c_t = where(keep_t, c~_t, c_{t-1})
    o_t = where(keep_t, y_t, o_{t-1})                             # output (0 with zero_output_for_mask)

with [h_{-1}, c_{-1}] the initial state and o_{-1} = 0. The backward loop
runs t = T-1 .. 0 carrying dh, dc (of the states h_t, c_t) and do (of the
output o_t):

* on a valid row y_t reaches h_t and o_t: dy = dh + do, and c~_t reaches
  c_t: dc~ = dc; then, by the chain rule through the equations above::

      dc~ += activation_vjp(act, c~_t, act(c~_t), dy * o)
      d o-gate = dy * act(c~_t)      d f-gate = dc~ * c_{t-1}
      d i-gate = dc~ * g             d g      = dc~ * i
      dz = [sigma'(i) d i, sigma'(f) d f, act'(g) d g, sigma'(o) d o]     # (B, 4U)

  and the previous step receives dh_{t-1} = dz @ recurrent_kernel.T,
  dc_{t-1} = dc~ * f, o_{t-1} nothing;
* on a padded row y_t and c~_t reach nothing (dz = 0: no contribution to
  any weight); dh and dc pass to h_{t-1} and c_{t-1} unchanged, and do to
  o_{t-1}, the step that produced the repeated output (dropped with
  zero_output_for_mask, and at t = 0, where o_{-1} is a constant 0).

Every Keras activation name works for both activations (the derivatives are
``rnn_ref.backward.activations.activation_vjp``; a callable only if it is one of
``rnn_ref.layers.activations``'s functions). softmax-like activations act on the U
units of one gate block, as in the forward pass.

Letters: B batch, T time steps, D input features, U units.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from rnn_ref.layers import parallel, recurrence
from rnn_ref.layers import memory
from rnn_ref.backward.activations import DERIVATIVES, activation_vjp, from_output
from rnn_ref.backward.rows import split_by_rows
from rnn_ref.backward.step_sums import StepSums
from rnn_ref.backward.cotangents import activation_name, final_cotangents, processing_keep, step_edges
from rnn_ref.layers.lstm import STATES, LSTMCell, one_call


class LSTMGrads(NamedTuple):
    inputs: np.ndarray  # (B, T, D), or (T, D) for one sequence
    kernel: np.ndarray  # (D, 4U)
    recurrent_kernel: np.ndarray  # (U, 4U)
    bias: Optional[np.ndarray]  # (4U,), None without a bias
    initial_state: Optional[list]  # [dh0, dc0], each (B, U) ((U,) for one sequence); None if not given


class LSTMStep(NamedTuple):
    """The values of one forward step (processing order), (B, U) each unless marked."""

    h_prev: np.ndarray  # h_{t-1}, as the loop passed it
    c_prev: np.ndarray  # c_{t-1}
    z: Optional[np.ndarray]  # (B, 4U), the pre-activations of the four gate blocks; None if not kept
    i: np.ndarray  # input gate
    f: np.ndarray  # forget gate
    g: np.ndarray  # candidate
    o: np.ndarray  # output gate
    c: np.ndarray  # c~_t, the new cell state before the mask
    act_c: np.ndarray  # act(c~_t)
    gates: np.ndarray  # (B, 4U): i, f, g, o side by side, as recorded (i, f, g, o are views of it)


class _RecordingLSTMCell(LSTMCell):
    """``LSTMCell`` that records each step in processing order; ``recorded(t)`` gives step t's
    values as an ``LSTMStep``.

    ``step`` computes exactly what ``LSTMCell.step`` computes, in the same order, so the
    output is bit for bit ``lstm``'s (tests/test_vjp_lstm.py checks it).

    The gates are written once, where the forward pass already holds z_t: each step turns its
    block of the input projection (x_t @ kernel + bias) into z_t in place, and then, when both
    activations' derivatives read their output only (``FROM_OUTPUT``: tanh and sigmoid, the
    defaults), into the gates i, f, g, o; z_t itself is not needed then. Otherwise z_t stays
    and the gates go into an array of their own. c~_t, act(c~_t) and the output y_t are
    written into arrays of all T steps; h_{t-1} and c_{t-1} are the arrays the loop passed
    (without a mask, the previous step's blocks of those), kept by reference.

    The arrays of all T steps are records that earlier vjps gave back
    (``rnn_ref.layers.memory``): new ones are fresh memory at every call, which the kernel
    faults in page by page. Measured (T = 250, U = 100, median of 7): the recording forward at
    B = 32 took 13 ms with no page fault keeping the step's own small arrays, against 20-24 ms
    and 1700-4300 faults a call with new arrays of all T steps; at B = 256 with TensorFlow in
    the process the whole vjp took 220 ms and 10 000 faults a call keeping the step's arrays,
    159 ms and none with kept records. Computing the gates again in the backward loop, as this
    cell did before, cost 750 more sigmoid calls a vjp at T = 250."""

    #: Records of the whole batch, step by step, from one projection: not split by ``rnn_ref.layers.parallel``.
    SPLITS_BY_ROWS = False

    def project(self, x):
        """x (B, T, D) in processing order -> (T, B, 4U), as LSTMCell; x is kept."""
        B, T, _ = x.shape
        U, dtype = self.units, x.dtype
        self.x = x  # (B, T, D)
        self.states = []  # (h_{t-1}, c_{t-1}), (B, U) each, of each step, as the loop passed them
        # x_t @ kernel + bias, then z_t once step t has run
        self.z = super().project(x, out=memory.take((T, B, 4 * U), dtype))  # (T, B, 4U)
        # the gates i, f, g, o of each step (T, B, 4U): in z's place when z is not needed
        self.keeps_z = not (from_output(self.activation) and from_output(self.recurrent_activation))
        self.a = memory.take((T, B, 4 * U), dtype) if self.keeps_z else self.z
        self.c = memory.take((T, B, U), dtype)  # c~_t of each step
        self.act_c = memory.take((T, B, U), dtype)  # act(c~_t)
        self.h = memory.take((T, B, U), dtype)  # y_t = o * act(c~_t)
        return self.z  # (T, B, 4U)

    def step(self, x_t, states):
        h, c_prev = states  # (B, U) each, as the loop passed them (after the mask)
        t, U = len(self.states), self.units
        z = x_t  # (B, 4U): block t of self.z
        z += h @ self.recurrent_kernel  # z_t = x_t @ kernel + bias + h_{t-1} @ recurrent_kernel
        a = self.a[t]  # (B, 4U): z itself when z is not kept
        if self.side_by_side and one_call(z):  # as LSTMCell.step: the four blocks in one call
            g = np.array(self.activation(z[:, 2 * U:3 * U]))  # (B, U), a copy: a may be z, and g a view of it
            a[:] = self.recurrent_activation(z)  # (B, 4U); z itself is left alone when it is kept
            a[:, 2 * U:3 * U] = g
        else:  # block by block; each block of z is read before its own block of a is written
            if self.side_by_side:
                a[:, :2 * U] = self.recurrent_activation(z[:, :2 * U])  # the input and forget gates
            else:
                a[:, :U] = self.recurrent_activation(z[:, :U])
                a[:, U:2 * U] = self.recurrent_activation(z[:, U:2 * U])
            a[:, 2 * U:3 * U] = self.activation(z[:, 2 * U:3 * U])
            a[:, 3 * U:] = self.recurrent_activation(z[:, 3 * U:])
        i, f, g, o = a[:, :U], a[:, U:2 * U], a[:, 2 * U:3 * U], a[:, 3 * U:]  # (B, U) each
        c = np.multiply(f, c_prev, out=self.c[t])  # (B, U)
        c += i * g  # c~_t = f * c_{t-1} + i * g
        act_c = self.act_c[t]  # (B, U)
        act_c[:] = self.activation(c)
        h_new = np.multiply(o, act_c, out=self.h[t])  # (B, U)
        self.states.append((h, c_prev))
        return h_new, [h_new, c]

    def recorded(self, t) -> LSTMStep:
        """What step t computed, as an ``LSTMStep``; z is None when it was not kept."""
        U, a = self.units, self.a[t]  # (B, 4U)
        h, c_prev = self.states[t]
        return LSTMStep(h, c_prev, self.z[t] if self.keeps_z else None, a[:, :U], a[:, U:2 * U],
                        a[:, 2 * U:3 * U], a[:, 3 * U:], self.c[t], self.act_c[t], a)


def cell_backward(s: LSTMStep, dy, dc, act_name, rec_name):
    """The backward pass of one LSTM step on its recorded values ``s``.

    dy (B, U): cotangent of the step's output y_t = h_t; dc (B, U): of its new cell state c~_t.
    Returns dz (B, 4U), the cotangent of the pre-activations, and dc_prev (B, U), of c_{t-1}.
    (h_{t-1} receives dz @ recurrent_kernel.T, computed by the caller.)
    """
    if s.z is None:  # not kept: the derivatives read the gates only (FROM_OUTPUT)
        return _cell_backward_from_output(s, dy, dc, act_name, rec_name)
    dc = dc + activation_vjp(act_name, s.c, s.act_c, dy * s.o)  # (B, U): h = o * act(c)
    d_o = dy * s.act_c  # (B, U)
    d_f = dc * s.c_prev  # (B, U): c = f * c_prev + i * g
    d_i = dc * s.g  # (B, U)
    d_g = dc * s.i  # (B, U)
    U = s.i.shape[1]
    dz = np.concatenate([
        activation_vjp(rec_name, s.z[:, :U], s.i, d_i),
        activation_vjp(rec_name, s.z[:, U:2 * U], s.f, d_f),
        activation_vjp(act_name, s.z[:, 2 * U:3 * U], s.g, d_g),
        activation_vjp(rec_name, s.z[:, 3 * U:], s.o, d_o),
    ], axis=1)  # (B, 4U), blocks i, f, c, o
    return dz, dc * s.f  # (B, 4U), (B, U)


def _cell_backward_from_output(s: LSTMStep, dy, dc, act_name, rec_name):
    """``cell_backward`` when z was not kept: both derivatives read their outputs only
    (``FROM_OUTPUT``, elementwise). The four blocks' cotangents go side by side into one (B, 4U)
    array, which meets the recurrent activation's derivative of all four gates in one pass; the
    g block's is then replaced by the activation's. The same products as ``cell_backward``'s
    four ``activation_vjp`` calls, so the same numbers, in about ten NumPy calls instead of some
    forty (at B = 32 a call's overhead is most of its time)."""
    U = s.i.shape[1]
    d_act, d_rec = DERIVATIVES[act_name], DERIVATIVES[rec_name]
    with np.errstate(over="ignore", invalid="ignore"):  # as activation_vjp: inf * 0 stays NaN
        dc = dc + (dy * s.o) * d_act(s.act_c, s.act_c)  # (B, U): h = o * act(c)
        d = np.empty_like(s.gates)  # (B, 4U): the cotangents of i, f, g, o
        np.multiply(dc, s.g, out=d[:, :U])  # c = f * c_prev + i * g
        np.multiply(dc, s.c_prev, out=d[:, U:2 * U])
        np.multiply(dc, s.i, out=d[:, 2 * U:3 * U])
        np.multiply(dy, s.act_c, out=d[:, 3 * U:])
        dz = d * d_rec(s.gates, s.gates)  # (B, 4U); the g block's derivative is act's:
        dz[:, 2 * U:3 * U] = d[:, 2 * U:3 * U] * d_act(s.g, s.g)
    return dz, dc * s.f  # (B, 4U), (B, U)


@split_by_rows  # a large batch: row blocks in threads (rnn_ref.backward.rows)
def lstm_vjp(inputs, kernel, recurrent_kernel, bias=None, *, activation="tanh", recurrent_activation="sigmoid",
             return_sequences=False, return_state=False, go_backwards=False, mask=None, initial_state=None,
             zero_output_for_mask=False):
    """``(lstm(...), backward)``: the output of ``rnn_ref.lstm`` and its vector-Jacobian product.

    The arguments and options are ``rnn_ref.lstm``'s: inputs (B, T, D) or (T, D), kernel
    (D, 4U), recurrent_kernel (U, 4U), bias (4U,) or None, initial_state [h0, c0] or None.

    backward(d_output) or, with ``return_state``, backward(d_output, d_h, d_c)
        d_output shaped like the output ((B, U), or (B, T, U) with ``return_sequences``),
        d_h and d_c (B, U); the B axis dropped for one sequence; None means zeros.
        Returns ``LSTMGrads``: the gradients of
        ``sum(output * d_output) [+ sum(h * d_h) + sum(c * d_c)]``.
    """
    act_name = activation_name(activation)
    rec_name = activation_name(recurrent_activation)
    x, unbatched = recurrence.batched_inputs(inputs)  # (B, T, D)
    B, T, D = x.shape
    cell = _RecordingLSTMCell(kernel, recurrent_kernel, bias, activation, recurrent_activation, D, x.dtype)
    # The forward pass: lstm's own loop, with the recording cell.
    out = recurrence.run(cell, x, state_names=STATES, unbatched=unbatched, return_sequences=return_sequences,
                         return_state=return_state, go_backwards=go_backwards, mask=mask,
                         initial_state=initial_state, zero_output_for_mask=zero_output_for_mask)
    out = memory.own_states(out, return_state)
    U, dtype = cell.units, x.dtype
    keep = processing_keep(mask, B, T, unbatched, go_backwards)  # (B, T), processing order
    # kernel.T and recurrent_kernel.T, contiguous: a product with a transposed view is slower.
    W_T, R_T = np.ascontiguousarray(cell.kernel.T), np.ascontiguousarray(cell.recurrent_kernel.T)  # (4U, D), (4U, U)
    xs = cell.x  # (B, T, D)
    call = f"lstm(return_sequences={return_sequences}, return_state={return_state})"
    edges = dict(return_sequences=return_sequences, zero_output_for_mask=zero_output_for_mask)

    def backward(*cotangents):
        """d_output (B, T, U) or (B, U) [, d_h (B, U), d_c (B, U)] -> LSTMGrads."""
        d_out, (dh, dc), do = final_cotangents(cotangents, call=call, state_names=("d_h", "d_c"),
                                               return_sequences=return_sequences, return_state=return_state,
                                               T=T, B=B, U=U, unbatched=unbatched, dtype=dtype)
        d_x = np.empty((B, T, D), dtype=dtype)  # (B, T, D), processing order
        # sum_t x_t.T @ dz_t (D, 4U) with dx_t = dz_t @ kernel.T and sum_t dz_t, and
        # sum_t h_{t-1}.T @ dz_t (U, 4U): a chunk of steps at a time (step_sums)
        kernel_sums = StepSums(B, D, 4 * U, dtype, T, project=W_T, out=d_x, bias=True)
        recurrent_sums = StepSums(B, U, 4 * U, dtype, T)

        for t in reversed(range(T)):
            # dc_new (B, U): of the step's new c_t on valid rows; dh, dc: what padded rows pass on
            dy, (dc_new,), (dh, dc), do = step_edges(t, keep, [dh, dc], do, d_out, **edges)
            step = cell.recorded(t)  # LSTMStep
            dz, dc_prev = cell_backward(step, dy, dc_new, act_name, rec_name)  # (B, 4U), (B, U)
            recurrent_sums.add(step.h_prev, dz)
            kernel_sums.add(xs[:, t], dz, t)
            dh = dh + dz @ R_T  # (B, U): of h_{t-1}
            dc = dc + dc_prev  # (B, U): of c_{t-1}
        # What is left in do belongs to o_{-1}, the constant zeros before the first step.
        (d_kernel, d_bias), (d_recurrent, _) = kernel_sums.done(), recurrent_sums.done()

        if go_backwards:
            d_x = d_x[:, ::-1]  # (B, T, D), input order
        if unbatched:
            d_x, dh, dc = d_x[0], dh[0], dc[0]  # (T, D), (U,), (U,)
        return LSTMGrads(
            inputs=np.ascontiguousarray(d_x),
            kernel=d_kernel,
            recurrent_kernel=d_recurrent,
            bias=None if bias is None else d_bias,
            initial_state=None if initial_state is None else [dh, dc],
        )

    return out, parallel.blas_held_to_one_thread(backward)  # the loop's products: one BLAS thread


# ---------------------------------------------------------------------------
# Small pieces copied from rnn_ref.backward (private there)
# ---------------------------------------------------------------------------
