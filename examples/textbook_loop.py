"""The textbook per-sample loop, and how its weights map onto Keras ``SimpleRNN``.

One sequence x (T, D), U units, weights in the textbook layout that
multiplies a column vector from the left:

    W      (U, D)    input weights
    U_rec  (U, U)    recurrent weights
    b      (U,)      bias

    h_0 = 0
    h_t = tanh(W @ x_t + U_rec @ h_{t-1} + b)      for t = 1 .. T

Keras stores the same weights for a row vector multiplied from the right,
``h_t = tanh(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)``. Since
``W @ x_t == x_t @ W.T`` and ``U_rec @ h == h @ U_rec.T``, the loop is

    keras.layers.SimpleRNN(U, return_sequences=True)   # activation="tanh", use_bias=True
    kernel           = W.T       (D, U)
    recurrent_kernel = U_rec.T   (U, U)
    bias             = b         (U,)

on the batch of one x[None] (1, T, D), and equally

    rnn_ref.simple_rnn(x, kernel=W.T, recurrent_kernel=U_rec.T, bias=b, return_sequences=True)

The last row h_T is what ``SimpleRNN(U)`` returns without return_sequences.

The classic mistake is to copy W itself into the kernel. When D != U the
shapes disagree and it fails loudly (Keras's ``set_weights`` and
``rnn_ref.simple_rnn`` both refuse a (U, D) kernel). When D == U, and always
for the square U_rec, nothing complains: the layer runs with the transposed
matrix and gives different numbers. A check only catches that with
asymmetric weights, and with weights that keep tanh out of saturation: with
all-positive weights such as ``np.random.random`` draws and 64 units, every
output is 1 to within 1e-6 whichever way round the matrices are used. So the
weights below are zero-mean, the input weights are scaled by 1/sqrt(D) and
U_rec has spectral radius 0.9.

Run: ``python examples/textbook_loop.py``
"""

from __future__ import annotations

import os

import numpy as np

import rnn_ref


def textbook_loop(x, W, U_rec, b, activation=np.tanh):
    """h_t = activation(W @ x_t + U_rec @ h_{t-1} + b) over x (T, D) -> (T, U)."""
    h = np.zeros(U_rec.shape[0], dtype=x.dtype)  # h_0 = 0
    outputs = []
    for x_t in x:  # x_t (D,)
        h = activation(W @ x_t + U_rec @ h + b)  # (U,)
        outputs.append(h)
    return np.stack(outputs)  # (T, U)


def random_weights(rng, input_dim, units, dtype=np.float64):
    """Zero-mean W (U, D), U_rec (U, U) with spectral radius 0.9, non-zero b (U,)."""
    W = rng.standard_normal((units, input_dim)) / np.sqrt(input_dim)
    U_rec = rng.standard_normal((units, units))
    U_rec *= 0.9 / np.max(np.abs(np.linalg.eigvals(U_rec)))
    b = 0.5 * rng.standard_normal(units)
    return W.astype(dtype), U_rec.astype(dtype), b.astype(dtype)


def rnn_ref_loop(x, W, U_rec, b):
    """The loop as ``rnn_ref.simple_rnn``: the textbook matrices, transposed."""
    return rnn_ref.simple_rnn(x, kernel=W.T, recurrent_kernel=U_rec.T, bias=b, return_sequences=True)


def build_keras(input_dim, units, dtype="float32"):
    """``SimpleRNN(units, return_sequences=True)`` on inputs (B, T, input_dim)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras  # imported here so that the NumPy functions load without TensorFlow

    inputs = keras.Input(shape=(None, int(input_dim)), dtype=dtype)  # any B, any T
    layer = keras.layers.SimpleRNN(int(units), return_sequences=True, dtype=dtype)
    return keras.Model(inputs, layer(inputs))


def keras_loop(model, x, W, U_rec, b):
    """Copy the textbook weights into the Keras layer (transposed) and run one sequence."""
    model.set_weights([W.T, U_rec.T, b])  # kernel (D, U), recurrent_kernel (U, U), bias (U,)
    return np.asarray(model(x[None]))[0]  # (T, U)


def main():
    rng = np.random.default_rng(1)
    T, D, U = 20, 6, 4
    x = rng.standard_normal((T, D)).astype(np.float32)
    W, U_rec, b = random_weights(rng, D, U, np.float32)

    ours = textbook_loop(x, W, U_rec, b)
    print(f"textbook loop, x (T, D) = {x.shape}, W {W.shape}, U_rec {U_rec.shape}, b {b.shape}, float32")
    print(f"  max |loop - Keras SimpleRNN({U}), kernel=W.T| = "
          f"{np.max(np.abs(ours - keras_loop(build_keras(D, U), x, W, U_rec, b))):.2e}")
    print(f"  max |loop - rnn_ref.simple_rnn(kernel=W.T)| = "
          f"{np.max(np.abs(ours - rnn_ref_loop(x, W, U_rec, b))):.2e}")

    # The classic mistake: W itself as the kernel. With D != U it is refused ...
    try:
        rnn_ref.simple_rnn(x, kernel=W, recurrent_kernel=U_rec.T, bias=b)
    except ValueError as err:
        print(f"  kernel=W instead of W.T: ValueError: {err}")
    # ... but the square recurrent matrix is accepted either way round.
    wrong = rnn_ref.simple_rnn(x, kernel=W.T, recurrent_kernel=U_rec, bias=b, return_sequences=True)
    print(f"  recurrent_kernel=U_rec instead of U_rec.T runs, max |difference| = "
          f"{np.max(np.abs(ours - wrong)):.2e}")


if __name__ == "__main__":
    main()
