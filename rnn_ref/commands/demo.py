"""Demo: Keras sentiment-style models and their NumPy rebuilds, side by side.

Two models, each built in Keras (kernels from Keras's initializers, biases
set to random non-zero values), rebuilt with ``rnn_ref.from_keras`` and run
on the same batch of left-padded token sequences:

* ``simple_rnn``: ``Embedding(5000, 32) -> SimpleRNN(100) -> Dense(1, "sigmoid")``;
* ``lstm_gru``: ``Embedding(5000, 32, mask_zero=True) ->
  Bidirectional(LSTM(64, return_sequences=True)) -> GRU(32) -> Dense(1, "sigmoid")``.

For each it prints the NumPy model, the two outputs row by row, their
differences and the time each side took.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

VOCAB, EMBED, UNITS = 5000, 32, 100
LSTM_UNITS, GRU_UNITS = 64, 32


def _keras():
    from rnn_ref._tf import keras_and_tf  # noqa: PLC0415

    keras, _ = keras_and_tf()
    return keras


def _random_biases(model, seed: int) -> None:
    """Replace every bias of ``model`` (those of a Bidirectional's two layers
    included) by random normal values (std 0.5): Keras initialises them to
    zero (an LSTM's forget gate to one), which would hide bias handling."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for var in layer.weights:
            if var.name.endswith("bias"):
                var.assign((0.5 * rng.standard_normal(tuple(var.shape))).astype(var.dtype))


def build_keras_model(steps: int, mask_zero: bool, seed: int):
    """``Embedding(5000, 32) -> SimpleRNN(100) -> Dense(1, "sigmoid")``, seeded
    kernels, random normal biases (std 0.5)."""
    keras = _keras()
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((steps,), dtype="int32"),
            keras.layers.Embedding(VOCAB, EMBED, mask_zero=mask_zero),
            keras.layers.SimpleRNN(UNITS),
            keras.layers.Dense(1, activation="sigmoid"),
        ],
        name="sentiment_rnn",
    )
    _random_biases(model, seed)
    return model


def build_lstm_gru_model(steps: int, seed: int):
    """``Embedding(5000, 32, mask_zero=True) -> Bidirectional(LSTM(64,
    return_sequences=True)) -> GRU(32) -> Dense(1, "sigmoid")``, seeded
    kernels, random normal biases (std 0.5)."""
    keras = _keras()
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((steps,), dtype="int32"),
            keras.layers.Embedding(VOCAB, EMBED, mask_zero=True),
            keras.layers.Bidirectional(keras.layers.LSTM(LSTM_UNITS, return_sequences=True)),
            keras.layers.GRU(GRU_UNITS),
            keras.layers.Dense(1, activation="sigmoid"),
        ],
        name="sentiment_lstm_gru",
    )
    _random_biases(model, seed)
    return model


#: The demo's models, in the order they run: name -> what it is.
MODELS = {
    "simple_rnn": "Embedding(5000, 32) -> SimpleRNN(100) -> Dense(1, sigmoid)",
    "lstm_gru": "Embedding(5000, 32, mask_zero=True) -> Bidirectional(LSTM(64, return_sequences=True)) "
                "-> GRU(32) -> Dense(1, sigmoid)",
}


def padded_tokens(batch: int, steps: int, seed: int):
    """Token ids (B, T) in [1, VOCAB), left-padded with zeros to random lengths; and the lengths (B,)."""
    rng = np.random.default_rng(seed + 1)
    ids = rng.integers(1, VOCAB, size=(batch, steps), dtype=np.int32)  # (B, T)
    lengths = rng.integers(1, steps + 1, size=batch)  # (B,) real tokens per row
    for b, n in enumerate(lengths):
        ids[b, : steps - n] = 0
    return ids, lengths


def side_by_side(model, ids, lengths, *, mask_zero: bool) -> dict:
    """Rebuild ``model`` with from_keras, run both on ``ids``, print the
    comparison; return the figures (max abs and rel difference, seconds)."""
    from rnn_ref.models.keras_graph import from_keras  # noqa: PLC0415

    batch, steps = ids.shape
    t0 = time.perf_counter()
    np_model = from_keras(model)
    t_convert = time.perf_counter() - t0

    t0 = time.perf_counter()
    keras_out = model.predict(ids, verbose=0)  # (B, 1); the first call also traces the graph
    t_keras_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    keras_out = model.predict(ids, verbose=0)
    t_keras = time.perf_counter() - t0

    t0 = time.perf_counter()
    numpy_out = np_model(ids)  # (B, 1)
    t_numpy = time.perf_counter() - t0

    abs_diff = np.abs(numpy_out.astype(np.float64) - keras_out.astype(np.float64))  # (B, 1)
    rel_diff = abs_diff / np.maximum(np.abs(keras_out.astype(np.float64)), np.finfo(np.float32).tiny)

    print(np_model)
    print(f"\nbatch B={batch}, steps T={steps}, mask_zero={mask_zero}, left padding, dtype {numpy_out.dtype}\n")
    print(f"{'row':>3}  {'tokens':>6}  {'padding':>7}  {'keras':>10}  {'numpy':>10}  {'|diff|':>9}")
    for b in range(batch):
        print(f"{b:>3}  {lengths[b]:>6}  {steps - lengths[b]:>7}  {keras_out[b, 0]:>10.7f}  "
              f"{numpy_out[b, 0]:>10.7f}  {abs_diff[b, 0]:>9.2e}")
    print(f"\nmax abs difference: {abs_diff.max():.2e}")
    print(f"max rel difference: {rel_diff.max():.2e}")
    print(f"\ntime: keras predict {t_keras * 1e3:.1f} ms (first call, with tracing: {t_keras_first * 1e3:.1f} ms), "
          f"numpy {t_numpy * 1e3:.1f} ms, from_keras {t_convert * 1e3:.1f} ms")
    return {"max_abs": float(abs_diff.max()), "max_rel": float(rel_diff.max()), "keras_s": t_keras,
            "numpy_s": t_numpy}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="rnn_ref demo",
        description="Compare Keras sentiment models (Embedding -> SimpleRNN -> Dense, and Embedding -> "
                    "Bidirectional(LSTM) -> GRU -> Dense) with their NumPy rebuilds.",
    )
    parser.add_argument("--batch", type=int, default=8, help="sequences in the batch (default 8)")
    parser.add_argument("--steps", type=int, default=250, help="time steps per sequence (default 250)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and tokens (default 0)")
    parser.add_argument(
        "--mask-zero", action="store_true",
        help="the SimpleRNN model's Embedding(mask_zero=True): the RNN skips the padding (default: padding is "
             "read as token 0); the LSTM/GRU model always masks",
    )
    parser.add_argument("--model", choices=("all", *MODELS), default="all",
                        help="which model to run (default all: simple_rnn, then lstm_gru)")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.steps < 1:
        parser.error("--batch and --steps must be at least 1")

    ids, lengths = padded_tokens(args.batch, args.steps, args.seed)
    names = list(MODELS) if args.model == "all" else [args.model]
    results = {}
    for i, name in enumerate(names):
        if i:
            print()
        print(f"== {name}: {MODELS[name]} (seed {args.seed}) ==\n")
        if name == "simple_rnn":
            model, mask_zero = build_keras_model(args.steps, args.mask_zero, args.seed), args.mask_zero
        else:
            model, mask_zero = build_lstm_gru_model(args.steps, args.seed), True
        results[name] = side_by_side(model, ids, lengths, mask_zero=mask_zero)
    if len(results) > 1:
        print("\n== summary ==")
        for name, r in results.items():
            print(f"{name:>10}: max abs difference {r['max_abs']:.2e}, max rel {r['max_rel']:.2e}; "
                  f"keras {r['keras_s'] * 1e3:.1f} ms, numpy {r['numpy_s'] * 1e3:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
