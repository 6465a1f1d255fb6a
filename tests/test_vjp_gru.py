"""``rnn_ref.backward.gru.gru_vjp`` (GRU backpropagation through time) against ``tf.GradientTape``.

As tests/test_vjp.py for SimpleRNN: random weights are copied into a
``keras.layers.GRU`` built with the same options, asymmetric on purpose (D !=
U, random kernels, non-zero biases shaped for ``reset_after``, a random
non-zero initial state, each of the three recurrent gate blocks ``gain``
times a random non-symmetric orthogonal matrix), with random cotangents;
Keras's gradient is that of ``sum(out * d_output) + sum(h * d_h)``.

Tolerance: the harness's budget, through tests/test_vjp.py's ``judge_vjp``
(``rnn_ref.harness.judging.judge_gradients``), the floor's m one GRU step's
products (GRU's LayerSpec) plus B T. It replaces tests/test_vjp.py's former
``4 (B + D + U' + 9) T u max|Keras| growth^T`` with a growth of 1 + gain per
step bounded by hand: the conditioning (how far the float64 gradients move
when inputs, weights, the initial state and the cotangents are perturbed by
``tolerance.PERTURB_ULPS`` units of roundoff) measures what a backward step
does to an error, whatever the gates. ``test_report_worst_errors`` prints the
measured worst ratios (-s).
Finite differences (float64, centred) and the two source mutants use the same
machinery as tests/test_vjp.py.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import types
from typing import NamedTuple, Optional

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")
layers = keras.layers

import rnn_ref  # noqa: E402
from rnn_ref.backward import gru as backward_gru  # noqa: E402
from rnn_ref.backward.gru import GRUGrads, gru_vjp  # noqa: E402
from rnn_ref.models.registry import GRU  # noqa: E402
from test_vjp import (  # noqa: E402
    MUTANT_FAILURE, UNIT_ROUNDOFF, Arrays, cs231n_relative_error, flat, judge_vjp, named, nonzero, one_state_arrays,
    orthogonal, tape_gradients)

pytestmark = pytest.mark.keras

FD_STEP = 1e-6


def centred_differences(loss, args, step=FD_STEP):
    """d loss / d args, one entry at a time: (f(a + h) - f(a - h)) / 2h (tests/test_vjp.py's, h a parameter)."""
    numeric = []
    for i, arg in enumerate(args):
        g = np.zeros_like(arg)
        for idx in np.ndindex(arg.shape):
            plus, minus = [a.copy() for a in args], [a.copy() for a in args]
            plus[i][idx] += step
            minus[i][idx] -= step
            g[idx] = (loss(*plus) - loss(*minus)) / (2 * step)
        numeric.append(g)
    return numeric
WORST: dict = {}


def record(what, dtype, ratio):
    key = (what, str(dtype))
    WORST[key] = max(WORST.get(key, 0.0), ratio)


class Case(NamedTuple):
    B: int
    T: int
    D: int
    U: int  # != D
    dtype: str
    seed: int
    gain: float  # of each recurrent gate block
    use_bias: bool
    reset_after: bool
    activation: str
    recurrent_activation: str
    return_sequences: bool
    return_state: bool
    go_backwards: bool
    zero_output_for_mask: bool
    mask: Optional[tuple]  # (B, T) of 0/1
    initial_state: Optional[str]  # None, "array" or "list"
    unbatched: bool  # one sequence (T, D), compared with Keras on a batch of one


def arrays(case):
    rng = np.random.default_rng(case.seed)
    B, T, D, U = case.B, case.T, case.D, case.U
    x = rng.uniform(-1, 1, (B, T, D))  # (B, T, D)
    kernel = rng.standard_normal((D, 3 * U)) / np.sqrt(D)  # (D, 3U)
    recurrent = np.concatenate([orthogonal(rng, U, case.gain) for _ in range(3)], axis=1)  # (U, 3U)
    weights = [kernel, recurrent]
    if case.use_bias:
        weights.append(nonzero(rng, (2, 3 * U) if case.reset_after else 3 * U))
    return one_state_arrays(rng, case, x, weights)


def options(case, a):
    kw = dict(activation=case.activation, recurrent_activation=case.recurrent_activation,
              reset_after=case.reset_after, return_sequences=case.return_sequences, return_state=case.return_state,
              go_backwards=case.go_backwards, zero_output_for_mask=case.zero_output_for_mask)
    if a.mask is not None:
        kw["mask"] = a.mask
    if a.initial_state is not None:
        kw["initial_state"] = a.initial_state
    return kw


def reference_grads(case, a, vjp=gru_vjp):
    out, backward = vjp(a.x, *a.weights, **options(case, a))
    return out, (backward(a.d_output, a.d_state) if case.return_state else backward(a.d_output))


@functools.cache
def keras_gru(U, D, dtype, use_bias, reset_after, activation, recurrent_activation, return_sequences, return_state,
              go_backwards, zero_output_for_mask):
    layer = layers.GRU(U, activation=activation, recurrent_activation=recurrent_activation, use_bias=use_bias,
                       reset_after=reset_after, return_sequences=return_sequences, return_state=return_state,
                       go_backwards=go_backwards, zero_output_for_mask=zero_output_for_mask, dtype=dtype)
    layer.build((None, None, D))
    return layer


def keras_grads(case, a):
    """Keras's gradients, in the order of ``GRUGrads`` (None where gru_vjp gives None)."""
    layer = keras_gru(case.U, case.D, case.dtype, case.use_bias, case.reset_after, case.activation,
                      case.recurrent_activation, case.return_sequences, case.return_state, case.go_backwards,
                      case.zero_output_for_mask)
    layer.set_weights(list(a.weights))
    h0 = None if a.initial_state is None else [
        a.initial_state[0] if isinstance(a.initial_state, list) else a.initial_state]
    d_x, d_kernel, d_recurrent, d_bias, d_h0 = tape_gradients(
        layer, a.x, h0, a.mask, a.d_output, [a.d_state] if case.return_state else [],
        unbatched=case.unbatched, return_state=case.return_state, use_bias=case.use_bias)
    return GRUGrads(d_x, d_kernel, d_recurrent, d_bias, None if d_h0 is None else d_h0[0])


def check(case, vjp=gru_vjp, raising=True):
    """gru_vjp (or ``vjp``) against Keras on ``case`` with the harness's budget (tests/test_vjp.py's
    ``judge_vjp``); returns the worst ratio of error to budget (``raising=False``: the
    ``Judgement``, not checked)."""
    __tracebackhide__ = True
    a = arrays(case)
    out, grads = reference_grads(case, a, vjp)
    expected_out = rnn_ref.gru(a.x, *a.weights, **options(case, a))
    for o, e in zip(out if case.return_state else [out], expected_out if case.return_state else [expected_out]):
        np.testing.assert_array_equal(o, e, err_msg="gru_vjp's output differs from gru's")
    judgement = judge_vjp(f"gru{case}", lambda arrays: named(reference_grads(case, arrays, vjp)[1]), a,
                          named(keras_grads(case, a)), dtype=case.dtype, seed=case.seed,
                          products=GRU.products(case.D, case.U))
    return judgement.check().ratio if raising else judgement


# ---------------------------------------------------------------------------
# Against Keras: a grid of options
# ---------------------------------------------------------------------------

#: (activation, recurrent_activation): gates kept in [0, 1] (tests/test_lstm_gru.py explains why).
PAIRS = [("tanh", "sigmoid"), ("softsign", "hard_sigmoid"), ("relu", "sigmoid"), ("linear", "softmax"),
         ("elu", "sigmoid"), ("sigmoid", "hard_sigmoid")]
MASK = ((0, 0, 1, 1, 1), (1, 1, 0, 1, 0), (0,) * 5)  # leading padding, gaps, every step padded
MASK_ONE = ((0, 1, 1, 0, 1),)  # one sequence: a padded first step and a gap

#: Every combination of reset_after, go_backwards, zero_output_for_mask and a mask; the other
#: options follow from those bits (b0..b3) so that each takes both values against each of them.
GRID = list(itertools.product([True, False], [False, True], [False, True], [False, True]))


def grid_case(i, dtype):
    reset_after, backwards, zero_output, masked = GRID[i]
    b = [int(v) for v in GRID[i]]
    unbatched = bool(b[0] ^ b[2] ^ b[3])
    B = 1 if unbatched else 3
    activation, recurrent_activation = PAIRS[i % len(PAIRS)]
    return Case(B=B, T=5, D=3, U=4, dtype=dtype, seed=100 + i, gain=0.9, use_bias=i % 5 != 4,
                reset_after=reset_after, activation=activation, recurrent_activation=recurrent_activation,
                return_sequences=bool(b[0] ^ b[1]) or i % 3 == 0, return_state=bool(b[1] ^ b[2]) or i % 4 == 0,
                go_backwards=backwards, zero_output_for_mask=zero_output,
                mask=(MASK_ONE if unbatched else MASK) if masked else None,
                initial_state=(None, "array", "list")[i % 3], unbatched=unbatched)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_option_grid_matches_keras(dtype):
    for i in range(len(GRID)):
        record("gru option grid", dtype, check(grid_case(i, dtype)))


def test_grid_covers_every_option_value():
    cases = [grid_case(i, "float64") for i in range(len(GRID))]
    for field in ("reset_after", "return_sequences", "return_state", "go_backwards", "zero_output_for_mask",
                  "unbatched", "use_bias"):
        assert {getattr(c, field) for c in cases} == {False, True}, field
    assert {c.initial_state for c in cases} == {None, "array", "list"}
    assert {(c.activation, c.recurrent_activation) for c in cases} == set(PAIRS)
    # padding together with zero_output_for_mask, go_backwards and one sequence, on both forms
    assert {(c.reset_after, c.zero_output_for_mask, c.go_backwards) for c in cases if c.mask} == {
        (r, z, g) for r in (True, False) for z in (False, True) for g in (False, True)}


def test_longer_sequence_matches_keras():
    for reset_after in (True, False):
        for dtype in ("float64", "float32"):
            case = grid_case(7, dtype)._replace(T=12, B=2, unbatched=False, mask=None, reset_after=reset_after,
                                                seed=5, gain=0.6)
            record("gru T 12", dtype, check(case))


# ---------------------------------------------------------------------------
# Finite differences (float64), one case per reset_after
# ---------------------------------------------------------------------------


def fd_case(reset_after):
    return Case(B=2, T=4, D=3, U=2, dtype="float64", seed=7, gain=0.9, use_bias=True, reset_after=reset_after,
                activation="tanh", recurrent_activation="sigmoid", return_sequences=True, return_state=True,
                go_backwards=not reset_after, zero_output_for_mask=reset_after, mask=((0, 1, 1, 0), (1, 0, 1, 1)),
                initial_state="array", unbatched=False)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gradients_match_centred_finite_differences(reset_after):
    case = fd_case(reset_after)
    a = arrays(case)
    kw = options(case, a)
    kw.pop("initial_state")

    def loss(x, kernel, recurrent_kernel, bias, h0, absolute=False):
        out, state = rnn_ref.gru(x, kernel, recurrent_kernel, bias, initial_state=h0, **kw)
        f = np.abs if absolute else (lambda v: v)
        return np.sum(f(out * a.d_output)) + np.sum(f(state * a.d_state))

    args = [a.x, *a.weights, a.initial_state]
    _, grads = reference_grads(case, a)
    numeric = centred_differences(loss, args)
    limit = 8 * UNIT_ROUNDOFF[np.dtype("float64")] * loss(*args, absolute=True) / FD_STEP + 1e-11
    for name, g, n in zip(GRUGrads._fields, grads, numeric):
        diff, rel = float(np.max(np.abs(g - n))), cs231n_relative_error(g, n)
        record("finite differences: cs231n rel", "float64", rel)
        record("finite differences: |diff| / bound", "float64", diff / limit)
        assert diff <= limit, f"d_{name}: |vjp - finite difference| = {diff:.3g} > {limit:.3g} (rel {rel:.3g})"


# ---------------------------------------------------------------------------
# The comparison rejects mutants of the backward pass
# ---------------------------------------------------------------------------

MUTANTS = {
    # the (1 - z) h~ + z h update's derivative with respect to z taken with the wrong sign
    "dz_sign_flipped": (True, "dz = dy * (h_prev - candidate)", "dz = dy * (candidate - h_prev)"),
    # reset_after=False: the reset gate's factor r dropped on the way back to h_{t-1}
    # (as if r were applied after the product, to (h @ R[:, h]), not to h)
    "reset_factor_dropped": (False, "dh = dh + d_rh * r  #", "dh = dh + d_rh  #"),
}


def mutant_vjp(old, new):
    source = inspect.getsource(backward_gru)
    assert source.count(old) == 1, f"the mutated line {old!r} is not in backward_gru exactly once"
    module = types.ModuleType("backward_gru_mutant")
    module.__dict__["__package__"] = "rnn_ref"
    exec(compile(source.replace(old, new), "backward_gru_mutant", "exec"), module.__dict__)
    return module.gru_vjp


@pytest.mark.parametrize("name", MUTANTS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_comparison_rejects_mutant(name, dtype):
    reset_after, old, new = MUTANTS[name]
    case = grid_case(3, dtype)._replace(reset_after=reset_after, unbatched=False, B=3, mask=MASK,
                                        return_sequences=True, return_state=True, initial_state="array")
    ratio = check(case, raising=False).ratio
    judgement = check(case, vjp=mutant_vjp(old, new), raising=False)  # the mutant in the float64 truth too
    record(f"mutant {name} (must be > 1)", dtype, judgement.ratio)
    assert ratio <= 1, f"the reference itself is off: {ratio:.3g} of the budget"
    assert judgement.ratio > 1, f"the mutant passes: {judgement.ratio:.3g} of the budget"
    with pytest.raises(AssertionError, match=MUTANT_FAILURE):
        judgement.check()


# ---------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------


def test_gradients_are_named_and_shaped_like_the_arguments():
    case = grid_case(0, "float64")._replace(initial_state="list", return_state=True)
    a = arrays(case)
    _, g = reference_grads(case, a)
    assert GRUGrads._fields == ("inputs", "kernel", "recurrent_kernel", "bias", "initial_state")
    assert isinstance(g.initial_state, list)
    for grad, arg in zip(flat(g), [a.x, *a.weights, a.initial_state[0]]):
        assert grad.shape == arg.shape
    bare = case._replace(use_bias=False, initial_state=None, reset_after=False)
    _, g = reference_grads(bare, arrays(bare))
    assert g.bias is None and g.initial_state is None


def test_none_cotangents_are_zeros_and_count_is_checked():
    case = grid_case(1, "float64")._replace(return_state=True, unbatched=False, B=3)
    a = arrays(case)
    _, backward = gru_vjp(a.x, *a.weights, **options(case, a))
    g_none = backward(a.d_output, None)
    g_zero = backward(a.d_output, np.zeros_like(a.d_state))
    for x, y in zip(flat(g_none), flat(g_zero)):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(TypeError, match=r"takes \(d_output, d_h\), got 1"):
        backward(a.d_output)
    with pytest.raises(ValueError, match="d_output"):
        backward(np.ones((3, 9, 4)), None)


# ---------------------------------------------------------------------------
# Every activation name, in either slot: finite differences (float64)
# ---------------------------------------------------------------------------

ACTIVATION_NAMES = sorted(rnn_ref.layers.activations.ACTIVATIONS)


@pytest.mark.parametrize("slot", ["activation", "recurrent_activation"])
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_every_activation_name_matches_finite_differences(name, slot):
    """Each name through activation_vjp, on a small padded case (both reset_after forms).
    The bound is the rounding term of the test above plus an estimate of the truncation error
    (with exponential gates the state and the gradients reach ~1e9, and h^2 f'(3) / 6 with them)."""
    for reset_after in (True, False):
        case = fd_case(reset_after)._replace(B=1, T=3, U=2, mask=((1, 0, 1),), **{slot: name})
        a = arrays(case)
        kw = options(case, a)
        kw.pop("initial_state")

        def loss(x, kernel, recurrent_kernel, bias, h0, absolute=False):
            out, state = rnn_ref.gru(x, kernel, recurrent_kernel, bias, initial_state=h0, **kw)
            f = np.abs if absolute else (lambda v: v)
            return np.sum(f(out * a.d_output)) + np.sum(f(state * a.d_state))

        args = [a.x, *a.weights, a.initial_state]
        _, grads = reference_grads(case, a)
        numeric = centred_differences(loss, args)
        rounding = 8 * UNIT_ROUNDOFF[np.dtype("float64")] * loss(*args, absolute=True) / FD_STEP
        # Truncation, c h^2: estimated from the quotient at 2h (off by 4 c h^2) as |D(2h) - D(h)| / 3,
        # allowed twice; it matters only where the values are large (exponential gates: ~1e9).
        numeric_2h = centred_differences(loss, args, step=2 * FD_STEP)
        for field, g, n, n2 in zip(GRUGrads._fields, grads, numeric, numeric_2h):
            diff = float(np.max(np.abs(g - n)))
            limit = rounding + 2 * float(np.max(np.abs(n2 - n))) / 3 + 1e-11
            record("finite differences, every name: |diff| / bound", "float64", diff / limit)
            assert diff <= limit, (f"{name} as {slot}, reset_after={reset_after}: "
                                   f"d_{field} off by {diff:.3g} > {limit:.3g}")


def test_report_worst_errors():
    """Print the largest error / budget per comparison (run with -s); runs last in this file."""
    for (what, dtype), ratio in sorted(WORST.items()):
        print(f"\n{what:40s} {dtype:8s} worst {ratio:.3g}", end="")
