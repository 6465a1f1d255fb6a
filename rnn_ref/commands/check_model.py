"""``python -m rnn_ref check-model MODEL.keras --runtime NAME``: does a runtime compute what Keras computes?

NAME is ``keras`` (this process's Keras on TensorFlow: the sanity line), ``jax`` or
``numpy`` (Keras with that backend in a worker process; ``torch`` when installed),
``onnx`` (tf2onnx's conversion run by ONNX Runtime), ``litert`` (the TFLite converter's
flatbuffer run by the LiteRT interpreter), or ``MODULE:CALLABLE`` / ``PATH.py:CALLABLE``,
any ``predict(inputs: list of arrays) -> list of arrays``. ``--artifact FILE`` runs a
converted file (``.onnx``, ``.tflite``) instead of converting the model.

Each property of ``rnn_ref.harness.model_checks`` draws inputs from the model's input
signature (token ids with every padding pattern, floats) within what the runtime accepts,
and judges the runtime's outputs against the float64 truth, ``rnn_ref.from_keras(model)``
in float64, with the harness budget, Keras-TF's own error as the yardstick. A failure is
shrunk to the smallest input and printed with a script that reproduces it.

A model with a stateful layer is checked at its fixed batch, the runtime's and Keras's
states zeroed before each call (the runtime's ``reset_state``; a ``MODULE:CALLABLE`` gives
one as ``predict.reset_state`` or a ``reset_state()`` in its module, else nothing runs),
plus ``rnn_ref.harness.stateful_checks``: chunked calls carry the states as Keras does.

Exit status: 0 every property checked passed (at least one), 1 a property fails, 2 the
model or the runtime's name cannot be used, 3 nothing could be checked (the runtime
declined the model: a converter's refusal, a missing backend), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

EXIT = {"pass": 0, "fail": 1, "unusable": 2, "nothing checked": 3, "interrupted": 130}
DEFAULT_EXAMPLES = 8
STATUS_WIDTH = 11


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rnn_ref check-model", description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 all checked properties pass, 1 a property fails, 2 the model or runtime cannot be "
               "used, 3 nothing could be checked (the runtime declined), 130 interrupted.")
    p.add_argument("model", help="the saved Keras model (.keras)")
    p.add_argument("--runtime", required=True,
                   help="keras, jax, numpy, torch, onnx, litert, or MODULE:CALLABLE / PATH.py:CALLABLE")
    p.add_argument("--artifact", help="a converted file to run (model.onnx for onnx, model.tflite for litert)")
    p.add_argument("--batch", type=int, help="litert: convert with this fixed batch")
    p.add_argument("--max-examples", type=int, default=DEFAULT_EXAMPLES,
                   help=f"examples a property (default {DEFAULT_EXAMPLES})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--property", action="append", default=[], help="only these (repeat or comma-separate)")
    p.add_argument("--shrink-seconds", type=float, default=20.0, help="time spent shrinking one failure")
    return p


def make_checker(runtime, keras_line, np_model, sig):
    """The ``Checker`` of ``runtime`` against ``keras_line`` (a ``KerasTF``), with the resets a
    stateful model needs."""
    from rnn_ref.harness.model_checks import Checker  # noqa: PLC0415

    why = runtime.reset_unsupported()
    return Checker(runtime.predict, keras_line.predict, np_model, sig, reset=None if why else runtime.reset_state,
                   keras_reset=keras_line.reset_state, no_reset=why or "")


def _load(path: str):
    """``(keras model, NumPy model)``, or raise ValueError saying why not."""
    from rnn_ref._tf import keras_and_tf  # noqa: PLC0415
    import rnn_ref  # noqa: PLC0415

    if not Path(path).is_file():
        raise ValueError(f"no such file: {path}")
    keras, _ = keras_and_tf()
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"Keras could not load {path} in safe mode: {str(e).splitlines()[0][:300]}") from e
    try:
        np_model = rnn_ref.from_keras(model)
    except (ValueError, TypeError, NotImplementedError) as e:
        raise ValueError(f"rnn_ref cannot rebuild this model, so it has no float64 truth to judge against: {e}") from e
    return model, np_model


def _open(name: str, args, model):
    from rnn_ref.runtimes import NAMES, CallableRuntime, open_runtime  # noqa: PLC0415

    if name in NAMES:
        return open_runtime(name, args.model, model=model, artifact=args.artifact, batch=args.batch)
    if ":" not in name:
        raise ValueError(f"unknown runtime {name!r}; known: {', '.join(NAMES)}, or MODULE:CALLABLE / PATH.py:CALLABLE")
    from rnn_ref.harness.candidate import LoadError, load_function  # noqa: PLC0415

    try:
        fn = load_function(name)
    except LoadError as e:
        raise ValueError(str(e)) from e
    reset = getattr(fn, "reset_state", None) or getattr(fn, "__globals__", {}).get("reset_state")
    return CallableRuntime(fn, name, batch=args.batch, reset=reset if callable(reset) else None)


def _counts(r) -> str:
    return f"{r.checked:>4} checked" + (f", {r.failed} failed" if r.failed else "")


def _covered(results, sig) -> str:
    shapes = set().union(*(r.shapes for r in results)) if results else set()
    if not shapes:
        return "nothing"
    B = sorted({s[0] for s in shapes})
    T = sorted({s[1] for s in shapes})
    paddings = sorted({s[2] for s in shapes})
    return (f"B in {B[0]}..{B[-1]}, T in {T[0]}..{T[-1]} ({len(T)} lengths), "
            f"padding {', '.join(paddings)}; {sig.describe()}")


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import rnn_ref.harness.stateful_checks  # noqa: F401, PLC0415 - registers the stateful property
    from rnn_ref.harness.model_checks import (known_properties, model_property, properties_for,  # noqa: PLC0415
                                              reproduction, run_model_property, signature_of)
    from rnn_ref.runtimes import Declined  # noqa: PLC0415
    from rnn_ref.runtimes.keras_tf import KerasTF  # noqa: PLC0415

    asked = [n for p in args.property for n in p.split(",") if n]
    unknown = [n for n in asked if n not in known_properties()]
    if unknown:
        print(f"error: unknown property {unknown[0]!r}; known: {', '.join(known_properties())}", file=sys.stderr)
        return EXIT["unusable"]
    if args.max_examples < 1:
        print("error: --max-examples must be at least 1", file=sys.stderr)
        return EXIT["unusable"]
    started = time.perf_counter()
    try:
        model, np_model = _load(args.model)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT["unusable"]
    keras_line = KerasTF(args.model, model)
    try:
        runtime = _open(args.runtime, args, model)
    except Declined as e:
        print(f"declined: the {args.runtime} runtime cannot run {args.model}: {e}")
        print("nothing was checked")
        return EXIT["nothing checked"]
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT["unusable"]
    results = []
    with runtime:
        facts = runtime.facts
        sig = signature_of(np_model, facts.batch, facts.length)
        names = asked or properties_for(sig)
        versions = ", ".join(f"{k} {v}" for k, v in facts.versions.items())
        print(f"checking {args.model} on {runtime.name}" + (f" ({versions})" if versions else "")
              + f" against Keras {keras_line.facts.versions['keras']} on TensorFlow "
              f"{keras_line.facts.versions['tensorflow']} and the float64 truth")
        for note in facts.notes:
            print(f"runtime: {note}")
        print(f"input: {sig.describe()}")
        print(f"{len(names)} properties, {args.max_examples} examples each, seed {args.seed} "
              f"(started in {time.perf_counter() - started:.1f} s)")
        print(flush=True)
        checker = make_checker(runtime, keras_line, np_model, sig)
        width = max(len(n) for n in names)
        try:
            for name in names:
                r = run_model_property(name, checker, max_examples=args.max_examples, seed=args.seed,
                                       shrink_seconds=args.shrink_seconds)
                results.append(r)
                line = f"{r.status:<{STATUS_WIDTH}} {name:<{width}} {_counts(r):<22} {r.seconds:>6.1f} s"
                first = r.message.splitlines()[0] if r.message else ""
                if r.status != "pass" and first:
                    line += f"   {first}"
                print(line, flush=True)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            return EXIT["interrupted"]
    failures = [r for r in results if r.status in ("FAIL", "error")]
    for i, r in enumerate(f for f in failures if f.status == "FAIL"):
        print()
        print(f"=== FAIL {r.name}: {model_property(r.name).doc}")
        print(f"minimal input: {r.example.describe()}")
        arrays = r.inputs if isinstance(r.inputs, list) else [r.inputs]
        if sum(a.size for a in arrays) <= 64:
            names = [i.name for i in np_model.inputs] if np_model.inputs else ["x"]
            for name, a in zip(names, arrays):
                print(f"{name} = {a.tolist()}")
        print(r.message)
        if i == 0:
            print("\nreproduce: save this as a script and run it from this directory\n")
            print(reproduction(r, args.model, args.runtime).rstrip("\n"))
    passed = sum(r.status == "pass" for r in results)
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "FAIL", "error", "unsupported")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    print()
    print(f"{summary} of {len(results)} properties in {time.perf_counter() - started:.1f} s "
          f"({checker.calls} runtime calls)")
    print(f"covered: {_covered(results, sig)}")
    skipped = [f"{r.name} ({r.message})" for r in results if r.status == "unsupported"]
    if skipped:
        print(f"not checked: {'; '.join(skipped)}")
    if failures:
        return EXIT["fail"]
    if not passed:
        print("nothing was checked")
        return EXIT["nothing checked"]
    return EXIT["pass"]


if __name__ == "__main__":
    sys.exit(main())
