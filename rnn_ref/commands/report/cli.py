"""The command line of the report: ``python -m rnn_ref report [options]`` runs
the sweeps and writes the report; ``python -m rnn_ref report compare OLD NEW``
compares two files.

The sweeps run as tasks (``tasks``): on a Dask LocalCluster over this
machine's cores by default, on an existing cluster with ``--scheduler``, or
one after the other in this process with ``--workers 0`` (``cluster``)."""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

from rnn_ref.harness import tolerance
from rnn_ref.models.registry import RECURRENT, layer_named
from rnn_ref.harness.tally import KerasTally, Tally, ToleranceTable, fmt
from rnn_ref.commands.report import cluster, tasks
from rnn_ref.commands.report.compare import THRESHOLD, run_compare
from rnn_ref.commands.report.factor import factor_margin
from rnn_ref.commands.report.markdown import write_markdown
from rnn_ref.commands.report.plots import write_plots
from rnn_ref.commands.report.results import write_json
from rnn_ref.commands.report.sweeps import CHAOS, WEIGHTS, WIDE_GAIN, catalogue, labelled_catalogue
from rnn_ref.commands.report.training import summary_line, sweep_training

#: Runs estimated longer than this many seconds say how to stop them, next to
#: the estimate every run prints before it starts.
LONG_RUN = 180


def parser() -> argparse.ArgumentParser:
    """``report`` with its options, and its subcommand ``compare``."""
    default, full, quick = (tasks.SIZES[k]["examples"] for k in ("default", "full", "quick"))
    ap = argparse.ArgumentParser(
        prog="python -m rnn_ref report",
        usage="%(prog)s [--out DIR] [--quick | --full | --max-examples N] [--seed S] [--layers LAYER ...]\n"
              "       %(prog)s [--workers N | --scheduler tcp://HOST:PORT] [--properties NAME ...] "
              "[--wide-gain LO HI]\n"
              "       %(prog)s compare OLD.json NEW.json [--threshold X] [--all]",
        description="Sweep every property against Keras, with chaotic weights, for each layer (SimpleRNN: "
                    "rnn_ref and the correct variants; LSTM, GRU: rnn_ref), and write report.md, report.json "
                    "and plots. The sweeps run as tasks on a Dask cluster (docs/scale.md). "
                    "`python -m rnn_ref report compare OLD.json NEW.json` compares two reports.")
    ap.add_argument("--out", type=Path, default=Path("report"), metavar="DIR",
                    help="output directory (default: report)")
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help=f"a small sweep for smoke tests ({quick} case a property, tiny dedicated sweeps; "
                           "seconds, not minutes); runs in this process unless --workers or --scheduler is given")
    size.add_argument("--full", action="store_true",
                      help=f"the full sweep: {full} cases a property and the full dedicated sweeps "
                           "(about 11 minutes of work, under 6 on 2 workers; the estimate is printed first)")
    ap.add_argument("--max-examples", "--examples", type=int, default=None, metavar="N", dest="max_examples",
                    help=f"cases a property (default {default}, {full} with --full, {quick} with --quick)")
    ap.add_argument("--seed", type=int, default=0, metavar="S", help="hypothesis seed of the property sweep (default 0)")
    ap.add_argument("--properties", nargs="*", default=None, metavar="NAME", help="only these properties")
    ap.add_argument("--layers", nargs="+", default=None, metavar="LAYER",
                    help=f"only these layers ({', '.join(RECURRENT)}; default all)")
    ap.add_argument("--wide-gain", nargs=2, type=float, default=WIDE_GAIN, metavar=("LO", "HI"),
                    help=f"recurrent gains the property sweep redraws for bounded activations "
                         f"(default {WIDE_GAIN[0]:g} {WIDE_GAIN[1]:g})")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, metavar="N",
                       help=f"worker processes of the local Dask cluster, one thread each (default: the "
                            f"machine's cores, {os.cpu_count()} here; 0 runs every task in this process, "
                            f"without Dask; --quick defaults to 0)")
    where.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                       help="run the tasks on this existing Dask cluster instead (docs/scale.md)")
    sub = ap.add_subparsers(dest="command", title="subcommand", metavar="compare OLD.json NEW.json",
                            help="compare two report.json files (or two pytest --tolerance-report files)")
    cmp = sub.add_parser(
        "compare", prog=f"{ap.prog} compare",
        description="Compare two report.json files property by property; exit 1 when a figure got worse.")
    cmp.add_argument("old", type=Path, metavar="OLD.json", help="the earlier file")
    cmp.add_argument("new", type=Path, metavar="NEW.json", help="the later file, compared with OLD.json")
    cmp.add_argument("--threshold", type=float, default=THRESHOLD, metavar="X",
                     help=f"a figure is worse when new > THRESHOLD * old and the change is above its floor "
                          f"(default {THRESHOLD:g}, two bits; see docs/report.md)")
    cmp.add_argument("--all", action="store_true", help="list unchanged figures too")
    return ap


def main(argv=None) -> int:
    """``python -m rnn_ref report ...``; the exit status."""
    args = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.command == "compare":
        return run_compare(args.old, args.new, args.threshold, args.all)
    return run_report(args)


def size_of(args: argparse.Namespace) -> str:
    """The sweep size a run asked for: "quick", "full" or "default" (tasks.SIZES)."""
    return "quick" if args.quick else "full" if args.full else "default"


def run_report(args: argparse.Namespace) -> int:
    """Run the tasks of every layer, merge their results, write report.json,
    report.md and the plots to ``args.out`` and print a summary table."""
    # the property sweep runs per-step softmax over one unit on purpose
    warnings.filterwarnings("ignore", message="You are using a softmax over axis -1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib  # here, not at the top: report compare needs no matplotlib

    matplotlib.use("Agg")
    size = tasks.SIZES[size_of(args)]
    max_examples = args.max_examples or size["examples"]
    known = catalogue()
    names = args.properties or list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"unknown properties: {', '.join(unknown)}", file=sys.stderr)
        return 2
    try:
        chosen = {layer_named(n).name for n in (args.layers or RECURRENT)}
        if args.scheduler:
            cluster.check_scheduler(args.scheduler)
        if args.workers is not None and args.workers < 0:
            raise ValueError(f"--workers must be 0 (this process) or more, got {args.workers}")
    except ValueError as e:
        print(str(e), file=sys.stderr)
        return 2
    layers = [n for n in RECURRENT if n in chosen]
    workers = args.workers if args.workers is not None else (0 if args.quick else os.cpu_count() or 1)
    plan = tasks.plan(names, layers, max_examples=max_examples, seed=args.seed, wide_gain=args.wide_gain,
                      sizes=size["sweeps"])
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        if args.scheduler or workers > 0:
            with cluster.dask_client(workers, args.scheduler) as client:
                results, env, n_workers = _run(plan, client, cluster.worker_threads(client))
        else:
            results, env, n_workers = _run(plan, None, 0)
    except (ConnectionError, TimeoutError) as e:
        print(str(e), file=sys.stderr)
        return 2
    merged = tasks.merge(plan, results, labelled_catalogue(names, layers))
    seconds = dict(merged.seconds)
    seconds["tasks"] = seconds["properties"] + sum(seconds[k] for k in tasks.DEDICATED.values())
    t0 = time.perf_counter()
    plots = write_plots(out, merged.dedicated, merged.factors.points)
    seconds["plots"] = time.perf_counter() - t0
    t0 = time.perf_counter()  # the training sweep: Keras fits in this process, after the Dask sweeps
    training = sweep_training(size_of(args))
    seconds["training"] = time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - start
    first = merged.dedicated[layers[0]]
    settings = {"max_examples": max_examples, "seed": args.seed, "quick": bool(args.quick), "size": size_of(args),
                "wide_gain": list(args.wide_gain), "weights": WEIGHTS, "properties": names, "layers": layers,
                "workers": n_workers, "scheduler": args.scheduler or ("local" if workers else "in-process"),
                "chaos": {layer: CHAOS[layer] for layer in layers},
                "length_sweep": {k: v for k, v in first["length"].items() if k in ("T", "seeds", "B", "D", "U")},
                "radius_sweep": {k: v for k, v in first["spectral_radius"].items()
                                 if k in ("T", "seeds", "B", "D", "U")},
                "gradient_length_sweep": {k: v for k, v in first["gradient_length"].items()
                                          if k in ("T", "seeds", "B", "D", "U", "t")},
                "gradient_radius_sweep": {k: v for k, v in first["gradient_spectral_radius"].items()
                                          if k in ("T", "seeds", "B", "D", "U")}}
    task_log = {t.key: {"seconds": round(results[t.key].seconds, 2), **results[t.key].worker} for t in plan}
    data = write_json(out / "report.json", merged.table, settings, merged.dedicated, merged.factors.to_json(), plots,
                      {k: round(v, 2) for k, v in seconds.items()}, merged.factors.to_json("gradients"),
                      environment=env, task_log=task_log, training=training)
    write_markdown(out / "report.md", data)
    print_summary(merged.table, data, out, seconds["total"])
    return 0


def _run(plan: list, client, n_workers: int) -> tuple[dict, dict, int]:
    """Run ``plan`` on ``client`` (in this process when None) under a progress
    bar, after printing the estimate of its time; the results by task key,
    the environment of the process(es) that ran them and the worker count."""
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    console = Console(stderr=True)
    estimate = tasks.estimate_seconds(plan, max(n_workers, 1))
    where = (f"{n_workers} Dask worker{'s' * (n_workers != 1)}" if client is not None else "this process")
    console.print(f"{len(plan)} tasks on {where}, estimated {tasks.duration(estimate)}"
                  + ("; Ctrl-C stops the run" if estimate > LONG_RUN else ""))
    props = [t for t in plan if t.kind == "property"]
    sweeps = [t for t in plan if t.kind != "property"]
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=False) as progress:
        bar_props = progress.add_task("property cases", total=sum(t.units() for t in props))
        bar_sweeps = progress.add_task("dedicated sweep runs", total=sum(t.units() for t in sweeps))
        counted: dict = {}

        def on_example(row):
            counted[row] = counted.get(row, 0) + 1
            progress.advance(bar_props)

        def on_done(task, result):
            if task.kind != "property":
                progress.advance(bar_sweeps, task.units())
                progress.console.print(f"{task.key}: {task.units()} runs, {result.seconds:.1f} s")
                return
            progress.advance(bar_props, task.units() - counted.get(task.key, 0))
            table = result.table
            fails = sum(table.failed_examples.values())
            impls = len({i for (_, _, i) in table.impl})
            progress.console.print(f"{task.key}: {result.done} cases x {impls} implementations, {fails} failures, "
                                   f"{result.seconds:.1f} s")

        if client is None:
            results = cluster.run_in_process(plan, on_done, on_example)
        else:
            results = cluster.run_on_cluster(client, plan, tasks.estimate_task, on_done)
    return results, cluster.environment_of(client), n_workers


def print_summary(table: ToleranceTable, data: dict, out: Path, total_seconds: float) -> None:
    """One row per property (and layer) and dtype on stdout, then the totals, the
    needed FACTOR per layer and where the files went."""
    from rich.console import Console
    from rich.table import Table

    summary_table = Table(title=f"Tolerance summary (details in {out / 'report.md'})")
    for col, just in (("property", "left"), ("dtype", "left"), ("cases", "right"), ("Keras ulps", "right"),
                      ("rnn_ref ulps", "right"), ("variants ulps", "right"), ("max err/budget", "right"),
                      ("failed", "right"), ("overflowed", "right")):
        summary_table.add_column(col, justify=just)
    for prop, dtype in table.keys():
        k = table.keras.get((prop, dtype), KerasTally())
        ts = {n: table.impl.get((prop, dtype, n)) for n in table.implementations()}
        ts = {n: t for n, t in ts.items() if t is not None}
        main_t = ts.get(table.primary)
        others = [t.max_ulps for n, t in ts.items() if n != table.primary]
        worst = max(ts.items(), key=lambda kv: kv[1].max_budget_ratio, default=(None, Tally()))
        fails = sum(table.failed_examples.get((prop, dtype, n), 0) for n in ts)
        summary_table.add_row(
            prop, dtype, str(table.examples.get((prop, dtype), 0)), fmt(k.max_ulps),
            fmt(main_t.max_ulps) if main_t else "-", fmt(max(others)) if others else "-",
            f"{worst[1].max_budget_ratio:.3f} ({worst[0]})" if worst[0] else "-",
            f"[bold red]{fails}[/]" if fails else "0", str(main_t.overflowed) if main_t else "-")
    console = Console() if sys.stdout.isatty() else Console(width=160)
    console.print(summary_table)
    s = data["summary"]
    console.print(
        f"{s['examples']} cases, {s['verdicts']} judged results ({s['overflowed']} overflowed, not in the ulps "
        f"columns), {s['failed_examples']} failed examples; "
        + "; ".join(f"{layer} {n}: max err/budget {fmt(d['max_budget_ratio'])}, needed FACTOR "
                    f"{fmt(d['needed_factor'])}"
                    for layer, e in s["by_layer"].items() for n, d in e["implementations"].items())
        + f" (FACTOR = {tolerance.FACTOR:g}).")
    for what, key in (("", "factor"), (" gradients", "factor_gradients")):
        for layer, m in factor_margin(data.get(key, {})).items():
            console.print(f"{layer}{what}: needed FACTOR max {fmt(m['implementations_max'])} (99th percentile "
                          f"{fmt(m['implementations_p99'])}), Keras against the conditioning max "
                          f"{fmt(m['keras_max'])} (p99 {fmt(m['keras_p99'])}); "
                          + (f"FACTOR {tolerance.FACTOR:g} is {m['margin']:.3g}x the largest."
                             if m["margin"] is not None else "every error was under the floor."))
    if data.get("training"):
        console.print(summary_line(data["training"]))
    console.print(f"Wrote {out}/report.md, report.json and {len(data['plots'])} plots in {total_seconds:.0f} s.")
