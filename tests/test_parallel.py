"""The batch split of ``rnn_ref.layers.parallel``: split and unsplit give the same numbers.

Rows of a batch are independent, so the loop run on row blocks in threads must
give what it gives on the whole batch, up to the rounding of the BLAS's
blocking. Every option of the loop is checked split against unsplit (masks,
initial states, go_backwards, return_sequences, return_state,
zero_output_for_mask, one sequence), for SimpleRNN, LSTM and GRU, as functions
and in a model (stateful layers, Bidirectional). Also: the switch off works,
the BLAS limit holds inside a split call and is restored after it, and the
comparison catches a split that mis-orders its blocks or drops a row.

No timing here; the figures are in docs/bench.md, section (b).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

threadpoolctl = pytest.importorskip("threadpoolctl")

from rnn_ref import bidirectional, gru, lstm, simple_rnn, vjp  # noqa: E402
from rnn_ref.layers import parallel, recurrence  # noqa: E402
from rnn_ref.models.model import Dense, Embedding, NumpyModel  # noqa: E402
from rnn_ref.models.recurrent import GRU, LSTM, Bidirectional, SimpleRNN  # noqa: E402

B, T, D, U = 7, 9, 5, 4  # B odd: the blocks are 3 and 4 rows (or 2, 2 and 3)

FUNCTIONS = {  # name: (function, gate blocks, number of states)
    "simple_rnn": (simple_rnn, 1, 1),
    "lstm": (lstm, 4, 2),
    "gru": (gru, 3, 1),
}


def weights(G, dtype, seed=0):
    """kernel, recurrent kernel and bias of G gate blocks (a GRU's bias (2, 3U): reset_after)."""
    rng = np.random.default_rng(seed)
    kernel = (0.5 * rng.standard_normal((D, G * U))).astype(dtype)
    recurrent = (0.5 * rng.standard_normal((U, G * U))).astype(dtype)
    bias = (0.3 * rng.standard_normal((2, G * U) if G == 3 else G * U)).astype(dtype)
    return kernel, recurrent, bias


def inputs(dtype, seed=1, batch=B):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, T, D)).astype(dtype)
    mask = rng.random((batch, T)) < 0.7
    mask[0, :3] = False  # a row starting with padding
    mask[-1, -2:] = False  # the last row ending with padding
    return x, mask


@pytest.fixture
def split(monkeypatch):
    """``split(n)``: from now on split every batch of 2 rows or more into up to n blocks."""
    monkeypatch.setattr(parallel, "MIN_ROWS", 2)

    def use(n):
        parallel.set_threads(n)

    yield use
    parallel.set_threads(None)


def call_both(split, fn, *args, threads=2, **kwargs):
    """``fn(*args, **kwargs)`` unsplit, then split into up to ``threads`` blocks."""
    split(1)
    whole = fn(*args, **kwargs)
    split(threads)
    return whole, fn(*args, **kwargs)


def assert_agree(whole, parts, dtype):
    """Same structure, shapes and numbers within rounding."""
    whole = whole if isinstance(whole, tuple) else (whole,)
    parts = parts if isinstance(parts, tuple) else (parts,)
    assert len(whole) == len(parts)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    for a, b in zip(whole, parts):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(b, a, **tol)


CASES = [
    dict(),
    dict(return_sequences=True),
    dict(return_state=True),
    dict(mask=True, return_sequences=True, return_state=True),
    dict(mask=True, zero_output_for_mask=True, return_sequences=True),
    dict(initial_state=True, return_state=True),
    dict(go_backwards=True, mask=True, initial_state=True, return_sequences=True, return_state=True),
]


def case_call(case, dtype, n_states):
    """The inputs and the keyword options of ``case`` (its mask and random initial states)."""
    x, mask = inputs(dtype)
    options = {k: v for k, v in case.items() if k not in ("mask", "initial_state")}
    if case.get("mask"):
        options["mask"] = mask
    if case.get("initial_state"):
        rng = np.random.default_rng(2)
        states = [rng.standard_normal((B, U)).astype(dtype) for _ in range(n_states)]
        options["initial_state"] = states if n_states > 1 else states[0]
    return x, options


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(c) or "plain")
@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("threads", [2, 3])
def test_split_agrees_with_unsplit(split, name, case, dtype, threads):
    fn, G, n_states = FUNCTIONS[name]
    x, options = case_call(case, dtype, n_states)
    whole, parts = call_both(split, fn, x, *weights(G, dtype), threads=threads, **options)
    assert_agree(whole, parts, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(c) or "plain")
@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("steps", [1, 4])
def test_projection_in_chunks_agrees(split, monkeypatch, name, case, dtype, steps):
    """The input projection a few steps at a time (4: T = 9 leaves a last chunk of 1) gives the
    numbers of the whole projection at once, split or not."""
    fn, G, n_states = FUNCTIONS[name]
    x, options = case_call(case, dtype, n_states)
    w = weights(G, dtype)
    split(1)
    whole = fn(x, *w, **options)  # T = 9 steps of a few rows: one chunk
    chunks = []
    monkeypatch.setattr(parallel, "projection_chunk", lambda cell, rows: chunks.append(rows) or steps)
    in_chunks = fn(x, *w, **options)
    assert chunks == [B]
    assert_agree(whole, in_chunks, dtype)
    split(2)
    in_chunks_split = fn(x, *w, **options)
    assert sorted(chunks) == [3, 4, B]
    assert_agree(whole, in_chunks_split, dtype)


def test_projection_chunk_size():
    from rnn_ref.layers.simple_rnn import SimpleRNNCell  # noqa: PLC0415

    cell = SimpleRNNCell(*weights(1, np.float32), "tanh", D, np.float32)
    assert parallel.projection_chunk(cell, 1) == parallel.CHUNK_BYTES // (U * 4)
    assert parallel.projection_chunk(cell, 10**9) == 1  # at least one step


@pytest.mark.parametrize("name", FUNCTIONS)
def test_one_sequence(split, name):
    fn, G, n_states = FUNCTIONS[name]
    x, mask = inputs(np.float32)
    whole, parts = call_both(split, fn, x[1], *weights(G, np.float32), mask=mask[1], return_sequences=True,
                             return_state=True)
    assert_agree(whole, parts, np.float32)
    assert parts[0].shape == (T, U)


def test_the_split_happens_in_threads_with_one_blas_thread(split, monkeypatch):
    """The spy sees two blocks, in two threads, each with BLAS on one thread; after the call the
    BLAS has its threads back."""
    seen = []
    real_loop = recurrence.loop

    def spy(cell, x, *args, **kwargs):
        blas = [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
        seen.append((threading.get_ident(), x.shape[0], blas))
        return real_loop(cell, x, *args, **kwargs)

    monkeypatch.setattr(recurrence, "loop", spy)
    before = threadpoolctl.threadpool_info()
    split(2)
    simple_rnn(inputs(np.float32)[0], *weights(1, np.float32))
    assert sorted(rows for _, rows, _ in seen) == [3, 4]
    assert len({tid for tid, _, _ in seen}) == 2
    assert all(blas == [1] * len(blas) for _, _, blas in seen)
    assert threadpoolctl.threadpool_info() == before


def test_blas_limit_restored_after_an_error(split):
    before = threadpoolctl.threadpool_info()
    split(2)
    x, _ = inputs(np.float32)
    kernel, recurrent, bias = weights(1, np.float32)
    with pytest.raises(ValueError):
        simple_rnn(x, kernel, recurrent, bias, activation="no such activation")
    bad_mask = np.ones((B, T + 1), bool)
    with pytest.raises(ValueError):
        simple_rnn(x, kernel, recurrent, bias, mask=bad_mask)

    def fails_in_the_second_block(z):  # an activation that raises in the pool's thread only
        if threading.current_thread() is not threading.main_thread():
            raise FloatingPointError("raised in a block")
        return np.tanh(z)

    with pytest.raises(FloatingPointError, match="raised in a block"):
        simple_rnn(x, kernel, recurrent, bias, activation=fails_in_the_second_block)
    assert threadpoolctl.threadpool_info() == before
    assert parallel._limit_users == 0


@pytest.mark.parametrize("switch", ["env", "function"])
def test_switched_off_nothing_is_split(split, monkeypatch, switch):
    calls = []
    real_loop = recurrence.loop
    monkeypatch.setattr(recurrence, "loop", lambda cell, x, *a, **k: calls.append(x.shape[0]) or real_loop(cell, x, *a, **k))
    split(None)
    if switch == "env":
        monkeypatch.setenv("RNN_REF_THREADS", "1")
    else:
        parallel.set_threads(1)
    assert parallel.threads() == 1
    simple_rnn(inputs(np.float32)[0], *weights(1, np.float32))
    assert calls == [B]


def test_threads_setting(monkeypatch):
    try:
        parallel.set_threads(3)
        assert parallel.threads() == 3
        with pytest.raises(ValueError):
            parallel.set_threads(0)
    finally:
        parallel.set_threads(None)
    monkeypatch.setenv("RNN_REF_THREADS", "2")
    assert parallel.threads() == 2
    monkeypatch.setenv("RNN_REF_THREADS", "two")
    with pytest.raises(ValueError, match="RNN_REF_THREADS"):
        parallel.threads()


@pytest.mark.parametrize("batch", range(1, 12))
@pytest.mark.parametrize("n", [1, 2, 3, 8])
def test_blocks_cover_every_row_once_in_order(batch, n):
    rows = parallel.blocks(batch, n, min_rows=2)
    covered = np.concatenate([np.arange(batch)[r] for r in rows])
    assert covered.tolist() == list(range(batch))
    assert len(rows) <= n and all(r.stop - r.start >= min(2, batch) for r in rows)


def test_recording_cells_are_not_split(split):
    """The recording cells of the backward pass keep per-step records of their whole batch:
    ``run_loop`` runs them unsplit, so one vjp loop (``simple_rnn_vjp`` without the row blocks
    of ``rnn_ref.backward.rows``, which tests/test_vjp_rows.py checks) gives the same gradients
    with the split on."""
    from rnn_ref.backward.simple_rnn import simple_rnn_vjp  # noqa: PLC0415

    x, mask = inputs(np.float64)
    w = weights(1, np.float64)
    d_out = np.random.default_rng(3).standard_normal((B, U))
    grads = []
    for n in (1, 2):
        split(n)
        _, backward = simple_rnn_vjp.__wrapped__(x, *w, mask=mask)
        grads.append(backward(d_out))
    for name in ("inputs", "kernel", "recurrent_kernel", "bias"):
        np.testing.assert_array_equal(getattr(grads[0], name), getattr(grads[1], name))


def model(stateful=False, seed=0):
    """Embedding -> SimpleRNN(stateful) -> Bidirectional(LSTM) -> GRU -> Dense, masks on."""
    rng = np.random.default_rng(seed)
    f32 = lambda *s: (0.4 * rng.standard_normal(s)).astype(np.float32)  # noqa: E731
    return NumpyModel([
        Embedding("emb", f32(20, D), mask_zero=True),
        SimpleRNN("rnn", f32(D, U), f32(U, U), f32(U), return_sequences=True, stateful=stateful),
        Bidirectional("bi", LSTM("fw", f32(U, 4 * U), f32(U, 4 * U), f32(4 * U), return_sequences=True),
                      LSTM("bw", f32(U, 4 * U), f32(U, 4 * U), f32(4 * U), return_sequences=True, go_backwards=True)),
        GRU("gru", f32(2 * U, 3 * U), f32(U, 3 * U), f32(2, 3 * U), stateful=stateful),
        Dense("out", f32(U, 1), f32(1), activation="sigmoid"),
    ])


@pytest.mark.parametrize("stateful", [False, True])
def test_model_split_agrees(split, stateful):
    ids = np.random.default_rng(4).integers(0, 20, size=(B, T))
    ids[2, :4] = 0  # padding
    results = []
    for n in (1, 2):
        split(n)
        m = model(stateful)
        results.append([m(ids), m(ids[:, ::-1])])  # a stateful model carries its states to the second call
    for whole, parts in zip(*results):
        assert_agree(whole, parts, np.float32)


# -- the comparison catches a wrong split ----------------------------------------

def _reversed_blocks(batch, n_threads, min_rows=None):
    return parallel_blocks(batch, n_threads, min_rows)[::-1]  # results put back in the wrong order


def _last_row_dropped(batch, n_threads, min_rows=None):
    rows = parallel_blocks(batch, n_threads, min_rows)
    return [*rows[:-1], slice(rows[-1].start, rows[-1].stop - 1)]


parallel_blocks = parallel.blocks


@pytest.mark.parametrize("mutant", [_reversed_blocks, _last_row_dropped])
@pytest.mark.parametrize("case", [dict(return_state=True), dict(return_sequences=True, return_state=True)],
                         ids=["state", "sequences"])
def test_a_wrong_split_is_caught(split, monkeypatch, mutant, case):
    monkeypatch.setattr(parallel, "blocks", mutant)
    x, _ = inputs(np.float32)
    whole, parts = call_both(split, simple_rnn, x, *weights(1, np.float32), **case)
    with pytest.raises(AssertionError):
        assert_agree(whole, parts, np.float32)


# -- a Bidirectional's two directions side by side --------------------------------------------


def _bidirectional_both_ways(monkeypatch, backward=False):
    """rnn_ref.bidirectional (or its vjp's gradients) with the directions one after the other, then
    side by side (every batch of 2 to 2 MIN_ROWS rows), on a masked LSTM with initial states."""
    monkeypatch.setattr(parallel, "MIN_SIDE_BY_SIDE_ROWS", 2)
    x, mask = inputs(np.float32, batch=6)
    fwd, bwd = weights(4, np.float32, seed=3), weights(4, np.float32, seed=4)
    h0 = [np.full((6, U), v, np.float32) for v in (0.1, -0.2, 0.3, -0.4)]
    kw = dict(merge_mode="concat", mask=mask, initial_state=h0, return_sequences=True, return_state=True)

    def run():
        if not backward:
            return bidirectional(lstm, x, fwd, bwd, **kw)
        out, back = vjp(bidirectional, lstm, x, fwd, bwd, **kw)
        g = back(np.ones_like(out[0]), *[None] * 4)
        return [g.inputs, *g.forward, *g.backward]

    parallel.set_threads(1)
    one_after_the_other = run()
    parallel.set_threads(2)
    try:
        return one_after_the_other, run()
    finally:
        parallel.set_threads(None)


@pytest.mark.parametrize("backward", [False, True], ids=["forward", "vjp"])
def test_directions_side_by_side_agree_bit_for_bit(monkeypatch, backward):
    before, after = _bidirectional_both_ways(monkeypatch, backward)
    for a, b in zip(before, after, strict=True):
        if a is not None:
            np.testing.assert_array_equal(a, b)


def test_directions_swapped_side_by_side_are_caught(monkeypatch):
    """A side_by_side that, when it runs them at once, hands back the other thread's result first."""
    real = parallel.side_by_side
    monkeypatch.setattr(parallel, "side_by_side",
                        lambda f, s, rows: real(f, s, rows)[::-1 if parallel.threads() > 1 else 1])
    before, after = _bidirectional_both_ways(monkeypatch)
    with pytest.raises(AssertionError):
        for a, b in zip(before, after):
            np.testing.assert_array_equal(a, b)
