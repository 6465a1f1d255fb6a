"""The benchmark runs end to end at its tiny size (``--quick``), so that it cannot rot.

No timing is asserted: the figures of a quick run mean nothing. What is checked
is that every measurement is there, is a positive time, was repeated as often
as asked, and that what the benchmark derives from the times (examples per
second, ratios, goals) is what those times give; that the machine section
reports the thread pools threadpoolctl sees; and that the checks the benchmark
runs along the way (the property judge on both harnesses, the NumPy model
against Keras, rnn_ref's gradients against GradientTape's) found nothing wrong.
"""

from __future__ import annotations

import contextlib
import io
import json
import math

import pytest

pytest.importorskip("keras")
pytest.importorskip("rich")

from rnn_ref.commands import bench  # noqa: E402

pytestmark = pytest.mark.keras

#: Odd, and neither --quick's default (2) nor the full default (5): the median of
#: n / seconds is then n / (median of seconds), and a run that ignores --repeats shows.
REPEATS = 3

#: Goals whose outcome is known whatever the times: the harness goal, the pipeline
#: goal at B = 1, the spread goal, the machine-limit goal and the backward goal are always met, the
#: pipeline goal at every other B never is.
GOALS = dict(GOAL_HARNESS=0.0, GOAL_PIPELINE_B1=0.0, GOAL_PIPELINE=math.inf, GOAL_PIPELINE_LARGE=math.inf,
             GOAL_SPREAD=math.inf, GOAL_LIMIT=math.inf, GOAL_BACKWARD=0.0)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """``(printed output, bench.json)`` of one quick run with REPEATS repeats and the goals of GOALS."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed):
        for name, value in GOALS.items():
            mp.setattr(bench, name, value)
        status = bench.main(["--quick", "--repeats", str(REPEATS), "--out", str(out)])
    assert status == 0
    return printed.getvalue(), json.loads(out.read_text())


def _measurements(result):
    """Every timed series of the run, as ``(where, stats)``."""
    for e in result["harness"]:
        for kind in ("cached", "naive"):
            for figure in ("seconds", "examples_per_s", "oracle_seconds"):
                yield f"harness {e['name']!r} {kind} {figure}", e[kind][figure]
    for e in result["pipeline"]:
        for way in PIPELINE_WAYS:
            yield f"pipeline B={e['B']} {way}", e[way]["seconds_per_call"]
    for e in [*result["backward"]["model"], result["backward"]["layer"]]:
        for way in BACKWARD_WAYS:
            if way in e:
                yield f"backward B={e['B']} {way}", e[way]["seconds_per_call"]


PIPELINE_WAYS = ("numpy", "numpy_unsplit", "keras_predict_on_batch", "keras_tf_function", "numpy_only_process")
BACKWARD_WAYS = ("rnn_ref", "rnn_ref_1_blas_thread", "keras_tf_function", "keras_eager")


def test_quick_bench_writes_every_measurement(run):
    printed, result = run
    assert "(a) harness" in printed and "(b) Embedding" in printed

    assert result["quick"] is True and result["repeats"] == REPEATS
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

    size = bench.QUICK["pipeline"]
    assert [e["B"] for e in result["pipeline"]] == list(size["batches"])
    for e in result["pipeline"]:
        assert (e["T"], e["V"], e["E"], e["U"]) == (size["T"], size["V"], size["E"], size["U"])
        assert e["max_abs_diff_vs_keras"] < 1e-5  # float32 model: the rebuild computes what Keras computes
        assert e["max_abs_diff_unsplit_vs_keras"] < 1e-5
        for way in PIPELINE_WAYS:
            st = e[way]["seconds_per_call"]
            assert 0 < st["min"] <= st["median"] <= st["max"]
            assert e[way]["spread"] == pytest.approx(st["max"] / st["min"], rel=1e-12), (e["B"], way)
            assert e[way]["calls_per_repeat"] >= 1
        # The NumPy-only process never loaded TensorFlow.
        assert e["numpy_only_process"]["tensorflow_loaded"] is False
        limit = e["machine_limit"]
        assert 0 < limit["seconds"] == pytest.approx(limit["recurrent_products_s"] + limit["activation_s"])
        assert limit["rows_per_thread"] * limit["threads"] >= e["B"]
        assert e["limit_over_numpy"] == pytest.approx(limit["seconds"] / e["numpy"]["seconds_per_call"]["median"])
        assert e["ratio"] > 0


def test_every_measurement_is_repeated_as_asked(run):
    _, result = run
    for where, st in _measurements(result):
        assert st["repeats"] == len(st["values"]) == REPEATS, where
        assert st["min"] == min(st["values"]) and st["max"] == max(st["values"]), where


def test_harness_rates_and_ratio_come_from_the_measured_times(run):
    _, result = run
    for e in result["harness"]:
        n = e["examples"]
        for kind in ("cached", "naive"):
            seconds = e[kind]["seconds"]["values"]
            assert e[kind]["examples_per_s"]["values"] == pytest.approx([n / s for s in seconds]), (e["name"], kind)
        # Same cases on both sides: examples per second cached over naive is the naive time over the cached time.
        assert e["ratio"] == pytest.approx(e["naive"]["seconds"]["median"] / e["cached"]["seconds"]["median"],
                                           rel=1e-9), e["name"]


def test_pipeline_ratios_come_from_the_measured_times(run):
    _, result = run
    for e in result["pipeline"]:
        numpy_s = e["numpy"]["seconds_per_call"]["median"]
        predict_s = e["keras_predict_on_batch"]["seconds_per_call"]["median"]
        function_s = e["keras_tf_function"]["seconds_per_call"]["median"]
        assert e["ratio_vs_predict_on_batch"] == pytest.approx(predict_s / numpy_s, rel=1e-12), e["B"]
        assert e["ratio_vs_tf_function"] == pytest.approx(function_s / numpy_s, rel=1e-12), e["B"]
        assert e["ratio"] == pytest.approx(min(predict_s, function_s) / numpy_s, rel=1e-12), e["B"]


def test_backward_writes_every_measurement_and_checks_the_gradients(run):
    printed, result = run
    assert "(c) backward" in printed
    size = bench.QUICK["backward"]
    V, E, U, T = size["V"], size["E"], size["U"], size["T"]
    rows = result["backward"]["model"]
    assert [e["B"] for e in rows] == list(size["batches"])
    for e in rows:
        assert (e["T"], e["V"], e["E"], e["U"], e["loss"]) == (T, V, E, U, "binary_crossentropy")
        # Every trainable weight, in Keras's order: Embedding, SimpleRNN, Dense.
        assert e["weights"] == [[V, E], [E, U], [U, U], [U], [U, 1], [1]]
        # The timed computation is the right one: rnn_ref's gradients and loss are Keras's (float32).
        assert e["max_abs_diff_vs_keras"] < 1e-5 and e["loss_abs_diff_vs_keras"] < 1e-5, e["B"]
        assert e["max_abs_gradient"] > 0
        ways = {"rnn_ref", "keras_tf_function"} | ({"keras_eager"} if e["B"] in size["eager_batches"] else set())
        assert ways <= set(e), e["B"]
        if "keras_eager" in e:
            assert e["max_abs_diff_eager_vs_tf_function"] < 1e-5
        for way in BACKWARD_WAYS:
            if way in e:
                st = e[way]["seconds_per_call"]
                assert 0 < st["min"] <= st["median"] <= st["max"], (e["B"], way)
                assert e[way]["spread"] == pytest.approx(st["max"] / st["min"], rel=1e-12)
                assert e[way]["calls_per_repeat"] >= 1
    layer = result["backward"]["layer"]
    assert (layer["B"], layer["T"], layer["D"], layer["U"]) == (size["layer_B"], T, E, U)
    assert layer["max_abs_diff_vs_keras"] < 1e-5 and layer["max_abs_gradient"] > 0
    assert result["backward"]["seconds"] > 0


def test_backward_ratios_come_from_the_measured_times(run):
    _, result = run
    for e in result["backward"]["model"]:
        ref_s = e["rnn_ref"]["seconds_per_call"]["median"]
        function_s = e["keras_tf_function"]["seconds_per_call"]["median"]
        assert e["ratio_vs_tf_function"] == pytest.approx(function_s / ref_s, rel=1e-12), e["B"]
        if "keras_eager" in e:
            assert e["ratio_vs_eager"] == pytest.approx(e["keras_eager"]["seconds_per_call"]["median"] / ref_s,
                                                        rel=1e-12), e["B"]
        else:
            assert e["ratio_vs_eager"] is None
        if "rnn_ref_1_blas_thread" in e:
            one_s = e["rnn_ref_1_blas_thread"]["seconds_per_call"]["median"]
            assert e["ratio_1_blas_thread_vs_tf_function"] == pytest.approx(function_s / one_s, rel=1e-12)
    layer = result["backward"]["layer"]
    assert layer["ratio_vs_tf_function"] == pytest.approx(
        layer["keras_tf_function"]["seconds_per_call"]["median"] / layer["rnn_ref"]["seconds_per_call"]["median"],
        rel=1e-12)


def test_goals_are_judged_on_the_ratios(run):
    _, result = run
    # Only the warm-cache row of the harness has a goal (always met with GOALS).
    assert [e["goal_met"] for e in result["harness"]] == [True, None, None]
    assert [e["goal"] is None for e in result["harness"]] == [False, True, True]
    # B = 1 has its own goal (always met with GOALS), the largest B too (never met), every other B
    # the common one (never met); the spread goal is judged at the largest B only (always met).
    size = bench.QUICK["pipeline"]
    assert [(e["B"], e["goal_met"]) for e in result["pipeline"]] == [(B, B == 1) for B in size["batches"]]
    assert [(e["B"], e["goal_met_vs_predict_on_batch"]) for e in result["pipeline"]] == [
        (B, B == 1) for B in size["batches"]]
    assert [(e["B"], e.get("spread_goal_met")) for e in result["pipeline"]] == [
        (B, True if B >= size["spread_from"] else None) for B in size["batches"]]
    # The machine-limit goal: SimpleRNN at the largest B only, the pipeline and the layer alone
    # (always met with GOALS).
    assert [(e["B"], e.get("limit_goal_met")) for e in result["pipeline"]] == [
        (B, True if B == size["large_B"] else None) for B in size["batches"]]
    largest = max(bench.QUICK["layers"]["batches"])
    assert [(e["layer"], e["B"]) for e in result["layers"]["forward"] if "limit_goal_met" in e] == [("SimpleRNN", largest)]
    assert all(e["limit_goal_met"] for e in result["layers"]["forward"] if "limit_goal_met" in e)
    # The backward goal is judged at every B, its spread goal from spread_from (always met with GOALS).
    back = bench.QUICK["backward"]
    assert [(e["B"], e["goal_met"], e.get("spread_goal_met")) for e in result["backward"]["model"]] == [
        (B, True, True if B >= back["spread_from"] else None) for B in back["batches"]]
    # Each layer's rows, forward and vjp: the spread goal from large_from (always met with GOALS).
    layers = bench.QUICK["layers"]
    for kind in ("forward", "backward"):
        assert [(e["layer"], e["B"], e.get("spread_goal_met")) for e in result["layers"][kind]] == [
            (e["layer"], e["B"], True if e["B"] >= layers["large_from"] else None) for e in result["layers"][kind]]
        assert any(e["B"] >= layers["large_from"] for e in result["layers"][kind])
    assert result["all_goals_met"] is False  # a pipeline goal is missed


def test_machine_reports_the_thread_pools_threadpoolctl_sees(run):
    threadpoolctl = pytest.importorskip("threadpoolctl")

    _, result = run
    seen = {p["filepath"]: p for p in threadpoolctl.threadpool_info()}
    reported = result["machine"]["threadpools"]
    assert reported, "NumPy's BLAS at least has a thread pool"
    for pool in reported:
        assert pool["filepath"] in seen, pool
        for key in ("user_api", "internal_api", "num_threads", "version"):
            assert pool[key] == seen[pool["filepath"]][key], (pool["filepath"], key)
    # rnn_ref is also timed with its batch split off; the backward pass with one BLAS thread.
    assert all("numpy_unsplit" in e for e in result["pipeline"])
    assert all("rnn_ref_1_blas_thread" in e for e in result["backward"]["model"])


@pytest.mark.parametrize("repeats", ["-1", "0"])
def test_command_line_rejects_a_repeat_count_below_one(capsys, repeats):
    from rnn_ref.commands.main import main

    with pytest.raises(SystemExit) as exc:
        main(["bench", "--quick", "--repeats", repeats])
    assert exc.value.code == 2
    assert "--repeats must be at least 1" in capsys.readouterr().err


def check_limit_goal(limit_goal):
    """Within 1.5x of the limit: limit / rnn_ref of 0.7 meets it, 0.6 does not, 2/3 just does."""
    assert limit_goal(0.7, 1.5)["limit_goal_met"] is True
    assert limit_goal(0.6, 1.5)["limit_goal_met"] is False, "0.6 of the limit (1.67x) judged within 1.5x"
    assert limit_goal(1 / 1.5, 1.5)["limit_goal_met"] is True


def test_the_machine_limit_goal_is_within_its_factor():
    from rnn_ref.commands.bench.machine import limit_goal  # noqa: PLC0415

    check_limit_goal(limit_goal)


def test_a_limit_goal_judged_on_the_wrong_side_is_caught():
    """The mutant: limit / rnn_ref compared with the factor itself, not with its inverse."""
    def wrong(limit_over_numpy, goal_limit):
        return dict(limit_goal_met=bool(limit_over_numpy >= goal_limit))

    with pytest.raises(AssertionError):
        check_limit_goal(wrong)
