"""A small RNN class with a tanh hidden layer and a softmax output, as two Keras layers.

Parameters for D inputs, H hidden units, K outputs, textbook layout:

    U (H, D)   input -> hidden        b (H,)   hidden bias
    W (H, H)   hidden -> hidden       c (K,)   output bias
    V (K, H)   hidden -> output

One step, from the previous hidden state h_{t-1} (zeros before the first):

    h_t = tanh(b + W @ h_{t-1} + U @ x_t)
    o_t = softmax(c + V @ h_t)

The hidden line is Keras ``SimpleRNN`` with its defaults (tanh, with bias);
the output line is ``Dense`` with a softmax, applied at every step:

    keras.layers.SimpleRNN(H, return_sequences=True)
        kernel = U.T (D, H), recurrent_kernel = W.T (H, H), bias = b
    keras.layers.Dense(K, activation="softmax")
        kernel = V.T (H, K), bias = c

The transposes turn the textbook's column vectors multiplied from the left
into Keras's row vectors multiplied from the right; the biases are the same
vectors. ``return_sequences=True`` makes the Dense layer see every h_t, so
it returns every o_t, like the class's loop over the sequence. In NumPy the
same pair is ``rnn_ref.simple_rnn(x, U.T, W.T, b, return_sequences=True)``
then ``rnn_ref.dense(h, V.T, c, activation="softmax")``.

Backward pass: ``SoftmaxRNN.bptt`` is backpropagation through time written
out from the equations for the cross-entropy summed over the steps,
L = -sum_t log o_t[label_t]; ``rnn_ref_bptt`` gets the same numbers from
``rnn_ref.vjp`` and ``keras_bptt`` from ``tf.GradientTape`` on the Keras model
(tests/test_worked_examples.py compares the three). Keras's
``loss="sparse_categorical_crossentropy"`` is the mean over the steps, L / T.

Run: ``python examples/softmax_rnn_class.py``
"""

from __future__ import annotations

import os

import numpy as np

import rnn_ref


def softmax(z):
    """Softmax over the last axis; subtracting the maximum avoids overflow."""
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


class SoftmaxRNN:
    """h_t = tanh(b + W h_{t-1} + U x_t), o_t = softmax(c + V h_t)."""

    def __init__(self, input_size, hidden_size, output_size, rng=None, dtype=np.float64):
        rng = np.random.default_rng() if rng is None else rng
        D, H, K = input_size, hidden_size, output_size
        # Zero-mean weights scaled so that tanh is not saturated, and W with
        # spectral radius 0.9 so that the state does not blow up.
        W = rng.standard_normal((H, H))
        W *= 0.9 / np.max(np.abs(np.linalg.eigvals(W)))
        self.U = (rng.standard_normal((H, D)) / np.sqrt(D)).astype(dtype)
        self.W = W.astype(dtype)
        self.V = (rng.standard_normal((K, H)) / np.sqrt(H)).astype(dtype)
        self.b = (0.5 * rng.standard_normal(H)).astype(dtype)
        self.c = (0.5 * rng.standard_normal(K)).astype(dtype)

    def init_hidden(self):
        return np.zeros(self.W.shape[0], dtype=self.W.dtype)

    def step(self, x_t, h):
        """One time step: x_t (D,), h (H,) -> (o_t (K,), h_t (H,))."""
        h = np.tanh(self.b + self.W @ h + self.U @ x_t)
        o = softmax(self.c + self.V @ h)
        return o, h

    def forward(self, xs):
        """A whole sequence xs (T, D) -> (outputs (T, K), hidden states (T, H))."""
        h = self.init_hidden()
        outputs, hiddens = [], []
        for x_t in xs:
            o, h = self.step(x_t, h)
            outputs.append(o)
            hiddens.append(h)
        return np.stack(outputs), np.stack(hiddens)

    def loss(self, xs, labels):
        """L = -sum_t log o_t[label_t]: cross-entropy summed (not averaged) over the T steps."""
        outputs, _ = self.forward(xs)  # (T, K)
        return -np.sum(np.log(outputs[np.arange(len(labels)), labels]))

    def bptt(self, xs, labels):
        """Backpropagation through time by hand: (dU, dW, dV, db, dc) of ``loss(xs, labels)``.

        Shapes: xs (T, D), labels (T,) integers in [0, K). Returns dU (H, D),
        dW (H, H), dV (K, H), db (H,), dc (K,), each shaped like its parameter.
        The loss is the sum over steps; for Keras's mean (``loss=
        "sparse_categorical_crossentropy"`` on one sequence) divide each by T.

        Softmax and cross-entropy together have a simple gradient with respect
        to the logits a_t = c + V h_t: dL/da_t = o_t - onehot(label_t). Going
        back from t = T to 1, ``carried`` is dL/dh_t through the later steps
        (zero at t = T):

            da_t    = o_t - onehot(label_t)    (K,)
            dV     += outer(da_t, h_t)         (K, H)
            dc     += da_t                     (K,)
            dh_t    = V.T da_t + carried       (H,)    h_t feeds o_t and h_{t+1}
            dz_t    = dh_t * (1 - h_t^2)       (H,)    tanh'(z_t) = 1 - tanh(z_t)^2 = 1 - h_t^2
            db     += dz_t                     (H,)
            dU     += outer(dz_t, x_t)         (H, D)
            dW     += outer(dz_t, h_{t-1})     (H, H)  h_0 = 0
            carried = W.T dz_t                 (H,)    dL/dh_{t-1} through step t
        """
        outputs, hiddens = self.forward(xs)  # (T, K), (T, H)
        T, H = hiddens.shape
        h_prev = np.concatenate([self.init_hidden()[None], hiddens[:-1]])  # row t holds h_{t-1}, (T, H)
        dU, dW, dV = np.zeros_like(self.U), np.zeros_like(self.W), np.zeros_like(self.V)
        db, dc = np.zeros_like(self.b), np.zeros_like(self.c)
        carried = np.zeros(H, dtype=hiddens.dtype)  # (H,) nothing comes back from after the last step
        for t in reversed(range(T)):
            da = outputs[t].copy()  # (K,)
            da[labels[t]] -= 1  # o_t - onehot(label_t)
            dV += np.outer(da, hiddens[t])  # (K, H)
            dc += da  # (K,)
            dh = self.V.T @ da + carried  # (H,)
            dz = dh * (1 - hiddens[t] ** 2)  # (H,)
            db += dz  # (H,)
            dU += np.outer(dz, xs[t])  # (H, D)
            dW += np.outer(dz, h_prev[t])  # (H, H)
            carried = self.W.T @ dz  # (H,) to step t - 1
        return dU, dW, dV, db, dc


def rnn_ref_forward(rnn, xs):
    """The class's forward pass with ``rnn_ref``: (outputs (T, K), hidden states (T, H))."""
    h = rnn_ref.simple_rnn(xs, rnn.U.T, rnn.W.T, rnn.b, return_sequences=True)
    return rnn_ref.dense(h, rnn.V.T, rnn.c, activation="softmax"), h


def rnn_ref_bptt(rnn, xs, labels):
    """The same (dU, dW, dV, db, dc) with ``rnn_ref.vjp``, layer by layer.

    The Dense layer is differentiated without its softmax (it gives the
    logits), so that its cotangent is o_t - onehot(label_t) as in ``bptt``.
    vjp gives Keras-layout kernels; transposing them gives dU, dW, dV.
    """
    h, rnn_backward = rnn_ref.vjp(rnn_ref.simple_rnn, xs, rnn.U.T, rnn.W.T, rnn.b,
                                  return_sequences=True)  # h (T, H)
    logits, dense_backward = rnn_ref.vjp(rnn_ref.dense, h, rnn.V.T, rnn.c)  # (T, K)
    d_logits = softmax(logits)  # (T, K)
    d_logits[np.arange(len(labels)), labels] -= 1  # o - onehot(labels)
    dense_grads = dense_backward(d_logits)  # .inputs = dL/dh (T, H)
    rnn_grads = rnn_backward(dense_grads.inputs)
    return (rnn_grads.kernel.T, rnn_grads.recurrent_kernel.T, dense_grads.kernel.T, rnn_grads.bias,
            dense_grads.bias)


def build_keras(input_size, hidden_size, output_size, dtype="float32"):
    """SimpleRNN(tanh) -> Dense(softmax), returning both (outputs, hidden states)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras  # imported here so that the NumPy functions load without TensorFlow

    inputs = keras.Input(shape=(None, int(input_size)), dtype=dtype)  # any B, any T
    hidden = keras.layers.SimpleRNN(int(hidden_size), return_sequences=True, dtype=dtype)(inputs)
    outputs = keras.layers.Dense(int(output_size), activation="softmax", dtype=dtype)(hidden)
    return keras.Model(inputs, [outputs, hidden])


def keras_forward(model, rnn, xs):
    """Copy the class's weights (transposed) into the Keras layers and run one sequence."""
    model.set_weights([rnn.U.T, rnn.W.T, rnn.b, rnn.V.T, rnn.c])
    outputs, hidden = model(xs[None])
    return np.asarray(outputs)[0], np.asarray(hidden)[0]


def keras_bptt(model, rnn, xs, labels, mean=False):
    """``tf.GradientTape`` on the Keras model: (dU, dW, dV, db, dc), textbook layout.

    The loss is Keras's ``sparse_categorical_crossentropy`` of the softmax
    outputs, summed over the steps like ``SoftmaxRNN.loss``; with ``mean``,
    the ``SparseCategoricalCrossentropy`` loss that ``model.compile(loss=
    "sparse_categorical_crossentropy")`` uses, the mean over the steps. The
    loss object is given the weights' dtype: by default it computes in
    ``keras.backend.floatx()`` (float32), which would round a float64 model's
    outputs and gradients to float32 precision.
    """
    import keras
    import tensorflow as tf

    model.set_weights([rnn.U.T, rnn.W.T, rnn.b, rnn.V.T, rnn.c])
    with tf.GradientTape() as tape:
        outputs, _ = model(xs[None])  # (1, T, K)
        if mean:
            loss = keras.losses.SparseCategoricalCrossentropy(dtype=rnn.W.dtype.name)(labels[None], outputs)
        else:
            loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(labels[None], outputs))
    kernel, recurrent_kernel, bias, dense_kernel, dense_bias = (
        np.asarray(g) for g in tape.gradient(loss, model.trainable_variables))
    return kernel.T, recurrent_kernel.T, dense_kernel.T, bias, dense_bias


def main():
    rng = np.random.default_rng(3)
    T, D, H, K = 12, 7, 5, 4
    rnn = SoftmaxRNN(D, H, K, rng=rng, dtype=np.float32)
    xs = rng.standard_normal((T, D)).astype(np.float32)

    o, h = rnn.forward(xs)
    model = build_keras(D, H, K)
    ko, kh = keras_forward(model, rnn, xs)
    ro, rh = rnn_ref_forward(rnn, xs)
    print(f"softmax RNN class, xs (T, D) = {xs.shape}, U {rnn.U.shape}, W {rnn.W.shape}, "
          f"V {rnn.V.shape}, float32")
    print(f"  vs Keras SimpleRNN({H}) + Dense({K}, softmax): "
          f"hidden {np.max(np.abs(h - kh)):.2e}, outputs {np.max(np.abs(o - ko)):.2e}")
    print(f"  vs rnn_ref.simple_rnn + rnn_ref.dense:      "
          f"hidden {np.max(np.abs(h - rh)):.2e}, outputs {np.max(np.abs(o - ro)):.2e}")

    labels = rng.integers(0, K, T)  # (T,)
    grads = rnn.bptt(xs, labels)
    print(f"backward pass, L = -sum_t log o_t[label_t] = {rnn.loss(xs, labels):.4f}: "
          f"max |bptt - other|")
    for name, other in [("Keras GradientTape", keras_bptt(model, rnn, xs, labels)),
                        ("rnn_ref.vjp", rnn_ref_bptt(rnn, xs, labels))]:
        diffs = ", ".join(f"{n} {np.max(np.abs(g - o)):.2e}"
                          for n, g, o in zip(["dU", "dW", "dV", "db", "dc"], grads, other))
        print(f"  vs {name + ':':20s}{diffs}")
    print(f"  (largest gradient entry {max(np.max(np.abs(g)) for g in grads):.2f}; Keras's mean "
          f"loss L / T has these gradients / {T})")


if __name__ == "__main__":
    main()
