"""Speed: ``python -m rnn_ref bench [--out bench.json] [--repeats N] [--quick]``.

Three measurements, side by side in one run, each repeated ``--repeats`` times
(median and spread reported), one module each:

harness (``harness.py``)
    Property examples checked against Keras per second: the cached oracle
    (``KerasOracle``) against a naive harness that builds a fresh Keras layer
    for every example, on the same cases. Goal: >= 10x with a warm cache.

pipeline (``pipeline.py``)
    ``Embedding(5000, 32) -> SimpleRNN(100) -> Dense(1, "sigmoid")`` at
    T = 250, rebuilt with ``rnn_ref.from_keras``, against compiled Keras at
    B = 1, 32, 256, 1024 in one process with Keras loaded and used; also with
    rnn_ref's batch split off, alone in a NumPy-only process, and the
    machine's limit for the loop (``machine.py``). Goals: at least as fast as
    the faster Keras path at every B, 5x at B = 1, 1.2x at B = 1024 with a
    spread (slowest repeat over fastest) under 1.3.

backward (``backward.py``)
    The pipeline's loss gradients against ``tf.GradientTape``, and
    ``rnn_ref.vjp(simple_rnn)`` against a tape on the layer alone.

layers (``layers.py``)
    SimpleRNN, LSTM, GRU and Bidirectional(LSTM) alone (T = 250, D = 32,
    U = 100) at B = 1, 32, 256, 1024 and the demo's second model, forward,
    against compiled Keras; each layer's vjp against a compiled tape at
    B = 1, 32, 256. Goals: forward 1x at every B and 1.5x at B >= 256,
    backward 1x, spread under 1.3 at B >= 256.

``--sections`` runs some of them (``--sections layers``: only (d)).

This module is the command: the sizes and goals (``sizes.py``, read here when
the command runs, so that setting ``rnn_ref.commands.bench.GOAL_*`` changes what is
judged), the tables, printed with rich, and ``--out``, which writes everything
as JSON (docs/bench.md describes the figures). ``timing.py`` holds the timing
the sections share.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone

from rnn_ref.commands.bench.backward import bench_backward
from rnn_ref.commands.bench.harness import bench_harness
from rnn_ref.commands.bench.layers import bench_layer_backward, bench_layers
from rnn_ref.commands.bench.machine import machine_info
from rnn_ref.commands.bench.pipeline import bench_pipeline
from rnn_ref.commands.bench.sizes import (FULL, GOAL_BACKWARD, GOAL_HARNESS, GOAL_LAYER, GOAL_LAYER_BACKWARD,
                                          GOAL_LAYER_LARGE, GOAL_LIMIT, GOAL_PIPELINE, GOAL_PIPELINE_B1,
                                          GOAL_PIPELINE_LARGE, GOAL_SPREAD, QUICK)

__all__ = ["FULL", "QUICK", "GOAL_HARNESS", "GOAL_PIPELINE_B1", "GOAL_PIPELINE", "GOAL_PIPELINE_LARGE",
           "GOAL_SPREAD", "GOAL_LIMIT", "GOAL_BACKWARD", "GOAL_LAYER", "GOAL_LAYER_LARGE", "GOAL_LAYER_BACKWARD",
           "bench_harness", "bench_pipeline", "bench_backward", "bench_layers", "bench_layer_backward", "main"]

SECTIONS = ("harness", "pipeline", "backward", "layers")


# -- output ----------------------------------------------------------------------

def _spread(st, scale=1e3):
    return f"{st['median'] * scale:.3g} \\[{st['q1'] * scale:.3g}, {st['q3'] * scale:.3g}]"


def _goal(met):
    return "-" if met is None else ("[green]met[/green]" if met else "[red]NOT met[/red]")


def print_tables(result: dict, console) -> None:
    if "harness" in result:
        _harness_table(result, console)
    if "pipeline" in result:
        _pipeline_table(result, console)
    if "backward" in result:
        print_backward_table(result["backward"], console)
    if "layers" in result:
        print_layers_tables(result["layers"], console)
    m = result["machine"]
    console.print(
        f"machine: {m['cores_usable']} usable cores of {m['cpu_count']}, Python {m['python']}, NumPy {m['numpy']}, "
        f"TensorFlow {m['tensorflow']}, Keras {m['keras']}; load average {result['load_average']['start']} "
        f"at start, {result['load_average']['end']} at end"
    )


def _harness_table(result, console) -> None:
    from rich.table import Table  # noqa: PLC0415  (rich: optional, kept off the NumPy-only worker's path)

    t = Table(title="(a) harness: property examples checked against Keras per second, "
                    "median \\[quartiles] over repeats")
    for col in ("sequence", "examples", "configs", "cached oracle", "naive", "ratio",
                f"goal >= {GOAL_HARNESS:g}x", "s in oracle: cached", "naive"):
        t.add_column(col, justify="left" if col == "sequence" else "right")
    for e in result["harness"]:
        t.add_row(e["name"], str(e["examples"]), str(e["configurations"]),
                  _spread(e["cached"]["examples_per_s"], 1), _spread(e["naive"]["examples_per_s"], 1),
                  f"{e['ratio']:.1f}x", _goal(e["goal_met"]),
                  f"{e['cached']['oracle_seconds']['median']:.2f} of {e['cached']['seconds']['median']:.2f}",
                  f"{e['naive']['oracle_seconds']['median']:.2f} of {e['naive']['seconds']['median']:.2f}")
    console.print(t)


def _pipeline_table(result, console) -> None:
    from rich.table import Table  # noqa: PLC0415  (rich: optional, kept off the NumPy-only worker's path)

    p = result["pipeline"]
    first = p[0]
    t = Table(title=f"(b) Embedding({first['V']}, {first['E']}) -> SimpleRNN({first['U']}) -> Dense(1, sigmoid), "
                    f"T={first['T']}, one process with Keras loaded and used: ms per call, "
                    "median \\[min, max] over repeats")
    cols = ["B", "rnn_ref", "spread", "Keras predict_on_batch", "Keras tf.function", "speed-up",
            "goal",
            "rnn_ref, split off", "rnn_ref, NumPy-only process", "machine limit", "limit / rnn_ref"]
    for col in cols:
        t.add_column(col, justify="right")
    for e in p:
        spread = f"{e['numpy']['spread']:.2f}"
        if "spread_goal_met" in e:
            spread += f" ({_goal(e['spread_goal_met'])} {e['spread_goal']})"
        t.add_row(str(e["B"]), _range(e["numpy"]["seconds_per_call"]), spread,
                  _range(e["keras_predict_on_batch"]["seconds_per_call"]),
                  _range(e["keras_tf_function"]["seconds_per_call"]),
                  f"{e['ratio']:.2f}x", _goal(e["goal_met"]),
                  _range(e["numpy_unsplit"]["seconds_per_call"]),
                  _range(e["numpy_only_process"]["seconds_per_call"]),
                  f"{e['machine_limit']['seconds'] * 1e3:.3g}", _limit(e))
    console.print(t)
    console.print(f"speed-up: the faster Keras path's median over rnn_ref's; the goal (>= {GOAL_PIPELINE_B1:g}x at B=1, "
                  f"{GOAL_PIPELINE_LARGE:g}x at the largest B, else {GOAL_PIPELINE:g}x) is judged on it, spread < {GOAL_SPREAD:g} from B=256; "
                  f"at the largest B rnn_ref within {GOAL_LIMIT:g}x of the machine's limit too. spread: "
                  "rnn_ref's slowest repeat over its fastest. split off: RNN_REF_THREADS=1. machine limit: the "
                  "recurrent products at the measured sgemm rate plus tanh at the measured elementwise rate, "
                  "on the threads rnn_ref uses (docs/bench.md).")


def _limit(e) -> str:
    """limit / rnn_ref, with its goal where one is judged."""
    text = f"{e['limit_over_numpy']:.2f}"
    return text + (f" ({_goal(e['limit_goal_met'])})" if "limit_goal_met" in e else "")


def _range(st, scale=1e3):
    return f"{st['median'] * scale:.3g} \\[{st['min'] * scale:.3g}, {st['max'] * scale:.3g}]"


def print_backward_table(backward: dict, console) -> None:
    from rich.table import Table  # noqa: PLC0415  (rich: optional, kept off the NumPy-only worker's path)

    rows, lay = backward["model"], backward["layer"]
    first = rows[0]
    t = Table(title=f"(c) backward, the model of (b): mean {first['loss']} and its gradients w.r.t. every weight, "
                    "ms per call, median \\[min, max] over repeats")
    one = "rnn_ref_1_blas_thread" in first
    for col in ("what", "B", "rnn_ref", *(["rnn_ref 1 BLAS thread"] if one else []), "tape, tf.function",
                "tape, eager", "speed-up", "vs eager", f"goal >= {GOAL_BACKWARD:g}x", "max |diff|"):
        t.add_column(col, justify="left" if col == "what" else "right")
    for e in rows:
        eager = "keras_eager" in e
        t.add_row("model", str(e["B"]), _range(e["rnn_ref"]["seconds_per_call"]),
                  *([_range(e["rnn_ref_1_blas_thread"]["seconds_per_call"])] if one else []),
                  _range(e["keras_tf_function"]["seconds_per_call"]),
                  _range(e["keras_eager"]["seconds_per_call"]) if eager else "-",
                  f"{e['ratio_vs_tf_function']:.2f}x", f"{e['ratio_vs_eager']:.1f}x" if eager else "-",
                  _goal(e["goal_met"]) + (f", spread {e['rnn_ref']['spread']:.2f} ({_goal(e['spread_goal_met'])})"
                                          if "spread_goal_met" in e else ""),
                  f"{e['max_abs_diff_vs_keras']:.1e}")
    t.add_row("SimpleRNN vjp", str(lay["B"]), _range(lay["rnn_ref"]["seconds_per_call"]), *(["-"] if one else []),
              _range(lay["keras_tf_function"]["seconds_per_call"]), "-",
              f"{lay['ratio_vs_tf_function']:.2f}x", "-", "-", f"{lay['max_abs_diff_vs_keras']:.1e}")
    console.print(t)
    console.print("speed-up: the tape in a tf.function over rnn_ref (medians); vs eager: the eager tape over rnn_ref. "
                  "Both compute forward and backward; Keras's gradients are made dense and fetched as NumPy. "
                  "SimpleRNN vjp: rnn_ref.vjp(simple_rnn) against a tape on the Keras layer alone.")


def print_layers_tables(layers: dict, console) -> None:
    from rich.table import Table  # noqa: PLC0415  (rich: optional, kept off the NumPy-only worker's path)

    first = layers["forward"][0]
    t = Table(title=f"(d) each layer alone (T={first['T']}, D={first['D']}, U={first['U']}) and the demo's second "
                    "model, forward, one process with Keras loaded and used: ms per call, median \\[min, max]")
    for col in ("layer", "B", "rnn_ref", "spread", "Keras predict_on_batch", "Keras tf.function", "speed-up", "goal",
                "machine limit", "limit / rnn_ref"):
        t.add_column(col, justify="left" if col == "layer" else "right")
    for e in layers["forward"]:
        spread = f"{e['numpy']['spread']:.2f}"
        if "spread_goal_met" in e:
            spread += f" ({_goal(e['spread_goal_met'])})"
        limit = e.get("machine_limit")
        t.add_row(e["layer"], str(e["B"]), _range(e["numpy"]["seconds_per_call"]), spread,
                  _range(e["keras_predict_on_batch"]["seconds_per_call"]),
                  _range(e["keras_tf_function"]["seconds_per_call"]), f"{e['ratio']:.2f}x", _goal(e["goal_met"]),
                  f"{limit['seconds'] * 1e3:.3g}" if limit else "-",
                  _limit(e) if limit else "-")
    console.print(t)
    console.print(f"goal: >= {GOAL_LAYER:g}x the faster Keras path, {GOAL_LAYER_LARGE:g}x and spread < {GOAL_SPREAD:g} "
                  "at B >= 256. machine limit: the recurrent products (rows, U) @ (U, gates U) at the measured sgemm "
                  "rate plus one tanh pass over the gates (docs/bench.md); a Bidirectional's two directions added. "
                  f"SimpleRNN at the largest B: within {GOAL_LIMIT:g}x of that limit.")
    t = Table(title="(d) each layer's vjp (output and every gradient of sum(output * d_output)) against a "
                    "GradientTape in a tf.function: ms per call, median \\[min, max]")
    for col in ("layer", "B", "rnn_ref", "spread", "tape, tf.function", "speed-up", f"goal >= {GOAL_LAYER_BACKWARD:g}x",
                "max |d inputs diff|"):
        t.add_column(col, justify="left" if col == "layer" else "right")
    for e in layers["backward"]:
        spread = f"{e['numpy']['spread']:.2f}" + (f" ({_goal(e['spread_goal_met'])})" if "spread_goal_met" in e else "")
        t.add_row(e["layer"], str(e["B"]), _range(e["numpy"]["seconds_per_call"]), spread,
                  _range(e["keras_tf_function"]["seconds_per_call"]), f"{e['ratio']:.2f}x", _goal(e["goal_met"]),
                  f"{e['max_abs_diff_inputs_vs_keras']:.1e}")
    console.print(t)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rnn_ref bench",
        description="Time the property harness (cached vs naive Keras oracle), and the NumPy "
                    "Embedding -> SimpleRNN -> Dense pipeline, forward and with its gradients, against Keras.",
    )
    parser.add_argument("--out", metavar="PATH", default=None, help="write the figures as JSON to PATH")
    parser.add_argument("--repeats", type=int, default=None,
                        help=f"repeats of every measurement (default {FULL['repeats']}, {QUICK['repeats']} with --quick)")
    parser.add_argument("--sections", default=",".join(SECTIONS), metavar="LIST",
                        help=f"the sections to run, comma-separated (default all: {','.join(SECTIONS)})")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, to check that the benchmark runs (the figures mean nothing)")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    repeats = size["repeats"] if args.repeats is None else args.repeats
    if repeats < 1:
        parser.error("--repeats must be at least 1")
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown or not sections:
        parser.error(f"--sections must name some of {', '.join(SECTIONS)}, got {args.sections!r}")

    from rich.console import Console  # noqa: PLC0415  (rich: optional, kept off the NumPy-only worker's path)

    console = Console(stderr=False, width=None if sys.stdout.isatty() else 160)
    err = Console(stderr=True)

    def log(msg):
        if err.is_terminal:
            err.log(msg)

    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    started = time.perf_counter()
    result = dict(
        command="python -m rnn_ref bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        quick=bool(args.quick), repeats=repeats,
        machine=machine_info(),
    )
    # The goals as this module has them now (a caller may have set them), passed to each section.
    if "harness" in sections:
        result["harness"] = bench_harness(size, repeats, log, goal=GOAL_HARNESS)
    if "pipeline" in sections:
        result["pipeline"] = bench_pipeline(size, repeats, log, goal_b1=GOAL_PIPELINE_B1, goal=GOAL_PIPELINE,
                                            goal_large=GOAL_PIPELINE_LARGE, goal_spread=GOAL_SPREAD,
                                            goal_limit=GOAL_LIMIT)
    if "backward" in sections:
        backward_started = time.perf_counter()
        result["backward"] = bench_backward(size, repeats, log, goal=GOAL_BACKWARD, goal_spread=GOAL_SPREAD)
        result["backward"]["seconds"] = time.perf_counter() - backward_started
    if "layers" in sections:
        result["layers"] = dict(
            forward=bench_layers(size, repeats, log, goal=GOAL_LAYER, goal_large=GOAL_LAYER_LARGE,
                                 goal_spread=GOAL_SPREAD, goal_limit=GOAL_LIMIT),
            backward=bench_layer_backward(size, repeats, log, goal=GOAL_LAYER_BACKWARD, goal_spread=GOAL_SPREAD))
    load_end = os.getloadavg() if hasattr(os, "getloadavg") else None
    fmt = lambda la: None if la is None else [round(x, 2) for x in la]  # noqa: E731
    result["load_average"] = dict(start=fmt(load_start), end=fmt(load_end))
    result["seconds"] = time.perf_counter() - started
    layers = result.get("layers", {})
    rows = [*result.get("harness", []), *result.get("pipeline", []), *result.get("backward", {}).get("model", []),
            *layers.get("forward", []), *layers.get("backward", [])]
    result["all_goals_met"] = all(e[k] for e in rows for k in ("goal_met", "spread_goal_met", "limit_goal_met")
                                  if e.get(k) is not None)

    print_tables(result, console)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
        console.print(f"wrote {args.out}")
    return 0
