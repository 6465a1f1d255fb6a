"""The report on Dask: the same rows, verdicts, FACTOR cells and sweeps on a
LocalCluster of two workers and on an external cluster as in one process, and
the checks that say so fail on the bugs they are meant to catch (a merge that
drops a task's results, seeds taken per worker, a worker that loses its Keras
layers between tasks).

Kept small: one layer (SimpleRNN, whose dedicated sweeps are the cheapest), two
properties, the --quick sizes.
"""

from __future__ import annotations

import json

import pytest

from rnn_ref.commands.main import main as cli
from rnn_ref.commands.report import cluster, tasks
from rnn_ref.commands.report.sweeps import WIDE_GAIN, labelled_catalogue
from dask_cluster import external_cluster  # noqa: F401  (a fixture)

pytestmark = pytest.mark.keras

NAMES = ["matches_keras", "gradients_match_keras"]
LAYERS = ["SimpleRNN"]
ARGS = ["report", "--quick", "--max-examples", "2", "--seed", "7", "--layers", *LAYERS, "--properties", *NAMES]

#: What must not depend on where the tasks ran (timings, settings and the task log may).
COMPARED = ("properties", "summary", "factor", "factor_gradients", "factor_margin", "factor_margin_gradients",
            "sweeps")


def differences(a: dict, b: dict) -> list[str]:
    """The parts of two report.json documents (or ``as_report`` dicts) that differ."""
    return [k for k in COMPARED if k in a and a.get(k) != b.get(k)]


def as_report(merged: tasks.Merged) -> dict:
    """The parts of report.json a merge decides, from a ``tasks.Merged``."""
    return json.loads(json.dumps({"properties": merged.table.properties_json(), "factor": merged.factors.to_json(),
                                  "factor_gradients": merged.factors.to_json("gradients"),
                                  "sweeps": merged.dedicated}, default=str))


def run_report(out, *extra) -> dict:
    assert cli([*ARGS, "--out", str(out), *extra]) == 0
    return json.loads((out / "report.json").read_text())


def cache_kept(task_log: dict) -> bool:
    """Whether every worker that ran two tasks or more still held Keras layers
    built by an earlier one when a later one started (the process-wide LayerCache
    lives across tasks)."""
    by_pid: dict = {}
    for entry in task_log.values():
        by_pid.setdefault(entry["pid"], []).append(entry["cached_layers"])
    return all(max(counts) > 0 for counts in by_pid.values() if len(counts) > 1)


@pytest.fixture(scope="module")
def in_process(tmp_path_factory) -> dict:
    report = run_report(tmp_path_factory.mktemp("in_process"), "--workers", "0")
    # not vacuous: both properties judged, sweeps present
    rows = report["properties"]
    assert {"matches_keras", "gradients_match_keras"} <= set(rows)
    assert all(e["implementations"]["rnn_ref"]["verdicts"] > 0 for r in rows.values() for e in r["by_dtype"].values())
    assert set(report["sweeps"]["by_layer"]["SimpleRNN"]) == set(tasks.DEDICATED)
    return report


def small_plan(names=NAMES) -> list[tasks.Task]:
    """The property tasks of the test's run, for runs through the task API (no sweeps, no files)."""
    plan = tasks.plan(names, LAYERS, max_examples=3, seed=7, wide_gain=WIDE_GAIN, sizes={})
    return [t for t in plan if t.kind == "property"]


def merged_of(plan, results) -> dict:
    return as_report(tasks.merge(plan, results, labelled_catalogue(NAMES, LAYERS)))


def test_local_cluster_matches_in_process(in_process, tmp_path):
    report = run_report(tmp_path, "--workers", "2")
    assert report["settings"]["workers"] == 2 and report["settings"]["scheduler"] == "local"
    assert differences(in_process, report) == []
    assert len({e["pid"] for e in report["tasks"].values()}) == 2  # both workers ran tasks
    assert cache_kept(report["tasks"])


def test_a_merge_that_drops_a_task_is_caught(monkeypatch):
    plan = small_plan()
    results = cluster.run_in_process(plan, lambda task, result: None)
    good = merged_of(plan, results)

    real_merge = tasks.merge

    def drops_last(plan_, results_, catalogue):  # the mutant: one task's results lost on the way
        return real_merge(plan_[:-1], results_, catalogue)

    monkeypatch.setattr(tasks, "merge", drops_last)
    assert "properties" in differences(good, merged_of(plan, results))


def test_bad_scheduler_address_is_refused(capsys):
    assert cli(["report", "--scheduler", "localhost:8786", "--out", "unused"]) == 2
    assert "--scheduler must look like tcp://HOST:PORT, got 'localhost:8786'" in capsys.readouterr().err
    assert cluster.check_scheduler("tcp://127.0.0.1:8786") == "tcp://127.0.0.1:8786"
    for bad in ("tcp://host", "tcp://host:0", "tcp://host:99999", "http://host:8786"):
        with pytest.raises(ValueError, match="must look like tcp://HOST:PORT"):
            cluster.check_scheduler(bad)


#: Run in each worker of the external cluster (``Client.run(exec, code, {})``, in a fresh namespace): the
#: mutants, and their removal.
SEED_PER_WORKER = """
import os
from rnn_ref.commands.report import sweeps
sweeps._real_property_seed = sweeps.property_seed
sweeps.property_seed = lambda seed, name: sweeps._real_property_seed(seed, name) + os.getpid()
"""
CACHE_DROPPED = """
from rnn_ref.harness import oracle
from rnn_ref.commands.report import tasks
tasks._real_worker_state = tasks.worker_state
def _dropping():
    for cache in oracle._SHARED.values():
        cache.clear()
    return tasks._real_worker_state()
tasks.worker_state = _dropping
"""
UNDO = """
from rnn_ref.commands.report import sweeps, tasks
sweeps.property_seed = getattr(sweeps, "_real_property_seed", sweeps.property_seed)
tasks.worker_state = getattr(tasks, "_real_worker_state", tasks.worker_state)
"""


def test_external_scheduler(in_process, external_cluster, tmp_path):
    """``report --scheduler`` on a scheduler and two workers started apart gives
    what one process gives; on that cluster, seeds taken per worker and Keras
    layers dropped between tasks are caught by the same checks."""
    from dask.distributed import Client

    with Client(external_cluster, timeout=60) as client:
        client.wait_for_workers(2, timeout=120)
        report = run_report(tmp_path, "--scheduler", external_cluster)
        assert report["settings"]["scheduler"] == external_cluster and report["settings"]["workers"] == 2
        assert differences(in_process, report) == []
        assert cache_kept(report["tasks"])

        plan = small_plan()
        here = merged_of(plan, cluster.run_in_process(plan, lambda task, result: None))
        keep = lambda task, result: None  # noqa: E731
        there = cluster.run_on_cluster(client, plan, tasks.estimate_task, keep)
        assert differences(here, merged_of(plan, there)) == []
        try:
            client.run(exec, SEED_PER_WORKER, {})
            assert "properties" in differences(here, merged_of(plan, cluster.run_on_cluster(
                client, plan, tasks.estimate_task, keep)))
            client.run(exec, UNDO, {})
            client.run(exec, CACHE_DROPPED, {})
            # four tasks on two workers: one worker runs two or more
            four = small_plan(NAMES + ["mask_matches_keras", "initial_state_matches_keras"])
            log = {k: r.worker for k, r in cluster.run_on_cluster(client, four, tasks.estimate_task, keep).items()}
            assert not cache_kept(log)
        finally:
            client.run(exec, UNDO, {})

