"""``python -m rnn_ref conformance``: a cell per (model, runtime), a pass cell names the
properties it checked, and a runtime with a bug (a mutant of
``rnn_ref/implementations/runtime_mutants.py``) gives a FAIL cell with a minimal input."""

from __future__ import annotations

import json

import pytest

from rnn_ref.commands import conformance
from rnn_ref.commands.conformance_models import MODELS
from rnn_ref.harness.model_checks import MODEL_PROPERTIES

MODELS_ARG = "gru_reset_after,simplernn_nomask"
RUNTIMES = ("keras", "numpy", "mutant:gru_bias_twice")


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    out = tmp_path_factory.mktemp("conformance")
    code = conformance.main(["--models", MODELS_ARG, "--runtimes", ",".join(RUNTIMES), "--max-examples", "2",
                             "--shrink-seconds", "3", "--workers", "0", "--out", str(out)])
    return code, json.loads((out / "conformance.json").read_text()), (out / "conformance.md").read_text()


def test_it_runs_and_writes_a_cell_per_pair(ran):
    code, result, md = ran
    assert code == 0
    pairs = {(c["model"], c["runtime"]) for c in result["cells"]}
    assert pairs == {(m, r) for m in MODELS_ARG.split(",") for r in RUNTIMES}
    for m in MODELS_ARG.split(","):
        row = next(line for line in md.splitlines() if line.startswith(f"| `{m}` |"))
        assert row.count("|") == len(RUNTIMES) + 2 and "|  |" not in row


def test_a_pass_cell_lists_the_properties_it_checked(ran):
    _, result, md = ran
    for c in (c for c in result["cells"] if c["runtime"] in ("keras", "numpy")):
        assert c["status"] == "pass", c
        assert c["passed"] and set(c["passed"]) <= set(MODEL_PROPERTIES)
        assert set(c["passed"]) | set(c["not_checked"]) == set(MODEL_PROPERTIES)
        assert c["calls"] >= len(c["passed"])  # each passing property called the runtime
    ids = next(c for c in result["cells"] if c["model"] == "gru_reset_after" and c["runtime"] == "numpy")
    assert len(ids["passed"]) == len(MODEL_PROPERTIES)  # a masked token model: all nine run
    floats = next(c for c in result["cells"] if c["model"] == "simplernn_nomask" and c["runtime"] == "keras")
    assert f"pass ({len(floats['passed'])} properties)" in md


def test_a_runtime_with_a_bug_fails_with_a_minimal_input(ran):
    _, result, md = ran
    cells = {(c["model"], c["runtime"]): c for c in result["cells"]}
    bad = cells["gru_reset_after", "mutant:gru_bias_twice"]
    assert bad["status"] == "FAIL"
    first = bad["failed"][0]
    assert first["input"].startswith("B=1 T=1"), first["input"]  # shrunk to one row, one step
    assert first["ratio"] > 1 and "worst element" in first["worst"]
    assert "**`gru_reset_after` on mutant:gru_bias_twice: FAIL.**" in md and "minimal input B=1 T=1" in md
    plain = cells["simplernn_nomask", "mutant:gru_bias_twice"]
    assert plain["status"] == "pass"  # no GRU, nothing doubled


def test_usage_errors_exit_2(tmp_path, capsys):
    assert conformance.main(["--runtimes", "tensorrt", "--out", str(tmp_path)]) == 2
    assert conformance.main(["--models", "no_such_model", "--out", str(tmp_path)]) == 2
    assert conformance.main(["--runtimes", "mutant:nothing", "--out", str(tmp_path)]) == 2
    assert "error:" in capsys.readouterr().err


def test_the_catalogue_names_are_unique_and_cover_every_option():
    names = [m.name for m in MODELS]
    assert len(names) == len(set(names))
    text = " ".join(m.description for m in MODELS)
    for option in ("SimpleRNN", "LSTM", "GRU", "return_sequences", "return_state", "go_backwards", "mask_zero",
                   "concat", "sum", "mul", "ave", "merge_mode=None", "stateful", "reset_after=False", "float64",
                   "Masking", "initial_state", "mask=mask"):
        assert option in text, option


def test_a_fail_on_a_model_of_several_inputs_records_every_input(tmp_path):
    """A FAIL cell of ``mask_input`` (x, mask, h0) keeps its minimal input, one list per model
    input, instead of breaking the cell."""
    code = conformance.main(["--models", "mask_input", "--runtimes", "mutant:ignores_mask_input",
                             "--max-examples", "4", "--shrink-seconds", "3", "--workers", "0",
                             "--out", str(tmp_path)])
    assert code == 0
    (cell,) = json.loads((tmp_path / "conformance.json").read_text())["cells"]
    assert cell["status"] == "FAIL", cell
    first = cell["failed"][0]
    assert first["x"] is not None and len(first["x"]) == 3, first  # x, mask, h0
