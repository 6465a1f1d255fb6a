"""Section (c), backward: the pipeline's gradients, rnn_ref against ``tf.GradientTape``.

The mean binary_crossentropy of the pipeline of section (b) and its gradients
w.r.t. every weight, rnn_ref (``NumpyModel.gradients``) against a tape in a
``tf.function`` and an eager tape, at every B of the size; and
``rnn_ref.vjp(simple_rnn)`` against a tape on the Keras ``SimpleRNN`` layer
alone at one B. Goal: at least as fast as the tape in a ``tf.function``, at
every B.
"""

from __future__ import annotations

import numpy as np

from rnn_ref import from_keras, vjp
from rnn_ref._tf import keras_and_tf
from rnn_ref.models.gradients import value_and_gradients
from rnn_ref.layers.simple_rnn import simple_rnn
from rnn_ref.commands.bench.pipeline import build_pipeline
from rnn_ref.commands.bench.sizes import GOAL_BACKWARD, GOAL_SPREAD
from rnn_ref.commands.bench.timing import calls_per_repeat, has_threadpoolctl, limit_blas_threads, spread_goal, stats, time_per_call

BACKWARD_LOSS = "binary_crossentropy"


def _dense(grads):
    """Keras's gradients as dense tensors (the Embedding's comes as tf.IndexedSlices)."""
    _, tf = keras_and_tf()
    return [tf.convert_to_tensor(g) for g in grads]


def keras_gradient_step(model, loss=BACKWARD_LOSS):
    """``step(ids, y) -> (loss, [gradient of each trainable weight])``: the mean loss of
    ``model(ids)`` under a ``tf.GradientTape``, as a training step computes it, and its gradients,
    made dense so that they are what rnn_ref returns (the Embedding's (V, E) table included)."""
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
        with limit_blas_threads(threads):
            f()  # warm-up
            calls[k] = calls_per_repeat(f, size["target_s"])
    times = {k: [] for k in ways}
    for r in range(repeats):
        log(f"backward: {what}, repeat {r + 1}/{repeats}")
        for k, (f, threads) in ways.items():  # interleaved by repeat: a change of load hits every way alike
            times[k].append(time_per_call(f, calls[k], threads, size["settle_s"]))
    out = {}
    for k in ways:
        st = stats(times[k])
        out[k] = dict(seconds_per_call=st, calls_per_repeat=calls[k], spread=st["max"] / st["min"])
    return out


def bench_backward(size: dict, repeats: int, log, *, goal: float = GOAL_BACKWARD,
                   goal_spread: float = GOAL_SPREAD) -> dict:
    """The pipeline's gradients: rnn_ref against tf.GradientTape (compiled and eager) at every B, and
    ``rnn_ref.vjp(simple_rnn)`` against a tape on the SimpleRNN layer alone at one B."""
    _, tf = keras_and_tf()
    p = size["backward"]
    V, E, U, T = p["V"], p["E"], p["U"], p["T"]
    model = build_pipeline(V, E, U, T)
    np_model = from_keras(model)  # converted once, outside the timing
    step = keras_gradient_step(model)
    limit_one = has_threadpoolctl()
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
        entry["goal"] = f">= {goal:g}x vs tf.function"
        entry["goal_met"] = bool(entry["ratio_vs_tf_function"] >= goal)
        if B >= p["spread_from"]:
            entry.update(spread_goal(entry["rnn_ref"]["spread"], goal_spread))
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
