"""The tiny SimpleRNN case shared by the validation, Keras edge-case and loading tests.

One float32 layer (B=2, T=4, D=3, U=5; D != U, so a transposed kernel cannot
pass) with its inputs, a mask and an initial state, ``rnn(**overrides)`` to
call ``simple_rnn`` on it with some arguments replaced, and a small
embedding table.

Comparisons of these cases with Keras are judged with the harness's budget
(``tests/model_judging.judge_call`` and ``judge_model``).
"""

from __future__ import annotations

import numpy as np

from rnn_ref.harness.cases import orthogonal
from rnn_ref.layers.simple_rnn import simple_rnn

B, T, D, U = 2, 4, 3, 5  # D != U, so a transposed kernel cannot pass


def weights(seed=0, D=D, U=U):
    """Random asymmetric float32 weights with a non-zero bias, recurrent gain 0.9."""
    rng = np.random.default_rng(seed)
    kernel = rng.uniform(-1, 1, (D, U)) / np.sqrt(D)
    recurrent = orthogonal(rng, U, 0.9)
    bias = rng.uniform(0.1, 0.5, U) * rng.choice([-1, 1], U)
    return kernel.astype(np.float32), recurrent.astype(np.float32), bias.astype(np.float32)


KERNEL, RECURRENT, BIAS = weights()
X = np.random.default_rng(1).uniform(-1, 1, (B, T, D)).astype(np.float32)
MASK = np.array([[1, 1, 0, 1], [0, 1, 1, 0]], bool)
H0 = np.random.default_rng(2).normal(size=(B, U)).astype(np.float32)

TABLE = np.arange(15, dtype=np.float32).reshape(5, 3)  # (V=5, E=3)


def rnn(**overrides):
    """``simple_rnn`` on X with KERNEL, RECURRENT and BIAS, any argument replaced by ``overrides``."""
    kw = dict(inputs=X, kernel=KERNEL, recurrent_kernel=RECURRENT, bias=BIAS)
    kw.update(overrides)
    return simple_rnn(**kw)


def c64(a):
    """``a`` as a complex64 array."""
    return np.asarray(a).astype(np.complex64)
