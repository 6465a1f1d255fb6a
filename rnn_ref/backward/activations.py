"""Backward pass of the Keras activations: vector-Jacobian products in NumPy.

The first building block of backpropagation through time: given the
pre-activation ``x``, the activation output ``y = act(x)`` (already computed
by the forward pass) and the gradient ``dy`` of a loss with respect to ``y``,
``activation_vjp`` returns the gradient ``dx`` with respect to ``x``.

Elementwise activations have a derivative ``f'(x)`` and ``dx = dy * f'(x)``;
the derivatives live in ``DERIVATIVES`` as ``f(x, y) -> dy/dx`` and use ``y``
where that is cheaper or more accurate (tanh: ``1 - y*y``). softmax and
log_softmax mix the units of the last axis, so they are given as
vector-Jacobian products in ``VJPS``.

Where the derivative is undefined (kinks, the ends of linear pieces) or where
a float overflows, each function returns what TensorFlow's gradient
(``tf.GradientTape`` on ``keras.activations.get(name)``, TF 2.21, Keras 3.15)
returns there, in float32 and float64 alike; the comment next to each says
which value that is. ``tests/test_activation_grads.py`` pins every one of
them. Away from those points the derivatives are the exact ones of the
formulas in ``rnn_ref.layers.activations`` (so float64 leaky_relu and gelu keep the
exact constants 0.2 and 1/sqrt(2), where TensorFlow rounds them to float32;
see ``KNOWN_KERAS_DEVIATIONS`` in ``rnn_ref.harness.context``).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from rnn_ref.layers import activations as act
from rnn_ref.layers.activations import as_dtype_of, erfc

#: f(x, y) -> dy/dx, elementwise, in the dtype of x.
Derivative = Callable[[np.ndarray, np.ndarray], np.ndarray]
#: f(y, dy) -> dx over the last axis, in the dtype of y.
RowVJP = Callable[[np.ndarray, np.ndarray], np.ndarray]

SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805
SHRINK_THRESHOLD = 0.5  # soft_shrink and hard_shrink defaults
LEAKY_SLOPE = 0.2  # leaky_relu default (Keras 3)
SQUAREPLUS_B = 4.0


def _step(mask, x) -> np.ndarray:
    """A boolean mask as 0/1 in the dtype of ``x``."""
    return as_dtype_of(x, mask)


def _sigmoid_of(x):
    with np.errstate(over="ignore"):
        return as_dtype_of(x, 1 / (1 + np.exp(-x)))


# --- smooth activations ------------------------------------------------------

def d_linear(x, y):
    return np.ones_like(x)


def d_tanh(x, y):
    return as_dtype_of(x, 1 - y * y)  # 0 once y rounds to +-1 (TF float32: |x| > 7.9), as TF's TanhGrad


def d_sigmoid(x, y):
    return as_dtype_of(x, y * (1 - y))  # 0 once y rounds to 1 (float32: x > 16.6), as TF's SigmoidGrad


def d_softplus(x, y):
    # sigmoid(x) = 1 - exp(-softplus(x)); expm1 keeps it accurate at both ends.
    return as_dtype_of(x, -np.expm1(-y))


def d_log_sigmoid(x, y):
    # sigmoid(-x) = 1 - exp(log_sigmoid(x)).
    return as_dtype_of(x, -np.expm1(y))


def d_softsign(x, y):
    # From x, not (1 - |y|)**2, which cancels for large |x|. (1 + |x|)**2
    # overflows for |x| > 1.8e19 (float32) / 1.3e154 (float64): 0, as TF.
    with np.errstate(over="ignore"):
        return as_dtype_of(x, 1 / np.square(1 + np.abs(x)))


def d_silu(x, y):
    s = _sigmoid_of(x)  # (y / x fails at 0)
    return as_dtype_of(x, s * (1 + x * (1 - s)))  # the formula of tf.nn.silu's own gradient


def d_exponential(x, y):
    return y  # inf where exp overflows (x > 88.72 in float32, 709.78 in float64), as TF: dx = dy * inf


def d_mish(x, y):
    t = np.tanh(act.softplus(x))
    return as_dtype_of(x, t + x * (1 - t * t) * _sigmoid_of(x))


def d_tanh_shrink(x, y):
    # 1 - (1 - tanh^2) = tanh^2, recomputed: tanh(x) = x - y would cancel near 0.
    return as_dtype_of(x, np.square(np.tanh(x)))


def d_squareplus(x, y):
    # (1 + x / sqrt(x^2 + b)) / 2, from x in the dtype of x like TF: where x^2
    # overflows (|x| > 1.8e19 float32, 1.3e154 float64) sqrt(...) is inf and the
    # derivative is 0.5, not 0 or 1. (y / sqrt(x^2 + b) would give inf/inf there.)
    with np.errstate(over="ignore"):
        s = np.sqrt(np.square(x) + as_dtype_of(x, SQUAREPLUS_B))
    return as_dtype_of(x, 0.5 * (1 + x / s))


def d_gelu(x, y):
    # Phi(x) + x phi(x), in float64 like the forward (erfc keeps Phi accurate in
    # the negative tail), then rounded to the dtype of x.
    x64 = np.asarray(x, dtype=np.float64)
    cdf = 0.5 * erfc(-x64 / math.sqrt(2.0)).astype(np.float64)
    pdf = np.exp(-0.5 * np.square(x64)) / math.sqrt(2.0 * math.pi)
    return as_dtype_of(x, cdf + x64 * pdf)


# --- exponential pieces: the branch chosen at 0 ------------------------------

def d_elu(x, y):
    # TF's EluGrad: y + 1 where y < 0, else 1 (so 1 at x = 0). From y, as TF:
    # in float32 y rounds to -1 for x < -17.3 and the derivative is 0.
    return as_dtype_of(x, np.where(y < 0, y + 1, 1))


def d_selu(x, y):
    # TF's SeluGrad: y + scale * alpha where TF's y < 0, else scale. TF computes
    # y = scale * alpha * (exp(x) - 1), and exp(x) rounds to 1 for
    # -eps/4 <= x <= 0 (-2^-25 in float32, -2^-54 in float64), where y = 0: so
    # the derivative is scale (1.0507) there, at 0 and at -1e-30 alike, and
    # scale * alpha (1.7581) only below -eps/4. (Our y, from expm1, is < 0 there.)
    negative = x < -np.finfo(x.dtype).eps / 4
    return as_dtype_of(x, np.where(negative, y + SELU_SCALE * SELU_ALPHA, SELU_SCALE))


def d_celu(x, y):
    # TF builds celu as max(x, 0) + expm1(min(x, 0)) and both max and min pass
    # the gradient to x on a tie, so at x = 0 the two pieces add: 1 + 1 = 2.
    # exp(x) from x (not y + 1) as TF: not 0 in float32 for x < -17.3.
    return as_dtype_of(x, _step(x >= 0, x) + _step(x <= 0, x) * np.exp(np.minimum(x, 0)))


# --- piecewise linear: which side owns the boundary ---------------------------

def d_relu(x, y):
    return _step(x > 0, x)  # 0 at x = 0


def d_relu6(x, y):
    return _step((x > 0) & (x < 6), x)  # 0 at x = 0 and at x = 6


def d_leaky_relu(x, y):
    return as_dtype_of(x, np.where(x > 0, 1, LEAKY_SLOPE))  # the slope at x = 0


def d_hard_sigmoid(x, y):
    # TF computes relu6(x + 3) / 6: 1/6 strictly inside, 0 at x = -3 and x = 3,
    # with the test on x + 3 rounded to the dtype (so 0 also at the float just
    # below 3, where x + 3 rounds up to 6).
    t = x + as_dtype_of(x, 3)
    return as_dtype_of(x, _step((t > 0) & (t < 6), x) / 6)


def d_hard_silu(x, y):
    # x * hard_sigmoid(x) by the product rule: 0 at x = -3, 1 at x = 3 (the
    # outer pieces), where the inner piece would give -1/2 and 3/2.
    return as_dtype_of(x, act.hard_sigmoid(x) + x * d_hard_sigmoid(x, y))


def d_sparse_sigmoid(x, y):
    return as_dtype_of(x, _step((x > -1) & (x < 1), x) / 2)  # 0 at x = -1 and x = 1


def d_hard_tanh(x, y):
    return _step((x >= -1) & (x <= 1), x)  # 1 at x = -1 and x = 1 (TF's clip_by_value gradient)


def d_soft_shrink(x, y):
    return _step(np.abs(x) > SHRINK_THRESHOLD, x)  # 0 at x = +-threshold


def d_hard_shrink(x, y):
    return _step(np.abs(x) > SHRINK_THRESHOLD, x)  # 0 at x = +-threshold (where hard_shrink jumps)


def d_sparse_plus(x, y):
    # 0 for x <= -1, (x + 1) / 2 inside, 1 for x >= 1: continuous, so the
    # boundaries (0 at -1, 1 at 1) agree with both sides.
    return as_dtype_of(x, np.where(x <= -1, 0, np.where(x < 1, (x + 1) / 2, 1)))


DERIVATIVES: dict[str, Derivative] = {
    "linear": d_linear,
    "tanh": d_tanh,
    "sigmoid": d_sigmoid,
    "relu": d_relu,
    "relu6": d_relu6,
    "elu": d_elu,
    "selu": d_selu,
    "celu": d_celu,
    "softplus": d_softplus,
    "softsign": d_softsign,
    "silu": d_silu,
    "swish": d_silu,
    "exponential": d_exponential,
    "hard_sigmoid": d_hard_sigmoid,
    "sparse_sigmoid": d_sparse_sigmoid,
    "hard_silu": d_hard_silu,
    "hard_swish": d_hard_silu,
    "hard_tanh": d_hard_tanh,
    "leaky_relu": d_leaky_relu,
    "log_sigmoid": d_log_sigmoid,
    "mish": d_mish,
    "tanh_shrink": d_tanh_shrink,
    "soft_shrink": d_soft_shrink,
    "hard_shrink": d_hard_shrink,
    "squareplus": d_squareplus,
    "sparse_plus": d_sparse_plus,
    "gelu": d_gelu,
}


# --- activations over the last axis ------------------------------------------

def softmax_vjp(y, dy):
    """dx = y * (dy - sum(dy * y)) over the last axis (TF's SoftmaxGrad)."""
    return as_dtype_of(y, y * (dy - np.sum(dy * y, axis=-1, keepdims=True)))


def log_softmax_vjp(y, dy):
    """dx = dy - exp(y) * sum(dy) over the last axis (TF's LogSoftmaxGrad)."""
    return as_dtype_of(y, dy - np.exp(y) * np.sum(dy, axis=-1, keepdims=True))


VJPS: dict[str, RowVJP] = {"softmax": softmax_vjp, "log_softmax": log_softmax_vjp}


def _name_of(activation) -> str:
    """The Keras name of an activation given as a name, None or one of our functions."""
    if activation is None:
        return "linear"
    if isinstance(activation, str):
        act.get(activation)  # raises the ValueError listing the known names
        return activation
    if callable(activation):
        for name, fn in act.ACTIVATIONS.items():
            if fn is activation:
                return name
        raise TypeError(
            f"gradients need an activation name (or a function of rnn_ref.layers.activations), "
            f"got the callable {getattr(activation, '__name__', activation)!r}, whose derivative is unknown"
        )
    raise TypeError(f"activation must be a Keras activation name or None, got {type(activation).__name__}")


#: Activations whose derivative (``DERIVATIVES``) reads the output y only, never the pre-activation
#: x: a backward pass that keeps y need not keep x, and passes y in its place.
FROM_OUTPUT = ("linear", "tanh", "sigmoid")


def from_output(activation) -> bool:
    """Whether the derivative of ``activation`` (a name, None or a function of
    ``rnn_ref.layers.activations``) reads its output only (``FROM_OUTPUT``); False for anything else."""
    try:
        return _name_of(activation) in FROM_OUTPUT
    except (TypeError, ValueError):
        return False


def activation_vjp(activation, x, y, dy) -> np.ndarray:
    """Gradient with respect to the pre-activation: dx = dy * d act(x) / dx.

    Parameters
    ----------
    activation : str or None
        A Keras activation name (any key of ``rnn_ref.layers.activations.ACTIVATIONS``,
        aliases included); None means linear. A function of
        ``rnn_ref.layers.activations`` is taken by its name; any other callable is a
        TypeError.
    x : ndarray (...)
        Pre-activation, floating point. softmax and log_softmax act on the last axis.
    y : ndarray (...)
        ``act(x)``, as the forward pass computed it.
    dy : ndarray (...)
        Gradient of the loss with respect to ``y``.

    Returns
    -------
    dx : ndarray (...), the dtype of ``x``.
    """
    name = _name_of(activation)
    x = np.asarray(x)
    if x.dtype.kind != "f":  # (np.issubdtype(x.dtype, np.floating), at a tenth of the cost)
        raise TypeError(f"x must be a floating-point array, got dtype {x.dtype}")
    y = np.asarray(y, dtype=x.dtype)
    dy = np.asarray(dy, dtype=x.dtype)
    if not x.shape == y.shape == dy.shape:
        raise ValueError(f"x.shape={x.shape}, y.shape={y.shape} and dy.shape={dy.shape} must be equal [{name}]")
    if name in VJPS:
        if x.ndim == 0:
            raise ValueError(f"{name} acts on the last axis, so x needs one; got x.shape=() ")
        return VJPS[name](y, dy)
    with np.errstate(over="ignore", invalid="ignore"):  # inf * 0 where exp overflows stays NaN, as TF
        return as_dtype_of(x, dy * DERIVATIVES[name](x, y))
