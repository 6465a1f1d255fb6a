"""``rnn_ref.vjp`` (backpropagation through time) against ``tf.GradientTape`` on live Keras.

Every comparison copies random weights into a Keras layer built with the
same options (``set_weights``), asymmetric on purpose: D != U, kernels
random (not constant), biases non-zero, a random non-zero initial state, a
recurrent kernel ``gain`` times a random non-symmetric orthogonal matrix
(gain 0.3 to 1), and random cotangents ``d_output`` (and ``d_final_state``).
Keras's gradient is that of ``sum(out * d_output) + sum(final_state *
d_final_state)``, which is what ``backward(d_output, d_final_state)`` returns.

Activations: the hypothesis sweeps draw every Keras activation whose
derivative (or Jacobian norm) is at most 1; every name, the expanding ones
included (selu, silu, hard_silu, mish, gelu, exponential, log_softmax), is
checked on small cases. Keras's float64 leaky_relu and gelu round their
constants to float32 (tests/test_keras_quirks.py), so in float64 those two are
checked against finite differences only.

Tolerances (``judge_vjp``, shared with tests/test_vjp_lstm.py, test_vjp_gru.py
and test_vjp_bidirectional.py):

* Against Keras: the harness's budget, ``rnn_ref.harness.judging.judge_gradients``
  (the rules of ``Context.expect_gradients``). The truth is the backward pass under
  test run in float64 on the case's exact values; the conditioning is how far those
  gradients move when every input, weight, initial state and cotangent is perturbed
  by ``tolerance.PERTURB_ULPS`` units of roundoff (more runs where it is large, no
  judgement where a gradient has no digits left); a gradient fails where its error
  exceeds ``FACTOR * max(Keras's error, conditioning)`` (the maximum over the units
  and every step of a row: errors grow backwards) plus a floor of ``FLOOR_ULPS u
  sqrt(m)``, m one step's products plus B T; Keras fails the case beyond ``FACTOR *
  conditioning + floor``. A float64 result is the truth itself, so there the check is
  Keras's. This replaces a fixed ``4 (B + D + U + 9) T u max|Keras| growth^T``, which
  assumed a non-expanding backward recurrence and had to be grown by hand for every
  expanding activation; the conditioning measures the growth instead.
  ``test_report_worst_errors`` prints the worst error / budget of a run (``-s``):
  at most 0.104 (float64, every activation) and 0.072 (float32); the mutant whose
  tanh derivative is taken at the pre-activation is 1.7e5 (float32) and 8e13
  (float64) times its budget.
* rnn_ref against itself (test_masked_steps_add_nothing_to_weight_gradients, float64,
  the same sums in another order, non-expanding activations, gain <= 1): sums of n
  terms are off by about n u of the sum of their absolute values, over B T steps,
  ``summation_bound`` = ``4 (B + D + U + 9) T u max(1, max|g|)``.
* Kinks: a piecewise activation (relu, hard_shrink, ...) evaluated within
  rounding of a kink gives the two sides different derivatives; in float32,
  with forward differences ~1e-6, that has a chance of about 1e-4 per
  example, so a rare failure there would name a kink, not a bug.
* Finite differences (float64, centred, h = 1e-6): each evaluation of the
  loss is off by a few u of the sum S of the absolute values of its terms,
  so the difference quotient is off by about u S / h (8 u S / h allowed,
  ``fd_bound``); the truncation error, h^2 / 6 times the third derivative, is below 1e-11. The
  cs231n relative error |a - b| / max(|a|, |b|) (over entries >= 1e-3) is
  reported: at most 1.7e-7 measured, with |a - b| at most 0.16 of the bound.
"""

from __future__ import annotations

import functools
import itertools
from typing import NamedTuple, Optional

import hypothesis
import numpy as np
import pytest
from hypothesis import given, note, settings, strategies as st

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")
layers = keras.layers

import rnn_ref  # noqa: E402
from rnn_ref.backward import simple_rnn as backward_simple_rnn  # noqa: E402
from rnn_ref.layers.activations import ACTIVATIONS  # noqa: E402
from rnn_ref.harness.judging import judge_gradients  # noqa: E402

pytestmark = pytest.mark.keras

#: The largest |f'| of the activations with one above 1 (elementwise), or of the norm of
#: the Jacobian (log_softmax: I - 1 p^T, at most 1 + sqrt(U)); exponential's is its largest
#: output. The others have |f'| <= 1 (softmax: a Jacobian norm <= 1/2; celu's 2 at exactly
#: x = 0, TensorFlow's tie, is a single point).
SLOPES = {"selu": 1.7581, "silu": 1.0998, "swish": 1.0998, "hard_silu": 1.5, "hard_swish": 1.5, "mish": 1.0886,
          "gelu": 1.1289, "log_softmax": None, "exponential": None}
#: What the hypothesis sweeps draw: the activations that keep the backward recurrence
#: non-expanding at gain <= 1 (the expanding ones are checked on small fixed cases,
#: test_every_activation_matches_keras); the judge's conditioning holds either way.
NON_EXPANDING = tuple(n for n in ACTIVATIONS if n not in SLOPES)
#: In float64 TensorFlow rounds these activations' constants (leaky_relu's slope 0.2,
#: gelu's 1/sqrt(2)) to float32 (tests/test_keras_quirks.py); rnn_ref keeps them exact, so
#: Keras's float64 gradients differ by ~1e-8 relative. Checked by finite differences instead.
KERAS_FLOAT64_DEVIANTS = ("leaky_relu", "gelu")
UNIT_ROUNDOFF = {np.dtype("float64"): 2.0 ** -53, np.dtype("float32"): 2.0 ** -24}
MASK_ROWS = ("valid", "random", "left", "right", "all_masked")

#: Examples per hypothesis test: a profile with more examples scales them up.
RNN_EXAMPLES = max(150, settings.default.max_examples)
EXAMPLES = max(60, settings.default.max_examples)

#: Largest error / budget per (what, dtype), for the report.
WORST: dict = {}


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------


class Case(NamedTuple):
    B: int
    T: int
    D: int
    U: int  # != D
    dtype: str
    seed: int
    gain: float  # of the recurrent kernel
    use_bias: bool
    activation: str
    return_sequences: bool
    return_state: bool
    go_backwards: bool
    zero_output_for_mask: bool
    mask: Optional[tuple]  # (B, T) of 0/1, each row one of MASK_ROWS
    initial_state: Optional[str]  # None, "array" or "list" (a list of one array)
    unbatched: bool  # one sequence (T, D), compared with Keras on a batch of one


@st.composite
def masks(draw, B, T):
    """A (B, T) mask as a tuple of rows of 0/1, each row of one kind of MASK_ROWS."""
    rows = []
    for kind in draw(st.lists(st.sampled_from(MASK_ROWS), min_size=B, max_size=B)):
        if kind == "valid":
            row = [1] * T
        elif kind == "all_masked":
            row = [0] * T
        elif kind == "random":
            row = [int(v) for v in draw(st.lists(st.booleans(), min_size=T, max_size=T))]
        else:
            k = draw(st.integers(1, T))  # padded steps
            row = [0] * k + [1] * (T - k) if kind == "left" else [1] * (T - k) + [0] * k
        rows.append(tuple(row))
    return tuple(rows)


def activations_for(dtype):
    """The non-expanding activations Keras computes as rnn_ref does in ``dtype``."""
    return tuple(n for n in NON_EXPANDING if not (dtype == "float64" and n in KERAS_FLOAT64_DEVIANTS))


@st.composite
def rnn_cases(draw, dtype=st.sampled_from(["float64", "float32"]), T=st.integers(1, 12)):
    """Any shape (B 1-3, T 1-12, D and U 1-6 with D != U), every option."""
    B, T, U = draw(st.integers(1, 3)), draw(T), draw(st.integers(1, 6))
    D = draw(st.integers(1, 6).filter(lambda d: d != U))
    dtype = draw(dtype)
    return Case(
        B=B, T=T, D=D, U=U,
        dtype=dtype,
        seed=draw(st.integers(0, 2**32 - 1)),
        gain=draw(st.floats(0.3, 1.0)),
        use_bias=draw(st.sampled_from([True, True, False])),
        activation=draw(st.sampled_from(activations_for(dtype))),
        return_sequences=draw(st.booleans()),
        return_state=draw(st.booleans()),
        go_backwards=draw(st.booleans()),
        zero_output_for_mask=draw(st.booleans()),
        mask=draw(st.none() | masks(B, T)),
        initial_state=draw(st.sampled_from([None, "array", "array", "list"])),
        unbatched=B == 1 and draw(st.booleans()),
    )


def orthogonal(rng, U, gain):
    """``gain`` times a random (U, U) orthogonal matrix, not symmetric."""
    q, r = np.linalg.qr(rng.standard_normal((U, U)))
    return gain * (q * np.sign(np.diag(r)))


def nonzero(rng, shape, scale=0.5):
    """Random normal values, none close to zero (so a dropped term shows)."""
    v = scale * rng.standard_normal(shape)
    v[np.abs(v) < 0.05] = 0.3
    return v


class Arrays(NamedTuple):
    x: np.ndarray  # (B, T, D), or (T, D) for one sequence
    weights: tuple  # kernel (D, U), recurrent_kernel (U, U)[, bias (U,)]
    mask: Optional[np.ndarray]  # (B, T) bool, or (T,)
    initial_state: object  # (B, U), (U,), a list of one of those, or None
    d_output: np.ndarray  # like the output
    d_state: Optional[np.ndarray]  # (B, U) or (U,), with return_state


def arrays(case):
    rng = np.random.default_rng(case.seed)
    B, T, D, U = case.B, case.T, case.D, case.U
    x = rng.uniform(-1, 1, (B, T, D))  # (B, T, D)
    weights = [rng.standard_normal((D, U)) / np.sqrt(D), orthogonal(rng, U, case.gain)]  # (D, U), (U, U)
    if case.use_bias:
        weights.append(nonzero(rng, U))  # (U,)
    return one_state_arrays(rng, case, x, weights)


def one_state_arrays(rng, case, x, weights) -> Arrays:
    """The rest of a one-state layer's case (SimpleRNN, GRU) after its inputs and weights:
    h0, the cotangents and the mask, drawn from ``rng`` in this order, cut to one sequence
    and cast to the case's dtype."""
    B, T, U = case.B, case.T, case.U
    h0 = nonzero(rng, (B, U), 1.0)  # (B, U)
    d_output = rng.standard_normal((B, T, U) if case.return_sequences else (B, U))
    d_state = rng.standard_normal((B, U))  # (B, U)
    mask = None if case.mask is None else np.array(case.mask, dtype=bool)  # (B, T)
    if case.unbatched:
        x, h0, d_output, d_state = x[0], h0[0], d_output[0], d_state[0]
        mask = None if mask is None else mask[0]
    cast = lambda a: a.astype(case.dtype)  # noqa: E731
    initial_state = {None: None, "array": cast(h0), "list": [cast(h0)]}[case.initial_state]
    return Arrays(cast(x), tuple(map(cast, weights)), mask, initial_state, cast(d_output),
                  cast(d_state) if case.return_state else None)


def options(case, a):
    """The keyword options of ``simple_rnn`` for ``case``."""
    kw = dict(activation=case.activation, return_sequences=case.return_sequences, return_state=case.return_state,
              go_backwards=case.go_backwards, zero_output_for_mask=case.zero_output_for_mask)
    if a.mask is not None:
        kw["mask"] = a.mask
    if a.initial_state is not None:
        kw["initial_state"] = a.initial_state
    return kw


def reference_grads(case, a):
    """``(output, gradients)`` of ``rnn_ref.vjp`` on ``case``."""
    out, backward = rnn_ref.vjp(rnn_ref.simple_rnn, a.x, *a.weights, **options(case, a))
    grads = backward(a.d_output, a.d_state) if case.return_state else backward(a.d_output)
    return out, grads


# ---------------------------------------------------------------------------
# Keras: the same layer under tf.GradientTape
# ---------------------------------------------------------------------------


@functools.cache
def keras_simple_rnn(U, D, dtype, use_bias, activation, return_sequences, return_state, go_backwards,
                     zero_output_for_mask):
    layer = layers.SimpleRNN(U, activation=activation, use_bias=use_bias, return_sequences=return_sequences,
                             return_state=return_state, go_backwards=go_backwards,
                             zero_output_for_mask=zero_output_for_mask, dtype=dtype)
    layer.build((None, None, D))
    return layer


def tape_gradients(layer, x, initial_states, mask, d_output, d_states, *, unbatched, return_state, use_bias):
    """GradientTape on a built Keras recurrent layer (weights already set): the gradients of
    ``sum(out * d_output) [+ sum(state_i * d_states[i]) ...]`` as ``(d_x, d_kernel,
    d_recurrent, d_bias or None, [d_initial_state, ...] or None)``, without the batch axis for
    one sequence. Shared by the SimpleRNN, LSTM and GRU tests."""
    batch = (lambda v: v[None]) if unbatched else (lambda v: v)  # Keras takes batches only
    unbatch = (lambda v: v[0]) if unbatched else (lambda v: v)
    x = tf.constant(batch(x))
    states = None if initial_states is None else [tf.constant(batch(s)) for s in initial_states]
    kwargs = {}
    if mask is not None:
        kwargs["mask"] = tf.constant(batch(mask))
    if states is not None:
        kwargs["initial_state"] = states
    with tf.GradientTape() as tape:
        tape.watch(x)
        for h in states or []:
            tape.watch(h)
        result = layer(x, **kwargs)
        out = result[0] if return_state else result
        loss = tf.reduce_sum(out * batch(d_output))
        if return_state:
            for state, d in zip(result[1:], d_states):
                loss = loss + tf.reduce_sum(state * batch(d))
    sources = [x, *layer.trainable_variables] + (states or [])
    grads = [np.asarray(g) for g in tape.gradient(loss, sources, unconnected_gradients=tf.UnconnectedGradients.ZERO)]
    d_x, d_kernel, d_recurrent, *rest = grads
    d_bias = rest.pop(0) if use_bias else None
    return unbatch(d_x), d_kernel, d_recurrent, d_bias, None if states is None else [unbatch(d) for d in rest]


def keras_grads(case, a):
    """The gradients Keras gives, in the order of ``SimpleRNNGrads`` (None where vjp gives None)."""
    layer = keras_simple_rnn(case.U, case.D, case.dtype, case.use_bias, case.activation, case.return_sequences,
                             case.return_state, case.go_backwards, case.zero_output_for_mask)
    layer.set_weights(list(a.weights))
    h0 = None if a.initial_state is None else [
        a.initial_state[0] if isinstance(a.initial_state, list) else a.initial_state]
    d_x, d_kernel, d_recurrent, d_bias, d_h0 = tape_gradients(
        layer, a.x, h0, a.mask, a.d_output, [a.d_state] if case.return_state else [],
        unbatched=case.unbatched, return_state=case.return_state, use_bias=case.use_bias)
    return rnn_ref.backward.SimpleRNNGrads(d_x, d_kernel, d_recurrent, d_bias, None if d_h0 is None else d_h0[0])


# ---------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------


def summation_bound(expected, *, B, T, D, U):
    """The largest difference between two float64 runs of rnn_ref's own backward pass that
    add the same terms in another order (test_masked_steps_add_nothing_to_weight_gradients,
    non-expanding activations at gain <= 1): sums of n terms off by about n u of their
    absolute values, over B T steps. Not used against Keras (``judge_vjp`` is)."""
    scale = max(1.0, float(np.max(np.abs(expected), where=np.isfinite(expected), initial=0.0)))
    return 4 * (B + D + U + 9) * T * UNIT_ROUNDOFF[expected.dtype] * scale


def max_diff(actual, expected):
    """max |actual - expected|, inf where one is NaN or infinite and the other not the same."""
    a = actual.astype(np.float64)
    same = (a == expected) | (np.isnan(a) & np.isnan(expected))  # equal infinities and NaN count as equal
    with np.errstate(invalid="ignore"):
        d = np.where(same, 0.0, np.abs(a - expected))
    return float(np.max(np.where(np.isnan(d), np.inf, d), initial=0.0))


def flat(grads):
    """The gradient arrays of a NamedTuple, an initial state given as a list unwrapped."""
    return [g[0] if isinstance(g, list) else g for g in grads]


def named(grads) -> dict:
    """The gradient arrays of a NamedTuple by field name: an initial state given as a list
    of one unwrapped, several as ``initial_state[i]``; None (no such argument) left out."""
    out = {}
    for name, g in zip(type(grads)._fields, grads):
        if isinstance(g, list):
            out.update({name: g[0]} if len(g) == 1 else {f"{name}[{i}]": v for i, v in enumerate(g)})
        elif g is not None:
            out[name] = g
    return out


def judge_vjp(what, gradients, a, expected, *, dtype, seed, products, rows=None):
    """Judge the backward pass ``gradients`` (arrays -> {name: gradient}, the code under
    test) on the case's arrays ``a`` against Keras's gradients ``expected`` (the same
    names) with the harness's budget (module docstring): the same names, shapes and
    dtypes, then ``judging.judge_gradients`` with the float64 run of ``gradients`` on
    ``a``'s arrays, every float array and cotangent perturbed for the conditioning.
    ``products``: one step's dot-product length (the floor adds B T for the sums over
    rows and steps; ``rows`` instead for a layer without steps, whose ``inputs`` then
    have no time axis). Returns the ``Judgement`` without raising."""
    __tracebackhide__ = True
    got = gradients(a)
    assert got.keys() == expected.keys(), f"{what}: gradients of {sorted(got)}, Keras gives {sorted(expected)}"
    for name, e in expected.items():
        g = got[name]
        assert isinstance(g, np.ndarray), f"{what}: d_{name} is {type(g).__name__}, expected an array"
        assert g.shape == e.shape, f"{what}: d_{name}.shape={g.shape}, but should be {e.shape}"
        assert g.dtype == e.dtype, f"{what}: d_{name}.dtype={g.dtype}, but should be {e.dtype}"
    x = np.asarray(a[0])  # (B, T, D) or (T, D)
    axes = {}
    if rows is None:
        rows, axes = (x.shape[0] * x.shape[1] if x.ndim == 3 else x.shape[0]), {"inputs": x.ndim - 2}
    return judge_gradients(what, lambda **arrays: gradients(a._replace(**arrays)), a._asdict(), got, expected,
                           dtype, m=products + rows, time_axes=axes, seed=seed)


def record(what, dtype, ratio):
    key = (what, str(dtype))
    WORST[key] = max(WORST.get(key, 0.0), ratio)


def _note(text):
    if hypothesis.currently_in_test_context():
        note(text)


def dims(case):
    return dict(B=case.B, T=case.T, D=case.D, U=case.U)


def check_simple_rnn(case, raising=True):
    """Compare vjp's gradients with Keras's on ``case``; return the worst error / budget
    (``raising=False``: the ``Judgement``, not checked)."""
    __tracebackhide__ = True
    _note(repr(case))
    a = arrays(case)
    out, grads = reference_grads(case, a)
    expected_out = rnn_ref.simple_rnn(a.x, *a.weights, **options(case, a))
    for o, e in zip(out if case.return_state else [out], expected_out if case.return_state else [expected_out]):
        np.testing.assert_array_equal(o, e, err_msg="vjp's output differs from simple_rnn's")
    judgement = judge_vjp(f"simple_rnn{case}", lambda arrays: named(reference_grads(case, arrays)[1]), a,
                          named(keras_grads(case, a)), dtype=case.dtype, seed=case.seed,
                          products=case.D + case.U + 1)
    if not raising:
        return judgement
    _note(f"worst error / budget = {judgement.ratio:.3g}")
    return judgement.check().ratio


# ---------------------------------------------------------------------------
# SimpleRNN against Keras
# ---------------------------------------------------------------------------


@settings(max_examples=RNN_EXAMPLES, deadline=None)
@given(case=rnn_cases())
def test_simple_rnn_gradients_match_keras(case):
    record("simple_rnn", case.dtype, check_simple_rnn(case))


OPTION_GRID = list(itertools.product(
    [False, True],  # return_sequences
    [False, True],  # return_state
    [False, True],  # go_backwards
    [False, True],  # zero_output_for_mask
    [False, True],  # mask
    [None, "array"],  # initial_state
    [False, True],  # unbatched
))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_every_option_combination_matches_keras(dtype):
    """Every combination of the options once per dtype (hypothesis draws them at random
    above; this makes sure none is left out), the non-expanding activations in turn."""
    names = activations_for(dtype)
    for i, (seq, state, backwards, zero_output, masked, init, unbatched) in enumerate(OPTION_GRID):
        B = 1 if unbatched else 3
        # left padding, a gap, every step padded; one sequence: a padded first step and a gap
        mask = ((0, 0, 1, 1, 1, 1), (1, 1, 0, 1, 1, 0), (0,) * 6)[:B] if not unbatched else ((0, 1, 1, 0, 1, 0),)
        case = Case(B=B, T=6, D=3, U=4, dtype=dtype, seed=i, gain=0.9, use_bias=i % 3 != 2,
                    activation=names[i % len(names)], return_sequences=seq, return_state=state,
                    go_backwards=backwards, zero_output_for_mask=zero_output, mask=mask if masked else None,
                    initial_state=init, unbatched=unbatched)
        record("simple_rnn option grid", dtype, check_simple_rnn(case))


@settings(max_examples=10, deadline=None)
@given(case=rnn_cases(T=st.integers(13, 60)))
def test_long_sequences_match_keras(case):
    """Up to 60 steps: errors add up over the steps, and the conditioning with them."""
    record("simple_rnn T 13-60", case.dtype, check_simple_rnn(case))


def activation_case(name, dtype, seed=0):
    """A small case with padding and every step returned, for one activation: gain 0.5 and
    T = 4 keep the expanding activations' growth small ((0.5 (1 + sqrt 4))^4 = 5 for
    log_softmax) and exponential's state finite."""
    return Case(B=2, T=4, D=3, U=4, dtype=dtype, seed=seed, gain=0.5, use_bias=True, activation=name,
                return_sequences=True, return_state=True, go_backwards=seed % 2 == 1, zero_output_for_mask=False,
                mask=((0, 1, 1, 0), (1, 1, 0, 1)), initial_state="array", unbatched=False)


# Keras's float64 gelu and leaky_relu use float32 constants: those two are compared with
# finite differences instead (test_every_activation_matches_finite_differences), not here.
KERAS_CASES = [(name, dtype) for dtype in ("float64", "float32") for name in ACTIVATIONS
               if not (dtype == "float64" and name in KERAS_FLOAT64_DEVIANTS)]


@pytest.mark.parametrize("name, dtype", KERAS_CASES)
def test_every_activation_matches_keras(name, dtype):
    for seed in range(3):
        case = activation_case(name, dtype, seed)
        expected = keras_grads(case, arrays(case))
        assert all(np.all(np.isfinite(g)) for g in flat(expected) if g is not None), f"{case}: Keras overflows"
        record("simple_rnn every activation", dtype, check_simple_rnn(case))


# ---------------------------------------------------------------------------
# Dense and Embedding against Keras
# ---------------------------------------------------------------------------


class DenseCase(NamedTuple):
    lead: tuple  # the leading axes of inputs: (), (B,) or (B, T)
    N: int
    K: int  # != N
    dtype: str
    seed: int
    use_bias: bool
    activation: Optional[str]


@st.composite
def dense_cases(draw):
    K = draw(st.integers(1, 6))
    dtype = draw(st.sampled_from(["float64", "float32"]))
    names = [n for n in ACTIVATIONS if not (dtype == "float64" and n in KERAS_FLOAT64_DEVIANTS)]
    return DenseCase(
        lead=tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=2))),
        N=draw(st.integers(1, 6).filter(lambda n: n != K)),
        K=K,
        dtype=dtype,
        seed=draw(st.integers(0, 2**32 - 1)),
        use_bias=draw(st.booleans()),
        activation=draw(st.sampled_from((None, *names))),
    )


@functools.cache
def keras_dense(N, K, dtype, use_bias, activation):
    layer = layers.Dense(K, activation=activation, use_bias=use_bias, dtype=dtype)
    layer.build((None, N))
    return layer


class DenseArrays(NamedTuple):
    x: np.ndarray  # (..., N)
    weights: tuple  # kernel (N, K)[, bias (K,)]
    d_output: np.ndarray  # (..., K)


@settings(max_examples=EXAMPLES, deadline=None)
@given(case=dense_cases())
def test_dense_gradients_match_keras(case):
    _note(repr(case))
    rng = np.random.default_rng(case.seed)
    x = rng.uniform(-1, 1, (*case.lead, case.N)).astype(case.dtype)  # (..., N)
    weights = [rng.standard_normal((case.N, case.K)) / np.sqrt(case.N)]  # (N, K)
    if case.use_bias:
        weights.append(nonzero(rng, case.K))  # (K,)
    weights = [w.astype(case.dtype) for w in weights]
    d_output = rng.standard_normal((*case.lead, case.K)).astype(case.dtype)  # (..., K)

    out, backward = rnn_ref.vjp(rnn_ref.dense, x, *weights, activation=case.activation)
    np.testing.assert_array_equal(out, rnn_ref.dense(x, *weights, activation=case.activation))

    layer = keras_dense(case.N, case.K, case.dtype, case.use_bias, case.activation)
    layer.set_weights(weights)
    batch = (lambda v: v[None]) if not case.lead else (lambda v: v)  # Keras Dense takes ndim >= 2
    xt = tf.constant(batch(x))
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(layer(xt) * batch(d_output))
    d_x, d_kernel, *d_bias = [np.asarray(g) for g in tape.gradient(loss, [xt, *layer.trainable_variables])]
    expected = rnn_ref.backward.DenseGrads(d_x if case.lead else d_x[0], d_kernel, d_bias[0] if d_bias else None)

    def gradients(arrays):
        return named(rnn_ref.vjp(rnn_ref.dense, arrays.x, *arrays.weights, activation=case.activation)[1](
            arrays.d_output))

    judgement = judge_vjp(f"dense{case}", gradients, DenseArrays(x, tuple(weights), d_output), named(expected),
                          dtype=case.dtype, seed=case.seed, products=case.N + 1, rows=int(np.prod(case.lead)))
    record("dense", case.dtype, judgement.ratio)
    judgement.check()


class EmbeddingCase(NamedTuple):
    shape: tuple  # of ids
    V: int
    E: int
    dtype: str
    seed: int


@st.composite
def embedding_cases(draw):
    return EmbeddingCase(
        shape=tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=2))),
        V=draw(st.integers(1, 6)),  # small, so that ids repeat
        E=draw(st.integers(1, 5)),
        dtype=draw(st.sampled_from(["float64", "float32"])),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@functools.cache
def keras_embedding(V, E, dtype):
    layer = layers.Embedding(V, E, dtype=dtype)
    layer.build((None, None))
    return layer


class EmbeddingArrays(NamedTuple):
    ids: np.ndarray  # (...), integers
    table: np.ndarray  # (V, E)
    d_output: np.ndarray  # (..., E)


@settings(max_examples=EXAMPLES, deadline=None)
@given(case=embedding_cases())
def test_embedding_gradient_matches_keras(case):
    """Repeated ids add up (Keras gives IndexedSlices; vjp a dense (V, E) array), -1 is the last row."""
    _note(repr(case))
    rng = np.random.default_rng(case.seed)
    ids = rng.integers(-case.V, case.V, case.shape)  # (...), negative ids too
    table = rng.standard_normal((case.V, case.E)).astype(case.dtype)  # (V, E)
    d_output = rng.standard_normal((*case.shape, case.E)).astype(case.dtype)  # (..., E)

    out, backward = rnn_ref.vjp(rnn_ref.embedding, ids, table)
    np.testing.assert_array_equal(out, rnn_ref.embedding(ids, table))

    layer = keras_embedding(case.V, case.E, case.dtype)
    layer.set_weights([table])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(tf.constant(ids)) * d_output)
    (slices,) = tape.gradient(loss, layer.trainable_variables)
    expected = rnn_ref.backward.EmbeddingGrads(np.asarray(tf.convert_to_tensor(slices)))

    def gradients(arrays):
        return named(rnn_ref.vjp(rnn_ref.embedding, arrays.ids, arrays.table)[1](arrays.d_output))

    judgement = judge_vjp(f"embedding{case}", gradients, EmbeddingArrays(ids, table, d_output), named(expected),
                          dtype=case.dtype, seed=case.seed, products=0, rows=ids.size)
    record("embedding", case.dtype, judgement.ratio)
    judgement.check()


def test_embedding_gradient_of_repeated_and_negative_ids_by_hand():
    table = np.arange(8.0).reshape(4, 2)  # (V, E) = (4, 2)
    ids = np.array([[1, 1, -1], [3, 0, 1]])  # id -1 reads row 3
    _, backward = rnn_ref.vjp(rnn_ref.embedding, ids, table)
    d = np.ones((2, 3, 2))
    np.testing.assert_array_equal(backward(d).embeddings, [[1, 1], [3, 3], [0, 0], [2, 2]])


# ---------------------------------------------------------------------------
# Finite differences (float64)
# ---------------------------------------------------------------------------

FD_STEP = 1e-6


def loss_and_args(case):
    """``(loss(*args), args, grads)``: the scalar vjp differentiates, its array arguments
    (x, kernel, recurrent_kernel[, bias][, h0]) and vjp's gradients in the same order."""
    a = arrays(case)
    kw = options(case, a)
    h0 = kw.pop("initial_state", None)
    h0 = h0[0] if isinstance(h0, list) else h0

    def loss(x, kernel, recurrent_kernel, *rest, absolute=False):
        """sum(out * d_output) [+ sum(state * d_state)]; with ``absolute``, of the absolute values."""
        bias = rest[0] if case.use_bias else None
        init = rest[-1] if h0 is not None else None
        result = rnn_ref.simple_rnn(x, kernel, recurrent_kernel, bias, initial_state=init, **kw)
        out, state = result if case.return_state else (result, None)
        f = np.abs if absolute else (lambda v: v)
        total = np.sum(f(out * a.d_output))
        return total + np.sum(f(state * a.d_state)) if case.return_state else total

    args = [a.x, *a.weights] + ([h0] if h0 is not None else [])
    _, grads = reference_grads(case, a)
    grads = [g for g in flat(grads) if g is not None]
    return loss, args, grads


def centred_differences(loss, args):
    """d loss / d args, one entry at a time: (f(a + h) - f(a - h)) / 2h."""
    numeric = []
    for i, arg in enumerate(args):
        g = np.zeros_like(arg)
        for idx in np.ndindex(arg.shape):
            plus, minus = [a.copy() for a in args], [a.copy() for a in args]
            plus[i][idx] += FD_STEP
            minus[i][idx] -= FD_STEP
            g[idx] = (loss(*plus) - loss(*minus)) / (2 * FD_STEP)
        numeric.append(g)
    return numeric


def cs231n_relative_error(a, b, floor=1e-3):
    """max |a - b| / max(|a|, |b|) over the entries where max(|a|, |b|) >= floor."""
    big = np.maximum(np.abs(a), np.abs(b))
    rel = np.abs(a - b)[big >= floor] / big[big >= floor]
    return float(np.max(rel, initial=0.0))


FD_CASES = {
    # every option at least once, on smooth activations (test_every_activation_matches_finite_differences
    # has the others, on a case whose pre-activations lie farther than h from any kink)
    "tanh_mask_initial_state": dict(activation="tanh", mask=((0, 0, 1, 1, 0), (1, 0, 1, 0, 1)), initial_state="array",
                                    return_sequences=True, return_state=True),
    "sigmoid_go_backwards": dict(activation="sigmoid", go_backwards=True, mask=((1, 1, 0, 1, 1), (0, 0, 0, 0, 0)),
                                 initial_state="list", return_state=True),
    "linear_zero_output_for_mask": dict(activation="linear", zero_output_for_mask=True, return_sequences=True,
                                        mask=((1, 0, 0, 1, 1), (1, 1, 1, 1, 0)), initial_state="array"),
    "tanh_unbatched": dict(activation="tanh", B=1, unbatched=True, return_sequences=True, return_state=True,
                           initial_state="array", go_backwards=True, mask=((0, 1, 1, 0, 1),)),
    "tanh_last_output": dict(activation="tanh", use_bias=False, mask=((1, 1, 1, 0, 0), (1, 1, 1, 1, 1))),
}


def fixed_case(**changes):
    case = Case(B=2, T=5, D=3, U=4, dtype="float64", seed=11, gain=0.9, use_bias=True, activation="tanh",
                return_sequences=False, return_state=False, go_backwards=False, zero_output_for_mask=False,
                mask=None, initial_state=None, unbatched=False)
    return case._replace(**changes)


def fd_bound(loss_terms):
    """The largest |centred difference - gradient| expected: each evaluation of the loss is off
    by a few u of the sum S of the absolute values of its terms, so the difference quotient by
    about u S / h (8 u S / h allowed); the truncation error, h^2 / 6 times the third derivative,
    is below 1e-11 here."""
    return 8 * UNIT_ROUNDOFF[np.dtype("float64")] * loss_terms / FD_STEP + 1e-11


def check_finite_differences(case, what):
    """vjp's gradients on the float64 ``case`` against centred differences, within ``fd_bound``."""
    __tracebackhide__ = True
    loss, args, grads = loss_and_args(case)
    numeric = centred_differences(loss, args)
    limit = fd_bound(loss(*args, absolute=True))
    for field, g, n in zip(("inputs", "kernel", "recurrent_kernel", "bias", "initial_state"), grads, numeric):
        diff, rel = float(np.max(np.abs(g - n))), cs231n_relative_error(g, n)
        record("finite differences: cs231n rel", "float64", rel)
        record("finite differences: |diff| / bound", "float64", diff / limit)
        assert diff <= limit, (f"{what}: d_{field}: max |vjp - finite difference| = {diff:.3g} > {limit:.3g} "
                               f"(cs231n relative error {rel:.3g})")


@pytest.mark.parametrize("name", FD_CASES)
def test_gradients_match_centred_finite_differences(name):
    check_finite_differences(fixed_case(**FD_CASES[name]), name)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_every_activation_matches_finite_differences(name):
    """float64 leaky_relu and gelu are checked here only (KERAS_FLOAT64_DEVIANTS)."""
    check_finite_differences(activation_case(name, "float64"), name)


def test_dense_gradients_match_centred_finite_differences():
    rng = np.random.default_rng(3)
    x, kernel, bias = rng.uniform(-1, 1, (2, 3, 4)), rng.standard_normal((4, 5)) / 2, nonzero(rng, 5)
    d = rng.standard_normal((2, 3, 5))
    out, backward = rnn_ref.vjp(rnn_ref.dense, x, kernel, bias, activation="sigmoid")
    numeric = centred_differences(lambda *a: np.sum(rnn_ref.dense(*a, activation="sigmoid") * d), [x, kernel, bias])
    limit = fd_bound(np.sum(np.abs(out * d)))
    for g, n in zip(backward(d), numeric):
        record("finite differences: cs231n rel", "float64", cs231n_relative_error(g, n))
        record("finite differences: |diff| / bound", "float64", float(np.max(np.abs(g - n))) / limit)
        assert np.max(np.abs(g - n)) <= limit


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------


@settings(max_examples=EXAMPLES, deadline=None)
@given(case=rnn_cases())
def test_last_output_gradient_equals_sequence_gradient_zero_but_last(case):
    """return_sequences=False is return_sequences=True with d_output zero except the last
    step: the same gradients, exactly (the zeros add nothing)."""
    case = case._replace(return_sequences=False)
    _note(repr(case))
    a = arrays(case)
    _, last = reference_grads(case, a)
    d_seq = np.zeros((*a.x.shape[:-1], case.U), dtype=case.dtype)  # (B, T, U) or (T, U)
    d_seq[..., -1, :] = a.d_output
    _, seq = reference_grads(case._replace(return_sequences=True), a._replace(d_output=d_seq))
    for name, g_last, g_seq in zip(last._fields, flat(last), flat(seq)):
        np.testing.assert_array_equal(g_last, g_seq, err_msg=f"d_{name}")


def without_padded_steps(case, a, b):
    """Row b of ``case`` with its padded steps removed, as a case of one row and its arrays;
    the cotangent of each repeated output moved to the step that produced it. None if
    every step of the row is padded."""
    m = np.array(case.mask[b], dtype=bool)  # (T,), input order
    if not m.any():
        return None
    keep = m[::-1] if case.go_backwards else m  # (T,), processing order (the order of the outputs)
    valid = np.flatnonzero(keep)  # processing steps that ran
    d_out = np.zeros((len(valid), case.U), dtype=case.dtype)  # (T', U)
    last = None  # index in valid of the step whose output is repeated
    for k in range(case.T):
        if keep[k]:
            last = int(np.searchsorted(valid, k))
            d_out[last] += a.d_output[b, k]
        elif last is not None and not case.zero_output_for_mask:
            d_out[last] += a.d_output[b, k]  # the repeated output is that step's output
        # else: a zero output, before the first valid step or with zero_output_for_mask
    row = case._replace(B=1, T=len(valid), mask=None)
    h0 = np.asarray(a.initial_state)[b:b + 1]  # (1, U)
    return row, a._replace(x=a.x[b:b + 1, m], mask=None, initial_state=h0, d_output=d_out[None],
                           d_state=a.d_state[b:b + 1])


@settings(max_examples=EXAMPLES, deadline=None)
@given(case=rnn_cases(dtype=st.just("float64")), data=st.data())
def test_masked_steps_add_nothing_to_weight_gradients(case, data):
    """Each row with its padded steps removed gives the same gradients: padded steps add
    nothing to the weight gradients, their inputs get zero gradient, the state's gradient
    passes through them, and a repeated output's cotangent reaches the step that produced it."""
    case = case._replace(unbatched=False, return_sequences=True, return_state=True, initial_state="array",
                         mask=data.draw(masks(case.B, case.T), label="mask"))
    _note(repr(case))
    a = arrays(case)
    _, full = reference_grads(case, a)
    m = np.array(case.mask, dtype=bool)  # (B, T)
    assert np.all(full.inputs[~m] == 0), "padded steps' inputs have a gradient"
    d_kernel, d_recurrent = np.zeros_like(full.kernel), np.zeros_like(full.recurrent_kernel)
    d_bias = None if full.bias is None else np.zeros_like(full.bias)
    for b in range(case.B):
        short = without_padded_steps(case, a, b)
        if short is None:  # every step padded: the initial state is the final state
            np.testing.assert_array_equal(full.initial_state[b], a.d_state[b])
            continue
        _, g = reference_grads(*short)
        d_kernel += g.kernel
        d_recurrent += g.recurrent_kernel
        if d_bias is not None:
            d_bias += g.bias
        tol = summation_bound(g.initial_state, **dims(case))
        np.testing.assert_allclose(full.inputs[b, m[b]], g.inputs[0], rtol=0, atol=tol, err_msg=f"d_inputs row {b}")
        np.testing.assert_allclose(full.initial_state[b], g.initial_state[0], rtol=0, atol=tol,
                                   err_msg=f"d_initial_state row {b}")
    for name, whole, summed in (("kernel", full.kernel, d_kernel), ("recurrent_kernel", full.recurrent_kernel,
                                                                    d_recurrent), ("bias", full.bias, d_bias)):
        if whole is not None:
            np.testing.assert_allclose(whole, summed, rtol=0, atol=summation_bound(whole, **dims(case)), err_msg=f"d_{name}")


def test_fully_masked_batch_gives_zero_weight_gradients():
    case = fixed_case(mask=((0,) * 5, (0,) * 5), initial_state="array", return_sequences=True, return_state=True)
    a = arrays(case)
    _, g = reference_grads(case, a)
    for name in ("inputs", "kernel", "recurrent_kernel", "bias"):
        assert np.all(getattr(g, name) == 0), f"d_{name} is not zero"
    np.testing.assert_array_equal(g.initial_state, a.d_state)  # the final state is the initial state


# ---------------------------------------------------------------------------
# The comparison catches a classic bug
# ---------------------------------------------------------------------------


def tanh_derivative_at_pre_activation(name, x, y, dy):
    """The classic bug: tanh'(x) computed as 1 - x^2, from the pre-activation x, not from y."""
    if name == "tanh":
        return dy * (1 - x * x)
    return ORIGINAL_ACTIVATION_VJP(name, x, y, dy)


ORIGINAL_ACTIVATION_VJP = backward_simple_rnn.activation_vjp
#: What a rejected backward pass's failure says: its float32 gradients over the budget, or
#: (float64, where its result is the truth) Keras off its float64 gradients.
MUTANT_FAILURE = r"exceed the budget|Keras disagrees with the float64 reference"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_comparison_catches_tanh_derivative_at_pre_activation(dtype, monkeypatch):
    case = fixed_case(B=3, dtype=dtype, mask=((0, 0, 1, 1, 1), (1, 1, 1, 0, 0), (1, 0, 1, 1, 0)),
                      initial_state="array", return_sequences=True, return_state=True)
    ratio = check_simple_rnn(case, raising=False).ratio
    monkeypatch.setattr(backward_simple_rnn, "activation_vjp", tanh_derivative_at_pre_activation)
    judgement = check_simple_rnn(case, raising=False)  # the mutant in the float64 truth too, as a bug would be
    record("tanh mutant (must be > 1)", dtype, judgement.ratio)
    assert ratio <= 1, f"the reference itself is off: {ratio:.3g} of the budget"
    assert judgement.ratio > 1, f"the mutant passes: {judgement.ratio:.3g} of the budget"
    with pytest.raises(AssertionError, match=MUTANT_FAILURE):
        judgement.check()


# ---------------------------------------------------------------------------
# API and errors
# ---------------------------------------------------------------------------


def test_gradients_are_named_like_the_arguments():
    case = fixed_case(initial_state="list", return_state=True)
    a = arrays(case)
    _, g = reference_grads(case, a)
    assert type(g)._fields == ("inputs", "kernel", "recurrent_kernel", "bias", "initial_state")
    assert isinstance(g.initial_state, list) and g.initial_state[0].shape == (2, 4)  # like it was given
    bare = case._replace(use_bias=False, initial_state=None)
    _, g = reference_grads(bare, arrays(bare))
    assert g.bias is None and g.initial_state is None
    _, backward = rnn_ref.vjp(rnn_ref.dense, np.ones((2, 3)), np.ones((3, 4)))
    assert type(backward(np.ones((2, 4))))._fields == ("inputs", "kernel", "bias")
    _, backward = rnn_ref.vjp(rnn_ref.embedding, [0, 1], np.ones((3, 2)))
    assert type(backward(np.ones((2, 2))))._fields == ("embeddings",)


@pytest.mark.parametrize("name, gates", [("lstm", 4), ("gru", 3)])
def test_vjp_dispatches_the_gated_layers(name, gates):
    """rnn_ref.vjp runs their own backward passes (tests/test_vjp_lstm.py, test_vjp_gru.py)."""
    rng = np.random.default_rng(0)
    x, k, r = rng.normal(size=(2, 3, 3)), rng.normal(size=(3, gates * 2)), rng.normal(size=(2, gates * 2))
    out, backward = rnn_ref.vjp(getattr(rnn_ref, name), x, k, r)
    np.testing.assert_array_equal(out, getattr(rnn_ref, name)(x, k, r))
    grads = backward(np.ones_like(out))
    assert grads.kernel.shape == k.shape and grads.inputs.shape == x.shape and grads.bias is None


def test_vjp_dispatches_bidirectional():
    """rnn_ref.vjp runs backward_bidirectional (tests/test_vjp_bidirectional.py compares it with Keras)."""
    rng = np.random.default_rng(0)
    x, k, r = rng.normal(size=(1, 2, 3)), rng.normal(size=(3, 2)), rng.normal(size=(2, 2))
    out, backward = rnn_ref.vjp(rnn_ref.bidirectional, rnn_ref.simple_rnn, x, (k, r), (k, r))
    np.testing.assert_array_equal(out, rnn_ref.bidirectional(rnn_ref.simple_rnn, x, (k, r), (k, r)))
    grads = backward(np.ones_like(out))
    assert grads.inputs.shape == x.shape and grads.forward.kernel.shape == k.shape


X, K, R = np.ones((2, 4, 3)), np.ones((3, 5)), np.eye(5)  # (B, T, D), (D, U), (U, U)
ERRORS = {  # id: (call, exception, message)
    "unknown_function": (lambda: rnn_ref.vjp(print, 1), TypeError, r"vjp supports rnn_ref.simple_rnn"),
    "bad_call": (lambda: rnn_ref.vjp(rnn_ref.simple_rnn, X, K), TypeError, r"recurrent_kernel"),
    "unknown_activation": (lambda: rnn_ref.vjp(rnn_ref.simple_rnn, X, K, R, activation="gelux"), ValueError,
                           r"activation must be a Keras activation name .* got 'gelux'"),
    "callable_activation": (lambda: rnn_ref.vjp(rnn_ref.simple_rnn, X, K, R, activation=np.sin),
                            TypeError, r"pass a Keras activation name, got the callable 'sin'"),
    "missing_d_state": (lambda: rnn_ref.vjp(rnn_ref.simple_rnn, X, K, R, return_state=True)[1](np.ones((2, 5))),
                        TypeError, r"takes \(d_output, d_final_state\), got 1"),
    "d_output_shape": (lambda: rnn_ref.vjp(rnn_ref.simple_rnn, X, K, R)[1](np.ones((2, 4, 5))), ValueError,
                       r"d_output must have shape \(B, U\) = \(2, 5\), got \(2, 4, 5\)"),
    "d_output_sequence_shape": (
        lambda: rnn_ref.vjp(rnn_ref.simple_rnn, X, K, R, return_sequences=True)[1](np.ones((2, 5))), ValueError,
        r"d_output must have shape \(B, T, U\) = \(2, 4, 5\), got \(2, 5\)"),
}


@pytest.mark.parametrize("name", ERRORS)
def test_errors_say_what_was_expected(name):
    call, exception, message = ERRORS[name]
    with pytest.raises(exception, match=message):
        call()


def test_report_worst_errors():
    """Print the largest error / budget per comparison (run with -s); runs last in this file."""
    for (what, dtype), ratio in sorted(WORST.items()):
        print(f"\n{what:36s} {dtype:8s} worst {ratio:.3g}", end="")
