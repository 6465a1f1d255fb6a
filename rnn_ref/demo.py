"""Demo: a Keras sentiment-style model and its NumPy rebuild, side by side.

Builds ``Embedding(5000, 32) -> SimpleRNN(100) -> Dense(1, "sigmoid")`` in
Keras (kernels from Keras's initializers, biases set to random non-zero
values), rebuilds it with ``rnn_ref.from_keras``, runs both on a batch of
left-padded token sequences and prints the two outputs, their differences
and the time each took.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

VOCAB, EMBED, UNITS = 5000, 32, 100


def build_keras_model(steps: int, mask_zero: bool, seed: int):
    """The Keras model, with seeded kernels and random normal biases (std 0.5)."""
    from ._tf import keras_and_tf  # noqa: PLC0415

    keras, _ = keras_and_tf()

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
    rng = np.random.default_rng(seed)
    for layer in model.layers[1:]:  # SimpleRNN and Dense: keep the kernels, replace the bias
        *kernels, bias = layer.get_weights()
        layer.set_weights([*kernels, (0.5 * rng.standard_normal(bias.shape)).astype(bias.dtype)])
    return model


def padded_tokens(batch: int, steps: int, seed: int):
    """Token ids (B, T) in [1, VOCAB), left-padded with zeros to random lengths; and the lengths (B,)."""
    rng = np.random.default_rng(seed + 1)
    ids = rng.integers(1, VOCAB, size=(batch, steps), dtype=np.int32)  # (B, T)
    lengths = rng.integers(1, steps + 1, size=batch)  # (B,) real tokens per row
    for b, n in enumerate(lengths):
        ids[b, : steps - n] = 0
    return ids, lengths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="rnn_ref demo",
        description="Compare a Keras Embedding -> SimpleRNN -> Dense model with its NumPy rebuild.",
    )
    parser.add_argument("--batch", type=int, default=8, help="sequences in the batch (default 8)")
    parser.add_argument("--steps", type=int, default=250, help="time steps per sequence (default 250)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and tokens (default 0)")
    parser.add_argument(
        "--mask-zero", action="store_true",
        help="Embedding(mask_zero=True): the RNN skips the padding (default: padding is read as token 0)",
    )
    args = parser.parse_args(argv)
    if args.batch < 1 or args.steps < 1:
        parser.error("--batch and --steps must be at least 1")

    from .keras_graph import from_keras  # noqa: PLC0415

    model = build_keras_model(args.steps, args.mask_zero, args.seed)
    ids, lengths = padded_tokens(args.batch, args.steps, args.seed)

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
    print(
        f"\nbatch B={args.batch}, steps T={args.steps}, seed {args.seed}, "
        f"mask_zero={args.mask_zero}, left padding, dtype {numpy_out.dtype}\n"
    )
    print(f"{'row':>3}  {'tokens':>6}  {'padding':>7}  {'keras':>10}  {'numpy':>10}  {'|diff|':>9}")
    for b in range(args.batch):
        print(
            f"{b:>3}  {lengths[b]:>6}  {args.steps - lengths[b]:>7}  {keras_out[b, 0]:>10.7f}  "
            f"{numpy_out[b, 0]:>10.7f}  {abs_diff[b, 0]:>9.2e}"
        )
    print(f"\nmax abs difference: {abs_diff.max():.2e}")
    print(f"max rel difference: {rel_diff.max():.2e}")
    print(
        f"\ntime: keras predict {t_keras * 1e3:.1f} ms (first call, with tracing: {t_keras_first * 1e3:.1f} ms), "
        f"numpy {t_numpy * 1e3:.1f} ms, from_keras {t_convert * 1e3:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
