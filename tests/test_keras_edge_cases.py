"""Edge cases decided by live Keras (3.15.1, TensorFlow 2.21, CPU).

B = 0, T = 0, integer and bool inputs, numeric masks, shapes Keras broadcasts
or refuses, embedding ids (negative, float, bool, out of range, unsigned
beyond int32) and integer inputs to Dense: what Keras accepts we compute the
same way, what Keras refuses we refuse with a clear message, and where Keras
silently broadcasts or wraps we refuse and the message says how to ask for it
explicitly. Tolerance: ``tiny_rnn.TOL``.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from rnn_ref.dense import dense
from rnn_ref.embedding import embedding
from tiny_rnn import BIAS, H0, KERNEL, MASK, RECURRENT, TABLE, TOL, B, D, T, U, X, rnn, weights

keras = pytest.importorskip("keras")


def keras_rnn_layer(**options):
    """A Keras SimpleRNN with tiny_rnn's weights (D=3, U=5)."""
    layer = keras.layers.SimpleRNN(U, **options)
    layer.build((None, None, D))
    layer.set_weights([KERNEL, RECURRENT, BIAS])
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
    np.testing.assert_allclose(got, want, **TOL)
    np.testing.assert_array_equal(got, rnn(inputs=x.astype(np.float32), return_sequences=True))


@pytest.mark.keras
@pytest.mark.parametrize("true_value", [1.0, 0.5, -1.0, np.nan, 2.0])
def test_numeric_mask_is_cast_to_bool_like_keras(true_value):
    """Keras casts a float mask to bool: 0.5, -1 and even NaN mark valid steps, only 0 pads."""
    numeric = np.where(MASK, true_value, 0.0).astype(np.float32)
    layer = keras_rnn_layer(return_sequences=True)
    want = np.asarray(layer(X, mask=numeric))
    np.testing.assert_allclose(want, np.asarray(layer(X, mask=MASK)), **TOL)  # Keras: same as the bool mask
    got = rnn(mask=numeric, return_sequences=True)
    np.testing.assert_array_equal(got, rnn(mask=MASK, return_sequences=True))
    np.testing.assert_allclose(got, want, **TOL)


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
        np.testing.assert_allclose(got, want, **TOL)


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
    np.testing.assert_allclose(rnn(inputs=X[0]), np.asarray(layer(X[:1]))[0], **TOL)


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
    layer = keras.layers.Dense(4, activation="tanh")
    layer.build((None, 3))
    kernel, _, _ = weights(5, 3, 4)
    layer.set_weights([kernel, np.array([0.1, -0.2, 0.3, -0.4], np.float32)])
    x = (np.arange(6).reshape(2, 3) % 2).astype(dtype)
    want = np.asarray(layer(x))
    got = dense(x, kernel, np.array([0.1, -0.2, 0.3, -0.4], np.float32), "tanh")
    assert got.dtype == want.dtype == np.float32
    np.testing.assert_allclose(got, want, **TOL)
    empty = dense(np.zeros((0, 3), np.float32), kernel, None)
    assert empty.shape == np.asarray(layer(np.zeros((0, 3), np.float32))).shape == (0, 4)

