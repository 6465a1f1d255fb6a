"""pytest plugin: the tolerance table of a test run.

Registered from the project's conftest.py (``pytest_plugins``). It provides

* the session fixture ``tolerance_recorder``: pass it as ``Context(record=...)``
  and every judged result of the run is summed per property and dtype;
* a terminal summary with that table (results judged, failures, max abs,
  rel and ulps of the candidate and of Keras against the float64 reference,
  and the largest error/budget ratio met);
* ``--tolerance-report PATH``: the same table as JSON, in the
  ``properties`` layout of report.json (docs/report.md), with ``kind``
  "pytest" and the run's hypothesis seed and profile, so that
  ``python -m rnn_ref report compare`` can compare two test runs.

Under pytest-xdist each worker sends its table to the controller, which
merges them before printing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rnn_ref.harness import tolerance
from rnn_ref.harness.tally import SCHEMA_VERSION, KerasTally, ToleranceTable, fmt, jsonable

_TABLE = pytest.StashKey()
_NAME = "candidate"  # the implementation's name in the table: whatever the tests pass to Context


def pytest_addoption(parser):
    group = parser.getgroup("tolerance", "tolerance report of the property tests")
    group.addoption(
        "--tolerance-report", metavar="PATH", default=None,
        help="write the tolerance table of the run (per property and dtype) as JSON to PATH",
    )


def _table(config):
    if _TABLE not in config.stash:
        config.stash[_TABLE] = ToleranceTable(primary=_NAME)
    return config.stash[_TABLE]


@pytest.fixture(scope="session")
def tolerance_recorder(request):
    """``record`` callable for ``Context``: collects every Verdict of the session."""
    return _table(request.config).recorder(_NAME)


def pytest_sessionfinish(session):
    config = session.config
    table = config.stash.get(_TABLE, None)
    if hasattr(config, "workeroutput"):  # an xdist worker: hand the table to the controller
        if table is not None:
            config.workeroutput["tolerance_table"] = json.dumps(_report(table, config))
        return
    path = config.getoption("tolerance_report")
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        report = _report(table if table is not None else _table(config), config)
        Path(path).write_text(json.dumps(report, indent=1) + "\n")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """xdist controller: merge a worker's table."""
    data = getattr(node, "workeroutput", {}).get("tolerance_table")
    if data:
        _table(node.config).merge(ToleranceTable.from_json(json.loads(data)))


def hypothesis_run(config) -> dict:
    """The seed and hypothesis settings profile the session's examples were drawn with:
    ``seed`` is --hypothesis-seed (None when not given: then only a derandomized
    profile draws the same examples twice), ``hypothesis_profile`` the loaded profile
    (--hypothesis-profile, or HYPOTHESIS_PROFILE through conftest.py)."""
    from hypothesis import settings

    current = getattr(settings, "get_current_profile_name", None)  # missing in older hypothesis
    profile = current() if current else (config.getoption("hypothesis_profile", None)
                                         or os.environ.get("HYPOTHESIS_PROFILE") or "default")
    seed = config.getoption("hypothesis_seed", None)
    try:
        seed = int(seed) if seed is not None else None
    except ValueError:
        pass  # hypothesis takes any string as a seed
    return {"seed": seed, "hypothesis_profile": profile,
            "hypothesis_settings": {"max_examples": settings.default.max_examples,
                                    "derandomize": bool(settings.default.derandomize)}}


def _report(table, config) -> dict:
    return jsonable({"schema_version": SCHEMA_VERSION, "kind": "pytest", **hypothesis_run(config),
                     "budget_rule": tolerance.budget_rule(), **table.to_json()})


def pytest_terminal_summary(terminalreporter, config):
    table = config.stash.get(_TABLE, None)
    if table is None or not table.impl:
        return
    tr = terminalreporter
    tr.section("tolerance")
    tr.write_line(
        f"|result - float64 reference| of the candidate and of Keras; {tolerance.budget_rule_text()} "
        "(rnn_ref/harness/tolerance.py)")
    head = ("property", "dtype", "verdicts", "failed", "overflowed", "max abs", "max rel", "max ulps",
            "Keras abs", "Keras rel", "Keras ulps", "err/budget")
    rows = []
    for prop, dtype in table.keys():
        t = table.impl.get((prop, dtype, _NAME))
        if t is None:
            continue
        k = table.keras.get((prop, dtype), KerasTally())
        rows.append((prop, dtype, str(t.verdicts), str(t.failed), str(t.overflowed), fmt(t.max_abs),
                     fmt(t.max_rel), fmt(t.max_ulps), fmt(k.max_abs), fmt(k.max_rel), fmt(k.max_ulps),
                     f"{t.max_budget_ratio:.3f}"))
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    tr.write_line(line(head), bold=True)
    for r in rows:
        tr.write_line(line(r), red=r[3] != "0")
    total = sum(t.verdicts for t in table.impl.values())
    failed = sum(t.failed for t in table.impl.values())
    worst = max(t.max_budget_ratio for t in table.impl.values())
    overflowed = sum(t.overflowed for t in table.impl.values())
    tr.write_line(f"{total} results judged, {failed} over budget, {overflowed} overflowed (truth or Keras +-inf "
                  f"or NaN; not in the max columns); largest error/budget {worst:.3f}")
    path = config.getoption("tolerance_report")
    if path:
        tr.write_line(f"tolerance table written to {path}")
