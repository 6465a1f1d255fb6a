"""report.json: the figures of a report run in one JSON document (schema in docs/report.md)."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np

from rnn_ref.harness import tolerance
from rnn_ref.models.registry import RECURRENT
from rnn_ref.harness.tally import SCHEMA_VERSION, Tally, ToleranceTable, json_number, jsonable
from rnn_ref.commands.report.factor import factor_margin
from rnn_ref.commands.report.sweeps import implementations, split_label


def environment() -> dict:
    """Versions of Keras, TensorFlow, NumPy, Python, hypothesis and rnn_ref, and the platform."""
    import hypothesis

    from rnn_ref import __version__
    from rnn_ref.harness.oracle import versions

    env = dict(versions())
    env.update(python=platform.python_version(), platform=platform.platform(), rnn_ref=__version__,
               hypothesis=hypothesis.__version__, longdouble_mantissa_bits=int(np.finfo(np.longdouble).nmant) + 1)
    return env


_environment = environment  # write_json's parameter of the same name hides it there


def _implementation_summary(table: ToleranceTable, name: str, rows=None) -> dict:
    """Totals and the worst case of implementation ``name`` over the property
    rows ``rows`` (all when None)."""
    ts = [t for (p, _, i), t in table.impl.items() if i == name and (rows is None or p in rows)]
    fails = sum(n for (p, _, i), n in table.failed_examples.items() if i == name and (rows is None or p in rows))
    worst = max(ts, key=lambda t: t.max_budget_ratio, default=Tally())
    return {
        "verdicts": sum(t.verdicts for t in ts),
        "failed_examples": fails,
        "overflowed": sum(t.overflowed for t in ts),
        "max_budget_ratio": json_number(worst.max_budget_ratio),
        "needed_factor": json_number(max((t.needed_factor for t in ts), default=0.0)),
        "closest": worst.closest,
    }


def summary(table: ToleranceTable) -> dict:
    """The ``summary`` block of report.json: totals, per implementation its
    worst case over every layer, and the same per layer (``by_layer``, from
    the row labels: ``matches_keras (LSTM)`` is an LSTM row)."""
    out = {"examples": sum(table.examples.values()), "verdicts": 0, "failed_examples": 0, "overflowed": 0,
           "by_implementation": {}, "by_layer": {}}
    for name in table.implementations():
        d = out["by_implementation"][name] = _implementation_summary(table, name)
        out["verdicts"] += d["verdicts"]
        out["failed_examples"] += d["failed_examples"]
        out["overflowed"] += d["overflowed"]
    by_layer: dict = {}
    for prop, _, _ in table.impl:
        by_layer.setdefault(split_label(prop)[1], set()).add(prop)
    for layer in [la for la in RECURRENT if la in by_layer]:
        rows = by_layer[layer]
        names = [n for n in table.implementations() if any((p, d, n) in table.impl for p in rows
                                                           for d in ("float32", "float64"))]
        out["by_layer"][layer] = {
            "examples": sum(n for (p, _), n in table.examples.items() if p in rows),
            "implementations": {n: _implementation_summary(table, n, rows) for n in names},
        }
    return out


def report_run(settings: dict) -> dict:
    """The seed and hypothesis profile of a report run, from its ``settings``:
    the fields that tell whether two files drew the same cases (see ``compare.run_of``)."""
    return {
        "seed": settings.get("seed"),
        "hypothesis_profile": "report-quick" if settings.get("quick") else "report",
        "hypothesis_settings": {"max_examples": settings.get("max_examples"), "derandomize": False},
    }


def write_json(path: Path, table: ToleranceTable, settings: dict, dedicated: dict, factor: dict, plots: dict,
               seconds: dict, factor_gradients: dict | None = None, *, environment: dict | None = None,
               task_log: dict | None = None, training: dict | None = None) -> dict:
    """Write report.json to ``path``; returns its contents (non-finite numbers not yet made strings).

    ``dedicated`` is {layer: {"length", "spectral_radius", "gradient_length",
    "gradient_spectral_radius"}} (``dedicated.sweep_layers``); ``factor`` and
    ``factor_gradients`` the FactorTally's forward and gradients groups;
    ``sweeps.length`` and ``sweeps.spectral_radius`` repeat the first layer's, as
    files written before the other layers were swept have them. ``environment``
    (default: this process's, ``environment()``) is the versions of the
    processes that ran the sweeps; ``task_log`` ({task: {seconds, pid,
    cached_layers}}) is written as ``tasks`` when given; ``training`` (the training
    sweep's block, ``training.summarize``) as ``training``."""
    first = next(iter(dedicated.values()))
    layers = list(dedicated)
    data = {
        "schema_version": SCHEMA_VERSION,
        "kind": "report",
        **report_run(settings),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": settings,
        "environment": environment if environment is not None else _environment(),
        "budget_rule": tolerance.budget_rule(),
        "implementations": {n: _doc(f) for n, f in implementations(layers[0]).items()},
        "layers": {layer: {n: _doc(f) for n, f in implementations(layer).items()} for layer in layers},
        "summary": summary(table),
        "factor": factor,
        "factor_margin": factor_margin(factor),
        "factor_gradients": factor_gradients or {},
        "factor_margin_gradients": factor_margin(factor_gradients or {}),
        **table.to_json(),
        "sweeps": {"length": first["length"], "spectral_radius": first["spectral_radius"], "by_layer": dedicated},
        "plots": plots,
        **({"training": training} if training is not None else {}),
        "seconds": seconds,
        **({"tasks": task_log} if task_log is not None else {}),
    }
    path.write_text(json.dumps(jsonable(data), indent=1, allow_nan=False) + "\n")
    return data


def _doc(f) -> str:
    """The first line of a function's docstring."""
    return (f.__doc__ or "").strip().splitlines()[0]
