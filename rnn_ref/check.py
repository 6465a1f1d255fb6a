"""``python -m rnn_ref check TARGET``: check your own SimpleRNN against Keras.

TARGET names a function, ``path/to/file.py:function`` or
``package.module:function``. It is called like ``rnn_ref.simple_rnn``::

    f(inputs, kernel, recurrent_kernel, bias, *, activation, return_sequences,
      return_state, go_backwards, mask, initial_state, zero_output_for_mask)

the four arrays positionally, the options by keyword. With ``--layout
textbook`` the second and third arrays are the textbook ``W (U, D)`` and
``U_rec (U, U)`` (``h_t = act(W @ x_t + U_rec @ h_{t-1} + b)``); the checker
transposes Keras's kernels for it.

Every property of the catalogue (``rnn_ref.harness.properties``) is run on
random cases, judged against live Keras and the float64 reference with the
case's own budget (``rnn_ref.harness.tolerance``); a failure is shrunk to a
minimal case and shown with a script that reproduces it.

A function may raise NotImplementedError for options it does not handle:
those examples are skipped, and a property whose examples were skipped and
that found nothing wrong is reported "unsupported", not failed.

Exit status: 0 every supported property holds, 1 some property fails (or
the checker itself hit an error, reported as "error"), 2 the function cannot
be loaded or called, 130 interrupted.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import importlib.util
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

PROFILES = {"dev": 10, "ci": 25, "thorough": 300}
DEFAULT_PROFILE = "ci"
LAYOUTS = ("keras", "textbook")


class LoadError(Exception):
    """The target cannot be loaded, or is not a callable."""


# -- loading the candidate -------------------------------------------------------

def load_function(spec: str):
    """The callable named by ``path/to/file.py:function`` or ``package.module:function``
    (``function`` may be dotted, e.g. ``Class.method``)."""
    where, sep, attr = spec.rpartition(":")
    if not sep or not where or not attr:
        raise LoadError(f"{spec!r} does not name a function: expected PATH.py:FUNCTION or package.module:FUNCTION")
    looks_like_file = where.endswith(".py") or os.sep in where or "/" in where
    if looks_like_file:
        module = _load_file(where)
        origin = where
    else:
        module = _load_module(where)
        origin = f"module {where}"
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            defined = sorted(n for n, v in vars(module).items()
                             if callable(v) and not n.startswith("_") and getattr(v, "__module__", None) == module.__name__)
            hint = f" (it defines: {', '.join(defined)})" if defined else ""
            close = difflib.get_close_matches(attr, defined, n=1)
            if close:
                hint = f"; did you mean {close[0]!r}?" + hint
            raise LoadError(f"{origin} has no function {attr!r}{hint}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise LoadError(f"{origin}:{attr} is a {type(obj).__name__}, not a function")
    return obj


def _load_file(path: str):
    p = Path(path)
    if not p.is_file():
        raise LoadError(f"no such file: {path}")
    name = "_rnn_ref_candidate_" + "".join(c if c.isalnum() else "_" for c in p.stem)
    spec = importlib.util.spec_from_file_location(name, p)
    if spec is None or spec.loader is None:
        raise LoadError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    folder = str(p.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # so that the file can import its neighbours
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as e:  # noqa: BLE001  (a broken file is reported, not raised)
        sys.modules.pop(name, None)
        if isinstance(e, KeyboardInterrupt):
            raise
        raise LoadError(f"cannot import {path}: {_exc_line(e)}") from e
    return module


def _load_module(name: str):
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except BaseException as e:  # noqa: BLE001
        if isinstance(e, KeyboardInterrupt):
            raise
        raise LoadError(f"cannot import module {name}: {_exc_line(e)}") from e


def _exc_line(e: BaseException) -> str:
    from .harness.runner import describe_exception

    if isinstance(e, SyntaxError):
        return f"SyntaxError: {e.msg} ({e.filename}, line {e.lineno})"
    return describe_exception(e)


def as_contract(fn, layout: str = "keras"):
    """``fn`` called the way the catalogue calls ``rnn_ref.simple_rnn`` (keyword
    arrays): the arrays are passed on positionally, and in the textbook layout
    the kernels are transposed (views, so in-place changes are still seen)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if layout == "keras":
        def candidate(inputs, kernel, recurrent_kernel, bias=None, **options):
            return fn(inputs, kernel, recurrent_kernel, bias, **options)
    else:
        def candidate(inputs, kernel, recurrent_kernel, bias=None, **options):
            # W (U, D) = kernel.T, U_rec (U, U) = recurrent_kernel.T
            return fn(inputs, np.asarray(kernel).T, np.asarray(recurrent_kernel).T, bias, **options)
    candidate.__name__ = getattr(fn, "__name__", "candidate")
    candidate.__wrapped__ = fn
    return candidate


def load_candidate(spec: str, layout: str = "keras"):
    """The function named by ``spec``, ready for the property catalogue (used by
    the reproduction scripts the checker prints)."""
    return as_contract(load_function(spec), layout)


def smoke_call(candidate, timeout: float | None) -> str | None:
    """Call the candidate once on a tiny case with the default options. Returns
    what went wrong, or None (NotImplementedError counts as fine)."""
    from .harness.cases import make_case
    from .harness.runner import CandidateRaised, CaseTimeout, guarded

    case = make_case(B=2, T=3, D=2, U=3, dtype="float32", seed=0)
    try:
        guarded(candidate, timeout)(**case.kwargs())
    except NotImplementedError:
        return None
    except CandidateRaised as e:
        return str(e).replace("the candidate raised ", "", 1)
    except CaseTimeout:
        return f"it did not return within {timeout:g} s"
    return None


# -- running -------------------------------------------------------------------

def _versions() -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from .harness import oracle

    return oracle.versions()


STATUS_WIDTH = 11


def _line(r, width: int) -> str:
    s = f"{r.status:<{STATUS_WIDTH}} {r.name:<{width}} {r.examples:>4} examples {r.seconds:>7.1f} s"
    if r.status == "unsupported":
        s += f"   declined {r.declined}: {r.message.splitlines()[0] if r.message else ''}"
    elif r.status in ("FAIL", "error"):
        s += f"   {r.message.splitlines()[0] if r.message else ''}"
    elif r.declined:
        s += f"   ({r.declined} examples declined)"
    return s


def _details(r, doc: str) -> str:
    out = [f"=== {r.status} {r.name}: {doc}"]
    out.append(f"minimal case: {r.case}" if not r.note else f"case: {r.case}\n({r.note})")
    out += [r.message, "", "reproduce: save this as a script and run it from this directory", "",
            r.reproduction.rstrip("\n")]
    return "\n".join(out)


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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rnn_ref check",
        description="Check your own SimpleRNN function against live Keras, property by property.",
        epilog="Exit status: 0 every supported property holds, 1 some property fails, "
               "2 the function cannot be loaded or called, 130 interrupted.",
    )
    p.add_argument("target", nargs="?", metavar="PATH.py:FUNCTION | package.module:FUNCTION",
                   help="the function to check, called like rnn_ref.simple_rnn")
    p.add_argument("--layout", choices=LAYOUTS, default="keras",
                   help="keras: f(inputs, kernel (D, U), recurrent_kernel (U, U), bias, ...); "
                        "textbook: f(inputs, W (U, D), U_rec (U, U), b, ...) computing W @ x (default keras)")
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
    p.add_argument("--list", action="store_true", help="list the properties and exit")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from .harness.properties import PROPERTIES

    if args.list:
        width = max(map(len, PROPERTIES))
        for name, prop in PROPERTIES.items():
            print(f"{name:<{width}}  {prop.doc}")
        return 0
    if not args.target:
        print("error: name the function to check, PATH.py:FUNCTION or package.module:FUNCTION", file=sys.stderr)
        return 2

    names = [n.strip() for arg in args.properties for n in arg.split(",") if n.strip()] or list(PROPERTIES)
    unknown = [n for n in names if n not in PROPERTIES]
    if unknown:
        close = difflib.get_close_matches(unknown[0], PROPERTIES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "; --list shows the names"
        print(f"error: unknown property {unknown[0]!r}{hint}", file=sys.stderr)
        return 2
    if args.max_examples is not None and args.max_examples < 1:
        print("error: --max-examples must be at least 1", file=sys.stderr)
        return 2
    max_examples = args.max_examples or PROFILES[args.profile or DEFAULT_PROFILE]

    try:
        candidate = load_candidate(args.target, args.layout)
    except LoadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    problem = smoke_call(candidate, args.case_timeout)
    if problem:
        print(f"error: {args.target} cannot be called: {problem}", file=sys.stderr)
        arrays = "inputs, W, U_rec, b" if args.layout == "textbook" else "inputs, kernel, recurrent_kernel, bias"
        print(f"  (first call, on B=2 T=3 D=2 U=3 float32: f({arrays}, activation='tanh', return_sequences=False, "
              "return_state=False, go_backwards=False, mask=None, initial_state=None, zero_output_for_mask=False))",
              file=sys.stderr)
        return 2

    warnings.filterwarnings("ignore", message="You are using a softmax over axis")
    versions = _versions()
    from .harness.properties import Context
    from .harness.runner import run_property

    print(f"checking {args.target} (layout {args.layout}) against Keras {versions['keras']} "
          f"(TensorFlow {versions['tensorflow']})")
    print(f"{len(names)} properties, {max_examples} examples each, seed {args.seed}, "
          f"case timeout {args.case_timeout:g} s")
    print(flush=True)

    ctx = Context()
    width = max(map(len, names))
    results, start, interrupted = [], time.perf_counter(), False
    for name in names:
        try:
            r = run_property(name, candidate, ctx, max_examples=max_examples, seed=args.seed,
                             case_timeout=args.case_timeout, shrink_seconds=args.shrink_seconds,
                             target=args.target, layout=args.layout)
        except KeyboardInterrupt:
            interrupted = True
            print("interrupted", flush=True)
            break
        results.append(r)
        print(_line(r, width), flush=True)
    total = time.perf_counter() - start

    bad = [r for r in results if r.status in ("FAIL", "error")]
    for r in bad:
        print()
        print(_details(r, PROPERTIES[r.name].doc))

    counts = {s: sum(r.status == s for r in results) for s in ("pass", "FAIL", "unsupported", "error")}
    print()
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    print(f"{summary or 'nothing run'} of {len(results)} properties in {total:.1f} s")
    status = 130 if interrupted else (1 if bad else 0)
    if not bad and counts["unsupported"] == len(results) and results:
        print("note: the function declined every example (NotImplementedError); nothing was checked")

    if args.json:
        doc = {
            "target": args.target, "layout": args.layout, "max_examples": max_examples, "seed": args.seed,
            "case_timeout": args.case_timeout, "versions": versions, "exit_status": status,
            "seconds": total, "counts": counts, "interrupted": interrupted,
            "results": [{**r.to_dict(), "doc": PROPERTIES[r.name].doc} for r in results],
        }
        try:
            Path(args.json).write_text(json.dumps(_jsonable(doc), indent=2) + "\n")
        except OSError as e:
            print(f"error: cannot write {args.json}: {e}", file=sys.stderr)
            return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
