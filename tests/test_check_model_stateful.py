"""check-model on a stateful model: chunked calls carry the states as Keras does.

The model is the conformance catalogue's ``stateful`` one: ``Input(batch 2) ->
Embedding(20, 4, mask_zero) -> LSTM(3, stateful) -> Dense(2)``. Keras on TensorFlow, a
correct port and LiteRT pass ``stateful_chunks_match_keras``; a port that forgets the
carried states (``forgets_carried_state``) and the ONNX graph (which holds no state) fail it
with two chunks of one step; every other property zeroes the states before each call, and
without that reset Keras itself would be reported to fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnn_ref.harness.context import PropertyFailure
from rnn_ref.harness.model_checks import (MODEL_PROPERTIES, STATEFUL_PROPERTIES, Checker, properties_for,
                                          run_model_property, signature_of)
from rnn_ref.harness.stateful_checks import ChunkedExample, joins
from rnn_ref.implementations.runtime_mutants import STATEFUL_MUTANTS, correct

from check_helpers import port_checkers, run_check_model as run_cli  # noqa: E402  (tests/ is on sys.path)

pytestmark = pytest.mark.keras

PROPERTY = "stateful_chunks_match_keras"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from rnn_ref._tf import keras_and_tf
    from rnn_ref.commands.conformance_models import select

    keras, _ = keras_and_tf()
    model = select("stateful")[0].make(keras)
    path = tmp_path_factory.mktemp("stateful") / "stateful.keras"
    model.save(path)
    return path, model


@pytest.fixture(scope="module")
def checker_for(saved):
    return port_checkers(*saved)


def test_keras_passes_every_property_with_the_states_reset(saved, capsys):
    status, out = run_cli(capsys, saved[0], "--runtime", "keras", "--max-examples", 4)
    assert status == 0, out
    assert any(l.startswith("pass ") and PROPERTY in l for l in out.splitlines()), out
    assert "batch fixed at 2" in out and "stateful layer(s)" in out


def test_without_the_reset_keras_itself_would_fail(saved, capsys, monkeypatch):
    """The states left by one example leak into the next when nothing zeroes them."""
    from rnn_ref.runtimes.keras_tf import KerasTF

    monkeypatch.setattr(KerasTF, "reset_state", lambda self: None)
    status, out = run_cli(capsys, saved[0], "--runtime", "keras", "--max-examples", 4,
                          "--property", "unpadded_matches_keras")
    assert status == 1, out


def test_a_correct_port_passes(saved, checker_for):
    r = run_model_property(PROPERTY, checker_for(correct(saved[1])), max_examples=8)
    assert r.status == "pass" and r.checked == 8, r.message


def test_a_port_that_forgets_the_states_fails_with_two_chunks_of_one_step(saved, checker_for):
    checker = checker_for(STATEFUL_MUTANTS["forgets_carried_state"](saved[1]))
    for name in MODEL_PROPERTIES:  # from zero states it computes what Keras computes
        assert run_model_property(name, checker, max_examples=2).status in ("pass", "unsupported"), name
    r = run_model_property(PROPERTY, checker, max_examples=8, shrink_seconds=10)
    assert r.status == "FAIL", r.message
    assert (r.example.B, r.example.T, r.example.splits) == (2, 2, (1,)), r.example.describe()
    assert "chunk 2 of 2" in r.message and "exceed the budget" in r.message, r.message


def test_a_port_that_carries_h_but_not_c_fails(saved, checker_for):
    """The LSTM's cell state zeroed between calls, its output state carried: chunk 2 is off."""
    import rnn_ref
    from rnn_ref.models.recurrent import LSTM

    m = rnn_ref.from_keras(saved[1])
    lstm = next(layer for layer in m.layers if isinstance(layer, LSTM))

    def predict(inputs):
        out = m(inputs[0])
        setattr(lstm, lstm.STATE[1], np.zeros_like(getattr(lstm, lstm.STATE[1])))
        return [out]

    predict.reset_state = m.reset_state
    checker = checker_for(predict)
    r = run_model_property(PROPERTY, checker, max_examples=8, shrink_seconds=10)
    assert r.status == "FAIL" and "chunk 2 of" in r.message, r.message
    ex = ChunkedExample(2, 6, "none", (True,) * 12, 5, (3,))
    with pytest.raises(PropertyFailure, match="chunk 2 of 2 .steps 3..5.*exceed the budget"):
        STATEFUL_PROPERTIES[PROPERTY].check(checker, ex)


def test_needs_a_stateful_layer(saved, tmp_path):
    import rnn_ref
    from rnn_ref._tf import keras_and_tf

    keras, _ = keras_and_tf()
    inp = keras.Input((None,), dtype="int32")
    model = keras.Model(inp, keras.layers.LSTM(3)(keras.layers.Embedding(20, 4, mask_zero=True)(inp)))
    np_model = rnn_ref.from_keras(model)
    sig = signature_of(np_model)
    assert not sig.stateful and sig.batch is None
    assert PROPERTY not in properties_for(sig)
    checker = Checker(correct(model), model.predict_on_batch, np_model, sig)
    r = run_model_property(PROPERTY, checker)
    assert r.status == "unsupported" and "needs a stateful layer" in r.message
    stateful = signature_of(rnn_ref.from_keras(saved[1]))
    assert stateful.batch == 2 and PROPERTY in properties_for(stateful)
    assert joins(rnn_ref.from_keras(saved[1])) and not joins(np_model)


def test_a_function_without_reset_checks_nothing(saved, capsys, tmp_path):
    script = tmp_path / "port.py"
    body = (f"import rnn_ref\nmodel = rnn_ref.load({str(saved[0])!r})\n\n"
            "def predict(inputs):\n    return [model(inputs[0])]\n")
    script.write_text(body)
    status, out = run_cli(capsys, saved[0], "--runtime", f"{script}:predict", "--max-examples", 2)
    assert status == 3 and "has no reset_state" in out, out
    script.write_text(body + "\n\ndef reset_state():\n    model.reset_state()\n")
    status, out = run_cli(capsys, saved[0], "--runtime", f"{script}:predict", "--max-examples", 4,
                          "--property", f"unpadded_matches_keras,{PROPERTY}")
    assert status == 0, out


@pytest.mark.parametrize("runtime,expected", [("litert", 0), ("onnx", 1), ("numpy", 0)])
def test_converted_and_backend_runtimes(saved, capsys, runtime, expected):
    """Measured: LiteRT carries the states in its variable tensors; the ONNX graph holds none
    (each call starts from zeros); Keras's NumPy backend carries them (the worker's reset frame
    zeroes them)."""
    props = f"unpadded_matches_keras,{PROPERTY}" if runtime != "numpy" else "unpadded_matches_keras"
    status, out = run_cli(capsys, saved[0], "--runtime", runtime, "--max-examples", 4, "--property", props)
    assert status == expected, out
    if expected == 1:
        assert f"=== FAIL {PROPERTY}" in out and "minimal input: B=2 T=2" in out, out
        assert any(l.startswith("pass ") and "unpadded_matches_keras" in l for l in out.splitlines()), out
