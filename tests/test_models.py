"""``rnn_ref.from_keras(model)(x)`` against ``model.predict(x)`` on live Keras.

Every comparison uses random, asymmetric weights with non-zero biases, set
with ``set_weights`` from a seeded generator, and input sizes different from
the unit counts, so a transposed kernel, a dropped bias or a mixed-up unit
cannot pass. Every test also applies a plausible bug to a copy of the NumPy
model (a transposed recurrent kernel, an ignored mask, a wrong softmax axis,
a state that is not carried...) and checks that the comparison catches it.

Each Keras model is built once per configuration (``functools.cache``);
hypothesis examples only replace its weights and inputs.

Tolerances: the harness's budget, through ``tests/model_judging.judge_model`` (over
``rnn_ref.harness.judging.judge_outputs``), for every array a model returns. The truth
is the NumPy model under test with its weights, float input and carried states in
float64; the conditioning is how far that moves when each of them is perturbed by
``tolerance.PERTURB_ULPS`` units of roundoff (what the float32 model's rounding does
to each layer's inputs and weights, rnn_ref/harness/judging.py); an element fails
where |NumPy - truth| exceeds ``FACTOR * max(Keras's error, conditioning)`` (its
envelope over the units and the steps so far) plus a floor with m the longest dot
product of the model, and Keras fails the case beyond ``FACTOR * conditioning +
floor``. A float64 model's result is the truth itself, so there the check is Keras's.
A mutant is the reference too (its bug is in the truth), so it fails as Keras
disagreeing with it. This replaces ``rtol = atol = 1e-5`` (float32) and ``1e-12``
(float64), which held only because the recurrent kernels keep every step
contracting: 0.9 times a random orthogonal matrix (non-symmetric); a random matrix
merely scaled to spectral radius 0.9 can have a norm above 1, and with elu a float32
difference of 4e-5 was seen on a correct implementation. The all-padding row's
sigmoid(bias) is judged the same way (``judge_call``), the formula as the reference.
``test_report_worst_errors`` (-s) prints the worst error / budget of each case and the
smallest of each mutant: at most 0.10 (the all-padding row's sigmoid(bias)), 0.02
to 0.07 elsewhere; the mutants 3.7e3 (a transposed recurrent kernel) to 6e5 times
their budget. A float64 model computing in float32 is refused by its dtype before
the budget.

Kept as they are: the lower bounds ``> 1e-10`` and ``> 1e-3`` that show a Keras
behaviour (predict rounding a float64 input, the unrolled backward loop) changes the
result by far more than any budget; they state a difference, not an agreement.
"""

from __future__ import annotations

import copy
import functools
import warnings

import hypothesis
import numpy as np
import pytest
from hypothesis import given, note, settings, strategies as st

keras = pytest.importorskip("keras")
layers = keras.layers

import rnn_ref  # noqa: E402
from random_models import randomize, token_batch  # noqa: E402
from model_judging import assert_rejected, flat, judge_call, judge_model, print_worst, record  # noqa: E402
from rnn_ref.models.model import NumpyModel  # noqa: E402

pytestmark = pytest.mark.keras

#: Few examples per test (each runs Keras's predict); a profile with more
#: examples (``--hypothesis-profile``) scales them up.
EXAMPLES = max(5, settings.default.max_examples // 20)
few = settings(max_examples=EXAMPLES, deadline=None)

#: The worst error / budget of each case, the smallest of each mutant (test_report_worst_errors).
WORST: dict = {}


# ---------------------------------------------------------------------------
# Helpers: weights, inputs, comparisons
# ---------------------------------------------------------------------------


def max_diff(actual, expected):
    """Largest |actual - expected| over a (possibly nested) output."""
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
               for x, y in zip(flat(actual), flat(expected)))


def assert_same(np_model, x, expected, what="", *, got=None):
    """The NumPy model's result on ``x`` (or ``got``) has Keras's structure, shapes and
    dtypes, and every array is within the harness's budget (module docstring); returns it."""
    __tracebackhide__ = True
    judgement = record(WORST, what or np_model.name, judge_model(what or np_model.name, np_model, x, expected,
                                                                   got=got))
    if hypothesis.currently_in_test_context():
        note(f"{what}: max |numpy - keras| = {max_diff(judgement.got, expected):.2e}, "
             f"worst error / budget {judgement.ratio:.3g}")
    judgement.check()
    return judgement.got


def check(model, x, oracle="predict"):
    """Compare the NumPy rebuild with Keras (``model.predict(x)``, or ``model(x)``
    with ``oracle="call"``) on ``x``; return the NumPy model and Keras's output."""
    __tracebackhide__ = True
    np_model = rnn_ref.from_keras(model)
    if oracle == "predict":
        expected = model.predict(x, verbose=0)
    else:
        expected = keras.tree.map_structure(np.asarray, model(x))
    assert_same(np_model, x, expected, model.name)
    return np_model, expected


def assert_detects(np_model, bug, x, expected):
    """The comparison must fail once ``bug`` is applied to a copy of ``np_model``: the
    bug is in the float64 truth too, so Keras disagrees with it (or the result does not
    have Keras's structure or dtype)."""
    __tracebackhide__ = True
    buggy = copy.deepcopy(np_model)
    bug(buggy)
    name = getattr(bug, "__name__", type(bug).__name__)
    try:
        judgement = judge_model(f"mutant {name}", buggy, x, expected)
    except AssertionError:  # refused by its structure, shapes or dtypes
        return
    assert_rejected(judgement, name, WORST)


def transpose_recurrent(layer):
    layer.recurrent_kernel = np.ascontiguousarray(layer.recurrent_kernel.T)


def ignore_mask(np_model):
    """The bug of converters that drop masks: no layer emits one, no layer expects one."""
    for layer in np_model.layers:
        if hasattr(layer, "mask_zero"):
            layer.mask_zero = False
        if hasattr(layer, "mask_in"):
            layer.mask_in = None


def float_batch(rng, B, T, D, dtype="float32"):
    return rng.uniform(-1, 1, size=(B, T, D)).astype(dtype)  # (B, T, D)


# ---------------------------------------------------------------------------
# Embedding and Dense alone
# ---------------------------------------------------------------------------


@functools.cache
def embedding_model(mask_zero):
    return keras.Sequential(
        [keras.Input((None,), dtype="int32"), layers.Embedding(37, 6, mask_zero=mask_zero)],
        name=f"embedding_mask_zero_{mask_zero}",
    )


@pytest.mark.parametrize("mask_zero", [False, True])
@few
@given(seed=st.integers(0, 2**31 - 1), B=st.integers(1, 5), T=st.integers(1, 12))
def test_embedding_alone_matches_keras(mask_zero, seed, B, T):
    model = embedding_model(mask_zero)
    randomize(model, seed)
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 37, size=(B, T))
    ids[0, 0] = 36  # the last row of the table, where an off-by-one shows
    np_model, expected = check(model, ids)

    def off_by_one(m):
        m.layers[0].embeddings = np.roll(m.layers[0].embeddings, 1, axis=0)

    assert_detects(np_model, off_by_one, ids, expected)


@functools.cache
def dense_model(activation, sequence):
    N, K = 7, 4
    shape = (None, N) if sequence else (N,)
    return keras.Sequential(
        [keras.Input(shape), layers.Dense(K, activation=activation)],
        name=f"dense_{activation}_{'seq' if sequence else 'flat'}",
    )


@pytest.mark.parametrize("sequence", [False, True], ids=["(B,N)", "(B,T,N)"])
@pytest.mark.parametrize("activation", [None, "relu", "tanh", "sigmoid", "softmax"])
@few
@given(seed=st.integers(0, 2**31 - 1), B=st.integers(1, 6), T=st.integers(1, 5))
def test_dense_alone_matches_keras(activation, sequence, seed, B, T):
    model = dense_model(activation, sequence)
    randomize(model, seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, 7) if sequence else (B, 7)).astype("float32")
    np_model, expected = check(model, x)
    # relu can zero every output of a small batch; then no wrong weight shows
    hypothesis.assume(np.any(np.asarray(expected) != 0))

    def scrambled_kernel(m):  # a (K, N) weight read as (N, K)
        k = m.layers[0].kernel
        m.layers[0].kernel = np.ascontiguousarray(k.T).reshape(k.shape)

    def no_bias(m):
        m.layers[0].bias = None

    assert_detects(np_model, scrambled_kernel, x, expected)
    assert_detects(np_model, no_bias, x, expected)


# ---------------------------------------------------------------------------
# Embedding(5000, 32) -> SimpleRNN(100) -> Dense(1, "sigmoid")
# ---------------------------------------------------------------------------


@functools.cache
def pipeline_model(mask_zero):
    return keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            layers.Embedding(5000, 32, mask_zero=mask_zero),
            layers.SimpleRNN(100),
            layers.Dense(1, activation="sigmoid"),
        ],
        name=f"pipeline_mask_zero_{mask_zero}",
    )


@pytest.mark.parametrize("mask_zero", [False, True])
@few
@given(
    seed=st.integers(0, 2**31 - 1),
    B=st.integers(3, 8),
    T=st.sampled_from([3, 7, 40, 250]),
    all_padding_row=st.booleans(),
)
def test_pipeline_on_padded_tokens(mask_zero, seed, B, T, all_padding_row):
    model = pipeline_model(mask_zero)
    randomize(model, seed)
    ids = token_batch(np.random.default_rng(seed), B, T, 5000, all_padding_row=all_padding_row)
    np_model, expected = check(model, ids)

    if mask_zero and all_padding_row:
        # Every step masked: the RNN outputs zeros, so the row is sigmoid(dense bias).
        bias = np_model.layers[2].bias
        record(WORST, "all-padding row: sigmoid(bias)", judge_call(
            "all-padding row: sigmoid(bias)", lambda bias: 1 / (1 + np.exp(-bias)), dict(bias=bias), expected[2],
            bias.dtype, m=1)).check()
    if mask_zero:
        assert_detects(np_model, ignore_mask, ids, expected)
    def transposed_recurrent_kernel(m):
        transpose_recurrent(m.layers[1])

    assert_detects(np_model, transposed_recurrent_kernel, ids, expected)


# ---------------------------------------------------------------------------
# Stacks and heads
# ---------------------------------------------------------------------------


@functools.cache
def stacked_model(masked, first_backwards, act1, act2):
    """[Embedding(mask_zero)] -> SimpleRNN(6, return_sequences) -> SimpleRNN(3); D=4 != 6 != 3."""
    if masked:
        front = [keras.Input((None,), dtype="int32"), layers.Embedding(20, 4, mask_zero=True)]
    else:
        front = [keras.Input((None, 4))]
    return keras.Sequential(
        front
        + [
            layers.SimpleRNN(6, activation=act1, return_sequences=True, go_backwards=first_backwards),
            layers.SimpleRNN(3, activation=act2),
        ],
        name="stacked",
    )


@pytest.mark.parametrize(
    "masked, first_backwards, act1, act2",
    [  # each activation pair with and without a mask, each mask state in both directions
        (False, False, "relu", "tanh"),
        (False, True, "tanh", "sigmoid"),
        (False, False, "softsign", "elu"),
        (True, True, "relu", "tanh"),
        (True, False, "tanh", "sigmoid"),
        (True, True, "softsign", "elu"),
    ],
)
@few
@given(seed=st.integers(0, 2**31 - 1), B=st.integers(2, 5), T=st.integers(3, 30))
def test_stacked_simple_rnns(masked, first_backwards, act1, act2, seed, B, T):
    model = stacked_model(masked, first_backwards, act1, act2)
    randomize(model, seed)
    rng = np.random.default_rng(seed)
    x = token_batch(rng, B, T, 20) if masked else float_batch(rng, B, T, 4)
    np_model, expected = check(model, x)

    assert np_model.layers[-1].mask_in == masked  # Keras passes the mask through return_sequences
    # (the last activation is never relu, whose dead units could hide the bug)
    def last_recurrent_kernel_transposed(m):
        transpose_recurrent(m.layers[-1])

    assert_detects(np_model, last_recurrent_kernel_transposed, x, expected)
    if masked:
        # The second RNN must get the mask, unreversed even after go_backwards.
        def second_rnn_unmasked(m):
            m.layers[-2].compute_mask = lambda x, mask: None
            m.layers[-1].mask_in = None

        assert_detects(np_model, second_rnn_unmasked, x, expected)
        if first_backwards:

            def reversed_mask(m):
                m.layers[-2].compute_mask = lambda x, mask: mask[:, ::-1]

            assert_detects(np_model, reversed_mask, x, expected)


@functools.cache
def softmax_head_model(masked):
    """[Embedding(mask_zero)] -> SimpleRNN(8, return_sequences) -> Dense(5, softmax) per step."""
    if masked:
        front = [keras.Input((None,), dtype="int32"), layers.Embedding(30, 6, mask_zero=True)]
    else:
        front = [keras.Input((None, 6))]
    return keras.Sequential(
        front + [layers.SimpleRNN(8, return_sequences=True), layers.Dense(5, activation="softmax")],
        name="softmax_head",
    )


@pytest.mark.parametrize("masked", [False, True], ids=["floats", "masked_tokens"])
@few
@given(seed=st.integers(0, 2**31 - 1), B=st.integers(2, 5), T=st.integers(3, 20))
def test_per_step_softmax_head(masked, seed, B, T):
    model = softmax_head_model(masked)
    randomize(model, seed)
    rng = np.random.default_rng(seed)
    x = token_batch(rng, B, T, 30) if masked else float_batch(rng, B, T, 6)
    np_model, expected = check(model, x)
    assert expected.shape == (B, T, 5)

    def softmax_over_time(m):
        def act(z):  # (B, T, K), normalised over T instead of K
            e = np.exp(z - z.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)

        m.layers[-1].activation = act

    assert_detects(np_model, softmax_over_time, x, expected)


# ---------------------------------------------------------------------------
# return_state in a functional model
# ---------------------------------------------------------------------------


@functools.cache
def return_state_model(structure, return_sequences, zero_output_for_mask):
    inp = keras.Input((None,), dtype="int32")
    seq = layers.Embedding(25, 4, mask_zero=True)(inp)
    out, state = layers.SimpleRNN(
        6, return_state=True, return_sequences=return_sequences, zero_output_for_mask=zero_output_for_mask
    )(seq)
    outputs = {
        "list": [out, state],
        "reversed_tuple": (state, out),
        "dict": {"out": out, "state": state},
        "state_only": [state],
    }[structure]
    return keras.Model(inp, outputs, name=f"return_state_{structure}")


@pytest.mark.parametrize(
    "structure, return_sequences, zero_output_for_mask",
    [
        ("list", False, False),
        ("list", True, True),
        ("reversed_tuple", False, True),
        ("dict", True, False),
        ("state_only", False, True),
        ("state_only", True, True),
    ],
)
@few
@given(seed=st.integers(0, 2**31 - 1), B=st.integers(2, 5), T=st.integers(3, 15))
def test_return_state_in_functional_model(structure, return_sequences, zero_output_for_mask, seed, B, T):
    model = return_state_model(structure, return_sequences, zero_output_for_mask)
    randomize(model, seed)
    ids = token_batch(np.random.default_rng(seed), B, T, 25)
    np_model, expected = check(model, ids)  # same structure as predict: list, tuple, dict or one array

    if zero_output_for_mask:  # row 1 is right-padded: its last output is zero, its state is not
        def state_from_last_output(m):
            m.layers.append(StateFromLastOutput())

        assert_detects(np_model, state_from_last_output, ids, expected)


class StateFromLastOutput:
    """A bug to detect: taking the final state to be the last output (true without a mask)."""

    def __call__(self, outputs, mask=None):
        out, _ = outputs  # (B, U) or (B, T, U); (B, U)
        return out, (out[:, -1] if out.ndim == 3 else out)

    def compute_mask(self, x, mask):
        return None

    def weights(self):
        return {}  # none: the float64 reference copies the model's weights layer by layer


# ---------------------------------------------------------------------------
# Stateful SimpleRNN
# ---------------------------------------------------------------------------

STATEFUL_B, STATEFUL_D, STATEFUL_U = 3, 5, 7


@functools.cache
def stateful_models():
    """The same SimpleRNN twice: stateful with a fixed batch, and plain on whole sequences."""
    def build(stateful):
        return keras.Sequential(
            [
                keras.Input((None, STATEFUL_D), batch_size=STATEFUL_B if stateful else None),
                layers.SimpleRNN(STATEFUL_U, return_sequences=True, stateful=stateful),
                layers.Dense(2),
            ],
            name="stateful" if stateful else "whole_sequence",
        )

    return build(True), build(False)


@few
@given(seed=st.integers(0, 2**31 - 1), chunks=st.lists(st.integers(1, 12), min_size=2, max_size=4))
def test_stateful_chunks_equal_one_long_sequence(seed, chunks):
    stateful, whole = stateful_models()
    randomize(stateful, seed)
    whole.set_weights(stateful.get_weights())
    stateful.layers[0].reset_state()
    x = float_batch(np.random.default_rng(seed), STATEFUL_B, sum(chunks), STATEFUL_D)  # (B, T, D)
    pieces = np.split(x, np.cumsum(chunks)[:-1], axis=1)

    np_model = rnn_ref.from_keras(stateful)
    outputs = []
    for piece in pieces:  # call by call, Keras's stateful layer and the NumPy model agree
        expected = stateful.predict(piece, verbose=0)
        outputs.append(assert_same(np_model, piece, expected, "stateful call"))
    # and the chunks together are one long sequence
    assert_same(rnn_ref.from_keras(whole), x, whole.predict(x, verbose=0), "chunks vs whole",
                got=np.concatenate(outputs, axis=1))

    # reset_state() starts again from zeros, as layer.reset_state() does in Keras
    np_model.reset_state()
    stateful.layers[0].reset_state()
    expected = stateful.predict(pieces[0], verbose=0)
    assert_same(np_model, pieces[0], expected, "after reset_state")

    def forgets_state(m):
        m.layers[0].stateful = False

    np_model.reset_state()
    np_model(pieces[0])
    stateful.layers[0].reset_state()
    stateful.predict(pieces[0], verbose=0)
    expected = stateful.predict(pieces[1], verbose=0)
    assert_detects(np_model, forgets_state, pieces[1], expected)


def test_from_keras_continues_from_the_keras_state():
    stateful, _ = stateful_models()
    randomize(stateful, 7)
    stateful.layers[0].reset_state()
    rng = np.random.default_rng(7)
    first, second = float_batch(rng, STATEFUL_B, 4, STATEFUL_D), float_batch(rng, STATEFUL_B, 5, STATEFUL_D)
    stateful.predict(first, verbose=0)
    np_model = rnn_ref.from_keras(stateful)  # converted mid-stream: the state comes along
    assert np.any(np_model.layers[0].state != 0)
    assert_same(np_model, second, stateful.predict(second, verbose=0), "continued")
    with pytest.raises(ValueError, match="batch size 3"):
        np_model(float_batch(rng, STATEFUL_B + 1, 4, STATEFUL_D))


# ---------------------------------------------------------------------------
# dtypes
# ---------------------------------------------------------------------------


@functools.cache
def float64_model():
    return keras.Sequential(
        [
            keras.Input((None, 4), dtype="float64"),
            layers.SimpleRNN(6, return_sequences=True, dtype="float64"),
            layers.SimpleRNN(5, activation="sigmoid", dtype="float64"),
            layers.Dense(3, activation="softmax", dtype="float64"),
        ],
        name="float64",
    )


@few
@given(seed=st.integers(0, 2**31 - 1), B=st.integers(1, 5), T=st.integers(1, 60))
def test_float64_model(seed, B, T):
    model = float64_model()
    randomize(model, seed)
    x = float_batch(np.random.default_rng(seed), B, T, 4, "float64")
    # model(x): predict would first round the float64 array to float32 (next test)
    np_model, expected = check(model, x, oracle="call")
    assert expected.dtype == np.float64

    def computes_in_float32(m):
        for layer in m.layers:
            layer.dtype = np.dtype("float32")

    assert_detects(np_model, computes_in_float32, x, expected)
    # On values that float32 holds exactly, predict agrees to float64 precision too.
    x32 = x.astype(np.float32).astype(np.float64)
    assert_same(np_model, x32, model.predict(x32, verbose=0), "float64 predict")


def test_predict_rounds_float64_arrays_to_float32():
    """Keras's predict casts NumPy float arrays to floatx (float32) before the
    model sees them, even for a float64 model; ``model(x)`` does not. The NumPy
    model follows ``model(x)``; predict equals it on the float32-rounded input."""
    model = float64_model()
    randomize(model, 5)
    x = float_batch(np.random.default_rng(5), 3, 20, 4, "float64")
    np_model = rnn_ref.from_keras(model)
    predicted = model.predict(x, verbose=0)
    assert predicted.dtype == np.float64
    assert_same(np_model, x.astype(np.float32).astype(np.float64), predicted, "float64 predict")
    assert max_diff(np_model(x), predicted) > 1e-10


def test_float32_model_casts_float64_input():
    model = stacked_model(False, False, "tanh", "relu")
    randomize(model, 3)
    x = float_batch(np.random.default_rng(3), 4, 9, 4, "float64")
    np_model, expected = check(model, x)
    assert expected.dtype == np.float32 and np_model(x).dtype == np.float32


# ---------------------------------------------------------------------------
# go_backwards, zero_output_for_mask, unroll
# ---------------------------------------------------------------------------

OPTIONS_T = 9  # unroll needs a fixed number of steps


@functools.cache
def options_model(go_backwards, zero_output_for_mask, return_sequences, unroll):
    return keras.Sequential(
        [
            keras.Input((OPTIONS_T,), dtype="int32"),
            layers.Embedding(40, 5, mask_zero=True),
            layers.SimpleRNN(
                4,
                go_backwards=go_backwards,
                zero_output_for_mask=zero_output_for_mask,
                return_sequences=return_sequences,
                unroll=unroll,
            ),
            layers.Dense(3),
        ],
        name="options",
    )


@pytest.mark.parametrize("unroll", [False, True], ids=["loop", "unroll"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("zero_output_for_mask", [False, True], ids=["repeat", "zero_output"])
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forward", "backwards"])
@few
@given(seed=st.integers(0, 2**31 - 1), B=st.integers(2, 6))
def test_go_backwards_and_zero_output_for_mask(go_backwards, zero_output_for_mask, return_sequences, unroll, seed, B):
    model = options_model(go_backwards, zero_output_for_mask, return_sequences, unroll)
    randomize(model, seed)
    ids = token_batch(np.random.default_rng(seed), B, OPTIONS_T, 40)
    if unroll and go_backwards and zero_output_for_mask and return_sequences:
        # Keras's unrolled loop zeroes the wrong steps here (keras-team/keras#17596,
        # pinned by test_unroll_backwards_zero_output_warns); from_keras follows
        # unroll=False, so the expectation is the unroll=False twin's.
        twin = options_model(go_backwards, zero_output_for_mask, return_sequences, False)
        twin.set_weights(model.get_weights())
        with pytest.warns(UserWarning, match="unroll=True"):
            np_model = rnn_ref.from_keras(model)
        expected = twin.predict(ids, verbose=0)
        assert_same(np_model, ids, expected, model.name)
    else:
        np_model, expected = check(model, ids)

    def flip_direction(m):
        m.layers[1].go_backwards = not m.layers[1].go_backwards

    def flip_zero_output(m):
        m.layers[1].zero_output_for_mask = not m.layers[1].zero_output_for_mask

    assert_detects(np_model, flip_direction, ids, expected)
    if return_sequences or not go_backwards:
        # Row 1 is right-padded: the masked steps show in the sequence, and, going
        # forward, in the last output. Going backwards, the last processed step
        # is a real token, so a last-output-only model cannot tell.
        assert_detects(np_model, flip_zero_output, ids, expected)


def test_unroll_backwards_zero_output_warns():
    """Keras (TF, unroll=True) zeroes the steps masked in input order, not processing order.

    The NumPy model follows the ``unroll=False`` loop and says so with a warning.
    """
    unrolled = options_model(True, True, True, True)
    looped = options_model(True, True, True, False)
    randomize(unrolled, 11)
    looped.set_weights(unrolled.get_weights())
    ids = token_batch(np.random.default_rng(11), 4, OPTIONS_T, 40)
    with pytest.warns(UserWarning, match="unroll=True"):
        np_model = rnn_ref.from_keras(unrolled)
    assert_same(np_model, ids, looped.predict(ids, verbose=0), "unrolled, as the loop")
    assert max_diff(np_model(ids), unrolled.predict(ids, verbose=0)) > 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rnn_ref.from_keras(looped)


# ---------------------------------------------------------------------------
# Refusals and the model object
# ---------------------------------------------------------------------------


def _functional_with(make_layer):
    inp = keras.Input((6, 3))
    x = layers.SimpleRNN(4, return_sequences=True, name="rnn")(inp)
    x = make_layer()(x)
    return keras.Model(inp, x)


@pytest.mark.parametrize(
    "make_layer, cls",
    [
        (lambda: layers.Dropout(0.5, name="bad"), "Dropout"),
        (lambda: layers.LayerNormalization(name="bad"), "LayerNormalization"),
        (lambda: layers.RNN(layers.SimpleRNNCell(2), name="bad"), "RNN"),
        (lambda: layers.RNN(layers.LSTMCell(2), name="bad"), "RNN"),
    ],
    ids=["Dropout", "LayerNormalization", "RNN(SimpleRNNCell)", "RNN(LSTMCell)"],
)
def test_unsupported_layer_is_refused_by_name(make_layer, cls):
    model = _functional_with(make_layer)
    with pytest.raises(ValueError, match=rf"'bad'.*{cls}.*InputLayer, Embedding, SimpleRNN, Dense"):
        rnn_ref.from_keras(model)
    seq = keras.Sequential([keras.Input((6, 3)), make_layer()])
    with pytest.raises(ValueError, match=cls):
        rnn_ref.from_keras(seq)


def test_other_graphs_are_refused():
    inp = keras.Input((6, 3))
    seq = layers.SimpleRNN(4, return_sequences=True)(inp)
    with pytest.raises(ValueError, match="Multiply|not supported"):  # a keras.ops call in the graph
        rnn_ref.from_keras(keras.Model(inp, layers.Dense(2)(seq * 2.0)))
    out, state = layers.SimpleRNN(5, return_state=True, name="enc")(seq)
    head = layers.Dense(1, name="head")(out)
    with pytest.raises(ValueError, match="'head'.*'enc'|'enc'.*'head'"):  # not a chain
        rnn_ref.from_keras(keras.Model(inp, [head, state]))
    with pytest.raises(ValueError, match="not built"):
        rnn_ref.from_keras(keras.Sequential([layers.Dense(2)]))


def test_numpy_model_is_readable():
    model = pipeline_model(True)
    np_model = rnn_ref.from_keras(model)
    assert isinstance(np_model, NumpyModel)
    text = repr(np_model)
    for part in ("Embedding(", "V=5000, E=32, mask_zero=True", "SimpleRNN(", "D=32, U=100", "Dense(", "'sigmoid'"):
        assert part in text
    lines = []
    np_model.summary(print_fn=lines.append)
    assert "parameters: 173,401" in lines[0]  # 5000*32 + 32*100 + 100*100 + 100 + 100*1 + 1


@pytest.mark.keras
def test_model_refuses_a_sequence_without_batch_axis():
    """Keras refuses a (T, D) input to a model; the NumPy model must not treat it as one sequence."""
    model = keras.Sequential([keras.Input((5, 3)), keras.layers.SimpleRNN(4)])
    with pytest.raises(ValueError, match=r"expects inputs of shape \(B, T, D\), got \(5, 3\)"):
        rnn_ref.from_keras(model)(np.zeros((5, 3), np.float32))


def test_report_worst_errors():
    """Prints the worst error / budget per case and the smallest of each mutant (run with -s)."""
    print_worst(WORST)
