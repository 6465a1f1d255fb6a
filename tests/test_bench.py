"""The benchmark runs end to end at its tiny size (``--quick``), so that it cannot rot.

No timing is asserted: the figures of a quick run mean nothing. What is checked
is that every measurement is there, is a positive time, and that the checks
the benchmark runs along the way (the property judge on both harnesses, the
NumPy model against Keras) found nothing wrong.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("keras")
pytest.importorskip("rich")

from rnn_ref import bench  # noqa: E402

pytestmark = pytest.mark.keras


def test_quick_bench_writes_every_measurement(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--repeats", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "(a) harness" in printed and "(b) Embedding" in printed

    result = json.loads(out.read_text())
    assert result["quick"] is True and result["repeats"] == 1
    machine = result["machine"]
    for key in ("cpu_count", "cores_usable", "python", "numpy", "tensorflow", "keras", "numpy_blas", "threadpools"):
        assert key in machine, key

    assert [e["name"] for e in result["harness"]] == [
        "shapes vary, warm cache", "shapes vary, empty cache", "new configuration every example"]
    for e in result["harness"]:
        assert e["examples"] == len(e["cases"]) > 0
        assert all({"B", "T", "D", "U", "dtype", "activation"} <= set(c) for c in e["cases"])
        for kind in ("cached", "naive"):
            assert e[kind]["failures"] == [], (e["name"], kind, e[kind]["failures"])
            assert e[kind]["seconds"]["median"] > 0 and e[kind]["examples_per_s"]["median"] > 0
            assert 0 <= e[kind]["oracle_seconds"]["median"] <= e[kind]["seconds"]["median"]
        assert e["ratio"] > 0
        assert (e["goal_met"] is None) == (e["goal"] is None)

    size = bench.QUICK["pipeline"]
    assert [e["B"] for e in result["pipeline"]] == list(size["batches"])
    for e in result["pipeline"]:
        assert (e["T"], e["V"], e["E"], e["U"]) == (size["T"], size["V"], size["E"], size["U"])
        assert e["max_abs_diff_vs_keras"] < 1e-5  # float32 model: the rebuild computes what Keras computes
        for way in ("numpy", "keras_predict_on_batch", "keras_tf_function"):
            st = e[way]["seconds_per_call"]
            assert 0 < st["min"] <= st["median"] <= st["max"]
        assert e["ratio"] > 0 and isinstance(e["goal_met"], bool)
    assert isinstance(result["all_goals_met"], bool)


def test_command_line_entry_point_knows_bench():
    from rnn_ref.__main__ import COMMANDS

    assert COMMANDS["bench"] == "rnn_ref.bench"
