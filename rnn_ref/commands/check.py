"""``python -m rnn_ref check TARGET``: check your own SimpleRNN, LSTM, GRU or Bidirectional against Keras.

TARGET names a function, ``path/to/file.py:function`` or
``package.module:function``; ``--layer`` says which layer it computes
(simple_rnn by default, lstm, gru, or bidirectional: a function called like
``rnn_ref.bidirectional`` with the layer bound, around the layer ``--wrap``
names or the probe finds; see docs/check.md). The arrays go in by position, in the
layout chosen with ``--layout`` (G = U for a SimpleRNN, 4U for an LSTM,
3U for a GRU):

    keras     f(inputs, kernel (D, G), recurrent_kernel (U, G), bias, **options)
    textbook  f(inputs, W (G, D), U_rec (G, U), b, **options)      W @ x + U_rec @ h + b
    torch     f(inputs, weight_ih (G, D), weight_hh (G, U), bias_ih (G,), bias_hh (G,), **options)

Gates are stacked in Keras's order (LSTM i, f, c, o; GRU z, r, h) except
in the torch layout, which uses PyTorch's (i, f, g, o; r, z, n). A GRU's
bias is Keras's, ``(2, 3U)`` with ``reset_after=True`` (the default) and
``(3U,)`` without; in the torch layout its two rows are ``bias_ih`` and
``bias_hh``, and ``reset_after=False`` is declined. Another bias is split
unevenly between ``bias_ih`` and ``bias_hh``.

The options are Keras's (``activation``, ``return_sequences``,
``return_state``, ``go_backwards``, ``mask``, ``initial_state``,
``zero_output_for_mask``; an LSTM's and a GRU's ``recurrent_activation``, a
GRU's ``reset_after``); a function gets only those its signature takes,
so ``def rnn(x, W, U, b)`` is checkable. Before the properties run, the
function is probed on tiny cases, one feature at a time; what raises is
declined (reported with the exception) and the properties draw their cases
inside what runs (``rnn_ref.harness.candidate``). Every result is judged
against live Keras and the float64 reference with the case's own budget
(``rnn_ref.harness.tolerance``); a failure is shrunk to a minimal case and
shown with a script that reproduces it.

Exit status (``EXIT`` below): 0 at least one property was checked and none
failed; 1 a property fails (or the checker itself hit an error); 2 the
function cannot be loaded or called in Keras's default configuration;
3 nothing could be checked (every property needs something the function
declines); 130 interrupted.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

PROFILES = {"dev": 10, "ci": 25, "thorough": 300}
DEFAULT_PROFILE = "ci"
EXIT = {"pass": 0, "fail": 1, "unusable": 2, "nothing checked": 3, "interrupted": 130}
EPILOG = ("Exit status: 0 at least one property checked and none failed, 1 a property fails, 2 the function "
          "cannot be loaded or called, 3 nothing could be checked, 130 interrupted.")


def _versions() -> dict:
    from rnn_ref.harness import oracle

    return oracle.versions()


STATUS_WIDTH = 11


def _counts(r) -> str:
    s = f"{r.checked:>4} checked"
    if r.failed:
        s += f", {r.failed} failed"
    if r.declined:
        s += f", {r.declined} declined"
    return s


def _line(r, width: int) -> str:
    s = f"{r.status:<{STATUS_WIDTH}} {r.name:<{width}} {_counts(r):<30} {r.seconds:>6.1f} s"
    first = r.message.splitlines()[0] if r.message else ""
    if r.status in ("unsupported", "FAIL", "error") and first:
        s += f"   {first}"
    elif r.declined and first:
        s += f"   (declined: {first})"
    return s


def _details(r, doc: str, also: list, repro_path: Path | None, script: bool) -> str:
    out = [f"=== {r.status} {r.name}: {doc}"]
    if also:
        out.append(f"(the same wrong numbers in: {', '.join(also)})")
    out.append(f"minimal case: {r.case}" if not r.note else f"case: {r.case}\n({r.note})")
    out += [r.message, ""]
    if repro_path is not None:
        out.append(f"reproduce: python {repro_path} (run it from this directory)")
    elif script:
        out += ["reproduce: save this as a script and run it from this directory", "", r.reproduction.rstrip("\n")]
    else:
        out.append("reproduce: --repro-dir DIR writes this failure's script (or see --json)")
    return "\n".join(out)


def _same_failure(r) -> tuple:
    """Failures whose first wrong element has the same numbers (yours and Keras's) are
    one failure seen by several properties; others are told apart by case and message."""
    bad = [v for v in r.verdicts if not v.get("ok", True) and v.get("worst")]
    if not bad:
        return r.status, r.case, r.message
    return r.status, bad[0]["worst"].get("candidate"), bad[0]["worst"].get("keras")


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.generic,)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)  # "nan", "inf", "-inf": JSON has no such numbers
    return x


def _parser(layouts, layers, wrapped) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rnn_ref check",
        description="Check your own SimpleRNN, LSTM, GRU or Bidirectional function against live Keras, "
                    "property by property.",
        epilog=EPILOG,
    )
    p.add_argument("target", nargs="?", metavar="PATH.py:FUNCTION | package.module:FUNCTION",
                   help="the function to check")
    p.add_argument("--layer", choices=layers, default="simple_rnn",
                   help="the layer the function computes (default simple_rnn); bidirectional: a Keras "
                        "Bidirectional, f(inputs, forward, backward, merge_mode=..., **options) with each "
                        "direction's weights as a tuple, or flat (inputs, the forward arrays, the backward arrays)")
    p.add_argument("--wrap", choices=wrapped, default=None,
                   help="with --layer bidirectional: the layer it wraps (default: the one whose weights "
                        "its first call takes)")
    p.add_argument("--training", action="store_true",
                   help="the function is a training step, step(params, x, y[, state]); its own options: "
                        "python -m rnn_ref check --training --help")
    p.add_argument("--gradients", action="store_true",
                   help="the function is a backward pass, f(inputs, W, U, b, d_output, **options), returning the "
                        "gradients of sum(output * d_output) as a dict or a tuple in argument order ([dx,] dW, dU, "
                        "db[, dh0]; in the textbook layout dW (G, D), dU (G, U)); checked against tf.GradientTape")
    p.add_argument("--offline", action="store_true",
                   help="judge on the stored corpus (Keras's answers, truths and budgets, rnn_ref/corpus_data) "
                        "instead of live Keras: NumPy only, seconds (the default when TensorFlow is not installed)")
    p.add_argument("--live", action="store_true", help="insist on live Keras (an error when it is not installed)")
    p.add_argument("--corpus", type=Path, default=None, metavar="DIR",
                   help="with --offline: the corpus to use (default: the one shipped with rnn_ref)")
    p.add_argument("--layout", choices=layouts, default="keras",
                   help="with G = U, 4U or 3U columns for simple_rnn, lstm, gru: "
                        "keras: f(inputs, kernel (D, G), recurrent_kernel (U, G), bias, ...); "
                        "textbook: f(inputs, W (G, D), U_rec (G, U), b, ...) computing W @ x, gates in Keras's "
                        "order (LSTM i f c o, GRU z r h); "
                        "torch: f(inputs, weight_ih (G, D), weight_hh (G, U), bias_ih, bias_hh, ...), gates in "
                        "PyTorch's order (LSTM i f g o, GRU r z n) (default keras)")
    p.add_argument("--profile", choices=PROFILES, default=None,
                   help="examples per property: " + ", ".join(f"{k} {v}" for k, v in PROFILES.items())
                        + f" (default {DEFAULT_PROFILE})")
    p.add_argument("--max-examples", type=int, default=None, metavar="N",
                   help="examples per property (overrides --profile)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed draws the same cases (default 0)")
    p.add_argument("--property", action="append", default=[], metavar="NAME", dest="properties",
                   help="run only this property (repeatable, or comma-separated); --list shows the names")
    p.add_argument("--case-timeout", type=float, default=20.0, metavar="SECONDS",
                   help="limit on the function's own time for one case (default 20)")
    p.add_argument("--shrink-seconds", type=float, default=60.0, metavar="SECONDS",
                   help="limit on the time spent shrinking one failure (default 60)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    p.add_argument("--repro-dir", metavar="DIR", type=Path,
                   help="write each failure's reproduction script to DIR/repro_PROPERTY.py")
    p.add_argument("--list", action="store_true", help="list the properties and exit")
    return p


class _Progress:
    """A progress line on a terminal's stderr while a property runs (nothing elsewhere)."""

    def __init__(self):
        from rich.console import Console

        self.console = Console(stderr=True)
        self.live = None

    def __enter__(self):
        if self.console.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.live = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[counts]}"),
                                 TimeElapsedColumn(), console=self.console, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.__exit__(*exc)

    def start(self, name: str, total: int):
        if self.live is None:
            return None
        task = self.live.add_task(name, total=total, counts="")

        def update(examples, declined, failed):
            counts = f"{examples - declined} checked" + (f", {failed} failed (shrinking)" if failed else "")
            self.live.update(task, completed=min(examples, total), counts=counts)

        return update

    def stop(self):
        if self.live is not None:
            for task in list(self.live.task_ids):
                self.live.remove_task(task)


def main(argv=None) -> int:
    if "--training" in (argv := sys.argv[1:] if argv is None else list(argv)):  # a training step
        from rnn_ref.commands.check_training import main as check_training
        return check_training([a for a in argv if a != "--training"])
    from rnn_ref.harness.candidate import LAYOUT_NAMES, AdaptedBidirectional, AdaptError, Adapted, LoadError, coverage, load_function, probe, wrapped_layer
    from rnn_ref.harness.backward_candidate import AdaptedGradients
    from rnn_ref.models.registry import RECURRENT, SIMPLE_RNN, layer_named

    layer_names = [s.cli_name for s in RECURRENT.values()]
    args = _parser(list(LAYOUT_NAMES), [*layer_names, "bidirectional"], layer_names).parse_args(argv)
    bidirectional = args.layer == "bidirectional"
    if args.wrap and not bidirectional:
        print("error: --wrap goes with --layer bidirectional", file=sys.stderr)
        return EXIT["unusable"]
    if args.gradients and bidirectional:
        print("error: --gradients checks a SimpleRNN, LSTM or GRU backward pass (--layer simple_rnn, lstm or gru); "
              "a Bidirectional one is not supported", file=sys.stderr)
        return EXIT["unusable"]
    spec = layer_named(args.wrap or "simple_rnn") if bidirectional else layer_named(args.layer)
    no_tf = _missing_live()
    if args.offline or (no_tf and not args.live):
        reason = "--offline" if args.offline else f"{', '.join(no_tf)} not installed"
        return _offline_main(args, spec, reason)
    if no_tf:
        print(f"error: the live check needs the harness ({', '.join(no_tf)} not installed): pip install "
              "'rnn_ref[harness]'; without it, check --offline uses the stored corpus", file=sys.stderr)
        return EXIT["unusable"]
    from rnn_ref.harness.properties import PROPERTIES, properties_for

    kind = "bidirectional" if bidirectional else "gradients" if args.gradients else "layer"
    applies = properties_for(spec.name, kind)
    names = _chosen(args, {n: p.doc for n, p in applies.items()}, PROPERTIES, "unknown property")
    if not isinstance(names, list):
        return names
    if args.max_examples is not None and args.max_examples < 1:
        print("error: --max-examples must be at least 1", file=sys.stderr)
        return EXIT["unusable"]
    max_examples = args.max_examples or PROFILES[args.profile or DEFAULT_PROFILE]

    try:
        fn = load_function(args.target)
        if bidirectional:
            if not args.wrap:  # the layer whose weights its first call takes
                spec = wrapped_layer(fn, args.layout, args.case_timeout) or SIMPLE_RNN
            candidate = AdaptedBidirectional(fn, args.layout, spec=spec)
        elif args.gradients:
            candidate = AdaptedGradients(fn, args.layout, spec=spec)
        else:
            candidate = Adapted(fn, args.layout, spec=spec)
    except (LoadError, AdaptError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT["unusable"]
    found = probe(candidate, args.case_timeout)
    if found.problem:
        return _cannot_call(args.target, candidate, found)

    warnings.filterwarnings("ignore", message="You are using a softmax over axis")
    versions = _versions()
    from rnn_ref.harness.context import Context
    from rnn_ref.harness.runner import run_property

    layer = (f"Bidirectional({spec.name}), " if bidirectional else f"{spec.name}, " if spec.name != "SimpleRNN"
             else "")
    layer = f"{spec.name} backward pass, " if args.gradients else layer
    print(f"checking {args.target} ({layer}layout {args.layout}) against Keras {versions['keras']} "
          f"(TensorFlow {versions['tensorflow']})")
    print(f"called as {candidate.call_text()}" + "".join(f"; {a}" for a in candidate.adaptations()))
    for line in found.declined_lines():
        print(f"declined: {line}")
    print(f"{len(names)} properties, {max_examples} examples each, seed {args.seed}, "
          f"case timeout {args.case_timeout:g} s")
    print(flush=True)

    ctx = Context(support=found.support, spec=spec)
    width = max(map(len, names))
    results, start, interrupted = [], time.perf_counter(), False
    seen: set = set()
    with _Progress() as progress:
        for name in names:
            try:
                r = run_property(name, candidate, ctx, support=found.support, max_examples=max_examples,
                                 seed=args.seed, case_timeout=args.case_timeout,
                                 shrink_seconds=args.shrink_seconds, target=args.target, layout=args.layout,
                                 on_example=progress.start(name, max_examples), coverage=seen)
            except KeyboardInterrupt:
                interrupted = True
                progress.stop()
                print("interrupted", flush=True)
                break
            progress.stop()
            results.append(r)
            print(_line(r, width), flush=True)
    total = time.perf_counter() - start

    bad = [r for r in results if r.status in ("FAIL", "error")]
    repro_paths = {}
    if args.repro_dir and bad:
        try:
            args.repro_dir.mkdir(parents=True, exist_ok=True)
            for r in bad:
                path = args.repro_dir / f"repro_{r.name}.py"
                path.write_text(r.reproduction)
                repro_paths[r.name] = path
        except OSError as e:
            print(f"error: cannot write reproductions to {args.repro_dir}: {e}", file=sys.stderr)
            return EXIT["unusable"]
    groups: dict[tuple, list] = {}
    for r in bad:
        groups.setdefault(_same_failure(r), []).append(r)
    for i, same in enumerate(groups.values()):
        first = same[0]
        print()
        print(_details(first, PROPERTIES[first.name].doc, [r.name for r in same[1:]], repro_paths.get(first.name),
                       script=i == 0))

    counts = {s: sum(r.status == s for r in results) for s in ("pass", "FAIL", "unsupported", "error")}
    checked_any = any(r.checked > 0 for r in results)
    print()
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    print(f"{summary or 'nothing run'} of {len(results)} properties in {total:.1f} s"
          + (f" ({len(groups)} distinct failures)" if len(groups) > 1 else ""))
    checked, not_checked = coverage(seen, spec)
    if checked_any:
        print(f"checked: {checked}")
        if not_checked:
            print(f"not checked: {not_checked}")
    if interrupted:
        status = EXIT["interrupted"]
    elif bad:
        status = EXIT["fail"]
    elif not checked_any:
        status = EXIT["nothing checked"]
        print(f"nothing was checked: every property needs something {candidate.__name__} declines "
              f"(see the 'declined' lines above); exit status {status}")
    else:
        status = EXIT["pass"]

    if args.json:
        doc = {
            "target": args.target, "layer": args.layer, "wraps": spec.cli_name if bidirectional else None,
            "gradients": args.gradients,
            "layout": args.layout, "max_examples": max_examples, "seed": args.seed,
            "case_timeout": args.case_timeout, "versions": versions, "exit_status": status,
            "seconds": total, "counts": counts, "interrupted": interrupted,
            "called_as": candidate.call_text(), "adaptations": candidate.adaptations(),
            "declined": found.declined, "support": found.support._asdict(),
            "checked": checked, "not_checked": not_checked,
            "results": [{**r.to_dict(), "doc": PROPERTIES[r.name].doc} for r in results],
        }
        try:
            Path(args.json).write_text(json.dumps(_jsonable(doc), indent=2) + "\n")
        except OSError as e:
            print(f"error: cannot write {args.json}: {e}", file=sys.stderr)
            return EXIT["unusable"]
    return status


def _chosen(args, applies: dict, known, unknown_text: str):
    """The properties to run (``--property``, default all of ``applies``: name -> doc), or
    an exit status: 0 after ``--list``, EXIT["unusable"] after an error."""
    if args.list:
        width = max(map(len, applies))
        for name, doc in applies.items():
            print(f"{name:<{width}}  {doc}")
        return 0
    if not args.target:
        print("error: name the function to check, PATH.py:FUNCTION or package.module:FUNCTION", file=sys.stderr)
        return EXIT["unusable"]
    names = [n.strip() for arg in args.properties for n in arg.split(",") if n.strip()] or list(applies)
    unknown = [n for n in names if n not in known]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "; --list shows the names"
        print(f"error: {unknown_text} {unknown[0]!r}{hint}", file=sys.stderr)
        return EXIT["unusable"]
    return names


def _missing_live() -> list:
    """What the live check needs and is not installed."""
    import importlib.util

    def absent(module):
        try:
            return importlib.util.find_spec(module) is None
        except (ImportError, ValueError):
            return True

    return [m for m in ("tensorflow", "keras", "hypothesis") if absent(m)]


def _offline_main(args, spec, reason: str) -> int:
    """``check`` judged on the stored corpus (``rnn_ref.harness.corpus``): NumPy only."""
    from rnn_ref.harness.corpus import SHIPPED, CorpusError, load_manifest, run_offline
    from rnn_ref.harness.backward_candidate import AdaptedGradients
    from rnn_ref.harness.candidate import AdaptError, Adapted, LoadError, load_function, probe

    root = args.corpus or SHIPPED
    if args.layer == "bidirectional":
        print("error: the corpus holds no Bidirectional cases yet: check --layer bidirectional runs live only "
              "(pip install 'rnn_ref[harness]')", file=sys.stderr)
        return EXIT["unusable"]
    try:
        manifest = load_manifest(root)
    except CorpusError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT["unusable"]
    kind = "gradients" if args.gradients else "forward"
    stored = {e["property"]: e for e in manifest["entries"] if e["layer"] == spec.name and e["kind"] == kind}
    names = _chosen(args, {n: e.get("doc", "") for n, e in stored.items()}, stored,
                    f"the corpus has no {spec.name} property")
    if not isinstance(names, list):
        return names
    try:
        fn = load_function(args.target)
        candidate = (AdaptedGradients if args.gradients else Adapted)(fn, args.layout, spec=spec)
    except (LoadError, AdaptError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT["unusable"]
    versions = manifest["versions"]
    print(f"checking {args.target} offline ({reason}): the corpus of Keras {versions['keras']} "
          f"(TensorFlow {versions['tensorflow']}), {sum(len(stored[n]['cases']) for n in names)} stored cases"
          f"{'' if root == SHIPPED else f' in {root}'}", flush=True)
    found = probe(candidate, args.case_timeout)
    if found.problem:
        return _cannot_call(args.target, candidate, found)
    candidate.support = found.support
    layer = f"{spec.name} backward pass, " if args.gradients else f"{spec.name}, " if spec.name != "SimpleRNN" else ""
    print(f"({layer}layout {args.layout}) called as {candidate.call_text()}"
          + "".join(f"; {a}" for a in candidate.adaptations()))
    for line in found.declined_lines():
        print(f"declined: {line}")
    print(flush=True)
    width = max(map(len, names))
    start = time.perf_counter()
    results = run_offline(candidate, spec.name, kind, names, root=root, target=args.target, layout=args.layout,
                          on_property=lambda r: print(_line(r, width), flush=True))
    total = time.perf_counter() - start
    bad = [r for r in results if r.status in ("FAIL", "error")]
    for i, r in enumerate(bad):
        print()
        print(_details(r, stored[r.name].get("doc", ""), [], None, script=i == 0))
    counts = {st: sum(r.status == st for r in results) for st in ("pass", "FAIL", "unsupported", "error")}
    print()
    print(f"{', '.join(f'{n} {st}' for st, n in counts.items() if n) or 'nothing run'} of {len(results)} "
          f"properties in {total:.1f} s, offline")
    status = EXIT["fail"] if bad else EXIT["pass"] if any(r.checked for r in results) else EXIT["nothing checked"]
    if status == EXIT["nothing checked"]:
        print(f"nothing was checked: every stored case needs something {candidate.__name__} declines")
    if args.json:
        doc = {"target": args.target, "layer": args.layer, "gradients": args.gradients, "offline": True,
               "corpus": str(root), "versions": versions, "exit_status": status, "seconds": total,
               "counts": counts, "results": [r.to_dict() for r in results]}
        Path(args.json).write_text(json.dumps(_jsonable(doc), indent=2) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())


def _cannot_call(target, candidate, found) -> int:
    """Say why the candidate's first call failed (and which layout or layer would run); exit 2."""
    print(f"error: {target} cannot be called: {found.problem}", file=sys.stderr)
    print(f"  (first call, on B=2 T=3 D=2 U=3 float32: {candidate.call_text()})"
          + (f"; {found.hint}" if found.hint else ""), file=sys.stderr)
    return EXIT["unusable"]
