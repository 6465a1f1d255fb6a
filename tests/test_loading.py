"""Models from files: ``rnn_ref.load`` of ``.keras`` (safe mode) and ``.npz``
files, ``rnn_ref.save_npz`` round trips, and every refusal.

Tolerance for comparisons with Keras: the harness's budget, through
``tests/model_judging.judge_model`` (over ``rnn_ref.harness.judging.judge_outputs``):
the truth is the loaded NumPy model with its weights and float input in float64, the
conditioning how far that moves when each of them is perturbed by
``tolerance.PERTURB_ULPS`` units of roundoff; an output fails where its error exceeds
``FACTOR * max(Keras's error, conditioning)`` plus a floor with m the longest dot
product of the model, and Keras fails the case beyond ``FACTOR * conditioning +
floor``. It replaces ``tiny_rnn.TOL`` (``rtol = 1e-5, atol = 1e-6``). A file whose
recurrent kernel was written transposed (``test_a_transposed_recurrent_kernel_in_a_file_is_rejected``)
loads, and the same comparison rejects it: its error is in the float64 truth too, so Keras
disagrees with it, by 9e4 to 3.6e5 times the budget; the correct files are at most 0.05
of it.

Kept as they are: ``assert_array_equal`` of a loaded model against ``from_keras`` of the
same model, a re-saved file, and models written by hand against the functions they name:
the same NumPy code on the same arrays, equal bit for bit by construction.
"""

from __future__ import annotations

import json
import re
import zipfile

import numpy as np
import pytest

import rnn_ref
from rnn_ref.layers.dense import dense
from model_judging import assert_rejected, judge_model
from tiny_rnn import BIAS, H0, KERNEL, RECURRENT, B, U, X, c64, rnn

keras = pytest.importorskip("keras")

layers = keras.layers


def randomize(model, seed=0):
    """Random weights with non-zero biases; recurrent kernels at spectral radius 0.9."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        new = []
        for v in layer.weights:
            shape = tuple(v.shape)
            w = rng.uniform(-1, 1, shape)
            if "recurrent" in v.name:
                w *= 0.9 / np.max(np.abs(np.linalg.eigvals(w)))
            elif v.name == "bias":
                w = rng.uniform(0.1, 0.5, shape) * rng.choice([-1, 1], shape)
            new.append(w.astype(v.dtype))
        layer.set_weights(new)
    return model


def token_model():
    """Embedding(mask_zero) -> SimpleRNN(return_sequences) -> SimpleRNN -> Dense(sigmoid)."""
    ids = keras.Input((6,), dtype="int32")
    h = layers.Embedding(20, 4, mask_zero=True)(ids)
    h = layers.SimpleRNN(5, return_sequences=True)(h)
    h = layers.SimpleRNN(3, activation="relu", go_backwards=True)(h)
    out = layers.Dense(2, activation="sigmoid")(h)
    return randomize(keras.Model(ids, out, name="tokens"))


def float_model():
    """Input (T, 3) -> SimpleRNN(4, return_sequences, no bias) -> Dense(2, softmax) per step."""
    return randomize(keras.Sequential([
        keras.Input((5, 3)), layers.SimpleRNN(4, return_sequences=True, use_bias=False),
        layers.Dense(2, activation="softmax"),
    ], name="floats"), seed=1)


def state_model():
    """A functional model returning (output, final_state) of its last SimpleRNN."""
    x = keras.Input((5, 3))
    out, state = layers.SimpleRNN(4, return_state=True)(x)
    return randomize(keras.Model(x, [out, state], name="with_state"), seed=2)


def token_ids():
    ids = np.random.default_rng(7).integers(1, 20, (3, 6))
    ids[0, 4:] = 0  # right padding
    ids[1, :2] = 0  # left padding
    return ids


def float_inputs():
    return np.random.default_rng(8).uniform(-1, 1, (3, 5, 3)).astype(np.float32)


MODELS = {"tokens": (token_model, token_ids), "floats": (float_model, float_inputs), "with_state": (state_model, float_inputs)}


def assert_same_outputs(got, want):
    """The same arrays, bit for bit (the same NumPy code on the same weights)."""
    got = got if isinstance(got, (list, tuple)) else [got]
    want = want if isinstance(want, (list, tuple)) else [want]
    assert len(got) == len(want), f"{len(got)} outputs, expected {len(want)}"
    for g, w in zip(got, want):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


def assert_matches_predict(np_model, x, keras_model, what):
    """The loaded model's outputs within the harness's budget of ``keras_model.predict(x)``."""
    __tracebackhide__ = True
    judge_model(what, np_model, x, keras_model.predict(x, verbose=0)).check()


@pytest.mark.keras
@pytest.mark.parametrize("name", list(MODELS))
def test_keras_model_to_npz_and_back_equals_predict(name, tmp_path):
    build, inputs = MODELS[name]
    model, x = build(), inputs()
    path = tmp_path / "model.npz"
    rnn_ref.save_npz(model, path)
    loaded = rnn_ref.load(path)
    assert_matches_predict(loaded, x, model, f"{name} from .npz")
    assert_same_outputs(loaded(x), rnn_ref.from_keras(model)(x))  # bit for bit
    rnn_ref.save_npz(loaded, tmp_path / "again.npz")  # a NumpyModel saves too
    assert_same_outputs(rnn_ref.load(tmp_path / "again.npz")(x), loaded(x))


@pytest.mark.keras
@pytest.mark.parametrize("name", list(MODELS))
def test_keras_file_loads_and_equals_predict(name, tmp_path):
    build, inputs = MODELS[name]
    model, x = build(), inputs()
    path = tmp_path / "model.keras"
    model.save(path)
    assert_matches_predict(rnn_ref.load(path), x, model, f"{name} from .keras")
    assert_same_outputs(rnn_ref.load(str(path))(x), rnn_ref.from_keras(model)(x))


@pytest.mark.keras
@pytest.mark.parametrize("name", list(MODELS))
def test_a_transposed_recurrent_kernel_in_a_file_is_rejected(name, tmp_path):
    """A file written with a recurrent kernel (U, U) transposed loads (its shape fits), and the
    comparison with predict rejects it."""
    build, inputs = MODELS[name]
    model, x = build(), inputs()
    rnn_ref.save_npz(model, tmp_path / "model.npz")
    with np.load(tmp_path / "model.npz") as data:
        arrays = dict(data)
    (key,) = [k for k in arrays if k.endswith("_recurrent_kernel")][:1]
    arrays[key] = np.ascontiguousarray(arrays[key].T)
    np.savez(tmp_path / "transposed.npz", **arrays)
    transposed = rnn_ref.load(tmp_path / "transposed.npz")
    assert_rejected(judge_model(f"{name} with {key} transposed", transposed, x, model.predict(x, verbose=0)),
                    f"{name}: {key} transposed")


@pytest.mark.keras
def test_lambda_layer_in_a_keras_file_is_refused(tmp_path):
    model = keras.Sequential([keras.Input((5, 3)), layers.Lambda(lambda t: 2 * t), layers.SimpleRNN(4)])
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(ValueError, match=r"layer 'lambda\w*' is a Lambda layer: it holds Python code"):
        rnn_ref.load(tmp_path / "lambda.keras")


@keras.saving.register_keras_serializable(package="rnn_ref_tests")
class Doubling(keras.layers.Layer):
    """A custom layer, registered, so Keras itself could rebuild it."""

    def call(self, x):
        return 2 * x


def halve(x):
    return 0.5 * x


@pytest.mark.keras
def test_custom_objects_in_a_keras_file_are_refused(tmp_path):
    model = keras.Sequential([keras.Input((5, 3)), Doubling(), layers.SimpleRNN(4)])
    model.save(tmp_path / "custom.keras")
    with pytest.raises(ValueError, match=r"uses the custom class 'rnn_ref_tests>Doubling', which is not part of Keras"):
        rnn_ref.load(tmp_path / "custom.keras")
    model = keras.Sequential([keras.Input((5, 3)), layers.SimpleRNN(4, activation=halve)])
    model.save(tmp_path / "activation.keras")
    with pytest.raises(ValueError, match=r"layer 'simple_rnn\w*' uses the Python function 'halve'"):
        rnn_ref.load(tmp_path / "activation.keras")


@pytest.mark.keras
def test_unsupported_layers_are_refused_by_name(tmp_path):
    model = keras.Sequential([keras.Input((5, 3)), layers.RNN(layers.LSTMCell(4), name="rnn_layer"), layers.Dense(1)])
    for convert in (rnn_ref.from_keras, lambda m: (m.save(tmp_path / "rnn.keras"), rnn_ref.load(tmp_path / "rnn.keras"))):
        with pytest.raises(ValueError) as info:
            convert(model)
        message = str(info.value)
        assert "'rnn_layer'" in message and "RNN" in message
        assert all(kind in message for kind in ("Embedding", "SimpleRNN", "Dense"))


# --- .npz written by hand, and every way an .npz can be wrong -----------------


def handmade(tmp_path, config=None, **arrays):
    """Write an .npz with the given config (a dict, or raw text) and arrays."""
    path = tmp_path / "hand.npz"
    if config is not None:
        arrays["config"] = np.array(config if isinstance(config, str) else json.dumps(config))
    np.savez(path, **arrays)
    return path


def rnn_dense_config(**rnn_options):
    return {
        "format": "rnn_ref.npz", "version": 1, "name": "hand",
        "layers": [{"class": "SimpleRNN", "name": "rnn", **rnn_options}, {"class": "Dense", "activation": "sigmoid"}],
    }


HEAD_K, HEAD_B = np.array([[0.5], [-1.0], [0.25], [0.75], [-0.5]], np.float32), np.array([0.2], np.float32)
GOOD = dict(layer0_kernel=KERNEL, layer0_recurrent_kernel=RECURRENT, layer0_bias=BIAS, layer1_kernel=HEAD_K, layer1_bias=HEAD_B)


def test_handwritten_npz_equals_the_functions(tmp_path):
    model = rnn_ref.load(handmade(tmp_path, rnn_dense_config(return_sequences=True), **GOOD))
    want = dense(rnn(return_sequences=True), HEAD_K, HEAD_B, "sigmoid")
    np.testing.assert_array_equal(model(X), want)


def test_npz_keeps_a_stateful_layer_state(tmp_path):
    h = np.random.default_rng(9).normal(size=(B, U)).astype(np.float32)
    path = handmade(tmp_path, rnn_dense_config(stateful=True, return_sequences=True), layer0_state=h, **GOOD)
    model = rnn_ref.load(path)
    np.testing.assert_array_equal(model.layers[0].state, h)
    rnn_ref.save_npz(model, tmp_path / "again.npz")
    np.testing.assert_array_equal(rnn_ref.load(tmp_path / "again.npz").layers[0].state, h)
    want = dense(rnn(return_sequences=True, initial_state=h), HEAD_K, HEAD_B, "sigmoid")
    np.testing.assert_array_equal(model(X), want)


def drop(d, key):
    return {k: v for k, v in d.items() if k != key}


NPZ_REFUSALS = {
    "no config": (None, GOOD, "an .npz without a 'config' array"),
    "config not JSON": ("{layers: [", GOOD, "'config' is not valid JSON"),
    "wrong format": ({**rnn_dense_config(), "format": "other"}, GOOD, "this rnn_ref reads format 'rnn_ref.npz' version 1"),
    "unknown top-level key": ({**rnn_dense_config(), "optimizer": "adam"}, GOOD, "config has unknown keys ['optimizer']"),
    "unsupported class": ({**rnn_dense_config(), "layers": [{"class": "ConvLSTM1D"}]}, {}, "class 'ConvLSTM1D', which is not supported; supported: Embedding, SimpleRNN, Dense"),
    "misspelt option": (rnn_dense_config(retrun_sequences=True), GOOD, "unknown keys ['retrun_sequences']"),
    "option of the wrong type": (rnn_dense_config(return_sequences="yes"), GOOD, "return_sequences must be true or false, got 'yes'"),
    "unknown activation": (rnn_dense_config(activation="tanhh"), GOOD, "got 'tanhh'"),
    "integer dtype": (rnn_dense_config(dtype="int32"), GOOD, "dtype must be a float dtype name"),
    "missing weight": (rnn_dense_config(), drop(GOOD, "layer0_recurrent_kernel"), "missing the weight array 'layer0_recurrent_kernel'"),
    "array of no layer": (rnn_dense_config(), {**GOOD, "layer2_kernel": HEAD_K}, "arrays ['layer2_kernel'] belong to no layer"),
    "transposed kernel": (rnn_dense_config(), {**GOOD, "layer0_kernel": KERNEL.T}, "kernel must have shape (D, U) = (?, 5), got (5, 3)"),
    "head for other units": (rnn_dense_config(), {**GOOD, "layer1_kernel": np.ones((4, 1), np.float32)}, "kernel must have shape (N, K) = (5, ?), got (4, 1)"),
    "bias of shape (1,)": (rnn_dense_config(), {**GOOD, "layer0_bias": np.ones(1, np.float32)}, "bias must have shape (U,) = (5,), got (1,)"),
    "complex weight": (rnn_dense_config(), {**GOOD, "layer0_kernel": c64(KERNEL)}, "layer0_kernel must be real"),
    "state of a layer that is not stateful": (rnn_dense_config(), {**GOOD, "layer0_state": H0}, "has a state array but is not stateful"),
    "state output followed by a layer": (rnn_dense_config(return_state=True), GOOD, "follows a SimpleRNN with return_state"),
    "SimpleRNN after a vector": (
        {**rnn_dense_config(), "layers": [{"class": "SimpleRNN"}, {"class": "SimpleRNN"}]},
        dict(layer0_kernel=KERNEL, layer0_recurrent_kernel=RECURRENT, layer1_kernel=np.ones((U, 2), np.float32),
             layer1_recurrent_kernel=np.eye(2, dtype=np.float32)),
        "needs a sequence (B, T, D), but layers[0] outputs one vector per sample",
    ),
    "bad outputs": ({**rnn_dense_config(), "outputs": [0, 2]}, GOOD, "outputs index 2"),
}


@pytest.mark.parametrize("config, arrays, message", list(NPZ_REFUSALS.values()), ids=list(NPZ_REFUSALS))
def test_malformed_npz_is_refused(config, arrays, message, tmp_path):
    with pytest.raises(ValueError, match=re.escape(message)):
        rnn_ref.load(handmade(tmp_path, config, **arrays))


def test_pickled_npz_is_refused(tmp_path):
    weights_as_objects = np.empty(2, object)
    weights_as_objects[:] = [KERNEL, RECURRENT]
    path = handmade(tmp_path, rnn_dense_config(), layer0_weights=weights_as_objects, **GOOD)
    with pytest.raises(ValueError, match=r"array 'layer0_weights' is a pickled object array; rnn_ref loads with allow_pickle=False"):
        rnn_ref.load(path)


def test_files_of_other_kinds_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        rnn_ref.load(tmp_path / "missing.keras")
    (tmp_path / "text.keras").write_text("not a model")
    with pytest.raises(ValueError, match="neither a .keras model nor an .npz of weights"):
        rnn_ref.load(tmp_path / "text.keras")
    (tmp_path / "legacy.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    with pytest.raises(ValueError, match=r"legacy HDF5 \(.h5\) Keras file"):
        rnn_ref.load(tmp_path / "legacy.h5")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="neither config.json"):
        rnn_ref.load(tmp_path / "other.zip")
