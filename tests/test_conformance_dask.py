"""``conformance --scheduler``: the cells as tasks of a Dask cluster started apart (a
scheduler and two ``dask worker`` processes, as docs/scale.md starts them) give the cells one
process gives: same verdicts, properties, minimal inputs and worst elements. Each task builds
its seeded catalogue model where it runs; a worker that built it without the seeded weights
(a plausible bug of a task that reads nothing from the submitting machine) is caught by the
same comparison.
"""

from __future__ import annotations

import json

import pytest

from dask_cluster import external_cluster  # noqa: F401  (a fixture)
from rnn_ref.commands import conformance

pytestmark = pytest.mark.keras

ARGS = ["--models", "gru_reset_after", "--runtimes", "keras,mutant:gru_bias_twice", "--max-examples", "2",
        "--shrink-seconds", "3"]


def cells(out) -> dict:
    """What must not depend on where a cell ran, by (model, runtime)."""
    kept = ("status", "passed", "not_checked", "failed")
    return {(c["model"], c["runtime"]): {k: c[k] for k in kept}
            for c in json.loads((out / "conformance.json").read_text())["cells"]}


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("in_process")
    assert conformance.main([*ARGS, "--workers", "0", "--out", str(out)]) == 0
    return cells(out)


#: Run in each worker (``Client.run(exec, code, {})``): the catalogue's models built without their
#: seeded weights, and the undoing of it.
UNSEEDED = """
from rnn_ref.commands import conformance_models
conformance_models._real_randomize = conformance_models.randomize
conformance_models.randomize = lambda model, seed: None
"""
UNDO = """
from rnn_ref.commands import conformance_models
conformance_models.randomize = getattr(conformance_models, "_real_randomize", conformance_models.randomize)
"""


def test_cells_on_a_dask_cluster_equal_the_cells_of_one_process(in_process, external_cluster, tmp_path):
    from dask.distributed import Client

    out = tmp_path / "dask"
    assert conformance.main([*ARGS, "--scheduler", external_cluster, "--out", str(out)]) == 0
    on_dask = cells(out)
    assert on_dask == in_process
    assert on_dask["gru_reset_after", "mutant:gru_bias_twice"]["status"] == "FAIL"  # a finding, compared too
    result = json.loads((out / "conformance.json").read_text())
    assert result["scheduler"] == external_cluster and all("host" in c for c in result["cells"])

    with Client(external_cluster, timeout=30) as client:
        client.run(exec, UNSEEDED, {})
        try:
            bad = tmp_path / "unseeded"
            assert conformance.main([*ARGS, "--scheduler", external_cluster, "--out", str(bad)]) == 0
            assert cells(bad) != in_process
        finally:
            client.run(exec, UNDO, {})


def test_a_malformed_scheduler_address_is_a_usage_error(tmp_path, capsys):
    assert conformance.main([*ARGS, "--scheduler", "localhost:8786", "--out", str(tmp_path)]) == 2
    assert "must look like tcp://HOST:PORT" in capsys.readouterr().err
