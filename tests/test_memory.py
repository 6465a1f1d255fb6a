"""Memory reused from one call to the next (rnn_ref.layers.memory): a vjp's backward function
still alive keeps its records to itself, what a vjp returns is its own, a layer's result still
alive keeps its memory, and idle memory is reused and bounded."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import rnn_ref
from rnn_ref.layers import memory
from test_projection import check_results_kept

D, U, T = 3, 5, 9  # input_dim != units
LAYERS = {"simple_rnn": (rnn_ref.simple_rnn, 1), "lstm": (rnn_ref.lstm, 4), "gru": (rnn_ref.gru, 3)}


def layer_weights(name, rng):
    fn, G = LAYERS[name]
    kernel = (0.5 * rng.standard_normal((D, G * U))).astype(np.float32)
    recurrent = (0.5 * rng.standard_normal((U, G * U))).astype(np.float32)
    bias = (0.3 * rng.standard_normal((2, G * U) if G == 3 else G * U)).astype(np.float32)  # non-zero
    return fn, (kernel, recurrent, bias)


def grads_equal(a, b, what):
    for name in a._fields:
        x, y = getattr(a, name), getattr(b, name)
        if x is None:
            assert y is None
            continue
        for i, (p, q) in enumerate(zip(x, y) if isinstance(x, list) else [(x, y)]):
            np.testing.assert_array_equal(p, q, err_msg=f"{what}: gradient {name}[{i}]")


def check_live_backward_keeps_its_records(name, B):
    """A vjp's backward, still alive while two more vjps of the same shapes run (the second's
    backward dropped before the third, so its records are reused), gives the gradients it gives
    alone, bit for bit."""
    rng = np.random.default_rng(11)
    fn, weights = layer_weights(name, rng)
    options = dict(return_sequences=True)
    x1, x2 = (rng.standard_normal((B, T, D)).astype(np.float32) for _ in range(2))
    d = rng.standard_normal((B, T, U)).astype(np.float32)
    alone = rnn_ref.vjp(fn, x1, *weights, **options)[1](d)

    _, backward = rnn_ref.vjp(fn, x1, *weights, **options)
    _, second = rnn_ref.vjp(fn, x2, *weights, **options)
    del second
    gc.collect()
    _, third = rnn_ref.vjp(fn, x2, *weights, **options)
    grads_equal(backward(d), alone, f"{name}, B = {B}, with two more vjps run meanwhile")
    del third


def check_results_are_their_own(name, B):
    """A vjp's output and final states hold no record: once its backward is dropped, every record
    is idle, the results still alive; and they stay what they were after another vjp of the
    same shapes has run (and reused the records)."""
    rng = np.random.default_rng(12)
    fn, weights = layer_weights(name, rng)
    options = dict(return_sequences=False, return_state=True)
    memory.release()
    out, backward = rnn_ref.vjp(fn, rng.standard_normal((B, T, D)).astype(np.float32), *weights, **options)
    kept = [np.array(a) for a in out]
    del backward
    gc.collect()
    idle = memory.kept_bytes()
    rnn_ref.vjp(fn, rng.standard_normal((B, T, D)).astype(np.float32), *weights, **options)
    for i, (a, k) in enumerate(zip(out, kept)):
        np.testing.assert_array_equal(a, k, err_msg=f"{name}, B = {B}: result {i} changed by the next vjp")
    memory.release()
    rnn_ref.vjp(fn, rng.standard_normal((B, T, D)).astype(np.float32), *weights, **options)
    gc.collect()
    assert memory.kept_bytes() == idle > 0, f"{name}, B = {B}: the results kept a record from reuse"


@pytest.mark.parametrize("B", [2, 200])  # one thread; two row blocks in threads (rnn_ref.backward.rows)
@pytest.mark.parametrize("name", LAYERS)
def test_a_live_backward_keeps_its_records(name, B):
    check_live_backward_keeps_its_records(name, B)


@pytest.mark.parametrize("B", [2, 200])
@pytest.mark.parametrize("name", LAYERS)
def test_a_vjps_results_are_its_own(name, B):
    check_results_are_their_own(name, B)


@pytest.mark.parametrize("B", [3, 200])
def test_a_merged_sequence_still_alive_keeps_its_memory(B):
    check_merged_kept(B)


def check_merged_kept(B):
    """A Bidirectional's merged sequence (and the directions' sequences beneath it), kept while
    another call of the same shapes runs (and the arrays of a call in between, dropped, are
    reused), stays what it was. A single layer's result sequence: tests/test_projection.py's
    ``check_results_kept``, against kept memory too (below)."""
    rng = np.random.default_rng(13)
    _, weights = layer_weights("lstm", rng)
    other = layer_weights("lstm", rng)[1]

    def call(x):
        return rnn_ref.bidirectional(rnn_ref.lstm, x, weights, other, return_sequences=True)

    first = call(rng.standard_normal((B, T, D)).astype(np.float32))
    kept = np.array(first)
    call(rng.standard_normal((B, T, D)).astype(np.float32))
    gc.collect()
    call(rng.standard_normal((B, T, D)).astype(np.float32))
    np.testing.assert_array_equal(first, kept, err_msg=f"bidirectional, B = {B}: a result changed by later calls")


def test_idle_records_are_reused_and_bounded(monkeypatch):
    memory.release()
    first = memory.take((4, 6), np.float32)
    address = first.__array_interface__["data"][0]
    view = first[1:, ::2].T  # a view outlives the array it was taken from
    del first
    gc.collect()
    assert memory.kept_bytes() == 0, "given back while a view of it was alive"
    view[:] = 1.0
    del view
    gc.collect()
    assert memory.kept_bytes() == 4 * 6 * 4
    again = memory.take((4, 6), np.float32)
    assert again.__array_interface__["data"][0] == address, "the idle record was not reused"
    assert memory.kept_bytes() == 0
    other = memory.take((4, 6), np.float32)  # while `again` is in use: other memory
    assert other.__array_interface__["data"][0] != address
    del again, other
    monkeypatch.setattr(memory, "KEPT_BYTES", 4 * 6 * 4)
    memory.release()
    held = [memory.take((4, 6), np.float32) for _ in range(3)]
    del held
    gc.collect()
    assert memory.kept_bytes() == 4 * 6 * 4, "more idle records kept than KEPT_BYTES"
    memory.release()
    assert memory.kept_bytes() == 0


def check_recent_memory_kept(monkeypatch):
    """With idle memory at ``KEPT_BYTES``, what is given back now is kept and the least
    recently given back goes: a loop of new shapes reuses its memory after other shapes filled
    the idle memory (the forward sections of a program, then its vjps)."""
    monkeypatch.setattr(memory, "KEPT_BYTES", 2 * 96)
    memory.release()
    stale = [memory.take((4, 6), np.float32), memory.take((6, 4), np.float32)]  # 96 bytes each
    del stale
    gc.collect()
    now = memory.take((2, 12), np.float32)
    del now
    gc.collect()
    again = memory.take((2, 12), np.float32)  # takes the idle (2, 12) memory, if it was kept
    assert memory.kept_bytes() == 96, "memory of the shape in use now was not kept"
    del again
    memory.release()


def test_the_memory_in_use_now_is_kept(monkeypatch):
    check_recent_memory_kept(monkeypatch)


def test_idle_memory_that_never_makes_room_is_caught(monkeypatch):
    """The mutant: idle memory refused once ``KEPT_BYTES`` is reached, so the first shapes a
    program met hold it for good."""
    def refuse_when_full(entry):
        if memory._kept + entry[1].nbytes <= memory.KEPT_BYTES:
            memory._idle.append(entry)
            memory._kept += entry[1].nbytes

    monkeypatch.setattr(memory, "_give_back", refuse_when_full)
    with pytest.raises(AssertionError, match="in use now was not kept"):
        check_recent_memory_kept(monkeypatch)


# ---------------------------------------------------------------------------
# Mutants: each check above fails on a plausible bug
# ---------------------------------------------------------------------------

def shared_records(monkeypatch):
    """A pool that hands out the same memory for a shape whatever still uses it."""
    handed = {}

    def take(shape, dtype):
        key = (tuple(shape), np.dtype(dtype).str)
        if key not in handed:
            handed[key] = np.empty(shape, dtype=dtype)
        return handed[key]

    monkeypatch.setattr(memory, "take", take)


@pytest.mark.parametrize("B", [2, 200])
def test_records_shared_by_live_backwards_are_caught(monkeypatch, B):
    shared_records(monkeypatch)
    with pytest.raises(AssertionError, match="with two more vjps run meanwhile"):
        check_live_backward_keeps_its_records("lstm", B)


def test_a_merged_sequence_in_shared_memory_is_caught(monkeypatch):
    shared_records(monkeypatch)
    with pytest.raises(AssertionError, match="changed by later calls"):
        check_merged_kept(3)


def test_a_projection_buffer_result_is_still_caught_with_kept_memory(monkeypatch):
    """The projection-buffer check (tests/test_projection.py) keeps its teeth now that results
    are in kept memory: memory shared whatever uses it is caught there too."""
    shared_records(monkeypatch)
    with pytest.raises(AssertionError, match="changed by the next call"):
        check_results_kept("lstm", 3)


@pytest.mark.parametrize("name", ["simple_rnn", "lstm"])  # their final states are blocks of a record
def test_final_states_left_in_the_records_are_caught(monkeypatch, name):
    monkeypatch.setattr(memory, "own_states", lambda out, return_state: out)
    with pytest.raises(AssertionError, match="kept a record from reuse"):
        check_results_are_their_own(name, 2)
    shared_records(monkeypatch)  # and were records shared, the next vjp would change them
    with pytest.raises(AssertionError, match="changed by the next vjp"):
        check_results_are_their_own(name, 2)


def test_a_record_given_back_while_a_view_lives_is_caught(monkeypatch):
    """The mutant: records made as plain arrays, given back when that array goes (a view of it,
    such as a step's state, would still be alive)."""
    import weakref  # noqa: PLC0415

    def take(shape, dtype):
        block = np.empty(shape, dtype=dtype)
        array = block[...]  # a view: its own views refer to `block`, not to it
        weakref.finalize(array, memory._give_back, ((tuple(shape), np.dtype(dtype).str), block))
        return array

    monkeypatch.setattr(memory, "take", take)
    with pytest.raises(AssertionError, match="given back while a view of it was alive"):
        test_idle_records_are_reused_and_bounded(monkeypatch)


def test_records_in_a_reference_cycle_come_back_when_it_is_collected():
    check_cycle_collected()


def test_memory_never_given_back_is_caught(monkeypatch):
    """The mutant: memory that never becomes idle again (no reuse at all)."""
    monkeypatch.setattr(memory, "_give_back", lambda entry: None)
    with pytest.raises(AssertionError, match="not given back once the cycle was collected"):
        check_cycle_collected()


def check_cycle_collected():
    """A backward function kept in a cycle (an object that refers to itself) gives its records
    back when the garbage collector frees the cycle, not before."""
    rng = np.random.default_rng(14)
    fn, weights = layer_weights("lstm", rng)
    x = rng.standard_normal((2, T, D)).astype(np.float32)
    memory.release()
    gc.collect()

    class Holder:
        pass

    holder = Holder()
    holder.me = holder
    holder.out, holder.backward = rnn_ref.vjp(fn, x, *weights)
    gc.disable()  # no automatic collection between the two checks
    try:
        del holder
        assert memory.kept_bytes() == 0, "given back while the cycle still held them"
        gc.collect()
        assert memory.kept_bytes() > 0, "not given back once the cycle was collected"
    finally:
        gc.enable()
        memory.release()
