"""Section (d), layers: every recurrent layer alone, forward and backward, against compiled Keras.

Forward: SimpleRNN, LSTM, GRU and Bidirectional(LSTM) alone (T = 250, D = 32,
U = 100 in a full run), each a ``keras.Sequential`` with random kernels and
non-zero biases, rebuilt with ``rnn_ref.from_keras``, at B = 1, 32, 256, 1024;
then the demo's second model, ``Embedding(5000, 32, mask_zero=True) ->
Bidirectional(LSTM(64)) -> GRU(32) -> Dense(1)``. Each is timed interleaved with
``model.predict_on_batch`` and the model in a ``tf.function``, in one process, as
section (b) times the SimpleRNN pipeline.

Backward: each layer's ``rnn_ref.vjp`` (the output and the gradients of
``sum(output * d_output)`` w.r.t. the inputs and every weight) against a
``tf.GradientTape`` on the Keras layer in a ``tf.function``, which also runs the
forward pass and the gradients of the same sum.

Each row gives the median, min and max over the repeats, the spread (slowest
repeat over fastest) and the machine's limit for its loop (``machine.machine_limit``:
the recurrent products at the measured sgemm rate plus the gates' elementwise
work at the measured rate). Goals (``sizes.py``): forward at least 1x the faster
Keras path at every B and 1.5x at B >= 256, backward at least 1x the compiled
tape, spread under 1.3 at B >= 256.
"""

from __future__ import annotations

import numpy as np

import rnn_ref
from rnn_ref._tf import keras_and_tf
from rnn_ref.commands.bench.machine import limit_goal, machine_limit
from rnn_ref.commands.bench.sizes import GOAL_LAYER, GOAL_LAYER_BACKWARD, GOAL_LAYER_LARGE, GOAL_LIMIT, GOAL_SPREAD
from rnn_ref.commands.bench.timing import calls_per_repeat, spread_goal, stats, time_calls
from rnn_ref.models.registry import RECURRENT

#: The layers timed alone: name -> (Keras class, wrapped in a Bidirectional).
LAYERS = {"SimpleRNN": ("SimpleRNN", False), "LSTM": ("LSTM", False), "GRU": ("GRU", False),
          "Bidirectional(LSTM)": ("LSTM", True)}


def build_layer_model(name: str, T: int, D: int, U: int, seed: int = 0):
    """``Input((T, D)) -> <layer>(U)`` with seeded kernels and random normal biases (std 0.5)."""
    keras, _ = keras_and_tf()
    keras.utils.set_random_seed(seed)
    cls, wrapped = LAYERS[name]
    layer = getattr(keras.layers, cls)(U)
    model = keras.Sequential([keras.Input((T, D)), keras.layers.Bidirectional(layer) if wrapped else layer],
                             name="bench_" + cls.lower())
    _random_biases(model, seed)
    return model


def build_demo_model(T: int, seed: int = 0, V: int = 5000, E: int = 32):
    """The demo's second model: Embedding(V, E, mask_zero) -> Bidirectional(LSTM(64, return_sequences))
    -> GRU(32) -> Dense(1, sigmoid)."""
    keras, _ = keras_and_tf()
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((T,), dtype="int32"),
        keras.layers.Embedding(V, E, mask_zero=True),
        keras.layers.Bidirectional(keras.layers.LSTM(64, return_sequences=True)),
        keras.layers.GRU(32),
        keras.layers.Dense(1, activation="sigmoid"),
    ], name="bench_demo_lstm_gru")
    _random_biases(model, seed)
    return model


def _random_biases(model, seed):
    rng = np.random.default_rng(seed)
    for w in model.weights:
        if w.path.endswith("bias"):
            w.assign((0.5 * rng.standard_normal(tuple(w.shape))).astype(w.dtype))


def _interleaved(ways: dict, size: dict, repeats: int, log, what: str) -> dict:
    """Every way ``{name: function}`` timed ``repeats`` times, the ways one right after the other
    in each repeat: ``{name: dict(seconds_per_call, calls_per_repeat, spread)}``."""
    for f in ways.values():
        f()  # warm-up: compiles the Keras paths
    calls = {k: calls_per_repeat(f, size["target_s"]) for k, f in ways.items()}
    times = {k: [] for k in ways}
    for r in range(repeats):
        log(f"{what}, repeat {r + 1}/{repeats}")
        for k, f in ways.items():
            times[k].append(time_calls(f, calls[k]))
    out = {}
    for k in ways:
        st = stats(times[k])
        out[k] = dict(seconds_per_call=st, calls_per_repeat=calls[k], spread=st["max"] / st["min"])
    return out


def _gates(name: str) -> int:
    cls, _ = LAYERS[name]
    return RECURRENT[cls].gates


def bench_layers(size: dict, repeats: int, log, *, goal: float = GOAL_LAYER, goal_large: float = GOAL_LAYER_LARGE,
                 goal_spread: float = GOAL_SPREAD, goal_limit: float = GOAL_LIMIT) -> list[dict]:
    """Forward: each layer of ``LAYERS`` alone and the demo's second model, against compiled Keras."""
    _, tf = keras_and_tf()
    p = size["layers"]
    T, D, U = p["T"], p["D"], p["U"]
    rng = np.random.default_rng(2)
    rows = []
    models = {name: build_layer_model(name, T, D, U) for name in LAYERS}
    models["demo: Embedding -> Bidirectional(LSTM(64)) -> GRU(32) -> Dense(1)"] = build_demo_model(T, V=p["V"])
    for name, model in models.items():
        np_model = rnn_ref.from_keras(model)
        ids_input = model.inputs[0].dtype == "int32"
        spec = tf.TensorSpec((None, T), tf.int32) if ids_input else tf.TensorSpec((None, T, D), tf.float32)
        compiled = tf.function(lambda x, m=model: m(x, training=False), input_signature=[spec])
        for B in p["batches"]:
            if ids_input:  # a quarter of the rows padded at the end, as text batches are
                x = rng.integers(1, p["V"], size=(B, T), dtype=np.int32)  # (B, T)
                x[: B // 4, T // 2:] = 0
            else:
                x = rng.standard_normal((B, T, D)).astype(np.float32)  # (B, T, D)
            ways = {"keras_predict_on_batch": lambda: model.predict_on_batch(x),
                    "numpy": lambda: np_model(x),
                    "keras_tf_function": lambda: compiled(x).numpy()}
            timed = _interleaved(ways, size, repeats, log, f"layers: {name}, B={B}")
            diff = float(np.max(np.abs(np.asarray(np_model(x), np.float64) - np.asarray(compiled(x), np.float64))))
            entry = dict(layer=name, B=B, T=T, D=D, U=U, max_abs_diff_vs_keras=diff, **timed)
            np_med = timed["numpy"]["seconds_per_call"]["median"]
            keras_med = min(timed[k]["seconds_per_call"]["median"] for k in ("keras_predict_on_batch",
                                                                            "keras_tf_function"))
            entry["ratio"] = keras_med / np_med
            if name in LAYERS:
                _, wrapped = LAYERS[name]
                limit = machine_limit(B, T, D, U, repeats, gates=_gates(name))
                limit["seconds"] *= 2 if wrapped else 1  # two directions, one after the other
                entry["machine_limit"] = limit
                entry["limit_over_numpy"] = limit["seconds"] / np_med
                if name == "SimpleRNN" and B == max(p["batches"]):  # the SimpleRNN goal on the machine's limit
                    entry.update(limit_goal(entry["limit_over_numpy"], goal_limit))
            judged = goal_large if B >= p["large_from"] else goal
            entry["goal"] = f">= {judged:g}x vs the faster Keras path"
            entry["goal_met"] = bool(entry["ratio"] >= judged)
            if B >= p["large_from"]:
                entry.update(spread_goal(timed["numpy"]["spread"], goal_spread))
            rows.append(entry)
    return rows


def bench_layer_backward(size: dict, repeats: int, log, *, goal: float = GOAL_LAYER_BACKWARD,
                         goal_spread: float = GOAL_SPREAD) -> list[dict]:
    """Backward: ``rnn_ref.vjp`` of each layer of ``LAYERS`` against a compiled tape on the Keras layer."""
    _, tf = keras_and_tf()
    p = size["layers"]
    T, D, U = p["T"], p["D"], p["U"]
    rng = np.random.default_rng(3)
    rows = []
    for name, (cls, wrapped) in LAYERS.items():
        model = build_layer_model(name, T, D, U)
        layer = model.layers[-1]
        spec = RECURRENT[cls]
        if wrapped:
            fwd, bwd = layer.forward_layer.get_weights(), layer.backward_layer.get_weights()

            def run_ref(x, d, fwd=fwd, bwd=bwd, ref=spec.reference):
                _, back = rnn_ref.vjp(rnn_ref.bidirectional, ref, x, fwd, bwd)
                return back(d)
        else:
            weights = layer.get_weights()

            def run_ref(x, d, weights=weights, spec=spec):
                _, back = rnn_ref.vjp(spec.reference, x, *weights)
                return back(d)

        width = 2 * U if wrapped else U

        @tf.function(input_signature=[tf.TensorSpec((None, T, D), tf.float32), tf.TensorSpec((None, width), tf.float32)])
        def tape(x, d, layer=layer):
            with tf.GradientTape() as g:
                g.watch(x)
                s = tf.reduce_sum(layer(x) * d)
            return g.gradient(s, [x, *layer.trainable_weights])

        for B in p["backward_batches"]:
            x = rng.standard_normal((B, T, D)).astype(np.float32)  # (B, T, D)
            d = rng.standard_normal((B, width)).astype(np.float32)  # (B, U) or (B, 2U)
            ways = {"keras_tf_function": lambda: [t.numpy() for t in tape(x, d)],
                    "numpy": lambda: run_ref(x, d)}
            timed = _interleaved(ways, size, repeats, log, f"layers backward: {name}, B={B}")
            d_inputs = np.asarray(run_ref(x, d).inputs, np.float64)
            diff = float(np.max(np.abs(d_inputs - tape(x, d)[0].numpy())))
            entry = dict(layer=name, B=B, T=T, D=D, U=U, max_abs_diff_inputs_vs_keras=diff, **timed)
            entry["ratio"] = timed["keras_tf_function"]["seconds_per_call"]["median"] / \
                timed["numpy"]["seconds_per_call"]["median"]
            entry["goal"] = f">= {goal:g}x vs the compiled tape"
            entry["goal_met"] = bool(entry["ratio"] >= goal)
            if B >= p["large_from"]:
                entry.update(spread_goal(timed["numpy"]["spread"], goal_spread))
            rows.append(entry)
    return rows
