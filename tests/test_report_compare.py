"""``report compare`` compares like with like, and overflowed results are
counted apart from the max figures.

* a report.json and a ``pytest --tolerance-report`` file are refused (exit 2),
  also when they were written before files said what kind they are;
* two files of the same kind drawn with another seed or hypothesis profile
  are compared with a warning, and the exit status is the usual one;
* a result whose truth or Keras overflowed is counted in ``overflowed`` and
  kept out of max abs / rel / ulps, in the tallies, report.json's layout and
  report.md.
"""

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import rnn_ref
from rnn_ref.commands.main import main as cli
from rnn_ref.harness import tolerance
from rnn_ref.harness.tally import SCHEMA_VERSION, KerasTally, Tally, ToleranceTable, fmt, jsonable
from rnn_ref.harness.tolerance import budget_rule
from rnn_ref.commands.report.factor import FactorTally, factor_margin
from rnn_ref.commands.report.markdown import write_markdown
from rnn_ref.commands.report.results import report_run, summary
from rnn_ref.commands.report.sweeps import label, split_label

PROP = "matches_keras"


def _verdict(max_ulps=3.0, keras_max_ulps=2.0, overflowed=False, dtype="float32"):
    big = math.inf if overflowed else None
    return tolerance.Verdict(
        ok=True, label="output", dtype=dtype,
        max_abs=big or 1e-7, max_rel=big or 1e-6, max_ulps=big or max_ulps,
        keras_max_abs=big or 1e-7, keras_max_rel=big or 1e-6, keras_max_ulps=big or keras_max_ulps,
        worst={"index": (0, 0), "candidate": 0.5, "keras": 0.5, "truth": 0.5, "error": 1e-7, "budget": 1e-5,
               "keras_envelope": 1e-7, "conditioning_envelope": 1e-7, "floor": 1e-6},
        overflowed=overflowed,
    )


def _table(max_ulps=3.0, primary="rnn_ref"):
    t = ToleranceTable(primary=primary)
    t.count_example(PROP, "float32")
    t.add(PROP, primary, _verdict(max_ulps=max_ulps))
    return t


def _report_file(path, seed=0, max_ulps=3.0, quick=False, with_kind=True):
    """A small report.json: what `python -m rnn_ref report` writes, without the sweeps' contents."""
    settings = {"max_examples": 20, "seed": seed, "quick": quick, "wide_gain": [0.05, 3.0]}
    t = _table(max_ulps)
    data = {"schema_version": SCHEMA_VERSION, "kind": "report", **report_run(settings), "settings": settings,
            "budget_rule": budget_rule(), "summary": summary(t), **t.to_json(), "sweeps": {}}
    if not with_kind:
        for k in ("kind", "seed", "hypothesis_profile", "hypothesis_settings"):
            data.pop(k)
    path.write_text(json.dumps(data))
    return str(path)


def _pytest_file(path, seed=None, profile="ci", derandomize=True, max_ulps=3.0, with_kind=True):
    """A small --tolerance-report file."""
    data = {"schema_version": SCHEMA_VERSION, "kind": "pytest", "seed": seed, "hypothesis_profile": profile,
            "hypothesis_settings": {"max_examples": 25, "derandomize": derandomize},
            "budget_rule": budget_rule(), **_table(max_ulps, primary="candidate").to_json()}
    if not with_kind:
        for k in ("kind", "seed", "hypothesis_profile", "hypothesis_settings"):
            data.pop(k)
    path.write_text(json.dumps(data))
    return str(path)


# -- refusing to compare a report with a pytest file -----------------------------------------------

@pytest.mark.parametrize("with_kind", [True, False], ids=["kind field", "kind inferred"])
def test_a_report_and_a_pytest_file_are_not_compared(tmp_path, capsys, with_kind):
    rep = _report_file(tmp_path / "report.json", with_kind=with_kind)
    pyt = _pytest_file(tmp_path / "pytest.json", with_kind=with_kind)
    for old, new in ((rep, pyt), (pyt, rep)):
        assert cli(["report", "compare", old, new]) == 2
        out, err = capsys.readouterr()
        assert out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert "cannot compare" in lines[0] and "'report'" in lines[0] and "'pytest'" in lines[0], err
        assert old in lines[0] and new in lines[0]


def test_a_file_of_unknown_kind_is_not_compared(tmp_path, capsys):
    rep = _report_file(tmp_path / "report.json")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema_version": SCHEMA_VERSION, "primary": "mine", "properties": {}}))
    assert cli(["report", "compare", rep, str(other)]) == 2
    err = capsys.readouterr().err
    assert "cannot tell what" in err and str(other) in err and "no \"kind\" field" in err
    other.write_text(json.dumps({"schema_version": SCHEMA_VERSION, "kind": "bench", "properties": {}}))
    assert cli(["report", "compare", rep, str(other)]) == 2
    assert "kind 'bench', expected one of 'report', 'pytest'" in capsys.readouterr().err


def test_a_file_that_is_not_json_is_refused(tmp_path, capsys):
    rep = _report_file(tmp_path / "report.json")
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    assert cli(["report", "compare", rep, str(bad)]) == 2
    assert "is not JSON" in capsys.readouterr().err
    assert cli(["report", "compare", rep, str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err


# -- the like-for-like warning ---------------------------------------------------------------------

def test_same_kind_same_seed_compares_without_a_warning(tmp_path, capsys):
    a, b = _report_file(tmp_path / "a.json"), _report_file(tmp_path / "b.json")
    assert cli(["report", "compare", a, b]) == 0
    assert "warning" not in capsys.readouterr().err
    a, b = _pytest_file(tmp_path / "pa.json"), _pytest_file(tmp_path / "pb.json")
    assert cli(["report", "compare", a, b]) == 0
    assert "warning" not in capsys.readouterr().err


def test_another_seed_warns_and_keeps_the_exit_status(tmp_path, capsys):
    a = _report_file(tmp_path / "a.json", seed=0)
    b = _report_file(tmp_path / "b.json", seed=1)
    worse = _report_file(tmp_path / "worse.json", seed=1, max_ulps=300.0)
    assert cli(["report", "compare", a, b]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning:") and "seed 0 -> 1" in err and "not like for like" in err
    assert len(err.strip().splitlines()) == 1
    assert cli(["report", "compare", a, worse]) == 1  # a regression still fails
    assert "seed 0 -> 1" in capsys.readouterr().err


def test_another_hypothesis_profile_warns(tmp_path, capsys):
    a = _pytest_file(tmp_path / "a.json", profile="ci")
    b = _pytest_file(tmp_path / "b.json", profile="thorough")
    assert cli(["report", "compare", a, b]) == 0
    err = capsys.readouterr().err
    assert "hypothesis profile 'ci' -> 'thorough'" in err and "not like for like" in err
    # a report run with --quick is another sweep too
    a = _report_file(tmp_path / "r.json")
    b = _report_file(tmp_path / "rq.json", quick=True)
    assert cli(["report", "compare", a, b]) == 0
    assert "'report' -> 'report-quick'" in capsys.readouterr().err


def test_unseeded_random_runs_warn(tmp_path, capsys):
    a = _pytest_file(tmp_path / "a.json", profile="dev", derandomize=False)
    b = _pytest_file(tmp_path / "b.json", profile="dev", derandomize=False)
    assert cli(["report", "compare", a, b]) == 0
    assert "unseeded runs" in capsys.readouterr().err
    a = _pytest_file(tmp_path / "a.json", profile="dev", derandomize=False, seed=3)
    b = _pytest_file(tmp_path / "b.json", profile="dev", derandomize=False, seed=3)
    assert cli(["report", "compare", a, b]) == 0
    assert "warning" not in capsys.readouterr().err


def test_older_files_without_seed_warn_or_use_their_settings(tmp_path, capsys):
    a = _pytest_file(tmp_path / "a.json", with_kind=False)
    b = _pytest_file(tmp_path / "b.json")
    assert cli(["report", "compare", a, b]) == 0
    err = capsys.readouterr().err
    assert f"{a} does not record the seed and hypothesis profile" in err
    # an older report.json has its seed in its settings
    a = _report_file(tmp_path / "ra.json", seed=0, with_kind=False)
    b = _report_file(tmp_path / "rb.json", seed=2)
    assert cli(["report", "compare", a, b]) == 0
    assert "seed 0 -> 2" in capsys.readouterr().err


def test_the_pytest_plugin_records_seed_and_profile(tmp_path):
    (tmp_path / "conftest.py").write_text(textwrap.dedent("""
        from hypothesis import settings
        settings.register_profile("tiny", max_examples=3, derandomize=True)
    """))
    (tmp_path / "test_one.py").write_text("def test_one():\n    pass\n")
    out = tmp_path / "tol.json"
    here = str(Path(rnn_ref.__file__).parents[1])  # the rnn_ref under test, not another installed one
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)}
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "rnn_ref.harness.pytest_plugin", "-p", "no:cacheprovider",
         "--hypothesis-profile", "tiny", "--hypothesis-seed", "7", "--tolerance-report", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads(out.read_text())
    assert data["kind"] == "pytest"
    assert data["seed"] == 7 and data["hypothesis_profile"] == "tiny"
    assert data["hypothesis_settings"] == {"max_examples": 3, "derandomize": True}


# -- overflowed results are counted apart --------------------------------------------------------

def test_judge_flags_a_truth_or_keras_beyond_the_dtype_range():
    def judge(candidate, keras, truth, dtype="float32"):
        with np.errstate(all="ignore"):
            return tolerance.judge("t", np.asarray(candidate, dtype=dtype), np.asarray(keras, dtype=dtype),
                                   np.asarray(truth, dtype=np.float64), np.zeros(len(truth)), dtype,
                                   m=3, time_axis=None)

    assert not judge([0.5, 2.0], [0.5, 2.0], [0.5, 2.0]).overflowed
    v = judge([0.5, np.inf], [0.5, np.inf], [0.5, 1e39])  # 1e39 is past float32's largest value
    assert v.ok and v.overflowed
    assert not judge([0.5, 1e39], [0.5, 1e39], [0.5, 1e39], dtype="float64").overflowed
    assert judge([0.5, 2.0], [0.5, np.nan], [0.5, 2.0]).overflowed  # Keras overflowed alone (and disagrees)
    assert judge([0.5, np.nan], [0.5, np.nan], [0.5, np.nan], dtype="float64").overflowed


def test_an_overflowed_verdict_is_counted_apart_from_the_max_columns():
    t = Tally()
    t.add(_verdict(max_ulps=3.0), case="calm")
    t.add(_verdict(overflowed=True), case="exploding")
    assert t.verdicts == 2 and t.overflowed == 1 and t.overflowed_case == "exploding; result output"
    assert (t.max_abs, t.max_rel, t.max_ulps) == (1e-7, 1e-6, 3.0)
    assert t.max_budget_ratio == pytest.approx(0.01)  # the budget judged both
    k = KerasTally()
    k.add(_verdict(keras_max_ulps=2.0), count=True)
    k.add(_verdict(overflowed=True), count=True)
    assert (k.verdicts, k.overflowed, k.max_ulps) == (2, 1, 2.0)
    merged = Tally()
    merged.merge(t)
    assert merged.overflowed == 1 and merged.max_ulps == 3.0
    assert Tally.from_dict(t.to_dict()) == t


def _markdown_data(table):
    length = {"T": 8, "seeds": 1, "regimes": {"calm": {"gain": 0.5, "by_dtype": {"float32": {
        "lyapunov": -1.0, "first_step_above_1e-2": {}, "max_error": {"keras": [1e-7]},
        "conditioning": [1e-7], "budget": [1e-6]}}}}}
    per = {"max_error": {"keras": [1e-7], "rnn_ref": [1e-7]}, "conditioning": [1e-7], "budget_at_worst": [1e-6],
           "lyapunov": [-1.0]}
    radius = {"T": 8, "seeds": 1, "gain": [0.5], "by_dtype": {"float32": per, "float64": per}}
    return {
        "created": "now", "budget_rule": budget_rule(),
        "settings": {"max_examples": 2, "seed": 0, "quick": True, "wide_gain": [0.05, 3.0]},
        "environment": {"keras": "k", "tensorflow": "t", "numpy": "n", "python": "p", "longdouble_mantissa_bits": 64},
        "summary": summary(table), **table.to_json(), "plots": {},
        "sweeps": {"length": length, "spectral_radius": radius}, "seconds": {},
    }


def test_overflowed_results_are_reported_apart_in_json_and_markdown(tmp_path):
    table = ToleranceTable(primary="rnn_ref")
    table.count_example(PROP, "float32")
    table.current_case = "B=1 T=90 exponential"
    for impl in ("rnn_ref", "fused_product"):
        table.add(PROP, impl, _verdict(max_ulps=3.0, keras_max_ulps=2.0))
        table.add(PROP, impl, _verdict(overflowed=True))
    cell = table.properties_json()[PROP]["by_dtype"]["float32"]
    assert cell["implementations"]["rnn_ref"]["overflowed"] == 1
    assert cell["implementations"]["rnn_ref"]["max_ulps"] == 3.0
    assert cell["keras"]["overflowed"] == 1 and cell["keras"]["max_ulps"] == 2.0
    assert summary(table)["overflowed"] == 2
    again = ToleranceTable.from_json(json.loads(json.dumps(table.to_json())))
    assert again.impl[(PROP, "float32", "rnn_ref")].overflowed == 1
    assert again.keras[(PROP, "float32")].overflowed == 1

    path = tmp_path / "report.md"
    write_markdown(path, _markdown_data(table))
    md = path.read_text()
    assert "## Overflowed results" in md and "B=1 T=90 exponential" in md
    assert "| overflowed | max abs | max rel | max ulps |" in md
    row = next(line for line in md.splitlines() if line.startswith("| | | rnn_ref |"))
    assert row.split("|")[3:8] == [" rnn_ref ", " 2 ", " 0 ", " 1 ", " 1e-07 "], row
    assert "inf" not in md.split("## Per property")[1].split("## Environment")[0]


# -- per-layer rows and the needed FACTOR per layer -------------------------------------------------

def test_rows_are_labelled_and_summarised_per_layer(tmp_path):
    assert label(PROP, "SimpleRNN") == PROP and label(PROP, "LSTM") == f"{PROP} (LSTM)"
    for layer in ("SimpleRNN", "LSTM", "GRU"):
        assert split_label(label(PROP, layer)) == (PROP, layer)
    assert split_label("a (note)") == ("a (note)", "SimpleRNN")  # not a layer: part of the name
    table = _table()
    for layer in ("LSTM", "GRU"):
        table.count_example(label(PROP, layer), "float32")
        table.add(label(PROP, layer), "rnn_ref", _verdict(max_ulps=5.0))
    s = summary(table)
    assert list(s["by_layer"]) == ["SimpleRNN", "LSTM", "GRU"]
    assert s["by_layer"]["LSTM"]["examples"] == 1
    assert s["by_layer"]["LSTM"]["implementations"]["rnn_ref"] == {
        "verdicts": 1, "failed_examples": 0, "overflowed": 0, "max_budget_ratio": pytest.approx(0.01),
        "needed_factor": 0.0, "closest": ""}
    assert s["by_implementation"]["rnn_ref"]["verdicts"] == 3  # over every layer
    write_markdown(tmp_path / "report.md", _markdown_data(table))
    md = (tmp_path / "report.md").read_text()
    assert "| LSTM | rnn_ref | 1 | 1 | 0 |" in md and "### matches_keras (GRU)" in md


def _needing(factor, dtype="float32"):
    """A verdict whose worst element needed ``factor`` (envelope 1e-7, no floor)."""
    v = _verdict(dtype=dtype)
    v.worst = {**v.worst, "error": factor * 1e-7, "budget": 16e-7, "keras_envelope": 1e-7,
               "conditioning_envelope": 1e-7, "floor": 0.0}
    return v


def test_the_needed_factor_is_kept_per_layer_with_percentiles(tmp_path):
    factors = FactorTally()
    row = label(PROP, "GRU")
    for i in range(100):
        factors.add("GRU", "rnn_ref", row, _needing(i / 10), case=f"case {i}")
    factors.add("GRU", "rnn_ref", row, _needing(2.0, "float64"), case="f64")
    factors.add("GRU", "rnn_ref", label("chaotic_weights", "GRU"), _needing(12.0), case="chaos")
    factors.add("GRU", "keras", row, _needing(3.0), case="k")
    factors.keras_recorder(ToleranceTable(), "GRU")(row, _verdict(overflowed=True))  # counted, left out
    data = factors.to_json()
    assert list(data["GRU"]) == ["keras", "rnn_ref"]  # Keras first
    cell = data["GRU"]["rnn_ref"]
    assert cell["all"]["verdicts"] == 102 and set(cell["by_dtype"]) == {"float32", "float64"}
    assert set(cell["by_sweep"]) == {"properties", "chaotic_weights"}
    f32 = cell["by_sweep"]["properties"]["float32"]
    assert f32["max_needed_factor"] == pytest.approx(9.9) and f32["closest"] == "case 99"
    assert f32["p99_needed_factor"] == pytest.approx(9.801) and f32["median_needed_factor"] == pytest.approx(4.95)
    assert f32["max_budget_ratio"] == pytest.approx(9.9 / 16)
    assert cell["by_dtype"]["float32"]["max_needed_factor"] == pytest.approx(12.0)
    assert cell["by_dtype"]["float32"]["closest"] == "chaos"
    assert data["GRU"]["keras"]["all"]["verdicts"] == 1 and data["GRU"]["keras"]["all"]["overflowed_left_out"] == 1
    margin = factor_margin(data)["GRU"]
    assert margin["implementations_max"] == pytest.approx(12.0) and margin["keras_max"] == pytest.approx(3.0)
    assert margin["margin"] == pytest.approx(tolerance.FACTOR / 12.0)
    md_data = _markdown_data(_table())
    md_data["factor"] = data
    write_markdown(tmp_path / "report.md", md_data)
    section = (tmp_path / "report.md").read_text().split("## FACTOR per layer")[1].split("## Overflowed")[0]
    lines = section.split("- **GRU**: ")[1].splitlines()
    assert lines[0] == "FACTOR = 16 is 1.33 times the largest FACTOR needed"
    assert lines[1].startswith("  - the whole sweep: correct implementations at most 12 (rnn_ref, float32), ")
    assert lines[2] == ("  - the properties, at widened gains: correct implementations at most 9.9 (rnn_ref, float32), "
                        "99th percentile 9.8; Keras against the conditioning alone at most 3 (float32), "
                        "99th percentile 3, 1 overflowed result left out")
    assert lines[3] == "  - chaotic_weights: correct implementations at most 12 (rnn_ref, float32), 99th percentile 12"
    assert "| GRU | rnn_ref | properties | float32 | 100 | 9.9 |" in section
    assert "| GRU | rnn_ref | chaotic_weights | float32 | 1 | 12 |" in section


def test_an_unknown_layer_is_refused(tmp_path, capsys):
    assert cli(["report", "--layers", "Transformer", "--out", str(tmp_path)]) == 2
    assert "layer must be one of simple_rnn, lstm, gru, got 'Transformer'" in capsys.readouterr().err


# -- the layout of the report package and its shared pieces ----------------------------------------

def test_the_budget_rule_is_worded_once_in_tolerance():
    named, numbered = tolerance.budget_rule_text(values=False), tolerance.budget_rule_text()
    assert named.startswith("budget = FACTOR * ") and "FLOOR_ULPS * u * sqrt(D + U + 1)" in named
    assert numbered.startswith(f"budget = {tolerance.FACTOR:g} * ")
    assert f"+ {tolerance.FLOOR_ULPS:g} * u * sqrt(D + U + 1)" in numbered
    rule = budget_rule()
    assert rule["rule"].startswith(named + "; conditioning = ")
    assert (rule["FACTOR"], rule["FLOOR_ULPS"]) == (tolerance.FACTOR, tolerance.FLOOR_ULPS)


def test_report_md_shows_the_rule_of_its_report_json(tmp_path):
    data = _markdown_data(_table())
    data["budget_rule"] = {**budget_rule(), "rule": "budget = a rule; b = a clause"}
    write_markdown(tmp_path / "report.md", data)
    block = (tmp_path / "report.md").read_text().split("## The budget rule")[1].split("```")[1]
    assert block.splitlines()[1:3] == ["budget = a rule", "  b = a clause"]
    assert f"FACTOR = {tolerance.FACTOR:g}" in block


def test_the_pytest_summary_states_the_budget_rule(tmp_path):
    (tmp_path / "test_one.py").write_text(textwrap.dedent("""
        from rnn_ref.harness.tolerance import Verdict

        def test_one(tolerance_recorder):
            tolerance_recorder("matches_keras", Verdict(ok=True, label="output", dtype="float32"))
    """))
    here = str(Path(rnn_ref.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)}
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "rnn_ref.harness.pytest_plugin", "-p", "no:cacheprovider"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert tolerance.budget_rule_text() in r.stdout, r.stdout


def test_json_helpers_write_non_finite_numbers_as_strings():
    data = jsonable({"a": [np.float32(1.5), math.inf, -math.inf], "b": (np.int64(3), math.nan), "c": "x"})
    assert data == {"a": [1.5, "inf", "-inf"], "b": [3, "nan"], "c": "x"}
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert [fmt(x) for x in (None, 0, 0.0, 7, 1.23456e-7, "inf", "n/a")] == ["-", "0", "0", "7", "1.23e-07", "inf", "n/a"]


def _imports(path: Path):
    """(module as written, imported names) of every import statement in ``path``."""
    import ast

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            yield "." * node.level + (node.module or ""), [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []


PACKAGE = Path(rnn_ref.__file__).parent


def test_the_harness_does_not_import_the_report():
    for path in sorted((PACKAGE / "harness").glob("*.py")):
        for module, names in _imports(path):
            assert not module.startswith(("rnn_ref.commands.report", "..report")), f"{path.name} imports {module}"
            assert not (module == ".." and "report" in names), f"{path.name} imports rnn_ref.commands.report"


def test_no_private_name_is_imported_across_modules():
    paths = [*(PACKAGE / "commands" / "report").glob("*.py"), PACKAGE / "harness" / "tally.py",
             PACKAGE / "harness" / "pytest_plugin.py", Path(__file__), Path(__file__).with_name("test_tolerance.py")]
    for path in paths:
        for module, names in _imports(path):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            assert not private, f"{path.name} imports {', '.join(private)} from {module}; expected public names only"


def test_report_modules_stay_small_and_the_template_ships():
    for path in (PACKAGE / "commands" / "report").glob("*.py"):
        assert len(path.read_text().splitlines()) < 500, f"{path.name} has grown past 500 lines"
    assert (PACKAGE / "commands" / "report" / "template.md").is_file()
    pyproject = (PACKAGE.parent / "pyproject.toml")
    if pyproject.is_file():  # a checkout, not an installed copy
        tomllib = pytest.importorskip("tomllib")
        data = tomllib.loads(pyproject.read_text())
        assert "template.md" in data["tool"]["setuptools"]["package-data"]["rnn_ref.commands.report"]


def test_report_and_compare_are_subcommands_of_one_parser(capsys):
    from rnn_ref.commands.report import main

    with pytest.raises(SystemExit) as e:
        main(["compare"])
    assert e.value.code == 2
    assert "OLD.json, NEW.json" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli(["report", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "report compare OLD.json NEW.json" in out and "--quick" in out
