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

Backward pass: ``sigmoid_uwv_gradients`` is backpropagation through time
written out from the equations for the squared loss
L = 1/2 sum_t ||y_t - target_t||^2 (a sum over steps and outputs, not a mean);
``rnn_ref_uwv_gradients`` gets the same numbers from ``rnn_ref.vjp`` and
``keras_uwv_gradients`` from ``tf.GradientTape`` on the Keras model
(tests/test_worked_examples.py compares the three).

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


def sigmoid_uwv_gradients(x, U, W, V, targets):
    """Backpropagation through time by hand: (dU, dW, dV, dx) of the squared loss.

    Shapes: x (T, D), U (H, D), W (H, H), V (K, H), targets (T, K). Returns
    dU (H, D), dW (H, H), dV (K, H), each shaped like its weight in the
    textbook layout, and dx (T, D).

    Loss: L = 1/2 * sum_t sum_k (y_t[k] - target_t[k])^2, summed over the T
    steps and K outputs. Keras's ``loss="mse"`` is the mean over both (and
    over the batch): for one sequence L_mse = 2 L / (T K), so its gradients
    are these times 2 / (T K).

    The forward pass keeps every s_t (s_0 = 0). Going back from t = T to 1,
    ``carried`` is dL/ds_t through the later steps (zero at t = T):

        dy_t    = y_t - target_t            (K,)    dL/dy_t
        dV     += outer(dy_t, s_t)          (K, H)  y_t = V s_t
        ds_t    = V.T dy_t + carried        (H,)    s_t feeds y_t and s_{t+1}
        dz_t    = ds_t * s_t * (1 - s_t)    (H,)    sigmoid'(z_t) = s_t (1 - s_t), z_t = U x_t + W s_{t-1}
        dU     += outer(dz_t, x_t)          (H, D)
        dW     += outer(dz_t, s_{t-1})      (H, H)
        dx_t    = U.T dz_t                  (D,)
        carried = W.T dz_t                  (H,)    dL/ds_{t-1} through step t

    The derivative of the sigmoid is written with its output s_t, which the
    forward pass kept; z_t itself is not needed.
    """
    s, y = sigmoid_uwv(x, U, W, V)  # (T, H), (T, K)
    T, H = s.shape
    s_prev = np.concatenate([np.zeros((1, H), dtype=s.dtype), s[:-1]])  # row t holds s_{t-1}, (T, H)
    dU, dW, dV, dx = np.zeros_like(U), np.zeros_like(W), np.zeros_like(V), np.zeros_like(x)
    carried = np.zeros(H, dtype=s.dtype)  # (H,) nothing comes back from after the last step
    for t in reversed(range(T)):
        dy = y[t] - targets[t]  # (K,)
        dV += np.outer(dy, s[t])  # (K, H)
        ds = V.T @ dy + carried  # (H,)
        dz = ds * s[t] * (1 - s[t])  # (H,)
        dU += np.outer(dz, x[t])  # (H, D)
        dW += np.outer(dz, s_prev[t])  # (H, H)
        dx[t] = U.T @ dz  # (D,)
        carried = W.T @ dz  # (H,) to step t - 1
    return dU, dW, dV, dx


def rnn_ref_uwv_gradients(x, U, W, V, targets):
    """The same (dU, dW, dV, dx) with ``rnn_ref.vjp``, layer by layer.

    vjp gives Keras-layout gradients (kernel (D, H), recurrent_kernel (H, H),
    Dense kernel (H, K)); transposing them gives the textbook dU, dW, dV.
    """
    s, rnn_backward = rnn_ref.vjp(rnn_ref.simple_rnn, x, U.T, W.T, None, activation="sigmoid",
                                  return_sequences=True)  # s (T, H)
    y, dense_backward = rnn_ref.vjp(rnn_ref.dense, s, V.T)  # y (T, K)
    dense_grads = dense_backward(y - targets)  # dL/dy (T, K) in; .inputs = dL/ds (T, H)
    rnn_grads = rnn_backward(dense_grads.inputs)  # .inputs = dL/dx (T, D)
    return rnn_grads.kernel.T, rnn_grads.recurrent_kernel.T, dense_grads.kernel.T, rnn_grads.inputs


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


def keras_uwv_gradients(model, x, U, W, V, targets):
    """``tf.GradientTape`` on the Keras model: (dU, dW, dV, dx) of the same loss, textbook layout."""
    import tensorflow as tf

    model.set_weights([U.T, W.T, V.T])
    inputs = tf.constant(x[None])  # (1, T, D): Keras takes batches
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        _, readouts = model(inputs)  # (1, T, K)
        loss = 0.5 * tf.reduce_sum((readouts - targets[None]) ** 2)
    d_inputs, kernel, recurrent_kernel, dense_kernel = (
        np.asarray(g) for g in tape.gradient(loss, [inputs, *model.trainable_variables]))
    return kernel.T, recurrent_kernel.T, dense_kernel.T, d_inputs[0]


def main():
    rng = np.random.default_rng(2)
    T, D, H, K = 15, 5, 3, 2
    x = rng.standard_normal((T, D)).astype(np.float32)
    U, W, V = random_weights(rng, D, H, K, np.float32)

    s, y = sigmoid_uwv(x, U, W, V)
    model = build_keras(D, H, K)
    ks, ky = keras_uwv(model, x, U, W, V)
    rs, ry = rnn_ref_uwv(x, U, W, V)
    print(f"sigmoid U/W/V RNN, x (T, D) = {x.shape}, U {U.shape}, W {W.shape}, V {V.shape}, float32")
    print(f"  vs Keras SimpleRNN(sigmoid, no bias) + Dense(no bias): "
          f"states {np.max(np.abs(s - ks)):.2e}, readouts {np.max(np.abs(y - ky)):.2e}")
    print(f"  vs rnn_ref.simple_rnn + rnn_ref.dense:                "
          f"states {np.max(np.abs(s - rs)):.2e}, readouts {np.max(np.abs(y - ry)):.2e}")

    targets = rng.standard_normal((T, K)).astype(np.float32)
    grads = sigmoid_uwv_gradients(x, U, W, V, targets)
    loss = 0.5 * np.sum((y - targets) ** 2)
    print(f"backward pass, L = 1/2 sum_t ||y_t - target_t||^2 = {loss:.4f}: max |hand-written - other|")
    for name, other in [("Keras GradientTape", keras_uwv_gradients(model, x, U, W, V, targets)),
                        ("rnn_ref.vjp", rnn_ref_uwv_gradients(x, U, W, V, targets))]:
        diffs = ", ".join(f"{n} {np.max(np.abs(g - o)):.2e}" for n, g, o in zip(["dU", "dW", "dV", "dx"], grads, other))
        print(f"  vs {name + ':':20s}{diffs}")
    print(f"  (largest gradient entry {max(np.max(np.abs(g)) for g in grads):.2f})")


if __name__ == "__main__":
    main()
