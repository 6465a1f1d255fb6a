"""``rnn_ref.backward.lstm.lstm_vjp`` (LSTM backpropagation through time) against
``tf.GradientTape`` on live Keras, finite differences, and two mutants.

As in tests/test_vjp.py: random weights are copied into a ``keras.layers.LSTM``
built with the same options (``set_weights``), asymmetric on purpose: D != U,
random kernels, a non-zero random bias, random non-zero initial states h0 and
c0, a recurrent kernel (U, 4U) ``gain`` times a random matrix with orthonormal
rows, random cotangents d_output, d_h, d_c. Keras's gradient is that of
``sum(out * d_output) + sum(h * d_h) + sum(c * d_c)``, which is what
``backward(d_output, d_h, d_c)`` returns.

Tolerance: the harness's budget, through tests/test_vjp.py's ``judge_vjp``
(``rnn_ref.harness.judging.judge_gradients``): the truth is lstm_vjp in float64
on the case's exact values, the conditioning how far those gradients move when
the inputs, weights, initial states and cotangents are perturbed by
``tolerance.PERTURB_ULPS`` units of roundoff, the floor's m one LSTM step's
products (LSTM's LayerSpec) plus B T. A fixed ``ulps * T`` bound held only
where the backward recurrence does not expand (the activation pairs drawn
here); the conditioning holds in any regime. Float64 leaky_relu and gelu are
not drawn (Keras rounds their constants to float32, tests/test_keras_quirks.py).

Finite differences: float64, centred, with ``fd_bound`` of tests/test_vjp.py.
Every activation name, in either role, is checked against finite differences
(no Keras needed); a few pairs against Keras.

Mutants: the forget gate's derivative dropped (d f = 0) and dc not carried to
the previous step, patched into rnn_ref (so into the float64 truth too, as a
real bug would be), must be rejected by the same judgement.

Run with ``-s`` to see the worst error / budget (test_report_worst_errors).
"""

from __future__ import annotations

import functools
import itertools
from typing import NamedTuple, Optional

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")

import rnn_ref  # noqa: E402
from rnn_ref.backward import lstm as backward_lstm  # noqa: E402
from rnn_ref.backward.activations import DERIVATIVES  # noqa: E402
from rnn_ref.layers.activations import ACTIVATIONS  # noqa: E402
from rnn_ref.backward.lstm import LSTMGrads, lstm_vjp  # noqa: E402
from rnn_ref.models.registry import LSTM  # noqa: E402
from test_vjp import (  # noqa: E402  (tests/ is on sys.path)
    MUTANT_FAILURE,
    centred_differences,
    cs231n_relative_error,
    fd_bound,
    judge_vjp,
    named,
    nonzero,
    tape_gradients,
)

#: Largest error / budget per (what, dtype), for the report.
WORST: dict = {}

#: (activation, recurrent_activation) pairs compared with Keras: all non-expanding.
PAIRS = (("tanh", "sigmoid"), ("relu", "hard_sigmoid"), ("softsign", "sigmoid"), ("linear", "hard_sigmoid"),
         ("sigmoid", "sigmoid"), ("elu", "sigmoid"))


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
    recurrent_activation: str
    return_sequences: bool
    return_state: bool
    go_backwards: bool
    zero_output_for_mask: bool
    mask: Optional[tuple]  # (B, T) of 0/1
    initial_state: bool  # [h0, c0] given
    unbatched: bool  # one sequence (T, D), compared with Keras on a batch of one


def fixed_case(**changes):
    case = Case(B=3, T=6, D=3, U=4, dtype="float64", seed=5, gain=0.9, use_bias=True, activation="tanh",
                recurrent_activation="sigmoid", return_sequences=True, return_state=True, go_backwards=False,
                zero_output_for_mask=False, mask=((0, 0, 1, 1, 1, 1), (1, 1, 0, 1, 1, 0), (0,) * 6),
                initial_state=True, unbatched=False)
    return case._replace(**changes)


def orthonormal_rows(rng, U, gain):
    """``gain`` times a random (U, 4U) matrix with orthonormal rows."""
    q, r = np.linalg.qr(rng.standard_normal((4 * U, U)))  # (4U, U), orthonormal columns
    return gain * (q * np.sign(np.diag(r))).T  # (U, 4U)


class Arrays(NamedTuple):
    x: np.ndarray  # (B, T, D), or (T, D)
    weights: tuple  # kernel (D, 4U), recurrent_kernel (U, 4U)[, bias (4U,)]
    mask: Optional[np.ndarray]  # (B, T) bool, or (T,)
    initial_state: Optional[list]  # [h0, c0], (B, U) or (U,) each
    d_output: np.ndarray  # like the output
    d_h: Optional[np.ndarray]  # (B, U) or (U,), with return_state
    d_c: Optional[np.ndarray]


def arrays(case):
    rng = np.random.default_rng(case.seed)
    B, T, D, U = case.B, case.T, case.D, case.U
    x = rng.uniform(-1, 1, (B, T, D))  # (B, T, D)
    weights = [rng.standard_normal((D, 4 * U)) / np.sqrt(D), orthonormal_rows(rng, U, case.gain)]
    if case.use_bias:
        weights.append(nonzero(rng, 4 * U))  # (4U,)
    h0, c0 = nonzero(rng, (B, U), 1.0), nonzero(rng, (B, U), 1.0)  # (B, U) each
    d_output = rng.standard_normal((B, T, U) if case.return_sequences else (B, U))
    d_h, d_c = rng.standard_normal((B, U)), rng.standard_normal((B, U))  # (B, U) each
    mask = None if case.mask is None else np.array(case.mask, dtype=bool)  # (B, T)
    if case.unbatched:
        x, h0, c0, d_output, d_h, d_c = x[0], h0[0], c0[0], d_output[0], d_h[0], d_c[0]
        mask = None if mask is None else mask[0]
    cast = lambda a: a.astype(case.dtype)  # noqa: E731
    return Arrays(cast(x), tuple(map(cast, weights)), mask, [cast(h0), cast(c0)] if case.initial_state else None,
                  cast(d_output), cast(d_h) if case.return_state else None, cast(d_c) if case.return_state else None)


def options(case, a):
    """The keyword options of ``lstm`` for ``case``."""
    kw = dict(activation=case.activation, recurrent_activation=case.recurrent_activation,
              return_sequences=case.return_sequences, return_state=case.return_state,
              go_backwards=case.go_backwards, zero_output_for_mask=case.zero_output_for_mask)
    if a.mask is not None:
        kw["mask"] = a.mask
    if a.initial_state is not None:
        kw["initial_state"] = a.initial_state
    return kw


def reference_grads(case, a):
    """``(output, LSTMGrads)`` of ``lstm_vjp`` on ``case``."""
    out, backward = lstm_vjp(a.x, *a.weights, **options(case, a))
    grads = backward(a.d_output, a.d_h, a.d_c) if case.return_state else backward(a.d_output)
    return out, grads


# ---------------------------------------------------------------------------
# Keras
# ---------------------------------------------------------------------------


@functools.cache
def keras_lstm(U, D, dtype, use_bias, activation, recurrent_activation, return_sequences, return_state,
               go_backwards, zero_output_for_mask):
    layer = keras.layers.LSTM(U, activation=activation, recurrent_activation=recurrent_activation,
                              use_bias=use_bias, return_sequences=return_sequences, return_state=return_state,
                              go_backwards=go_backwards, zero_output_for_mask=zero_output_for_mask, dtype=dtype)
    layer.build((None, None, D))
    return layer


def keras_grads(case, a):
    """Keras's gradients as ``LSTMGrads`` (None where lstm_vjp gives None)."""
    layer = keras_lstm(case.U, case.D, case.dtype, case.use_bias, case.activation, case.recurrent_activation,
                       case.return_sequences, case.return_state, case.go_backwards, case.zero_output_for_mask)
    layer.set_weights(list(a.weights))
    d_x, d_kernel, d_recurrent, d_bias, d_states = tape_gradients(
        layer, a.x, a.initial_state, a.mask, a.d_output, [a.d_h, a.d_c] if case.return_state else [],
        unbatched=case.unbatched, return_state=case.return_state, use_bias=case.use_bias)
    return LSTMGrads(d_x, d_kernel, d_recurrent, d_bias, d_states)


# ---------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------


def flat(grads):
    """The gradient arrays of an ``LSTMGrads``, with (name, array); initial_state as dh0, dc0."""
    named_arrays = []
    for name, g in zip(LSTMGrads._fields, grads):
        if name == "initial_state":
            named_arrays += [("initial_state[0] (h)", None if g is None else g[0]),
                             ("initial_state[1] (c)", None if g is None else g[1])]
        else:
            named_arrays.append((name, g))
    return named_arrays


def record(what, dtype, ratio):
    key = (what, str(dtype))
    WORST[key] = max(WORST.get(key, 0.0), ratio)


def check_lstm(case, raising=True):
    """Compare lstm_vjp with Keras on ``case`` with the harness's budget (tests/test_vjp.py's
    ``judge_vjp``); return the worst error / budget (``raising=False``: the ``Judgement``,
    not checked)."""
    __tracebackhide__ = True
    a = arrays(case)
    out, grads = reference_grads(case, a)
    expected_out = rnn_ref.lstm(a.x, *a.weights, **options(case, a))
    for o, e in zip(out if case.return_state else [out], expected_out if case.return_state else [expected_out]):
        np.testing.assert_array_equal(o, e, err_msg="lstm_vjp's output differs from lstm's")
    judgement = judge_vjp(f"lstm{case}", lambda arrays: named(reference_grads(case, arrays)[1]), a,
                          named(keras_grads(case, a)), dtype=case.dtype, seed=case.seed,
                          products=LSTM.products(case.D, case.U))
    return judgement.check().ratio if raising else judgement


# ---------------------------------------------------------------------------
# Against Keras
# ---------------------------------------------------------------------------


#: return_sequences, return_state, go_backwards, zero_output_for_mask: every combination,
#: batched with a mask (leading padding, a gap and trailing padding, a fully padded row).
FLAGS = list(itertools.product([False, True], repeat=4))


def grid_cases(dtype):
    cases = []
    for i, (seq, state, backwards, zero_output) in enumerate(FLAGS):
        act, rec = PAIRS[i % len(PAIRS)]
        cases.append(fixed_case(dtype=dtype, seed=i, use_bias=i % 5 != 4, activation=act, recurrent_activation=rec,
                                return_sequences=seq, return_state=state, go_backwards=backwards,
                                zero_output_for_mask=zero_output, initial_state=i % 4 != 3))
    # one sequence (T, D): a padded first step and a gap
    for j, (seq, state) in enumerate(itertools.product([False, True], repeat=2)):
        act, rec = PAIRS[j]
        cases.append(fixed_case(B=1, dtype=dtype, seed=100 + j, unbatched=True, activation=act,
                                recurrent_activation=rec, return_sequences=seq, return_state=state,
                                go_backwards=j % 2 == 0, zero_output_for_mask=j == 3,
                                mask=((0, 1, 1, 0, 1, 0),), initial_state=j != 1))
    # no mask
    cases.append(fixed_case(dtype=dtype, seed=200, mask=None, go_backwards=True))
    cases.append(fixed_case(dtype=dtype, seed=201, mask=None, return_sequences=False, return_state=False,
                            initial_state=False, use_bias=False, activation="relu",
                            recurrent_activation="hard_sigmoid"))
    return cases


@pytest.mark.keras
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_option_grid_matches_keras(dtype):
    """Every combination of return_sequences / return_state / go_backwards / zero_output_for_mask
    with masks, one-sequence inputs, unmasked inputs; the activation pairs in turn."""
    for case in grid_cases(dtype):
        record("lstm option grid", dtype, check_lstm(case))


@pytest.mark.keras
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_longer_sequence_matches_keras(dtype):
    case = fixed_case(B=2, T=20, D=5, U=3, dtype=dtype, seed=7, go_backwards=True,
                      mask=(tuple([0] * 3 + [1] * 17), tuple([1, 0] * 10)))
    record("lstm T 20", dtype, check_lstm(case))


# ---------------------------------------------------------------------------
# Finite differences (float64)
# ---------------------------------------------------------------------------


def loss_and_args(case):
    """``(loss(*args), args, grads)``: the scalar lstm_vjp differentiates, its array arguments
    (x, kernel, recurrent_kernel[, bias][, h0, c0]) and lstm_vjp's gradients in that order."""
    a = arrays(case)
    kw = options(case, a)
    init = kw.pop("initial_state", None)

    def loss(x, kernel, recurrent_kernel, *rest, absolute=False):
        bias = rest[0] if case.use_bias else None
        states = list(rest[-2:]) if init is not None else None
        result = rnn_ref.lstm(x, kernel, recurrent_kernel, bias, initial_state=states, **kw)
        f = np.abs if absolute else (lambda v: v)
        if not case.return_state:
            return np.sum(f(result * a.d_output))
        out, h, c = result
        return np.sum(f(out * a.d_output)) + np.sum(f(h * a.d_h)) + np.sum(f(c * a.d_c))

    args = [a.x, *a.weights] + (list(init) if init is not None else [])
    _, grads = reference_grads(case, a)
    return loss, args, [g for _, g in flat(grads) if g is not None]


def check_finite_differences(case, what):
    __tracebackhide__ = True
    loss, args, grads = loss_and_args(case)
    numeric = centred_differences(loss, args)
    limit = fd_bound(loss(*args, absolute=True))
    for g, n in zip(grads, numeric):
        diff, rel = float(np.max(np.abs(g - n))), cs231n_relative_error(g, n)
        record("finite differences: cs231n rel", "float64", rel)
        record("finite differences: |diff| / bound", "float64", diff / limit)
        assert diff <= limit, f"{what}: max |vjp - finite difference| = {diff:.3g} > {limit:.3g} (rel {rel:.3g})"


def test_every_option_matches_centred_finite_differences():
    """Mask with leading padding, a gap and a fully padded row, go_backwards, initial state,
    every step returned, the final h and c."""
    case = fixed_case(B=3, T=5, D=3, U=2, go_backwards=True,
                      mask=((0, 0, 1, 1, 0), (1, 0, 1, 0, 1), (0,) * 5))
    check_finite_differences(case, "every option")
    check_finite_differences(case._replace(zero_output_for_mask=True, return_state=False, seed=6,
                                           go_backwards=False), "zero_output_for_mask")


FD_ROLES = ([(name, "sigmoid") for name in ACTIVATIONS] + [("tanh", name) for name in ACTIVATIONS]
            + [("silu", "linear"), ("linear", "linear")])  # a linear recurrent activation returns z itself


@pytest.mark.parametrize("activation, recurrent_activation", FD_ROLES)
def test_every_activation_in_either_role_matches_finite_differences(activation, recurrent_activation):
    """Every Keras activation name as ``activation`` and as ``recurrent_activation``
    (random pre-activations lie farther than h from the piecewise ones' kinks)."""
    case = fixed_case(B=2, T=3, D=2, U=3, gain=0.5, activation=activation, recurrent_activation=recurrent_activation,
                      mask=((0, 1, 1), (1, 0, 1)))
    check_finite_differences(case, f"{activation}/{recurrent_activation}")


# ---------------------------------------------------------------------------
# The comparison catches bugs
# ---------------------------------------------------------------------------

def check_gates_in_one_pass(from_output):
    """``from_output(step, dy, dc, act, rec)``, the one-pass backward of a step whose z was not
    kept, gives ``cell_backward``'s generic result (four activation_vjp calls, here on a step
    that kept z) bit for bit, for every pair of FROM_OUTPUT activations."""
    from rnn_ref.backward.activations import FROM_OUTPUT  # noqa: PLC0415
    from rnn_ref.layers.activations import get  # noqa: PLC0415

    rng = np.random.default_rng(11)
    B, U = 3, 4
    for act, rec in itertools.product(FROM_OUTPUT, repeat=2):
        z = rng.normal(0, 2, (B, 4 * U)).astype(np.float32)
        gates = np.concatenate([get(rec)(z[:, :2 * U]), get(act)(z[:, 2 * U:3 * U]), get(rec)(z[:, 3 * U:])], axis=1)
        c_prev, dy, dc = (rng.normal(0, 1, (B, U)).astype(np.float32) for _ in range(3))
        i, f, g, o = (gates[:, k * U:(k + 1) * U] for k in range(4))
        c = f * c_prev + i * g
        step = backward_lstm.LSTMStep(None, c_prev, None, i, f, g, o, c, get(act)(c), gates)
        fast = from_output(step, dy, dc, act, rec)
        generic = backward_lstm.cell_backward(step._replace(z=z), dy, dc, act, rec)
        for a, b, what in zip(fast, generic, ("dz", "dc_prev")):
            np.testing.assert_array_equal(a, b, err_msg=f"{what}, activation {act}, recurrent {rec}")


def test_gates_in_one_pass_match_the_generic_backward():
    check_gates_in_one_pass(backward_lstm._cell_backward_from_output)


def test_one_pass_with_the_wrong_derivative_for_the_candidate_is_caught():
    def candidate_like_a_gate(s, dy, dc, act, rec):  # the mutant: g's derivative left as rec's
        U = s.i.shape[1]
        dz, dc_prev = backward_lstm._cell_backward_from_output(s, dy, dc, act, rec)
        d_g = dz[:, 2 * U:3 * U] / DERIVATIVES[act](s.g, s.g)
        dz[:, 2 * U:3 * U] = d_g * DERIVATIVES[rec](s.g, s.g)
        return dz, dc_prev

    with pytest.raises(AssertionError, match="dz, activation"):
        check_gates_in_one_pass(candidate_like_a_gate)


@pytest.mark.parametrize("activation, recurrent_activation", [("silu", "sigmoid"), ("tanh", "softsign")])
def test_z_dropped_for_an_activation_whose_derivative_reads_it_is_caught(monkeypatch, activation,
                                                                        recurrent_activation):
    """The recording cell keeps z only when a derivative reads it (``FROM_OUTPUT``); listing one
    that does (silu, softsign) makes the backward pass use the gates in z's place: wrong."""
    from rnn_ref.backward import activations as backward_activations  # noqa: PLC0415

    monkeypatch.setattr(backward_activations, "FROM_OUTPUT",
                        (*backward_activations.FROM_OUTPUT, activation, recurrent_activation))
    case = fixed_case(B=2, T=3, D=2, U=3, gain=0.5, activation=activation, recurrent_activation=recurrent_activation,
                      mask=((0, 1, 1), (1, 0, 1)))
    with pytest.raises(AssertionError, match="finite difference"):
        check_finite_differences(case, f"{activation}/{recurrent_activation}")


ORIGINAL_CELL_BACKWARD = backward_lstm.cell_backward


def forget_gate_derivative_dropped(s, dy, dc, act_name, rec_name):
    """d f = dc * c_{t-1} forgotten: computed as if c_{t-1} were 0 (nothing else reads c_prev)."""
    return ORIGINAL_CELL_BACKWARD(s._replace(c_prev=np.zeros_like(s.c_prev)), dy, dc, act_name, rec_name)


def dc_not_carried(s, dy, dc, act_name, rec_name):
    """The cell state's cotangent stops at each step: dc_{t-1} = 0."""
    dz, dc_prev = ORIGINAL_CELL_BACKWARD(s, dy, dc, act_name, rec_name)
    return dz, np.zeros_like(dc_prev)


@pytest.mark.keras
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("mutant", [forget_gate_derivative_dropped, dc_not_carried], ids=lambda f: f.__name__)
def test_comparison_rejects_mutant(mutant, dtype, monkeypatch):
    case = fixed_case(dtype=dtype)
    ratio = check_lstm(case, raising=False).ratio
    monkeypatch.setattr(backward_lstm, "cell_backward", mutant)
    judgement = check_lstm(case, raising=False)  # the mutant in the float64 truth too, as a bug would be
    record(f"mutant {mutant.__name__} (must be > 1)", dtype, judgement.ratio)
    assert ratio <= 1, f"the reference itself is off: {ratio:.3g} of the budget"
    assert judgement.ratio > 1, f"the mutant passes: {judgement.ratio:.3g} of the budget"
    with pytest.raises(AssertionError, match=MUTANT_FAILURE):
        judgement.check()


# ---------------------------------------------------------------------------
# API and errors
# ---------------------------------------------------------------------------


def test_gradients_are_named_and_shaped_like_the_arguments():
    case = fixed_case()
    a = arrays(case)
    _, g = reference_grads(case, a)
    assert LSTMGrads._fields == ("inputs", "kernel", "recurrent_kernel", "bias", "initial_state")
    assert g.inputs.shape == (3, 6, 3) and g.kernel.shape == (3, 16) and g.recurrent_kernel.shape == (4, 16)
    assert g.bias.shape == (16,)
    assert isinstance(g.initial_state, list) and [s.shape for s in g.initial_state] == [(3, 4), (3, 4)]
    bare = case._replace(use_bias=False, initial_state=False, return_state=False)
    _, g = reference_grads(bare, arrays(bare))
    assert g.bias is None and g.initial_state is None


def test_fully_masked_batch_passes_the_state_cotangents_through():
    case = fixed_case(mask=((0,) * 6,) * 3)
    a = arrays(case)
    _, g = reference_grads(case, a)
    for name in ("inputs", "kernel", "recurrent_kernel", "bias"):
        assert np.all(getattr(g, name) == 0), f"d_{name} is not zero"
    np.testing.assert_array_equal(g.initial_state[0], a.d_h)  # the final states are the initial ones
    np.testing.assert_array_equal(g.initial_state[1], a.d_c)


def test_none_cotangents_are_zeros():
    case = fixed_case()
    a = arrays(case)
    _, backward = lstm_vjp(a.x, *a.weights, **options(case, a))
    g_none = backward(a.d_output, None, None)
    g_zero = backward(a.d_output, np.zeros_like(a.d_h), np.zeros_like(a.d_c))
    for (name, x), (_, y) in zip(flat(g_none), flat(g_zero)):
        np.testing.assert_array_equal(x, y, err_msg=name)


X, K, R = np.ones((2, 4, 3)), np.ones((3, 8)), np.ones((2, 8))  # (B, T, D), (D, 4U), (U, 4U)
ERRORS = {
    "missing_d_c": (lambda: lstm_vjp(X, K, R, return_state=True)[1](np.ones((2, 2)), None), TypeError,
                    r"takes \(d_output, d_h, d_c\), got 2"),
    "d_output_shape": (lambda: lstm_vjp(X, K, R)[1](np.ones((2, 4, 2))), ValueError, r"d_output"),
    "d_c_shape": (lambda: lstm_vjp(X, K, R, return_state=True)[1](None, None, np.ones((3, 2))), ValueError, r"d_c"),
    "callable_activation": (lambda: lstm_vjp(X, K, R, recurrent_activation=np.sin), TypeError, r"'sin'"),
    "unknown_activation": (lambda: lstm_vjp(X, K, R, activation="gelux"), ValueError, r"gelux"),
}


@pytest.mark.parametrize("name", ERRORS)
def test_errors_say_what_was_expected(name):
    call, exception, message = ERRORS[name]
    with pytest.raises(exception, match=message):
        call()


def test_report_worst_errors():
    """Print the largest error / budget per comparison (run with -s); runs last in this file."""
    for (what, dtype), ratio in sorted(WORST.items()):
        print(f"\n{what:44s} {dtype:8s} worst {ratio:.3g}", end="")
