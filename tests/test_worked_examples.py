"""The four forward passes in ``examples/`` against live Keras and against rnn_ref.

Each example writes an RNN the way it is usually explained (a scalar
recurrence, a per-sample ``tanh(W @ x + U @ h + b)`` loop, a sigmoid U/W/V
network, a class with a softmax output) and names the Keras layers it equals.
The first group of tests checks that claim on random shapes and weights:
the example's own loop, the Keras layers holding the copied weights, and
``rnn_ref`` all give the same numbers. The second group checks that the usual
mistakes in such code give numbers this comparison rejects (or an error).

Weights are zero-mean and asymmetric, the recurrent matrices have spectral
radius below 1, biases are non-zero where the model has them, and D != U so
that a transposed input kernel cannot go unnoticed.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rnn_ref

pytestmark = pytest.mark.keras

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load_example(name):
    """Import ``examples/<name>.py`` as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"rnn_ref_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


scalar = _load_example("scalar_recurrence")
textbook = _load_example("textbook_loop")
sigmoid = _load_example("sigmoid_uwv")
softmax = _load_example("softmax_rnn_class")

# float32: the largest |difference| measured over 300 random cases per example
# (the shapes below, T up to 30) was 8.3e-7, between the textbook loop and
# Keras; the scalar recurrence agreed exactly. 1e-5 leaves a factor of 12.
# float64: largest measured 2.4e-15.
TOL = {
    "float32": dict(rtol=1e-5, atol=1e-5),
    "float64": dict(rtol=1e-12, atol=1e-12),
}
DTYPES = pytest.mark.parametrize("dtype", ["float32", "float64"])

SETTINGS = settings(max_examples=12, deadline=None)
random_states = st.integers(0, 2**32 - 1)  # for np.random.default_rng
steps = st.integers(1, 10)
outputs = st.integers(2, 3)
# (D, U) with D != U, from a few sizes so that each Keras model is built once.
input_and_units = st.sampled_from([(2, 3), (5, 3), (3, 4), (6, 4)])


@functools.cache
def _keras_model(build, *args):
    """One Keras model per example and shape; each test example only copies weights in."""
    return build(*args)


def assert_close(actual, expected, dtype):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), **TOL[dtype])


def caught(actual, expected, dtype):
    """True when the comparison above would reject ``actual``."""
    return not np.allclose(np.asarray(actual), np.asarray(expected), **TOL[dtype])


# --- each example equals its Keras layers and rnn_ref -------------------------


@DTYPES
@SETTINGS
@given(random_state=random_states, batch=st.integers(1, 4), T=steps)
def test_scalar_recurrence_is_simple_rnn_1_linear_no_bias(dtype, random_state, batch, T):
    rng = np.random.default_rng(random_state)
    x = rng.standard_normal((batch, T)).astype(dtype)
    w_x = np.array(rng.choice([-1, 1]) * rng.uniform(0.5, 2.0), dtype=dtype)
    w_rec = np.array(rng.uniform(-0.95, 0.95), dtype=dtype)

    states = scalar.scalar_states(x, w_x, w_rec)  # (B, T)
    model = _keras_model(scalar.build_keras, None, dtype)
    assert states.shape == (batch, T) and states.dtype == dtype
    assert_close(states, scalar.keras_states(model, x, w_x, w_rec), dtype)
    assert_close(states, scalar.rnn_ref_states(x, w_x, w_rec), dtype)


@DTYPES
@SETTINGS
@given(random_state=random_states, T=steps, dims=input_and_units)
def test_textbook_loop_is_simple_rnn_with_transposed_weights(dtype, random_state, T, dims):
    D, U = dims
    rng = np.random.default_rng(random_state)
    x = rng.standard_normal((T, D)).astype(dtype)
    W, U_rec, b = textbook.random_weights(rng, D, U, dtype)
    assert np.all(b != 0)

    h = textbook.textbook_loop(x, W, U_rec, b)  # (T, U)
    model = _keras_model(textbook.build_keras, D, U, dtype)
    assert h.shape == (T, U) and h.dtype == dtype
    assert_close(h, textbook.keras_loop(model, x, W, U_rec, b), dtype)
    assert_close(h, textbook.rnn_ref_loop(x, W, U_rec, b), dtype)
    # Without return_sequences both give the last step only.
    assert_close(h[-1], rnn_ref.simple_rnn(x, W.T, U_rec.T, b), dtype)


@DTYPES
@SETTINGS
@given(random_state=random_states, T=steps, dims=input_and_units, K=outputs)
def test_sigmoid_uwv_is_simple_rnn_sigmoid_then_dense(dtype, random_state, T, dims, K):
    D, H = dims
    rng = np.random.default_rng(random_state)
    x = rng.standard_normal((T, D)).astype(dtype)
    U, W, V = sigmoid.random_weights(rng, D, H, K, dtype)

    s, y = sigmoid.sigmoid_uwv(x, U, W, V)  # (T, H), (T, K)
    model = _keras_model(sigmoid.build_keras, D, H, K, dtype)
    assert s.shape == (T, H) and y.shape == (T, K) and y.dtype == dtype
    ks, ky = sigmoid.keras_uwv(model, x, U, W, V)
    assert_close(s, ks, dtype)
    assert_close(y, ky, dtype)
    rs, ry = sigmoid.rnn_ref_uwv(x, U, W, V)
    assert_close(s, rs, dtype)
    assert_close(y, ry, dtype)


@DTYPES
@SETTINGS
@given(random_state=random_states, T=steps, dims=input_and_units, K=outputs)
def test_softmax_rnn_class_is_simple_rnn_then_dense_softmax(dtype, random_state, T, dims, K):
    D, H = dims
    rng = np.random.default_rng(random_state)
    net = softmax.SoftmaxRNN(D, H, K, rng=rng, dtype=dtype)
    assert np.all(net.b != 0) and np.all(net.c != 0)
    xs = rng.standard_normal((T, D)).astype(dtype)

    o, h = net.forward(xs)  # (T, K), (T, H)
    model = _keras_model(softmax.build_keras, D, H, K, dtype)
    assert o.shape == (T, K) and h.shape == (T, H) and o.dtype == dtype
    ko, kh = softmax.keras_forward(model, net, xs)
    assert_close(o, ko, dtype)
    assert_close(h, kh, dtype)
    ro, rh = softmax.rnn_ref_forward(net, xs)
    assert_close(o, ro, dtype)
    assert_close(h, rh, dtype)
    # One step of the class is one step of the layers.
    o1, h1 = net.step(xs[0], net.init_hidden())
    assert_close(o1, o[0], dtype)
    assert_close(h1, h[0], dtype)


# --- the usual mistakes are caught --------------------------------------------

MISTAKES = settings(max_examples=8, deadline=None)


@MISTAKES
@given(random_state=random_states, batch=st.integers(1, 4), T=steps)
def test_scalar_recurrence_is_not_simple_rnn_tanh(random_state, batch, T):
    # The scalar recurrence has no activation. SimpleRNN's default is tanh, so
    # with the same weights the two differ once the values are not tiny: here
    # |x_1 * w_x| >= 0.5 at the first step, where tanh(0.5) is 0.038 below 0.5.
    dtype = "float32"
    rng = np.random.default_rng(random_state)
    x = rng.standard_normal((batch, T)).astype(dtype)
    x[:, 0] = rng.choice([-1, 1], batch) * rng.uniform(1.0, 2.0, batch)
    w_x = np.array(rng.choice([-1, 1]) * rng.uniform(0.5, 2.0), dtype=dtype)
    w_rec = np.array(rng.uniform(-0.95, 0.95), dtype=dtype)

    states = scalar.scalar_states(x, w_x, w_rec)
    tanh_rnn = scalar.keras_states(_keras_model(scalar.build_keras, "tanh", dtype), x, w_x, w_rec)
    assert caught(states, tanh_rnn, dtype)
    assert np.max(np.abs(states - tanh_rnn)) > 0.03
    assert caught(states, scalar.rnn_ref_states(x, w_x, w_rec, activation="tanh"), dtype)


@MISTAKES
@given(random_state=random_states, T=steps, dims=input_and_units, square=st.sampled_from([3, 4]))
def test_untransposed_textbook_weights_are_caught(random_state, T, dims, square):
    dtype = "float32"
    rng = np.random.default_rng(random_state)

    # D != U: W (U, D) in place of the kernel (D, U) is refused, with its shape named.
    D, U = dims
    x = rng.standard_normal((T, D)).astype(dtype)
    W, U_rec, b = textbook.random_weights(rng, D, U, dtype)
    expected = f"kernel must have shape (D, U) = ({D}, {U}), got ({U}, {D})"
    with pytest.raises(ValueError, match=re.escape(expected)):
        rnn_ref.simple_rnn(x, kernel=W, recurrent_kernel=U_rec.T, bias=b)

    # D == U: the shapes fit, so only the numbers show the mistake.
    D = U = square
    x = rng.standard_normal((T, D)).astype(dtype)
    W, U_rec, b = textbook.random_weights(rng, D, U, dtype)
    h = textbook.textbook_loop(x, W, U_rec, b)
    assert_close(h, textbook.rnn_ref_loop(x, W, U_rec, b), dtype)  # the right way round
    wrong_kernel = rnn_ref.simple_rnn(x, W, U_rec.T, b, return_sequences=True)
    assert caught(wrong_kernel, h, dtype)
    # The recurrent matrix is square for every D and U; its transpose matters
    # from the second step on.
    if T >= 2:
        wrong_recurrent = rnn_ref.simple_rnn(x, W.T, U_rec, b, return_sequences=True)
        assert caught(wrong_recurrent, h, dtype)


@MISTAKES
@given(random_state=random_states, T=st.integers(2, 10), dims=input_and_units)
def test_missing_activation_is_caught(random_state, T, dims):
    dtype = "float32"
    D, U = dims
    rng = np.random.default_rng(random_state)
    x = rng.standard_normal((T, D)).astype(dtype)
    W, U_rec, b = textbook.random_weights(rng, D, U, dtype)

    linear = textbook.textbook_loop(x, W, U_rec, b, activation=lambda z: z)
    model = _keras_model(textbook.build_keras, D, U, dtype)
    assert caught(linear, textbook.keras_loop(model, x, W, U_rec, b), dtype)
    assert caught(linear, textbook.rnn_ref_loop(x, W, U_rec, b), dtype)
