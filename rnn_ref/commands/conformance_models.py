"""The models ``conformance`` checks on every runtime: one small Keras model per layer and
option ``rnn_ref.from_keras`` rebuilds.

Each ``ModelSpec`` builds a functional Keras model (vocabulary ``V``, embedding width
``E``, 3 to 5 units, an input width that differs from the units) and gives it seeded
random weights: input kernels of order one, recurrent kernels 0.9 times a random
non-symmetric orthogonal matrix per gate block (each step contracts), biases drawn
from N(0, 0.5^2) and kept away from zero, so a dropped or doubled bias shows.

The catalogue covers SimpleRNN, LSTM and GRU with ``return_sequences`` and
``return_state`` (on the last layer), ``go_backwards``, the mask of
``Embedding(mask_zero=True)``, stacked recurrent layers, Bidirectional with every
``merge_mode`` (None only as the last layer), a stateful model (a fixed batch), GRU with
``reset_after`` True and False, float inputs, and a model computing in float64; and
``Masking`` on floats, a streaming step with initial states as inputs and states out, and
an explicit mask input with an initial state (models of several inputs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from rnn_ref.harness.case import orthogonal

V = 20          # vocabulary
E = 4           # embedding width (!= every layer's units)
D = 6           # features of the float-input model
GAIN = 0.9
STATEFUL_BATCH = 2


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    build: Callable          # (keras) -> keras.Model, weights not yet random
    seed: int

    def make(self, keras):
        model = self.build(keras)
        randomize(model, self.seed)
        return model


def _weight(name: str, shape, rng) -> np.ndarray:
    if name == "recurrent_kernel":  # (U, G U)
        U = shape[0]
        return np.concatenate([orthogonal(rng, U, GAIN) for _ in range(shape[1] // U)], axis=1)
    if name == "kernel":  # (D, G U) or a Dense's (N, K)
        return rng.standard_normal(shape) / np.sqrt(shape[0])
    if name == "bias":  # (G U,), a GRU's (2, 3U), a Dense's (K,)
        w = 0.5 * rng.standard_normal(shape)
        w[np.abs(w) < 0.05] = 0.3
        return w
    if name == "embeddings":  # (V, E)
        return rng.standard_normal(shape)
    raise ValueError(f"no random rule for weight {name!r}")


def randomize(model, seed: int) -> None:
    """Seeded random weights for every layer (both directions of a Bidirectional), each in
    its variable's dtype."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([_weight(v.name, tuple(v.shape), rng).astype(v.dtype) for v in layer.weights])


def _ids(keras, mask=True, batch=None, dtype=None):
    """An int32 token-id input and its embedding (masked with ``mask_zero`` when ``mask``)."""
    x = keras.Input(batch_shape=(batch, None), dtype="int32") if batch else keras.Input(shape=(None,), dtype="int32")
    kw = {"dtype": dtype} if dtype else {}
    return x, keras.layers.Embedding(V, E, mask_zero=mask, **kw)(x)


def _chain(*layers, mask=True, batch=None, dtype=None):
    """A builder: ids -> Embedding -> each of ``layers`` (``keras -> layer``) in turn."""
    def build(keras):
        x, h = _ids(keras, mask, batch, dtype)
        for make in layers:
            h = make(keras)(h)
        return keras.Model(x, h)

    return build


def _L(cls, units, **kw):
    return lambda keras: getattr(keras.layers, cls)(units, **kw)


def _Bi(cls, units, merge_mode, **kw):
    return lambda keras: keras.layers.Bidirectional(getattr(keras.layers, cls)(units, **kw), merge_mode=merge_mode)


def _floats(keras):
    x = keras.Input(shape=(None, D))
    return keras.Model(x, keras.layers.Dense(2)(keras.layers.LSTM(3, return_sequences=True)(x)))


def _float64(keras):
    return _chain(_L("GRU", 4, return_sequences=True, dtype="float64"), _L("LSTM", 3, dtype="float64"),
                  lambda k: k.layers.Dense(2, dtype="float64"), dtype="float64")(keras)


def _masking(keras):
    """Floats padded with 0.0 in every feature: Masking -> LSTM(4, seq) -> GRU(3) -> Dense(2)."""
    x = keras.Input(shape=(None, D), name="x")
    h = keras.layers.LSTM(4, return_sequences=True)(keras.layers.Masking(0.0)(x))
    return keras.Model(x, keras.layers.Dense(2)(keras.layers.GRU(3)(h)))


def _states(keras):
    """A streaming step: token ids and the LSTM's states in, its sequence and states out."""
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    h0, c0 = keras.Input(shape=(3,), name="h0"), keras.Input(shape=(3,), name="c0")
    h = keras.layers.Embedding(V, E, mask_zero=True)(ids)
    out = keras.layers.LSTM(3, return_sequences=True, return_state=True)(h, initial_state=[h0, c0])
    return keras.Model([ids, h0, c0], out)


def _mask_input(keras):
    """Floats with an explicit boolean mask input and an initial state: GRU(4, seq) -> Dense(2)."""
    x, m = keras.Input(shape=(None, D), name="x"), keras.Input(shape=(None,), dtype="bool", name="mask")
    h0 = keras.Input(shape=(4,), name="h0")
    h = keras.layers.GRU(4, return_sequences=True)(x, mask=m, initial_state=h0)
    return keras.Model([x, m, h0], keras.layers.Dense(2)(h))


MODELS = [
    ModelSpec("simplernn_nomask", "Embedding(20,4) -> SimpleRNN(3) -> Dense(2); no mask: 0 is a token",
              _chain(_L("SimpleRNN", 3), _L("Dense", 2), mask=False), 1),
    ModelSpec("simplernn_seq", "Embedding(20,4,mask_zero) -> SimpleRNN(5, return_sequences)",
              _chain(_L("SimpleRNN", 5, return_sequences=True)), 2),
    ModelSpec("simplernn_state", "Embedding(20,4,mask_zero) -> SimpleRNN(3, return_state)",
              _chain(_L("SimpleRNN", 3, return_state=True)), 3),
    ModelSpec("lstm_state", "Embedding(20,4,mask_zero) -> LSTM(3, return_state): output, h, c",
              _chain(_L("LSTM", 3, return_state=True)), 4),
    ModelSpec("lstm_seq_state", "Embedding(20,4,mask_zero) -> LSTM(5, return_sequences, return_state)",
              _chain(_L("LSTM", 5, return_sequences=True, return_state=True)), 5),
    ModelSpec("gru_reset_after", "Embedding(20,4,mask_zero) -> GRU(3, reset_after=True) -> Dense(2)",
              _chain(_L("GRU", 3), _L("Dense", 2)), 6),
    ModelSpec("gru_reset_before", "Embedding(20,4,mask_zero) -> GRU(3, reset_after=False) -> Dense(2)",
              _chain(_L("GRU", 3, reset_after=False), _L("Dense", 2)), 7),
    ModelSpec("gru_seq_state", "Embedding(20,4,mask_zero) -> GRU(4, return_sequences, return_state, reset_after=False)",
              _chain(_L("GRU", 4, return_sequences=True, return_state=True, reset_after=False)), 8),
    ModelSpec("go_backwards", "Embedding(20,4,mask_zero) -> LSTM(3, go_backwards, return_sequences) -> "
              "GRU(4, go_backwards) -> Dense(2)",
              _chain(_L("LSTM", 3, go_backwards=True, return_sequences=True), _L("GRU", 4, go_backwards=True),
                     _L("Dense", 2)), 9),
    ModelSpec("go_backwards_nomask", "Embedding(20,4) -> SimpleRNN(5, go_backwards, return_sequences); no mask",
              _chain(_L("SimpleRNN", 5, go_backwards=True, return_sequences=True), mask=False), 10),
    ModelSpec("stacked", "Embedding(20,4,mask_zero) -> LSTM(5, seq) -> GRU(4, seq) -> SimpleRNN(3) -> Dense(1)",
              _chain(_L("LSTM", 5, return_sequences=True), _L("GRU", 4, return_sequences=True),
                     _L("SimpleRNN", 3), _L("Dense", 1)), 11),
    ModelSpec("bidi_concat", "Embedding(20,4,mask_zero) -> Bidirectional(LSTM(3, seq), concat) -> GRU(4) -> Dense(1)",
              _chain(_Bi("LSTM", 3, "concat", return_sequences=True), _L("GRU", 4), _L("Dense", 1)), 12),
    ModelSpec("bidi_sum", "Embedding(20,4,mask_zero) -> Bidirectional(GRU(3), sum)",
              _chain(_Bi("GRU", 3, "sum")), 13),
    ModelSpec("bidi_mul", "Embedding(20,4,mask_zero) -> Bidirectional(SimpleRNN(4, seq), mul) -> Dense(2)",
              _chain(_Bi("SimpleRNN", 4, "mul", return_sequences=True), _L("Dense", 2)), 14),
    ModelSpec("bidi_ave", "Embedding(20,4) -> Bidirectional(LSTM(3), ave); no mask",
              _chain(_Bi("LSTM", 3, "ave"), mask=False), 15),
    ModelSpec("bidi_none", "Embedding(20,4,mask_zero) -> Bidirectional(GRU(3, seq), merge_mode=None): "
              "forward and backward outputs", _chain(_Bi("GRU", 3, None, return_sequences=True)), 16),
    ModelSpec("stateful",
              f"Input(batch {STATEFUL_BATCH}) -> Embedding(20,4,mask_zero) -> LSTM(3, stateful) -> Dense(2)",
              _chain(_L("LSTM", 3, stateful=True), _L("Dense", 2), batch=STATEFUL_BATCH), 17),
    ModelSpec("float_input", f"Input(T, {D}) floats -> LSTM(3, return_sequences) -> Dense(2)", _floats, 18),
    ModelSpec("float64", "Embedding(20,4,mask_zero) -> GRU(4, seq) -> LSTM(3) -> Dense(2), every layer float64",
              _float64, 19),
    ModelSpec("masking", f"Input(T, {D}) floats -> Masking(0.0) -> LSTM(4, seq) -> GRU(3) -> Dense(2)", _masking, 20),
    ModelSpec("states", "inputs ids, h0, c0 -> Embedding(20,4,mask_zero) -> LSTM(3, seq, return_state, "
              "initial_state=[h0, c0]): a streaming step", _states, 21),
    ModelSpec("mask_input", f"inputs x (T, {D}), mask (T,) bool, h0 -> GRU(4, seq, mask=mask, initial_state=h0) "
              "-> Dense(2)", _mask_input, 22),
]


def select(substring: str | None = None) -> list[ModelSpec]:
    """The catalogue's models whose name contains ``substring`` (any of a comma-separated list)."""
    if not substring:
        return list(MODELS)
    parts = [p for p in substring.split(",") if p]
    return [m for m in MODELS if any(p in m.name for p in parts)]
