"""``rnn_ref.lstm``, ``rnn_ref.gru`` and ``rnn_ref.bidirectional`` against live Keras.

Every comparison copies random weights into a Keras layer built with the
same options (``set_weights``): kernels asymmetric, D and U drawn
independently (so D != U is common), biases non-zero (GRU's two bias rows
drawn independently), each recurrent gate block ``gain`` times a random
non-symmetric orthogonal matrix with a moderate gain (0.3 to 1). Keras
layers are cached by configuration; hypothesis examples only replace the
weights and the inputs.

The second half shows that each comparison catches plausible bugs: each
mutant is a small wrapper around the reference, and the Keras comparison
must fail for it on a small fixed case where the reference passes.

Tolerances: the harness's budget, through ``rnn_ref.harness.judging.judge_outputs``
(``judged``), for every returned array (the output or outputs and each state). The
truth is the reference in float64 on the case's exact values; the conditioning is how
far it moves when every input, weight and initial state is perturbed by
``tolerance.PERTURB_ULPS`` units of roundoff of the dtype; an element fails when
|reference - truth| exceeds ``FACTOR * max(Keras's error, conditioning)`` (its envelope
over the units and the steps so far) plus one step's rounding floor, and Keras fails
the case when it is off the truth by more than ``FACTOR * conditioning + floor``. A
float64 result is the truth itself, so there the check is Keras's. A fixed
``ulps * T`` bound assumed a non-expanding loop; the exponential and other unbounded
gates of ``test_every_activation_name`` expand rounding differences by a factor that
depends on the CPU's vector ``exp``, which the conditioning measures and a fixed
formula cannot know. Measured: the worst error / budget is 0.17 over every activation
name in both slots (log_softmax gates), the ten mutants 4e13 to 3e14 times (float64)
and 1e5 to 7e5 times (float32) their budget.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import hypothesis
import numpy as np
import pytest
from hypothesis import given, note, settings, strategies as st

keras = pytest.importorskip("keras")
layers = keras.layers

import rnn_ref  # noqa: E402
from rnn_ref.layers.activations import ACTIVATIONS  # noqa: E402
from rnn_ref.harness.judging import judge_outputs  # noqa: E402
from rnn_ref.models.registry import layer_named  # noqa: E402

pytestmark = pytest.mark.keras

#: Examples per hypothesis test: a profile with more examples scales them up.
EXAMPLES = max(50, settings.default.max_examples)
cases_settings = settings(max_examples=EXAMPLES, deadline=None)

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
FUNCTIONS = {"simple_rnn": rnn_ref.simple_rnn, "lstm": rnn_ref.lstm, "gru": rnn_ref.gru}
KERAS = {"simple_rnn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}
N_STATES = {"simple_rnn": 1, "lstm": 2, "gru": 1}

#: A few activation names; non-default ones in both slots. All have slope <= 1,
#: so the loop stays non-expanding at gain <= 1 (see the float32 budget). The
#: gates' names keep them in [0, 1]: with tanh or softsign gates a GRU's update
#: z h + (1 - z) h~ extrapolates (1 - z up to 2) and rounding differences grow
#: geometrically. Measured (GRU, linear, tanh gates, T = 11, float32): Keras is
#: 1e-3 and the reference 6e-4 from the float64 result, 1.6e-3 apart, and one
#: float32 ulp on the weights moves the float64 result by 2.8e-4:
#: ill-conditioning, not a bug. Every name in both slots is checked at T = 4 (test_every_activation_name).
ACTIVATION_NAMES = ("tanh", "relu", "softsign", "elu", "linear", "hard_tanh")
RECURRENT_ACTIVATION_NAMES = ("sigmoid", "hard_sigmoid", "sparse_sigmoid")
MERGE_MODES = ("concat", "sum", "mul", "ave", None)


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------


class Case(NamedTuple):
    layer: str  # "lstm" or "gru"; for a Bidirectional, the wrapped layer (or "simple_rnn")
    B: int
    T: int
    D: int
    U: int
    dtype: str
    seed: int
    gain: float  # of each recurrent gate block
    use_bias: bool
    activation: str
    recurrent_activation: Optional[str]  # None for simple_rnn
    reset_after: Optional[bool]  # GRU only
    return_sequences: bool
    return_state: bool
    go_backwards: bool
    zero_output_for_mask: bool  # for a Bidirectional: given to Keras's layer, which overrides it
    mask: Optional[tuple]  # (B, T) of 0/1, rows: valid, random, left/right padded, all masked
    initial_state: bool  # non-zero initial states (h and c)
    unbatched: bool  # one sequence (T, D), compared with Keras on a batch of one
    bidirectional: bool = False
    merge_mode: Optional[str] = "concat"


MASK_ROWS = ("valid", "random", "left", "right", "all_masked")


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


@st.composite
def rnn_cases(draw, layer=st.sampled_from(["lstm", "gru"]), bidirectional=False):
    """Any shape (B 1-3, T 1-12, D and U 1-6), both float dtypes, every option."""
    layer = draw(layer)
    B = draw(st.integers(1, 3))
    T = draw(st.integers(1, 12))
    D = draw(st.integers(1, 6))
    U = draw(st.integers(1, 6))
    return Case(
        layer=layer,
        B=B,
        T=T,
        D=D,
        U=U,
        dtype=draw(st.sampled_from(["float32", "float64"])),
        seed=draw(st.integers(0, 2**32 - 1)),
        gain=draw(st.floats(0.3, 1.0)),
        use_bias=draw(st.sampled_from([True, True, False])),
        activation=draw(st.sampled_from(ACTIVATION_NAMES)),
        recurrent_activation=None if layer == "simple_rnn" else draw(st.sampled_from(RECURRENT_ACTIVATION_NAMES)),
        reset_after=draw(st.booleans()) if layer == "gru" else None,
        return_sequences=draw(st.booleans()),
        return_state=draw(st.booleans()),
        go_backwards=False if bidirectional else draw(st.booleans()),
        zero_output_for_mask=draw(st.booleans()),
        mask=draw(st.none() | masks(B, T)),
        initial_state=draw(st.booleans()),
        unbatched=B == 1 and draw(st.booleans()),
        bidirectional=bidirectional,
        merge_mode=draw(st.sampled_from(MERGE_MODES)) if bidirectional else "concat",
    )


def bidirectional_cases():
    return rnn_cases(layer=st.sampled_from(["simple_rnn", "lstm", "gru"]), bidirectional=True)


# ---------------------------------------------------------------------------
# Weights, Keras layers, calls
# ---------------------------------------------------------------------------


def orthogonal(rng, U, gain):
    """``gain`` times a random (U, U) orthogonal matrix, not symmetric."""
    q, r = np.linalg.qr(rng.standard_normal((U, U)))
    return gain * (q * np.sign(np.diag(r)))


def random_weights(case, rng):
    """(kernel, recurrent_kernel, bias or None) for one direction of ``case``."""
    G, D, U = GATES[case.layer], case.D, case.U
    kernel = rng.standard_normal((D, G * U)) / np.sqrt(D)  # (D, GU), pre-activations of order 1
    recurrent = np.concatenate([orthogonal(rng, U, case.gain) for _ in range(G)], axis=1)  # (U, GU)
    weights = [kernel, recurrent]
    if case.use_bias:
        bias = 0.5 * rng.standard_normal((2, G * U) if case.layer == "gru" and case.reset_after else (G * U,))
        bias[np.abs(bias) < 0.05] = 0.3  # non-zero, so a dropped bias shows
        weights.append(bias)
    return tuple(w.astype(case.dtype) for w in weights)


class Config(NamedTuple):
    """What a Keras layer is built from (the rest of a case is weights and inputs)."""

    layer: str
    D: int
    U: int
    dtype: str
    use_bias: bool
    activation: str
    recurrent_activation: Optional[str]
    reset_after: Optional[bool]
    return_sequences: bool
    return_state: bool
    go_backwards: bool
    zero_output_for_mask: bool
    bidirectional: bool
    merge_mode: Optional[str]


@functools.cache
def keras_layer(config):
    options = dict(
        activation=config.activation, use_bias=config.use_bias, return_sequences=config.return_sequences,
        return_state=config.return_state, go_backwards=config.go_backwards,
        zero_output_for_mask=config.zero_output_for_mask, dtype=config.dtype,
    )
    if config.recurrent_activation is not None:
        options["recurrent_activation"] = config.recurrent_activation
    if config.reset_after is not None:
        options["reset_after"] = config.reset_after
    layer = KERAS[config.layer](config.U, **options)
    if config.bidirectional:
        # The wrapper's own dtype too: a float32 Bidirectional casts float64 outputs down.
        layer = layers.Bidirectional(layer, merge_mode=config.merge_mode, dtype=config.dtype)
    layer(np.zeros((1, 1, config.D), config.dtype))  # build
    return layer


class Arrays(NamedTuple):
    x: np.ndarray  # (B, T, D), or (T, D) for one sequence
    forward: tuple  # weights of the layer (of the forward direction)
    backward: Optional[tuple]  # weights of the backward direction of a Bidirectional
    mask: Optional[np.ndarray]  # (B, T) bool, or (T,)
    initial_state: Optional[list]  # one (B, U) array per state (forward then backward)


def arrays(case):
    rng = np.random.default_rng(case.seed)
    x = rng.uniform(-1, 1, (case.B, case.T, case.D)).astype(case.dtype)  # (B, T, D)
    forward = random_weights(case, rng)
    backward = random_weights(case, rng) if case.bidirectional else None
    mask = None if case.mask is None else np.array(case.mask, dtype=bool)  # (B, T)
    init = None
    if case.initial_state:
        n = N_STATES[case.layer] * (2 if case.bidirectional else 1)
        init = [rng.standard_normal((case.B, case.U)).astype(case.dtype) for _ in range(n)]  # (B, U) each
    if case.unbatched:
        x, mask = x[0], None if mask is None else mask[0]
        init = None if init is None else [s[0] for s in init]
    return Arrays(x, forward, backward, mask, init)


def keras_result(case, a):
    """What the Keras layer of ``case`` returns on ``a`` (as NumPy)."""
    layer = keras_layer(Config(*(getattr(case, f) for f in Config._fields)))
    layer.set_weights([*a.forward, *(a.backward or ())])
    x, mask, init = a.x, a.mask, a.initial_state
    if case.unbatched:  # Keras takes batches only: a batch of one
        x, mask = x[None], None if mask is None else mask[None]
        init = None if init is None else [s[None] for s in init]
    kwargs = {}
    if mask is not None:
        kwargs["mask"] = mask
    if init is not None:
        kwargs["initial_state"] = init
    out = keras.tree.map_structure(np.asarray, layer(x, **kwargs))
    if case.unbatched:
        out = keras.tree.map_structure(lambda v: v[0], out)
    return out


def layer_options(case):
    options = dict(activation=case.activation, return_sequences=case.return_sequences,
                   return_state=case.return_state)
    if case.recurrent_activation is not None:
        options["recurrent_activation"] = case.recurrent_activation
    if case.reset_after is not None:
        options["reset_after"] = case.reset_after
    return options


def reference_result(case, a, functions=FUNCTIONS, bidirectional=rnn_ref.bidirectional):
    """What ``functions[case.layer]`` (or ``bidirectional`` around it) returns on ``a``."""
    options = layer_options(case)
    if a.mask is not None:
        options["mask"] = a.mask
    if a.initial_state is not None:
        options["initial_state"] = a.initial_state
    if case.bidirectional:
        return bidirectional(functions[case.layer], a.x, a.forward, a.backward, merge_mode=case.merge_mode, **options)
    return functions[case.layer](a.x, *a.forward, go_backwards=case.go_backwards,
                                 zero_output_for_mask=case.zero_output_for_mask, **options)


# ---------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------


def flat_arrays(result):
    """The arrays of a layer's result in order: the output(s), then the states."""
    return tuple(keras.tree.flatten(result))


def reference_call(case, functions=FUNCTIONS, bidirectional=rnn_ref.bidirectional):
    """``reference_result`` as a function of the case's arrays by keyword, returning a
    flat tuple: what the judge runs in float64 for the truth and the conditioning."""
    def call(x, forward, backward, mask, initial_state):
        return flat_arrays(reference_result(case, Arrays(x, forward, backward, mask, initial_state),
                                            functions, bidirectional))
    return call


def time_axes(case, n):
    """The axis of steps of each of the ``n`` returned arrays: the output(s) with
    return_sequences (two with merge_mode None), None for the states."""
    outputs = 2 if case.bidirectional and case.merge_mode is None else 1
    axis = (0 if case.unbatched else 1) if case.return_sequences else None
    return [axis if i < outputs else None for i in range(n)]


def products(case):
    """One step's dot products and roundings (the floor's m, as the harness's LayerSpec)."""
    return layer_named(case.layer).products(case.D, case.U)


def assert_structure(actual, expected, what="output"):
    """Same structure, shapes and dtypes as Keras, the same inf and NaN where Keras has them."""
    __tracebackhide__ = True
    if isinstance(expected, (list, tuple)):
        # Keras returns tuples (return_state, merge_mode=None's pair); so must the reference.
        assert type(actual) is type(expected) and len(actual) == len(expected), (
            f"{what}: got {type(actual).__name__} of {len(actual) if isinstance(actual, (tuple, list)) else '-'}, "
            f"Keras gives {type(expected).__name__} of {len(expected)}")
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_structure(a, e, f"{what}[{i}]")
        return
    assert isinstance(actual, np.ndarray), f"{what}: got {type(actual).__name__}, expected an array"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, Keras {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype}, Keras {expected.dtype}"
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(actual[~finite], expected[~finite], err_msg=f"{what}: inf or NaN where Keras has")


def judged(case, a, expected, functions=FUNCTIONS, bidirectional=rnn_ref.bidirectional):
    """The reference built from ``functions`` and ``bidirectional`` on ``a`` against Keras's
    ``expected``: the structure, then every returned array with the harness's budget
    (module docstring); returns the ``Judgement`` without raising."""
    __tracebackhide__ = True
    actual = reference_result(case, a, functions, bidirectional)
    assert_structure(actual, expected)
    got, keras_arrays = flat_arrays(actual), flat_arrays(expected)
    names = ["output", *(f"state[{i}]" for i in range(len(got) - 1))]
    if case.bidirectional and case.merge_mode is None:
        names = ["output forward", "output backward", *(f"state[{i}]" for i in range(len(got) - 2))]
    return judge_outputs(case.layer, reference_call(case, functions, bidirectional), a._asdict(), got, keras_arrays,
                         case.dtype, m=products(case), time_axes=time_axes(case, len(got)), names=names,
                         seed=case.seed)


def _note(text):
    if hypothesis.currently_in_test_context():
        note(text)


def check(case):
    """Compare the reference with Keras on ``case``; return the arrays and Keras's result."""
    __tracebackhide__ = True
    _note(repr(case))
    a = arrays(case)
    expected = keras_result(case, a)
    judgement = judged(case, a, expected)
    _note(f"worst error / budget = {judgement.ratio:.3g}")
    judgement.check()
    return a, expected


# ---------------------------------------------------------------------------
# The reference against Keras
# ---------------------------------------------------------------------------


@cases_settings
@given(case=rnn_cases(layer=st.just("lstm")))
def test_lstm_matches_keras(case):
    check(case)


@cases_settings
@given(case=rnn_cases(layer=st.just("gru")))
def test_gru_matches_keras(case):
    check(case)


@cases_settings
@given(case=bidirectional_cases())
def test_bidirectional_matches_keras(case):
    check(case)


def fixed_case(layer, **changes):
    """A small float64 case with padding on the left (leading masked steps) and on the
    right, an all-masked row, non-zero initial states and every step returned."""
    case = Case(layer=layer, B=3, T=5, D=3, U=4, dtype="float64", seed=7, gain=0.9, use_bias=True,
                activation="tanh", recurrent_activation=None if layer == "simple_rnn" else "sigmoid",
                reset_after=True if layer == "gru" else None, return_sequences=True, return_state=True,
                go_backwards=False, zero_output_for_mask=False,
                mask=((0, 0, 1, 1, 1), (1, 1, 1, 0, 0), (0, 0, 0, 0, 0)), initial_state=True, unbatched=False)
    return case._replace(**changes)


@pytest.mark.parametrize("one_call_max", [0, 10**9], ids=["gate by gate", "all four blocks in one call"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lstm_matches_keras_with_either_gate_path(monkeypatch, one_call_max, dtype):
    """The LSTM's step takes its recurrent activation over all four blocks in one call on a small
    batch (``lstm.ONE_CALL_MAX``), block by block on a large one; the suite's small cases meet the
    first, so this fixed case is checked against Keras on both."""
    from rnn_ref.layers import lstm as lstm_module  # noqa: PLC0415

    monkeypatch.setattr(lstm_module, "ONE_CALL_MAX", one_call_max)
    check(fixed_case("lstm", dtype=dtype))


def test_one_call_that_takes_the_candidate_from_the_gates_is_caught(monkeypatch):
    """The mutant: the one-call path reads the candidate g from the recurrent activation's
    output (sigmoid) instead of ``activation`` (tanh)."""
    from rnn_ref.layers import lstm as lstm_module  # noqa: PLC0415

    def step(self, x_t, states):
        h, c = states
        U = self.units
        z = x_t
        z += h @ self.recurrent_kernel
        gates = self.recurrent_activation(z)
        i, f, g, o = (gates[:, k * U:(k + 1) * U] for k in range(4))
        c = f * c + i * g
        h = o * self.activation(c)
        return h, [h, c]

    monkeypatch.setattr(lstm_module.LSTMCell, "step", step)
    case = fixed_case("lstm", dtype="float32")
    with pytest.raises(AssertionError, match=MUTANT_FAILURE):
        check(case)


@pytest.mark.parametrize("layer", ["lstm", "gru"])
def test_leading_masked_steps_and_all_masked_row(layer):
    """Keras outputs zero before the first valid step despite a non-zero initial state, and
    a fully masked row keeps every initial state (h and, for LSTM, c)."""
    case = fixed_case(layer)
    a, expected = check(case)
    output, *states = expected
    assert np.all(output[0, :2] == 0) and np.all(output[2] == 0)
    assert np.any(a.initial_state[0][0] != 0)
    for s, s0 in zip(states, a.initial_state):
        np.testing.assert_array_equal(s[2], s0[2])


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("given_zero_output", [True, False])
def test_keras_bidirectional_forces_zero_output_for_mask(return_sequences, given_zero_output):
    """Whatever the wrapped layer says, Keras sets zero_output_for_mask = return_sequences on
    both copies; with return_sequences the padded steps output zeros."""
    bi = layers.Bidirectional(layers.LSTM(3, return_sequences=return_sequences,
                                          zero_output_for_mask=given_zero_output))
    assert bi.forward_layer.zero_output_for_mask is return_sequences
    assert bi.backward_layer.zero_output_for_mask is return_sequences
    case = fixed_case("lstm", bidirectional=True, return_sequences=return_sequences, return_state=False,
                      zero_output_for_mask=given_zero_output)
    _, expected = check(case)
    if return_sequences:
        m = np.array(case.mask, bool)  # (B, T)
        assert np.all(expected[~m] == 0)


@pytest.mark.parametrize("slot", ["activation", "recurrent_activation"])
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_every_activation_name(name, slot):
    """Every Keras activation name in each slot, the other one at its default (float32:
    Keras's float64 gelu and leaky_relu round a constant to float32, see test_keras_quirks).
    An unbounded gate (exponential, linear...) can overflow: Keras's inf and NaN must then
    be the reference's too."""
    for layer in ("lstm", "gru"):
        case = fixed_case(layer, dtype="float32", B=2, T=4, D=3, U=2, mask=None, seed=len(name),
                          **{slot: name})
        check(case)


# ---------------------------------------------------------------------------
# Argument errors
# ---------------------------------------------------------------------------

x3 = np.zeros((2, 4, 3))  # (B, T, D) = (2, 4, 3); U = 5 below
lstm_w = (np.zeros((3, 20)), np.zeros((5, 20)), np.zeros(20))
gru_w = (np.zeros((3, 15)), np.zeros((5, 15)), np.zeros((2, 15)))
bi_lstm = functools.partial(rnn_ref.bidirectional, rnn_ref.lstm, x3)

ERRORS = {  # id: (call, message)
    "lstm_kernel_transposed": (
        lambda: rnn_ref.lstm(x3, np.zeros((20, 3)), *lstm_w[1:]),
        r"kernel must have shape \(D, 4U\) = \(3, 20\), got \(20, 3\); it looks transposed"),
    "lstm_recurrent_kernel_transposed": (
        lambda: rnn_ref.lstm(x3, lstm_w[0], np.zeros((20, 5)), lstm_w[2]),
        r"recurrent_kernel must have shape \(U, 4U\) with U >= 1, got \(20, 5\); it looks transposed"),
    "lstm_square_recurrent_kernel": (
        lambda: rnn_ref.lstm(x3, lstm_w[0], np.zeros((5, 5)), lstm_w[2]),
        r"got \(5, 5\); a square \(U, U\) matrix is a SimpleRNN's"),
    "lstm_two_biases": (
        lambda: rnn_ref.lstm(x3, *lstm_w[:2], np.zeros((2, 20))),
        r"bias must have shape \(4U,\) = \(20,\), got \(2, 20\); .* bias_ih \+ bias_hh"),
    "lstm_one_initial_state": (
        lambda: rnn_ref.lstm(x3, *lstm_w, initial_state=np.zeros((2, 5))),
        r"initial_state must be a list of 2 arrays \(B, U\) \(h, c\), got a list of 1"),
    "gru_reset_after_one_bias_row": (
        lambda: rnn_ref.gru(x3, *gru_w[:2], np.zeros(15)),
        r"bias must have shape \(2, 3U\) = \(2, 15\), got \(15,\); reset_after=True takes two rows"),
    "gru_two_bias_rows_without_reset_after": (
        lambda: rnn_ref.gru(x3, *gru_w, reset_after=False),
        r"bias must have shape \(3U,\) = \(15,\), got \(2, 15\); reset_after=False takes one row"),
    "gru_kernel_of_lstm": (
        lambda: rnn_ref.gru(x3, np.zeros((3, 20)), *gru_w[1:]),
        r"kernel must have shape \(D, 3U\) = \(3, 15\), got \(3, 20\)"),
    "bi_merge_mode": (lambda: bi_lstm(lstm_w, lstm_w, merge_mode="max"), r"merge_mode must be one of"),
    "bi_go_backwards": (
        lambda: bi_lstm(lstm_w, lstm_w, go_backwards=True), r"go_backwards is not an option of bidirectional"),
    "bi_zero_output_for_mask": (
        lambda: bi_lstm(lstm_w, lstm_w, zero_output_for_mask=True),
        r"zero_output_for_mask is not an option of bidirectional: Keras sets it to return_sequences"),
    "bi_unknown_option": (lambda: bi_lstm(lstm_w, lstm_w, reset_after=True), r"lstm has no option reset_after"),
    "bi_initial_state_of_one_direction": (
        lambda: bi_lstm(lstm_w, lstm_w, initial_state=[np.zeros((2, 5))] * 2),
        r"initial_state must be a list of 4 arrays \(B, U\) "
        r"\(h_forward, c_forward, h_backward, c_backward\), got 2"),
    "bi_backward_weights_of_gru": (
        lambda: bi_lstm(lstm_w, gru_w),
        r"backward layer: recurrent_kernel must have shape \(U, 4U\) with U >= 1, got \(5, 15\)"),
    "bi_unknown_layer": (
        lambda: rnn_ref.bidirectional(print, x3, lstm_w, lstm_w),
        r"layer must be rnn_ref.simple_rnn, rnn_ref.lstm or rnn_ref.gru"),
}


@pytest.mark.parametrize("name", ERRORS)
def test_argument_errors_say_what_was_expected(name):
    call, message = ERRORS[name]
    with pytest.raises((ValueError, TypeError), match=message):
        call()


# ---------------------------------------------------------------------------
# Each comparison catches plausible bugs
# ---------------------------------------------------------------------------


def blocks(w, order):
    """``w`` with its gate blocks (last axis) taken in ``order``."""
    if w is None:
        return None
    U = w.shape[-1] // len(order)
    return np.concatenate([w[..., k * U:(k + 1) * U] for k in order], axis=-1)


def reordered(function, order):
    """What an implementation that reads the gate blocks in another order computes:
    ``function`` on Keras's weights with the blocks permuted."""
    def mutant(inputs, kernel, recurrent_kernel, bias=None, **options):
        return function(inputs, blocks(kernel, order), blocks(recurrent_kernel, order), blocks(bias, order), **options)
    return mutant


# LSTM. (PyTorch's i, f, g, o is Keras's i, f, c, o: no bug there.)
lstm_tf1_order = reordered(rnn_ref.lstm, (0, 2, 1, 3))  # reads i, c, f, o (TensorFlow 1's LSTMCell)
lstm_onnx_order = reordered(rnn_ref.lstm, (0, 2, 3, 1))  # reads i, o, f, c (ONNX): block 1 as o, 2 as f, 3 as c


def lstm_forget_gate_without_bias(inputs, kernel, recurrent_kernel, bias=None, **options):
    U = recurrent_kernel.shape[0]
    bias = bias.copy()
    bias[U:2 * U] = 0
    return rnn_ref.lstm(inputs, kernel, recurrent_kernel, bias, **options)


def lstm_extra_forget_bias(inputs, kernel, recurrent_kernel, bias=None, **options):
    """TensorFlow 1's LSTMCell adds forget_bias=1 at run time; Keras adds it to the initial bias only."""
    U = recurrent_kernel.shape[0]
    bias = bias.copy()
    bias[U:2 * U] += 1
    return rnn_ref.lstm(inputs, kernel, recurrent_kernel, bias, **options)


# GRU.
gru_pytorch_order = reordered(rnn_ref.gru, (1, 0, 2))  # reads r, z, n


def gru_recurrent_part_with_input_bias(inputs, kernel, recurrent_kernel, bias=None, **options):
    """reset_after with bias row 0 used for the recurrent product as well."""
    return rnn_ref.gru(inputs, kernel, recurrent_kernel, np.stack([bias[0], bias[0]]), **options)


def gru_z_weighs_new_state(inputs, kernel, recurrent_kernel, bias=None, **options):
    """h_t = (1 - z) h_{t-1} + z h~. With a sigmoid 1 - z = sigmoid(-a): the same as Keras's
    formula with the z block of every weight negated."""
    assert options.get("recurrent_activation", "sigmoid") == "sigmoid"
    U = recurrent_kernel.shape[0]
    sign = np.ones(3 * U)
    sign[:U] = -1
    return rnn_ref.gru(inputs, kernel * sign, recurrent_kernel * sign, bias * sign, **options)


def gru_reset_before_product(inputs, kernel, recurrent_kernel, bias=None, reset_after=True, **options):
    """reset_after ignored: r applied to h before the product, the two bias rows summed."""
    return rnn_ref.gru(inputs, kernel, recurrent_kernel, bias[0] + bias[1], reset_after=False, **options)


# Bidirectional: a loop written out, with one of its two Keras details left out.
def hand_bidirectional(layer, inputs, forward, backward, *, merge_mode="concat", reorder=True,
                       force_zero_output=True, **options):
    """Only merge_mode "concat", without return_state."""
    assert merge_mode == "concat" and not options.get("return_state")
    sequences = options.get("return_sequences", False)
    options["zero_output_for_mask"] = sequences if force_zero_output else False
    init = options.pop("initial_state", None)
    half = None if init is None else len(init) // 2
    y = layer(inputs, *forward, initial_state=init and init[:half], **options)  # (B, T, U)
    y_rev = layer(inputs, *backward, go_backwards=True, initial_state=init and init[half:], **options)
    if sequences and reorder:
        y_rev = y_rev[:, ::-1]
    return np.concatenate([y, y_rev], axis=-1)


bidirectional_processing_order = functools.partial(hand_bidirectional, reorder=False)
bidirectional_no_forced_zero_output = functools.partial(hand_bidirectional, force_zero_output=False)


MUTANTS = {  # name: (layer, the mutant, changes to the fixed case)
    "lstm_tf1_gate_order_icfo": ("lstm", lstm_tf1_order, {}),
    "lstm_onnx_gate_order_iofc": ("lstm", lstm_onnx_order, {}),
    "lstm_forget_gate_without_bias": ("lstm", lstm_forget_gate_without_bias, {}),
    "lstm_extra_forget_bias_1": ("lstm", lstm_extra_forget_bias, {}),
    "gru_pytorch_gate_order_rzn": ("gru", gru_pytorch_order, {}),
    "gru_recurrent_part_with_input_bias": ("gru", gru_recurrent_part_with_input_bias, {}),
    "gru_z_weighs_new_state": ("gru", gru_z_weighs_new_state, {}),
    "gru_reset_before_product": ("gru", gru_reset_before_product, {}),
    "bidirectional_backward_in_processing_order": ("gru", bidirectional_processing_order, {"bidirectional": True}),
    "bidirectional_without_forced_zero_output": ("lstm", bidirectional_no_forced_zero_output,
                                                 {"bidirectional": True}),
}


def mutant_case(layer, changes):
    case = fixed_case(layer, **changes)
    if case.bidirectional:
        case = case._replace(return_state=False)
    return case


#: What a mutant's failure says: its float32 result over the budget, or (float64, where
#: the reference's result is the truth) Keras off the mutant's float64 result.
MUTANT_FAILURE = r"exceed the budget|Keras disagrees with the float64 reference"


@pytest.mark.parametrize("name", MUTANTS)
def test_comparison_catches_mutant(name):
    """The mutant stands where the reference does, in the truth and the conditioning too
    (as a bug in rnn_ref would), and the judge must reject it."""
    layer, mutant, changes = MUTANTS[name]
    case = mutant_case(layer, changes)
    a, expected = check(case)  # the reference passes on this case
    if case.bidirectional:  # the hand-written loop without its bug passes too
        judged(case, a, expected, bidirectional=hand_bidirectional).check()
        judgement = judged(case, a, expected, bidirectional=mutant)
    else:
        judgement = judged(case, a, expected, functions={case.layer: mutant})
    with pytest.raises(AssertionError, match=MUTANT_FAILURE):
        judgement.check()
    _note(f"{name}: worst error / budget = {judgement.ratio:.3g}")
    assert judgement.ratio > 100, f"{name} is only {judgement.ratio:.3g} x the budget"
