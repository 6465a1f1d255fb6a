"""The four forward passes in ``examples/`` against live Keras and against rnn_ref.

Each example writes an RNN the way it is usually explained (a scalar
recurrence, a per-sample ``tanh(W @ x + U @ h + b)`` loop, a sigmoid U/W/V
network, a class with a softmax output) and names the Keras layers it equals.
The first group of tests checks that claim on random shapes and weights:
the example's own loop, the Keras layers holding the copied weights, and
``rnn_ref`` all give the same numbers. The second group checks that the usual
mistakes in such code give numbers this comparison rejects (or an error).
The third does the same for the backward passes written by hand in the
sigmoid U/W/V and softmax class examples: equal to ``tf.GradientTape`` on the
Keras model and to ``rnn_ref.vjp``, and the usual backpropagation mistakes
(mutated copies of the example's own code) rejected.

Weights are zero-mean and asymmetric, the recurrent matrices have spectral
radius below 1, biases are non-zero where the model has them, and D != U so
that a transposed input kernel cannot go unnoticed.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import re
import textwrap
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


# --- the hand-written backward passes equal GradientTape and rnn_ref.vjp ------
#
# Tolerance (``gradient_budget``), derived before measuring, with the reasoning
# of tests/test_vjp.py's budget ``4 (B + D + U + 9) T u max(1, max|g|)``:
# both sides compute the same sums in different orders, and a sum of n terms
# is off by at most about n u times the sum of the terms' absolute values (u
# the unit roundoff, 2^-53 in float64, 2^-24 in float32). The longest sums are
# the weight gradients, T terms each (one sequence, B = 1), whose factors are
# sums over D, H or K terms (the forward U x_t + W s_{t-1} and V s_t, the
# backward V.T dy_t and W.T dz_t) plus a few roundings in the activation, its
# derivative and dy_t = y_t - target_t (or the softmax and its cross-entropy).
# In float32 the two forward passes also differ, by up to about 2 (D + H + 9)
# u T, and the backward pass reads them. So per gradient array
#
#     4 (D + H + K + 9) T u max(1, max|Keras gradient|)
#
# the floor 1 covering cancellation among O(1) terms (targets and one-hot
# labels are O(1)). The backward recurrence carried = W.T (f' * ds) does not
# expand errors much: sigmoid' <= 1/4, tanh' <= 1, and W has spectral radius
# 0.9 (its norm can exceed 1 for a few steps, far less than the slack of a
# worst-case bound that adds T errors where random signs give sqrt(T)).
# For the sweep below (T <= 12, D + H + K <= 13) that is at most 1056 u:
# 1.2e-13 (float64) and 6.3e-5 (float32) relative to the largest gradient.
# Measured with these helpers over 400 random cases per example and dtype
# (T up to 30, the four dims below): worst error / budget 0.077 in float32
# (softmax class vs GradientTape, T = 1: 3.6e-7 on gradients of size 1.0) and
# 0.086 in float64 (softmax class vs GradientTape, T = 8: 7.1e-15 on 2.4);
# against rnn_ref.vjp at most 0.035. The mutants below were at least 320
# times their budget in float32 (the sigmoid example without the recurrent
# carry) and 2e11 times in float64.

UNIT_ROUNDOFF = {"float32": 2.0**-24, "float64": 2.0**-53}
GRADIENT_NAMES = {"sigmoid_uwv": ("dU", "dW", "dV", "dx"), "softmax_rnn_class": ("dU", "dW", "dV", "db", "dc")}
# (D, H, K), all three different, so that a transposed gradient cannot pass.
gradient_dims = st.sampled_from([(2, 3, 4), (5, 3, 2), (3, 4, 2), (6, 4, 3)])
gradient_steps = st.integers(1, 12)


def gradient_budget(expected, dtype, *, T, dims):
    """The largest |hand-written - Keras| accepted for one gradient array (comment above)."""
    D, H, K = dims
    scale = max(1.0, float(np.max(np.abs(expected))))
    return 4 * (D + H + K + 9) * T * UNIT_ROUNDOFF[dtype] * scale


def gradient_ratio(actual, expected, dtype, *, T, dims):
    """max over the gradient arrays of |actual - expected| / budget."""
    return max(float(np.max(np.abs(a.astype(np.float64) - e), initial=0.0)) / gradient_budget(e, dtype, T=T, dims=dims)
               for a, e in zip(actual, expected))


def assert_gradients_close(actual, expected, dtype, *, T, dims, what):
    """Same shapes and dtypes, every array within its budget."""
    __tracebackhide__ = True
    assert len(actual) == len(expected) == len(GRADIENT_NAMES[what])
    for name, a, e in zip(GRADIENT_NAMES[what], actual, expected):
        assert a.shape == e.shape and a.dtype == e.dtype == dtype, (
            f"{what}: {name} is {a.dtype}{a.shape}, expected {e.dtype}{e.shape}")
        diff = float(np.max(np.abs(a.astype(np.float64) - e), initial=0.0))
        limit = gradient_budget(e, dtype, T=T, dims=dims)
        assert diff <= limit, f"{what}: max |{name} - expected| = {diff:.3g} > budget {limit:.3g} (T={T}, dims={dims})"


def gradients_caught(actual, expected, dtype, *, T, dims):
    """True when the comparison above would reject ``actual``."""
    return gradient_ratio(actual, expected, dtype, T=T, dims=dims) > 1


def _mutant(fn, old, new):
    """``fn`` with the source line ``old`` replaced by ``new``: the example's own code with
    one mistake, so that the mutants follow the example when it changes."""
    source = textwrap.dedent(inspect.getsource(fn))
    assert source.count(old) == 1, f"{old!r} is not exactly once in {fn.__qualname__}"
    namespace = dict(fn.__globals__)
    exec(compile(source.replace(old, new), f"<mutant of {fn.__qualname__}>", "exec"), namespace)
    return namespace[fn.__name__]


def sigmoid_case(random_state, T, dims, dtype):
    D, H, K = dims
    rng = np.random.default_rng(random_state)
    x = rng.standard_normal((T, D)).astype(dtype)
    U, W, V = sigmoid.random_weights(rng, D, H, K, dtype)
    targets = rng.standard_normal((T, K)).astype(dtype)
    return x, U, W, V, targets


def softmax_case(random_state, T, dims, dtype):
    D, H, K = dims
    rng = np.random.default_rng(random_state)
    net = softmax.SoftmaxRNN(D, H, K, rng=rng, dtype=dtype)
    assert np.all(net.b != 0) and np.all(net.c != 0)
    xs = rng.standard_normal((T, D)).astype(dtype)
    labels = rng.integers(0, K, T)  # (T,)
    return net, xs, labels


@DTYPES
@SETTINGS
@given(random_state=random_states, T=gradient_steps, dims=gradient_dims)
def test_sigmoid_uwv_gradients_match_gradient_tape_and_vjp(dtype, random_state, T, dims):
    x, U, W, V, targets = sigmoid_case(random_state, T, dims, dtype)
    grads = sigmoid.sigmoid_uwv_gradients(x, U, W, V, targets)  # dU, dW, dV, dx

    model = _keras_model(sigmoid.build_keras, *dims, dtype)
    tape = sigmoid.keras_uwv_gradients(model, x, U, W, V, targets)
    assert_gradients_close(grads, tape, dtype, T=T, dims=dims, what="sigmoid_uwv")
    vjp = sigmoid.rnn_ref_uwv_gradients(x, U, W, V, targets)
    assert_gradients_close(grads, vjp, dtype, T=T, dims=dims, what="sigmoid_uwv")


@DTYPES
@SETTINGS
@given(random_state=random_states, T=gradient_steps, dims=gradient_dims)
def test_softmax_rnn_class_bptt_matches_gradient_tape_and_vjp(dtype, random_state, T, dims):
    net, xs, labels = softmax_case(random_state, T, dims, dtype)
    grads = net.bptt(xs, labels)  # dU, dW, dV, db, dc

    model = _keras_model(softmax.build_keras, *dims, dtype)
    tape = softmax.keras_bptt(model, net, xs, labels)
    assert_gradients_close(grads, tape, dtype, T=T, dims=dims, what="softmax_rnn_class")
    vjp = softmax.rnn_ref_bptt(net, xs, labels)
    assert_gradients_close(grads, vjp, dtype, T=T, dims=dims, what="softmax_rnn_class")


@DTYPES
def test_softmax_rnn_class_keras_mean_loss_is_the_sum_over_T(dtype):
    # model.compile(loss="sparse_categorical_crossentropy") averages over the steps: the
    # gradients of the sum divided by T (one more rounding, within the same budget). The
    # loss object needs dtype="float64" for a float64 model: with its default, floatx()
    # (float32), the float64 gradients were off by 7.8e-9, 1e5 times the budget.
    T, dims = 9, (3, 4, 2)
    net, xs, labels = softmax_case(7, T, dims, dtype)
    model = _keras_model(softmax.build_keras, *dims, dtype)
    mean = softmax.keras_bptt(model, net, xs, labels, mean=True)
    assert_gradients_close([g / np.asarray(T, dtype) for g in net.bptt(xs, labels)], mean, dtype,
                           T=T, dims=dims, what="softmax_rnn_class")
    import keras

    outputs, _ = model(xs[None])
    keras_mean = keras.losses.SparseCategoricalCrossentropy(dtype=dtype)(labels[None], outputs)
    np.testing.assert_allclose(net.loss(xs, labels) / T, float(keras_mean), **TOL[dtype])


# The usual backpropagation mistakes, each a one-line change of the example's code.
SIGMOID_MUTANTS = {
    # sigmoid'(z) = s (1 - s) taken as z (1 - z), at the pre-activation z_t
    "derivative at the pre-activation": (
        "        dz = ds * s[t] * (1 - s[t])  # (H,)",
        "        z = U @ x[t] + W @ s_prev[t]\n        dz = ds * z * (1 - z)"),
    # ds_t only through y_t: the recurrent gradient is not carried to earlier steps
    "no recurrent carry": ("        ds = V.T @ dy + carried  # (H,)", "        ds = V.T @ dy"),
}
SOFTMAX_MUTANTS = {
    # tanh' taken as 1 - h instead of 1 - h^2
    "tanh derivative 1 - h": ("        dz = dh * (1 - hiddens[t] ** 2)  # (H,)", "        dz = dh * (1 - hiddens[t])"),
    # the W.T carry forgotten: nothing reaches h_{t-1} through step t
    "no W.T carry": ("        carried = self.W.T @ dz  # (H,) to step t - 1", "        carried = 0 * carried"),
    # the carry without W.T: dz_t passed back as if W were the identity
    "carry without W.T": ("        carried = self.W.T @ dz  # (H,) to step t - 1", "        carried = dz"),
}


@DTYPES
@MISTAKES
@given(random_state=random_states, T=st.integers(2, 10), dims=gradient_dims)
def test_sigmoid_uwv_gradient_mistakes_are_caught(dtype, random_state, T, dims):
    x, U, W, V, targets = sigmoid_case(random_state, T, dims, dtype)
    tape = sigmoid.keras_uwv_gradients(_keras_model(sigmoid.build_keras, *dims, dtype), x, U, W, V, targets)
    assert not gradients_caught(sigmoid.sigmoid_uwv_gradients(x, U, W, V, targets), tape, dtype, T=T, dims=dims)
    for name, (old, new) in SIGMOID_MUTANTS.items():
        mutant = _mutant(sigmoid.sigmoid_uwv_gradients, old, new)
        assert gradients_caught(mutant(x, U, W, V, targets), tape, dtype, T=T, dims=dims), name


@DTYPES
@MISTAKES
@given(random_state=random_states, T=st.integers(2, 10), dims=gradient_dims)
def test_softmax_rnn_class_bptt_mistakes_are_caught(dtype, random_state, T, dims):
    net, xs, labels = softmax_case(random_state, T, dims, dtype)
    tape = softmax.keras_bptt(_keras_model(softmax.build_keras, *dims, dtype), net, xs, labels)
    assert not gradients_caught(net.bptt(xs, labels), tape, dtype, T=T, dims=dims)
    for name, (old, new) in SOFTMAX_MUTANTS.items():
        mutant = _mutant(softmax.SoftmaxRNN.bptt, old, new)
        assert gradients_caught(mutant(net, xs, labels), tape, dtype, T=T, dims=dims), name
