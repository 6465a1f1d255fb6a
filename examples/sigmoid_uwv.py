"""A sigmoid RNN with U, W, V weights, as two Keras layers.

One sequence x (T, D), H hidden units, K outputs, textbook layout:

    U (H, D)   input -> hidden
    W (H, H)   hidden -> hidden
    V (K, H)   hidden -> output

    s_0 = 0
    s_t = sigmoid(U @ x_t + W @ s_{t-1})        hidden state, no bias
    y_t = V @ s_t                               readout, no bias, no activation

The hidden line is a Keras ``SimpleRNN`` with a sigmoid activation and no
bias, the readout a ``Dense`` layer without bias applied at every step:

    keras.layers.SimpleRNN(H, activation="sigmoid", use_bias=False, return_sequences=True)
        kernel = U.T (D, H), recurrent_kernel = W.T (H, H)
    keras.layers.Dense(K, use_bias=False)
        kernel = V.T (H, K)

and in NumPy ``rnn_ref.simple_rnn(x, U.T, W.T, None, activation="sigmoid",
return_sequences=True)`` followed by ``rnn_ref.dense(s, V.T)``. The
transposes are there because Keras multiplies row vectors from the right
(``x_t @ kernel``) where the textbook multiplies column vectors from the left.
``return_sequences=True`` keeps every s_t, so the Dense layer gives every
y_t; ``SimpleRNN`` without it would pass only s_T on.

A quirk of the answer this example follows: it does not feed x_t to U.
It treats x as T scalars, makes U of shape (H, T), and at step t feeds a
vector of length T that is zero except for entry t, which holds x[t]. So step
t sees only column t of U: a different input weight at every position, which
an RNN's shared weights are meant to avoid. (It is still a SimpleRNN, one with
D = T fed the rows of ``np.diag(x)``.) Here step t gets the ordinary input
x_t, with one U shared by all steps.

Run: ``python examples/sigmoid_uwv.py``
"""

from __future__ import annotations

import os

import numpy as np

import rnn_ref


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def sigmoid_uwv(x, U, W, V):
    """Hidden states s (T, H) and readouts y (T, K) for one sequence x (T, D)."""
    s = np.zeros(W.shape[0], dtype=x.dtype)  # s_0 = 0
    states, readouts = [], []
    for x_t in x:  # x_t (D,)
        s = sigmoid(U @ x_t + W @ s)  # (H,)
        states.append(s)
        readouts.append(V @ s)  # (K,)
    return np.stack(states), np.stack(readouts)


def random_weights(rng, input_dim, hidden, outputs, dtype=np.float64):
    """Zero-mean U (H, D), W (H, H) with spectral radius 0.9, V (K, H)."""
    U = rng.standard_normal((hidden, input_dim)) / np.sqrt(input_dim)
    W = rng.standard_normal((hidden, hidden))
    W *= 0.9 / np.max(np.abs(np.linalg.eigvals(W)))
    V = rng.standard_normal((outputs, hidden)) / np.sqrt(hidden)
    return U.astype(dtype), W.astype(dtype), V.astype(dtype)


def rnn_ref_uwv(x, U, W, V):
    """The same two layers with ``rnn_ref``: (s (T, H), y (T, K))."""
    s = rnn_ref.simple_rnn(x, U.T, W.T, None, activation="sigmoid", return_sequences=True)
    return s, rnn_ref.dense(s, V.T)


def build_keras(input_dim, hidden, outputs, dtype="float32"):
    """SimpleRNN(sigmoid, no bias) -> Dense(no bias), returning both (states, readouts)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras  # imported here so that the NumPy functions load without TensorFlow

    inputs = keras.Input(shape=(None, int(input_dim)), dtype=dtype)  # any B, any T
    states = keras.layers.SimpleRNN(
        int(hidden), activation="sigmoid", use_bias=False, return_sequences=True, dtype=dtype
    )(inputs)
    readouts = keras.layers.Dense(int(outputs), use_bias=False, dtype=dtype)(states)
    return keras.Model(inputs, [states, readouts])


def keras_uwv(model, x, U, W, V):
    """Copy U, W, V (transposed) into the Keras layers and run one sequence."""
    model.set_weights([U.T, W.T, V.T])  # SimpleRNN kernel, recurrent_kernel; Dense kernel
    states, readouts = model(x[None])
    return np.asarray(states)[0], np.asarray(readouts)[0]


def main():
    rng = np.random.default_rng(2)
    T, D, H, K = 15, 5, 3, 2
    x = rng.standard_normal((T, D)).astype(np.float32)
    U, W, V = random_weights(rng, D, H, K, np.float32)

    s, y = sigmoid_uwv(x, U, W, V)
    ks, ky = keras_uwv(build_keras(D, H, K), x, U, W, V)
    rs, ry = rnn_ref_uwv(x, U, W, V)
    print(f"sigmoid U/W/V RNN, x (T, D) = {x.shape}, U {U.shape}, W {W.shape}, V {V.shape}, float32")
    print(f"  vs Keras SimpleRNN(sigmoid, no bias) + Dense(no bias): "
          f"states {np.max(np.abs(s - ks)):.2e}, readouts {np.max(np.abs(y - ky)):.2e}")
    print(f"  vs rnn_ref.simple_rnn + rnn_ref.dense:                "
          f"states {np.max(np.abs(s - rs)):.2e}, readouts {np.max(np.abs(y - ry)):.2e}")


if __name__ == "__main__":
    main()
