"""``python -m rnn_ref conformance``: every model of the catalogue on every runtime.

Each model of ``conformance_models.MODELS`` (one per layer and option ``from_keras``
rebuilds) is saved to a temporary directory, and each (model, runtime) cell runs what
``check-model`` runs (``check_model._load`` and ``_open``, ``model_checks.Checker`` and
``run_model_property``): the whole-model properties (a stateful model's one more), judged against the float64
truth with the harness budget, a failure shrunk to its smallest input. A cell is

    pass (k properties)   every property that could run passed (the others: not checked)
    FAIL                  a property fails: its minimal input, worst element, budget ratio
    refused               the converter or the runtime declined the model (its message)
    not installed         the runtime's package is missing
    error                 the runtime could not be opened for another reason

``conformance.md`` (the table, the versions of every runtime, one paragraph per FAIL or
refused cell) and ``conformance.json`` are written to ``--out``. Cells run in parallel,
each a whole (model, runtime) pair in one of ``--workers`` processes, or, with
``--scheduler tcp://HOST:PORT``, as tasks of a Dask cluster (``run_catalogue_cell``: each
task builds its seeded catalogue model where it runs). A runtime is a name
of ``check-model`` (keras, jax, numpy, torch, onnx, litert), ``MODULE:CALLABLE`` /
``PATH.py:CALLABLE`` (one ``predict`` for every model), or ``mutant:NAME``, a runtime bug
of ``rnn_ref.implementations.runtime_mutants`` built for each model.

Exit status: 0 it ran (FAIL cells are findings), 2 a usage error or no Dask scheduler or
worker answering at ``--scheduler``, 130 interrupted.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime
import json
import multiprocessing
import os
import re
import socket
import sys
import tempfile
import time
from pathlib import Path

from rnn_ref.commands.conformance_models import select

RUNTIMES = ("keras", "jax", "numpy", "torch", "onnx", "litert")
DEFAULT_EXAMPLES = 4


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rnn_ref conformance", description=__doc__.split("\n\n")[0],
                                epilog="Exit status: 0 it ran (FAIL cells are findings), 2 usage error or no Dask "
                                       "scheduler or worker.")
    p.add_argument("--out", default="conformance", help="directory for conformance.md and .json (default conformance/)")
    p.add_argument("--runtimes", default=",".join(RUNTIMES),
                   help=f"comma-separated (default {','.join(RUNTIMES)}); also MODULE:CALLABLE, mutant:NAME")
    p.add_argument("--models", help="only models whose name contains this (comma-separate several)")
    p.add_argument("--max-examples", type=int, default=DEFAULT_EXAMPLES,
                   help=f"examples a property (default {DEFAULT_EXAMPLES})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shrink-seconds", type=float, default=10.0, help="time spent shrinking one failure")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=_cores(),
                       help="processes (default: the usable cores; 0: this one)")
    where.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                       help="run the cells on the Dask cluster of this scheduler (docs/scale.md): each task "
                            "builds its catalogue model where it runs")
    return p


# ---- one cell, in a worker process ---------------------------------------------------------


def _worst(message: str) -> tuple[str, float | None]:
    """The judge's line naming the worst element, and its error over its budget."""
    lines = [l.strip() for l in message.splitlines() if l.strip()]
    worst = next((l for l in lines if "worst" in l.lower()), lines[0] if lines else "")
    m = re.search(r"=\s*([0-9.]+(?:e[-+]?\d+)?)\s*>\s*budget\s*([0-9.]+(?:e[-+]?\d+)?)", worst)
    ratio = float(m.group(1)) / float(m.group(2)) if m and float(m.group(2)) > 0 else None
    return worst, ratio


def _open_runtime(runtime: str, path: str, model):
    from rnn_ref.commands.check_model import _open  # noqa: PLC0415
    from rnn_ref.runtimes import CallableRuntime  # noqa: PLC0415

    if runtime.startswith("mutant:"):
        from rnn_ref.implementations.runtime_mutants import (INPUT_MUTANTS, RUNTIME_MUTANTS,  # noqa: PLC0415
                                                                  STATEFUL_MUTANTS)

        mutants = {**RUNTIME_MUTANTS, **STATEFUL_MUTANTS, **INPUT_MUTANTS}
        return CallableRuntime(mutants[runtime.split(":", 1)[1]](model), runtime)
    return _open(runtime, argparse.Namespace(model=path, artifact=None, batch=None), model)


def run_cell(model_name: str, path: str, runtime: str, max_examples: int, seed: int, shrink_seconds: float) -> dict:
    """Check the saved model ``path`` on ``runtime``: the cell's verdict as a dict."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from rnn_ref.commands.check_model import _load, make_checker  # noqa: PLC0415
    import rnn_ref.harness.stateful_checks  # noqa: F401, PLC0415 - registers the stateful property
    from rnn_ref.harness.model_checks import properties_for, run_model_property, signature_of  # noqa: PLC0415
    from rnn_ref.runtimes import Declined  # noqa: PLC0415
    from rnn_ref.runtimes.keras_tf import KerasTF  # noqa: PLC0415

    started = time.perf_counter()
    cell = {"model": model_name, "runtime": runtime, "status": "error", "versions": {}, "notes": [],
            "passed": [], "not_checked": {}, "failed": [], "message": ""}
    try:
        model, np_model = _load(path)
        keras_line = KerasTF(path, model)
        cell["keras_line"] = dict(keras_line.facts.versions)
        try:
            rt = _open_runtime(runtime, path, model)
        except Declined as e:
            text = str(e)
            cell["status"] = "not installed" if "not installed" in text else "refused"
            cell["message"] = text
            return cell
        with rt:
            cell["versions"] = dict(rt.facts.versions)
            cell["notes"] = list(rt.facts.notes)
            fixed = model.inputs[0].shape[0]  # a stateful model's batch
            sig = signature_of(np_model, rt.facts.batch or fixed, rt.facts.length)
            checker = make_checker(rt, keras_line, np_model, sig)
            for name in properties_for(sig):
                r = run_model_property(name, checker, max_examples=max_examples, seed=seed,
                                       shrink_seconds=shrink_seconds)
                if r.status == "pass":
                    cell["passed"].append(name)
                elif r.status == "unsupported":
                    cell["not_checked"][name] = r.message
                else:
                    worst, ratio = _worst(r.message)
                    cell["failed"].append({
                        "property": name, "status": r.status, "message": r.message,
                        "input": r.example.describe() if r.example is not None else "",
                        "x": _small(r.inputs),
                        "worst": worst, "ratio": ratio})
            cell["calls"] = checker.calls
        cell["status"] = "FAIL" if cell["failed"] else ("pass" if cell["passed"] else "nothing checked")
    except Exception as e:  # noqa: BLE001 - a cell that breaks is reported, the others go on
        cell["status"], cell["message"] = "error", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    finally:
        cell["seconds"] = round(time.perf_counter() - started, 1)
    return cell


def _small(inputs):
    """A minimal input as JSON lists (one per model input for a model of several), None when
    larger than 64 numbers in all."""
    if inputs is None:
        return None
    arrays = inputs if isinstance(inputs, list) else [inputs]
    if sum(a.size for a in arrays) > 64:
        return None
    return [a.tolist() for a in arrays] if isinstance(inputs, list) else inputs.tolist()


def run_catalogue_cell(name: str, runtime: str, max_examples: int, seed: int, shrink_seconds: float) -> dict:
    """``run_cell`` on the catalogue's model ``name``, built and saved in a temporary directory
    of the process that runs it (a Dask worker of any machine: nothing is read from the
    submitting machine's disk). The catalogue's weights are seeded, so the model is the same."""
    from rnn_ref.commands.conformance_models import MODELS  # noqa: PLC0415

    (spec,) = [m for m in MODELS if m.name == name]
    with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
        path = _save_models([spec], Path(tmp))[name]
        cell = run_cell(name, path, runtime, max_examples, seed, shrink_seconds)
    cell["host"] = socket.gethostname()
    return cell


def _on_dask(scheduler: str, jobs: list, done) -> None:
    """Every job (``run_catalogue_cell``'s arguments) as a task of the cluster at ``scheduler``;
    ``done(cell)`` as each finishes."""
    from dask.distributed import as_completed  # noqa: PLC0415

    from rnn_ref.commands.report.cluster import dask_client  # noqa: PLC0415

    with dask_client(0, scheduler) as client:
        futures = [client.submit(run_catalogue_cell, *job, pure=False) for job in jobs]
        for future in as_completed(futures):
            done(future.result())


def _save_models(specs, directory: Path) -> dict:
    from rnn_ref._tf import keras_and_tf  # noqa: PLC0415

    keras, _ = keras_and_tf()
    paths = {}
    for spec in specs:
        path = directory / f"{spec.name}.keras"
        spec.make(keras).save(path)
        paths[spec.name] = str(path)
    return paths


# ---- the table ---------------------------------------------------------------------------


def cell_text(cell: dict) -> str:
    s = cell["status"]
    if s == "pass":
        text = f"pass ({len(cell['passed'])} properties)"
        return text + (f", {len(cell['not_checked'])} not checked" if cell["not_checked"] else "")
    if s == "FAIL":
        return f"**FAIL** ({len(cell['failed'])} of {len(cell['failed']) + len(cell['passed'])})"
    return s


def _versions(cells, runtimes) -> dict:
    """Every runtime's versions as its cells reported them (``not installed`` if none ran)."""
    out = {}
    for rt in runtimes:
        found = {}
        for c in cells:
            if c["runtime"] == rt:
                found.update(c["versions"])
        if not found and any(c["runtime"] == rt and c["status"] == "not installed" for c in cells):
            found = {"": "not installed"}
        out[rt] = found
    return out


def markdown(result: dict) -> str:
    runtimes, models = result["runtimes"], result["models"]
    cells = {(c["model"], c["runtime"]): c for c in result["cells"]}
    lines = ["# Conformance: every catalogue model on every runtime", "",
             f"{result['date']}, {result['seconds']:.0f} s on {result['workers']} worker process(es), "
             f"{result['max_examples']} examples a property, seed {result['seed']}. "
             "Each cell runs `check-model`'s properties, judged against `rnn_ref.from_keras` in float64 "
             "with the harness budget.", "", "Versions:", ""]
    line = next((c["keras_line"] for c in result["cells"] if c.get("keras_line")), {})
    if line:
        lines.append("- the Keras line every runtime is measured with: "
                     + ", ".join(f"{k} {x}" for k, x in line.items()))
    for rt, v in result["versions"].items():
        lines.append(f"- {rt}: " + (", ".join(f"{k} {x}".strip() for k, x in v.items()) or "(not opened)"))
    lines += ["", "| model | " + " | ".join(runtimes) + " |", "|---|" + "---|" * len(runtimes)]
    for m in models:
        lines.append(f"| `{m['name']}` | " + " | ".join(cell_text(cells[(m['name'], rt)]) if (m['name'], rt) in cells
                                                        else "" for rt in runtimes) + " |")
    lines += ["", "Models:", ""] + [f"- `{m['name']}`: {m['description']}" for m in models]
    findings = [c for c in result["cells"] if c["status"] not in ("pass", "not installed")]
    if findings:
        lines += ["", "## FAIL, refused and error cells", ""]
    for c in findings:
        head = f"**`{c['model']}` on {c['runtime']}: {c['status']}.**"
        if c["status"] == "FAIL":
            f = c["failed"][0]
            ratio = f" ({f['ratio']:.3g} times the budget)" if f["ratio"] else ""
            text = (f"{head} `{f['property']}` fails; minimal input {f['input']}"
                    + (f", x = {f['x']}" if f["x"] is not None and len(str(f["x"])) < 120 else "")
                    + f"; {f['worst']}{ratio}.")
            if len(c["failed"]) > 1:
                text += " Also fails " + ", ".join(f"`{g['property']}` ({g['input']})" for g in c["failed"][1:]) + "."
            if c["passed"]:
                text += f" Passes {', '.join(f'`{p}`' for p in c['passed'])}."
        else:
            text = f"{head} {c['message'].splitlines()[0] if c['message'] else ''}"
        if c["not_checked"]:
            text += " Not checked: " + "; ".join(f"`{k}` ({v})" for k, v in c["not_checked"].items()) + "."
        lines += [text, ""]
    partial = [c for c in result["cells"] if c["status"] == "pass" and c["not_checked"]]
    if partial:
        lines += ["## Not checked in passing cells", ""]
        for c in partial:
            lines.append(f"- `{c['model']}` on {c['runtime']}: " + "; ".join(
                f"`{k}` ({v})" for k, v in c["not_checked"].items()))
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


# ---- the command -------------------------------------------------------------------------


def _usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    for r in runtimes:
        if r.startswith("mutant:"):
            from rnn_ref.implementations.runtime_mutants import (INPUT_MUTANTS, RUNTIME_MUTANTS,  # noqa: PLC0415
                                                                  STATEFUL_MUTANTS)

            known = [*RUNTIME_MUTANTS, *STATEFUL_MUTANTS, *INPUT_MUTANTS]
            if r.split(":", 1)[1] not in known:
                return _usage(f"unknown mutant {r!r}; known: {', '.join(known)}")
        elif r not in RUNTIMES and ":" not in r:
            return _usage(f"unknown runtime {r!r}; known: {', '.join(RUNTIMES)}, MODULE:CALLABLE, mutant:NAME")
    if not runtimes:
        return _usage("no runtime given")
    specs = select(args.models)
    if not specs:
        return _usage(f"no model matches {args.models!r}")
    if args.max_examples < 1 or args.workers < 0:
        return _usage("--max-examples must be at least 1 and --workers at least 0")
    if args.scheduler:
        from rnn_ref.commands.report.cluster import check_scheduler  # noqa: PLC0415

        try:
            check_scheduler(args.scheduler)
        except ValueError as e:
            return _usage(str(e))
    started = time.perf_counter()
    out = Path(args.out)
    cells = []
    with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
        paths = _save_models(specs, Path(tmp))
        jobs = [(s.name, paths[s.name], rt, args.max_examples, args.seed, args.shrink_seconds)
                for s in specs for rt in runtimes]
        where = f"the Dask cluster at {args.scheduler}" if args.scheduler else f"{args.workers or 1} worker(s)"
        print(f"conformance: {len(specs)} models x {len(runtimes)} runtimes = {len(jobs)} cells, {where}",
              file=sys.stderr, flush=True)

        def done(cell):
            cells.append(cell)
            verdict = cell_text(cell).replace("**", "")
            print(f"[{len(cells)}/{len(jobs)}] {cell['model']} on {cell['runtime']}: {verdict}"
                  f" ({cell['seconds']:.1f} s)", file=sys.stderr, flush=True)

        try:
            if args.scheduler:
                _on_dask(args.scheduler, [(name, rt, *rest) for name, _, rt, *rest in jobs], done)
            elif args.workers == 0:
                for job in jobs:
                    done(run_cell(*job))
            else:
                ctx = multiprocessing.get_context("spawn")  # TensorFlow's threads do not survive a fork
                with cf.ProcessPoolExecutor(max_workers=args.workers, mp_context=ctx) as pool:
                    for future in cf.as_completed([pool.submit(run_cell, *job) for job in jobs]):
                        done(future.result())
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except (ConnectionError, TimeoutError) as e:  # the scheduler did not answer, or has no worker
            print(f"error: {e}", file=sys.stderr)
            return 2
    order = {(s.name, rt): i for i, (s, rt) in enumerate((s, rt) for s in specs for rt in runtimes)}
    cells.sort(key=lambda c: order[(c["model"], c["runtime"])])
    result = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "seconds": round(time.perf_counter() - started, 1), "workers": args.workers or 1,
              "scheduler": args.scheduler,
              "max_examples": args.max_examples, "seed": args.seed, "runtimes": runtimes,
              "models": [{"name": s.name, "description": s.description} for s in specs],
              "versions": _versions(cells, runtimes), "cells": cells}
    out.mkdir(parents=True, exist_ok=True)
    (out / "conformance.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (out / "conformance.md").write_text(markdown(result))
    counts = {}
    for c in cells:
        counts[c["status"]] = counts.get(c["status"], 0) + 1
    print(f"{', '.join(f'{n} {s}' for s, n in counts.items())} in {result['seconds']:.0f} s; "
          f"wrote {out / 'conformance.md'} and {out / 'conformance.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
