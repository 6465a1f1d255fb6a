"""Whole models with LSTM, GRU and Bidirectional layers: ``rnn_ref.from_keras`` and
``rnn_ref.load`` against live Keras.

Weights are random and set with ``set_weights`` from a seeded generator:
kernels asymmetric with input sizes different from the unit counts, each
recurrent gate block 0.9 times a random non-symmetric orthogonal matrix,
non-zero biases (a GRU's two bias rows drawn independently). Inputs are
padded token batches (left and right padding, with and without
``mask_zero``) or random floats. Every comparison is also run on plausible
bugs of the conversion, applied to a copy of the NumPy model (the backward
layer's weights given to the forward one, GRU's ``reset_after`` ignored,
LSTM gate blocks in another order, the mask not passed on, a state not
carried), and must fail on each.

Tolerances. float64: ``rtol = atol = 1e-12`` against the same Keras model
built with ``dtype="float64"``; measured differences are below 5e-16.

float32: the budget is derived from the case, with the rule of
``rnn_ref.harness.tolerance``. The truth is the float64 twin of the Keras
model (same weights: float32 values are exact in float64); ``e_k`` is
Keras float32's own distance to it (the largest over the output). A correct
float32 implementation stays within ``FACTOR * e_k + floor`` of the truth,
with the floor one step's rounding, ``FLOOR_ULPS * u * sqrt(n) * max(1,
|truth|)`` (u = 2^-24, n the longest dot product of the model, D + U + 1 of
its widest recurrent layer), and Keras is ``e_k`` from the truth, so the
two differ by at most ``(FACTOR + 1) * e_k + floor``. The conditioning term
of that rule is left out: with these contracting weights it stays near u,
under the floor. Measured over 169 comparisons (``--hypothesis-profile
thorough``): e_k at most 4.3e-7, budgets 2.7e-6 to 1e-5, and |NumPy - Keras|
at most 0.09 of the budget; the mutants exceed it 200 times or more (their
smallest differences: 2.5e-4 for GRU's reset_after ignored, 1.1e-3 for the
dropped mask, 3e-3 for swapped directions, 2e-2 for reordered LSTM gates,
8e-2 for a state not carried).
"""

from __future__ import annotations

import copy
import functools
import json
import warnings

import hypothesis
import numpy as np
import pytest
from hypothesis import given, note, settings, strategies as st

keras = pytest.importorskip("keras")
layers = keras.layers

import rnn_ref  # noqa: E402
from rnn_ref.gru import OPTIONS as GRU_FUNCTION_OPTIONS  # noqa: E402
from random_models import randomize, token_batch  # noqa: E402
from rnn_ref.harness.tolerance import FACTOR, FLOOR_ULPS  # noqa: E402
from rnn_ref.lstm import OPTIONS as LSTM_FUNCTION_OPTIONS  # noqa: E402
from rnn_ref.model import GRU, LSTM, Bidirectional, SimpleRNN  # noqa: E402
from rnn_ref.recurrence import CALL_OPTIONS  # noqa: E402

pytestmark = pytest.mark.keras

U32 = 2.0 ** -24
TOL64 = dict(rtol=1e-12, atol=1e-12)

#: Few examples per test (each runs Keras twice, float32 and float64).
EXAMPLES = max(3, settings.default.max_examples // 25)
few = settings(max_examples=EXAMPLES, deadline=None)


# ---------------------------------------------------------------------------
# Weights, inputs, comparisons
# ---------------------------------------------------------------------------


def flat(result):
    return [np.asarray(a) for a in keras.tree.flatten(result)]


def longest_sum(np_model):
    """n = D + U + 1 of the widest recurrent layer (the longest dot product of one step)."""
    sizes = [1]
    for layer in np_model.layers:
        cell = getattr(layer, "forward", layer)
        if hasattr(cell, "recurrent_kernel"):
            sizes.append(cell.kernel.shape[0] + cell.recurrent_kernel.shape[0] + 1)
    return max(sizes)


def budget(keras32, truth, n):
    """|NumPy - Keras| allowed in float32: (FACTOR + 1) e_k + floor (module docstring)."""
    e_k = max(float(np.max(np.abs(k.astype(np.float64) - t))) for k, t in zip(flat(keras32), flat(truth)))
    scale = max([1.0] + [float(np.max(np.abs(t))) for t in flat(truth) if t.size])
    return (FACTOR + 1) * e_k + FLOOR_ULPS * U32 * np.sqrt(n) * scale


def assert_structure(actual, expected, what=""):
    """Same nesting (tuple, list, dict), shapes and dtypes as Keras's result."""
    __tracebackhide__ = True
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), what
        for k in expected:
            assert_structure(actual[k], expected[k], f"{what}[{k!r}]")
    elif isinstance(expected, (list, tuple)):
        assert type(actual) is type(expected) and len(actual) == len(expected), (
            f"{what}: {type(actual).__name__} of {len(actual)}, Keras {type(expected).__name__} of {len(expected)}")
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_structure(a, e, f"{what}[{i}]")
    else:
        assert isinstance(actual, np.ndarray), f"{what}: {type(actual).__name__}"
        assert actual.shape == expected.shape and actual.dtype == expected.dtype, (
            f"{what}: {actual.shape} {actual.dtype}, Keras {expected.shape} {expected.dtype}")


def assert_matches(actual, keras32, truth, n, what=""):
    """float32: the structure of Keras's result, and every element within the budget."""
    __tracebackhide__ = True
    assert_structure(actual, keras32, what)
    diff = max(float(np.max(np.abs(a.astype(np.float64) - k))) for a, k in zip(flat(actual), flat(keras32)))
    allowed = budget(keras32, truth, n)
    if hypothesis.currently_in_test_context():
        note(f"{what}: max |numpy - keras| = {diff:.2e}, budget {allowed:.2e} ({diff / allowed:.3f})")
    assert diff <= allowed, f"{what}: max |numpy - keras| = {diff:.3g} > budget {allowed:.3g}"


def assert_close64(actual, expected, what=""):
    __tracebackhide__ = True
    assert_structure(actual, expected, what)
    for a, e in zip(flat(actual), flat(expected)):
        np.testing.assert_allclose(a, e, **TOL64, err_msg=what)


class Twins:
    """A float32 Keras model with random weights and its float64 twin (the truth)."""

    def __init__(self, build, seed):
        self.k32, self.k64 = build("float32"), build("float64")
        randomize(self.k32, seed)
        self.k64.set_weights(self.k32.get_weights())
        self.np32 = rnn_ref.from_keras(self.k32)
        self.n = longest_sum(self.np32)

    def check(self, x, oracle="predict"):
        """Compare NumPy with Keras in both dtypes on ``x``; return Keras float32 and the truth."""
        __tracebackhide__ = True
        keras32 = self.k32.predict(x, verbose=0) if oracle == "predict" else keras.tree.map_structure(
            np.asarray, self.k32(x))
        truth = keras.tree.map_structure(np.asarray, self.k64(x))  # predict would round x to float32
        assert_matches(self.np32(x), keras32, truth, self.n, self.k32.name)
        assert_close64(rnn_ref.from_keras(self.k64)(x), truth, self.k64.name + " float64")
        return keras32, truth

    def assert_detects(self, bug, x, keras32, truth):
        """The comparison fails once ``bug`` is applied to a copy of the NumPy model."""
        __tracebackhide__ = True
        buggy = copy.deepcopy(self.np32)
        bug(buggy)
        with pytest.raises(AssertionError):
            assert_matches(buggy(x), keras32, truth, self.n, f"{bug.__name__}")


# ---------------------------------------------------------------------------
# The mutants: plausible bugs of a conversion
# ---------------------------------------------------------------------------


def recurrent_layers(np_model):
    """Every recurrent NumPy layer, the two directions of a Bidirectional included."""
    for layer in np_model.layers:
        yield from (layer.forward, layer.backward) if isinstance(layer, Bidirectional) else (layer,)


def swapped_directions(np_model):
    """get_weights() of a Bidirectional read backward first: each direction runs the other's weights."""
    for layer in np_model.layers:
        if isinstance(layer, Bidirectional):
            for w in layer.forward.WEIGHTS:
                f, b = getattr(layer.forward, w), getattr(layer.backward, w)
                setattr(layer.forward, w, b)
                setattr(layer.backward, w, f)


def reset_after_ignored(np_model):
    """GRU read as the other form, its bias made to fit: two rows summed into one
    (reset_after=True read as False), or one row and zeros (False read as True)."""
    for layer in recurrent_layers(np_model):
        if isinstance(layer, GRU):
            b = layer.bias
            layer.bias = b[0] + b[1] if layer.reset_after else np.stack([b, np.zeros_like(b)])
            layer.reset_after = not layer.reset_after


def lstm_gates_reordered(np_model):
    """LSTM gate blocks read in TensorFlow 1's order i, c, f, o instead of Keras's i, f, c, o."""
    for layer in recurrent_layers(np_model):
        if isinstance(layer, LSTM):
            for w in ("kernel", "recurrent_kernel", "bias"):
                i, f, c, o = np.split(getattr(layer, w), 4, axis=-1)
                setattr(layer, w, np.concatenate([i, c, f, o], axis=-1))


def mask_dropped_after_first_rnn(np_model):
    """The first recurrent layer does not pass the mask on: the next one runs over the padding."""
    rnns = [layer for layer in np_model.layers if hasattr(layer, "mask_in")]
    rnns[0].compute_mask = lambda x, mask: None
    rnns[1].mask_in = None


# ---------------------------------------------------------------------------
# Embedding(5000, 32) -> Bidirectional(LSTM(64, return_sequences=True)) -> GRU(32) -> Dense(1, "sigmoid")
# ---------------------------------------------------------------------------


@functools.cache
def pipeline(kind, mask_zero, dtype):
    embedding = layers.Embedding(5000, 32, mask_zero=mask_zero, dtype=dtype)
    stack = [
        layers.Bidirectional(layers.LSTM(64, return_sequences=True, dtype=dtype), dtype=dtype),
        layers.GRU(32, dtype=dtype),
        layers.Dense(1, activation="sigmoid", dtype=dtype),
    ]
    name = f"pipeline_{kind}_{'masked' if mask_zero else 'unmasked'}"
    if kind == "sequential":
        return keras.Sequential([keras.Input((None,), dtype="int32"), embedding, *stack], name=name)
    ids = keras.Input((None,), dtype="int32")
    h = embedding(ids)
    for layer in stack:
        h = layer(h)
    return keras.Model(ids, h, name=name)


@pytest.mark.parametrize("kind, mask_zero", [("sequential", True), ("sequential", False), ("functional", True)])
@few
@given(seed=st.integers(0, 2**31 - 1), B=st.integers(3, 6), T=st.sampled_from([5, 17, 40]),
       all_padding_row=st.booleans())
def test_pipeline_on_padded_tokens(kind, mask_zero, seed, B, T, all_padding_row):
    twins = Twins(functools.partial(pipeline, kind, mask_zero), seed)
    ids = token_batch(np.random.default_rng(seed), B, T, 5000, all_padding_row=all_padding_row)
    keras32, truth = twins.check(ids)

    bidi, gru = twins.np32.layers[1:3]
    assert gru.mask_in == mask_zero and bidi.mask_in == mask_zero
    if mask_zero and all_padding_row:  # every step masked: the GRU outputs zeros, the head sigmoid(bias)
        np.testing.assert_allclose(keras32[2], 1 / (1 + np.exp(-twins.np32.layers[-1].bias)), rtol=1e-6)
    for bug in (swapped_directions, reset_after_ignored, lstm_gates_reordered):
        twins.assert_detects(bug, ids, keras32, truth)
    if mask_zero:
        twins.assert_detects(mask_dropped_after_first_rnn, ids, keras32, truth)


def test_pipeline_is_readable():
    np_model = rnn_ref.from_keras(pipeline("sequential", True, "float32"))
    text = repr(np_model)
    for part in ("Bidirectional(", "LSTM(", "D=32, U=64", "merge_mode='concat'", "GRU(", "D=128, U=32"):
        assert part in text
    lines = []
    np_model.summary(print_fn=lines.append)
    # 5000*32 + 2 * (32*256 + 64*256 + 256) + (128*96 + 32*96 + 2*96) + 32 + 1
    assert "parameters: 225,249" in lines[0]
    assert "LSTM, merge_mode=concat" in lines[0] and "masked" in lines[0]


# ---------------------------------------------------------------------------
# Bidirectional around each layer, every merge mode
# ---------------------------------------------------------------------------

WRAPPED = {
    "SimpleRNN": lambda dtype, **kw: layers.SimpleRNN(4, dtype=dtype, **kw),
    "LSTM": lambda dtype, **kw: layers.LSTM(4, dtype=dtype, **kw),
    "GRU": lambda dtype, **kw: layers.GRU(4, dtype=dtype, **kw),
    "GRU_reset_before": lambda dtype, **kw: layers.GRU(4, reset_after=False, activation="softsign",
                                                       recurrent_activation="hard_sigmoid", dtype=dtype, **kw),
}
MERGE_MODES = ("concat", "sum", "mul", "ave", None)
BIDI_CASES = [
    # each wrapped layer and each merge mode with and without return_sequences, some with return_state
    (wrapped, merge_mode, (i + j) % 2 == 0, (i + j) % 3 == 0)
    for i, wrapped in enumerate(WRAPPED) for j, merge_mode in enumerate(MERGE_MODES)
]


@functools.cache
def bidirectional_model(wrapped, merge_mode, return_sequences, return_state, dtype):
    """Embedding(mask_zero) -> Bidirectional(wrapped(4)) [-> Dense(3) when its output is one array]."""
    ids = keras.Input((None,), dtype="int32")
    h = layers.Embedding(30, 5, mask_zero=True, dtype=dtype)(ids)
    inner = WRAPPED[wrapped](dtype, return_sequences=return_sequences, return_state=return_state)
    out = layers.Bidirectional(inner, merge_mode=merge_mode, dtype=dtype)(h)
    if merge_mode is not None and not return_state:
        out = layers.Dense(3, dtype=dtype)(out)  # the merged width (2U or U) must fit
    return keras.Model(ids, out, name=f"bidirectional_{wrapped}_{merge_mode}")


@pytest.mark.parametrize("wrapped, merge_mode, return_sequences, return_state", BIDI_CASES)
def test_bidirectional_every_layer_and_merge_mode(wrapped, merge_mode, return_sequences, return_state):
    build = functools.partial(bidirectional_model, wrapped, merge_mode, return_sequences, return_state)
    twins = Twins(build, seed=len(wrapped) + 7 * MERGE_MODES.index(merge_mode))
    ids = token_batch(np.random.default_rng(3), 4, 9, 30)
    keras32, truth = twins.check(ids, oracle="call")
    if merge_mode is None or return_state:
        assert isinstance(keras32, tuple)  # and the NumPy model returns a tuple too (assert_structure)
    twins.assert_detects(swapped_directions, ids, keras32, truth)


# ---------------------------------------------------------------------------
# A functional stack on floats: go_backwards, GRU reset_after=False inside a Bidirectional
# ---------------------------------------------------------------------------


@functools.cache
def float_stack(dtype):
    """(B, T, 7) -> LSTM(6, go_backwards) -> Bidirectional(GRU(5, reset_after=False), "ave")
    -> LSTM(4, relu) -> Dense(2)."""
    x = keras.Input((None, 7), dtype=dtype)
    h = layers.LSTM(6, return_sequences=True, go_backwards=True, dtype=dtype)(x)
    h = layers.Bidirectional(layers.GRU(5, return_sequences=True, reset_after=False, dtype=dtype),
                             merge_mode="ave", dtype=dtype)(h)
    h = layers.LSTM(4, activation="softsign", dtype=dtype)(h)
    return keras.Model(x, layers.Dense(2, dtype=dtype)(h), name="float_stack")


@few
@given(seed=st.integers(0, 2**31 - 1), B=st.integers(1, 4), T=st.integers(2, 30))
def test_functional_stack_on_floats(seed, B, T):
    twins = Twins(float_stack, seed)
    x = np.random.default_rng(seed).uniform(-1, 1, (B, T, 7)).astype(np.float32)
    keras32, truth = twins.check(x)
    for bug in (reset_after_ignored, lstm_gates_reordered, swapped_directions):
        twins.assert_detects(bug, x, keras32, truth)


# ---------------------------------------------------------------------------
# Files: .keras (safe mode) and .npz
# ---------------------------------------------------------------------------

FILE_MODELS = {
    "pipeline": (functools.partial(pipeline, "sequential", True), lambda rng: token_batch(rng, 4, 12, 5000)),
    "bidirectional_pair_and_states": (
        functools.partial(bidirectional_model, "LSTM", None, True, True), lambda rng: token_batch(rng, 3, 8, 30)),
    "gru_reset_before_in_bidirectional": (
        functools.partial(bidirectional_model, "GRU_reset_before", "mul", False, False),
        lambda rng: token_batch(rng, 3, 8, 30)),
    "float_stack": (float_stack, lambda rng: rng.uniform(-1, 1, (3, 10, 7)).astype(np.float32)),
}


@pytest.mark.parametrize("name", list(FILE_MODELS))
def test_keras_and_npz_files_load_back(name, tmp_path):
    build, inputs = FILE_MODELS[name]
    twins = Twins(build, seed=11)
    x = inputs(np.random.default_rng(11))
    keras32, truth = twins.check(x)
    expected = twins.np32(x)

    twins.k32.save(tmp_path / "model.keras")
    rnn_ref.save_npz(twins.k32, tmp_path / "model.npz")
    # Keras itself reloads a functional model's tuple of outputs as a list
    reloaded = keras.saving.load_model(tmp_path / "model.keras", compile=False).predict(x, verbose=0)
    for path, keras_result in ((tmp_path / "model.keras", reloaded), (tmp_path / "model.npz", keras32)):
        loaded = rnn_ref.load(path)
        assert_matches(loaded(x), keras_result, truth, twins.n, path.name)
        for a, e in zip(flat(loaded(x)), flat(expected)):
            np.testing.assert_array_equal(a, e)  # the same NumPy model, bit for bit
    rnn_ref.save_npz(rnn_ref.load(tmp_path / "model.npz"), tmp_path / "again.npz")  # a NumpyModel saves too
    for a, e in zip(flat(rnn_ref.load(tmp_path / "again.npz")(x)), flat(expected)):
        np.testing.assert_array_equal(a, e)


def test_npz_layout_of_a_bidirectional(tmp_path):
    rnn_ref.save_npz(rnn_ref.from_keras(pipeline("sequential", True, "float32")), tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as data:
        config = json.loads(str(data["config"]))
        names = set(data.files)
    bidi = config["layers"][1]
    assert bidi["class"] == "Bidirectional" and bidi["merge_mode"] == "concat" and bidi["mask_in"] is True
    assert bidi["layer"] == {"class": "LSTM", "activation": "tanh", "recurrent_activation": "sigmoid",
                             "return_sequences": True, "return_state": False, "stateful": False}
    assert {"layer1_forward_kernel", "layer1_backward_recurrent_kernel", "layer1_backward_bias"} <= names
    assert config["layers"][2]["reset_after"] is True


# ---------------------------------------------------------------------------
# Stateful LSTM (and a stateful Bidirectional GRU) over chunks
# ---------------------------------------------------------------------------

STATEFUL_B, STATEFUL_D = 3, 5


@functools.cache
def stateful_model(wrapped, stateful, dtype):
    """wrapped(6, return_sequences) -> Dense(2); stateful with a fixed batch, or plain for whole sequences."""
    rnn = {"LSTM": lambda: layers.LSTM(6, return_sequences=True, stateful=stateful, dtype=dtype),
           "Bidirectional_GRU": lambda: layers.Bidirectional(
               layers.GRU(6, return_sequences=True, stateful=stateful, dtype=dtype), merge_mode="sum", dtype=dtype),
           }[wrapped]()
    return keras.Sequential([
        keras.Input((None, STATEFUL_D), batch_size=STATEFUL_B if stateful else None, dtype=dtype),
        rnn, layers.Dense(2, dtype=dtype)], name=f"{'stateful' if stateful else 'whole'}_{wrapped}")


def carries_only_h(np_model):
    """The bug of a conversion that keeps h between calls but not the LSTM's cell state c."""
    layer = np_model.layers[0]
    original = type(layer).set_states
    layer.set_states = lambda states: original(layer, [states[0], np.zeros_like(states[1])])


def forgets_state(np_model):
    for layer in recurrent_layers(np_model):
        layer.stateful = False


@pytest.mark.parametrize("wrapped", ["LSTM", "Bidirectional_GRU"])
@few
@given(seed=st.integers(0, 2**31 - 1), chunks=st.lists(st.integers(1, 9), min_size=2, max_size=4))
def test_stateful_chunks(wrapped, seed, chunks):
    """Call by call, the NumPy model follows Keras's stateful model (the truth: its float64 twin
    fed the same chunks); an LSTM's chunks are one long sequence (a Bidirectional's are not:
    its backward layer reads each chunk backwards from the state the previous chunk left)."""
    k32, k64 = stateful_model(wrapped, True, "float32"), stateful_model(wrapped, True, "float64")
    randomize(k32, seed)
    k64.set_weights(k32.get_weights())
    for model in (k32, k64):
        model.layers[0].reset_state()
    np32, np64 = rnn_ref.from_keras(k32), rnn_ref.from_keras(k64)
    n = longest_sum(np32)
    x = np.random.default_rng(seed).uniform(-1, 1, (STATEFUL_B, sum(chunks), STATEFUL_D)).astype(np.float32)
    pieces = np.split(x, np.cumsum(chunks)[:-1], axis=1)

    def step(piece, what):
        keras32, truth = k32.predict(piece, verbose=0), k64.predict(piece, verbose=0)
        assert_matches(np32(piece), keras32, truth, n, what)
        assert_close64(np64(piece), truth, what + " float64")
        return keras32, truth

    results = [step(piece, f"chunk {i}") for i, piece in enumerate(pieces)]
    if wrapped == "LSTM":
        whole = stateful_model(wrapped, False, "float64")
        whole.set_weights(k32.get_weights())
        chunks_together = np.concatenate([truth for _, truth in results], axis=1)
        np.testing.assert_allclose(chunks_together, whole.predict(x, verbose=0), **TOL64)

    for model in (np32, np64, k32.layers[0], k64.layers[0]):  # as layer.reset_state() in Keras: zeros again
        model.reset_state()
    step(pieces[1], "after reset_state")

    keras32, truth = results[1]
    for bug in [forgets_state] + ([carries_only_h] if wrapped == "LSTM" else []):
        buggy = rnn_ref.from_keras(k32)
        buggy.reset_state()
        bug(buggy)
        buggy(pieces[0])
        with pytest.raises(AssertionError):
            assert_matches(buggy(pieces[1]), keras32, truth, n, bug.__name__)


def test_from_keras_continues_from_the_keras_states():
    stateful = stateful_model("LSTM", True, "float32")
    randomize(stateful, 5)
    stateful.layers[0].reset_state()
    rng = np.random.default_rng(5)
    first, second = (rng.uniform(-1, 1, (STATEFUL_B, T, STATEFUL_D)).astype(np.float32) for T in (4, 6))
    stateful.predict(first, verbose=0)
    np_model = rnn_ref.from_keras(stateful)  # converted mid-stream: h and c come along
    lstm = np_model.layers[0]
    assert np.any(lstm.state_h != 0) and np.any(lstm.state_c != 0) and np.any(lstm.state_h != lstm.state_c)
    np.testing.assert_allclose(np_model(second), stateful.predict(second, verbose=0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="batch size 3"):
        np_model(first[:2])


# ---------------------------------------------------------------------------
# Options Keras accepts that do not change the result at inference, and unroll
# ---------------------------------------------------------------------------

OPTIONS_T = 8  # unroll needs a fixed number of steps


@functools.cache
def inference_options_model(variant):
    """Embedding(mask_zero) -> LSTM and GRU with dropouts, implementation=1, unroll, use_cudnn; or the plain twin."""
    odd = variant == "odd"
    kw = dict(dropout=0.4, recurrent_dropout=0.3, implementation=1, unroll=True, use_cudnn=False) if odd else {}
    return keras.Sequential([
        keras.Input((OPTIONS_T,), dtype="int32"),
        layers.Embedding(30, 5, mask_zero=True),
        layers.LSTM(6, return_sequences=True, **kw),
        layers.GRU(4, reset_after=False, **kw),
    ], name=f"options_{variant}")


def test_dropout_implementation_unroll_use_cudnn_change_nothing():
    odd, plain = inference_options_model("odd"), inference_options_model("plain")
    randomize(odd, 2)
    plain.set_weights(odd.get_weights())
    assert odd.layers[1].cell.implementation == 1 and plain.layers[1].cell.implementation == 2
    ids = token_batch(np.random.default_rng(2), 4, OPTIONS_T, 30)
    np_odd, np_plain = rnn_ref.from_keras(odd), rnn_ref.from_keras(plain)
    np.testing.assert_array_equal(np_odd(ids), np_plain(ids))  # the NumPy models are the same
    for keras_result in (odd.predict(ids, verbose=0), np.asarray(odd(ids)), plain.predict(ids, verbose=0)):
        np.testing.assert_allclose(np_odd(ids), keras_result, rtol=1e-5, atol=1e-6)


@functools.cache
def unrolled_bidirectional(unroll):
    return keras.Sequential([
        keras.Input((OPTIONS_T,), dtype="int32"),
        layers.Embedding(30, 5, mask_zero=True),
        layers.Bidirectional(layers.LSTM(4, return_sequences=True, unroll=unroll)),
    ], name=f"bidirectional_unroll_{unroll}")


def test_unrolled_masked_bidirectional_warns():
    """Its backward layer has go_backwards and (forced) zero_output_for_mask: Keras's unrolled
    loop zeroes the steps masked in input order there. The NumPy model follows unroll=False."""
    unrolled, looped = unrolled_bidirectional(True), unrolled_bidirectional(False)
    randomize(unrolled, 4)
    looped.set_weights(unrolled.get_weights())
    ids = token_batch(np.random.default_rng(4), 4, OPTIONS_T, 30)
    with pytest.warns(UserWarning, match="unroll=True"):
        np_model = rnn_ref.from_keras(unrolled)
    np.testing.assert_allclose(np_model(ids), looped.predict(ids, verbose=0), rtol=1e-5, atol=1e-6)
    assert np.max(np.abs(np_model(ids) - unrolled.predict(ids, verbose=0))) > 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rnn_ref.from_keras(looped)


# ---------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------


def _after_input(layer, shape=(6, 3)):
    x = keras.Input(shape)
    return keras.Model(x, layer(x))


def _forward_half_to_dense():
    x = keras.Input((6, 3))
    forward, _ = layers.Bidirectional(layers.LSTM(3, return_sequences=True), merge_mode=None, name="bad")(x)
    return keras.Model(x, layers.Dense(2)(forward))


REFUSED = {
    "backward layer with other options": (
        lambda: _after_input(layers.Bidirectional(
            layers.LSTM(3, return_sequences=True), name="bad",
            backward_layer=layers.LSTM(3, activation="relu", return_sequences=True, go_backwards=True))),
        r"'bad' \(Bidirectional\): its layers differ in activation \('tanh' and 'relu'\)"),
    "directions swapped": (
        lambda: _after_input(layers.Bidirectional(
            layers.GRU(3, go_backwards=True), name="bad", backward_layer=layers.GRU(3))),
        r"'bad' \(Bidirectional\): its forward layer has go_backwards=True"),
    "wrapped RNN(cell)": (
        lambda: _after_input(layers.Bidirectional(layers.RNN(layers.LSTMCell(3)), name="bad")),
        r"'bad' \(Bidirectional\) wraps a layer of class RNN; rnn_ref supports Bidirectional around "
        r"SimpleRNN, LSTM, GRU"),
    "pair fed to a later layer": (_forward_half_to_dense, r"'bad' \(Bidirectional\): merge_mode=None returns the pair"),
    "other layer": (lambda: _after_input(layers.ConvLSTM1D(2, 3, name="bad"), (6, 4, 3)),
                    r"'bad' of class ConvLSTM1D is not supported; supported layer classes: InputLayer, Embedding, "
                    r"SimpleRNN, Dense, LSTM, GRU, Bidirectional"),
}


@pytest.mark.parametrize("build, message", list(REFUSED.values()), ids=list(REFUSED))
def test_unsupported_is_refused_by_name(build, message):
    with pytest.raises(ValueError, match=message):
        rnn_ref.from_keras(build())


@keras.saving.register_keras_serializable(package="rnn_ref_tests")
def halved_sigmoid(x):
    """A custom gate activation (registered: Bidirectional clones its layer through its config)."""
    return 0.5 * keras.activations.sigmoid(x)


def test_custom_activation_inside_bidirectional_is_refused(tmp_path):
    model = _after_input(layers.Bidirectional(layers.GRU(3, recurrent_activation=halved_sigmoid), name="bidi"))
    model.save(tmp_path / "custom.keras")
    message = r"layer 'bidi/forward_gru\w*' uses the Python function 'rnn_ref_tests>halved_sigmoid'"
    with pytest.raises(ValueError, match=message):
        rnn_ref.load(tmp_path / "custom.keras")


def bidirectional_npz(tmp_path, wrapped_config, **arrays):
    rng = np.random.default_rng(0)
    good = {f"layer0_{d}_{w}": rng.standard_normal(s).astype(np.float32) for d in ("forward", "backward")
            for w, s in (("kernel", (3, 8)), ("recurrent_kernel", (2, 8)), ("bias", (8,)))}
    config = {"format": "rnn_ref.npz", "version": 1,
              "layers": [{"class": "Bidirectional", "merge_mode": "sum", "layer": wrapped_config}]}
    np.savez(tmp_path / "bi.npz", config=np.array(json.dumps(config)), **{**good, **arrays})
    return tmp_path / "bi.npz"


def test_npz_bidirectional_by_hand_and_refusals(tmp_path):
    path = bidirectional_npz(tmp_path, {"class": "LSTM", "return_sequences": True})
    model = rnn_ref.load(path)
    x = np.random.default_rng(1).uniform(-1, 1, (2, 5, 3)).astype(np.float32)
    with np.load(path) as w:
        f, b = ([w[f"layer0_{d}_{k}"] for k in ("kernel", "recurrent_kernel", "bias")] for d in ("forward", "backward"))
    np.testing.assert_array_equal(model(x), rnn_ref.bidirectional(rnn_ref.lstm, x, f, b, merge_mode="sum",
                                                                  return_sequences=True))
    refusals = [
        ({"class": "LSTM", "go_backwards": True}, {}, "layer (LSTM) has unknown keys ['go_backwards']"),
        ({"class": "Dense"}, {}, "'layer' must be the wrapped layer's config"),
        ({"class": "GRU"}, {}, "recurrent_kernel must be a (U, 3U) array"),
        ({"class": "LSTM"}, {"layer0_backward_kernel": np.zeros((3, 12), np.float32)},
         "its layers differ in the shape of kernel ((3, 8) and (3, 12))"),
        ({"class": "LSTM"}, {"layer0_forward_state_h": np.zeros((2, 2), np.float32)},
         "forward layer: has a state array but is not stateful"),
    ]
    for wrapped_config, arrays, message in refusals:
        with pytest.raises(ValueError) as info:
            rnn_ref.load(bidirectional_npz(tmp_path, wrapped_config, **arrays))
        assert message in str(info.value)


# ---------------------------------------------------------------------------
# The declarations the other modules rely on
# ---------------------------------------------------------------------------


def test_layer_options_come_from_the_reference_functions():
    assert [k for k in LSTM.OPTIONS if k not in ("stateful", "mask_in")] == [
        k for k in LSTM_FUNCTION_OPTIONS if k not in CALL_OPTIONS]
    assert [k for k in GRU.OPTIONS if k not in ("stateful", "mask_in")] == [
        k for k in GRU_FUNCTION_OPTIONS if k not in CALL_OPTIONS]
    for cls in (SimpleRNN, LSTM, GRU):  # the dataclass defaults are the declared ones
        fields = cls.__dataclass_fields__
        for key, default in cls.OPTIONS.items():
            assert fields[key].default == default, (cls.__name__, key)
        assert set(cls.WEIGHTS + cls.STATE) <= set(fields)
