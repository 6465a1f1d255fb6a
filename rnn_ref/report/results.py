"""report.json: the figures of a report run in one JSON document (schema in docs/report.md)."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np

from ..harness import tolerance
from ..harness.tally import SCHEMA_VERSION, Tally, ToleranceTable, json_number, jsonable
from .plots import PLOTS
from .sweeps import implementations


def environment() -> dict:
    """Versions of Keras, TensorFlow, NumPy, Python, hypothesis and rnn_ref, and the platform."""
    import hypothesis

    from .. import __version__
    from ..harness.oracle import versions

    env = dict(versions())
    env.update(python=platform.python_version(), platform=platform.platform(), rnn_ref=__version__,
               hypothesis=hypothesis.__version__, longdouble_mantissa_bits=int(np.finfo(np.longdouble).nmant) + 1)
    return env


def summary(table: ToleranceTable) -> dict:
    """The ``summary`` block of report.json: totals, and per implementation its worst case."""
    out = {"examples": sum(table.examples.values()), "verdicts": 0, "failed_examples": 0, "overflowed": 0,
           "by_implementation": {}}
    for name in table.implementations():
        ts = [t for (_, _, i), t in table.impl.items() if i == name]
        fails = sum(n for (_, _, i), n in table.failed_examples.items() if i == name)
        worst = max(ts, key=lambda t: t.max_budget_ratio, default=Tally())
        out["by_implementation"][name] = {
            "verdicts": sum(t.verdicts for t in ts),
            "failed_examples": fails,
            "overflowed": sum(t.overflowed for t in ts),
            "max_budget_ratio": json_number(worst.max_budget_ratio),
            "needed_factor": json_number(max((t.needed_factor for t in ts), default=0.0)),
            "closest": worst.closest,
        }
        out["verdicts"] += sum(t.verdicts for t in ts)
        out["failed_examples"] += fails
        out["overflowed"] += sum(t.overflowed for t in ts)
    return out


def report_run(settings: dict) -> dict:
    """The seed and hypothesis profile of a report run, from its ``settings``:
    the fields that tell whether two files drew the same cases (see ``compare.run_of``)."""
    return {
        "seed": settings.get("seed"),
        "hypothesis_profile": "report-quick" if settings.get("quick") else "report",
        "hypothesis_settings": {"max_examples": settings.get("max_examples"), "derandomize": False},
    }


def write_json(path: Path, table: ToleranceTable, settings: dict, length: dict, radius: dict, seconds: dict) -> dict:
    """Write report.json to ``path``; returns its contents (non-finite numbers not yet made strings)."""
    data = {
        "schema_version": SCHEMA_VERSION,
        "kind": "report",
        **report_run(settings),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": settings,
        "environment": environment(),
        "budget_rule": tolerance.budget_rule(),
        "implementations": {n: (f.__doc__ or "").strip().splitlines()[0] for n, f in implementations().items()},
        "summary": summary(table),
        **table.to_json(),
        "sweeps": {"length": length, "spectral_radius": radius},
        "plots": PLOTS,
        "seconds": seconds,
    }
    path.write_text(json.dumps(jsonable(data), indent=1, allow_nan=False) + "\n")
    return data
