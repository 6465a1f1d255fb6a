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

Tolerances: the harness's budget, through ``tests/model_judging.judge_call`` (over
``rnn_ref.harness.judging.judge_outputs``) for the forward passes and
``rnn_ref.harness.judging.judge_gradients`` for the backward ones. The example is
the code under test, so it is the candidate and its own code run in float64 is the
truth: a mistake in it is then in the truth too and shows as Keras disagreeing with
that truth beyond its conditioning, in float64 as well as in float32 (where the
float64 example IS the truth). The conditioning is how far the float64 example moves
when every floating input and weight (and target) is perturbed by
``tolerance.PERTURB_ULPS`` units of roundoff; a result fails where its error exceeds
``FACTOR * max(Keras's error, conditioning)`` (envelope over the units and the steps
so far; for a gradient, over every step) plus a floor with m one step's products
(D + U + 1, D + H + 1 with the readout; plus T for a gradient's sum over the steps),
and Keras fails the case beyond ``FACTOR * conditioning + floor``. rnn_ref's result
(``rnn_ref_*``, ``rnn_ref.vjp``) is judged as a second candidate against the same
truth and the same Keras result, which is how the example and rnn_ref are compared;
a mistake fed to rnn_ref (an untransposed kernel) then fails as rnn_ref over its
budget. This replaces ``rtol = atol = 1e-5`` (float32) and ``1e-12`` (float64) for
the forward passes and ``4 (D + H + K + 9) T u max(1, max|g|)`` for the gradients,
both fixed formulas that assumed a non-expanding recurrence.
``test_report_worst_errors`` (-s) prints the worst error / budget of each
comparison and the smallest of each mistake: at most 0.13 (the softmax class's
gradients, float64), 0.02 to 0.09 elsewhere; the mistakes 1.6e4 to 1.2e5 times their
budget in float32 and 6e12 to 6e13 in float64.

Kept as they are: one step of the softmax class against the first step of its
forward pass (``assert_array_equal``: the same operations on the same values), and
the lower bound ``> 0.03`` showing how far tanh moves the scalar recurrence: a
difference, not an agreement.
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
from model_judging import assert_rejected, judge_call, print_worst, record
from rnn_ref.harness.judging import judge_gradients

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

#: The worst error / budget of each comparison, the smallest of each mistake (test_report_worst_errors).
WORST: dict = {}
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


def judged(label, example, kwargs, keras_result, dtype, *, m, time_axes, got=None):
    """``example`` (the code under test: its float64 run on ``kwargs`` is the truth) judged
    against Keras's ``keras_result`` (module docstring); ``got``: another candidate's result
    (rnn_ref's) in its place. Returns the ``Judgement`` without raising."""
    return judge_call(label, example, kwargs, keras_result, dtype, m=m, time_axes=time_axes, got=got)


def accept(label, dtype, judgement):
    """The judgement must pass; its error / budget is recorded under ``label``."""
    __tracebackhide__ = True
    record(WORST, (label, str(dtype)), judgement).check()


def assert_example_matches(label, example, kwargs, keras_result, dtype, *, m, time_axes, rnn_ref_result):
    """The example and rnn_ref's result each within the budget of the example's float64 truth."""
    __tracebackhide__ = True
    accept(label, dtype, judged(label, example, kwargs, keras_result, dtype, m=m, time_axes=time_axes))
    accept(f"{label}: rnn_ref", dtype, judged(f"{label}: rnn_ref", example, kwargs, keras_result, dtype, m=m,
                                              time_axes=time_axes, got=rnn_ref_result))


def scalar_states(**arrays):
    """The scalar recurrence with a units axis, (B, T, 1): its envelope is then per step."""
    return scalar.scalar_states(**arrays)[..., None]


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
    assert_example_matches("scalar recurrence", scalar_states, dict(x=x, w_x=w_x, w_rec=w_rec),
                           scalar.keras_states(model, x, w_x, w_rec)[..., None], dtype, m=3, time_axes=[1],
                           rnn_ref_result=scalar.rnn_ref_states(x, w_x, w_rec)[..., None])


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
    kwargs, keras_h = dict(x=x, W=W, U_rec=U_rec, b=b), textbook.keras_loop(model, x, W, U_rec, b)
    assert_example_matches("textbook loop", textbook.textbook_loop, kwargs, keras_h, dtype, m=D + U + 1,
                           time_axes=[0], rnn_ref_result=textbook.rnn_ref_loop(x, W, U_rec, b))
    # Without return_sequences both give the last step only.
    last = "textbook loop, last step: rnn_ref"
    accept(last, dtype, judged(last, lambda **a: textbook.textbook_loop(**a)[-1], kwargs, keras_h[-1], dtype,
                               m=D + U + 1, time_axes=None, got=rnn_ref.simple_rnn(x, W.T, U_rec.T, b)))


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
    assert_example_matches("sigmoid U/W/V", sigmoid.sigmoid_uwv, dict(x=x, U=U, W=W, V=V),
                           sigmoid.keras_uwv(model, x, U, W, V), dtype, m=D + H + 1, time_axes=[0, 0],
                           rnn_ref_result=sigmoid.rnn_ref_uwv(x, U, W, V))


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
    assert_example_matches("softmax class", softmax_forward, dict(net_weights(net), xs=xs),
                           softmax.keras_forward(model, net, xs), dtype, m=D + H + 1, time_axes=[0, 0],
                           rnn_ref_result=softmax.rnn_ref_forward(net, xs))
    # One step of the class is one step of the layers: the same operations on the same values.
    o1, h1 = net.step(xs[0], net.init_hidden())
    np.testing.assert_array_equal(o1, o[0])
    np.testing.assert_array_equal(h1, h[0])


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
    kwargs = dict(x=x, w_x=w_x, w_rec=w_rec)
    assert_rejected(judged("scalar recurrence vs Keras tanh", scalar_states, kwargs, tanh_rnn[..., None], dtype,
                           m=3, time_axes=[1]), "scalar recurrence vs Keras tanh", WORST)
    assert np.max(np.abs(states - tanh_rnn)) > 0.03
    linear_rnn = scalar.keras_states(_keras_model(scalar.build_keras, None, dtype), x, w_x, w_rec)
    tanh_rnn_ref = scalar.rnn_ref_states(x, w_x, w_rec, activation="tanh")
    assert_rejected(judged("scalar recurrence vs rnn_ref tanh", scalar_states, kwargs, linear_rnn[..., None], dtype,
                           m=3, time_axes=[1], got=tanh_rnn_ref[..., None]), "scalar recurrence vs rnn_ref tanh",
                    WORST)


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
    keras_h = textbook.keras_loop(_keras_model(textbook.build_keras, D, U, dtype), x, W, U_rec, b)

    def against_the_loop(what, rnn_ref_h):
        return judged(f"textbook loop: {what}", textbook.textbook_loop, dict(x=x, W=W, U_rec=U_rec, b=b), keras_h,
                      dtype, m=D + U + 1, time_axes=[0], got=rnn_ref_h)

    accept("textbook loop: rnn_ref", dtype, against_the_loop("rnn_ref", textbook.rnn_ref_loop(x, W, U_rec, b)))
    wrong_kernel = rnn_ref.simple_rnn(x, W, U_rec.T, b, return_sequences=True)
    assert_rejected(against_the_loop("kernel W", wrong_kernel), "textbook kernel W instead of W.T", WORST)
    # The recurrent matrix is square for every D and U; its transpose matters
    # from the second step on.
    if T >= 2:
        wrong_recurrent = rnn_ref.simple_rnn(x, W.T, U_rec, b, return_sequences=True)
        assert_rejected(against_the_loop("recurrent kernel U_rec", wrong_recurrent),
                        "textbook recurrent kernel U_rec instead of U_rec.T", WORST)


@MISTAKES
@given(random_state=random_states, T=st.integers(2, 10), dims=input_and_units)
def test_missing_activation_is_caught(random_state, T, dims):
    dtype = "float32"
    D, U = dims
    rng = np.random.default_rng(random_state)
    x = rng.standard_normal((T, D)).astype(dtype)
    W, U_rec, b = textbook.random_weights(rng, D, U, dtype)

    model = _keras_model(textbook.build_keras, D, U, dtype)
    keras_h = textbook.keras_loop(model, x, W, U_rec, b)
    # the loop without its activation is the code under test: the float64 truth is linear too
    kwargs = dict(x=x, W=W, U_rec=U_rec, b=b, activation=lambda z: z)
    assert_rejected(judged("linear textbook loop", textbook.textbook_loop, kwargs, keras_h, dtype, m=D + U + 1,
                           time_axes=[0]), "textbook loop without activation", WORST)
    assert_rejected(judged("linear textbook loop: rnn_ref", textbook.textbook_loop, kwargs, keras_h, dtype,
                           m=D + U + 1, time_axes=[0], got=textbook.rnn_ref_loop(x, W, U_rec, b)),
                    "textbook loop without activation vs rnn_ref", WORST)


# --- the hand-written backward passes equal GradientTape and rnn_ref.vjp ------
#
# Tolerance: ``judging.judge_gradients`` (module docstring), the hand-written backward
# pass run in float64 as the truth, its inputs, weights and targets perturbed for the
# conditioning; ``dx`` has a time axis. The floor's m is one step's products plus the
# T terms of a weight gradient's sum over the steps (B = 1).

GRADIENT_NAMES = {"sigmoid_uwv": ("dU", "dW", "dV", "dx"), "softmax_rnn_class": ("dU", "dW", "dV", "db", "dc")}
# (D, H, K), all three different, so that a transposed gradient cannot pass.
gradient_dims = st.sampled_from([(2, 3, 4), (5, 3, 2), (3, 4, 2), (6, 4, 3)])
gradient_steps = st.integers(1, 12)


def net_weights(net):
    """The softmax class's weights by name: the keyword arrays of its float64 truth."""
    return dict(U=net.U, W=net.W, V=net.V, b=net.b, c=net.c)


def softmax_function(method):
    """A ``SoftmaxRNN`` method (``forward(xs)``, ``bptt(xs, labels)``, or a mutant of one) as a
    function of the inputs and the weights by name (``net_weights``), for the judge."""
    def call(xs, labels=None, **weights):
        net = softmax.SoftmaxRNN.__new__(softmax.SoftmaxRNN)
        net.__dict__.update(weights)
        return method(net, xs) if labels is None else method(net, xs, labels)

    return call


softmax_forward = softmax_function(softmax.SoftmaxRNN.forward)


def judged_gradients(what, backward, kwargs, got, keras_grads, dtype, *, T, dims):
    """The gradients ``got`` (a tuple in GRADIENT_NAMES[what]'s order) judged against Keras's
    with ``backward(**kwargs)`` (the hand-written pass, or a mutant of it) in float64 as the
    truth; same count, shapes and dtypes first. Returns the ``Judgement`` without raising."""
    __tracebackhide__ = True
    names = GRADIENT_NAMES[what]
    assert len(got) == len(keras_grads) == len(names)
    for name, a, e in zip(names, got, keras_grads):
        assert a.shape == e.shape and a.dtype == e.dtype == dtype, (
            f"{what}: {name} is {a.dtype}{a.shape}, expected {e.dtype}{e.shape}")
    D, H, K = dims
    return judge_gradients(what, lambda **call: dict(zip(names, backward(**call))), kwargs, dict(zip(names, got)),
                           dict(zip(names, keras_grads)), dtype, m=D + H + K + 1 + T,
                           time_axes={"dx": 0} if "dx" in names else None)


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
    kwargs = dict(x=x, U=U, W=W, V=V, targets=targets)
    for label, candidate in (("sigmoid_uwv gradients", grads),
                             ("sigmoid_uwv gradients: rnn_ref.vjp", sigmoid.rnn_ref_uwv_gradients(**kwargs))):
        accept(label, dtype, judged_gradients("sigmoid_uwv", sigmoid.sigmoid_uwv_gradients, kwargs, candidate, tape,
                                              dtype, T=T, dims=dims))


@DTYPES
@SETTINGS
@given(random_state=random_states, T=gradient_steps, dims=gradient_dims)
def test_softmax_rnn_class_bptt_matches_gradient_tape_and_vjp(dtype, random_state, T, dims):
    net, xs, labels = softmax_case(random_state, T, dims, dtype)
    grads = net.bptt(xs, labels)  # dU, dW, dV, db, dc

    model = _keras_model(softmax.build_keras, *dims, dtype)
    tape = softmax.keras_bptt(model, net, xs, labels)
    for label, candidate in (("softmax_rnn_class gradients", grads),
                             ("softmax_rnn_class gradients: rnn_ref.vjp", softmax.rnn_ref_bptt(net, xs, labels))):
        accept(label, dtype, judged_gradients("softmax_rnn_class", softmax_function(softmax.SoftmaxRNN.bptt),
                                              dict(net_weights(net), xs=xs, labels=labels), candidate, tape, dtype,
                                              T=T, dims=dims))


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
    kwargs = dict(net_weights(net), xs=xs, labels=labels)
    mean_bptt = softmax_function(lambda net, xs, labels: [g / np.asarray(T, g.dtype) for g in net.bptt(xs, labels)])
    accept("softmax_rnn_class gradients / T", dtype, judged_gradients(
        "softmax_rnn_class", mean_bptt, kwargs, mean_bptt(**kwargs), mean, dtype, T=T, dims=dims))
    import keras

    outputs, _ = model(xs[None])
    keras_mean = keras.losses.SparseCategoricalCrossentropy(dtype=dtype)(labels[None], outputs)
    mean_loss = softmax_function(lambda net, xs, labels: np.asarray(net.loss(xs, labels) / T))
    accept("softmax_rnn_class loss / T", dtype, judged("softmax_rnn_class loss / T", mean_loss, kwargs,
                                                        np.asarray(keras_mean), dtype, m=dims[1] + 1 + T,
                                                        time_axes=None))


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
    kwargs = dict(x=x, U=U, W=W, V=V, targets=targets)
    for name, backward in (("correct", sigmoid.sigmoid_uwv_gradients),
                           *((name, _mutant(sigmoid.sigmoid_uwv_gradients, old, new))
                             for name, (old, new) in SIGMOID_MUTANTS.items())):
        # the mutant is the code under test: its own float64 run is the truth
        judgement = judged_gradients("sigmoid_uwv", backward, kwargs, backward(**kwargs), tape, dtype, T=T, dims=dims)
        if name == "correct":
            accept("sigmoid_uwv gradients", dtype, judgement)
        else:
            assert_rejected(judgement, f"sigmoid_uwv {name} {dtype}", WORST)


@DTYPES
@MISTAKES
@given(random_state=random_states, T=st.integers(2, 10), dims=gradient_dims)
def test_softmax_rnn_class_bptt_mistakes_are_caught(dtype, random_state, T, dims):
    net, xs, labels = softmax_case(random_state, T, dims, dtype)
    tape = softmax.keras_bptt(_keras_model(softmax.build_keras, *dims, dtype), net, xs, labels)
    kwargs = dict(net_weights(net), xs=xs, labels=labels)
    for name, bptt in (("correct", softmax.SoftmaxRNN.bptt),
                       *((name, _mutant(softmax.SoftmaxRNN.bptt, old, new))
                         for name, (old, new) in SOFTMAX_MUTANTS.items())):
        backward = softmax_function(bptt)  # the mutant is the code under test: its float64 run is the truth
        judgement = judged_gradients("softmax_rnn_class", backward, kwargs, backward(**kwargs), tape, dtype, T=T,
                                     dims=dims)
        if name == "correct":
            accept("softmax_rnn_class gradients", dtype, judgement)
        else:
            assert_rejected(judgement, f"softmax_rnn_class {name} {dtype}", WORST)


def test_report_worst_errors():
    """Prints the worst error / budget per comparison and the smallest of each mistake (run with -s)."""
    print_worst(WORST)
