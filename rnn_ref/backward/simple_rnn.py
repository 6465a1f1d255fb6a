"""Backpropagation through time for ``rnn_ref.simple_rnn``.

    >>> out, backward = simple_rnn_vjp(x, kernel, recurrent_kernel, bias, return_sequences=True)
    >>> grads = backward(d_out)      # d_out (B, T, U), the cotangent of out
    >>> grads.kernel                 # (D, U): d sum(out * d_out) / d kernel

``simple_rnn_vjp(inputs, kernel, recurrent_kernel, bias=None, **options)``
takes the arguments and every option of ``rnn_ref.simple_rnn`` (``rnn_ref.vjp``
calls it), runs ``simple_rnn``'s own loop once with a cell that records what
the backward pass needs, and returns its output with ``backward(d_output)``
(with ``return_state``: ``backward(d_output, d_final_state)``; None stands
for zeros). ``backward`` returns ``SimpleRNNGrads``, each gradient shaped
like its argument; None for an argument that was None (no bias, no
initial_state).

SimpleRNN: backpropagation through time
----------------------------------------
In processing order (after ``go_backwards`` has flipped the steps), with
keep_t the mask at step t (all True without a mask), the forward loop is::

    z_t = x_t @ kernel + bias + h_{t-1} @ recurrent_kernel       # (B, U)
    y_t = activation(z_t)                                          # (B, U)
    h_t = where(keep_t, y_t, h_{t-1})                              # the state, kept on padded rows
    o_t = where(keep_t, y_t, o_{t-1})                              # the output (0 with zero_output_for_mask)

with h_{-1} the initial state and o_{-1} = 0. The output is o (B, T, U)
with ``return_sequences``, else o_{T-1}; the final state is h_{T-1}. The
backward loop runs t = T-1 .. 0 carrying two cotangents, dh of h_t and do
of o_t (what later steps, the result and the final state ask of them):

* on a valid row, y_t reaches both: dy = dh + do; then dz = dy * act'(z_t)
  (``activation_vjp(z_t, y_t, dy)``), and h_{t-1} receives
  dz @ recurrent_kernel.T, o_{t-1} nothing;
* on a padded row y_t reaches nothing (dz = 0: no contribution to any
  weight); dh passes to h_{t-1} unchanged, and do to o_{t-1}, the step that
  produced the repeated output (dropped with zero_output_for_mask, and at
  t = 0, where o_{-1} is a constant 0).

Letters: B batch, T time steps, D input features, U units.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from rnn_ref.layers import parallel, recurrence
from rnn_ref.layers import memory
from rnn_ref.backward.activations import activation_vjp
from rnn_ref.backward.rows import split_by_rows
from rnn_ref.backward.step_sums import StepSums
from rnn_ref.backward.cotangents import activation_name, final_cotangents, like_given, processing_keep, step_edges
from rnn_ref.layers.simple_rnn import SimpleRNNCell


class SimpleRNNGrads(NamedTuple):
    inputs: np.ndarray  # (B, T, D), or (T, D) for one sequence
    kernel: np.ndarray  # (D, U)
    recurrent_kernel: np.ndarray  # (U, U)
    bias: Optional[np.ndarray]  # (U,), None without a bias
    initial_state: object  # like the initial_state given ((B, U), (U,) or a list of one), None if not given


class _RecordingCell(SimpleRNNCell):
    """``SimpleRNNCell`` that records, step by step in processing order, what the backward
    pass needs: the state it read h_{t-1}, the pre-activation z_t and y_t = activation(z_t).

    z_t is kept where the forward pass already holds it: each step turns its block of the
    input projection (x_t @ kernel + bias) into z_t, in place. y_t is written into an array of
    all T steps, and h_{t-1} is the array the loop passed (without a mask, y_{t-1} itself). The
    arrays of all T steps are records that earlier vjps gave back (``rnn_ref.layers.memory``)."""

    #: Records of the whole batch, step by step, from one projection: not split by ``rnn_ref.layers.parallel``.
    SPLITS_BY_ROWS = False

    def project(self, x):
        """x (B, T, D) in processing order -> (T, B, U), as SimpleRNNCell; x is kept."""
        B, T, _ = x.shape
        self.x = x  # (B, T, D)
        self.h_prev = []  # h_{t-1} (B, U) of each step
        # x_t @ kernel + bias, then z_t once step t has run; y_t of each step (rnn_ref.layers.memory)
        self.z = super().project(x, out=memory.take((T, B, self.units), x.dtype))  # (T, B, U)
        self.y = memory.take((T, B, self.units), x.dtype)  # (T, B, U)
        return self.z  # (T, B, U)

    def step(self, x_t, states):
        (h,) = states  # (B, U), as the loop passed it (after the mask)
        z = x_t  # (B, U): block t of self.z
        z += np.dot(h, self.recurrent_kernel)  # z_t = x_t @ kernel + bias + h_{t-1} @ recurrent_kernel
        y = self.y[len(self.h_prev)]  # (B, U)
        y[:] = self.activation(z)  # a copy of z itself for linear: z stays the record's
        self.h_prev.append(h)
        return y, [y]


@split_by_rows  # a large batch: row blocks in threads (rnn_ref.backward.rows)
def simple_rnn_vjp(inputs, kernel, recurrent_kernel, bias=None, *, activation="tanh", return_sequences=False,
                   return_state=False, go_backwards=False, mask=None, initial_state=None,
                   zero_output_for_mask=False):
    """``(simple_rnn(...), backward)``: the output of ``rnn_ref.simple_rnn`` and its
    vector-Jacobian product (the module docstring)."""
    act_name = activation_name(activation)
    x, unbatched = recurrence.batched_inputs(inputs)  # (B, T, D)
    B, T, D = x.shape
    cell = _RecordingCell(kernel, recurrent_kernel, bias, activation, D, x.dtype, np.shape(inputs))
    # The forward pass: simple_rnn's own loop, with the recording cell.
    out = recurrence.run(cell, x, unbatched=unbatched, return_sequences=return_sequences,
                         return_state=return_state, go_backwards=go_backwards, mask=mask,
                         initial_state=initial_state, zero_output_for_mask=zero_output_for_mask)
    out = memory.own_states(out, return_state)
    U, dtype = cell.units, x.dtype
    keep = processing_keep(mask, B, T, unbatched, go_backwards)  # (B, T) processing order, None without a mask
    # kernel.T and recurrent_kernel.T, contiguous: a product with a transposed view is slower.
    W_T, R_T = np.ascontiguousarray(cell.kernel.T), np.ascontiguousarray(cell.recurrent_kernel.T)  # (U, D), (U, U)
    xs, h_prev, z, y = cell.x, cell.h_prev, cell.z, cell.y  # (B, T, D), T arrays (B, U), (T, B, U), (T, B, U)
    call = f"simple_rnn(return_sequences={return_sequences}, return_state={return_state})"
    edges = dict(return_sequences=return_sequences, zero_output_for_mask=zero_output_for_mask)

    def backward(*cotangents):
        """d_output (B, T, U) or (B, U) [, d_final_state (B, U)] -> SimpleRNNGrads."""
        d_out, (dh,), do = final_cotangents(cotangents, call=call, state_names=("d_final_state",),
                                            return_sequences=return_sequences, return_state=return_state,
                                            T=T, B=B, U=U, unbatched=unbatched, dtype=dtype)
        d_x = np.empty((B, T, D), dtype=dtype)  # (B, T, D), processing order
        # Each weight's gradient is a sum over steps: sum_t x_t.T @ dz_t (D, U) with dx_t =
        # dz_t @ kernel.T and sum_t dz_t, and sum_t h_{t-1}.T @ dz_t (U, U), a chunk of steps at
        # a time (step_sums; BLAS is held to one thread for the loop).
        kernel_sums = StepSums(B, D, U, dtype, T, project=W_T, out=d_x, bias=True)
        recurrent_sums = StepSums(B, U, U, dtype, T)
        for t in reversed(range(T)):
            dy, _, (dh,), do = step_edges(t, keep, [dh], do, d_out, **edges)  # (B, U) each
            dz = activation_vjp(act_name, z[t], y[t], dy)  # (B, U)
            recurrent_sums.add(h_prev[t], dz)
            kernel_sums.add(xs[:, t], dz, t)
            dh = dh + dz @ R_T  # (B, U): of h_{t-1}
        # What is left in do belongs to o_{-1}, the constant zeros before the first step.
        (d_kernel, d_bias), (d_recurrent, _) = kernel_sums.done(), recurrent_sums.done()

        if go_backwards:
            d_x = d_x[:, ::-1]  # (B, T, D), input order
        if unbatched:
            d_x, dh = d_x[0], dh[0]  # (T, D), (U,)
        return SimpleRNNGrads(
            inputs=np.ascontiguousarray(d_x),
            kernel=d_kernel,
            recurrent_kernel=d_recurrent,
            bias=None if bias is None else d_bias,
            initial_state=like_given(initial_state, dh),
        )

    return out, parallel.blas_held_to_one_thread(backward)  # the loop's products: one BLAS thread
