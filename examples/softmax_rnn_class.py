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


def rnn_ref_forward(rnn, xs):
    """The class's forward pass with ``rnn_ref``: (outputs (T, K), hidden states (T, H))."""
    h = rnn_ref.simple_rnn(xs, rnn.U.T, rnn.W.T, rnn.b, return_sequences=True)
    return rnn_ref.dense(h, rnn.V.T, rnn.c, activation="softmax"), h


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


def main():
    rng = np.random.default_rng(3)
    T, D, H, K = 12, 7, 5, 4
    rnn = SoftmaxRNN(D, H, K, rng=rng, dtype=np.float32)
    xs = rng.standard_normal((T, D)).astype(np.float32)

    o, h = rnn.forward(xs)
    ko, kh = keras_forward(build_keras(D, H, K), rnn, xs)
    ro, rh = rnn_ref_forward(rnn, xs)
    print(f"softmax RNN class, xs (T, D) = {xs.shape}, U {rnn.U.shape}, W {rnn.W.shape}, "
          f"V {rnn.V.shape}, float32")
    print(f"  vs Keras SimpleRNN({H}) + Dense({K}, softmax): "
          f"hidden {np.max(np.abs(h - kh)):.2e}, outputs {np.max(np.abs(o - ko)):.2e}")
    print(f"  vs rnn_ref.simple_rnn + rnn_ref.dense:      "
          f"hidden {np.max(np.abs(h - rh)):.2e}, outputs {np.max(np.abs(o - ro)):.2e}")


if __name__ == "__main__":
    main()
