"""``python -m rnn_ref check --training TARGET --optimizer NAME [settings]``: check a learner's
training step of the textbook softmax RNN against Keras's ``fit``.

TARGET (``path/to/file.py:function`` or ``package.module:function``) is one training step:

    step(params, x, y)          -> new params (or None, having updated params in place)
    step(params, x, y, state)   the same, with ``state`` a dict for the optimizer's slots:
                                empty before a training's first step, the same dict after

x (B, T, D) floats, y (B, T) integer labels in [0, K). params in ``--layout``:

    textbook  {"U": (H, D), "W": (H, H), "V": (K, H), "b": (H,), "c": (K,)}
              h_t = tanh(U x_t + W h_{t-1} + b), o_t = softmax(V h_t + c)   (b = b_h, c = b_y)
    keras     [kernel (D, H), recurrent_kernel (H, H), bias (H,), dense kernel (H, K), dense bias (K,)]

The step must be Keras's: ``SimpleRNN(H, return_sequences=True) -> Dense(K, "softmax")``
trained with ``loss="sparse_categorical_crossentropy"`` (the mean over the batch and the
steps) and the optimizer of the given settings, one ``fit`` batch per call. The reference is
rnn_ref's NumPy model of it (``rnn_ref.training.softmax_rnn``, tested equal to Keras's
``fit`` in tests/test_check_training.py). The arrays come in the case's dtype, float32 or
float64 (the reference's float64 is Keras's under ``set_floatx("float64")``: the learning
rate exact, the other constants through float32 as Keras makes them).

The step properties of ``rnn_ref.harness.training_properties`` run on hypothesis cases
(steps, batch, T, D, H, K, dtype); a failure is shrunk to the smallest case and printed
with the weights that differ and the budget (``harness.training_judge``).
Exit status: 0 every property passed, 1 a property fails, 2 the step cannot be loaded or
called on a tiny case.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time

import numpy as np

EXIT = {"pass": 0, "fail": 1, "unusable": 2}
OPTIMIZERS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "adagrad": "Adagrad"}
SETTINGS = ("learning_rate", "momentum", "nesterov", "beta_1", "beta_2", "epsilon", "amsgrad", "rho", "centered",
            "initial_accumulator_value", "weight_decay", "clipnorm", "clipvalue", "global_clipnorm")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rnn_ref check --training",
                                description="Check a training step of the textbook softmax RNN against Keras's fit.",
                                epilog="Exit status: 0 pass, 1 a property fails, 2 the step cannot be loaded or called.")
    p.add_argument("target", metavar="PATH.py:FUNCTION | package.module:FUNCTION")
    p.add_argument("--optimizer", choices=OPTIMIZERS, required=True)
    p.add_argument("--layout", choices=("textbook", "keras"), default="textbook")
    for name in SETTINGS:
        flag = "--" + name.replace("_", "-")
        if name in ("nesterov", "amsgrad", "centered"):
            p.add_argument(flag, action="store_true", default=None)
        else:
            p.add_argument(flag, type=float, default=None, metavar="X")
    p.add_argument("--max-examples", type=int, default=25, metavar="N", help="cases a property (default 25)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--property", action="append", default=[], dest="properties", metavar="NAME")
    return p


def make_optimizer(name, settings, dtype="float32"):
    """The rnn_ref optimizer of ``settings`` as a Keras fit in ``dtype`` runs it."""
    from rnn_ref.training import optimizers

    opt = getattr(optimizers, OPTIMIZERS[name])(**settings)
    opt.floatx = str(dtype)  # a float64 fit runs under set_floatx("float64")
    return opt


def takes_state(fn) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 4 or any(p.kind == p.VAR_POSITIONAL for p in params)


def learner(fn, layout):
    """The learner's step as ``(params keras layout, xs, ys) -> params keras layout``."""
    from rnn_ref.training.softmax_rnn import from_layout, to_layout

    stateful = takes_state(fn)

    def run(params, xs, ys):
        dtype = np.asarray(params[0]).dtype
        p, state = to_layout(params, layout), {}
        for i, (x, y) in enumerate(zip(xs, ys)):
            args = (p, np.array(x), np.array(y)) + ((state,) if stateful else ())
            out = fn(*args)
            p = p if out is None else out
            try:
                from_layout(p, layout, params)
            except ValueError as e:
                raise ValueError(f"step {i + 1} returned params that do not fit: {e}") from None
        out = from_layout(p, layout, params)
        for name, o in zip(("first", "second", "third", "fourth", "fifth"), out):
            if o.dtype != dtype:
                raise ValueError(f"the {name} parameter came back as {o.dtype}, expected {dtype} like the params given")
        return [np.array(o) for o in out]

    return run


def trainer_for(fn, layout, name, settings):
    from rnn_ref.harness.training_properties import Trainer
    from rnn_ref.training.softmax_rnn import reference_training

    def reference(params, xs, ys):
        return reference_training(params, xs, ys, make_optimizer(name, settings, np.asarray(params[0]).dtype))

    def exact(params, xs, ys, dtype):
        return reference_training(params, xs, ys, make_optimizer(name, settings, dtype).exact_twin(dtype))

    return Trainer(learner(fn, layout), reference, exact)


def run_property(prop, trainer, max_examples, seed):
    """(status, examples, message, case): hypothesis draws, a failure shrunk to the smallest case."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed

    from rnn_ref.harness.training_properties import TrainingFailure

    seen, failures = [0], []

    @hseed(seed)
    @settings(max_examples=max_examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(prop.strategy())
    def test(case):
        seen[0] += 1
        try:
            with np.errstate(all="ignore"):
                prop.check(trainer, case)
        except TrainingFailure as e:
            failures.append((case, str(e)))
            raise
        except Exception as e:  # the learner's own error on this case
            failures.append((case, f"the step raised {type(e).__name__}: {e}"))
            raise TrainingFailure(str(e)) from e

    try:
        test()
    except TrainingFailure:
        case, message = failures[-1]
        return "FAIL", seen[0], message, case
    return "pass", seen[0], "", None


def main(argv=None) -> int:
    from rnn_ref.harness.loading import LoadError, load_function
    from rnn_ref.harness.training_properties import properties

    args = _parser().parse_args(argv)
    settings = {k: getattr(args, k) for k in SETTINGS if getattr(args, k) is not None}
    try:
        make_optimizer(args.optimizer, settings)
    except (TypeError, ValueError, NotImplementedError) as e:
        print(f"error: {OPTIMIZERS[args.optimizer]} does not take these settings: {e}", file=sys.stderr)
        return EXIT["unusable"]
    try:
        fn = load_function(args.target)
    except LoadError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT["unusable"]
    trainer = trainer_for(fn, args.layout, args.optimizer, settings)
    tiny = _tiny_case()
    try:
        trainer.candidate(tiny.params, tiny.xs, tiny.ys)
    except Exception as e:  # noqa: BLE001  cannot be called at all
        print(f"error: {args.target} cannot be called as a training step on a tiny case ({tiny.describe()}): "
              f"{type(e).__name__}: {e}", file=sys.stderr)
        return EXIT["unusable"]
    chosen = properties("step")
    unknown = [n for n in args.properties if n not in chosen]
    if unknown:
        print(f"error: unknown property {', '.join(unknown)}; choose from {', '.join(chosen)}", file=sys.stderr)
        return EXIT["unusable"]
    chosen = {n: p for n, p in chosen.items() if not args.properties or n in args.properties}
    shown = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in settings.items())
    print(f"checking {args.target} (training step, layout {args.layout}) with {OPTIMIZERS[args.optimizer]}({shown}) "
          f"against rnn_ref's fit of SimpleRNN(return_sequences) -> Dense(softmax)")
    print(f"{len(chosen)} properties, {args.max_examples} examples each, seed {args.seed}")
    failed = []
    for name, prop in chosen.items():
        start = time.perf_counter()
        status, n, message, case = run_property(prop, trainer, args.max_examples, args.seed)
        print(f"{status:<5} {name:<16} {n:>4} checked {time.perf_counter() - start:>7.1f} s")
        if status == "FAIL":
            failed.append((name, prop, message, case))
    for name, prop, message, case in failed:
        print(f"\n{name}: {prop.doc}\n  smallest failing case: {case.describe()}\n  " + message.replace("\n", "\n  "))
    return EXIT["fail"] if failed else EXIT["pass"]


def _tiny_case():
    from rnn_ref.harness.training_properties import SoftmaxCase

    rng = np.random.default_rng(0)
    D, H, K, B, T = 2, 3, 4, 2, 3
    shapes = [(D, H), (H, H), (H,), (H, K), (K,)]
    params = [(0.5 * rng.standard_normal(s)).astype(np.float32) for s in shapes]
    return SoftmaxCase("float32", params, rng.standard_normal((1, B, T, D)).astype(np.float32),
                       rng.integers(0, K, (1, B, T)), 1.0)
