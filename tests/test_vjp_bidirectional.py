"""``rnn_ref.vjp(rnn_ref.bidirectional, ...)`` against ``tf.GradientTape`` on a live
``keras.layers.Bidirectional``, and three mutants.

Each case copies random weights into a Keras ``Bidirectional`` around a
SimpleRNN, LSTM or GRU built with the same options (``set_weights``, the
forward layer's weights then the backward one's), asymmetric on purpose: D !=
U, random kernels, non-zero biases (GRU's (2, 3U) for ``reset_after``),
different weights in the two directions, recurrent kernels ``GAIN`` times
random non-symmetric orthogonal blocks (an LSTM's (U, 4U) with orthonormal
rows), random non-zero initial states in some cases, random cotangents for the
output (a pair with merge_mode None) and, with ``return_state``, for each
state. Keras's gradient is that of ``sum(output * d_output) + sum(state *
d_state) ...``, which is what ``backward(d_output, *d_states)`` returns.

The grid: every wrapped layer x every merge_mode x float32 and float64 (30
Keras layers), with return_sequences both ways for each (layer, merge_mode),
return_state, masks (left-padded rows; a mix of left padding, a gap and right
padding), initial states and one sequence (unbatched) spread over it.

Tolerance
---------
The harness's budget, through tests/test_vjp.py's ``judge_vjp``
(``rnn_ref.harness.judging.judge_gradients``): the truth is the Bidirectional's
backward pass in float64 on the case's exact values, the conditioning how far
those gradients move when the inputs, both directions' weights, the initial
states and every cotangent are perturbed by ``tolerance.PERTURB_ULPS`` units of
roundoff, the floor's m one step's products of the wrapped layer plus B T.
``bidirectional_vjp`` adds no recurrence of its own, and the merge at most one
rounding per element, which the conditioning sees with the rest. It replaces a
fixed per-layer ``4 (B + D + U' + 9) T u max|Keras| growth^T`` (twice that for
the inputs), which needed a growth per wrapped layer bounded by hand.
``test_report_worst_errors`` prints the measured worst ratio to the budget
(run with -s).

A second oracle without Keras: float64 centred differences on a masked GRU
case with initial states, for mul and ave (``fd_bound`` of tests/test_vjp.py).

Mutants (small functions below, patched into rnn_ref.backward.bidirectional):
the backward layer's cotangent left in input order (not flipped back to its
processing order), ave's cotangent not halved, mul multiplying by its own
branch instead of the other. Each, patched into rnn_ref (so into the float64
truth too, as a real bug would be), must exceed the same budget by a factor of
at least 1000.
"""

from __future__ import annotations

import functools
import itertools
from typing import NamedTuple, Optional

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")
layers = keras.layers

import rnn_ref  # noqa: E402
from rnn_ref.backward import bidirectional as backward_bidirectional  # noqa: E402
from rnn_ref.backward.bidirectional import BidirectionalGrads  # noqa: E402
from rnn_ref.models.registry import layer_named  # noqa: E402
from test_vjp import (  # noqa: E402  (tests/ is on sys.path)
    MUTANT_FAILURE, centred_differences, fd_bound, judge_vjp, nonzero, orthogonal)

pytestmark = pytest.mark.keras

GAIN = 0.9
#: name -> (reference function, Keras class, gate blocks G, states per direction)
WRAPPED = {
    "simple_rnn": (rnn_ref.simple_rnn, layers.SimpleRNN, 1, 1),
    "lstm": (rnn_ref.lstm, layers.LSTM, 4, 2),
    "gru": (rnn_ref.gru, layers.GRU, 3, 1),
}
MERGE_MODES = ("concat", "sum", "mul", "ave", None)
MASKS = {
    # (B, T) = (3, 5); for one sequence, row 0
    "left": ((0, 0, 1, 1, 1), (0, 1, 1, 1, 1), (1, 1, 1, 1, 1)),  # left padding of different lengths
    "mixed": ((0, 0, 1, 1, 1), (1, 0, 1, 1, 0), (1, 1, 1, 0, 0)),  # left padding, a gap, right padding
}
WORST: dict = {}


class Case(NamedTuple):
    layer: str  # a key of WRAPPED
    merge_mode: Optional[str]
    dtype: str
    return_sequences: bool
    return_state: bool
    mask: Optional[str]  # a key of MASKS
    initial_state: bool
    unbatched: bool  # one sequence (T, D), compared with Keras on a batch of one
    B: int = 3
    T: int = 5
    D: int = 3
    U: int = 2  # != D
    seed: int = 0


# ---------------------------------------------------------------------------
# Arrays, ours and Keras's
# ---------------------------------------------------------------------------


class Arrays(NamedTuple):
    x: np.ndarray  # (B, T, D), or (T, D)
    forward: tuple  # kernel (D, G U), recurrent_kernel (U, G U), bias
    backward: tuple  # the same shapes, other values
    mask: Optional[np.ndarray]  # (B, T) bool, or (T,)
    initial_state: Optional[list]  # forward states then backward states, (B, U) or (U,) each
    d_output: object  # like the output: an array, or the pair (d_y, d_y_rev) with merge_mode None
    d_states: list  # one per returned state, [] without return_state


def direction_weights(rng, layer, D, U):
    G = WRAPPED[layer][2]
    kernel = rng.standard_normal((D, G * U)) / np.sqrt(D)  # (D, G U)
    if layer == "lstm":
        q, r = np.linalg.qr(rng.standard_normal((4 * U, U)))  # (4U, U), orthonormal columns
        recurrent = GAIN * (q * np.sign(np.diag(r))).T  # (U, 4U), orthonormal rows (tests/test_vjp_lstm.py)
    else:
        recurrent = np.concatenate([orthogonal(rng, U, GAIN) for _ in range(G)], axis=1)  # (U, G U)
    bias = nonzero(rng, (2, 3 * U) if layer == "gru" else G * U)  # GRU's reset_after bias
    return kernel, recurrent, bias


def arrays(case):
    rng = np.random.default_rng(case.seed)
    B, T, D, U = case.B, case.T, case.D, case.U
    n_states = WRAPPED[case.layer][3]
    cast = lambda a: a.astype(case.dtype)  # noqa: E731
    one = (lambda a: a[0]) if case.unbatched else (lambda a: a)  # drop the batch axis of one sequence
    x = rng.uniform(-1, 1, (B, T, D))  # (B, T, D)
    forward = tuple(map(cast, direction_weights(rng, case.layer, D, U)))
    backward = tuple(map(cast, direction_weights(rng, case.layer, D, U)))
    mask = None if case.mask is None else one(np.array(MASKS[case.mask], dtype=bool)[:B])  # (B, T)
    initial = None
    if case.initial_state:
        initial = [cast(one(nonzero(rng, (B, U), 1.0))) for _ in range(2 * n_states)]  # (B, U) each
    steps = (T,) if case.return_sequences else ()
    width = 2 * U if case.merge_mode == "concat" else U
    if case.merge_mode is None:
        d_output = tuple(cast(one(rng.standard_normal((B, *steps, U)))) for _ in range(2))  # (d_y, d_y_rev)
    else:
        d_output = cast(one(rng.standard_normal((B, *steps, width))))  # (B, [T,] 2U or U)
    d_states = [cast(one(rng.standard_normal((B, U)))) for _ in range(2 * n_states)] if case.return_state else []
    return Arrays(cast(one(x)), forward, backward, mask, initial, d_output, d_states)


def options(case, a):
    kw = dict(merge_mode=case.merge_mode, return_sequences=case.return_sequences, return_state=case.return_state)
    if a.mask is not None:
        kw["mask"] = a.mask
    if a.initial_state is not None:
        kw["initial_state"] = a.initial_state
    return kw


def ours(case, a):
    """(output, BidirectionalGrads) from rnn_ref.vjp."""
    fn = WRAPPED[case.layer][0]
    out, backward = rnn_ref.vjp(rnn_ref.bidirectional, fn, a.x, a.forward, a.backward, **options(case, a))
    return out, backward(a.d_output, *a.d_states)


@functools.cache
def keras_bidirectional(layer, U, D, dtype, merge_mode, return_sequences, return_state):
    inner = WRAPPED[layer][1](U, return_sequences=return_sequences, return_state=return_state, dtype=dtype)
    bi = layers.Bidirectional(inner, merge_mode=merge_mode, dtype=dtype)
    bi.build((None, None, D))
    return bi


def tape(case, a):
    """Keras's gradients by tf.GradientTape, as a flat dict name -> array (the names of ``flat``)."""
    bi = keras_bidirectional(case.layer, case.U, case.D, case.dtype, case.merge_mode, case.return_sequences,
                             case.return_state)
    bi.set_weights([*a.forward, *a.backward])
    batch = (lambda v: v[None]) if case.unbatched else (lambda v: v)  # Keras takes batches only
    unbatch = (lambda v: v[0]) if case.unbatched else (lambda v: v)
    x = tf.constant(batch(a.x))
    states = [] if a.initial_state is None else [tf.constant(batch(s)) for s in a.initial_state]
    kwargs = {}
    if a.mask is not None:
        kwargs["mask"] = tf.constant(batch(a.mask))
    if states:
        kwargs["initial_state"] = states
    d_outputs = list(a.d_output) if case.merge_mode is None else [a.d_output]
    with tf.GradientTape() as t:
        t.watch(x)
        for s in states:
            t.watch(s)
        result = bi(x, **kwargs)
        flat_result = list(result) if isinstance(result, (list, tuple)) else [result]
        outputs, returned = flat_result[:len(d_outputs)], flat_result[len(d_outputs):]
        assert len(returned) == len(a.d_states)
        loss = sum(tf.reduce_sum(o * batch(d)) for o, d in zip(outputs, d_outputs))
        for s, d in zip(returned, a.d_states):
            loss = loss + tf.reduce_sum(s * batch(d))
    variables = bi.trainable_variables  # the forward layer's, then the backward layer's
    grads = t.gradient(loss, [x, *variables, *states], unconnected_gradients=tf.UnconnectedGradients.ZERO)
    grads = [np.asarray(g) for g in grads]
    d_x, rest = grads[0], grads[1:]
    d_w, d_states = rest[:len(variables)], rest[len(variables):]
    n = len(variables) // 2
    named = {"inputs": unbatch(d_x)}
    for direction, ws in (("forward", d_w[:n]), ("backward", d_w[n:])):
        for k, g in zip(("kernel", "recurrent_kernel", "bias"), ws):
            named[f"{direction}.{k}"] = g
    for i, g in enumerate(d_states):
        named[f"initial_state[{i}]"] = unbatch(g)
    return named


def flat(grads: BidirectionalGrads):
    """Our gradients as name -> array, the names of ``tape``."""
    named = {"inputs": grads.inputs}
    for direction in ("forward", "backward"):
        g = getattr(grads, direction)
        for k in ("kernel", "recurrent_kernel", "bias"):
            if getattr(g, k) is not None:
                named[f"{direction}.{k}"] = getattr(g, k)
    for i, g in enumerate(grads.initial_state or []):
        named[f"initial_state[{i}]"] = g
    return named


def judged(case, a):
    """Our gradients against Keras's with the harness's budget (tests/test_vjp.py's ``judge_vjp``;
    the floor's m one step's products of the wrapped layer plus B T); checks names, shapes
    and dtypes. Returns the ``Judgement`` without raising."""
    __tracebackhide__ = True
    return judge_vjp(f"bidirectional {case}", lambda arrays: flat(ours(case, arrays)[1]), a, tape(case, a),
                     dtype=case.dtype, seed=case.seed, products=layer_named(case.layer).products(case.D, case.U))


# ---------------------------------------------------------------------------
# The grid against Keras
# ---------------------------------------------------------------------------


#: (return_sequences, return_state), ordered so that entries k and k + 2 differ in return_sequences
FLAGS = [(False, False), (True, True), (True, False), (False, True)]


def grid():
    cases = []
    for (l, layer), (m, merge_mode), (d, dtype) in itertools.product(
            enumerate(WRAPPED), enumerate(MERGE_MODES), enumerate(("float64", "float32"))):
        i = 10 * l + 2 * m + d
        return_sequences, return_state = FLAGS[(l + m + 2 * d) % 4]
        unbatched = i % 7 == 3
        cases.append(Case(layer=layer, merge_mode=merge_mode, dtype=dtype, return_sequences=return_sequences,
                          return_state=return_state, mask=(None, "left", "mixed")[i % 3],
                          initial_state=(i // 3) % 2 == 1, unbatched=unbatched, B=1 if unbatched else 3, seed=i))
    return cases


GRID = grid()


@pytest.mark.parametrize("case", GRID, ids=lambda c: (f"{c.layer}-{c.merge_mode}-{c.dtype}"
                                                      f"{'-seq' if c.return_sequences else ''}"
                                                      f"{'-state' if c.return_state else ''}"
                                                      f"{'-' + c.mask if c.mask else ''}"
                                                      f"{'-h0' if c.initial_state else ''}"
                                                      f"{'-one' if c.unbatched else ''}"))
def test_matches_gradient_tape(case):
    a = arrays(case)
    out, grads = ours(case, a)
    expected_out = rnn_ref.bidirectional(WRAPPED[case.layer][0], a.x, a.forward, a.backward, **options(case, a))
    flat_out = out if isinstance(out, tuple) else (out,)
    flat_expected = expected_out if isinstance(expected_out, tuple) else (expected_out,)
    assert len(flat_out) == len(flat_expected)
    for o, e in zip(flat_out, flat_expected):
        np.testing.assert_array_equal(o, e, err_msg="the vjp's output differs from bidirectional's")
    judgement = judged(case, a)
    key = (case.layer, case.dtype)
    WORST[key] = max(WORST.get(key, 0.0), judgement.ratio)
    judgement.check()


def test_grid_covers_every_option():
    """Each (layer, merge_mode) with return_sequences both ways; the other options somewhere for each layer."""
    for layer, merge_mode in itertools.product(WRAPPED, MERGE_MODES):
        assert {c.return_sequences for c in GRID if c.layer == layer and c.merge_mode == merge_mode} == {False, True}
    for layer in WRAPPED:
        cases = [c for c in GRID if c.layer == layer]
        for what in ("return_state", "initial_state", "unbatched"):
            assert {getattr(c, what) for c in cases} == {False, True}, (layer, what)
        assert {c.mask for c in cases} == {None, "left", "mixed"}, layer
    assert {c.merge_mode for c in GRID if c.return_state and c.return_sequences} == set(MERGE_MODES)


# ---------------------------------------------------------------------------
# Mutants: the comparison must reject them
# ---------------------------------------------------------------------------

_merge_backward = backward_bidirectional._merge_backward


def not_flipped_back(dy_rev, return_sequences):
    """The backward layer given its cotangent in input order, not its processing order."""
    return dy_rev


def ave_not_halved(d_output, merge_mode, y, y_rev, letters, dtype):
    dy, dy_rev = _merge_backward(d_output, merge_mode, y, y_rev, letters, dtype)
    return (2 * dy, 2 * dy_rev) if merge_mode == "ave" else (dy, dy_rev)


def mul_own_branch(d_output, merge_mode, y, y_rev, letters, dtype):
    dy, dy_rev = _merge_backward(d_output, merge_mode, y, y_rev, letters, dtype)
    if merge_mode == "mul":
        g = np.asarray(d_output, dtype)
        return g * y, g * y_rev  # each branch times itself
    return dy, dy_rev


MUTANTS = {
    "not_flipped_back": ("_to_processing_order", not_flipped_back, "concat"),
    "ave_not_halved": ("_merge_backward", ave_not_halved, "ave"),
    "mul_own_branch": ("_merge_backward", mul_own_branch, "mul"),
}


@pytest.mark.parametrize("mutant", MUTANTS)
def test_comparison_rejects_mutant(mutant, monkeypatch):
    target, fn, merge_mode = MUTANTS[mutant]
    case = Case(layer="lstm", merge_mode=merge_mode, dtype="float32", return_sequences=True, return_state=False,
                mask="mixed", initial_state=True, unbatched=False, seed=99)
    a = arrays(case)
    ratio = judged(case, a).ratio
    assert ratio <= 1, f"the reference itself is off: {ratio:.3g} x the budget"
    monkeypatch.setattr(backward_bidirectional, target, fn)
    judgement = judged(case, a)  # the mutant in the float64 truth too, as a bug would be
    WORST[(f"mutant {mutant}", case.dtype)] = judgement.ratio
    assert judgement.ratio > 1000, f"the mutant is only {judgement.ratio:.3g} x the budget"
    with pytest.raises(AssertionError, match=MUTANT_FAILURE):
        judgement.check()


# ---------------------------------------------------------------------------
# Without Keras: structure, zeros, errors
# ---------------------------------------------------------------------------


def small(layer="lstm", **kw):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 4, 3))  # (B, T, D)
    return x, direction_weights(rng, layer, 3, 2), direction_weights(rng, layer, 3, 2), kw


def test_gradients_are_named_and_shaped_like_the_arguments():
    x, fwd, bwd, _ = small()
    h = [np.full((2, 2), 0.5)] * 4
    out, backward = rnn_ref.vjp(rnn_ref.bidirectional, rnn_ref.lstm, x, fwd, bwd, initial_state=tuple(h),
                                return_sequences=True)
    g = backward(np.ones_like(out))
    assert BidirectionalGrads._fields == ("inputs", "forward", "backward", "initial_state")
    assert type(g.forward).__name__ == "LSTMGrads" and type(g.backward).__name__ == "LSTMGrads"
    assert g.inputs.shape == x.shape
    np.testing.assert_array_equal(g.inputs, g.forward.inputs + g.backward.inputs)
    assert [w.shape for w in g.forward[1:4]] == [w.shape for w in fwd]
    assert isinstance(g.initial_state, tuple) and len(g.initial_state) == 4  # as given: a tuple of 4
    for got, part in zip(g.initial_state, [*g.forward.initial_state, *g.backward.initial_state]):
        assert got is part
    no_bias = rnn_ref.vjp(rnn_ref.bidirectional, rnn_ref.lstm, x, fwd[:2], bwd[:2])[1](None)
    assert no_bias.forward.bias is None and no_bias.initial_state is None


@pytest.mark.parametrize("merge_mode", MERGE_MODES)
def test_none_cotangents_are_zeros(merge_mode):
    x, fwd, bwd, _ = small("gru")
    out, backward = rnn_ref.vjp(rnn_ref.bidirectional, rnn_ref.gru, x, fwd, bwd, merge_mode=merge_mode,
                                return_state=True)
    g = backward(None, None, None)
    assert not np.any(g.inputs) and not np.any(g.forward.kernel) and not np.any(g.backward.recurrent_kernel)
    if merge_mode is None:
        y, y_rev = out[:2]
        half = backward((None, np.ones_like(y_rev)), None, None)  # only the backward branch
        assert not np.any(half.forward.kernel) and np.any(half.backward.kernel)


ERRORS = {  # id: (call, exception, message)
    "pair_expected": (lambda b: b(np.ones((2, 2))), dict(merge_mode=None), TypeError,
                      r"merge_mode None, d_output must be the pair \(d_y, d_y_rev\)"),
    "concat_shape": (lambda b: b(np.ones((2, 2))), dict(), ValueError,
                     r"d_output must have shape \(B, 2U\) = \(2, 4\), got \(2, 2\)"),
    "sum_sequence_shape": (lambda b: b(np.ones((2, 4, 4))), dict(merge_mode="sum", return_sequences=True),
                           ValueError, r"d_output must have shape \(B, T, U\) = \(2, 4, 2\), got \(2, 4, 4\)"),
    "states_missing": (lambda b: b(None, None), dict(return_state=True), TypeError,
                       r"takes \(d_output, d_h_forward, d_c_forward, d_h_backward, d_c_backward\), got 2"),
    "state_shape": (lambda b: b(None, None, None, np.ones(3), None), dict(return_state=True), ValueError,
                    r"backward layer: d_h must have shape"),
}


@pytest.mark.parametrize("name", ERRORS)
def test_errors_say_what_was_expected(name):
    call, kw, exception, message = ERRORS[name]
    x, fwd, bwd, _ = small()
    _, backward = rnn_ref.vjp(rnn_ref.bidirectional, rnn_ref.lstm, x, fwd, bwd, **kw)
    with pytest.raises(exception, match=message):
        call(backward)


@pytest.mark.parametrize("kw, exception, message", [
    (dict(go_backwards=True), TypeError, "go_backwards is not an option of bidirectional"),
    (dict(merge_mode="max"), ValueError, "merge_mode must be one of"),
    (dict(initial_state=[np.zeros((2, 2))] * 2), ValueError, r"initial_state must be a list of 4 arrays"),
    (dict(reset_after=True), TypeError, "lstm has no option reset_after"),
])
def test_bad_calls_are_refused_as_bidirectional_refuses_them(kw, exception, message):
    x, fwd, bwd, _ = small()
    with pytest.raises(exception, match=message):
        rnn_ref.bidirectional(rnn_ref.lstm, x, fwd, bwd, **kw)
    with pytest.raises(exception, match=message):
        rnn_ref.vjp(rnn_ref.bidirectional, rnn_ref.lstm, x, fwd, bwd, **kw)


def test_a_direction_weight_error_names_the_direction():
    x, fwd, bwd, _ = small()
    with pytest.raises(ValueError, match="backward layer: .*kernel"):
        rnn_ref.vjp(rnn_ref.bidirectional, rnn_ref.lstm, x, fwd, (bwd[0][:2], *bwd[1:]))


@pytest.mark.parametrize("merge_mode", ["mul", "ave"])
def test_matches_centred_finite_differences(merge_mode):
    """A second oracle, without Keras (float64, ``fd_bound`` of tests/test_vjp.py): a GRU with a
    mask, initial states, return_sequences and return_state; every argument perturbed."""
    case = Case(layer="gru", merge_mode=merge_mode, dtype="float64", return_sequences=True, return_state=True,
                mask="mixed", initial_state=True, unbatched=False, B=2, T=3, D=2, U=2, seed=7)
    a = arrays(case)._replace(mask=np.array([[0, 1, 1], [1, 0, 1]], dtype=bool))
    _, grads = ours(case, a)
    n_f = len(a.forward)

    def loss(x, *rest, absolute=False):
        fwd, bwd, h0 = rest[:n_f], rest[n_f:2 * n_f], list(rest[2 * n_f:])
        kw = {**options(case, a), "initial_state": h0}
        out, *states = rnn_ref.bidirectional(rnn_ref.gru, x, fwd, bwd, **kw)
        terms = [out * a.d_output, *(s * d for s, d in zip(states, a.d_states))]
        return sum(np.sum(np.abs(t) if absolute else t) for t in terms)

    args = [a.x, *a.forward, *a.backward, *a.initial_state]
    numeric = centred_differences(loss, args)
    ours_flat = [grads.inputs, *grads.forward[1:4], *grads.backward[1:4], *grads.initial_state]
    limit = fd_bound(loss(*args, absolute=True))
    for i, (g, n) in enumerate(zip(ours_flat, numeric)):
        diff = float(np.max(np.abs(g - n)))
        WORST[("finite differences |diff| / bound", "float64")] = max(
            WORST.get(("finite differences |diff| / bound", "float64"), 0.0), diff / limit)
        assert diff <= limit, f"argument {i}: max |vjp - finite difference| = {diff:.3g} > {limit:.3g}"


def test_report_worst_errors():
    """Print the largest error / budget per (layer, dtype) and the mutants' ratios (run with -s)."""
    for (what, dtype), ratio in sorted(WORST.items()):
        print(f"\n{what:44s} {dtype:8s} worst error / budget {ratio:.3g}", end="")
