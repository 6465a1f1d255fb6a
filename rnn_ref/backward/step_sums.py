"""A backward loop's weight gradients, a chunk of steps at a time.

Each weight's gradient is a sum over the steps, ``sum_t a_t.T @ b_t``: ``x_t.T @ dz_t`` for
the kernel, ``h_{t-1}.T @ dz_t`` for the recurrent kernel, with a_t (B, P) and b_t (B, Q).
None of them feeds the recurrence (only ``dz_t @ recurrent_kernel.T`` does), so the loop
need not compute them at each step: ``StepSums.add(a_t, b_t)`` copies the step's two arrays
into a buffer of ``C`` steps and, when it is full, adds one product of the C steps at once,
(C B, P).T @ (C B, Q). The same for the input gradient ``dx_t = dz_t @ kernel.T``
(``project``), and the bias's ``sum(dz_t)``. Per step that leaves two copies instead of three
or four products and an addition; the sums are the same up to the order in which the steps'
terms are added.

C is chosen so that one buffer holds about ``CHUNK_BYTES`` (2 MB: the cache still holds it
when the product reads it), at least one step. Measured (T = 250, D = 32, U = 100, float32,
median of 5), vjp forward and backward at B = 1: SimpleRNN 7.0 -> 2.4 ms, LSTM 25.9 -> 12.9
ms, GRU 20.9 -> 9.5 ms; at B = 32 no change (a step's time is its elementwise work there);
docs/bench.md, section (d) "again, after the backward loops changed".

When a call's rows leave the second core idle (``parallel.second_core_free``: fewer than
the 128 rows from which the loops split over the cores), the products of a full buffer run on
the background thread (``parallel.in_background``) while the loop fills a second buffer; one
chunk is in flight at a time, so the totals add the chunks in the same order, to the same
numbers. Measured (LSTM, T = 250, D = 32, U = 100, B = 32, median of 7): vjp 40.4 -> 33.9 ms.

Letters: B batch, T time steps, P and Q the columns of the two arrays of a step.
"""

from __future__ import annotations

import numpy as np

from rnn_ref.layers import memory
from rnn_ref.layers import parallel

#: Bytes of one buffer of steps (``StepSums``): about 2 MB.
CHUNK_BYTES = 2 * 2**20


def chunk_steps(B: int, width: int, itemsize: int, T: int) -> int:
    """Steps a buffer of ``width`` columns holds in about ``CHUNK_BYTES``, between 1 and T."""
    return max(1, min(T, CHUNK_BYTES // max(1, B * width * itemsize)))


class StepSums:
    """``total = sum_t a_t.T @ b_t`` over the steps ``add`` is given, in chunks of steps.

    a_t (B, P), b_t (B, Q); ``total`` (P, Q). With ``project`` (Q, R) and ``out`` (B, T, R),
    also ``out[:, t] = b_t @ project`` for the step ``t`` given to ``add``; with ``bias``, also
    ``bias_total = sum_t b_t.sum(axis=0)`` (Q,). ``done()`` after the last step gives the
    totals (they are complete only then). ``background``: a full chunk's products on the
    background thread (None: when ``parallel.second_core_free(B)`` and there is more than one
    chunk)."""

    def __init__(self, B: int, P: int, Q: int, dtype, T: int, *, project=None, out=None, bias: bool = False,
                 background: bool | None = None):
        self.C = chunk_steps(B, P + Q, np.dtype(dtype).itemsize, T)
        if background is None:
            background = self.C < T and parallel.second_core_free(B)
        # [((C, B, P), (C, B, Q))], filled in turn: kept from earlier loops' (rnn_ref.layers.memory)
        self.buffers = [(memory.take((self.C, B, P), dtype), memory.take((self.C, B, Q), dtype))
                        for _ in range(2 if background else 1)]
        self.a, self.b = self.buffers[0]  # the buffer being filled
        self.background = background
        self.pending = None  # the Future of the chunk in flight on the background thread
        self.steps = []  # the step of each buffered row block
        self.total = np.zeros((P, Q), dtype=dtype)  # (P, Q)
        self.bias_total = np.zeros(Q, dtype=dtype) if bias else None  # (Q,)
        self.project, self.out = project, out

    def add(self, a_t, b_t, t: int | None = None) -> None:
        """One step's a_t (B, P) and b_t (B, Q); ``t``: its step in ``out`` (with ``project``)."""
        n = len(self.steps)
        self.a[n] = a_t
        self.b[n] = b_t
        self.steps.append(t)
        if n + 1 == self.C:
            self.flush()

    def done(self) -> tuple:
        """After the last step: ``(total, bias_total)``, the buffered steps added first."""
        self.flush()
        self._wait()
        return self.total, self.bias_total

    def flush(self) -> None:
        """Add the buffered steps to the totals (and write their projections): here, or on the
        background thread after the chunk in flight, while ``add`` fills the other buffer."""
        if not self.steps:
            return
        chunk = (self.a, self.b, self.steps)
        self.steps = []
        if not self.background:
            self._add(*chunk)
            return
        self._wait()  # one chunk in flight at a time: the totals add the chunks in order
        self.pending = parallel.in_background(self._add, *chunk)
        self.buffers.reverse()
        self.a, self.b = self.buffers[0]  # the other buffer, free since its chunk was added

    def _wait(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()  # a failure in the background is raised here

    def _add(self, a_buffer, b_buffer, steps) -> None:
        n = len(steps)
        _, B, P = a_buffer.shape
        Q = b_buffer.shape[2]
        a, b = a_buffer[:n].reshape(n * B, P), b_buffer[:n].reshape(n * B, Q)  # (n B, P), (n B, Q): views
        self.total += a.T @ b  # (P, Q)
        if self.bias_total is not None:
            self.bias_total += b.sum(axis=0)  # (Q,)
        if self.project is not None:
            projected = (b @ self.project).reshape(n, B, -1)  # (n, B, R): one product of the n steps
            first, last = steps[0], steps[-1]
            if steps == list(range(first, last - 1, -1)):  # consecutive steps, backwards
                self.out[:, last:first + 1] = np.swapaxes(projected[::-1], 0, 1)  # (B, n, R)
            else:
                for k, t in enumerate(steps):
                    self.out[:, t] = projected[k]  # (B, R)
