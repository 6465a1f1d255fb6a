"""Keras 3 activations in NumPy, looked up by the names Keras accepts.

Each function maps an array to an array of the same shape and dtype. The
formulas are the Keras 3 ones (``keras/src/activations/activations.py``);
where Keras 2 differed it is said next to the function, because converters
still ship the old formulas.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

Activation = Callable[[np.ndarray], np.ndarray]


def as_dtype_of(x: np.ndarray, y) -> np.ndarray:
    """Return ``y`` as an array with the dtype of ``x``."""
    return np.asarray(y, dtype=x.dtype)


def linear(x):
    return x


def tanh(x):
    return np.tanh(x)


def sigmoid(x):
    # 1 / (1 + exp(-x)) without overflow warnings for large negative x.
    with np.errstate(over="ignore"):
        return as_dtype_of(x, 1.0 / (1.0 + np.exp(-x)))


def relu(x):
    return np.maximum(x, as_dtype_of(x, 0))


def relu6(x):
    return np.clip(x, as_dtype_of(x, 0), as_dtype_of(x, 6))


def elu(x, alpha=1.0):
    with np.errstate(over="ignore"):
        return as_dtype_of(x, np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))))


def selu(x):
    alpha, scale = 1.6732632423543772, 1.0507009873554805
    return as_dtype_of(x, scale * elu(x, alpha))


def celu(x, alpha=1.0):
    return as_dtype_of(x, np.maximum(x, 0) + np.minimum(0, alpha * np.expm1(np.minimum(x, 0) / alpha)))


def softplus(x):
    return as_dtype_of(x, np.logaddexp(as_dtype_of(x, 0), x))


def softsign(x):
    return as_dtype_of(x, x / (1 + np.abs(x)))


def silu(x):
    return as_dtype_of(x, x * sigmoid(x))


def exponential(x):
    with np.errstate(over="ignore"):
        return np.exp(x)


def hard_sigmoid(x):
    # Keras 3: clip(x / 6 + 1/2, 0, 1). Keras 2 used clip(0.2 x + 0.5, 0, 1).
    return as_dtype_of(x, np.clip(x / 6 + 0.5, 0, 1))


def sparse_sigmoid(x):
    return as_dtype_of(x, np.clip(0.5 * (x + 1), 0, 1))


def hard_silu(x):
    return as_dtype_of(x, x * hard_sigmoid(x))


def hard_tanh(x):
    return as_dtype_of(x, np.clip(x, -1, 1))


def leaky_relu(x, negative_slope=0.2):
    # Keras 3 default slope 0.2 (Keras 2: 0.3).
    return as_dtype_of(x, np.where(x >= 0, x, negative_slope * x))


def log_sigmoid(x):
    return as_dtype_of(x, -np.logaddexp(as_dtype_of(x, 0), -x))


def mish(x):
    return as_dtype_of(x, x * np.tanh(softplus(x)))


def tanh_shrink(x):
    return as_dtype_of(x, x - np.tanh(x))


def soft_shrink(x, threshold=0.5):
    return as_dtype_of(x, np.where(x > threshold, x - threshold, np.where(x < -threshold, x + threshold, 0)))


def hard_shrink(x, threshold=0.5):
    return as_dtype_of(x, np.where(np.abs(x) > threshold, x, 0))


def squareplus(x, b=4.0):
    return as_dtype_of(x, (x + np.sqrt(np.square(x) + b)) / 2)


def sparse_plus(x):
    return as_dtype_of(x, np.where(x <= -1, 0, np.where(x >= 1, x, np.square(x + 1) / 4)))


#: The complementary error function, elementwise (NumPy has none).
erfc = np.frompyfunc(math.erfc, 1, 1)


def gelu(x):
    # Keras's default is the exact form (approximate=False):
    # x * Phi(x) = 0.5 x erfc(-x / sqrt(2)); erfc keeps full relative accuracy in
    # the negative tail, where 1 + erf(.) would cancel. NumPy has no erfc, so it
    # is evaluated elementwise in float64 by the standard library.
    x64 = np.asarray(x, dtype=np.float64)
    return as_dtype_of(x, 0.5 * x64 * erfc(-x64 / math.sqrt(2.0)).astype(np.float64))


def softmax(x):
    # Over the last axis, as Keras does by default, shifted by the row maximum:
    # exp(x - max) / sum(exp(x - max)) in IEEE arithmetic. A row holding +inf or
    # NaN (or only -inf) has a NaN shifted value (inf - inf), and the sum carries
    # it to every unit of the row: all NaN. That is TensorFlow's result in float64
    # and, in float32, with TF_ENABLE_ONEDNN_OPTS=0; oneDNN's float32 kernel gives
    # NaN only in those units and 0 in the others (``softmax_onednn``; docs/errors.md).
    with np.errstate(invalid="ignore"):
        z = x - np.max(x, axis=-1, keepdims=True)
        e = np.exp(z)
        out = e / np.sum(e, axis=-1, keepdims=True)
    return as_dtype_of(x, out)


def softmax_onednn(x):
    # TensorFlow's float32 softmax with oneDNN (TF_ENABLE_ONEDNN_OPTS=1, the default on
    # CPUs with AVX-512): in a row where a shifted value is NaN (a +inf or NaN unit, or a
    # row of -inf), NaN in those units and 0 in the others; elsewhere the formula.
    # Measured on TF 2.21: [inf, 1, 2] -> [nan, 0, 0], [inf, inf, 0] -> [nan, nan, 0].
    with np.errstate(invalid="ignore"):
        z = x - np.max(np.where(np.isnan(x), -np.inf, x), axis=-1, keepdims=True)
        broken = np.isnan(z)
        out = softmax(np.where(broken.any(axis=-1, keepdims=True), 0.0, x))
        out = np.where(broken.any(axis=-1, keepdims=True), np.where(broken, np.nan, 0.0), out)
    return as_dtype_of(x, out)


def log_softmax(x):
    z = x - np.max(x, axis=-1, keepdims=True)
    return as_dtype_of(x, z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True)))


ACTIVATIONS: dict[str, Activation] = {
    "linear": linear,
    "tanh": tanh,
    "sigmoid": sigmoid,
    "relu": relu,
    "relu6": relu6,
    "elu": elu,
    "selu": selu,
    "celu": celu,
    "softplus": softplus,
    "softsign": softsign,
    "silu": silu,
    "swish": silu,
    "exponential": exponential,
    "hard_sigmoid": hard_sigmoid,
    "sparse_sigmoid": sparse_sigmoid,
    "hard_silu": hard_silu,
    "hard_swish": hard_silu,
    "hard_tanh": hard_tanh,
    "leaky_relu": leaky_relu,
    "log_sigmoid": log_sigmoid,
    "mish": mish,
    "tanh_shrink": tanh_shrink,
    "soft_shrink": soft_shrink,
    "hard_shrink": hard_shrink,
    "squareplus": squareplus,
    "sparse_plus": sparse_plus,
    "gelu": gelu,
    "softmax": softmax,
    "log_softmax": log_softmax,
}

#: Activations whose output is bounded, so a recurrence through them cannot overflow.
BOUNDED = ("tanh", "sigmoid", "hard_sigmoid", "sparse_sigmoid", "softsign", "hard_tanh", "relu6")

#: Activations that act on each element alone (softmax and log_softmax mix
#: the units of one step).
ELEMENTWISE = tuple(n for n in ACTIVATIONS if n not in ("softmax", "log_softmax"))


def is_elementwise(activation) -> bool:
    """Whether ``activation`` (a name, None or a callable) is known to act on each element alone,
    so that gate blocks side by side may go through it in one call: the names in ``ELEMENTWISE``
    and None; softmax, log_softmax and a user's function are not."""
    return activation is None or (isinstance(activation, str) and activation in ELEMENTWISE)


def get(activation) -> Activation:
    """Return the NumPy function for a Keras activation name, None or callable."""
    if activation is None:
        return linear
    if callable(activation):
        return activation
    if isinstance(activation, str):
        try:
            return ACTIVATIONS[activation]
        except KeyError:
            known = ", ".join(sorted(ACTIVATIONS))
            why = (
                " (it needs arguments or changes the shape, so it is not supported by name)"
                if activation in ("glu", "threshold", "sparsemax")
                else ""
            )
            raise ValueError(
                f"activation must be a Keras activation name or a callable, got {activation!r}{why}; "
                f"known names: {known}"
            ) from None
    raise TypeError(
        f"activation must be a Keras activation name, None or a callable, got {type(activation).__name__}"
    )
