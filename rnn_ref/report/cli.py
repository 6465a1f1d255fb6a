"""The command line of the report: ``python -m rnn_ref report [options]`` runs
the sweeps and writes the report; ``python -m rnn_ref report compare OLD NEW``
compares two files."""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

from ..harness import tolerance
from ..harness.spec import LAYERS, layer_named
from ..harness.tally import KerasTally, Tally, ToleranceTable, fmt
from .compare import THRESHOLD, run_compare
from .dedicated import gradient_runs, sweep_layers
from .factor import FactorTally, factor_margin
from .markdown import write_markdown
from .plots import write_plots
from .results import write_json
from .sweeps import (
    CHAOS,
    DEFAULT_EXAMPLES,
    QUICK_EXAMPLES,
    WEIGHTS,
    WIDE_GAIN,
    catalogue,
    labelled_catalogue,
    planned,
    sweep_properties,
)


def parser() -> argparse.ArgumentParser:
    """``report`` with its options, and its subcommand ``compare``."""
    ap = argparse.ArgumentParser(
        prog="python -m rnn_ref report",
        usage="%(prog)s [--out DIR] [--max-examples N] [--seed S] [--quick] [--layers LAYER ...]\n"
              "       %(prog)s [--properties NAME ...] [--wide-gain LO HI]\n"
              "       %(prog)s compare OLD.json NEW.json [--threshold X] [--all]",
        description="Sweep every property against Keras, with chaotic weights, for each layer (SimpleRNN: "
                    "rnn_ref and the correct variants; LSTM, GRU: rnn_ref), and write report.md, report.json "
                    "and plots. `python -m rnn_ref report compare OLD.json NEW.json` compares two reports.")
    ap.add_argument("--out", type=Path, default=Path("report"), metavar="DIR",
                    help="output directory (default: report)")
    ap.add_argument("--max-examples", type=int, default=None, metavar="N",
                    help=f"cases a property (default {DEFAULT_EXAMPLES}, {QUICK_EXAMPLES} with --quick)")
    ap.add_argument("--seed", type=int, default=0, metavar="S", help="hypothesis seed of the property sweep (default 0)")
    ap.add_argument("--quick", action="store_true", help="a small sweep for smoke tests (seconds, not minutes)")
    ap.add_argument("--properties", nargs="*", default=None, metavar="NAME", help="only these properties")
    ap.add_argument("--layers", nargs="+", default=None, metavar="LAYER",
                    help=f"only these layers ({', '.join(LAYERS)}; default all)")
    ap.add_argument("--wide-gain", nargs=2, type=float, default=WIDE_GAIN, metavar=("LO", "HI"),
                    help=f"recurrent gains the property sweep redraws for bounded activations "
                         f"(default {WIDE_GAIN[0]:g} {WIDE_GAIN[1]:g})")
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


def run_report(args: argparse.Namespace) -> int:
    """Run the sweeps of every layer, write report.json, report.md and the
    plots to ``args.out`` and print a summary table."""
    # the property sweep runs per-step softmax over one unit on purpose
    warnings.filterwarnings("ignore", message="You are using a softmax over axis -1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    max_examples = args.max_examples or (QUICK_EXAMPLES if args.quick else DEFAULT_EXAMPLES)
    known = catalogue()
    names = args.properties or list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"unknown properties: {', '.join(unknown)}", file=sys.stderr)
        return 2
    try:
        chosen = {layer_named(n).name for n in (args.layers or LAYERS)}
    except ValueError as e:
        print(str(e), file=sys.stderr)
        return 2
    layers = [n for n in LAYERS if n in chosen]
    if args.quick:
        length_kw = dict(T=64, seeds=1, B=2, D=4, U=8)
        radius_kw = dict(gain_fractions=[0.15, 0.5, 1.0], T=50, seeds=1, B=2, D=4, U=8)
        gradient_length_kw = dict(T=24, points=3, seeds=1, B=2, D=4, U=8)
        gradient_radius_kw = dict(gain_fractions=[0.5, 1.0], T=24, seeds=1, B=2, D=4, U=8)
    else:
        length_kw, radius_kw, gradient_length_kw, gradient_radius_kw = {}, {}, {}, {}
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    rows = labelled_catalogue(names, layers)
    table = ToleranceTable(primary="rnn_ref", catalogue=rows)
    factors = FactorTally()
    seconds = {}
    n_examples = planned(names, layers, max_examples)
    n_length = len(layers) * 2 * 2 * length_kw.get("seeds", 4)
    n_radius = len(layers) * 2 * len(radius_kw.get("gain_fractions", range(18))) * radius_kw.get("seeds", 3)
    start = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task("properties", total=n_examples)

        def on_example(name):
            progress.update(task, advance=1, description=f"property {name}")

        def on_property(name, done, planned_n, secs):
            progress.update(task, advance=planned_n - done)
            fails = sum(n for (p, _, _), n in table.failed_examples.items() if p == name)
            impls = len({i for (p, _, i) in table.impl if p == name})
            progress.console.print(f"{name}: {done} cases x {impls} implementations, {fails} failures, "
                                   f"{secs:.1f} s")

        t0 = time.perf_counter()
        sweep_properties(names, layers=layers, max_examples=max_examples, seed=args.seed, table=table,
                         factors=factors, wide_gain=tuple(args.wide_gain), on_example=on_example,
                         on_property=on_property)
        seconds["properties"] = time.perf_counter() - t0
        task2 = progress.add_task("error vs sequence length", total=n_length)
        task3 = progress.add_task("error vs spectral radius", total=n_radius)
        task4 = progress.add_task("gradient error vs T and gain",
                                  total=gradient_runs(layers, gradient_length_kw, gradient_radius_kw))
        dedicated, took = sweep_layers(layers, length_kw=length_kw, radius_kw=radius_kw,
                                       gradient_length_kw=gradient_length_kw, gradient_radius_kw=gradient_radius_kw,
                                       on_length=lambda: progress.advance(task2),
                                       on_radius=lambda: progress.advance(task3),
                                       on_gradient=lambda: progress.advance(task4))
        seconds.update(took)

    t0 = time.perf_counter()
    plots = write_plots(out, dedicated, factors.points)
    seconds["plots"] = time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - start
    first = dedicated[layers[0]]
    settings = {"max_examples": max_examples, "seed": args.seed, "quick": bool(args.quick),
                "wide_gain": list(args.wide_gain), "weights": WEIGHTS, "properties": names, "layers": layers,
                "chaos": {layer: CHAOS[layer] for layer in layers},
                "length_sweep": {k: v for k, v in first["length"].items() if k in ("T", "seeds", "B", "D", "U")},
                "radius_sweep": {k: v for k, v in first["spectral_radius"].items()
                                 if k in ("T", "seeds", "B", "D", "U")},
                "gradient_length_sweep": {k: v for k, v in first["gradient_length"].items()
                                          if k in ("T", "seeds", "B", "D", "U", "t")},
                "gradient_radius_sweep": {k: v for k, v in first["gradient_spectral_radius"].items()
                                          if k in ("T", "seeds", "B", "D", "U")}}
    data = write_json(out / "report.json", table, settings, dedicated, factors.to_json(), plots,
                      {k: round(v, 2) for k, v in seconds.items()}, factors.to_json("gradients"))
    write_markdown(out / "report.md", data)
    print_summary(table, data, out, seconds["total"])
    return 0


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
    for layer, m in factor_margin(data.get("factor", {})).items():
        console.print(f"{layer}: needed FACTOR max {fmt(m['implementations_max'])} (99th percentile "
                      f"{fmt(m['implementations_p99'])}), Keras against the conditioning max {fmt(m['keras_max'])} "
                      f"(p99 {fmt(m['keras_p99'])}); "
                      + (f"FACTOR {tolerance.FACTOR:g} is {m['margin']:.3g}x the largest." if m["margin"] is not None
                         else "every error was under the floor."))
    for layer, m in factor_margin(data.get("factor_gradients", {})).items():
        console.print(f"{layer} gradients: needed FACTOR max {fmt(m['implementations_max'])} (99th percentile "
                      f"{fmt(m['implementations_p99'])}), Keras against the conditioning max {fmt(m['keras_max'])} "
                      f"(p99 {fmt(m['keras_p99'])}); "
                      + (f"FACTOR {tolerance.FACTOR:g} is {m['margin']:.3g}x the largest." if m["margin"] is not None
                         else "every error was under the floor."))
    console.print(f"Wrote {out}/report.md, report.json and {len(data['plots'])} plots in {total_seconds:.0f} s.")
