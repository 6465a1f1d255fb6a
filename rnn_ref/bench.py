"""Speed: ``python -m rnn_ref bench [--out bench.json] [--repeats N] [--quick]``.

Two measurements, side by side in one run, each repeated ``--repeats`` times
(median and spread reported):

harness
    Property examples checked against Keras per second. One example is one
    ``Context.expect`` of the property harness: the candidate
    (``rnn_ref.simple_rnn``), the Keras oracle, the float64 reference, its
    conditioning and the judge. The cached oracle (``KerasOracle``: each
    configuration built and compiled once, batch and time sizes free) is
    timed against a naive harness that builds a fresh Keras ``SimpleRNN``
    layer, sets its weights and calls it eagerly for every example, on the
    same sequence of cases. Three rows:

    * ``shapes vary, warm cache``: a few configurations (input size, units,
      activation, dtype, options), B and T drawn anew for every example;
      each configuration was met (and compiled) before on other shapes, as
      in a property run once its configurations are known. Goal: >= 10x.
    * ``shapes vary, empty cache``: the same cases from a new oracle, its
      builds and compilations counted. Reported, no goal.
    * ``new configuration every example``: the worst case for the cache,
      nothing to reuse. Reported, no goal.

pipeline
    ``Embedding(5000, 32) -> SimpleRNN(100) -> Dense(1, "sigmoid")`` at
    T = 250, rebuilt with ``rnn_ref.from_keras``, against compiled Keras
    (``model.predict_on_batch`` and the model in a ``tf.function``) at
    B = 1, 32, 256, 1024, in one process with Keras loaded and used: the
    ways are timed in turn, each right after the other, as in ``check``, a
    report or a notebook. Also rnn_ref with its batch split off
    (``RNN_REF_THREADS=1``), rnn_ref alone in a NumPy-only process, and the
    machine's limit for the loop (``machine_limit``). Goals: at least as
    fast as the faster Keras path at every B, 5x at B = 1, 1.2x at
    B = 1024 with a spread (slowest repeat over fastest) under 1.3.

The table is printed with rich; ``--out`` writes everything as JSON
(docs/bench.md describes the figures).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone

import numpy as np

from .harness.oracle import as_batch

# -- sizes ---------------------------------------------------------------------

FULL = dict(
    pipeline=dict(V=5000, E=32, U=100, T=250, batches=(1, 32, 256, 1024), large_B=1024),
    # Not B = 1024: with OpenBLAS's two threads on a shared machine one NumPy call there can take
    # 2-17 s instead of 0.5 s (docs/bench.md), which alone would blow the section's minute.
    backward=dict(V=5000, E=32, U=100, T=250, batches=(1, 32, 256), eager_batches=(1, 32, 256),
                  goal_B=32, layer_B=32),
    configs=4, examples=32, new_config_examples=12, max_T=300, target_s=0.3, settle_s=0.1, repeats=5,
)
QUICK = dict(
    pipeline=dict(V=50, E=4, U=6, T=12, batches=(1, 4), large_B=4),
    backward=dict(V=50, E=4, U=6, T=12, batches=(1, 4), eager_batches=(1, 4), goal_B=4, layer_B=4),
    configs=2, examples=4, new_config_examples=2, max_T=12, target_s=0.005, settle_s=0.0, repeats=2,
)

GOAL_HARNESS = 10.0  # cached oracle vs naive harness, examples per second
GOAL_PIPELINE_B1 = 5.0  # NumPy vs compiled Keras at B = 1
GOAL_PIPELINE = 1.0  # NumPy vs compiled Keras at every B
GOAL_PIPELINE_LARGE = 1.2  # NumPy vs compiled Keras at the largest B (the size's large_B: 1024)
GOAL_SPREAD = 1.3  # and NumPy's slowest repeat over its fastest there
GOAL_BACKWARD = 1.0  # rnn_ref gradients vs GradientTape in a tf.function, at the backward size's goal_B (32)
BACKWARD_LOSS = "binary_crossentropy"

#: The configurations of the "shapes vary" sequence (the first ``configs`` are used).
CONFIGS = (
    dict(D=8, U=16, dtype="float32", activation="tanh"),
    dict(D=3, U=5, dtype="float64", activation="relu", gain=0.5, return_sequences=True),
    dict(D=12, U=7, dtype="float32", activation="sigmoid", mask_pattern="random", return_state=True),
    dict(D=5, U=24, dtype="float64", activation="softsign", initial_state=True, go_backwards=True,
         return_sequences=True),
)


# -- statistics ----------------------------------------------------------------

def stats(values) -> dict:
    """Median, quartiles, min and max of the repeats."""
    v = np.asarray(values, dtype=np.float64)
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return dict(median=float(med), q1=float(q1), q3=float(q3), iqr=float(q3 - q1),
                min=float(v.min()), max=float(v.max()), repeats=int(v.size), values=[float(x) for x in v])


# -- the machine -----------------------------------------------------------------

def machine() -> dict:
    """Cores, BLAS, thread pools and versions."""
    from ._tf import keras_and_tf  # noqa: PLC0415

    keras, tf = keras_and_tf()
    info = dict(
        platform=platform.platform(),
        processor=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        cores_usable=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        python=platform.python_version(),
        numpy=np.__version__,
        tensorflow=tf.__version__,
        keras=keras.__version__,
        keras_backend=keras.backend.backend(),
        tf_intra_op_threads=tf.config.threading.get_intra_op_parallelism_threads(),  # 0: TF's choice
        tf_inter_op_threads=tf.config.threading.get_inter_op_parallelism_threads(),
        env={k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                         "TF_ENABLE_ONEDNN_OPTS") if k in os.environ},
    )
    try:
        build = np.show_config(mode="dicts").get("Build Dependencies", {})
        info["numpy_blas"] = {k: build.get(k, {}) for k in ("blas", "lapack")}
    except Exception as exc:  # older NumPy: no mode="dicts"
        info["numpy_blas"] = f"unavailable ({exc})"
    try:
        from threadpoolctl import threadpool_info  # noqa: PLC0415

        info["threadpools"] = [
            {k: p.get(k) for k in ("user_api", "internal_api", "num_threads", "version", "architecture",
                                   "threading_layer", "filepath")}
            for p in threadpool_info()
        ]
    except ImportError:
        info["threadpools"] = "threadpoolctl not installed"
    return info


def _has_threadpoolctl() -> bool:
    try:
        import threadpoolctl  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


@contextmanager
def _blas_threads(n):
    """Limit the BLAS thread pool to n threads inside the block (None: leave it alone)."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    with threadpool_limits(limits=n, user_api="blas"):
        yield


# -- (a) harness throughput ------------------------------------------------------

class NaiveKerasSimpleRNN:
    """The naive oracle: a fresh Keras ``SimpleRNN`` layer for every example,
    built, given the example's weights and called eagerly. Same call contract
    as ``KerasOracle``."""

    def __call__(self, inputs, kernel, recurrent_kernel, bias=None, *, activation="tanh",
                 return_sequences=False, return_state=False, go_backwards=False, mask=None,
                 initial_state=None, zero_output_for_mask=False, unroll=False):
        from ._tf import keras_and_tf  # noqa: PLC0415

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
    from .activations import ELEMENTWISE  # noqa: PLC0415
    from .harness.cases import BOUNDED, make_case  # noqa: PLC0415

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
    from .harness.context import Context, PropertyFailure  # noqa: PLC0415
    from .simple_rnn import simple_rnn  # noqa: PLC0415

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


def bench_harness(size: dict, repeats: int, log) -> list[dict]:
    """Three rows, each with the cached oracle and the naive harness on the same cases:

    * shapes vary, warm cache: every configuration was met (and compiled)
      before, on other B and T; the steady state of a property run, and
      what the goal is judged on;
    * shapes vary, empty cache: the same cases from a new oracle, its
      builds and compilations counted;
    * new configuration every example: nothing to reuse.
    """
    from .harness.oracle import KerasOracle  # noqa: PLC0415

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
        entry["goal"] = f">= {GOAL_HARNESS:g}x" if judged else None
        entry["goal_met"] = bool(ratio >= GOAL_HARNESS) if judged else None
        results.append(entry)
    return results


# -- (b) pipeline ----------------------------------------------------------------

def build_pipeline(V, E, U, T, seed=0):
    """Embedding(V, E) -> SimpleRNN(U) -> Dense(1, "sigmoid") with seeded weights and non-zero biases."""
    from ._tf import keras_and_tf  # noqa: PLC0415

    keras, _ = keras_and_tf()
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((T,), dtype="int32"),
        keras.layers.Embedding(V, E),
        keras.layers.SimpleRNN(U),
        keras.layers.Dense(1, activation="sigmoid"),
    ], name="bench_pipeline")
    rng = np.random.default_rng(seed)
    for layer in model.layers[1:]:
        *kernels, bias = layer.get_weights()
        layer.set_weights([*kernels, (0.5 * rng.standard_normal(bias.shape)).astype(bias.dtype)])
    return model


def _calls_per_repeat(fn, target_s):
    """How many calls make one repeat last about ``target_s`` (at least 1, at most 200)."""
    t = time.perf_counter()
    fn()
    once = time.perf_counter() - t
    return max(1, min(200, math.ceil(target_s / max(once, 1e-6))))


def _time_per_call(fn, calls, blas_threads=None, settle_s=0.0):
    """Seconds per call over ``calls`` consecutive calls.

    Keras's and OpenBLAS's worker threads keep spinning for a moment after
    their work, and on two cores the other library then competes with them.
    So each timed block starts after ``settle_s`` of sleep and one untimed
    call: each library is timed in its own steady state, not in the wake of
    the other.
    """
    with _blas_threads(blas_threads):
        time.sleep(settle_s)
        fn()
        gc.collect()
        was = gc.isenabled()
        gc.disable()
        try:
            t = time.perf_counter()
            for _ in range(calls):
                fn()
            return (time.perf_counter() - t) / calls
        finally:
            if was:
                gc.enable()


def _time_calls(fn, calls):
    """Seconds per call over ``calls`` consecutive calls, right away: no pause, no untimed call,
    so that each library runs in the wake of the other, as in one process that uses both."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - t) / calls
    finally:
        if was:
            gc.enable()


@contextmanager
def _rnn_ref_threads(n):
    """``rnn_ref.parallel.set_threads(n)`` inside the block (None: leave it alone)."""
    from . import parallel  # noqa: PLC0415

    if n is None:
        yield
        return
    parallel.set_threads(n)
    try:
        yield
    finally:
        parallel.set_threads(None)


def bench_pipeline(size: dict, repeats: int, log) -> list[dict]:
    """The pipeline of ``build_pipeline`` in one process with Keras loaded and used: per B, every
    way timed in turn in each repeat, right after the other (no pause), so that each runs where
    the other library's threads have just worked, as in ``check``, ``report`` or a notebook.

    Ways: rnn_ref as it is (``numpy``: the batch split of ``rnn_ref.parallel`` above its size),
    rnn_ref with the split off (``numpy_unsplit``: RNN_REF_THREADS=1, OpenBLAS's threads as the
    process has them), Keras ``predict_on_batch`` and the model in a ``tf.function``. Then the
    same rnn_ref model alone in a fresh process without TensorFlow (``numpy_only_process``), and
    the machine's limit for the loop (``machine_limit``).
    """
    import tempfile  # noqa: PLC0415

    from . import from_keras  # noqa: PLC0415
    from ._tf import keras_and_tf  # noqa: PLC0415
    from .npz import save_npz  # noqa: PLC0415

    _, tf = keras_and_tf()
    p = size["pipeline"]
    V, E, U, T = p["V"], p["E"], p["U"], p["T"]
    model = build_pipeline(V, E, U, T)
    np_model = from_keras(model)
    compiled = tf.function(lambda ids: model(ids, training=False),
                           input_signature=[tf.TensorSpec((None, T), tf.int32)])

    def unsplit(f):
        def run():
            with _rnn_ref_threads(1):
                return f()
        return run

    results, all_ids = [], {}
    rng = np.random.default_rng(1)
    for B in p["batches"]:
        ids = rng.integers(1, V, size=(B, T), dtype=np.int32)  # (B, T)
        all_ids[f"B{B}"] = ids
        run_numpy = lambda: np_model(ids)  # noqa: E731
        ways = {
            "keras_predict_on_batch": lambda: model.predict_on_batch(ids),
            "numpy": run_numpy,
            "keras_tf_function": lambda: compiled(ids).numpy(),
            "numpy_unsplit": unsplit(run_numpy),
        }
        outputs = {k: np.asarray(f()) for k, f in ways.items()}  # warm-up (compiles the Keras paths)
        for f in ways.values():
            f()
        calls = {k: _calls_per_repeat(f, size["target_s"]) for k, f in ways.items()}
        times = {k: [] for k in ways}
        for r in range(repeats):
            log(f"pipeline: B={B}, repeat {r + 1}/{repeats}")
            for k, f in ways.items():  # interleaved: Keras, rnn_ref, Keras, rnn_ref, each in the other's wake
                times[k].append(_time_calls(f, calls[k]))
        keras_out = outputs["keras_predict_on_batch"].astype(np.float64)
        entry = dict(B=B, T=T, V=V, E=E, U=U,
                     max_abs_diff_vs_keras=float(np.max(np.abs(outputs["numpy"].astype(np.float64) - keras_out))),
                     max_abs_diff_unsplit_vs_keras=float(np.max(np.abs(
                         outputs["numpy_unsplit"].astype(np.float64) - keras_out))))
        for k in ways:
            st = stats(times[k])
            entry[k] = dict(seconds_per_call=st, calls_per_repeat=calls[k], spread=st["max"] / st["min"])
        results.append(entry)

    # rnn_ref alone: a fresh process that never imports TensorFlow, the same model and ids.
    with tempfile.TemporaryDirectory() as tmp:
        model_path, ids_path = os.path.join(tmp, "model.npz"), os.path.join(tmp, "ids.npz")
        save_npz(np_model, model_path)
        np.savez(ids_path, **all_ids)
        log("pipeline: rnn_ref in a NumPy-only process")
        alone = numpy_only_process(model_path, ids_path, size["target_s"], repeats)
    limits = {B: machine_limit(B, T, E, U, repeats) for B in p["batches"]}

    for entry in results:
        B = entry["B"]
        entry["numpy_only_process"] = alone[f"B{B}"]
        entry["machine_limit"] = limits[B]
        np_med = entry["numpy"]["seconds_per_call"]["median"]
        pob = entry["keras_predict_on_batch"]["seconds_per_call"]["median"]
        tff = entry["keras_tf_function"]["seconds_per_call"]["median"]
        entry["ratio_vs_predict_on_batch"] = pob / np_med
        entry["ratio_vs_tf_function"] = tff / np_med
        entry["ratio"] = min(pob, tff) / np_med  # against the faster Keras path
        entry["limit_over_numpy"] = limits[B]["seconds"] / np_med  # 1 would be the machine's limit
        goal = GOAL_PIPELINE_B1 if B == 1 else GOAL_PIPELINE_LARGE if B == p["large_B"] else GOAL_PIPELINE
        entry["goal"] = f">= {goal:g}x vs the faster Keras path"
        entry["goal_met"] = bool(entry["ratio"] >= goal)
        entry["goal_met_vs_predict_on_batch"] = bool(entry["ratio_vs_predict_on_batch"] >= goal)
        if B == p["large_B"]:
            entry["spread_goal"] = f"< {GOAL_SPREAD:g}"
            entry["spread_goal_met"] = bool(entry["numpy"]["spread"] < GOAL_SPREAD)
    return results


def numpy_only_process(model_path, ids_path, target_s, repeats) -> dict:
    """rnn_ref's times in a new Python process that imports NumPy and rnn_ref only (checked):
    ``{"B<n>": dict(seconds_per_call, calls_per_repeat, spread, tensorflow_loaded)}``."""
    import subprocess  # noqa: PLC0415

    code = ("import json, sys; from rnn_ref.bench import _numpy_only_worker; "
            "print(json.dumps(_numpy_only_worker(*sys.argv[1:3], float(sys.argv[3]), int(sys.argv[4]))))")
    out = subprocess.run([sys.executable, "-c", code, model_path, ids_path, str(target_s), str(repeats)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _numpy_only_worker(model_path, ids_path, target_s, repeats) -> dict:
    from .npz import load_npz  # noqa: PLC0415

    np_model = load_npz(model_path)
    result = {}
    with np.load(ids_path) as f:
        batches = {k: f[k] for k in f.files}
    for name, ids in batches.items():
        run = lambda: np_model(ids)  # noqa: E731
        run()
        calls = _calls_per_repeat(run, target_s)
        st = stats([_time_calls(run, calls) for _ in range(repeats)])
        result[name] = dict(seconds_per_call=st, calls_per_repeat=calls, spread=st["max"] / st["min"],
                            tensorflow_loaded="tensorflow" in sys.modules)
    return result


def machine_limit(B, T, E, U, repeats) -> dict:
    """The least time this machine allows for the loop of a SimpleRNN(U) over T steps at batch B,
    split as ``rnn_ref.parallel`` splits it: T times the recurrent product (rows, U) @ (U, U) of
    the largest block at the measured sgemm rate, plus T times its activation (tanh on (rows, U))
    at the measured elementwise rate, each rate measured with every block's thread running the
    same kernel at once (one BLAS thread each), as NumPy calls deliver it (its call overhead
    included). The input projection, the add of each step, the embedding and the Dense layer
    are left out: the limit is below what any implementation of these formulas could reach.
    """
    import threading  # noqa: PLC0415

    from . import parallel  # noqa: PLC0415

    split = B >= parallel.MIN_ROWS and parallel.threads() > 1  # rnn_ref.parallel.run_loop's rule
    blocks = parallel.blocks(B, parallel.threads()) if split else [slice(0, B)]
    rows, n = max(r.stop - r.start for r in blocks), len(blocks)
    rng = np.random.default_rng(5)
    R = (0.1 * rng.standard_normal((U, U))).astype(np.float32)

    def kernel_seconds(kernel):
        """Seconds for T calls of kernel, every block's thread at once; median over repeats."""
        def work(out, i):
            h = rng.standard_normal((rows, U)).astype(np.float32)
            z = np.empty_like(h)
            kernel(h, z)  # warm
            t = time.perf_counter()
            for _ in range(T):
                kernel(h, z)
            out[i] = time.perf_counter() - t

        per_repeat = []
        with _blas_threads(1 if split else None):
            for _ in range(max(3, repeats)):
                out = [0.0] * n
                threads = [threading.Thread(target=work, args=(out, i)) for i in range(n)]
                for th in threads:
                    th.start()
                for th in threads:
                    th.join()
                per_repeat.append(max(out))
        return float(np.median(per_repeat))

    mm = kernel_seconds(lambda h, z: np.dot(h, R, out=z))
    act = kernel_seconds(lambda h, z: np.tanh(h, out=z))
    flops = 2.0 * rows * U * U * T
    return dict(seconds=mm + act, recurrent_products_s=mm, activation_s=act, threads=n, rows_per_thread=rows,
                sgemm_gflops_per_thread=flops / mm / 1e9, tanh_gelems_per_thread=rows * U * T / act / 1e9)


# -- (c) backward pass -----------------------------------------------------------

def _dense(grads):
    """Keras's gradients as dense tensors (the Embedding's comes as tf.IndexedSlices)."""
    from ._tf import keras_and_tf  # noqa: PLC0415

    _, tf = keras_and_tf()
    return [tf.convert_to_tensor(g) for g in grads]


def keras_gradient_step(model, loss=BACKWARD_LOSS):
    """``step(ids, y) -> (loss, [gradient of each trainable weight])``: the mean loss of
    ``model(ids)`` under a ``tf.GradientTape``, as a training step computes it, and its gradients,
    made dense so that they are what rnn_ref returns (the Embedding's (V, E) table included)."""
    from ._tf import keras_and_tf  # noqa: PLC0415

    keras, tf = keras_and_tf()
    loss_fn = getattr(keras.losses, loss)

    def step(ids, y):
        with tf.GradientTape() as tape:
            value = tf.reduce_mean(loss_fn(y, model(ids, training=True)))
        return value, _dense(tape.gradient(value, model.trainable_weights))

    return step


def _max_abs_diff(a, b) -> float:
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(z, np.float64)))) for x, z in zip(a, b))


def _timed_ways(ways: dict, size: dict, repeats: int, log, what: str) -> dict:
    """Every way ``{name: (function, BLAS threads or None)}`` timed ``repeats`` times, interleaved by
    repeat; ``{name: dict(seconds_per_call, calls_per_repeat, spread)}``, spread being the slowest
    repeat's time over the fastest's."""
    calls = {}
    for k, (f, threads) in ways.items():
        with _blas_threads(threads):
            f()  # warm-up
            calls[k] = _calls_per_repeat(f, size["target_s"])
    times = {k: [] for k in ways}
    for r in range(repeats):
        log(f"backward: {what}, repeat {r + 1}/{repeats}")
        for k, (f, threads) in ways.items():  # interleaved by repeat: a change of load hits every way alike
            times[k].append(_time_per_call(f, calls[k], threads, size["settle_s"]))
    out = {}
    for k in ways:
        st = stats(times[k])
        out[k] = dict(seconds_per_call=st, calls_per_repeat=calls[k], spread=st["max"] / st["min"])
    return out


def bench_backward(size: dict, repeats: int, log) -> dict:
    """The pipeline's gradients: rnn_ref against tf.GradientTape (compiled and eager) at every B, and
    ``rnn_ref.vjp(simple_rnn)`` against a tape on the SimpleRNN layer alone at one B."""
    from . import from_keras, vjp  # noqa: PLC0415
    from ._tf import keras_and_tf  # noqa: PLC0415
    from .gradients import value_and_gradients  # noqa: PLC0415
    from .simple_rnn import simple_rnn  # noqa: PLC0415

    _, tf = keras_and_tf()
    p = size["backward"]
    V, E, U, T = p["V"], p["E"], p["U"], p["T"]
    model = build_pipeline(V, E, U, T)
    np_model = from_keras(model)  # converted once, outside the timing
    step = keras_gradient_step(model)
    limit_one = _has_threadpoolctl()
    rng = np.random.default_rng(2)

    rows = []
    for B in p["batches"]:
        ids = rng.integers(1, V, size=(B, T), dtype=np.int32)  # (B, T)
        y = rng.integers(0, 2, size=(B, 1)).astype(np.float32)  # (B, 1)
        # One tf.function per B, as a training loop with a fixed batch size traces one.
        compiled = tf.function(step, reduce_retracing=True)
        run_ref = lambda: np_model.gradients(ids, y, BACKWARD_LOSS)  # noqa: E731
        ways = {"rnn_ref": (run_ref, None)}  # name: (function, BLAS threads or None for the default)
        if limit_one:
            ways["rnn_ref_1_blas_thread"] = (run_ref, 1)
        ways["keras_tf_function"] = (lambda: [g.numpy() for g in compiled(ids, y)[1]], None)
        if B in p["eager_batches"]:
            ways["keras_eager"] = (lambda: [g.numpy() for g in step(ids, y)[1]], None)
        # The check, once: same loss, same gradients (and a warm-up: this traces the tf.function).
        ref_value, ref_grads = value_and_gradients(np_model, ids, y, BACKWARD_LOSS)
        k_value, k_grads = compiled(ids, y)
        k_grads = [g.numpy() for g in k_grads]
        entry = dict(
            B=B, T=T, V=V, E=E, U=U, loss=BACKWARD_LOSS,
            weights=[list(g.shape) for g in k_grads],
            max_abs_diff_vs_keras=_max_abs_diff(ref_grads, k_grads),
            max_abs_gradient=max(float(np.max(np.abs(g))) for g in k_grads),
            loss_abs_diff_vs_keras=abs(float(ref_value) - float(k_value)),
        )
        if "keras_eager" in ways:
            entry["max_abs_diff_eager_vs_tf_function"] = _max_abs_diff(ways["keras_eager"][0](), k_grads)
        entry.update(_timed_ways(ways, size, repeats, log, f"model B={B}"))
        ref_s = entry["rnn_ref"]["seconds_per_call"]["median"]
        entry["ratio_vs_tf_function"] = entry["keras_tf_function"]["seconds_per_call"]["median"] / ref_s
        entry["ratio_vs_eager"] = (entry["keras_eager"]["seconds_per_call"]["median"] / ref_s
                                   if "keras_eager" in entry else None)
        entry["ratio_1_blas_thread_vs_tf_function"] = (
            entry["keras_tf_function"]["seconds_per_call"]["median"]
            / entry["rnn_ref_1_blas_thread"]["seconds_per_call"]["median"] if limit_one else None)
        judged = B == p["goal_B"]
        entry["goal"] = f">= {GOAL_BACKWARD:g}x vs tf.function" if judged else None
        entry["goal_met"] = bool(entry["ratio_vs_tf_function"] >= GOAL_BACKWARD) if judged else None
        rows.append(entry)

    # The SimpleRNN layer alone: rnn_ref.vjp against a tape on the Keras layer, forward and backward.
    B = p["layer_B"]
    layer = next(lay for lay in model.layers if type(lay).__name__ == "SimpleRNN")
    table = model.layers[0].get_weights()[0]  # (V, E)
    x = table[rng.integers(1, V, size=(B, T))]  # (B, T, E): what the Embedding gives the layer
    d_out = rng.standard_normal((B, U)).astype(np.float32)  # (B, U), the cotangent of the layer's output
    W, R, b = layer.get_weights()

    def run_ref():
        _, backward = vjp(simple_rnn, x, W, R, b)
        g = backward(d_out)
        return [g.inputs, g.kernel, g.recurrent_kernel, g.bias]

    @tf.function(reduce_retracing=True)
    def layer_step(x, d):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = layer(x, training=True)
        return tape.gradient(out, [x, *layer.trainable_weights], output_gradients=d)

    run_keras = lambda: [g.numpy() for g in _dense(layer_step(x, d_out))]  # noqa: E731
    ways = {"rnn_ref": (run_ref, None), "keras_tf_function": (run_keras, None)}
    k_grads = run_keras()
    layer_entry = dict(B=B, T=T, D=E, U=U, max_abs_diff_vs_keras=_max_abs_diff(run_ref(), k_grads),
                       max_abs_gradient=max(float(np.max(np.abs(g))) for g in k_grads))
    layer_entry.update(_timed_ways(ways, size, repeats, log, f"SimpleRNN layer B={B}"))
    layer_entry["ratio_vs_tf_function"] = (layer_entry["keras_tf_function"]["seconds_per_call"]["median"]
                                           / layer_entry["rnn_ref"]["seconds_per_call"]["median"])
    return dict(model=rows, layer=layer_entry)


# -- output ----------------------------------------------------------------------

def _spread(st, scale=1e3):
    return f"{st['median'] * scale:.3g} \\[{st['q1'] * scale:.3g}, {st['q3'] * scale:.3g}]"


def _goal(met):
    return "-" if met is None else ("[green]met[/green]" if met else "[red]NOT met[/red]")


def print_tables(result: dict, console) -> None:
    from rich.table import Table  # noqa: PLC0415

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
                  f"{e['machine_limit']['seconds'] * 1e3:.3g}", f"{e['limit_over_numpy']:.2f}")
    console.print(t)
    console.print(f"speed-up: the faster Keras path's median over rnn_ref's; the goal (>= {GOAL_PIPELINE_B1:g}x at B=1, "
                  f"{GOAL_PIPELINE_LARGE:g}x and spread < {GOAL_SPREAD:g} at the largest B, else {GOAL_PIPELINE:g}x) is judged on it. spread: "
                  "rnn_ref's slowest repeat over its fastest. split off: RNN_REF_THREADS=1. machine limit: the "
                  "recurrent products at the measured sgemm rate plus tanh at the measured elementwise rate, "
                  "on the threads rnn_ref uses (docs/bench.md).")

    if "backward" in result:
        print_backward_table(result["backward"], console)
    m = result["machine"]
    console.print(
        f"machine: {m['cores_usable']} usable cores of {m['cpu_count']}, Python {m['python']}, NumPy {m['numpy']}, "
        f"TensorFlow {m['tensorflow']}, Keras {m['keras']}; load average {result['load_average']['start']} "
        f"at start, {result['load_average']['end']} at end"
    )


def _range(st, scale=1e3):
    return f"{st['median'] * scale:.3g} \\[{st['min'] * scale:.3g}, {st['max'] * scale:.3g}]"


def print_backward_table(backward: dict, console) -> None:
    from rich.table import Table  # noqa: PLC0415

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
                  _goal(e["goal_met"]), f"{e['max_abs_diff_vs_keras']:.1e}")
    t.add_row("SimpleRNN vjp", str(lay["B"]), _range(lay["rnn_ref"]["seconds_per_call"]), *(["-"] if one else []),
              _range(lay["keras_tf_function"]["seconds_per_call"]), "-",
              f"{lay['ratio_vs_tf_function']:.2f}x", "-", "-", f"{lay['max_abs_diff_vs_keras']:.1e}")
    console.print(t)
    console.print("speed-up: the tape in a tf.function over rnn_ref (medians); vs eager: the eager tape over rnn_ref. "
                  "Both compute forward and backward; Keras's gradients are made dense and fetched as NumPy. "
                  "SimpleRNN vjp: rnn_ref.vjp(simple_rnn) against a tape on the Keras layer alone.")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rnn_ref bench",
        description="Time the property harness (cached vs naive Keras oracle), and the NumPy "
                    "Embedding -> SimpleRNN -> Dense pipeline, forward and with its gradients, against Keras.",
    )
    parser.add_argument("--out", metavar="PATH", default=None, help="write the figures as JSON to PATH")
    parser.add_argument("--repeats", type=int, default=None,
                        help=f"repeats of every measurement (default {FULL['repeats']}, {QUICK['repeats']} with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, to check that the benchmark runs (the figures mean nothing)")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    repeats = size["repeats"] if args.repeats is None else args.repeats
    if repeats < 1:
        parser.error("--repeats must be at least 1")

    from rich.console import Console  # noqa: PLC0415

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
        machine=machine(),
    )
    result["harness"] = bench_harness(size, repeats, log)
    result["pipeline"] = bench_pipeline(size, repeats, log)
    backward_started = time.perf_counter()
    result["backward"] = bench_backward(size, repeats, log)
    result["backward"]["seconds"] = time.perf_counter() - backward_started
    load_end = os.getloadavg() if hasattr(os, "getloadavg") else None
    fmt = lambda la: None if la is None else [round(x, 2) for x in la]  # noqa: E731
    result["load_average"] = dict(start=fmt(load_start), end=fmt(load_end))
    result["seconds"] = time.perf_counter() - started
    goals = [e["goal_met"] for e in result["harness"] if e["goal_met"] is not None]
    goals += [e["goal_met"] for e in result["pipeline"]]
    goals += [e["spread_goal_met"] for e in result["pipeline"] if "spread_goal_met" in e]
    goals += [e["goal_met"] for e in result["backward"]["model"] if e["goal_met"] is not None]
    result["all_goals_met"] = all(goals)

    print_tables(result, console)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
        console.print(f"wrote {args.out}")
    return 0
