"""``python -m rnn_ref check --layer lstm|gru``: the gated layers in each layout.

The examples ``examples/check_lstm_textbook.py`` and
``examples/check_gru_from_torch.py`` are checked as their docstrings say;
the functions at the top of this file (loaded by the checker from this very
file) are an LSTM written from PyTorch's equations and two ways of getting
its two biases wrong, a GRU in the torch layout that takes ``reset_after``,
and a SimpleRNN. The checker runs in this process (``rnn_ref.commands.check.main``)
on property subsets with a few examples each, to keep the file fast; the
tests of the probe and of the hints never reach Keras.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from check_helpers import result_line, run_check
from rnn_ref.harness.candidate import Adapted, load_function, probe, split_bias, to_layout
from rnn_ref.models.registry import GRU, LSTM

ROOT = Path(__file__).resolve().parents[1]
HERE = str(Path(__file__).resolve())
LSTM_EXAMPLE = str(ROOT / "examples" / "check_lstm_textbook.py")
GRU_EXAMPLE = str(ROOT / "examples" / "check_gru_from_torch.py")


# -- functions under test -------------------------------------------------------------
# Letters: B batch, T time steps, D input features, U units.

def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


def _lstm_torch(x, weight_ih, weight_hh, bias_ih, bias_hh):
    """PyTorch's LSTM: x (B, T, D), weight_ih (4U, D), weight_hh (4U, U), gates i, f, g, o."""
    B, T, _ = x.shape
    U = weight_hh.shape[1]
    h = np.zeros((B, U), x.dtype)
    c = np.zeros((B, U), x.dtype)
    for t in range(T):
        a = x[:, t] @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh  # (B, 4U)
        i, f, g, o = np.split(a, 4, axis=1)  # (B, U) each
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
    return h


def lstm_torch(x, weight_ih, weight_hh, bias_ih, bias_hh):
    return _lstm_torch(x, weight_ih, weight_hh, bias_ih, bias_hh)


def lstm_torch_ignores_bias_hh(x, weight_ih, weight_hh, bias_ih, bias_hh):
    """Only the input bias: wrong whenever bias_hh is not zero."""
    return _lstm_torch(x, weight_ih, weight_hh, bias_ih, np.zeros_like(bias_hh))


def lstm_torch_doubles_bias_ih(x, weight_ih, weight_hh, bias_ih, bias_hh):
    """bias_ih counted twice: right only if the bias were split evenly."""
    return _lstm_torch(x, weight_ih, weight_hh, bias_ih, bias_ih)


_gru_torch = load_function(f"{GRU_EXAMPLE}:gru_torch")


def gru_torch_with_reset_after(x, weight_ih, weight_hh, bias_ih, bias_hh, reset_after=True):
    """A torch-layout GRU that takes reset_after (and computes reset_after=True whatever it is given)."""
    return _gru_torch(x, weight_ih, weight_hh, bias_ih, bias_hh)


def simple_rnn_keras(x, kernel, recurrent_kernel, bias):
    """A SimpleRNN in Keras's layout: x (B, T, D), kernel (D, U), recurrent_kernel (U, U)."""
    B, T, _ = x.shape
    h = np.zeros((B, recurrent_kernel.shape[0]), x.dtype)
    for t in range(T):
        h = np.tanh(x[:, t] @ kernel + h @ recurrent_kernel + bias)  # (B, U)
    return h


def _minimal_case(out: str) -> dict:
    """B, T, D, U of the first "minimal case:" line."""
    line = next(ln for ln in out.splitlines() if ln.startswith("minimal case:"))
    return {k: int(v) for k, v in re.findall(r"\b([BTDU])=(\d+)", line)}


FAST = ["--max-examples", "5", "--property", "matches_keras,batch_rows_are_independent"]


# -- the examples ---------------------------------------------------------------------

@pytest.mark.keras
def test_textbook_lstm_example_passes_in_the_textbook_layout(capsys):
    status, out, err = run_check(capsys, f"{LSTM_EXAMPLE}:lstm_forward", "--layer", "lstm", "--layout", "textbook",
                                 *FAST)
    assert status == 0, out + err
    assert "(LSTM, layout textbook)" in out
    assert "called as lstm_forward(x, W, U_rec, b)" in out
    assert "2 pass of 2 properties" in out


@pytest.mark.keras
def test_gru_written_from_torch_passes_in_the_torch_layout(capsys):
    status, out, err = run_check(capsys, f"{GRU_EXAMPLE}:gru_torch", "--layer", "gru", "--layout", "torch", *FAST)
    assert status == 0, out + err
    assert "(GRU, layout torch)" in out
    assert "2 pass of 2 properties" in out
    assert "no reset_after=False" in next(ln for ln in out.splitlines() if ln.startswith("not checked: "))


@pytest.mark.keras
def test_gru_ported_with_torch_gate_order_fails_on_a_tiny_case(capsys):
    status, out, err = run_check(capsys, f"{GRU_EXAMPLE}:gru_ported", "--layer", "gru", "--max-examples", "5",
                                 "--property", "matches_keras")
    assert status == 1, out + err
    assert result_line(out, "matches_keras").startswith("FAIL")
    case = _minimal_case(out)
    assert case["U"] <= 2 and case["T"] <= 2 and case["B"] <= 2, case
    assert "layer=GRU" in out and "reset_after=True" in out


# -- PyTorch's two biases -------------------------------------------------------------

def test_torch_layout_splits_a_bias_unevenly():
    b = np.linspace(-1, 1, 8).astype(np.float32)  # an LSTM's (4U,) with U = 2
    ih, hh = split_bias(b)
    np.testing.assert_allclose(ih + hh, b, rtol=0, atol=1e-6)
    assert not np.allclose(ih, hh) and not np.allclose(hh, 0)  # neither half nor all in one
    k, r = np.ones((3, 8), np.float32), np.ones((2, 8), np.float32)
    *_, bias_ih, bias_hh = to_layout("torch", k, r, b, LSTM)
    np.testing.assert_array_equal(bias_ih, ih)  # an LSTM's blocks are in the same order in both


@pytest.mark.keras
def test_torch_layout_lstm_passes(capsys):
    status, out, err = run_check(capsys, f"{HERE}:lstm_torch", "--layer", "lstm", "--layout", "torch",
                                 "--max-examples", "5", "--property", "matches_keras")
    assert status == 0, out + err
    assert "(LSTM, layout torch)" in out and "1 pass of 1 properties" in out


@pytest.mark.keras
@pytest.mark.parametrize("name", ["lstm_torch_ignores_bias_hh", "lstm_torch_doubles_bias_ih"])
def test_torch_layout_lstm_with_a_wrong_bias_fails(capsys, name):
    status, out, err = run_check(capsys, f"{HERE}:{name}", "--layer", "lstm", "--layout", "torch",
                                 "--max-examples", "5", "--property", "matches_keras")
    assert status == 1, out + err
    assert result_line(out, "matches_keras").startswith("FAIL")
    case = _minimal_case(out)
    assert case["U"] <= 2 and case["T"] <= 2, case


# -- the probe and the hints (no Keras) --------------------------------------------------

def test_probe_declines_reset_after_false_in_the_torch_layout_and_says_why():
    found = probe(Adapted(gru_torch_with_reset_after, "torch", spec=GRU))
    assert found.problem is None
    assert found.support.reset_after == (True,)
    why = found.declined["reset_after=False"]
    assert why.startswith("NotImplementedError: the torch layout is a GRU with reset_after=True"), why


def test_probe_declines_reset_after_false_for_a_torch_gru_without_the_option():
    found = probe(Adapted(_gru_torch, "torch", spec=GRU))
    assert found.problem is None
    assert found.support.reset_after == (True,)
    assert found.declined["reset_after=False"].startswith("NotImplementedError: ")


def test_simple_rnn_checked_as_an_lstm_exits_2_with_a_layer_hint(capsys):
    status, out, err = run_check(capsys, f"{HERE}:simple_rnn_keras", "--layer", "lstm")
    assert status == 2, out + err
    assert "cannot be called" in err
    assert err.rstrip().endswith("did you mean --layer simple_rnn?"), err
    assert out == ""


def test_lstm_checked_without_layer_exits_2_with_a_layer_hint(capsys):
    status, out, err = run_check(capsys, f"{HERE}:lstm_torch", "--layout", "torch")
    assert status == 2, out + err
    assert err.rstrip().endswith("did you mean --layer lstm?"), err  # --layout torch is given already
    status, out, err = run_check(capsys, f"{LSTM_EXAMPLE}:lstm_forward", "--layout", "textbook")
    assert status == 2, out + err
    assert err.rstrip().endswith("did you mean --layer lstm?"), err
    status, out, err = run_check(capsys, "rnn_ref.layers.lstm:lstm")
    assert status == 2, out + err
    assert err.rstrip().endswith("did you mean --layer lstm?"), err


def test_layer_hint_names_the_layout_when_it_differs_from_the_one_given(capsys):
    # Keras's layout LSTM checked with --layout torch and no --layer: the hint must give both
    # --layer lstm and --layout keras (the command already says --layout torch).
    status, out, err = run_check(capsys, "rnn_ref.layers.lstm:lstm", "--layout", "torch")
    assert status == 2, out + err
    assert "did you mean --layer lstm --layout keras?" in err, err


def test_probe_finds_every_gated_option_of_the_reference():
    import rnn_ref
    from rnn_ref.harness.cases import FULL, GATE_ACTIVATIONS

    for fn, spec in ((rnn_ref.lstm, LSTM), (rnn_ref.gru, GRU)):
        found = probe(Adapted(fn, spec=spec))
        assert found.problem is None and found.declined == {}, found.declined
        assert found.support.recurrent_activation == GATE_ACTIVATIONS
        assert found.support == FULL._replace(reset_after=FULL.reset_after if spec is GRU else (True,),
                                              merge_mode=("concat",))  # a layer, not a Bidirectional


def test_a_gated_function_without_options_is_probed_to_the_default_configuration():
    fn = load_function(f"{LSTM_EXAMPLE}:lstm_forward")
    found = probe(Adapted(fn, "textbook", spec=LSTM))
    assert found.problem is None
    assert found.support.recurrent_activation == ("sigmoid",)
    assert "recurrent_activation='hard_sigmoid'" in found.declined


@pytest.mark.keras
def test_the_run_reports_the_gate_options_it_covered(capsys):
    status, out, err = run_check(capsys, "rnn_ref:gru", "--layer", "gru", "--property", "matches_keras",
                                 "--max-examples", "8")
    assert status == 0, out + err
    assert "checking rnn_ref:gru (GRU, layout keras)" in out
    checked = next(line for line in out.splitlines() if line.startswith("checked:"))
    assert "recurrent_activation sigmoid" in checked and "reset_after=True" in checked, checked


def lstm_torch_nested(x, weight_ih, weight_hh, bias_ih, bias_hh):
    """As PyTorch's nn.LSTM returns: every step's h (B, T, U), then (h_n, c_n)."""
    B, T, _ = x.shape
    U = weight_hh.shape[1]
    h, c, hs = np.zeros((B, U), x.dtype), np.zeros((B, U), x.dtype), []
    for t in range(T):
        a = x[:, t] @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh  # (B, 4U)
        i, f, g, o = np.split(a, 4, axis=1)  # (B, U) each
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        hs.append(h)
    return np.stack(hs, axis=1), (h, c)


@pytest.mark.keras
def test_pytorch_style_nested_states_are_read_flat(capsys):
    status, out, err = run_check(capsys, f"{HERE}:lstm_torch_nested", "--layer", "lstm", "--layout", "torch",
                                 "--property", "matches_keras,return_sequences_last_step_is_output",
                                 "--max-examples", "5")
    assert status == 0, out + err
    assert "read flat, (output, h, c)" in out and "returns every step's output" in out
