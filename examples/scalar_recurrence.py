"""The scalar linear recurrence, and the one Keras layer it is equal to.

A batch of B scalar sequences x (B, T) and one number of state per sequence:

    s_0 = 0
    s_t = x_t * w_x + s_{t-1} * w_rec          for t = 1 .. T

Keras ``SimpleRNN`` computes, with kernel (D, U) and recurrent_kernel (U, U),

    h_t = activation(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)

With one input feature and one unit (D = U = 1), no activation and no bias,
both matrices are 1 x 1 and the two lines are the same. So the recurrence is

    keras.layers.SimpleRNN(1, activation=None, use_bias=False, return_sequences=True)
    kernel           = [[w_x]]      (D, U) = (1, 1)
    recurrent_kernel = [[w_rec]]    (U, U) = (1, 1)

applied to the inputs reshaped to (B, T, 1). ``return_sequences=True`` gives
every s_t; the last one, s_T, is what ``SimpleRNN(1, ...)`` returns by default.

What the recurrence lacks compared with a SimpleRNN layer in real use, say
``SimpleRNN(100)`` on inputs (B, 250, 32):

* an activation. The default is tanh, which keeps the state in (-1, 1);
  without it the state grows or shrinks geometrically with w_rec, and the
  outputs differ from tanh's as soon as the values are not tiny.
* a bias, added to every unit at every step.
* vectors. Here the input and the state are one number each. SimpleRNN(100)
  on 32 features has a kernel (32, 100) that mixes every input feature into
  every unit, and a recurrent kernel (100, 100) that mixes the units with each
  other: 32*100 + 100*100 + 100 = 13,300 weights against 2 here. Running the
  scalar recurrence once per feature, or once per unit, cannot produce those
  cross terms.

So it pictures "the state is carried from one step to the next"; it is not a
pseudo-code for ``SimpleRNN(100)``. ``textbook_loop.py`` is.

Run: ``python examples/scalar_recurrence.py``
"""

from __future__ import annotations

import os

import numpy as np

import rnn_ref


def scalar_states(x, w_x, w_rec):
    """All states s_1 .. s_T of the scalar recurrence, for each sequence.

    x : (B, T), one scalar per step. Returns (B, T); the last column is s_T.
    The arithmetic stays in x's dtype (float32 in, float32 out).
    """
    x = np.asarray(x)
    B, T = x.shape
    states = np.zeros((B, T), dtype=x.dtype)
    s = np.zeros(B, dtype=x.dtype)  # s_0 = 0 for every sequence
    for t in range(T):
        s = x[:, t] * w_x + s * w_rec
        states[:, t] = s
    return states


def rnn_ref_states(x, w_x, w_rec, activation=None):
    """The same with ``rnn_ref.simple_rnn``: one feature, one unit, no bias."""
    x = np.asarray(x)
    out = rnn_ref.simple_rnn(
        x[..., None],  # (B, T, 1)
        kernel=np.array([[w_x]], dtype=x.dtype),  # (1, 1)
        recurrent_kernel=np.array([[w_rec]], dtype=x.dtype),  # (1, 1)
        bias=None,
        activation=activation,
        return_sequences=True,
    )  # (B, T, 1)
    return out[..., 0]


def build_keras(activation=None, dtype="float32"):
    """``SimpleRNN(1, activation, use_bias=False, return_sequences=True)`` on (B, T, 1)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras  # imported here so that the NumPy functions load without TensorFlow

    inputs = keras.Input(shape=(None, 1), dtype=dtype)  # any B, any T
    layer = keras.layers.SimpleRNN(
        1, activation=activation, use_bias=False, return_sequences=True, dtype=dtype
    )
    return keras.Model(inputs, layer(inputs))


def keras_states(model, x, w_x, w_rec):
    """Copy w_x, w_rec into the Keras layer and run it on x (B, T) -> (B, T)."""
    x = np.asarray(x)
    model.set_weights([np.array([[w_x]], dtype=x.dtype), np.array([[w_rec]], dtype=x.dtype)])
    return np.asarray(model(x[..., None]))[..., 0]


def main():
    rng = np.random.default_rng(0)
    B, T = 4, 12
    x = rng.standard_normal((B, T)).astype(np.float32)
    w_x = np.float32(rng.uniform(0.5, 1.5))
    w_rec = np.float32(rng.uniform(-0.9, -0.3))  # |w_rec| < 1: the state stays bounded

    ours = scalar_states(x, w_x, w_rec)
    keras_out = keras_states(build_keras(activation=None), x, w_x, w_rec)
    print(f"scalar recurrence, x (B, T) = {x.shape}, w_x = {w_x:.4f}, w_rec = {w_rec:.4f}, float32")
    print(f"  max |loop - Keras SimpleRNN(1, activation=None, use_bias=False)| = "
          f"{np.max(np.abs(ours - keras_out)):.2e}")
    print(f"  max |loop - rnn_ref.simple_rnn(activation=None)|                = "
          f"{np.max(np.abs(ours - rnn_ref_states(x, w_x, w_rec))):.2e}")

    # The same weights in a SimpleRNN with its default tanh activation: not the same numbers.
    tanh_out = keras_states(build_keras(activation="tanh"), x, w_x, w_rec)
    print(f"  max |loop - Keras SimpleRNN(1, activation='tanh', use_bias=False)| = "
          f"{np.max(np.abs(ours - tanh_out)):.2e}   (the missing activation)")
    print("  SimpleRNN(100) on 32 features has 32*100 + 100*100 + 100 = 13300 weights;"
          " this recurrence has 2.")


if __name__ == "__main__":
    main()
