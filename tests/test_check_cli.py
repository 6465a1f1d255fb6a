"""``python -m rnn_ref check``: exit statuses, minimal cases, misbehaving functions, --json.

The functions under test at the top of this file are loaded by the checker
from this very file (``tests/test_check_cli.py:NAME``). The runs that test
exit statuses go through a subprocess, started together and collected by a
fixture; the others call ``rnn_ref.commands.check.main`` in this process, which shares
one TensorFlow import. Property subsets and small example counts keep the
file fast; the three bugs the checker must find with its default example
count are run at that count on one property.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from check_helpers import result_line, run_check
from rnn_ref.layers.simple_rnn import simple_rnn

pytestmark = pytest.mark.keras

ROOT = Path(__file__).resolve().parents[1]
HERE = str(Path(__file__).resolve())


# -- functions under test -----------------------------------------------------------

def crashes(inputs, kernel, recurrent_kernel, bias=None, **options):
    raise RuntimeError("not written yet")


NOT_A_FUNCTION = 42


def declines_masks(inputs, kernel, recurrent_kernel, bias=None, *, mask=None, **options):
    if mask is not None:
        raise NotImplementedError("masks are not supported")
    return simple_rnn(inputs, kernel, recurrent_kernel, bias, **options)


def raises_with_mask(inputs, kernel, recurrent_kernel, bias=None, *, mask=None, **options):
    if mask is not None:
        raise ValueError("cannot broadcast the mask")
    return simple_rnn(inputs, kernel, recurrent_kernel, bias, **options)


# Each of these is correct without a mask (so the first call and the mask-free
# properties pass) and misbehaves in its own way when given one. Those that
# raise or hang do it only past the probe's three steps: a feature that
# raises on the probe is declined, not failed.

def _long(inputs) -> bool:
    return np.shape(inputs)[-2] > 3


def raises_with_long_mask(inputs, kernel, recurrent_kernel, bias=None, *, mask=None, **options):
    if mask is not None and _long(inputs):
        raise ValueError("cannot broadcast the mask")
    return simple_rnn(inputs, kernel, recurrent_kernel, bias, mask=mask, **options)


def wrong_shape_with_mask(inputs, kernel, recurrent_kernel, bias=None, **options):
    out = simple_rnn(inputs, kernel, recurrent_kernel, bias, **options)
    if options.get("mask") is None:
        return out
    first = out[0] if isinstance(out, tuple) else out
    first = np.concatenate([first, first], axis=-1)  # twice the units
    return (first, out[1]) if isinstance(out, tuple) else first


def wrong_dtype_with_mask(inputs, kernel, recurrent_kernel, bias=None, **options):
    out = simple_rnn(inputs, kernel, recurrent_kernel, bias, **options)
    if options.get("mask") is None:
        return out
    return tuple(o.astype(np.float16) for o in out) if isinstance(out, tuple) else out.astype(np.float16)


def nan_with_mask(inputs, kernel, recurrent_kernel, bias=None, **options):
    out = simple_rnn(inputs, kernel, recurrent_kernel, bias, **options)
    if options.get("mask") is None:
        return out
    return tuple(np.full_like(o, np.nan) for o in out) if isinstance(out, tuple) else np.full_like(out, np.nan)


def modifies_input_with_mask(inputs, kernel, recurrent_kernel, bias=None, **options):
    if options.get("mask") is not None:
        inputs *= 0.5  # in place: the caller's array changes
    return simple_rnn(inputs, kernel, recurrent_kernel, bias, **options)


def sleeps_with_long_mask(inputs, kernel, recurrent_kernel, bias=None, **options):
    if options.get("mask") is not None and _long(inputs):
        time.sleep(60)
    return simple_rnn(inputs, kernel, recurrent_kernel, bias, **options)


# Three bugs the checker must find at its default example count.

def forgets_state_every_100_steps(inputs, kernel, recurrent_kernel, bias=None, *, return_sequences=False,
                                  return_state=False, go_backwards=False, mask=None, initial_state=None,
                                  **options):
    """Runs long sequences in windows of 100 steps and starts each window from a zero state."""
    x = np.asarray(inputs)
    t_axis = x.ndim - 2
    if go_backwards:
        x = np.flip(x, t_axis)
        mask = None if mask is None else np.flip(np.asarray(mask), -1)
    pieces, state = [], initial_state
    for start in range(0, x.shape[t_axis], 100):
        window = np.take(x, np.arange(start, min(start + 100, x.shape[t_axis])), axis=t_axis)
        m = None if mask is None else np.asarray(mask)[..., start:start + 100]
        out, state = simple_rnn(window, kernel, recurrent_kernel, bias, return_sequences=True,
                                return_state=True, mask=m, initial_state=state if start == 0 else None, **options)
        pieces.append(out)
    out = np.concatenate(pieces, axis=t_axis)
    out = out if return_sequences else np.take(out, -1, axis=t_axis)
    return (out, state) if return_state else out


def state_leaks_across_rows(inputs, kernel, recurrent_kernel, bias=None, *, initial_state=None, mask=None,
                            return_state=False, **options):
    """One row at a time, each row starting from the previous row's final state."""
    x = np.asarray(inputs)
    if x.ndim == 2:
        return simple_rnn(x, kernel, recurrent_kernel, bias, initial_state=initial_state, mask=mask,
                          return_state=return_state, **options)
    outs, states, state = [], [], None
    for b in range(x.shape[0]):
        h0 = state if initial_state is None else np.asarray(initial_state)[b:b + 1]
        out, state = simple_rnn(x[b:b + 1], kernel, recurrent_kernel, bias, initial_state=h0, return_state=True,
                                mask=None if mask is None else np.asarray(mask)[b:b + 1], **options)
        outs.append(out)
        states.append(state)
    out, state = np.concatenate(outs), np.concatenate(states)
    return (out, state) if return_state else out


def ignores_zero_output_for_mask(inputs, kernel, recurrent_kernel, bias=None, **options):
    """Repeats the previous output at padded steps even with zero_output_for_mask=True."""
    return simple_rnn(inputs, kernel, recurrent_kernel, bias, **{**options, "zero_output_for_mask": False})


# -- helpers ----------------------------------------------------------------------

def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


# -- reporting, in this process -------------------------------------------------------

def test_correct_function_by_module_path_and_json(capsys, tmp_path):
    path = tmp_path / "results.json"
    status, out, _ = run_check(capsys, "rnn_ref.layers.simple_rnn:simple_rnn", "--max-examples", "5", "--json", path,
                                "--property", "matches_keras,single_step_equals_dense")
    assert status == 0, out
    assert "2 pass of 2 properties" in out
    checked = next(ln for ln in out.splitlines() if ln.startswith("checked: "))
    assert "float32" in checked and "bias=None" in checked, checked  # what the drawn cases covered
    doc = json.loads(path.read_text())
    assert doc["exit_status"] == 0 and doc["target"] == "rnn_ref.layers.simple_rnn:simple_rnn"
    assert doc["layout"] == "keras" and doc["max_examples"] == 5 and doc["seed"] == 0
    assert {"keras", "tensorflow", "numpy"} <= set(doc["versions"])
    assert doc["counts"] == {"pass": 2, "FAIL": 0, "unsupported": 0, "error": 0}
    assert [r["name"] for r in doc["results"]] == ["matches_keras", "single_step_equals_dense"]
    for r in doc["results"]:
        assert {"name", "status", "examples", "checked", "declined", "failed", "seconds", "message", "case",
                "reproduction", "verdicts", "doc"} <= set(r)
        # five drawn examples and the case at the seed's size (T=250, D=32, U=100)
        assert r["status"] == "pass" and r["examples"] == r["checked"] == 6 and r["failed"] == 0
    assert doc["declined"] == {} and doc["support"]["mask_pattern"][0] == "none"


def test_json_of_a_failure(capsys, tmp_path):
    path = tmp_path / "results.json"
    status, _, _ = run_check(capsys, f"{HERE}:nan_with_mask", "--max-examples", "3", "--json", path,
                              "--property", "mask_matches_keras")
    assert status == 1
    (r,) = json.loads(path.read_text())["results"]
    assert r["status"] == "FAIL" and r["case"].startswith("B=")
    assert r["reproduction"].startswith("from rnn_ref.harness.cases import make_case")
    worst = r["verdicts"][0]["worst"]
    assert worst["candidate"] == "nan" and isinstance(worst["keras"], float)  # NaN as a string: valid JSON


@pytest.mark.parametrize("name, reason", [
    ("declines_masks", "NotImplementedError: masks are not supported"),
    ("raises_with_mask", "ValueError: cannot broadcast the mask (at " + HERE),
])
def test_a_feature_that_raises_on_the_probe_is_declined_not_failed(capsys, name, reason):
    status, out, _ = run_check(capsys, f"{HERE}:{name}", "--max-examples", "3",
                                "--property", "mask_matches_keras,single_step_equals_dense,matches_keras")
    assert status == 0, out
    declined = next(ln for ln in out.splitlines() if ln.startswith("declined: masks (all 5 patterns)"))
    assert reason in declined, declined
    line = result_line(out, "mask_matches_keras")
    assert line.startswith("unsupported") and "0 checked" in line and "needs a mask" in line
    assert result_line(out, "single_step_equals_dense").startswith("pass")
    # matches_keras draws masks among its options: here it draws only unmasked cases, all checked
    assert result_line(out, "matches_keras").split()[:3] == ["pass", "matches_keras", "4"], out
    assert "no masks" in next(ln for ln in out.splitlines() if ln.startswith("not checked: "))


def test_nothing_checked_exits_3(capsys):
    status, out, _ = run_check(capsys, f"{HERE}:declines_masks", "--property", "mask_matches_keras")
    assert status == 3, out
    assert "nothing was checked" in out and "exit status 3" in out


@pytest.mark.parametrize("name, words", [
    ("raises_with_long_mask", "the candidate raised ValueError: cannot broadcast the mask (at " + HERE),
    ("wrong_shape_with_mask", "output has shape"),
    ("wrong_dtype_with_mask", "output has dtype float16, expected"),
    ("nan_with_mask", "the candidate returned NaN where Keras has a number"),
    ("modifies_input_with_mask", "the candidate modified its argument 'inputs' in place"),
    ("sleeps_with_long_mask", "the candidate took longer than 0.5 s on one case"),
])
def test_misbehaviour_is_reported_and_the_run_goes_on(capsys, name, words):
    start = time.perf_counter()
    status, out, _ = run_check(capsys, f"{HERE}:{name}", "--max-examples", "3", "--case-timeout", "0.5",
                                "--property", "mask_matches_keras,single_step_equals_dense")
    assert status == 1, out
    line = result_line(out, "mask_matches_keras")
    assert line.startswith("FAIL") and words in line, line
    assert result_line(out, "single_step_equals_dense").startswith("pass")  # the next property still ran
    assert "reproduce: save this as a script" in out
    if name == "sleeps_with_long_mask":
        assert "not shrunk" in out and time.perf_counter() - start < 30


@pytest.mark.parametrize("name, shown", [
    ("forgets_state_every_100_steps", "T=101"),  # only after many steps
    ("state_leaks_across_rows", "B=2"),  # only with several rows
    ("ignores_zero_output_for_mask", "zero_output_for_mask=True"),  # only with one option
])
def test_default_example_count_finds_the_bug(capsys, name, shown):
    status, out, _ = run_check(capsys, f"{HERE}:{name}", "--property", "matches_keras")
    assert status == 1, out
    assert "25 examples each" in out
    case = next(ln for ln in out.splitlines() if ln.startswith("minimal case:"))
    assert shown in case, case


def test_same_seed_same_result(capsys):
    argv = [f"{HERE}:state_leaks_across_rows", "--max-examples", "25", "--seed", "7", "--property", "matches_keras"]
    first, second = run_check(capsys, *argv)[1], run_check(capsys, *argv)[1]
    case = lambda out: [ln for ln in out.splitlines() if ln.startswith("minimal case:")]  # noqa: E731
    assert case(first) and case(first) == case(second)


def test_unknown_property_exits_2(capsys):
    status, _, err = run_check(capsys, f"{HERE}:declines_masks", "--property", "matches_kera")
    assert status == 2 and "unknown property 'matches_kera'; did you mean 'matches_keras'?" in err


# -- exit statuses, through a subprocess --------------------------------------------

SUBPROCESS_RUNS = {
    "textbook": ["examples/check_textbook_correct.py:rnn_forward", "--layout", "textbook", "--max-examples", "5",
                 "--property", "matches_keras", "--property", "go_backwards_equals_forward_on_reversed_input",
                 "--property", "mask_matches_keras"],
    "scalar": ["examples/check_scalar_recurrence.py:linear_recurrence", "--max-examples", "10",
               "--property", "single_step_equals_dense,mask_matches_keras"],
    "subtle": ["examples/check_subtle_bug.py:simple_rnn_forward", "--max-examples", "10",
               "--property", "leading_masked_steps_output_zero_with_initial_state"],
    "missing_file": ["examples/no_such_file.py:f"],
    "missing_function": ["tests/test_check_cli.py:no_such_function"],
    "not_callable": ["tests/test_check_cli.py:NOT_A_FUNCTION"],
    "missing_module": ["no_such_package.module:f"],
    "crashes": ["tests/test_check_cli.py:crashes"],
    "no_colon": ["examples/check_subtle_bug.py"],
}


class _Runs(dict):
    """SUBPROCESS_RUNS started at once (so that they overlap with the in-process
    tests); ``runs[name]`` waits for that run and returns its CompletedProcess."""

    def __init__(self):
        super().__init__()
        self.procs = {
            name: subprocess.Popen([sys.executable, "-m", "rnn_ref", "check", *argv], cwd=ROOT, env=_env(),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name, argv in SUBPROCESS_RUNS.items()
        }

    def __missing__(self, name):
        p = self.procs[name]
        out, err = p.communicate(timeout=300)
        self[name] = subprocess.CompletedProcess(p.args, p.returncode, out, err)
        return self[name]

    def close(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.communicate()


@pytest.fixture(scope="module", autouse=True)
def runs():
    r = _Runs()
    yield r
    r.close()


def test_correct_textbook_loop_with_textbook_layout_exits_0(runs):
    r = runs["textbook"]
    assert r.returncode == 0, r.stdout + r.stderr
    assert "(layout textbook)" in r.stdout
    assert "3 pass of 3 properties" in r.stdout


def test_scalar_recurrence_exits_1_with_a_minimal_case(runs):
    r = runs["scalar"]
    assert r.returncode == 1, r.stdout + r.stderr
    assert result_line(r.stdout, "single_step_equals_dense").startswith("FAIL")
    assert "minimal case: B=1 T=1 D=1 U=1" in r.stdout
    assert "candidate" in r.stdout and "Keras" in r.stdout and "float64 truth" in r.stdout and "budget" in r.stdout
    # masks raise NotImplementedError: declined on the probe, the property unsupported
    assert result_line(r.stdout, "mask_matches_keras").startswith("unsupported")
    assert "needs a mask" in result_line(r.stdout, "mask_matches_keras")
    assert "NotImplementedError: masks are not supported" in r.stdout


def test_subtle_bug_exits_1_with_a_minimal_case(runs):
    r = runs["subtle"]
    assert r.returncode == 1, r.stdout + r.stderr
    assert "minimal case: B=1 T=1 D=1 U=1" in r.stdout
    assert "initial_state=random" in r.stdout and "leading_masked" in r.stdout


def test_reproduction_script_runs_and_shows_the_failure(runs, capsys, monkeypatch):
    out = runs["subtle"].stdout
    script = out[out.index("from rnn_ref.harness.cases import make_case"):].split("\n\n")[0]
    assert "load_candidate('examples/check_subtle_bug.py:simple_rnn_forward')" in script
    monkeypatch.chdir(ROOT)  # where the check ran
    exec(compile(script, "reproduce.py", "exec"), {"__name__": "__main__"})
    shown = capsys.readouterr().out
    assert "leading_masked_steps_output_zero_with_initial_state fails" in shown
    assert "candidate" in shown and "Keras 0.0" in shown and "float64 truth 0.0" in shown


@pytest.mark.parametrize("name, words", [
    ("missing_file", "no such file: examples/no_such_file.py"),
    ("missing_function", "has no function 'no_such_function'"),
    ("not_callable", "is a int, not a function"),
    ("missing_module", "cannot import module no_such_package.module"),
    ("crashes", "cannot be called: RuntimeError: not written yet"),
    ("no_colon", "does not name a function"),
])
def test_unloadable_or_uncallable_exits_2_with_a_short_message(runs, name, words):
    r = runs[name]
    assert r.returncode == 2, r.stdout + r.stderr
    assert words in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) <= 2
    assert r.stdout == ""
