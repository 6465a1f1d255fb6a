"""``python -m rnn_ref demo``: both models, Keras and the NumPy rebuild side by side.

Tolerance for the demo's two models against Keras: the harness's budget, through
``tests/model_judging.judge_model`` (over ``rnn_ref.harness.judging.judge_outputs``),
on the very arrays the demo prints (its ``side_by_side`` is wrapped to keep the Keras
model and the token ids): the truth is the rebuilt NumPy model with its weights in
float64, the conditioning how far that moves when they are perturbed by
``tolerance.PERTURB_ULPS`` units of roundoff; the outputs fail where their error
exceeds ``FACTOR * max(Keras's error, conditioning)`` plus a floor with m the longest
dot product of the model, and Keras fails beyond ``FACTOR * conditioning + floor``.
It replaces a printed ``max abs difference < 1e-5``; the printed figure must be that
of the judged arrays (the same string). A rebuild with its first recurrent kernel
transposed is rejected by the same judge (``test_demo_comparison_rejects_a_transposed_kernel``).
Measured: the demo's two models at most 0.03 of the budget, the transposed kernel 1.4e4
times it.
"""

import copy
import re

import numpy as np
import pytest

import rnn_ref
from model_judging import assert_rejected, judge_model
from rnn_ref.commands import demo
from rnn_ref.commands.main import main as cli


def run_demo(monkeypatch, capsys, *argv):
    """Run the demo; return its output and, per model in the order run, (Keras model, ids)."""
    seen = []
    real = demo.side_by_side

    def recording(model, ids, lengths, *, mask_zero):
        seen.append((model, ids))
        return real(model, ids, lengths, mask_zero=mask_zero)

    monkeypatch.setattr(demo, "side_by_side", recording)
    assert cli(["demo", *argv]) == 0
    return capsys.readouterr().out, seen


@pytest.mark.keras
def test_demo_shows_both_models_with_small_differences(monkeypatch, capsys):
    out, seen = run_demo(monkeypatch, capsys, "--batch", "3", "--steps", "40")
    simple, stacked = out.split("== lstm_gru:")
    assert "== simple_rnn: Embedding(5000, 32) -> SimpleRNN(100) -> Dense(1, sigmoid)" in simple
    assert "SimpleRNN(" in simple
    assert "Bidirectional(LSTM(64, return_sequences=True)) -> GRU(32)" in stacked
    assert re.search(r"Bidirectional\('\w+', LSTM\(", stacked) and re.search(r"GRU\('\w+', D=128, U=32", stacked)
    assert "mask_zero=True" in stacked
    assert len(seen) == 2
    for part, (model, ids) in zip((simple, stacked), seen):
        assert len(re.findall(r"^\s+\d+\s+\d+\s+\d+\s+0\.\d+\s+0\.\d+\s+\S+$", part, re.M)) == 3  # one row each
        (diff,) = re.findall(r"max abs difference: (\S+)", part)
        keras_out = model.predict(ids, verbose=0)
        judgement = judge_model(model.name, rnn_ref.from_keras(model), ids, keras_out).check()
        printed = np.max(np.abs(judgement.got.astype(np.float64) - keras_out.astype(np.float64)))
        assert diff == f"{printed:.2e}", f"the demo printed {diff}, its arrays differ by {printed:.2e}"
        assert "time: keras predict" in part and "numpy" in part
    assert "== summary ==" in stacked


@pytest.mark.keras
def test_demo_comparison_rejects_a_transposed_kernel(monkeypatch, capsys):
    """The rebuild of the demo's SimpleRNN model with its recurrent kernel (U, U) transposed (the
    shape fits, so it runs): the judge above must reject it."""
    _, ((model, ids),) = run_demo(monkeypatch, capsys, "--batch", "3", "--steps", "12", "--model", "simple_rnn")
    buggy = copy.deepcopy(rnn_ref.from_keras(model))
    rnn = buggy.layers[1]
    rnn.recurrent_kernel = np.ascontiguousarray(rnn.recurrent_kernel.T)
    assert_rejected(judge_model("transposed recurrent kernel", buggy, ids, model.predict(ids, verbose=0)),
                    "transposed recurrent kernel")


def test_demo_refuses_an_unknown_model(capsys):
    with pytest.raises(SystemExit) as e:
        cli(["demo", "--model", "transformer"])
    assert e.value.code == 2
    assert "invalid choice: 'transformer'" in capsys.readouterr().err
