"""``python -m rnn_ref check`` on functions that handle less than everything.

The checker reads a function's signature, probes what it handles, and draws
every property's cases inside that; these tests hold it to checking what a
function supports (with verdicts that say so), to the three layouts, and to
the arrays it hands over. The functions under test are loaded from this file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from check_helpers import result_line, run_check
from rnn_ref.harness.candidate import Adapted, split_bias
from rnn_ref.layers.simple_rnn import simple_rnn

pytestmark = pytest.mark.keras

ROOT = Path(__file__).resolve().parents[1]
HERE = str(Path(__file__).resolve())


# -- functions under test -----------------------------------------------------------

def torch_style(inputs, weight_ih, weight_hh, bias_ih, bias_hh, **options):
    """PyTorch's layout: weights (U, D) and (U, U), two biases."""
    bias = None if bias_ih is None else bias_ih + bias_hh
    return simple_rnn(inputs, weight_ih.T, weight_hh.T, bias, **options)


def torch_style_forgets_bias_hh(inputs, weight_ih, weight_hh, bias_ih, bias_hh, **options):
    return simple_rnn(inputs, weight_ih.T, weight_hh.T, bias_ih, **options)


def refuses_views(inputs, kernel, recurrent_kernel, bias=None, **options):
    """Refuses what torch.from_numpy refuses: negative strides and read-only arrays."""
    for a in (inputs, kernel, recurrent_kernel, bias, options.get("mask"), options.get("initial_state")):
        if a is not None and (not a.flags.c_contiguous or not a.flags.writeable or any(s < 0 for s in a.strides)):
            raise ValueError("At least one stride in the given numpy array is negative")
    return simple_rnn(inputs, kernel, recurrent_kernel, bias, **options)


def lacks_mish(inputs, kernel, recurrent_kernel, bias=None, *, activation="tanh", **options):
    if activation == "mish":
        raise NotImplementedError("mish is not implemented")
    return simple_rnn(inputs, kernel, recurrent_kernel, bias, activation=activation, **options)


def no_masks_bias_twice(inputs, kernel, recurrent_kernel, bias=None, *, mask=None, **options):
    """Declines masks, and adds the bias twice."""
    if mask is not None:
        raise NotImplementedError("masks are not supported")
    return simple_rnn(inputs, kernel, recurrent_kernel, None if bias is None else 2 * bias, **options)


def blocked_recurrence(inputs, kernel, recurrent_kernel, bias=None, **options):
    """Multiplies the state in blocks of 64 units and drops the products between
    blocks: right whenever U <= 64, wrong at the seed's U = 100."""
    rk = np.array(recurrent_kernel)
    rk[64:, :64] = 0
    rk[:64, 64:] = 0
    return simple_rnn(inputs, kernel, rk, bias, **options)


def only_three_steps(inputs, kernel, recurrent_kernel, bias=None, **options):
    """Runs on the probe's three steps, declines every other length."""
    if np.shape(inputs)[-2] != 3:
        raise NotImplementedError("only sequences of 3 steps")
    return simple_rnn(inputs, kernel, recurrent_kernel, bias, **options)


# -- helpers ----------------------------------------------------------------------

def _checked(line: str) -> int:
    return int(line.split()[2])


# -- the seeds' own style -------------------------------------------------------------

def test_function_without_keywords_is_checked_one_sequence_at_a_time(capsys):
    status, out, _ = run_check(capsys, "rnn_ref.implementations.variants:seed_rnn", "--layout", "textbook",
                                "--max-examples", "10")
    assert status == 0, out
    assert "called as seed_rnn(x, W, U, b); one sequence at a time" in out
    assert "declined: bias=None: TypeError" in out  # b added unconditionally: declined, not failed
    assert result_line(out, "matches_keras").startswith("pass") and _checked(result_line(out, "matches_keras")) == 11
    assert result_line(out, "mask_matches_keras").startswith("unsupported")
    assert "checked: tanh; float32, float64; bias;" in out
    assert "no masks" in next(ln for ln in out.splitlines() if ln.startswith("not checked: "))


def seed_states_bias_after_tanh(x, W, U, b):
    """Every state of one sequence, in float64, with the bias after tanh."""
    h, states = np.zeros(U.shape[0]), []
    for x_t in x:
        h = np.tanh(W @ x_t + U @ h) + b
        states.append(h)
    return np.array(states)


def test_a_function_returning_every_state_in_float64_is_read_as_such(capsys):
    status, out, _ = run_check(capsys, "rnn_ref.implementations.variants:seed_rnn_states", "--layout", "textbook",
                               "--max-examples", "10")
    assert status == 0, out
    called = next(ln for ln in out.splitlines() if ln.startswith("called as"))
    assert "one sequence at a time" in called and "returns every step's output" in called
    assert "rounded to the inputs' dtype" in called
    # return_sequences is its own output now: the last-step property is checked too
    assert result_line(out, "return_sequences_last_step_is_output").startswith("pass")
    status, out, _ = run_check(capsys, f"{HERE}:seed_states_bias_after_tanh", "--layout", "textbook",
                               "--property", "matches_keras")
    assert status == 1 and "minimal case: B=1 T=1 D=1 U=1" in out, out


def forward_returning_states_and_last(x, W, U, b):
    """The RNN-class style: every state of one sequence and the last one, ``return hs, h``."""
    h, hs = np.zeros(U.shape[0], x.dtype), []
    for x_t in x:
        h = np.tanh(W @ x_t + U @ h + b)
        hs.append(h)
    return np.array(hs), h


def forward_returning_states_and_last_no_bias(x, W, U, b):
    h, hs = np.zeros(U.shape[0], x.dtype), []
    for x_t in x:
        h = np.tanh(W @ x_t + U @ h)
        hs.append(h)
    return np.array(hs), h


def test_a_function_returning_several_arrays_is_read_by_its_first(capsys):
    status, out, _ = run_check(capsys, f"{HERE}:forward_returning_states_and_last", "--layout", "textbook",
                               "--max-examples", "8", "--property", "matches_keras,return_sequences_last_step_is_output")
    assert status == 0, out
    called = next(ln for ln in out.splitlines() if ln.startswith("called as"))
    assert "the first is its output" in called and "returns every step's output" in called
    status, out, _ = run_check(capsys, f"{HERE}:forward_returning_states_and_last_no_bias", "--layout", "textbook",
                               "--property", "matches_keras")
    assert status == 1 and "minimal case: B=1 T=1 D=1 U=1" in out, out


def test_the_bias_after_tanh_bug_is_caught_with_a_one_step_case(capsys, tmp_path):
    status, out, _ = run_check(capsys, "rnn_ref.implementations.mutants:seed_bias_after_tanh", "--layout", "textbook",
                                "--repro-dir", tmp_path, "--property", "matches_keras,single_step_equals_dense")
    assert status == 1, out
    assert "minimal case: B=1 T=1 D=1 U=1" in out
    assert "(the same wrong numbers in: single_step_equals_dense)" in out  # one block for one failure
    script = tmp_path / "repro_matches_keras.py"
    assert f"reproduce: python {script}" in out and (tmp_path / "repro_single_step_equals_dense.py").exists()
    text = script.read_text()
    assert "load_candidate('rnn_ref.implementations.mutants:seed_bias_after_tanh', layout='textbook')" in text


def test_reproduction_prints_a_small_case_and_fails_again(capsys, tmp_path, monkeypatch):
    run_check(capsys, "rnn_ref.implementations.mutants:seed_no_activation", "--layout", "textbook",
               "--repro-dir", tmp_path, "--property", "matches_keras")
    monkeypatch.chdir(ROOT)
    script = (tmp_path / "repro_matches_keras.py").read_text()
    exec(compile(script, "repro_matches_keras.py", "exec"), {"__name__": "__main__"})
    shown = capsys.readouterr().out
    assert "inputs = array([[[" in shown and "kernel = array(" in shown  # the arrays, small enough to print
    assert "matches_keras fails" in shown


def test_the_wrong_layout_gets_a_hint(capsys):
    status, _, err = run_check(capsys, "rnn_ref.implementations.variants:seed_rnn")
    assert status == 2
    assert "cannot be called" in err and "did you mean --layout textbook?" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2


def test_a_bug_seen_only_at_the_seed_size_is_caught(capsys):
    status, out, _ = run_check(capsys, f"{HERE}:blocked_recurrence", "--property", "matches_keras")
    assert status == 1, out
    assert "case: B=2 T=250 D=32 U=100" in out and "found at the seed's size" in out


# -- what a function supports ------------------------------------------------------------

def test_a_missing_activation_is_declined_and_the_rest_passes(capsys):
    status, out, _ = run_check(capsys, f"{HERE}:lacks_mish", "--max-examples", "5",
                                "--property", "every_activation_matches_keras,matches_keras")
    assert status == 0, out
    assert "declined: activation='mish': NotImplementedError: mish is not implemented" in out
    for prop in ("every_activation_matches_keras", "matches_keras"):
        line = result_line(out, prop)
        assert line.startswith("pass") and "declined" not in line, line


def test_without_masks_every_example_runs_and_a_bias_bug_is_caught(capsys):
    status, out, _ = run_check(capsys, f"{HERE}:no_masks_bias_twice", "--property", "matches_keras")
    assert status == 1, out
    line = result_line(out, "matches_keras")
    assert line.startswith("FAIL") and "declined" not in line, line
    case = next(ln for ln in out.splitlines() if ln.startswith("minimal case:"))
    assert "bias=None" not in case and "mask=" not in case, case


def test_a_property_whose_examples_were_all_declined_checked_nothing(capsys):
    status, out, _ = run_check(capsys, f"{HERE}:only_three_steps", "--max-examples", "5",
                                "--property", "single_step_equals_dense")
    assert status == 3, out
    line = result_line(out, "single_step_equals_dense")
    assert line.startswith("unsupported") and "0 checked, 6 declined" in line, line
    assert "every example declined: only sequences of 3 steps" in line
    assert "nothing was checked" in out


# -- layouts and arrays -----------------------------------------------------------------

def test_torch_layout(capsys):
    props = "matches_keras,use_bias_false_matches_keras,go_backwards_equals_forward_on_reversed_input"
    status, out, _ = run_check(capsys, f"{HERE}:torch_style", "--layout", "torch", "--max-examples", "5",
                                "--property", props)
    assert status == 0, out
    assert "called as torch_style(inputs, weight_ih, weight_hh, bias_ih, bias_hh" in out
    status, out, _ = run_check(capsys, f"{HERE}:torch_style_forgets_bias_hh", "--layout", "torch",
                                "--property", "matches_keras")
    assert status == 1 and result_line(out, "matches_keras").startswith("FAIL"), out


def test_the_split_bias_adds_up_and_is_uneven():
    bias = np.random.default_rng(0).normal(0, 0.5, size=7).astype(np.float32)
    ih, hh = split_bias(bias)
    assert ih.dtype == hh.dtype == np.float32
    np.testing.assert_allclose(ih + hh, bias, rtol=0, atol=2 * np.finfo(np.float32).eps)
    assert np.all(np.abs(ih - hh) > 0.05)  # forgetting either one changes the result


def test_arrays_are_writable_contiguous_copies(capsys):
    status, out, _ = run_check(capsys, f"{HERE}:refuses_views", "--max-examples", "5",
                                "--property", "single_step_equals_dense,go_backwards_equals_forward_on_reversed_input,"
                                "stateful_chunks_equal_one_sequence")
    assert status == 0, out
    assert "declined" not in out


def test_textbook_arrays_are_copies_too():
    seen = {}

    def f(x, W, U, b):
        seen.update(W=W.flags.c_contiguous, U=U.flags.c_contiguous)
        W *= 2  # in place
        return np.zeros(U.shape[0], x.dtype)

    from rnn_ref.harness.cases import make_case
    from rnn_ref.harness.context import CandidateError

    case = make_case(B=1, T=2, D=2, U=3)
    with pytest.raises(CandidateError, match="modified its argument 'W' in place"):
        Adapted(f, "textbook")(**case.kwargs(inputs=case.inputs[0]))
    assert seen == {"W": True, "U": True}


# -- without the harness ---------------------------------------------------------------

def _numpy_only(tmp_path, *argv):
    """Run ``python -m rnn_ref ARGV`` in a Python that sees NumPy and rnn_ref but not
    TensorFlow, hypothesis or rich (what ``pip install .`` gives)."""
    site = tmp_path / "site"
    site.mkdir()
    numpy_dir = Path(np.__file__).parent
    for entry in numpy_dir.parent.iterdir():
        if entry.name == "numpy" or entry.name.startswith("numpy.libs"):
            (site / entry.name).symlink_to(entry)
    code = ("import sys; sys.path[:] = [p for p in sys.path if 'site-packages' not in p] + sys.argv[1:3]; "
            "from rnn_ref.commands.main import main; sys.exit(main(sys.argv[3:]))")
    return subprocess.run([sys.executable, "-I", "-c", code, str(site), str(ROOT), *argv],
                          cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


@pytest.mark.parametrize("target, args, status", [
    ("examples/check_textbook_correct.py:rnn_forward", ["--layout", "textbook"], 0),
    ("rnn_ref.implementations.mutants:seed_bias_after_tanh", ["--layout", "textbook"], 1),
    ("examples/check_bptt_textbook.py:rnn_backward", ["--gradients", "--layout", "textbook"], 0),
    ("examples/check_bptt_textbook.py:derivative_at_pre_activation", ["--gradients", "--layout", "textbook"], 1),
])
def test_without_the_harness_check_runs_offline(tmp_path, target, args, status):
    r = _numpy_only(tmp_path, "check", target, *args)
    assert r.returncode == status, r.stdout + r.stderr
    assert r.stdout.splitlines()[0].startswith(f"checking {target} offline (tensorflow, keras, hypothesis not "
                                               "installed)"), r.stdout
    assert "Traceback" not in r.stderr
    (tmp_path / "again").mkdir()
    r = _numpy_only(tmp_path / "again", "check", target, *args, "--live")
    assert r.returncode == 2 and "the live check needs the harness" in r.stderr


def test_without_the_harness_corpus_verify_runs(tmp_path):
    r = _numpy_only(tmp_path, "corpus", "verify")
    assert r.returncode == 0 and r.stdout.startswith("ok: ") and "0 over budget" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("command", ["demo", "report"])
def test_without_the_harness_one_line_and_exit_2(tmp_path, command):
    """A Python that sees NumPy and rnn_ref but not TensorFlow, hypothesis or rich
    (what ``pip install .`` gives)."""
    r = _numpy_only(tmp_path, command, "examples/check_textbook_correct.py:rnn_forward")
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.count("\n") == 1 and "needs the harness" in r.stderr and ".[harness]" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
