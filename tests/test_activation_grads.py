"""rnn_ref.backward.activations against TensorFlow's gradients, activation by activation.

The oracle is ``tf.GradientTape`` on ``keras.activations.get(name)`` (TF
backend) with a random cotangent ``dy``; ``activation_vjp`` gets ``y`` from
``rnn_ref.layers.activations``, as the backward pass of the reference will.

Sample points: the kinks and ends of linear pieces (0, +-0.5, +-1, +-3, 6,
the float just below 3, selu's -eps/4), tiny and large |x| (1e-30, 20, 30,
89, 1000, 1e30: tanh/sigmoid saturation, exp overflow, x**2 overflow), and
random normal and uniform values, in float32 and float64.

Budget (``budget`` below), elementwise, with u = eps(dtype):

    K * (u * max(|dy|, |dx|)  +  |dy| * cancellation(x)  +  tiny)  [+ Keras deviation]

* ``u * max(|dy|, |dx|)``: every derivative here is a few operations on
  terms of size <= max(1, |f'|) (exponential: f' = y, so relative to dx);
  each rounding costs u of that. The forward ``y`` comes from NumPy, TF uses
  its own: the two kernels are within 4 ulp (tests/test_nonfinite.py), and y
  enters squared at most (tanh: 1 - y*y), 8 u. Two or three roundings on each
  side add ~4 u: 12 u worst case; K = 16 rounds up. Measured: <= 4.2 u
  (tanh, tanh_shrink), <= 3 u for the rest.
* ``cancellation``: silu (s * x * (1 - s)) and mish (x * sigmoid(x) * (1 - t*t))
  multiply x by a difference that cancels for large positive x; s and t are
  rounded (u), so the difference is off by up to u while it is larger than
  u, and by at most itself once it is smaller (both sides then round it to
  0): |x| * s * min(u, 1 - s) (mish: sigmoid(x) and 1 - t*t). Measured: up
  to 14.4 u (silu, float64, x = 30) and 30 u (mish, float32) of
  |dy|, which this term covers and the first one alone does not.
* ``tiny``: TensorFlow flushes subnormal results to zero (softmax of -100).
* softmax: dx_i = y_i (dy_i - sum_j y_j dy_j), so the scale is the sum of the
  magnitudes of those terms, y_i (|dy_i| + sum_j y_j |dy_j|); log_softmax:
  dx_i = dy_i - p_i sum_j dy_j, scale |dy_i| + p_i sum_j |dy_j|.
* Keras deviation: in float64 TensorFlow rounds leaky_relu's slope and gelu's
  1/sqrt(2) to float32 (tests/test_keras_quirks.py); rnn_ref keeps the exact
  constants, so |dy * (f'_exact - f'_keras)| is added, as
  rnn_ref.harness.context does for the forward pass.
  ``test_keras_float64_deviations_are_real_and_modelled`` shows it is needed.

Non-finite results (exp overflow) must be identical, NaN for NaN, inf for inf.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnn_ref.layers import activations
from rnn_ref.backward import activations as backward_activations
from rnn_ref.backward.activations import DERIVATIVES, VJPS, activation_vjp, from_output
from rnn_ref.layers.activations import ACTIVATIONS, ELEMENTWISE, erfc

DTYPES = (np.float32, np.float64)
NAMES = tuple(ACTIVATIONS)
K = 16  # rounding allowance, units of eps (see the module docstring)


# --- the oracle ---------------------------------------------------------------

@pytest.fixture(scope="module")
def tf():
    pytest.importorskip("keras")
    from rnn_ref._tf import keras_and_tf

    return keras_and_tf()[1]


def keras_vjp(tf, name, x, dy):
    """dx of keras.activations.get(name) at x for the cotangent dy, by tf.GradientTape."""
    import keras

    fn = keras.activations.get(name)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = fn(xt)
    return tape.gradient(y, xt, output_gradients=tf.constant(dy)).numpy()


# --- sample points ------------------------------------------------------------

def kink_points(dtype) -> np.ndarray:
    """Kinks, piece ends and large |x|, with both signs, in ``dtype``."""
    eps = np.finfo(dtype).eps
    below_3 = np.nextafter(dtype(3), dtype(0))  # x + 3 rounds up to 6
    selu_edge = dtype(-eps / 4)  # exp(x) rounds to 1 at and above it
    pos = np.array([0, 1e-30, 0.5, 1, 3, below_3, 6, 20, 30, 89, 1000, 1e30], dtype=dtype)
    return np.concatenate([pos, -pos, [selu_edge, np.nextafter(selu_edge, dtype(-1))]]).astype(dtype)


def sample(dtype, seed: int):
    """x (rows of 8, the last axis for softmax) and a random cotangent dy."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([kink_points(dtype), rng.normal(0, 3, 300), rng.uniform(-8, 8, 300)])
    x = x[: x.size // 8 * 8].astype(dtype).reshape(-1, 8)
    rng.shuffle(x.reshape(-1))  # kink points share rows with ordinary values (softmax)
    dy = rng.normal(size=x.shape).astype(dtype)
    return x, dy


# --- the tolerance table ------------------------------------------------------

def _sigmoid64(x):
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


def _cancellation(name, x, eps):
    """Error of a difference that cancels inside the derivative, times |x| (see docstring)."""
    x = x.astype(np.float64)
    s = _sigmoid64(x)
    if name in ("silu", "swish"):
        return np.abs(x) * s * np.minimum(eps, _sigmoid64(-x))
    if name == "mish":
        with np.errstate(over="ignore"):
            sech2 = 1 / np.square(np.cosh(activations.softplus(x)))  # 1 - tanh^2
        return np.abs(x) * s * np.minimum(eps, sech2)
    return np.zeros_like(x)


def _d_leaky_relu_keras64(x):
    return np.where(x > 0, 1.0, float(np.float32(0.2)))


def _d_gelu_keras64(x):
    c = float(np.float32(1 / math.sqrt(2)))  # d/dx of 0.5 x erfc(-c x)
    return 0.5 * erfc(-c * x).astype(np.float64) + x * c / math.sqrt(math.pi) * np.exp(-np.square(c * x))


#: (name, dtype) -> the derivative TensorFlow computes instead of the exact one.
KERAS_DERIVATIVE_DEVIATIONS = {
    ("leaky_relu", np.float64): _d_leaky_relu_keras64,
    ("gelu", np.float64): _d_gelu_keras64,
}


def budget(name, x, y, dy, want):
    """Elementwise allowance for |activation_vjp - TensorFlow| (module docstring)."""
    finfo = np.finfo(x.dtype)
    eps, tiny = float(finfo.eps), float(finfo.tiny)
    x64, y64, dy64 = (np.asarray(a, dtype=np.float64) for a in (x, y, dy))
    with np.errstate(invalid="ignore", over="ignore"):
        if name == "softmax":
            rounding = eps * y64 * (np.abs(dy64) + np.sum(y64 * np.abs(dy64), axis=-1, keepdims=True))
        elif name == "log_softmax":
            rounding = eps * (np.abs(dy64) + np.exp(y64) * np.sum(np.abs(dy64), axis=-1, keepdims=True))
        else:
            rounding = eps * np.maximum(np.abs(dy64), np.abs(want)) + np.abs(dy64) * _cancellation(name, x64, eps)
        out = K * (rounding + tiny)
        deviation = KERAS_DERIVATIVE_DEVIATIONS.get((name, x.dtype.type))
        if deviation is not None:
            out = out + np.abs(dy64 * (DERIVATIVES[name](x64, y64) - deviation(x64)))
    return out


def assert_vjp_matches_keras(*, name, x, dy, got, want, allowed):
    """got == want where want is not finite, |got - want| <= allowed elsewhere."""
    __tracebackhide__ = True
    case = f"[activation_vjp({name!r}), {x.dtype}]"
    assert got.dtype == x.dtype, f"got.dtype={got.dtype}, but should be {x.dtype} {case}"
    assert got.shape == x.shape, f"got.shape={got.shape}, but should be {x.shape} {case}"
    finite = np.isfinite(want)
    if not np.array_equal(got[~finite], want[~finite], equal_nan=True):
        i = np.flatnonzero(~finite.ravel() & ~((got == want) | (np.isnan(got) & np.isnan(want))).ravel())[0]
        raise AssertionError(f"at x={x.ravel()[i]!r}: got {got.ravel()[i]}, TensorFlow {want.ravel()[i]} {case}")
    err = np.abs(np.where(finite, got, 0).astype(np.float64) - np.where(finite, want, 0))
    over = err > allowed
    if over.any():
        i = int(np.argmax(np.where(over, err / np.maximum(allowed, 1e-300), 0).ravel()))
        raise AssertionError(
            f"{int(over.sum())} of {x.size} over budget; worst at x={x.ravel()[i]!r}, dy={dy.ravel()[i]!r}: "
            f"got {got.ravel()[i]!r}, TensorFlow {want.ravel()[i]!r}, |diff|={err.ravel()[i]:.3g} > "
            f"budget {allowed.ravel()[i]:.3g} (K={K} eps) {case}\n"
            f"reproduce: x = np.array({x.ravel()[i]!r}, np.{x.dtype}); dy = np.array({dy.ravel()[i]!r}, np.{x.dtype})"
        )


def check_against_keras(tf, name, dtype, *, vjp=activation_vjp, seed=0):
    """The whole comparison for one activation and dtype; returns the worst error in budgets."""
    __tracebackhide__ = True
    x, dy = sample(dtype, seed)
    with np.errstate(all="ignore"):
        y = ACTIVATIONS[name](x)
        got = vjp(name, x, y, dy)
    want = keras_vjp(tf, name, x, dy)
    allowed = budget(name, x, y, dy, want)
    assert_vjp_matches_keras(name=name, x=x, dy=dy, got=got, want=want, allowed=allowed)
    finite = np.isfinite(want)
    return float(np.max(np.abs(got[finite].astype(np.float64) - want[finite]) / allowed[finite]))


# --- against TensorFlow -------------------------------------------------------

@pytest.mark.keras
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name", NAMES)
def test_vjp_matches_tensorflow_gradient(tf, name, dtype):
    check_against_keras(tf, name, dtype, seed=NAMES.index(name))


#: (name, x, d act/dx at x as TensorFlow gives it, the same in float32 and float64).
SELU_SCALE, SELU_SCALE_ALPHA = 1.0507009873554805, 1.7580993408473766
KINKS = [
    ("relu", 0.0, 0.0),
    ("relu6", 0.0, 0.0),
    ("relu6", 6.0, 0.0),
    ("leaky_relu", 0.0, 0.2),  # the negative slope
    ("elu", 0.0, 1.0),
    ("selu", 0.0, SELU_SCALE),
    ("selu", -1e-30, SELU_SCALE),  # exp(x) - 1 == 0 in TF's forward: the positive branch
    ("celu", 0.0, 2.0),  # max(x, 0) and min(x, 0) both pass the gradient on the tie
    ("hard_sigmoid", -3.0, 0.0),
    ("hard_sigmoid", 3.0, 0.0),
    ("hard_sigmoid", "below_3", 0.0),  # x + 3 rounds to 6
    ("hard_sigmoid", 0.0, 1 / 6),
    ("hard_silu", -3.0, 0.0),
    ("hard_silu", 3.0, 1.0),
    ("hard_swish", 3.0, 1.0),
    ("sparse_sigmoid", -1.0, 0.0),
    ("sparse_sigmoid", 1.0, 0.0),
    ("hard_tanh", -1.0, 1.0),
    ("hard_tanh", 1.0, 1.0),
    ("soft_shrink", -0.5, 0.0),
    ("soft_shrink", 0.5, 0.0),
    ("hard_shrink", -0.5, 0.0),
    ("hard_shrink", 0.5, 0.0),
    ("sparse_plus", -1.0, 0.0),
    ("sparse_plus", 1.0, 1.0),
    ("squareplus", "huge", 0.5),  # x**2 overflows, sqrt(x**2 + b) = inf
    ("squareplus", "-huge", 0.5),
    ("exponential", 1e4, math.inf),  # exp overflows: dx = dy * inf
    ("tanh", 1e4, 0.0),
    ("sigmoid", 1e4, 0.0),
    ("softsign", "huge", 0.0),  # (1 + |x|)**2 overflows
    ("elu", -1e4, 0.0),
    ("celu", -1e4, 0.0),
    ("linear", 0.0, 1.0),
]
#: Where float32 rounds to its own convention (float64 keeps the smooth value).
KINKS_FLOAT32 = [
    ("exponential", 89.0, math.inf),  # float64: 4.5e38
    ("tanh", 20.0, 0.0),  # y rounds to 1 (float64: 1.7e-17)
    ("sigmoid", 20.0, 0.0),  # (float64: 2.1e-9)
    ("elu", -30.0, 0.0),  # y rounds to -1, TF uses y + 1 (float64: 9.4e-14)
    ("selu", -30.0, 0.0),
]


def _point(x, dtype):
    """A table's x in ``dtype``; "huge" is a value whose square overflows (1e30, 1e200)."""
    named = {"below_3": np.nextafter(dtype(3), dtype(0)),
             "huge": dtype(1e30 if dtype is np.float32 else 1e200)}
    named["-huge"] = -named["huge"]
    return named[x] if isinstance(x, str) else dtype(x)


@pytest.mark.keras
@pytest.mark.platform
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_kink_conventions_are_tensorflows(tf, dtype):
    """At each kink, piece end and overflow, activation_vjp returns exactly what
    TensorFlow returns (dy = 1), and that is the value in the table."""
    table = KINKS + (KINKS_FLOAT32 if dtype is np.float32 else [])
    for name, where, expected in table:
        x = np.array([_point(where, dtype)])
        one = np.ones_like(x)
        with np.errstate(all="ignore"):
            got = activation_vjp(name, x, ACTIVATIONS[name](x), one)
        want = keras_vjp(tf, name, x, one)
        expected = np.array([expected], dtype=dtype)
        deviation = KERAS_DERIVATIVE_DEVIATIONS.get((name, dtype))
        keras_expected = expected if deviation is None else deviation(x).astype(dtype)
        case = f"d {name}({x[0]!r}) [{dtype.__name__}]"
        np.testing.assert_array_equal(want, keras_expected, err_msg=f"TensorFlow changed {case}")
        np.testing.assert_array_equal(got, expected, err_msg=case)


@pytest.mark.keras
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_selu_switches_branch_at_minus_quarter_eps(tf, dtype):
    """TF's selu derivative is scale down to x = -eps/4 (exp(x) rounds to 1 there)
    and scale * alpha just below; activation_vjp switches at the same float."""
    edge = dtype(-np.finfo(dtype).eps / 4)
    x = np.array([edge, np.nextafter(edge, dtype(-1))])
    one = np.ones_like(x)
    got = activation_vjp("selu", x, ACTIVATIONS["selu"](x), one)
    want = keras_vjp(tf, "selu", x, one)
    np.testing.assert_array_equal(want[0], dtype(SELU_SCALE))
    np.testing.assert_allclose(want[1], SELU_SCALE_ALPHA, rtol=4 * np.finfo(dtype).eps)
    np.testing.assert_allclose(got, want, rtol=4 * np.finfo(dtype).eps, atol=0)


@pytest.mark.keras
def test_keras_float64_deviations_are_real_and_modelled(tf):
    """In float64 TF's leaky_relu and gelu gradients differ from the exact
    derivatives by far more than the rounding budget, and the float32-rounded
    constants explain them to within it."""
    x, dy = sample(np.float64, seed=1)
    for (name, dtype), keras_derivative in KERAS_DERIVATIVE_DEVIATIONS.items():
        want = keras_vjp(tf, name, x, dy)
        exact = DERIVATIVES[name](x, ACTIVATIONS[name](x)) * dy
        modelled = keras_derivative(x) * dy
        scale = np.maximum(np.abs(dy), np.abs(want))
        eps = np.finfo(dtype).eps
        assert np.max(np.abs(exact - want) / scale) > 1e6 * eps, name  # the deviation is there...
        assert np.max(np.abs(modelled - want) / scale) <= K * eps, name  # ...and explained


# --- the comparison catches wrong derivatives -----------------------------------

def _mutant(name, wrong):
    """activation_vjp, except for ``name``, whose vjp is ``wrong(x, y, dy)``."""
    def vjp(activation, x, y, dy):
        return wrong(x, y, dy).astype(x.dtype) if activation == name else activation_vjp(activation, x, y, dy)
    return vjp


MUTANTS = {
    "tanh_derivative_at_the_pre_activation": ("tanh", lambda x, y, dy: dy * (1 - x * x)),
    "relu_passes_gradient_at_zero": ("relu", lambda x, y, dy: dy * (x >= 0)),
    "hard_sigmoid_tests_x_not_x_plus_3": ("hard_sigmoid", lambda x, y, dy: dy * ((x > -3) & (x < 3)) / 6),
    "selu_branch_from_expm1_output": ("selu", lambda x, y, dy: dy * np.where(y < 0, y + SELU_SCALE_ALPHA, SELU_SCALE)),
    "celu_one_at_zero": ("celu", lambda x, y, dy: dy * np.where(x > 0, 1, np.exp(np.minimum(x, 0)))),
    "silu_missing_product_rule_term": ("silu", lambda x, y, dy: dy * _sigmoid64(x)),
    "softmax_missing_the_mean": ("softmax", lambda x, y, dy: dy * y),
    "log_softmax_sum_of_dy_times_y": (
        "log_softmax", lambda x, y, dy: dy - np.exp(y) * np.sum(dy * np.exp(y), axis=-1, keepdims=True)),
}


@pytest.mark.keras
@pytest.mark.parametrize("mutant", MUTANTS)
def test_comparison_rejects_wrong_derivative(tf, mutant):
    name, wrong = MUTANTS[mutant]
    for dtype in DTYPES:
        with pytest.raises(AssertionError, match=rf"activation_vjp\('{name}'\)"):
            check_against_keras(tf, name, dtype, vjp=_mutant(name, wrong), seed=NAMES.index(name))


# --- the API ----------------------------------------------------------------

def test_every_activation_has_a_gradient():
    assert set(DERIVATIVES) == set(ELEMENTWISE)
    assert set(VJPS) == set(ACTIVATIONS) - set(ELEMENTWISE)


def check_from_output(names):
    """Each derivative named reads y only: with y passed in x's place it is unchanged (the
    LSTM's backward pass passes the gates for z when both activations are such)."""
    x = np.random.default_rng(4).uniform(-4, 4, 200)  # float64
    for name in names:
        y = ACTIVATIONS[name](x)
        np.testing.assert_array_equal(DERIVATIVES[name](y, y), DERIVATIVES[name](x, y), err_msg=name)


def test_derivatives_from_the_output_read_the_output_only():
    check_from_output(backward_activations.FROM_OUTPUT)
    assert from_output("sigmoid") and from_output(activations.tanh) and from_output(None)
    assert not from_output("silu") and not from_output(lambda v: v) and not from_output("softmax")


@pytest.mark.parametrize("wrong", ["silu", "gelu", "softsign"])
def test_a_derivative_that_reads_x_listed_as_from_the_output_is_caught(wrong):
    with pytest.raises(AssertionError, match=wrong):
        check_from_output((*backward_activations.FROM_OUTPUT, wrong))


def test_none_and_functions_are_taken_by_name():
    x = np.linspace(-2, 2, 9, dtype=np.float32)
    dy = np.arange(9, dtype=np.float32)
    np.testing.assert_array_equal(activation_vjp(None, x, x, dy), dy)
    y = activations.tanh(x)
    np.testing.assert_array_equal(activation_vjp(activations.tanh, x, y, dy), activation_vjp("tanh", x, y, dy))
    np.testing.assert_array_equal(activation_vjp("swish", x, activations.silu(x), dy),
                                  activation_vjp("silu", x, activations.silu(x), dy))


def test_other_callables_are_refused_with_a_type_error():
    x = np.zeros(3)
    with pytest.raises(TypeError, match="gradients need an activation name"):
        activation_vjp(lambda v: 2 * v, x, x, x)
    with pytest.raises(TypeError, match="activation name"):
        activation_vjp(3, x, x, x)
    with pytest.raises(ValueError, match="known names"):
        activation_vjp("tanhh", x, x, x)


def test_shapes_must_agree_and_dtype_follows_x():
    x = np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"dy.shape=\(3,\)"):
        activation_vjp("tanh", x, x, np.zeros(3))
    out = activation_vjp("softmax", x, np.full((2, 3), 1 / 3), np.ones((2, 3)))  # float64 y and dy
    assert out.dtype == np.float32 and out.shape == (2, 3)
