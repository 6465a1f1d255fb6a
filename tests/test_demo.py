"""``python -m rnn_ref demo``: both models, Keras and the NumPy rebuild side by side."""

import re

import pytest

from rnn_ref.__main__ import main as cli


@pytest.mark.keras
def test_demo_shows_both_models_with_small_differences(capsys):
    assert cli(["demo", "--batch", "3", "--steps", "40"]) == 0
    out = capsys.readouterr().out
    simple, stacked = out.split("== lstm_gru:")
    assert "== simple_rnn: Embedding(5000, 32) -> SimpleRNN(100) -> Dense(1, sigmoid)" in simple
    assert "SimpleRNN(" in simple
    assert "Bidirectional(LSTM(64, return_sequences=True)) -> GRU(32)" in stacked
    assert re.search(r"Bidirectional\('\w+', LSTM\(", stacked) and re.search(r"GRU\('\w+', D=128, U=32", stacked)
    assert "mask_zero=True" in stacked
    for part in (simple, stacked):
        assert len(re.findall(r"^\s+\d+\s+\d+\s+\d+\s+0\.\d+\s+0\.\d+\s+\S+$", part, re.M)) == 3  # one row each
        (diff,) = re.findall(r"max abs difference: (\S+)", part)
        assert float(diff) < 1e-5, part  # float32 outputs in (0, 1): a few ulps
        assert "time: keras predict" in part and "numpy" in part
    assert "== summary ==" in stacked


def test_demo_refuses_an_unknown_model(capsys):
    with pytest.raises(SystemExit) as e:
        cli(["demo", "--model", "transformer"])
    assert e.value.code == 2
    assert "invalid choice: 'transformer'" in capsys.readouterr().err
