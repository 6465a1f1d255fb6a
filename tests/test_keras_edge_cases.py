"""Edge cases decided by live Keras (3.15.1, TensorFlow 2.21, CPU).

B = 0, T = 0, integer and bool inputs, numeric masks, shapes Keras broadcasts
or refuses, embedding ids (negative, float, bool, out of range, unsigned
beyond int32) and integer inputs to Dense: what Keras accepts we compute the
same way, what Keras refuses we refuse with a clear message, and where Keras
silently broadcasts or wraps we refuse and the message says how to ask for it
explicitly.

Tolerance for comparisons with Keras: the harness's budget, through
``tests/model_judging.judge_call`` (over ``rnn_ref.harness.judging.judge_outputs``).
The truth is the function under test (``simple_rnn``, ``dense``) on the case's
arrays in float64; the conditioning is how far that moves when each floating array
(inputs, weights, initial state) is perturbed by ``tolerance.PERTURB_ULPS`` units of
roundoff, and every activation's argument and result too; an element fails where
its error exceeds ``FACTOR * max(Keras's error, conditioning)`` (its envelope over
the units and the steps so far) plus a floor with m = D + U + 1 (N + 1 for Dense),
and Keras fails the case beyond ``FACTOR * conditioning + floor``. Integer and bool
inputs are given to the truth as the float32 values Keras casts them to (exact),
the candidate is rnn_ref's result on the integer array itself. Keras with a
numeric mask is judged against the truth with the bool mask, and so is Keras with
the bool mask (each within its budget of the same truth). This replaces
``rtol = 1e-5, atol = 1e-6``. ``test_mutants_are_rejected`` puts a plausible bug
(a numeric mask ignored, NaN read as padding, the initial state dropped, Dense's
bias dropped) in the reference, as a bug would be in the code under test: Keras
then disagrees with its truth, by 9.6e4 to 1.1e6 times the budget; the correct
results are at most 0.05 of it (``test_report_worst_errors``, -s).

Kept as they are: ``assert_array_equal`` of rnn_ref against rnn_ref (an integer
array against its float32 cast, a numeric mask against its bool) and of embedding
lookups against Keras: the same arithmetic on the same numbers, or no arithmetic
at all (a lookup copies rows), equal bit for bit by construction.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from model_judging import assert_rejected, judge_call, print_worst, record
from rnn_ref.layers.dense import dense
from rnn_ref.layers.embedding import embedding
from rnn_ref.layers.simple_rnn import simple_rnn
from tiny_rnn import BIAS, H0, KERNEL, MASK, RECURRENT, TABLE, B, D, T, U, X, rnn, weights

keras = pytest.importorskip("keras")

WORST: dict = {}
DENSE_BIAS = np.array([0.1, -0.2, 0.3, -0.4], np.float32)


def keras_rnn_layer(**options):
    """A Keras SimpleRNN with tiny_rnn's weights (D=3, U=5)."""
    layer = keras.layers.SimpleRNN(U, **options)
    layer.build((None, None, D))
    layer.set_weights([KERNEL, RECURRENT, BIAS])
    return layer


def judged_rnn(label, want, got=None, *, fn=simple_rnn, time_axis=1, **arguments):
    """rnn_ref's ``got`` (by default ``fn``'s result in float32) against Keras's ``want``
    with the harness's budget (module docstring): the truth is ``fn`` (``simple_rnn`` or a
    mutant of it) on tiny_rnn's arrays with ``arguments`` replaced, in float64;
    ``time_axis``: the result's axis of steps (None for a last output). A numeric mask
    among ``arguments`` is perturbed as a float array, which keeps every element zero,
    non-zero or NaN as it was. Returns the ``Judgement`` without raising."""
    kwargs = dict(inputs=X, kernel=KERNEL, recurrent_kernel=RECURRENT, bias=BIAS)
    kwargs.update(arguments)
    return judge_call(label, fn, kwargs, want, np.float32, m=D + U + 1, time_axes=[time_axis], got=got)


def keras_dense():
    """A Keras Dense(4, tanh) with weights(5, 3, 4)'s kernel and DENSE_BIAS."""
    layer = keras.layers.Dense(4, activation="tanh")
    layer.build((None, 3))
    layer.set_weights([weights(5, 3, 4)[0], DENSE_BIAS])
    return layer


def as_tuple(out):
    return tuple(np.asarray(o) for o in out) if isinstance(out, (tuple, list)) else (np.asarray(out),)


@pytest.mark.keras
def test_t0_is_refused_like_keras():
    x = np.zeros((B, 0, D), np.float32)
    with pytest.raises(Exception):  # TensorFlow: InvalidArgumentError, slice index 0 out of bounds
        keras_rnn_layer()(x)
    with pytest.raises(ValueError, match=re.escape("at least one time step (T >= 1), got T = 0")):
        rnn(inputs=x)


@pytest.mark.keras
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("return_state", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_b0_gives_empty_arrays_like_keras(return_sequences, return_state, masked):
    x = np.zeros((0, T, D), np.float32)
    mask = np.zeros((0, T), bool) if masked else None
    options = dict(return_sequences=return_sequences, return_state=return_state)
    want = as_tuple(keras_rnn_layer(**options)(x, mask=mask))
    got = as_tuple(rnn(inputs=x, mask=mask, **options))
    assert [(g.shape, g.dtype) for g in got] == [(w.shape, w.dtype) for w in want]
    assert got[0].shape == ((0, T, U) if return_sequences else (0, U))


@pytest.mark.keras
@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "bool"])
def test_integer_and_bool_inputs_are_cast_to_float32_like_keras(dtype):
    x = (np.random.default_rng(4).integers(0, 3, (B, T, D)) > 0 if dtype == "bool"
         else np.random.default_rng(4).integers(0, 3, (B, T, D))).astype(dtype)
    want = np.asarray(keras_rnn_layer(return_sequences=True)(x))
    got = rnn(inputs=x, return_sequences=True)
    assert got.dtype == want.dtype == np.float32
    # the truth on the float32 values Keras casts x to (0, 1, 2: exact)
    record(WORST, f"{dtype} inputs", judged_rnn(f"{dtype} inputs", want, got, inputs=x.astype(np.float32),
                                                 return_sequences=True)).check()
    np.testing.assert_array_equal(got, rnn(inputs=x.astype(np.float32), return_sequences=True))


@pytest.mark.keras
@pytest.mark.parametrize("true_value", [1.0, 0.5, -1.0, np.nan, 2.0])
def test_numeric_mask_is_cast_to_bool_like_keras(true_value):
    """Keras casts a float mask to bool: 0.5, -1 and even NaN mark valid steps, only 0 pads."""
    numeric = np.where(MASK, true_value, 0.0).astype(np.float32)
    layer = keras_rnn_layer(return_sequences=True)
    want = np.asarray(layer(X, mask=numeric))
    # Keras: the same as with the bool mask, both judged against the truth with the bool mask
    record(WORST, "Keras: numeric mask as bool", judged_rnn(
        f"Keras, mask {true_value} and bool", want, np.asarray(layer(X, mask=MASK)), mask=MASK,
        return_sequences=True)).check()
    got = rnn(mask=numeric, return_sequences=True)
    np.testing.assert_array_equal(got, rnn(mask=MASK, return_sequences=True))
    record(WORST, "numeric mask", judged_rnn(f"mask {true_value}", want, got, mask=numeric,
                                             return_sequences=True)).check()


@pytest.mark.keras
def test_shapes_keras_broadcasts_are_refused_and_the_hint_gives_keras_result():
    """Keras broadcasts a (1, T) mask and a (U,) or (1, U) initial state over the
    batch without a word; rnn_ref refuses, and doing what the message says
    (np.broadcast_to) gives Keras's numbers."""
    layer = keras_rnn_layer(return_sequences=True)
    cases = [("mask", MASK[1:], (B, T)), ("initial_state", H0[0], (B, U)), ("initial_state", H0[:1], (B, U))]
    for name, value, full in cases:
        want = np.asarray(layer(X, **{name: value}))  # Keras accepts it
        with pytest.raises(ValueError, match=re.escape(f"np.broadcast_to({name}, {full})")):
            rnn(return_sequences=True, **{name: value})
        got = rnn(return_sequences=True, **{name: np.broadcast_to(value, full)})
        label = f"{name} {value.shape} broadcast"
        record(WORST, label, judged_rnn(label, want, got, return_sequences=True,
                                        **{name: np.broadcast_to(value, full)})).check()


@pytest.mark.keras
def test_shapes_keras_refuses_are_refused():
    layer = keras_rnn_layer()
    with pytest.raises(Exception):  # IndexError inside Keras
        layer(X, mask=MASK[0])
    with pytest.raises(ValueError, match="mask must have shape"):
        rnn(mask=MASK[0])
    with pytest.raises(ValueError, match="is not compatible with provided weight shape"):
        layer.set_weights([KERNEL, RECURRENT, np.ones(1, np.float32)])
    with pytest.raises(ValueError, match="bias must have shape"):
        rnn(bias=np.ones(1, np.float32))
    with pytest.raises(ValueError, match="is not compatible with provided weight shape"):
        layer.set_weights([KERNEL.T, RECURRENT, BIAS])
    with pytest.raises(ValueError, match="it looks transposed"):
        rnn(kernel=KERNEL.T)
    with pytest.raises(Exception):  # InvalidArgumentError: AddV2 expected a complex64 tensor
        layer(X.astype(np.complex64))
    with pytest.raises(TypeError, match="complex"):
        rnn(inputs=X.astype(np.complex64))
    with pytest.raises(ValueError, match="expected ndim=3"):
        layer(X[0])  # Keras wants a batch; rnn_ref reads (T, D) as one sequence
    record(WORST, "one sequence (T, D)", judged_rnn("one sequence (T, D)", np.asarray(layer(X[:1]))[0],
                                                    rnn(inputs=X[0]), inputs=X[0], time_axis=None)).check()


def keras_embedding():
    layer = keras.layers.Embedding(5, 3)
    layer.build((None,))
    layer.set_weights([TABLE])
    return layer


@pytest.mark.keras
@pytest.mark.parametrize(
    "ids",
    [
        [[-1, -2, -5]],  # negative ids count from the end, down to -V
        [[2.0, 2.7, 4.99]],  # float ids truncate toward zero
        [[-0.5, -1.7, -4.2]],  # ... also below zero: -0.5 -> 0, -1.7 -> -1
        [[True, False]],  # bool ids are 0 and 1
        np.array([[4, 0]], np.uint8),
        np.zeros((0, 2), np.int64),  # no ids at all
    ],
    ids=["negative", "float", "negative float", "bool", "uint8", "empty"],
)
def test_embedding_lookup_like_keras(ids):
    want = np.asarray(keras_embedding()(np.asarray(ids)))
    got = embedding(ids, TABLE)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.keras
@pytest.mark.parametrize("ids", [[[5]], [[-6]], [[np.nan]], [[np.inf]], [[1e10]]], ids=["V", "-V-1", "NaN", "inf", "1e10"])
def test_embedding_out_of_range_raises_like_keras(ids):
    with pytest.raises(Exception):  # InvalidArgumentError on CPU
        keras_embedding()(np.asarray(ids))
    with pytest.raises(ValueError, match=r"ids must (lie in \[-V, V\) = \[-5, 5\)|be finite)"):
        embedding(ids, TABLE)


@pytest.mark.keras
def test_unsigned_ids_beyond_int32_wrap_in_keras_but_are_refused():
    """The one deliberate difference: Keras casts uint ids to int32, so 2^32 - 1
    becomes -1 and silently looks up the last row. rnn_ref refuses it."""
    ids = np.array([[2**32 - 1]], np.uint32)
    np.testing.assert_array_equal(np.asarray(keras_embedding()(ids)), TABLE[[[-1]]])
    with pytest.raises(ValueError, match="got id 4294967295"):
        embedding(ids, TABLE)


@pytest.mark.keras
@pytest.mark.parametrize("dtype", ["int64", "bool"])
def test_dense_casts_integer_and_bool_inputs_like_keras(dtype):
    layer = keras_dense()
    kernel, _, _ = weights(5, 3, 4)
    x = (np.arange(6).reshape(2, 3) % 2).astype(dtype)
    want = np.asarray(layer(x))
    got = dense(x, kernel, DENSE_BIAS, "tanh")
    assert got.dtype == want.dtype == np.float32
    # the truth on the float32 values Keras casts x to (0 and 1: exact); m = N + 1
    record(WORST, f"dense {dtype} inputs", judge_call(
        f"dense {dtype} inputs", dense, dict(inputs=x.astype(np.float32), kernel=kernel, bias=DENSE_BIAS,
                                             activation="tanh"), want, np.float32, m=3 + 1, got=got)).check()
    empty = dense(np.zeros((0, 3), np.float32), kernel, None)
    assert empty.shape == np.asarray(layer(np.zeros((0, 3), np.float32))).shape == (0, 4)



def _mask_ignored(mask, **kw):
    return simple_rnn(**kw)


def _nan_read_as_padding(mask, **kw):
    return simple_rnn(mask=np.nan_to_num(mask) != 0, **kw)


def _initial_state_dropped(initial_state, **kw):
    return simple_rnn(**kw)


def _bias_dropped(bias, **kw):
    return dense(**kw)


@pytest.mark.keras
@pytest.mark.parametrize("mutant", ["numeric mask ignored", "NaN read as padding", "initial state dropped",
                                    "dense bias dropped"])
def test_mutants_are_rejected(mutant):
    """A plausible bug in the function under test, so in the float64 truth too: the comparisons
    above reject it (Keras disagrees with the truth beyond its conditioning)."""
    layer = keras_rnn_layer(return_sequences=True)
    if mutant == "numeric mask ignored":
        numeric = np.where(MASK, 0.5, 0.0).astype(np.float32)
        judgement = judged_rnn(mutant, np.asarray(layer(X, mask=numeric)), fn=_mask_ignored, mask=numeric,
                               return_sequences=True)
    elif mutant == "NaN read as padding":
        numeric = np.where(MASK, np.nan, 0.0).astype(np.float32)
        judgement = judged_rnn(mutant, np.asarray(layer(X, mask=numeric)), fn=_nan_read_as_padding, mask=numeric,
                               return_sequences=True)
    elif mutant == "initial state dropped":
        judgement = judged_rnn(mutant, np.asarray(layer(X, initial_state=H0[:1])), fn=_initial_state_dropped,
                               initial_state=np.broadcast_to(H0[:1], (B, U)), return_sequences=True)
    else:
        x = (np.arange(6).reshape(2, 3) % 2).astype(np.float32)
        kw = dict(inputs=x, kernel=weights(5, 3, 4)[0], bias=DENSE_BIAS, activation="tanh")
        judgement = judge_call(mutant, _bias_dropped, kw, np.asarray(keras_dense()(x)), np.float32, m=3 + 1)
    assert_rejected(judgement, mutant, WORST)


def test_report_worst_errors():
    """Prints the worst error / budget of each case and the smallest of each mutant (run with -s)."""
    print_worst(WORST)
