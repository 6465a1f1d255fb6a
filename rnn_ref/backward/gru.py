"""Backpropagation through time for ``rnn_ref.gru``: its vector-Jacobian product.

    >>> out, backward = gru_vjp(x, kernel, recurrent_kernel, bias, return_sequences=True)
    >>> grads = backward(d_out)      # d_out (B, T, U), the cotangent of out
    >>> grads.kernel                 # (D, 3U): d sum(out * d_out) / d kernel

``gru_vjp(inputs, kernel, recurrent_kernel, bias=None, **options)`` takes
exactly ``gru``'s arguments and options (every one of them), runs ``gru``'s
own loop once with a cell that records what the backward pass needs, and
returns the output with ``backward(d_output)`` (with ``return_state``:
``backward(d_output, d_h)``; None stands for zeros). ``backward`` returns
``GRUGrads``, each gradient shaped like its argument; None for an argument
that was None (no bias, no initial_state). It follows the design of the
SimpleRNN backward pass in ``rnn_ref.backward.simple_rnn``.

The forward step (``rnn_ref.gru``), in processing order, gate blocks z, r, h
of U columns each, sigma = ``recurrent_activation``, act = ``activation``::

    a    = x_t @ kernel + input_bias                                  # (B, 3U)
    reset_after=True:
      b    = h_{t-1} @ recurrent_kernel + recurrent_bias              # (B, 3U)
      z    = sigma(a[z] + b[z]);  r = sigma(a[r] + b[r])              # (B, U) each
      c    = a[h] + r * b[h];     h~ = act(c)                         # (B, U)
    reset_after=False:
      z    = sigma(a[z] + h_{t-1} @ recurrent_kernel[:, z])
      r    = sigma(a[r] + h_{t-1} @ recurrent_kernel[:, r])
      c    = a[h] + (r * h_{t-1}) @ recurrent_kernel[:, h];  h~ = act(c)
    y_t  = z * h_{t-1} + (1 - z) * h~                                 # (B, U)
    h_t  = where(keep_t, y_t, h_{t-1});  o_t = where(keep_t, y_t, o_{t-1})

Backward, per step, from dy (the cotangent of y_t, zero on padded rows)::

    dz   = dy * (h_{t-1} - h~)            # d/dz of z h + (1 - z) h~
    dh~  = dy * (1 - z)
    dh_{t-1} += dy * z                    # the direct path through the update
    dc   = act'(c) * dh~                  # activation_vjp
    reset_after=True:
      dr = dc * b[h];   db[h] = dc * r    # c = a[h] + r * b[h]
      da = [sigma'(.) dz, sigma'(.) dr, dc];  db[z, r] = da[z, r]
      d recurrent_kernel += h_{t-1}.T @ db;  dh_{t-1} += db @ recurrent_kernel.T
      d bias[0] += sum da;  d bias[1] += sum db
    reset_after=False:
      d(r h) = dc @ recurrent_kernel[:, h].T;  dr = d(r h) * h_{t-1};  dh_{t-1} += d(r h) * r
      da = [sigma'(.) dz, sigma'(.) dr, dc]
      d recurrent_kernel[:, zr] += h_{t-1}.T @ da[zr];  d recurrent_kernel[:, h] += (r h_{t-1}).T @ dc
      dh_{t-1} += da[zr] @ recurrent_kernel[:, zr].T;  d bias += sum da
    d kernel += x_t.T @ da;  dx_t = da @ kernel.T

Masks, ``go_backwards``, ``zero_output_for_mask``, ``return_sequences`` and
the two carried cotangents dh (of h_t) and do (of o_t) are handled exactly as
for SimpleRNN (``rnn_ref.backward.simple_rnn``'s docstring): on a padded row y_t reaches
nothing, dh passes to h_{t-1} unchanged and do to o_{t-1}, the step that
produced the repeated output (dropped with ``zero_output_for_mask``).

Letters: B batch, T time steps, D input features, U units.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from rnn_ref.layers import _checks, parallel, recurrence
from rnn_ref.layers import memory
from rnn_ref.backward.activations import activation_vjp
from rnn_ref.backward.rows import split_by_rows
from rnn_ref.backward.step_sums import StepSums
from rnn_ref.backward.cotangents import activation_name, final_cotangents, like_given, processing_keep, step_edges
from rnn_ref.layers.gru import STATES, GRUCell


class GRUGrads(NamedTuple):
    inputs: np.ndarray  # (B, T, D), or (T, D) for one sequence
    kernel: np.ndarray  # (D, 3U)
    recurrent_kernel: np.ndarray  # (U, 3U)
    bias: Optional[np.ndarray]  # (2, 3U) with reset_after, else (3U,); None without a bias
    initial_state: object  # like the initial_state given ((B, U), (U,) or a list of one), None if not given


class _RecordingGRUCell(GRUCell):
    """``GRUCell`` that records, step by step in processing order, what the backward pass
    needs. ``step`` is ``GRUCell.step``'s arithmetic, operation for operation (so the output
    is bit for bit ``gru``'s), keeping the intermediate values.

    The pre-activations are kept where the forward pass already holds them: each step turns
    its block of the input projection a = x_t @ kernel + input bias into [z_pre, r_pre, c]
    (the gates' and the candidate's pre-activations), in place: ``self.a`` (T, B, 3U). The
    gates z, r and the candidate h~ are computed again from them by ``gates_and_candidate``:
    the same values, at less cost than keeping them (fresh memory is slow to touch)."""

    #: Records of the whole batch, step by step, from one projection: not split by ``rnn_ref.layers.parallel``.
    SPLITS_BY_ROWS = False

    def project(self, x):
        """x (B, T, D) in processing order -> (T, B, 3U), as GRUCell; x is kept."""
        B, T, _ = x.shape
        U = self.units
        self.x = x  # (B, T, D)
        # the records (rnn_ref.layers.memory):
        self.h_prev = memory.take((T, B, U), x.dtype)  # (T, B, U): h_{t-1} as the step read it
        self.rec_h = memory.take((T, B, U), x.dtype) if self.reset_after else None  # (T, B, U): b[h]
        # a, then [z_pre, r_pre, c] once step t has run
        self.a = super().project(x, out=memory.take((T, B, 3 * U), x.dtype))  # (T, B, 3U)
        self.t = 0
        return self.a  # (T, B, 3U)

    def step(self, x_t, states):
        t = self.t
        (h,) = states  # (B, U), as the loop passed it (after the mask)
        U = self.units
        self.h_prev[t] = h
        pre = x_t  # (B, 3U): block t of self.a, turned into [z_pre, r_pre, c]
        if self.reset_after:
            rec = h @ self.recurrent_kernel  # (B, 3U)
            if self.recurrent_bias is not None:
                rec += self.recurrent_bias
            pre[:, :2 * U] += rec[:, :2 * U]  # z_pre, r_pre: a[z] + b[z], a[r] + b[r]
            z = self.recurrent_activation(pre[:, :U])  # (B, U)
            r = self.recurrent_activation(pre[:, U:2 * U])  # (B, U)
            pre[:, 2 * U:] += r * rec[:, 2 * U:]  # c = a[h] + r * b[h]
            self.rec_h[t] = rec[:, 2 * U:]
        else:
            pre[:, :2 * U] += h @ self.recurrent_kernel[:, :2 * U]  # z_pre, r_pre
            z = self.recurrent_activation(pre[:, :U])  # (B, U)
            r = self.recurrent_activation(pre[:, U:2 * U])  # (B, U)
            pre[:, 2 * U:] += (r * h) @ self.recurrent_kernel[:, 2 * U:]  # c
        candidate = self.activation(pre[:, 2 * U:])  # (B, U)
        h = z * h + (1 - z) * candidate  # (B, U)
        self.t = t + 1
        return h, [h]

    def gates_and_candidate(self, t):
        """z, r and h~ (B, U) each of step t, from its pre-activations."""
        U = self.units
        pre = self.a[t]  # (B, 3U)
        z = self.recurrent_activation(pre[:, :U])  # (B, U)
        r = self.recurrent_activation(pre[:, U:2 * U])  # (B, U)
        return z, r, self.activation(pre[:, 2 * U:])


@split_by_rows  # a large batch: row blocks in threads (rnn_ref.backward.rows)
def gru_vjp(inputs, kernel, recurrent_kernel, bias=None, *, activation="tanh", recurrent_activation="sigmoid",
            reset_after=True, return_sequences=False, return_state=False, go_backwards=False, mask=None,
            initial_state=None, zero_output_for_mask=False):
    """``(gru(...), backward)``: the output of ``rnn_ref.gru`` and its vector-Jacobian product.

    The arguments and options are ``gru``'s. backward(d_output) or, with ``return_state``,
    backward(d_output, d_h): d_output shaped like the output ((B, U) or (B, T, U); no B for
    one sequence), d_h (B, U); None means zeros. Returns ``GRUGrads``: the gradients of
    ``sum(output * d_output) [+ sum(h_final * d_h)]``.
    """
    act_name = activation_name(activation)
    rec_act_name = activation_name(recurrent_activation)
    x, unbatched = recurrence.batched_inputs(inputs)  # (B, T, D)
    reset_after = _checks.flag("reset_after", reset_after)
    B, T, D = x.shape
    cell = _RecordingGRUCell(kernel, recurrent_kernel, bias, activation, recurrent_activation, reset_after, D,
                             x.dtype)
    # The forward pass: gru's own loop, with the recording cell.
    out = recurrence.run(cell, x, state_names=STATES, unbatched=unbatched, return_sequences=return_sequences,
                         return_state=return_state, go_backwards=go_backwards, mask=mask,
                         initial_state=initial_state, zero_output_for_mask=zero_output_for_mask)
    U, dtype = cell.units, x.dtype
    keep = processing_keep(mask, B, T, unbatched, go_backwards)  # (B, T), processing order
    R = cell.recurrent_kernel  # (U, 3U)
    # kernel.T and the blocks of recurrent_kernel.T, contiguous: a product with a transposed view is slower.
    W_T, R_T = np.ascontiguousarray(cell.kernel.T), np.ascontiguousarray(R.T)  # (3U, D), (3U, U)
    R_zr_T, R_h_T = np.ascontiguousarray(R_T[:2 * U]), np.ascontiguousarray(R_T[2 * U:])  # (2U, U), (U, U)
    call = f"gru(return_sequences={return_sequences}, return_state={return_state})"
    edges = dict(return_sequences=return_sequences, zero_output_for_mask=zero_output_for_mask)

    def backward(*cotangents):
        """d_output (B, T, U) or (B, U) [, d_h (B, U)] -> GRUGrads."""
        d_out, (dh,), do = final_cotangents(cotangents, call=call, state_names=("d_h",),
                                            return_sequences=return_sequences, return_state=return_state,
                                            T=T, B=B, U=U, unbatched=unbatched, dtype=dtype)
        d_x = np.empty((B, T, D), dtype=dtype)  # (B, T, D), processing order
        # sum_t x_t.T @ da_t (D, 3U) with dx_t = da_t @ kernel.T and sum_t da_t (the input bias);
        # with reset_after sum_t h_{t-1}.T @ db_t (U, 3U) and sum_t db_t (the recurrent bias),
        # else sum_t [h_{t-1}, r_t h_{t-1}].T @ [d_zr_t, dc_t] by blocks: a chunk of steps at a
        # time (step_sums)
        kernel_sums = StepSums(B, D, 3 * U, dtype, T, project=W_T, out=d_x, bias=True)
        if reset_after:
            recurrent_sums = StepSums(B, U, 3 * U, dtype, T, bias=True)
        else:
            gate_sums, candidate_sums = StepSums(B, U, 2 * U, dtype, T), StepSums(B, U, U, dtype, T)

        def gates_vjp(t, z, r, dz, dr):
            """(B, U) each -> the gates' pre-activations' cotangent (B, 2U); z and r apart, as the
            forward applied sigma to each (softmax acts on one gate's U units)."""
            pre = cell.a[t]  # (B, 3U)
            return np.concatenate([activation_vjp(rec_act_name, pre[:, :U], z, dz),
                                   activation_vjp(rec_act_name, pre[:, U:2 * U], r, dr)], axis=1)

        for t in reversed(range(T)):
            dy, _, (dh,), do = step_edges(t, keep, [dh], do, d_out, **edges)  # (B, U) each

            h_prev = cell.h_prev[t]  # (B, U)
            z, r, candidate = cell.gates_and_candidate(t)  # (B, U) each
            # y_t = z * h_{t-1} + (1 - z) * h~
            dz = dy * (h_prev - candidate)  # (B, U)
            d_candidate = dy * (1 - z)  # (B, U)
            dh = dh + dy * z  # (B, U): of h_{t-1}, the direct path
            dc = activation_vjp(act_name, cell.a[t, :, 2 * U:], candidate, d_candidate)  # (B, U)
            if reset_after:
                rec_h = cell.rec_h[t]  # (B, U): b[h] = h_{t-1} @ recurrent_kernel[:, h] + recurrent bias
                dr = dc * rec_h  # (B, U): c = a[h] + r * b[h]
                d_zr_pre = gates_vjp(t, z, r, dz, dr)  # (B, 2U)
                da = np.concatenate([d_zr_pre, dc], axis=1)  # (B, 3U): of a = x_t @ kernel + bias[0]
                db = np.concatenate([d_zr_pre, dc * r], axis=1)  # (B, 3U): of b = h_{t-1} @ R + bias[1]
                recurrent_sums.add(h_prev, db)
                dh = dh + db @ R_T  # (B, U)
            else:
                d_rh = dc @ R_h_T  # (B, U): of r * h_{t-1}
                dr = d_rh * h_prev  # (B, U)
                dh = dh + d_rh * r  # (B, U)
                d_zr_pre = gates_vjp(t, z, r, dz, dr)  # (B, 2U)
                da = np.concatenate([d_zr_pre, dc], axis=1)  # (B, 3U): of a = x_t @ kernel + bias
                gate_sums.add(h_prev, d_zr_pre)
                candidate_sums.add(r * h_prev, dc)
                dh = dh + d_zr_pre @ R_zr_T  # (B, U)
            kernel_sums.add(cell.x[:, t], da, t)
        # What is left in do belongs to o_{-1}, the constant zeros before the first step.
        d_kernel, d_input_bias = kernel_sums.done()  # (D, 3U), (3U,)
        if reset_after:
            d_recurrent, d_recurrent_bias = recurrent_sums.done()  # (U, 3U), (3U,)
        else:
            d_recurrent = np.concatenate([gate_sums.done()[0], candidate_sums.done()[0]], axis=1)  # (U, 3U)

        if go_backwards:
            d_x = d_x[:, ::-1]  # (B, T, D), input order
        if unbatched:
            d_x, dh = d_x[0], dh[0]  # (T, D), (U,)
        if bias is None:
            d_bias = None
        elif reset_after:
            d_bias = np.stack([d_input_bias, d_recurrent_bias])  # (2, 3U)
        else:
            d_bias = d_input_bias  # (3U,)
        return GRUGrads(
            inputs=np.ascontiguousarray(d_x),
            kernel=d_kernel,
            recurrent_kernel=d_recurrent,
            bias=d_bias,
            initial_state=like_given(initial_state, dh),
        )

    return out, parallel.blas_held_to_one_thread(backward)  # the loop's products: one BLAS thread


# Small helpers, the same as rnn_ref.backward's private ones (copied, not imported).
