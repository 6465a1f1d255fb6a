"""The textbook softmax RNN trained by hand with Adagrad and gradient clipping, as Keras trains it.

The class of examples/softmax_rnn_class.py (D inputs, H hidden units, K classes):

    h_t = tanh(U x_t + W h_{t-1} + b)        o_t = softmax(V h_t + c)

one training step on a batch x (B, T, D) with labels y (B, T), min-char-rnn style, but
Keras-faithful (``SimpleRNN(H, return_sequences=True) -> Dense(K, "softmax")``, loss
``sparse_categorical_crossentropy``, ``keras.optimizers.Adagrad(0.1, clipvalue=5.0)``):

* the loss is the MEAN of -log o_t[y_t] over the batch and the steps (min-char-rnn sums
  over the steps), so every gradient is divided by B T;
* each gradient element is clipped into [-5, 5] BEFORE it enters the accumulator;
* the accumulator starts at 0.1 (Keras's ``initial_accumulator_value``, made through a
  float32 constant: np.float32(0.1), also for float64 weights), not at 0;
* the update is p -= lr g / sqrt(acc + eps), eps = 1e-7 INSIDE the square root.

Checked against Keras's fit:

    python -m rnn_ref check --training examples/train_softmax_rnn_adagrad.py:step \\
        --optimizer adagrad --learning-rate 0.1 --clipvalue 5

Run: ``python examples/train_softmax_rnn_adagrad.py`` (trains on a toy sequence task).
"""

from __future__ import annotations

import numpy as np

LEARNING_RATE = 0.1
CLIPVALUE = 5.0
EPSILON = 1e-7
INITIAL_ACCUMULATOR = np.float32(0.1)


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def loss_and_gradients(params, x, y):
    """Mean cross-entropy over B T and its gradients, by backpropagation through time."""
    U, W, V, b, c = params["U"], params["W"], params["V"], params["b"], params["c"]
    x = np.asarray(x, dtype=U.dtype)
    B, T, _ = x.shape
    K = V.shape[0]
    h = [np.zeros((B, W.shape[0]), dtype=U.dtype)]  # h_0 = 0; then one (B, H) per step
    for t in range(T):
        h.append(np.tanh(x[:, t] @ U.T + h[-1] @ W.T + b))
    o = softmax(np.stack(h[1:]) @ V.T + c)  # (T, B, K)
    onehot = np.eye(K, dtype=U.dtype)[np.asarray(y).T]  # (T, B, K)
    loss = -np.mean(np.log(np.sum(o * onehot, axis=-1)))
    dz_out = (o - onehot) / (B * T)  # d loss / d logits: the mean over B T
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dh_next = np.zeros_like(h[0])
    for t in reversed(range(T)):
        grads["V"] += dz_out[t].T @ h[t + 1]
        grads["c"] += dz_out[t].sum(axis=0)
        dz = (dz_out[t] @ V + dh_next) * (1 - h[t + 1] ** 2)  # through tanh, (B, H)
        grads["U"] += dz.T @ x[:, t]
        grads["W"] += dz.T @ h[t]
        grads["b"] += dz.sum(axis=0)
        dh_next = dz @ W
    return loss, grads


def step(params, x, y, state):
    """One Adagrad step; ``state`` keeps the accumulators between steps. Returns new params."""
    _, grads = loss_and_gradients(params, x, y)
    if "accumulators" not in state:
        state["accumulators"] = {k: np.full_like(p, INITIAL_ACCUMULATOR) for k, p in params.items()}
    acc = state["accumulators"]
    new = {}
    for k, p in params.items():
        g = np.clip(grads[k], -CLIPVALUE, CLIPVALUE)  # clip first
        acc[k] = acc[k] + g * g
        new[k] = p - LEARNING_RATE * g / np.sqrt(acc[k] + EPSILON)  # eps inside the sqrt
    return new


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    D, H, K, B, T = 3, 8, 3, 4, 6
    params = {"U": rng.standard_normal((H, D)) / np.sqrt(D), "W": 0.5 * rng.standard_normal((H, H)) / np.sqrt(H),
              "V": rng.standard_normal((K, H)) / np.sqrt(H), "b": np.zeros(H), "c": np.zeros(K)}
    params = {k: v.astype(np.float32) for k, v in params.items()}
    state = {}
    for i in range(200):  # the task: the label at t is the index of the largest input at t - 1
        x = rng.standard_normal((B, T, D)).astype(np.float32)
        y = np.concatenate([np.zeros((B, 1), int), np.argmax(x[:, :-1], axis=-1)], axis=1)
        if i % 50 == 0:
            print(f"step {i:3d}  loss {loss_and_gradients(params, x, y)[0]:.4f}")
        params = step(params, x, y, state)
    print(f"step {i + 1:3d}  loss {loss_and_gradients(params, x, y)[0]:.4f}")
