"""The input projection gives each step the same numbers however the steps are cut.

``rnn_ref.layers.recurrence.input_projection`` computes ``x_t @ kernel + bias`` for the
steps it is given. The forward loops give it the chunks of ``parallel.projection_chunk``;
the recording loops of the vjps give it all T steps at once. BLAS may round a product
differently with its shape (OpenBLAS does: a (C, D) @ (D, G) product's rows change in the
last bit with C), so the promise that ``rnn_ref.vjp`` returns the forward function's output
bit for bit rests on the projection never letting a step's products depend on the chunk.

Checked here bit for bit, on sizes where the chunks are shorter than T (T = 250 steps): the
chunked projection against the whole one, in both of its regimes (a product per step, and
batched products of ``PROJECTION_STEPS`` steps), and each layer's vjp output against the
layer's own output. The mutant, a projection that is one batched product of whatever steps
it is given (what rnn_ref did before), fails both.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnn_ref import gru, lstm, simple_rnn, vjp
from rnn_ref.layers import parallel, recurrence

T, D = 250, 32

LAYERS = {"simple_rnn": (simple_rnn, 1), "lstm": (lstm, 4), "gru": (gru, 3)}  # name: (function, gate blocks)


class _Cell:
    """The two attributes ``projection_chunk`` reads."""

    def __init__(self, kernel):
        self.kernel = kernel


def draw(B, G, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, D)).astype(np.float32)
    kernel = (0.3 * rng.standard_normal((D, G))).astype(np.float32)
    bias = (0.1 * rng.standard_normal(G)).astype(np.float32)
    return x, kernel, bias


def in_chunks(x, kernel, bias, chunk):
    return np.concatenate([recurrence.input_projection(x[:, s:s + chunk], kernel, bias)
                           for s in range(0, x.shape[1], chunk)])  # (T, B, G)


def one_batched_product(x, kernel, bias, out=None):
    """The mutant: NumPy's batched product over all the steps given, so its rounding follows C."""
    B, C, _ = x.shape
    x_proj = np.empty((C, B, kernel.shape[1]), dtype=x.dtype) if out is None else out
    np.matmul(x, kernel, out=x_proj.transpose(1, 0, 2))
    x_proj += bias
    return x_proj


# (B, G): a small batch (batched products: B = 1 one chunk, 8 and 32 several), and a large one
# (a product per step), with the widths of SimpleRNN(100), GRU(100) and LSTM(100).
SIZES = [(1, 400), (8, 300), (32, 400), (40, 100), (64, 400), (200, 100)]


def check_chunks_agree(B, G):
    x, kernel, bias = draw(B, G)
    chunk = parallel.projection_chunk(_Cell(kernel), B)
    assert chunk < T or B == 1, f"B = {B}, G = {G}: one chunk of {chunk} steps checks nothing here"
    whole = recurrence.input_projection(x, kernel, bias)  # (T, B, G)
    np.testing.assert_array_equal(in_chunks(x, kernel, bias, chunk), whole,
                                  err_msg=f"B = {B}, G = {G}, chunks of {chunk} steps")


@pytest.mark.parametrize("B, G", SIZES)
def test_chunks_give_the_whole_projection_bit_for_bit(B, G):
    check_chunks_agree(B, G)


@pytest.mark.parametrize("B, G, by_step", [(1, 400, False), (32, 400, False), (64, 100, False),
                                           (40, 400, True), (128, 100, True), (512, 400, True)])
def test_regime(B, G, by_step):
    assert parallel.projection_by_step(B, G, 4) is by_step
    chunk = parallel.projection_chunk(_Cell(np.zeros((D, G), np.float32)), B)
    if not by_step:
        assert chunk % parallel.PROJECTION_STEPS == 0 and chunk >= B


def check_vjp_output(name, B, U=100):
    fn, G = LAYERS[name]
    rng = np.random.default_rng(3)
    x = rng.standard_normal((B, T, D)).astype(np.float32)
    kernel = (0.3 * rng.standard_normal((D, G * U))).astype(np.float32)
    recurrent = (0.1 * rng.standard_normal((U, G * U))).astype(np.float32)
    bias = (0.1 * rng.standard_normal((2, G * U) if G == 3 else G * U)).astype(np.float32)
    mask = rng.random((B, T)) < 0.8
    options = dict(return_sequences=True, mask=mask)
    out, _ = vjp(fn, x, kernel, recurrent, bias, **options)
    np.testing.assert_array_equal(out, fn(x, kernel, recurrent, bias, **options),
                                  err_msg=f"{name} vjp output, B = {B}")


@pytest.mark.parametrize("B", [8, 32, 64])
@pytest.mark.parametrize("name", LAYERS)
def test_vjp_output_is_the_layer_output_bit_for_bit(name, B):
    check_vjp_output(name, B)


@pytest.mark.parametrize("B, G", [(8, 300), (32, 400), (64, 400)])
def test_a_projection_that_follows_its_chunk_is_caught(monkeypatch, B, G):
    monkeypatch.setattr(recurrence, "input_projection", one_batched_product)
    with pytest.raises(AssertionError, match="Mismatched elements"):
        check_chunks_agree(B, G)


@pytest.mark.parametrize("name", LAYERS)
def test_a_vjp_output_off_the_layer_output_is_caught(monkeypatch, name):
    monkeypatch.setattr(recurrence, "input_projection", one_batched_product)
    with pytest.raises(AssertionError, match="Mismatched elements"):
        check_vjp_output(name, 32)


# ---------------------------------------------------------------------------
# The projection buffer a thread keeps between calls (parallel.scratch)
# ---------------------------------------------------------------------------

def check_results_kept(name, B, T=12, U=5):
    """A call's results stay what they were after the next call of the same shapes (which reuses
    the projection buffer), with linear activations, where a gate can be a view of the buffer."""
    fn, G = LAYERS[name]
    rng = np.random.default_rng(7)
    kernel = (0.1 * rng.standard_normal((D, G * U))).astype(np.float32)  # small: products of linear gates
    recurrent = (0.1 * rng.standard_normal((U, G * U))).astype(np.float32)
    bias = (0.1 * rng.standard_normal((2, G * U) if G == 3 else G * U)).astype(np.float32)
    options = dict(activation=None, return_sequences=True, return_state=True)
    if name != "simple_rnn":
        options["recurrent_activation"] = None
    first = fn(rng.standard_normal((B, T, D)).astype(np.float32), kernel, recurrent, bias, **options)
    kept = [np.array(a) for a in first]
    fn(rng.standard_normal((B, T, D)).astype(np.float32), kernel, recurrent, bias, **options)
    assert all(np.isfinite(k).all() for k in kept)
    for i, (a, k) in enumerate(zip(first, kept)):
        np.testing.assert_array_equal(a, k, err_msg=f"{name}, B = {B}: result {i} changed by the next call")


@pytest.mark.parametrize("B", [3, 200])  # one thread; two row blocks in threads
@pytest.mark.parametrize("name", LAYERS)
def test_a_result_never_shares_the_projection_buffer(name, B):
    check_results_kept(name, B)


def test_a_state_returned_from_the_projection_buffer_is_caught(monkeypatch):
    """The mutant: an LSTM step that writes h_t into its block of the projection and returns that
    view as the state (an in-place saving), so the final state is the buffer the next call fills."""
    from rnn_ref.layers.lstm import LSTMCell  # noqa: PLC0415

    original = LSTMCell.step

    def step_in_the_buffer(self, x_t, states):
        h, (_, c) = original(self, x_t, states)
        x_t[:, :self.units] = h
        return x_t[:, :self.units], [x_t[:, :self.units], c]

    monkeypatch.setattr(LSTMCell, "step", step_in_the_buffer)
    with pytest.raises(AssertionError, match="changed by the next call"):
        check_results_kept("lstm", 3)


def test_scratch_is_checked_out_and_bounded():
    with parallel.scratch((2, 3), np.float32) as a:
        with parallel.scratch((2, 3), np.float32) as b:  # nested: another buffer
            assert a is not b
    with parallel.scratch((2, 3), np.float32) as again:
        assert again is a or again is b  # kept for the next call of this thread
    for n in range(2 * parallel.SCRATCH_KEPT):
        with parallel.scratch((n + 1,), np.float64):
            pass
    assert len(parallel._scratch.free) == parallel.SCRATCH_KEPT
