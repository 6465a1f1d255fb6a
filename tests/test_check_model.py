"""check-model: a saved Keras model on other runtimes, judged against Keras and the float64 truth.

The model is small and masked, with random asymmetric weights and non-zero biases:
``Embedding(30, 5, mask_zero=True) -> Bidirectional(GRU(4, return_sequences=True)) -> LSTM(3)
-> Dense(2)`` (input_dim != units everywhere). Keras's JAX and NumPy backends and ONNX Runtime
pass it; each runtime-level bug of ``rnn_ref/implementations/runtime_mutants.py`` fails the
property that concerns it, every property fails on some bug, and a runtime that cannot run
the model exits 3.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from rnn_ref.harness.model_checks import MODEL_PROPERTIES, run_model_property
from rnn_ref.implementations.runtime_mutants import RUNTIME_MUTANTS, correct, double_onnx_initializer

from check_helpers import port_checkers, run_check_model as run_cli  # noqa: E402  (tests/ is on sys.path)

pytestmark = pytest.mark.keras

EXAMPLES = 4  # a property; the runs below draw few, small inputs to stay quick on 2 cores


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from rnn_ref._tf import keras_and_tf

    keras, _ = keras_and_tf()
    keras.utils.set_random_seed(3)
    inp = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(30, 5, mask_zero=True)(inp)
    x = keras.layers.Bidirectional(keras.layers.GRU(4, return_sequences=True))(x)
    x = keras.layers.LSTM(3)(x)
    model = keras.Model(inp, keras.layers.Dense(2)(x))
    rng = np.random.default_rng(0)
    for w in model.weights:  # biases too: zero biases hide bias bugs
        w.assign(rng.uniform(-0.6, 0.6, w.shape).astype("float32"))
    path = tmp_path_factory.mktemp("check_model") / "masked.keras"
    model.save(path)
    return path, model


@pytest.fixture(scope="module")
def checker_for(saved):
    return port_checkers(*saved)


@pytest.mark.parametrize("runtime", ["jax", "numpy", "onnx"])
def test_runtime_computes_what_keras_computes(saved, capsys, runtime):
    status, out = run_cli(capsys, saved[0], "--runtime", runtime, "--max-examples", EXAMPLES)
    passed = [l for l in out.splitlines() if l.startswith("pass ")]
    assert status == 0, out
    assert len(passed) >= 6, f"only {len(passed)} properties checked:\n{out}"


def test_keras_itself_and_a_predict_function_pass(saved, capsys, tmp_path):
    status, out = run_cli(capsys, saved[0], "--runtime", "keras", "--max-examples", 2,
                          "--property", "unpadded_matches_keras,left_padding_matches_keras")
    assert status == 0, out
    script = tmp_path / "port.py"
    script.write_text(f"import rnn_ref\nmodel = rnn_ref.load({str(saved[0])!r})\n\n"
                      "def predict(inputs):\n    return [model(inputs[0])]\n")
    status, out = run_cli(capsys, saved[0], "--runtime", f"{script}:predict", "--max-examples", 2,
                          "--property", "right_padding_matches_keras,batch_of_one_equals_its_row")
    assert status == 0, out


def test_the_correct_callable_passes_every_property(saved, checker_for):
    checker = checker_for(correct(saved[1]))
    for name in MODEL_PROPERTIES:
        r = run_model_property(name, checker, max_examples=EXAMPLES)
        assert r.status == "pass", f"{name}: {r.message}"


# Each bug and the property that concerns it most directly.
CATCHES = {
    "gru_bias_twice": "unpadded_matches_keras",
    "masked_lstm_outputs_zeros": "right_padding_matches_keras",
    "left_padding_as_right": "left_padding_matches_keras",
    "bidirectional_backward_not_flipped": "unpadded_matches_keras",
}


@pytest.mark.parametrize("mutant", sorted(RUNTIME_MUTANTS))
def test_each_runtime_bug_fails_with_a_minimal_input(saved, checker_for, mutant):
    checker = checker_for(RUNTIME_MUTANTS[mutant](saved[1]))
    r = run_model_property(CATCHES[mutant], checker, max_examples=EXAMPLES * 2, shrink_seconds=10)
    assert r.status == "FAIL", f"{mutant} passed {CATCHES[mutant]}"
    assert "exceed the budget" in r.message or "Keras disagrees" in r.message, r.message
    assert r.example.B * r.example.T <= 8, f"{mutant}: not minimal: {r.example.describe()}"


# Every property fails on some plausible bug (here the one that reaches it first).
FAILS_ON = {
    "unpadded_matches_keras": "gru_bias_twice",
    "right_padding_matches_keras": "masked_lstm_outputs_zeros",
    "left_padding_matches_keras": "left_padding_as_right",
    "random_padding_matches_keras": "left_padding_as_right",
    "fully_padded_rows_match_keras": "masked_lstm_outputs_zeros",
    "single_step_matches_keras": "gru_bias_twice",
    "long_sequence_matches_keras": "bidirectional_backward_not_flipped",
    "batch_rows_are_independent": "gru_bias_twice",
    "batch_of_one_equals_its_row": "gru_bias_twice",
}


def test_every_property_fails_on_some_bug(saved, checker_for):
    assert set(FAILS_ON) == set(MODEL_PROPERTIES)
    for name, mutant in FAILS_ON.items():
        r = run_model_property(name, checker_for(RUNTIME_MUTANTS[mutant](saved[1])), max_examples=EXAMPLES,
                               shrink_seconds=3)
        assert r.status == "FAIL", f"{name} passed {mutant}"


def test_an_onnx_file_with_a_doubled_initializer_fails(saved, capsys, tmp_path):
    from rnn_ref.runtimes.onnx_runtime import convert

    good, bad = tmp_path / "model.onnx", tmp_path / "edited.onnx"
    good.write_bytes(convert(saved[1]))
    name = double_onnx_initializer(good, bad)
    status, out = run_cli(capsys, saved[0], "--runtime", "onnx", "--artifact", bad, "--max-examples", EXAMPLES,
                          "--property", "unpadded_matches_keras")
    assert status == 1, out
    assert "=== FAIL unpadded_matches_keras" in out and "minimal input: B=1 T=1" in out, (name, out)


def test_a_runtime_that_cannot_run_the_model_exits_3(saved, capsys, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx graph")
    status, out = run_cli(capsys, saved[0], "--runtime", "onnx", "--artifact", broken)
    assert status == 3 and "declined: the onnx runtime cannot run" in out, out
    if importlib.util.find_spec("torch") is None:
        status, out = run_cli(capsys, saved[0], "--runtime", "torch")
        assert status == 3 and "needs the package 'torch'" in out, out


def test_usage_errors_exit_2(saved, capsys, tmp_path):
    assert run_cli(capsys, tmp_path / "missing.keras", "--runtime", "onnx")[0] == 2
    assert run_cli(capsys, saved[0], "--runtime", "tensorrt")[0] == 2
    assert run_cli(capsys, saved[0], "--runtime", "onnx", "--property", "nope")[0] == 2


@pytest.fixture(scope="module")
def saved_several_outputs(tmp_path_factory):
    """Embedding(mask_zero) -> LSTM(return_sequences, return_state): three outputs, (y, h, c)."""
    from rnn_ref._tf import keras_and_tf

    keras, _ = keras_and_tf()
    keras.utils.set_random_seed(5)
    inp = keras.Input((None,), dtype="int32")
    outs = keras.layers.LSTM(3, return_sequences=True, return_state=True)(
        keras.layers.Embedding(20, 4, mask_zero=True)(inp))
    model = keras.Model(inp, outs)
    rng = np.random.default_rng(1)
    for w in model.weights:
        w.assign(rng.uniform(-0.6, 0.6, w.shape).astype("float32"))
    path = tmp_path_factory.mktemp("check_model") / "several.keras"
    model.save(path)
    return path


@pytest.mark.parametrize("order", ["signature", "flatbuffer"])
def test_litert_outputs_in_keras_order(saved_several_outputs, capsys, monkeypatch, order):
    """LiteRT lists a converted model's outputs in the flatbuffer's order, (h, y, c) here; the
    runtime reads them in the signature's (Keras's) order. Read in the flatbuffer's order (the
    mutant), the check fails."""
    from rnn_ref.runtimes import litert

    if order == "flatbuffer":
        monkeypatch.setattr(litert, "keras_order", lambda interpreter, outputs: outputs)
    status, out = run_cli(capsys, saved_several_outputs, "--runtime", "litert", "--max-examples", 2,
                          "--property", "unpadded_matches_keras")
    assert status == (0 if order == "signature" else 1), out


def test_a_converter_mlir_dump_is_summarised_by_op():
    """The TFLite converter's refusal of a float64 model is one MLIR line per op and then the
    function's text; the message keeps the head and each complaint once, naming its ops."""
    from rnn_ref.runtimes.base import first_lines

    loc = 'loc(callsite(fused["{0}:", "model/{0}@__inference_function_1"] at fused["StatefulPartitionedCall:", "x"]))'
    dump = "Could not translate MLIR to FlatBuffer." + "\n".join(
        f"<unknown>:0: error: {loc.format(op)}: 'tf.{op}' op is neither a custom op nor a flex op\n"
        f"<unknown>:0: note: {loc.format(op)}: Error code: ERROR_NEEDS_FLEX_OPS"
        for op in ("MatMul", "BiasAdd", "MatMul", "Tanh")) + '\n  %36 = "tf.BiasAdd"(%35, %7) : (tensor<2x2xf64>)\n})'
    text = first_lines(dump)
    assert text == ("Could not translate MLIR to FlatBuffer. 'tf.MatMul', 'tf.BiasAdd', 'tf.Tanh' op is neither "
                    "a custom op nor a flex op"), text
    assert first_lines("plain failure\nerror: the reason") == "error: the reason"


@pytest.mark.parametrize("backend, hint", [("torch", "pip install -e '.[torch]'"),
                                           ("jax", "pip install -e '.[runtimes]'")])
def test_a_missing_backend_package_is_declined_with_its_install_command(backend, hint, monkeypatch, tmp_path):
    from rnn_ref.runtimes import backend as backend_runtime
    from rnn_ref.runtimes.base import Declined

    monkeypatch.setattr(backend_runtime.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(Declined, match=rf"needs the package '{backend}', which is not installed; "
                                        + hint.replace("[", r"\[").replace(".", r"\.")):
        backend_runtime.BackendRuntime(backend, str(tmp_path / "model.keras"))
