"""Section (b), pipeline: ``Embedding(5000, 32) -> SimpleRNN(100) -> Dense(1, "sigmoid")`` forward.

At T = 250, rebuilt with ``rnn_ref.from_keras``, against compiled Keras
(``model.predict_on_batch`` and the model in a ``tf.function``) at B = 1, 32,
256, 1024, in one process with Keras loaded and used: the ways are timed in
turn, each right after the other, as in ``check``, a report or a notebook.
Also rnn_ref with its batch split off (``RNN_REF_THREADS=1``), rnn_ref alone in
a NumPy-only process (``numpy_only_process``, which runs
``numpy_only_worker``), and the machine's limit for the loop
(``machine.machine_limit``). Goals: at least as fast as the faster Keras path
at every B, 5x at B = 1, 1.2x at B = 1024 with a spread (slowest repeat over
fastest) under 1.3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager

import numpy as np

from rnn_ref import from_keras
from rnn_ref.layers import parallel
from rnn_ref._tf import keras_and_tf
from rnn_ref.models.npz import load_npz, save_npz
from rnn_ref.commands.bench.machine import limit_goal, machine_limit
from rnn_ref.commands.bench.sizes import GOAL_LIMIT, GOAL_PIPELINE, GOAL_PIPELINE_B1, GOAL_PIPELINE_LARGE, GOAL_SPREAD
from rnn_ref.commands.bench.timing import calls_per_repeat, spread_goal, stats, time_calls


def build_pipeline(V, E, U, T, seed=0):
    """Embedding(V, E) -> SimpleRNN(U) -> Dense(1, "sigmoid") with seeded weights and non-zero biases."""
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


@contextmanager
def _rnn_ref_threads(n):
    """``rnn_ref.layers.parallel.set_threads(n)`` inside the block (None: leave it alone)."""
    if n is None:
        yield
        return
    parallel.set_threads(n)
    try:
        yield
    finally:
        parallel.set_threads(None)


def bench_pipeline(size: dict, repeats: int, log, *, goal_b1: float = GOAL_PIPELINE_B1,
                   goal: float = GOAL_PIPELINE, goal_large: float = GOAL_PIPELINE_LARGE,
                   goal_spread: float = GOAL_SPREAD, goal_limit: float = GOAL_LIMIT) -> list[dict]:
    """The pipeline of ``build_pipeline`` in one process with Keras loaded and used: per B, every
    way timed in turn in each repeat, right after the other (no pause), so that each runs where
    the other library's threads have just worked, as in ``check``, ``report`` or a notebook.

    Ways: rnn_ref as it is (``numpy``: the batch split of ``rnn_ref.layers.parallel`` above its size),
    rnn_ref with the split off (``numpy_unsplit``: RNN_REF_THREADS=1, OpenBLAS's threads as the
    process has them), Keras ``predict_on_batch`` and the model in a ``tf.function``. Then the
    same rnn_ref model alone in a fresh process without TensorFlow (``numpy_only_process``), and
    the machine's limit for the loop (``machine_limit``).
    """
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
        calls = {k: calls_per_repeat(f, size["target_s"]) for k, f in ways.items()}
        times = {k: [] for k in ways}
        for r in range(repeats):
            log(f"pipeline: B={B}, repeat {r + 1}/{repeats}")
            for k, f in ways.items():  # interleaved: Keras, rnn_ref, Keras, rnn_ref, each in the other's wake
                times[k].append(time_calls(f, calls[k]))
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
        judged = goal_b1 if B == 1 else goal_large if B == p["large_B"] else goal
        entry["goal"] = f">= {judged:g}x vs the faster Keras path"
        entry["goal_met"] = bool(entry["ratio"] >= judged)
        entry["goal_met_vs_predict_on_batch"] = bool(entry["ratio_vs_predict_on_batch"] >= judged)
        if B >= p["spread_from"]:
            entry.update(spread_goal(entry["numpy"]["spread"], goal_spread))
        if B == p["large_B"]:
            entry.update(limit_goal(entry["limit_over_numpy"], goal_limit))
    return results



def numpy_only_process(model_path, ids_path, target_s, repeats) -> dict:
    """rnn_ref's times in a new Python process that imports NumPy and rnn_ref only (checked):
    ``{"B<n>": dict(seconds_per_call, calls_per_repeat, spread, tensorflow_loaded)}``."""
    code = ("import json, sys; from rnn_ref.commands.bench.pipeline import numpy_only_worker; "
            "print(json.dumps(numpy_only_worker(*sys.argv[1:3], float(sys.argv[3]), int(sys.argv[4]))))")
    out = subprocess.run([sys.executable, "-c", code, model_path, ids_path, str(target_s), str(repeats)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def numpy_only_worker(model_path, ids_path, target_s, repeats) -> dict:
    """What ``numpy_only_process`` runs in the new process: rnn_ref's times on every batch of ids."""
    np_model = load_npz(model_path)
    result = {}
    with np.load(ids_path) as f:
        batches = {k: f[k] for k in f.files}
    for name, ids in batches.items():
        run = lambda: np_model(ids)  # noqa: E731
        run()
        calls = calls_per_repeat(run, target_s)
        st = stats([time_calls(run, calls) for _ in range(repeats)])
        result[name] = dict(seconds_per_call=st, calls_per_repeat=calls, spread=st["max"] / st["min"],
                            tensorflow_loaded="tensorflow" in sys.modules)
    return result
