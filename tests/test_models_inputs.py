"""``Masking`` and models of several inputs (initial states and masks as ``keras.Input``s),
rebuilt by ``from_keras``, saved and loaded, against live Keras with random weights.

Every model here has ``input_dim != units`` and non-zero biases (``random_models.randomize``),
and is judged with the harness's budget (``model_judging.judge_model``). The last tests
apply plausible conversion bugs to the rebuilt models and show the same comparison
rejects each: the propagated mask kept for a layer called with ``initial_state`` (Keras
drops it there), an explicit mask input ignored, the initial states fed in the wrong
order, and a Masking that masks a step when *any* feature equals ``mask_value``.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

keras = pytest.importorskip("keras")
layers = keras.layers

import rnn_ref  # noqa: E402
from model_judging import assert_rejected, judge_model  # noqa: E402
from random_models import randomize  # noqa: E402
from rnn_ref.models.model import NumpyModel  # noqa: E402

pytestmark = pytest.mark.keras

D, U, B, T = 3, 4, 3, 7


def _floats(seed, mask_value=0.0):
    """(B, T, D) floats with masked steps: row 0 pre-padded, row 1 post-padded, row 2 holes."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (B, T, D)).astype(np.float32)  # (B, T, D)
    x[0, :2] = mask_value
    x[1, 5:] = mask_value
    x[2, [1, 4]] = mask_value
    x[2, 3, 0] = mask_value  # one feature equal to mask_value does not mask the step
    return x


def _states(seed, n, units=U):
    rng = np.random.default_rng(seed + 100)
    return [rng.uniform(-1, 1, (B, units)).astype(np.float32) for _ in range(n)]  # (B, U) each


def _judge(model, inputs, seed=0):
    randomize(model, seed)
    np_model = rnn_ref.from_keras(model)
    expected = model.predict(inputs, verbose=0)
    judge_model(model.name, np_model, inputs, expected).check()
    return np_model, expected


# ---- Masking ------------------------------------------------------------------------------


@pytest.mark.parametrize("mask_value", [0.0, 0.5])
@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_masking_then_recurrent_layers_match_keras(kind, mask_value):
    x = keras.Input((None, D))
    h = layers.Masking(mask_value)(x)
    h = getattr(layers, kind)(U + 1, return_sequences=True)(h)
    y = layers.Dense(2)(getattr(layers, kind)(U)(h))
    np_model, _ = _judge(keras.Model(x, y, name=f"masking_{kind}"), _floats(1, mask_value))
    assert type(np_model.layers[0]).__name__ == "Masking" and np_model.layers[0].mask_value == mask_value
    assert np_model.layers[1].mask_in and np_model.layers[2].mask_in


def test_masking_bidirectional_sequences_match_keras():
    x = keras.Input((None, D))
    y = layers.Bidirectional(layers.GRU(U, return_sequences=True), merge_mode="sum")(layers.Masking()(x))
    _judge(keras.Model(x, y, name="masking_bidirectional"), _floats(2))


def test_masking_alone_matches_keras_on_infinite_steps():
    """Keras selects masked steps to 0 (``where``): an all-inf step under mask_value inf is 0, not NaN."""
    x = _floats(3)
    x[1, 2] = np.inf
    x[0, 4, 1] = np.inf
    want = np.asarray(layers.Masking(np.inf)(x))
    got = rnn_ref.masking(x, np.inf)
    np.testing.assert_array_equal(got, want)
    assert got[1, 2].tolist() == [0.0] * D and np.isinf(got[0, 4, 1])


def test_masking_vjp_passes_kept_steps_only():
    x = _floats(4)
    out, backward = rnn_ref.vjp(rnn_ref.masking, x, 0.0)
    d = np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    keep = np.any(x != 0.0, axis=-1)[..., None]
    np.testing.assert_array_equal(backward(d).inputs, np.where(keep, d, 0))
    np.testing.assert_array_equal(out, rnn_ref.masking(x))


# ---- initial states and masks as inputs --------------------------------------------------


def test_initial_state_input_drops_the_masking_mask_like_keras():
    x, h0 = keras.Input((None, D)), keras.Input((U,))
    first = layers.SimpleRNN(U, return_sequences=True)(layers.Masking()(x), initial_state=h0)
    y = layers.Dense(2)(layers.SimpleRNN(U + 1)(first))  # still receives the Masking mask
    np_model, _ = _judge(keras.Model([x, h0], y, name="masking_h0"), [_floats(5), *_states(5, 1)])
    assert np_model.layers[1].mask_in is False and np_model.layers[2].mask_in is True
    assert np_model.feeds[1].initial_state == (1,)


@pytest.mark.parametrize("kind, n", [("SimpleRNN", 1), ("LSTM", 2), ("GRU", 1)])
def test_initial_states_and_final_states_match_keras(kind, n):
    """Streaming: states in, every state out (``return_state``), ids masked by the Embedding."""
    ids = keras.Input((None,), dtype="int32")
    states = [keras.Input((U,), name=f"s{i}") for i in range(n)]
    out = getattr(layers, kind)(U, return_sequences=True, return_state=True)(
        layers.Embedding(9, D, mask_zero=True)(ids), initial_state=states)
    tokens = np.random.default_rng(6).integers(1, 9, (B, T))
    tokens[0, :3] = 0
    tokens[1, 4:] = 0
    _judge(keras.Model([ids, *states], out, name=f"states_{kind}"), [tokens, *_states(6, n)])


def test_explicit_mask_input_with_initial_state_matches_keras():
    x, m, h0 = keras.Input((None, D)), keras.Input((None,), dtype="bool"), keras.Input((U,))
    first = layers.GRU(U, return_sequences=True)(x, mask=m, initial_state=h0)
    y = layers.LSTM(U + 1, return_sequences=True)(first)  # receives the explicit mask
    mask = np.random.default_rng(7).random((B, T)) > 0.35
    mask[0, :2] = False
    np_model, _ = _judge(keras.Model([x, m, h0], y, name="mask_input"), [_floats(7), mask, *_states(7, 1)])
    assert np_model.feeds[0].mask == 1 and np_model.layers[1].mask_in is True


def test_bidirectional_initial_states_and_input_order_match_keras():
    """States before the sequence in the model's inputs, and passed as a dict by name."""
    x = keras.Input((None, D), name="x")
    states = [keras.Input((U,), name=f"state_{i}") for i in range(4)]
    y = layers.Bidirectional(layers.LSTM(U, return_sequences=True), merge_mode="concat")(
        layers.Masking()(x), initial_state=states)
    model = keras.Model([*states, x], y, name="bidirectional_states")
    inputs = [*_states(8, 4), _floats(8)]
    np_model, expected = _judge(model, inputs)
    by_name = dict(zip([s.name for s in np_model.inputs], inputs))
    np.testing.assert_array_equal(np_model(by_name), np_model(inputs))
    with pytest.raises(ValueError, match=r"takes 5 inputs \(state_0, .*, x\): pass a list of 5 arrays"):
        np_model(inputs[-1])


def test_several_inputs_survive_keras_and_npz_files(tmp_path):
    x, h0, c0 = keras.Input((None, D)), keras.Input((U,)), keras.Input((U,))
    y = layers.Dense(2)(layers.LSTM(U)(layers.Masking(0.25)(x), initial_state=[h0, c0]))
    model = keras.Model([x, h0, c0], y, name="saved")
    inputs = [_floats(9, 0.25), *_states(9, 2)]
    np_model, expected = _judge(model, inputs)
    model.save(tmp_path / "m.keras")
    rnn_ref.save_npz(model, tmp_path / "m.npz")
    for path in ("m.keras", "m.npz"):
        loaded = rnn_ref.load(tmp_path / path)
        assert [(i.name, i.shape) for i in loaded.inputs] == [(i.name, i.shape) for i in np_model.inputs]
        np.testing.assert_array_equal(loaded(inputs), np_model(inputs))


def test_unsupported_extra_inputs_are_refused():
    x, h0 = keras.Input((None, D)), keras.Input((U,))
    computed = layers.Dense(U)(h0)  # an initial state computed in the model
    model = keras.Model([x, h0], layers.SimpleRNN(U)(x, initial_state=computed))
    with pytest.raises(ValueError, match=r"initial_state comes from layer 'dense.*model inputs"):
        rnn_ref.from_keras(model)
    m = keras.Input((None, D))
    mask = keras.ops.any(keras.ops.not_equal(m, 1.0), axis=-1)  # an explicit mask computed in the model
    model = keras.Model([x, m], layers.SimpleRNN(U)(x, mask=mask))
    with pytest.raises(ValueError, match="explicit mask computed in the model"):
        rnn_ref.from_keras(model)
    with pytest.raises(NotImplementedError, match="takes 2 inputs.*models of one input"):
        model2 = keras.Model([x, h0], layers.SimpleRNN(U)(x, initial_state=h0))
        rnn_ref.from_keras(model2).gradients([_floats(0), *_states(0, 1)], np.zeros((B, U)), "mse")


# ---- the comparison rejects plausible conversion bugs -----------------------------------


def _keep_propagated_mask(np_model):
    """Applies the Masking mask to a layer called with initial_state, which Keras does not."""
    fed = NumpyModel.fed

    def keeping(feed, arrays, mask):
        call_mask, passed_on, extra = fed(feed, arrays, mask)
        return (mask if call_mask is None else call_mask), passed_on, extra

    np_model.fed = keeping
    for layer in np_model.layers:
        if hasattr(layer, "mask_in"):
            layer.mask_in = None


def _ignore_mask_input(np_model):
    np_model.feeds = tuple(f if f is None else type(f)(f.initial_state, None) for f in np_model.feeds)
    for layer in np_model.layers:
        if hasattr(layer, "mask_in"):
            layer.mask_in = None


def _states_reversed(np_model):
    np_model.feeds = tuple(f if f is None else type(f)(f.initial_state[::-1], f.mask) for f in np_model.feeds)


def _masking_any(np_model):
    """Masks a step when any feature equals mask_value (all(x != v) instead of any(x != v))."""
    from rnn_ref.models import feedforward

    class AnyMasking(feedforward.Masking):
        def __call__(self, x, mask=None):
            return np.where(self.compute_mask(x)[..., None], np.asarray(x, self.dtype), 0)

        def compute_mask(self, x, mask=None):
            return np.all(np.asarray(x) != self.mask_value, axis=-1)

    np_model.layers[0] = AnyMasking(np_model.layers[0].name, np_model.layers[0].mask_value,
                                    np_model.layers[0].dtype)


def _model_for(bug):
    x, m = keras.Input((None, D)), keras.Input((None,), dtype="bool")
    h0, c0 = keras.Input((U,)), keras.Input((U,))
    if bug is _ignore_mask_input:
        y = layers.GRU(U, return_sequences=True)(x, mask=m, initial_state=h0)
        mask = np.random.default_rng(7).random((B, T)) > 0.35
        return keras.Model([x, m, h0], y), [_floats(7), mask, *_states(7, 1)]
    if bug is _states_reversed:
        y = layers.LSTM(U, return_sequences=True)(x, initial_state=[h0, c0])
        return keras.Model([x, h0, c0], y), [_floats(8), *_states(8, 2)]
    if bug is _masking_any:
        y = layers.SimpleRNN(U, return_sequences=True)(layers.Masking()(x))
        return keras.Model(x, y), _floats(9)
    first = layers.SimpleRNN(U, return_sequences=True)(layers.Masking()(x), initial_state=h0)
    return keras.Model([x, h0], layers.SimpleRNN(U + 1)(first)), [_floats(5), *_states(5, 1)]


@pytest.mark.parametrize("bug", [_keep_propagated_mask, _ignore_mask_input, _states_reversed, _masking_any],
                         ids=lambda f: f.__name__.strip("_"))
def test_the_comparison_rejects_conversion_bugs(bug):
    model, inputs = _model_for(bug)
    np_model, expected = _judge(model, inputs)
    buggy = copy.deepcopy(np_model)
    bug(buggy)
    assert_rejected(judge_model(f"mutant {bug.__name__}", buggy, inputs, expected), bug.__name__)


def test_a_float64_state_is_rounded_to_its_float32_input_like_keras():
    """Keras casts each input to its ``Input``'s dtype: a float64 state given to a float32 Input
    is rounded to float32 before a float64 layer reads it (1.5e-9 apart at the output if not)."""
    x, h0 = keras.Input((None, D)), keras.Input((U,))
    model = keras.Model([x, h0], layers.SimpleRNN(U, dtype="float64", return_sequences=True)(x, initial_state=h0))
    randomize(model, 11)
    rng = np.random.default_rng(11)
    inputs = [rng.uniform(-1, 1, (B, T, D)), rng.uniform(-1, 1, (B, U))]  # float64, not float32 values
    expected = np.asarray(model(inputs))  # float64, from the inputs rounded to float32
    np_model = rnn_ref.from_keras(model)
    judge_model("float64 state into a float32 Input", np_model, inputs, expected, got=np_model(inputs)).check()
    unrounded = copy.deepcopy(np_model)
    unrounded.inputs = tuple(type(i)(i.name, np.dtype("float64"), i.shape) for i in unrounded.inputs)
    assert_rejected(judge_model("mutant: the state not rounded", np_model, inputs, expected,
                                got=unrounded(inputs)), "state not rounded to its Input")
