"""NaN and infinity: rnn_ref.simple_rnn against live Keras, position by position.

Each property draws a small float32 case (random asymmetric weights, non-zero
biases, D != U), plants NaN, infinities or huge values in it, and runs it
through ``rnn_ref.simple_rnn`` and a Keras ``SimpleRNN`` layer with the same
weights. NaN, +inf and -inf must sit at exactly the same positions in both,
and at the positions an independent float64 emulation of the recurrence
predicts; finite values must agree within a bound derived for the case
(``emulate`` below).

The emulation follows the equation element by element in float64 and rounds
the state to float32 after each step, so it overflows where float32 does.
Wherever float32 rounding could decide between a finite and a non-finite
result (a sum of finite terms near the float32 maximum, an exp() argument
near 88.72), it reports the case as ambiguous and hypothesis discards it:
there, Keras and a correct reference may legitimately disagree, and the
cases are built (weights and inputs at separated scales) so that this is rare.

Error bound (componentwise, for any order of summation, Higham ch. 3): a
float32 pre-activation ``a = sum of m = D + U + 1 terms`` (x_d K_du, b_u,
h_j R_ju) is computed with error at most ``gamma_m * S`` where
``S = sum |terms|`` and ``gamma_m = m u / (1 - m u)``, u = 2^-24; an error e_j
already in h_j adds ``sum_j |R_ju| e_j``. The activation, monotonic here,
turns an error E in ``a`` into at most ``max(|act(a + E) - act(a)|,
|act(a) - act(a - E)|)``, and its own evaluation and the final rounding add
``16 u |h|`` (NumPy's SIMD and TensorFlow's tanh/exp are within 4 ulp, 2 u
each, plus half an ulp of rounding; 16 u doubles that). TensorFlow flushes
subnormals to zero, so one float32 ``tiny`` (1.2e-38) is added per element
and step. Both implementations must lie within that bound of the emulation;
they are compared with each other within twice the bound. The bound is
worst-case, so it is loose (10-100x the errors seen) but still orders of
magnitude below the O(1e-2) differences a wrong formula makes.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import assume, event, given, note, strategies as st

pytest.importorskip("keras")

import rnn_ref  # noqa: E402
from rnn_ref.harness.cases import orthogonal  # noqa: E402
from rnn_ref.harness.oracle import KerasOracle  # noqa: E402

from model_judging import judge_call  # noqa: E402

pytestmark = [pytest.mark.keras, pytest.mark.platform]

F32 = np.float32
U_ROUND = 2.0**-24
MAX32 = float(np.finfo(F32).max)
TINY32 = float(np.finfo(F32).tiny)

#: Monotonic activations in float64, for the emulation's error bound.
ACT64 = {
    "tanh": np.tanh,
    "sigmoid": lambda a: 1.0 / (1.0 + np.exp(-a)),
    "softsign": lambda a: a / (1.0 + np.abs(a)),
    "relu": lambda a: np.maximum(a, 0.0),
    "linear": lambda a: a,
    "exponential": np.exp,
}


@pytest.fixture(scope="module")
def keras_rnn():
    return KerasOracle()


# ---------------------------------------------------------------------------
# The emulation and the comparison
# ---------------------------------------------------------------------------


def float32_sum(terms):
    """What a float32 sum of ``terms`` (axis 1) gives in every summation order, with or
    without fused multiply-adds: (value, S = sum of |finite terms|, undecided).

    A float32 partial sum overflows to +-inf once it leaves the float32 range,
    and with fused multiply-adds a product is never rounded alone, so the
    result is decided by the partial sums, whose order is the implementation's.
    All partial sums lie between -N and P (the sums of the negative and the
    positive finite terms). So: a NaN term, or +inf and -inf terms, give NaN;
    if P and N are both below MAX/2, nothing can overflow; if one side is
    below MAX/2 and the exact total is beyond 2 MAX (or an infinite term has
    that sign), every order ends at that infinity. Anything else is undecided.
    """
    finite = np.isfinite(terms)
    P = np.where(finite & (terms > 0), terms, 0.0).sum(axis=1)
    N = -np.where(finite & (terms < 0), terms, 0.0).sum(axis=1)
    nan = np.isnan(terms).any(axis=1) | (np.isposinf(terms).any(axis=1) & np.isneginf(terms).any(axis=1))
    pinf = ~nan & np.isposinf(terms).any(axis=1)
    ninf = ~nan & np.isneginf(terms).any(axis=1)
    exact = P - N
    half = MAX32 / 2
    to_pinf = ~nan & (N < half) & (pinf | (~ninf & (exact >= 2 * MAX32)))
    to_ninf = ~nan & (P < half) & (ninf | (~pinf & (exact <= -2 * MAX32)))
    stays_finite = ~nan & ~pinf & ~ninf & (P < half) & (N < half)
    undecided = ~(nan | to_pinf | to_ninf | stays_finite)
    value = np.where(nan, np.nan, np.where(to_pinf, np.inf, np.where(to_ninf, -np.inf, exact)))
    return value, P + N, undecided


def emulate(x, kernel, recurrent_kernel, bias, activation, mask=None, go_backwards=False,
            zero_output_for_mask=False):
    """The float32 recurrence emulated in float64, with its error bound.

    Returns (outputs (B, T, U), bound (B, T, U), ambiguous): outputs in
    processing order, every element a float32 value (or NaN/inf); bound the
    largest error a correct float32 implementation can have there.
    """
    x = np.asarray(x, np.float64)
    K = np.asarray(kernel, np.float64)
    R = np.asarray(recurrent_kernel, np.float64)
    b = np.zeros(R.shape[0]) if bias is None else np.asarray(bias, np.float64)
    if go_backwards:
        x = x[:, ::-1]
        mask = None if mask is None else mask[:, ::-1]
    B, T, D = x.shape
    U = R.shape[0]
    m = D + U + 1
    gamma = m * U_ROUND / (1 - m * U_ROUND)
    act = ACT64[activation]
    h, e_h = np.zeros((B, U)), np.zeros((B, U))  # state and its error bound
    out, e_out = np.zeros((B, U)), np.zeros((B, U))
    outputs, bounds = np.zeros((B, T, U)), np.zeros((B, T, U))
    ambiguous = False
    with np.errstate(all="ignore"):
        for t in range(T):
            terms = np.concatenate(
                [x[:, t, :, None] * K[None], np.broadcast_to(b, (B, 1, U)), h[:, :, None] * R[None]], axis=1
            )  # (B, m, U); products of float32 values are exact in float64
            a, S, undecided = float32_sum(terms)
            ambiguous |= bool(np.any(undecided))
            finite = np.isfinite(a)
            carried = e_h @ np.abs(R)  # (B, U)
            e_a = np.where(finite, gamma * (S + carried) + carried + m * TINY32, 0.0)
            a0 = np.where(finite, a, 0.0)
            h_new = act(a)
            lo, hi = act(a0 - e_a), act(a0 + e_a)
            e_act = np.maximum(np.abs(hi - act(a0)), np.abs(act(a0) - lo))
            big = np.maximum(np.abs(lo), np.abs(hi)) * (1 + 16 * U_ROUND) > MAX32
            small = np.minimum(np.abs(lo), np.abs(hi)) * (1 - 16 * U_ROUND) > MAX32
            ambiguous |= bool(np.any(finite & (big != small)))  # overflow of act(a) undecided
            h32 = h_new.astype(F32).astype(np.float64)  # overflows to inf like float32
            e_new = np.where(finite & np.isfinite(h32), e_act + 16 * U_ROUND * np.abs(h32) + TINY32, 0.0)
            if mask is None:
                h, e_h, out, e_out = h32, e_new, h32, e_new
            else:
                keep = np.asarray(mask[:, t], bool)[:, None]
                h, e_h = np.where(keep, h32, h), np.where(keep, e_new, e_h)
                held, e_held = (0.0, 0.0) if zero_output_for_mask else (out, e_out)
                out, e_out = np.where(keep, h32, held), np.where(keep, e_new, e_held)
            outputs[:, t], bounds[:, t] = out, e_out
    return outputs, bounds, ambiguous


def nonfinite_map(a):
    a = np.asarray(a, np.float64)
    return np.stack([np.isnan(a), np.isposinf(a), np.isneginf(a)])


def assert_agree(label, got, want, bound):
    """NaN, +inf and -inf at the same positions; finite values within ``bound``."""
    __tracebackhide__ = True
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{label}: shape {got.shape}, expected {want.shape}"
    kinds = ("NaN", "+inf", "-inf")
    for kind, g, w in zip(kinds, nonfinite_map(got), nonfinite_map(want)):
        if not np.array_equal(g, w):
            i = tuple(int(j) for j in np.argwhere(g != w)[0])
            raise AssertionError(
                f"{label}: {kind} positions differ ({int((g != w).sum())} elements); first at {i}: "
                f"got {got[i]!r}, expected {want[i]!r}"
            )
    both = np.isfinite(got) & np.isfinite(want)
    with np.errstate(invalid="ignore"):
        err = np.where(both, np.abs(got - want), 0.0)
    if np.any(err > bound):
        i = tuple(int(j) for j in np.argwhere(err > bound)[0])
        raise AssertionError(
            f"{label}: {int((err > bound).sum())} finite values differ beyond the bound; first at {i}: "
            f"got {got[i]!r}, expected {want[i]!r}, |diff| {err[i]:.3g} > bound {bound[i]:.3g}"
        )


class Case(NamedTuple):
    x: np.ndarray  # (B, T, D) float32
    kernel: np.ndarray  # (D, U)
    recurrent_kernel: np.ndarray  # (U, U)
    bias: np.ndarray  # (U,), no zeros
    activation: str
    mask: np.ndarray | None = None  # (B, T) bool
    go_backwards: bool = False
    zero_output_for_mask: bool = False

    def kwargs(self):
        return dict(
            inputs=self.x, kernel=self.kernel, recurrent_kernel=self.recurrent_kernel, bias=self.bias,
            activation=self.activation, mask=self.mask, go_backwards=self.go_backwards,
            zero_output_for_mask=self.zero_output_for_mask, return_sequences=True,
        )


def check_against_keras(case: Case, keras_rnn, *, drawn=True):
    """Run ``case`` through rnn_ref, Keras and the emulation and compare all three;
    return (ours, keras), outputs (B, T, U) in processing order. A drawn case
    that the emulation finds ambiguous is discarded; a hand-made one must not be."""
    kw = case.kwargs()
    with np.errstate(all="ignore"):
        ours = rnn_ref.simple_rnn(**kw)
    keras = keras_rnn(**kw)
    emulated, bound, ambiguous = emulate(
        case.x, case.kernel, case.recurrent_kernel, case.bias, case.activation,
        case.mask, case.go_backwards, case.zero_output_for_mask,
    )
    if drawn:
        assume(not ambiguous)
        note(f"rnn_ref:\n{ours}\nKeras:\n{keras}")
    else:
        assert not ambiguous, "the hand-made case is ambiguous in float32"
    assert_agree("Keras vs emulation", keras, emulated, bound)
    assert_agree("rnn_ref vs emulation", ours, emulated, bound)
    assert_agree("rnn_ref vs Keras", ours, keras, 2 * bound)
    return ours, keras


# ---------------------------------------------------------------------------
# Strategies: moderate weights (Glorot-like kernel, recurrent gain 0.9,
# non-zero biases); D != U from a few sizes so each Keras layer is built once.
# ---------------------------------------------------------------------------

SIZES = [(2, 4), (3, 5), (4, 3)]  # (D, U)


def moderate_weights(rng, D, U):
    limit = np.sqrt(6.0 / (D + U))
    kernel = rng.uniform(0.3, 1.0, (D, U)) * limit * rng.choice([-1, 1], (D, U))  # no zeros
    recurrent = orthogonal(rng, U, 0.9)
    bias = rng.uniform(0.1, 0.6, U) * rng.choice([-1, 1], U)  # non-zero
    return kernel.astype(F32), recurrent.astype(F32), bias.astype(F32)


@st.composite
def base(draw, activations, max_T=8):
    D, U = draw(st.sampled_from(SIZES), label="(D, U)")
    B = draw(st.integers(2, 4), label="B")
    T = draw(st.integers(1, max_T), label="T")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    kernel, recurrent, bias = moderate_weights(rng, D, U)
    x = rng.uniform(-1, 1, (B, T, D)).astype(F32)
    return Case(x, kernel, recurrent, bias, draw(st.sampled_from(activations), label="activation"),
                go_backwards=draw(st.booleans(), label="go_backwards")), rng


def step_index(case: Case, t: int) -> int:
    """The processing index of input step t (Keras keeps go_backwards outputs in processing order)."""
    return case.x.shape[1] - 1 - t if case.go_backwards else t


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------


@given(data=st.data())
def test_nan_input_propagates_from_its_step_in_its_row_only(data, keras_rnn):
    case, rng = data.draw(base(("tanh", "relu", "sigmoid", "exponential", "softsign")), label="case")
    B, T, D = case.x.shape
    b = data.draw(st.integers(0, B - 1), label="row")
    t = data.draw(st.integers(0, T - 1), label="step")
    d = data.draw(st.integers(0, D - 1), label="feature")
    with np.errstate(all="ignore"):
        clean = rnn_ref.simple_rnn(**case.kwargs())  # (B, T, U), before the NaN is planted
    case.x[b, t, d] = np.nan
    ours, keras = check_against_keras(case, keras_rnn)

    # Every unit of that row is NaN from that step on (on top of any NaN the
    # clean run had: exponential can overflow to inf and then to inf - inf);
    # the other rows are exactly what they were without the NaN.
    planted = np.zeros(ours.shape, bool)
    planted[b, step_index(case, t):] = True
    expected = planted | np.isnan(clean)
    for name, got in (("rnn_ref", ours), ("Keras", keras)):
        assert np.array_equal(np.isnan(got), expected), f"{name} NaN at {np.argwhere(np.isnan(got)).tolist()}"
    others = np.arange(B) != b
    np.testing.assert_array_equal(ours[others], clean[others])


@given(data=st.data())
def test_nan_at_a_masked_step_does_not_leak(data, keras_rnn):
    case, rng = data.draw(base(("tanh", "relu", "sigmoid")), label="case")
    B, T, D = case.x.shape
    mask = rng.random((B, T)) < 0.6
    b = data.draw(st.integers(0, B - 1), label="row")
    t = data.draw(st.integers(0, T - 1), label="step")
    mask[b, t] = False
    whole_step = data.draw(st.booleans(), label="whole step NaN")
    if whole_step:
        case.x[b, t, :] = np.nan
    else:
        case.x[b, t, data.draw(st.integers(0, D - 1), label="feature")] = np.nan
    case.x[~mask] = np.where(rng.random(case.x[~mask].shape) < 0.3, np.nan, case.x[~mask])  # padding garbage
    case = case._replace(mask=mask, zero_output_for_mask=data.draw(st.booleans(), label="zero_output_for_mask"))
    ours, keras = check_against_keras(case, keras_rnn)
    assert np.all(np.isfinite(ours)), "a NaN at a masked step leaked into the outputs"
    state = rnn_ref.simple_rnn(**{**case.kwargs(), "return_sequences": False, "return_state": True})[1]
    assert np.all(np.isfinite(state)), "a NaN at a masked step leaked into the final state"


@given(data=st.data())
def test_inf_input_saturates_tanh(data, keras_rnn):
    case, rng = data.draw(base(("tanh", "sigmoid", "softsign")), label="case")
    B, T, D = case.x.shape
    n = data.draw(st.integers(1, 3), label="number of infs")
    for _ in range(n):
        b, t, d = (data.draw(st.integers(0, s - 1)) for s in (B, T, D))
        case.x[b, t, d] = data.draw(st.sampled_from([np.inf, -np.inf]))
    ours, keras = check_against_keras(case, keras_rnn)
    counts = np.isinf(case.x).sum(axis=2)  # infs per (row, step)
    for b, t, d in np.argwhere(np.isinf(case.x)):
        if counts[b, t] == 1 and case.activation == "tanh":
            # One inf at that step: every pre-activation is +-inf, so tanh gives exactly +-1.
            k = step_index(case, t)
            want = np.sign(case.x[b, t, d] * case.kernel[d]).astype(F32)
            np.testing.assert_array_equal(ours[b, k], want)
            np.testing.assert_array_equal(keras[b, k], want)
    if (counts <= 1).all() and case.activation != "softsign":
        # softsign(inf) is inf / inf = NaN in Keras as well; the saturating ones stay finite.
        assert np.all(np.isfinite(ours)) and np.all(np.isfinite(keras))
    event(f"non-finite outputs: {bool(np.any(~np.isfinite(ours)))}")


@st.composite
def overflow_cases(draw):
    """Weights and inputs at separated scales, so that float32 overflow either
    surely happens or surely does not: entries of magnitude 0.25 to 1, except
    one row of the kernel and one of the recurrent kernel that may be 1e15
    times larger, and input spikes of +-1e30 or +-inf. A huge row makes one
    huge term per unit, whose sign decides the overflow."""
    D, U = draw(st.sampled_from(SIZES), label="(D, U)")
    B = draw(st.integers(1, 3), label="B")
    T = draw(st.integers(1, 6), label="T")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    activation = draw(st.sampled_from(["relu", "exponential", "linear"]), label="activation")
    sign = lambda shape: rng.choice([-1.0, 1.0], shape)  # noqa: E731
    kernel = rng.uniform(0.25, 1.0, (D, U)) * sign((D, U))
    recurrent = 0.5 * rng.uniform(0.25, 1.0, (U, U)) * sign((U, U))
    if draw(st.booleans(), label="huge kernel row"):
        kernel[draw(st.integers(0, D - 1))] *= 1e15
    if draw(st.booleans(), label="huge recurrent row"):
        recurrent[draw(st.integers(0, U - 1))] *= 1e15
    bias = rng.uniform(0.1, 1.0, U) * sign(U)
    x = rng.uniform(0.25, 1.0, (B, T, D)) * sign((B, T, D))
    for _ in range(draw(st.integers(0, 2), label="spikes")):
        b, t, d = (draw(st.integers(0, s - 1)) for s in (B, T, D))
        x[b, t, d] = draw(st.sampled_from([1e30, -1e30, np.inf, -np.inf]), label="spike")
    return Case(x.astype(F32), kernel.astype(F32), recurrent.astype(F32), bias.astype(F32), activation,
                go_backwards=draw(st.booleans(), label="go_backwards"))


@given(case=overflow_cases())
def test_overflow_gives_inf_and_nan_where_keras_does(case, keras_rnn):
    ours, keras = check_against_keras(case, keras_rnn)
    event(f"{case.activation}: inf {bool(np.isinf(ours).any())}, NaN {bool(np.isnan(ours).any())}")


def test_relu_overflow_example(keras_rnn):
    """A deterministic overflow: relu with a diagonal recurrent weight of 1e20
    overflows float32 at the third step (1 -> 1e20 -> 1e40), to +inf in both;
    at the fourth, inf times the zero off-diagonal weights is NaN, in both."""
    x = np.ones((1, 4, 2), F32)
    kernel = np.array([[1.0, 0.5, 0.25], [0.5, 1.0, 0.25]], F32)  # (D=2, U=3)
    recurrent = np.diag([1e20, 1e20, 1e20]).astype(F32)
    bias = np.array([0.1, 0.2, 0.3], F32)
    case = Case(x, kernel, recurrent, bias, "relu")
    ours, keras = check_against_keras(case, keras_rnn, drawn=False)
    assert np.all(np.isfinite(ours[0, :2]))
    assert np.all(np.isposinf(ours[0, 2]))
    assert np.all(np.isnan(ours[0, 3]))


def test_exponential_overflow_and_underflow(keras_rnn):
    """exp overflows to +inf above 88.72 and underflows to 0 far below, as in Keras.
    Then [inf, inf] @ recurrent_kernel gives +inf through a column [1, 1] and
    NaN (inf - inf) through a column [-1, 1], in both."""
    x = np.array([[[200.0], [0.0], [0.0]], [[-200.0], [0.0], [0.0]]], F32)  # (B=2, T=3, D=1)
    kernel = np.array([[1.0, 0.5]], F32)
    recurrent = np.array([[1.0, -1.0], [1.0, 1.0]], F32)
    bias = np.array([0.1, -0.1], F32)
    case = Case(x, kernel, recurrent, bias, "exponential")
    ours, keras = check_against_keras(case, keras_rnn, drawn=False)
    assert np.isposinf(ours[0, 0]).all()  # exp(200), exp(100)
    assert np.isposinf(ours[0, 1, 0]) and np.isnan(ours[0, 1, 1])
    assert ours[1, 0, 0] == 0 and ours[1, 0, 1] < TINY32  # exp(-200); exp(-100) is subnormal (0 in TensorFlow)


def test_nan_in_initial_state_propagates_in_its_row(keras_rnn):
    rng = np.random.default_rng(3)
    kernel, recurrent, bias = moderate_weights(rng, 3, 5)
    x = rng.uniform(-1, 1, (3, 4, 3)).astype(F32)
    h0 = rng.normal(size=(3, 5)).astype(F32)
    h0[1, 2] = np.nan
    ours = rnn_ref.simple_rnn(x, kernel, recurrent, bias, return_sequences=True, initial_state=h0)
    keras = keras_rnn(x, kernel, recurrent, bias, return_sequences=True, initial_state=h0)
    expected = np.zeros(ours.shape, bool)
    expected[1] = True
    assert np.array_equal(np.isnan(ours), expected)
    assert np.array_equal(np.isnan(keras), expected)
    # the finite rows, judged like any result (NaN agrees with NaN in row 1)
    judge_call("NaN initial state", rnn_ref.simple_rnn, dict(inputs=x, kernel=kernel, recurrent_kernel=recurrent,
               bias=bias, return_sequences=True, initial_state=h0), keras, F32, m=3 + 5 + 1, time_axes=[1],
               got=ours).check()


#: Rows of a softmax whose non-finite pattern TensorFlow decides by its kernel: the
#: formula exp(x - max) / sum in IEEE arithmetic gives NaN in every unit (Eigen's kernel,
#: TF_ENABLE_ONEDNN_OPTS=0, and float64 always); oneDNN's float32 kernel
#: (TF_ENABLE_ONEDNN_OPTS=1) gives NaN in the units whose shifted value is NaN, 0 in the
#: others. Measured on TF 2.21 with both settings.
SOFTMAX_ROWS = {
    "one +inf": ([np.inf, -np.inf, 0.0], [np.nan] * 3, [np.nan, 0.0, 0.0]),
    "+inf among finite": ([np.inf, 1.0, 2.0], [np.nan] * 3, [np.nan, 0.0, 0.0]),
    "NaN": ([np.nan, 1.0, 2.0], [np.nan] * 3, [np.nan, 0.0, 0.0]),
    "two +inf": ([np.inf, np.inf, 0.0], [np.nan] * 3, [np.nan, np.nan, 0.0]),
    "all -inf": ([-np.inf] * 3, [np.nan] * 3, [np.nan] * 3),
}


@pytest.mark.parametrize("row", list(SOFTMAX_ROWS))
def test_softmax_of_a_non_finite_row_is_one_of_the_documented_results(row):
    """The reference gives the formula's all-NaN row; Keras, under whichever oneDNN setting
    this process runs, gives that or oneDNN's documented pattern, never anything else."""
    import keras

    x, formula, onednn = (np.array([r], F32) for r in SOFTMAX_ROWS[row])
    got = np.asarray(keras.activations.softmax(keras.ops.convert_to_tensor(x)))
    np.testing.assert_array_equal(rnn_ref.layers.activations.softmax(x), formula)
    np.testing.assert_array_equal(rnn_ref.layers.activations.softmax_onednn(x), onednn)
    assert any(np.array_equal(got, want, equal_nan=True) for want in (formula, onednn)), (
        f"Keras's softmax of {x[0]} is {got[0]}, neither the formula's {formula[0]} nor oneDNN's {onednn[0]}")


def softmax_case():
    """A float32 SimpleRNN case whose first step puts +inf into one unit of a softmax."""
    x = np.array([[[np.inf], [0.5]], [[0.3], [-0.2]]], F32)  # (B=2, T=2, D=1); row 1 stays finite
    kernel = np.array([[1.0, -0.5, -0.25]], F32)  # (D, U) = (1, 3): units get +inf, -inf, -inf
    recurrent = np.array([[0.5, -0.3, 0.2], [0.1, 0.4, -0.6], [-0.2, 0.3, 0.5]], F32)  # (U, U)
    bias = np.array([0.1, 0.2, 0.3], F32)
    return make_case_from(x, kernel, recurrent, bias)


def make_case_from(x, kernel, recurrent, bias):
    from rnn_ref.harness.cases import Case

    return Case(inputs=x, kernel=kernel, recurrent_kernel=recurrent, bias=bias, mask=None, initial_state=None,
                activation="softmax", return_sequences=True, seed=5)


def onednn_simple_rnn(inputs, kernel, recurrent_kernel, bias=None, **options):
    """A correct SimpleRNN that computes softmax as oneDNN's float32 kernel does."""
    if options.get("activation") == "softmax":
        options["activation"] = rnn_ref.layers.activations.softmax_onednn
    return rnn_ref.simple_rnn(inputs, kernel, recurrent_kernel, bias, **options)


def limit_simple_rnn(inputs, kernel, recurrent_kernel, bias=None, **options):
    """A mutant: softmax of a row with +inf taken as its limit (1 in that unit, 0 elsewhere),
    which no platform's Keras gives."""
    def limit_softmax(a):
        inf = np.isposinf(a)
        out = rnn_ref.layers.activations.softmax(np.where(inf, 0.0, a))
        return np.where(inf.any(axis=-1, keepdims=True), inf / np.maximum(inf.sum(-1, keepdims=True), 1), out)

    if options.get("activation") == "softmax":
        options["activation"] = lambda a: limit_softmax(a).astype(a.dtype)
    return rnn_ref.simple_rnn(inputs, kernel, recurrent_kernel, bias, **options)


def test_softmax_step_with_an_infinite_pre_activation_passes_on_every_platform(keras_rnn):
    """The harness accepts the reference (the formula) and oneDNN's pattern alike, with
    Keras under either setting, and still rejects a third pattern (the limit)."""
    from rnn_ref.harness.context import Context, PropertyFailure

    case = softmax_case()
    ctx = Context(keras_rnn)
    keras = keras_rnn(**case.kwargs())
    assert np.isnan(keras[0, 0, 0]) and np.all(np.isfinite(keras[1]))
    for correct in (rnn_ref.simple_rnn, onednn_simple_rnn):
        judged = ctx.expect(correct, case)
        assert judged.value.shape == (2, 2, 3)
    with pytest.raises(PropertyFailure, match="exceed the budget"):
        ctx.expect(limit_simple_rnn, case)
