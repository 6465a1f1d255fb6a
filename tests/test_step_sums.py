"""``rnn_ref.backward.step_sums.StepSums``: a backward loop's weight gradients a chunk of steps at
a time equal the step-by-step sums, and each layer's vjp still matches Keras when every chunk
is one step or a few (several flushes; the layer tests' short sequences fit in one chunk).

Exactness: the unit test draws small integers in float64, so every sum is exact in any order
and the chunked totals must equal the direct ones bit for bit. Mutants: the last, partial
chunk never added (no final flush), and a chunk's projections written to the steps in the
wrong order; both must be caught.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnn_ref.backward import step_sums
from rnn_ref.backward.step_sums import StepSums


def _loop(B, P, Q, R, T, chunk_bytes, monkeypatch, *, flush=True, background=False, sums_class=StepSums):
    monkeypatch.setattr(step_sums, "CHUNK_BYTES", chunk_bytes)
    rng = np.random.default_rng(B * 100 + T)
    a = rng.integers(-3, 4, (T, B, P)).astype(np.float64)  # (T, B, P)
    b = rng.integers(-3, 4, (T, B, Q)).astype(np.float64)  # (T, B, Q)
    W = rng.integers(-3, 4, (Q, R)).astype(np.float64)  # (Q, R)
    out = np.full((B, T, R), np.nan)
    sums = sums_class(B, P, Q, np.float64, T, project=W, out=out, bias=True, background=background)
    for t in reversed(range(T)):  # as a backward loop
        sums.add(a[t], b[t], t)
    if flush:
        sums.done()
    return sums, a, b, W, out


def check_sums(sums, a, b, W, out):
    T = a.shape[0]
    np.testing.assert_array_equal(sums.total, sum(a[t].T @ b[t] for t in range(T)))
    np.testing.assert_array_equal(sums.bias_total, b.sum(axis=(0, 1)))
    np.testing.assert_array_equal(out, np.swapaxes(b @ W, 0, 1))  # out[:, t] = b_t @ W


@pytest.mark.parametrize("background", [False, True], ids=["here", "in the background"])
@pytest.mark.parametrize("chunk_bytes", [1, 3 * 3 * 9 * 8, 10**9], ids=["one step", "a few steps", "all steps"])
@pytest.mark.parametrize("B, T", [(1, 7), (3, 10), (2, 1)])
def test_chunked_sums_equal_the_step_by_step_sums(B, T, chunk_bytes, background, monkeypatch):
    check_sums(*_loop(B, 4, 5, 2, T, chunk_bytes, monkeypatch, background=background))


def test_the_background_is_used_when_a_core_is_free(monkeypatch):
    monkeypatch.setattr(step_sums, "CHUNK_BYTES", 1)
    monkeypatch.setattr(step_sums.parallel, "second_core_free", lambda rows: rows < 10)
    assert StepSums(3, 4, 5, np.float64, 10).background
    assert not StepSums(30, 4, 5, np.float64, 10).background  # the rows already use both cores
    assert not StepSums(3, 4, 5, np.float64, 1).background  # one chunk: nothing to overlap


class _NoWait(StepSums):
    """The mutant: the full buffer's chunk goes to the background and the loop goes on filling
    the same buffer, without waiting for the chunk before (a slow background shows it)."""

    def flush(self):
        if not self.steps:
            return
        chunk, self.steps = (self.a, self.b, list(self.steps)), []
        self.pending = step_sums.parallel.in_background(self._slow_add, *chunk)

    def _slow_add(self, *chunk):
        import time  # noqa: PLC0415

        time.sleep(0.01)
        self._add(*chunk)


def test_a_chunk_overwritten_while_in_the_background_is_caught(monkeypatch):
    with pytest.raises(AssertionError):
        check_sums(*_loop(3, 4, 5, 2, 10, 3 * 3 * 9 * 8, monkeypatch, background=True, sums_class=_NoWait))


def test_a_missing_final_flush_is_caught(monkeypatch):
    sums, a, b, W, out = _loop(3, 4, 5, 2, 10, 3 * 3 * 9 * 8, monkeypatch, flush=False)
    assert sums.C < 10 and 10 % sums.C  # a partial chunk is left in the buffer
    assert not np.array_equal(sums.total, sum(a[t].T @ b[t] for t in range(10)))


def test_projections_in_the_wrong_order_are_caught(monkeypatch):
    real_swapaxes = np.swapaxes
    monkeypatch.setattr(step_sums.np, "swapaxes", lambda x, i, j: real_swapaxes(x[::-1], i, j))
    sums, a, b, W, out = _loop(3, 4, 5, 2, 10, 3 * 3 * 9 * 8, monkeypatch)
    assert not np.array_equal(out, real_swapaxes(b @ W, 0, 1))


@pytest.mark.keras
@pytest.mark.parametrize("chunk_bytes", [1, 2000], ids=["one step a chunk", "a few steps a chunk"])
@pytest.mark.parametrize("layer", ["simple_rnn", "lstm", "gru", "gru_reset_before"])
def test_each_layer_vjp_matches_keras_over_several_chunks(layer, chunk_bytes, monkeypatch):
    pytest.importorskip("keras")
    import test_vjp
    import test_vjp_gru
    import test_vjp_lstm

    monkeypatch.setattr(step_sums, "CHUNK_BYTES", chunk_bytes)
    common = dict(B=3, T=9, dtype="float32", return_sequences=True, return_state=True, go_backwards=True,
                  zero_output_for_mask=False, unbatched=False, mask=None)
    if layer == "simple_rnn":
        test_vjp.check_simple_rnn(test_vjp.fixed_case(**common, initial_state="array", seed=31))
    elif layer == "lstm":
        test_vjp_lstm.check_lstm(test_vjp_lstm.fixed_case(**common, initial_state=True, seed=32))
    else:
        test_vjp_gru.check(test_vjp_gru.grid_case(2, "float32")._replace(
            **common, initial_state="list", reset_after=layer == "gru", use_bias=True, seed=33))
