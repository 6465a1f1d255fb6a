"""Section (a), harness: property examples checked against Keras per second.

One example is one ``Context.expect`` of the property harness: the candidate
(``rnn_ref.simple_rnn``), the Keras oracle, the float64 reference, its
conditioning and the judge. The cached oracle (``KerasOracle``: each
configuration built and compiled once, batch and time sizes free) is timed
against a naive harness that builds a fresh Keras ``SimpleRNN`` layer, sets its
weights and calls it eagerly for every example, on the same sequence of cases.
Three rows (``bench_harness``): shapes vary with a warm cache (the goal,
>= 10x, is judged there), the same with an empty cache, and a new
configuration every example.
"""

from __future__ import annotations

import gc
import time

import numpy as np

from rnn_ref._tf import keras_and_tf
from rnn_ref.layers.activations import ELEMENTWISE
from rnn_ref.harness.cases import BOUNDED, make_case
from rnn_ref.harness.context import Context, PropertyFailure
from rnn_ref.harness.oracle import KerasOracle, as_batch
from rnn_ref.layers.simple_rnn import simple_rnn
from rnn_ref.commands.bench.sizes import GOAL_HARNESS
from rnn_ref.commands.bench.timing import stats

#: The configurations of the "shapes vary" sequence (the first ``configs`` are used).
CONFIGS = (
    dict(D=8, U=16, dtype="float32", activation="tanh"),
    dict(D=3, U=5, dtype="float64", activation="relu", gain=0.5, return_sequences=True),
    dict(D=12, U=7, dtype="float32", activation="sigmoid", mask_pattern="random", return_state=True),
    dict(D=5, U=24, dtype="float64", activation="softsign", initial_state=True, go_backwards=True,
         return_sequences=True),
)


class NaiveKerasSimpleRNN:
    """The naive oracle: a fresh Keras ``SimpleRNN`` layer for every example,
    built, given the example's weights and called eagerly. Same call contract
    as ``KerasOracle``."""

    def __call__(self, inputs, kernel, recurrent_kernel, bias=None, *, activation="tanh",
                 return_sequences=False, return_state=False, go_backwards=False, mask=None,
                 initial_state=None, zero_output_for_mask=False, unroll=False):
        keras, _ = keras_and_tf()
        x, mask, initial_state, unbatched, dtype = as_batch(inputs, mask, initial_state)
        layer = keras.layers.SimpleRNN(
            np.shape(recurrent_kernel)[0], activation=activation, use_bias=bias is not None,
            return_sequences=return_sequences, return_state=return_state, go_backwards=go_backwards,
            zero_output_for_mask=zero_output_for_mask, unroll=unroll, dtype=dtype,
        )
        layer.build(x.shape)
        layer.set_weights([np.asarray(w, dtype) for w in (kernel, recurrent_kernel, bias) if w is not None])
        out = layer(
            x.astype(dtype),
            mask=None if mask is None else np.asarray(mask).astype(bool),
            initial_state=None if initial_state is None else [np.asarray(initial_state, dtype)],
            training=False,
        )
        if return_state:
            output, state = (np.asarray(o) for o in out)
            return (output[0], state[0]) if unbatched else (output, state)
        output = np.asarray(out)
        return output[0] if unbatched else output


class _Timed:
    """Wraps an oracle and adds up the seconds spent in it."""

    def __init__(self, oracle):
        self.oracle, self.seconds = oracle, 0.0

    def __call__(self, *args, **kwargs):
        t = time.perf_counter()
        try:
            return self.oracle(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t

    def __getattr__(self, name):
        return getattr(self.oracle, name)


def _draw_T(rng, max_T):
    """Short most of the time, in the hundreds otherwise (as the case strategy does)."""
    short = min(12, max_T)
    return int(rng.integers(1, short + 1)) if rng.random() < 0.5 or max_T <= 12 else int(rng.integers(13, max_T + 1))


def harness_cases(size: dict, *, new_config_every_example: bool, seed: int = 0):
    """The sequence of cases: B and T drawn per example; the configuration
    cycles through CONFIGS, or is new for every example."""
    rng = np.random.default_rng(seed)
    n = size["new_config_examples"] if new_config_every_example else size["examples"]
    cases = []
    for i in range(n):
        if new_config_every_example:
            act = str(rng.choice(ELEMENTWISE))
            cfg = dict(D=int(rng.integers(1, 25)), U=int(rng.integers(1, 25)),
                       dtype=str(rng.choice(["float32", "float64"])), activation=act,
                       gain=0.9 if act in BOUNDED else 0.5, return_sequences=bool(rng.integers(2)))
        else:
            cfg = dict(CONFIGS[i % size["configs"]])
        cfg.setdefault("gain", 0.9)
        cases.append(make_case(B=int(rng.integers(1, 5)), T=_draw_T(rng, size["max_T"]),
                               seed=int(rng.integers(2**32)), **cfg))
    return cases


def _describe_case(case) -> dict:
    d = dict(case.shape, dtype=case.dtype.name, activation=case.activation)
    for flag in ("return_sequences", "return_state", "go_backwards", "zero_output_for_mask"):
        if getattr(case, flag):
            d[flag] = True
    if case.bias is None:
        d["use_bias"] = False
    if case.mask is not None:
        d["mask"] = case.mask_pattern
    if case.initial_state is not None:
        d["initial_state"] = True
    return d


def _check_sequence(oracle, cases) -> dict:
    """Check every case with a fresh Context; return the seconds and what happened."""
    timed = _Timed(oracle)
    ctx = Context(timed)
    failures = []
    gc.collect()
    t = time.perf_counter()
    for case in cases:
        try:
            ctx.expect(simple_rnn, case)
        except PropertyFailure as exc:
            failures.append(f"{case.describe()}: {str(exc).splitlines()[0]}")
    seconds = time.perf_counter() - t
    return dict(seconds=seconds, oracle_seconds=timed.seconds, failures=failures,
                builds=getattr(oracle, "builds", None))


def _summary(runs, n) -> dict:
    return dict(
        examples_per_s=stats([n / x["seconds"] for x in runs]),
        seconds=stats([x["seconds"] for x in runs]),
        oracle_seconds=stats([x["oracle_seconds"] for x in runs]),
        builds=runs[0]["builds"],
        failures=sorted({f for x in runs for f in x["failures"]}),
    )


def bench_harness(size: dict, repeats: int, log, *, goal: float = GOAL_HARNESS) -> list[dict]:
    """Three rows, each with the cached oracle and the naive harness on the same cases:

    * shapes vary, warm cache: every configuration was met (and compiled)
      before, on other B and T; the steady state of a property run, and
      what the goal is judged on;
    * shapes vary, empty cache: the same cases from a new oracle, its
      builds and compilations counted;
    * new configuration every example: nothing to reuse.
    """

    def fresh():  # an oracle with its own empty cache: what it builds is counted here
        return KerasOracle(private=True)

    # Warm-up: TensorFlow's first eager op and first compiled function (one-off costs of the process).
    warm_up = harness_cases(dict(size, new_config_examples=1), new_config_every_example=True, seed=12345)
    for _ in range(2):
        _check_sequence(fresh(), warm_up)
        _check_sequence(NaiveKerasSimpleRNN(), warm_up)

    shapes_vary = harness_cases(size, new_config_every_example=False, seed=0)
    new_every = harness_cases(size, new_config_every_example=True, seed=0)
    warm = fresh()
    for _ in range(2):  # the same configurations on other shapes, twice: built and compiled
        _check_sequence(warm, harness_cases(size, new_config_every_example=False, seed=1))

    rows = (
        ("shapes vary, warm cache", shapes_vary, lambda: warm, True),
        ("shapes vary, empty cache", shapes_vary, fresh, False),
        ("new configuration every example", new_every, fresh, False),
    )
    naive_runs: dict[int, list] = {}
    results = []
    for name, cases, oracle, judged in rows:
        cached_runs = []
        for r in range(repeats):
            log(f"harness: {name}, repeat {r + 1}/{repeats}")
            cached_runs.append(_check_sequence(oracle(), cases))
            if len(naive_runs.setdefault(id(cases), [])) < repeats:  # one naive series per sequence
                naive_runs[id(cases)].append(_check_sequence(NaiveKerasSimpleRNN(), cases))
        n = len(cases)
        entry = dict(
            name=name, examples=n,
            configurations=len({(c.shape["D"], c.shape["U"], c.dtype.name, c.activation, c.return_sequences,
                                 c.return_state, c.go_backwards, c.mask is not None, c.initial_state is not None,
                                 c.bias is not None) for c in cases}),
            cases=[_describe_case(c) for c in cases],
            cached=_summary(cached_runs, n),
            naive=_summary(naive_runs[id(cases)], n),
        )
        ratio = entry["cached"]["examples_per_s"]["median"] / entry["naive"]["examples_per_s"]["median"]
        entry["ratio"] = ratio
        entry["goal"] = f">= {goal:g}x" if judged else None
        entry["goal_met"] = bool(ratio >= goal) if judged else None
        results.append(entry)
    return results

