"""check-model on ``Masking`` and on models of several inputs (initial states and a mask as
``keras.Input``s): the catalogue's ``masking``, ``states`` and ``mask_input`` models.

Keras on TensorFlow and a correct port pass every property, with the padding drawn into
the floats (Masking) or into the mask input. Four runtime-level bugs must fail with a
minimal input: the initial-state inputs ignored, the mask input ignored, the initial state
output at leading masked steps (what Keras's JAX and NumPy backends do there), and a
Masking that masks a step when any one feature equals ``mask_value``.
"""

from __future__ import annotations

import pytest

from rnn_ref.commands import check_model
from rnn_ref.harness.model_checks import MODEL_PROPERTIES, run_model_property
from rnn_ref.implementations.runtime_mutants import INPUT_MUTANTS, correct

from check_helpers import port_checkers  # noqa: E402  (tests/ is on sys.path)

pytestmark = pytest.mark.keras

MODELS = ("masking", "states", "mask_input")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from rnn_ref._tf import keras_and_tf
    from rnn_ref.commands.conformance_models import select

    keras, _ = keras_and_tf()
    out = {}
    for name in MODELS:
        model = select(name)[0].make(keras)
        path = tmp_path_factory.mktemp(name) / f"{name}.keras"
        model.save(path)
        out[name] = (path, model)
    return out


@pytest.fixture(scope="module")
def checker_for(saved):
    makers = {name: port_checkers(*saved[name]) for name in MODELS}
    return lambda name, predict: makers[name](predict)


@pytest.mark.parametrize("name", MODELS)
def test_keras_passes_every_property_with_padding_drawn(name, saved, capsys):
    status = check_model.main([str(saved[name][0]), "--runtime", "keras", "--max-examples", "4"])
    out = capsys.readouterr().out
    assert status == 0, out
    lines = [l for l in out.splitlines() if l.startswith("pass ")]
    assert len(lines) == len(MODEL_PROPERTIES), out  # every padding property ran: nothing unsupported
    assert "padding full, left, none, random, right" in out, out


@pytest.mark.parametrize("name", MODELS)
def test_a_correct_port_passes(name, saved, checker_for):
    for prop in ("left_padding_matches_keras", "batch_rows_are_independent"):
        r = run_model_property(prop, checker_for(name, correct(saved[name][1])), max_examples=6)
        assert r.status == "pass" and r.checked == 6, (prop, r.message)


@pytest.mark.parametrize("mutant, name, prop", [
    ("ignores_initial_state", "states", "unpadded_matches_keras"),
    ("ignores_mask_input", "mask_input", "random_padding_matches_keras"),
    ("initial_state_at_leading_masked_steps", "mask_input", "left_padding_matches_keras"),
    ("masking_any_feature", "masking", "unpadded_matches_keras"),
])
def test_input_mutants_fail_with_a_minimal_input(mutant, name, prop, saved, checker_for):
    r = run_model_property(prop, checker_for(name, INPUT_MUTANTS[mutant](saved[name][1])), max_examples=20)
    assert r.status == "FAIL", (mutant, r.status, r.message)
    assert "exceed the budget" in r.message, r.message  # the numbers are wrong, nothing raised
    assert r.example.B * r.example.T <= 8, r.example.describe()
    assert isinstance(r.inputs, list) == (name != "masking")


def test_the_reproduction_script_holds_every_input(saved, checker_for):
    from rnn_ref.harness.model_checks import reproduction

    r = run_model_property("left_padding_matches_keras",
                           checker_for("mask_input", INPUT_MUTANTS["ignores_mask_input"](saved["mask_input"][1])),
                           max_examples=20)
    script = reproduction(r, str(saved["mask_input"][0]), "keras")
    assert "got = rt.predict(x)" in script and script.count("np.array(") == 3
    compile(script, "repro.py", "exec")


def test_an_input_no_layer_reads_is_still_given(tmp_path, capsys):
    """Keras builds a model with an input that no layer uses, and its predict still wants it."""
    from rnn_ref._tf import keras_and_tf

    keras, _ = keras_and_tf()
    x, h0, unused = keras.Input((None, 3)), keras.Input((4,)), keras.Input((None, 2))
    model = keras.Model([x, h0, unused], keras.layers.SimpleRNN(4)(x, initial_state=h0))
    path = tmp_path / "unused.keras"
    model.save(path)
    status = check_model.main([str(path), "--runtime", "keras", "--max-examples", "3",
                               "--property", "unpadded_matches_keras"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "read by no layer, zeros" in out
