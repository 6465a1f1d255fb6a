"""Bad input, edge cases and saved models: a malformed question never gets a plausible number.

1. Validation: every refusal of ``simple_rnn``, ``dense`` and ``embedding``
   names the argument, the expected shape in the docstring letters and what
   was given; a property checks that no wrong shape of any argument is ever
   broadcast into an answer.
2. Edge cases decided by live Keras (3.15.1, TensorFlow 2.21, CPU): what Keras
   accepts we compute the same way, what Keras refuses we refuse with a
   clear message, and where Keras silently broadcasts or wraps we refuse and
   the message says how to ask for it explicitly.
3. Models from files: ``rnn_ref.load`` of ``.keras`` (safe mode) and ``.npz``
   files, ``rnn_ref.save_npz`` round trips, and every refusal.

Tolerance for comparisons with Keras (float32): ``rtol = 1e-5, atol = 1e-6``.
The cases are tiny (D, U <= 5, T <= 6, recurrent gain 0.9, inputs and
weights of order 1), so one step's rounding is a few units of 2^-24 (6e-8)
on values of order 1 and it does not grow through a contracting
recurrence; measured differences were below 3e-7 (test_models.py saw 3.6e-7
on larger models), so 1e-6 keeps a 3x margin while a wrong formula gives
differences of order 1e-2 or more.
"""

from __future__ import annotations

import json
import os
import re
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import rnn_ref  # noqa: E402
from rnn_ref.dense import dense  # noqa: E402
from rnn_ref.embedding import embedding  # noqa: E402
from rnn_ref.simple_rnn import simple_rnn  # noqa: E402

TOL = dict(rtol=1e-5, atol=1e-6)
B, T, D, U = 2, 4, 3, 5  # D != U, so a transposed kernel cannot pass


def weights(seed=0, D=D, U=U):
    """Random asymmetric float32 weights with a non-zero bias, recurrent gain 0.9."""
    rng = np.random.default_rng(seed)
    kernel = rng.uniform(-1, 1, (D, U)) / np.sqrt(D)
    q, r = np.linalg.qr(rng.normal(size=(U, U)))
    recurrent = 0.9 * q * np.sign(np.diag(r))
    bias = rng.uniform(0.1, 0.5, U) * rng.choice([-1, 1], U)
    return kernel.astype(np.float32), recurrent.astype(np.float32), bias.astype(np.float32)


KERNEL, RECURRENT, BIAS = weights()
X = np.random.default_rng(1).uniform(-1, 1, (B, T, D)).astype(np.float32)
MASK = np.array([[1, 1, 0, 1], [0, 1, 1, 0]], bool)
H0 = np.random.default_rng(2).normal(size=(B, U)).astype(np.float32)


def rnn(**overrides):
    kw = dict(inputs=X, kernel=KERNEL, recurrent_kernel=RECURRENT, bias=BIAS)
    kw.update(overrides)
    return simple_rnn(**kw)


# ---------------------------------------------------------------------------
# 1. Validation messages
# ---------------------------------------------------------------------------

c64 = lambda a: np.asarray(a).astype(np.complex64)  # noqa: E731

RNN_REFUSALS = {
    "inputs of rank 1": (dict(inputs=np.ones(3)), ValueError,
                         "inputs must have shape (B, T, D) or (T, D) for one sequence, got (3,)"),
    "inputs of rank 4": (dict(inputs=np.ones((1, B, T, D))), ValueError, "got (1, 2, 4, 3)"),
    "T = 0": (dict(inputs=np.ones((B, 0, D))), ValueError, "at least one time step (T >= 1), got T = 0"),
    "transposed kernel": (dict(kernel=KERNEL.T), ValueError,
                          "kernel must have shape (D, U) = (3, 5), got (5, 3); it looks transposed"),
    "kernel for other inputs": (dict(kernel=np.ones((4, U))), ValueError,
                                "kernel must have shape (D, U) = (3, 5), got (4, 5); D = 3 comes from inputs (2, 4, 3)"),
    "kernel of rank 1": (dict(kernel=np.ones(U)), ValueError, "kernel must have shape (D, U) = (3, 5), got (5,)"),
    "non-square recurrent kernel": (dict(recurrent_kernel=np.ones((U, 4))), ValueError,
                                    "recurrent_kernel must be a square (U, U) array with U >= 1, got shape (5, 4)"),
    "recurrent kernel of rank 1": (dict(recurrent_kernel=np.ones(U)), ValueError, "got shape (5,)"),
    "recurrent kernel with U = 0": (dict(recurrent_kernel=np.ones((0, 0))), ValueError, "U >= 1, got shape (0, 0)"),
    "recurrent kernel for fewer units": (dict(recurrent_kernel=np.eye(4)), ValueError,
                                         "kernel must have shape (D, U) = (3, 4), got (3, 5)"),
    "bias of shape (1,)": (dict(bias=np.ones(1)), ValueError, "bias must have shape (U,) = (5,), got (1,)"),
    "scalar bias": (dict(bias=0.5), ValueError, "bias must have shape (U,) = (5,), got ()"),
    "bias of shape (1, U)": (dict(bias=np.ones((1, U))), ValueError, "bias must have shape (U,) = (5,), got (1, 5)"),
    "mask (T,) for a batch": (dict(mask=MASK[0]), ValueError,
                              "mask must have shape (B, T) = (2, 4), got (4,); one mask row per sequence"),
    "mask (1, T) for a batch": (dict(mask=MASK[:1]), ValueError, "Keras broadcasts a (1, T) mask over the batch"),
    "mask (B, T, 1)": (dict(mask=MASK[..., None]), ValueError, "got (2, 4, 1); Keras accepts (B, T, 1) too"),
    "mask (T, B)": (dict(mask=np.ones((T, B), bool)), ValueError, "mask must have shape (B, T) = (2, 4), got (4, 2)"),
    "mask (B, T + 1)": (dict(mask=np.ones((B, T + 1), bool)), ValueError, "got (2, 5)"),
    "initial_state (U,) for a batch": (dict(initial_state=H0[0]), ValueError,
                                       "initial_state must have shape (B, U) = (2, 5), got (5,); Keras broadcasts"),
    "initial_state (1, U) for a batch": (dict(initial_state=H0[:1]), ValueError, "np.broadcast_to(initial_state, (2, 5))"),
    "initial_state (B, U + 1)": (dict(initial_state=np.ones((B, U + 1))), ValueError, "got (2, 6)"),
    "initial_state list of two": (dict(initial_state=[H0, H0]), ValueError, "a list of one, got a list of 2"),
    "unknown activation": (dict(activation="tanhh"), ValueError,
                           "activation must be a Keras activation name or a callable, got 'tanhh'"),
    "activation of another type": (dict(activation=3), TypeError, "got int"),
    "complex inputs": (dict(inputs=c64(X)), TypeError, "inputs must be real, got the complex dtype complex64"),
    "complex kernel": (dict(kernel=c64(KERNEL)), TypeError, "kernel must be real"),
    "complex recurrent kernel": (dict(recurrent_kernel=c64(RECURRENT)), TypeError, "recurrent_kernel must be real"),
    "complex bias": (dict(bias=c64(BIAS)), TypeError, "bias must be real"),
    "complex mask": (dict(mask=c64(MASK)), TypeError, "mask must be real"),
    "complex initial_state": (dict(initial_state=c64(H0)), TypeError, "initial_state must be real"),
    "object inputs": (dict(inputs=np.full((B, T, D), None)), TypeError,
                      "inputs must be a real numeric array (bool, int or float), got dtype object"),
    "string inputs": (dict(inputs=np.full((B, T, D), "1")), TypeError, "got dtype <U1"),
    "object kernel": (dict(kernel=KERNEL.astype(object)), TypeError, "kernel must be a real numeric array"),
    "ragged inputs": (dict(inputs=[[[1.0, 2.0, 3.0]], [[1.0]]]), ValueError, "inputs must be a rectangular numeric array"),
    "flag given as a string": (dict(return_sequences="False"), TypeError, "return_sequences must be True or False, got 'False'"),
    "one sequence with a batch mask": (dict(inputs=X[0], mask=MASK[:1]), ValueError,
                                       "mask must have shape (T,) = (4,), got (1, 4); inputs are one sequence"),
    "one sequence with a batch state": (dict(inputs=X[0], initial_state=H0[:1]), ValueError,
                                        "initial_state must have shape (U,) = (5,), got (1, 5)"),
}


@pytest.mark.parametrize("overrides, error, message", list(RNN_REFUSALS.values()), ids=list(RNN_REFUSALS))
def test_simple_rnn_refuses_with_a_message(overrides, error, message):
    with pytest.raises(error, match=re.escape(message)):
        rnn(**overrides)


DENSE_REFUSALS = {
    "scalar inputs": (dict(inputs=1.0), ValueError, "inputs must have at least one axis, shape (..., N), got shape ()"),
    "transposed kernel": (dict(kernel=np.ones((4, 3))), ValueError,
                          "kernel must have shape (N, K) = (3, ?), got (4, 3); it looks transposed"),
    "kernel for other inputs": (dict(kernel=np.ones((5, 2))), ValueError,
                                "kernel must have shape (N, K) = (3, ?), got (5, 2); N = 3 comes from the last axis"),
    "kernel of rank 1": (dict(kernel=np.ones(3)), ValueError, "got (3,)"),
    "bias of shape (1,)": (dict(bias=np.ones(1)), ValueError, "bias must have shape (K,) = (4,), got (1,)"),
    "unknown activation": (dict(activation="softmaxx"), ValueError, "got 'softmaxx'"),
    "complex inputs": (dict(inputs=c64(np.ones((2, 3)))), TypeError, "inputs must be real"),
    "complex bias": (dict(bias=c64(np.ones(4))), TypeError, "bias must be real"),
    "object inputs": (dict(inputs=np.full((2, 3), None)), TypeError, "got dtype object"),
}


@pytest.mark.parametrize("overrides, error, message", list(DENSE_REFUSALS.values()), ids=list(DENSE_REFUSALS))
def test_dense_refuses_with_a_message(overrides, error, message):
    kw = dict(inputs=np.ones((2, 3), np.float32), kernel=np.ones((3, 4)), bias=np.zeros(4))
    kw.update(overrides)
    with pytest.raises(error, match=re.escape(message)):
        dense(**kw)


TABLE = np.arange(15, dtype=np.float32).reshape(5, 3)  # (V=5, E=3)

EMBEDDING_REFUSALS = {
    "id = V": (dict(ids=[[1, 5]]), ValueError,
               "ids must lie in [-V, V) = [-5, 5) for a vocabulary of V = 5 rows, got id 5 at index (0, 1)"),
    "id below -V": (dict(ids=[[-6]]), ValueError, "got id -6 at index (0, 0)"),
    "float id that truncates to V": (dict(ids=[[5.5]]), ValueError, "got id 5.5"),
    "NaN id": (dict(ids=[[1.0, np.nan]]), ValueError, "ids must be finite, got nan at index (0, 1)"),
    "infinite id": (dict(ids=[[np.inf]]), ValueError, "ids must be finite, got inf"),
    "uint32 id beyond int32": (dict(ids=np.array([[2**32 - 1]], np.uint32)), ValueError, "got id 4294967295"),
    "complex ids": (dict(ids=c64([[1]])), TypeError, "ids must be real"),
    "string ids": (dict(ids=[["1"]]), TypeError, "ids must be a real numeric array"),
    "table of rank 1": (dict(embeddings=np.ones(5)), ValueError, "embeddings must have shape (V, E) = (?, ?), got (5,)"),
    "table of rank 3": (dict(embeddings=np.ones((5, 3, 1))), ValueError, "got (5, 3, 1)"),
    "complex table": (dict(embeddings=c64(TABLE)), TypeError, "embeddings must be real"),
}


@pytest.mark.parametrize("overrides, error, message", list(EMBEDDING_REFUSALS.values()), ids=list(EMBEDDING_REFUSALS))
def test_embedding_refuses_with_a_message(overrides, error, message):
    kw = dict(ids=[[0, 1]], embeddings=TABLE)
    kw.update(overrides)
    with pytest.raises(error, match=re.escape(message)):
        embedding(**kw)


CORRECT = {"kernel": (D, U), "recurrent_kernel": (U, U), "bias": (U,), "mask": (B, T), "initial_state": (B, U)}


@settings(max_examples=100)  # no Keras here: cheap
@given(
    arg=st.sampled_from(sorted(CORRECT)),
    shape=st.lists(st.sampled_from([0, 1, 2, 3, 4, 5, 6]), max_size=3).map(tuple),
)
def test_no_wrong_shape_is_broadcast_into_an_answer(arg, shape):
    """Any shape other than the documented one, of any argument, is refused with a
    message naming it (a square recurrent kernel of another size makes U disagree
    with the kernel: the message names both)."""
    if shape == CORRECT[arg]:
        return
    value = np.ones(shape, bool if arg == "mask" else np.float32)
    with pytest.raises(ValueError, match=r"^\w+ must have shape|^recurrent_kernel must") as info:
        rnn(**{"mask": MASK, "initial_state": H0, arg: value})
    assert re.search(rf"\b{arg}\b", str(info.value)), str(info.value)
    assert str(shape) in str(info.value) or f"got {shape}" in str(info.value)


def test_refusals_leave_the_arguments_untouched():
    x, h0 = X.copy(), H0.copy()
    with pytest.raises(ValueError):
        rnn(inputs=x, initial_state=h0, bias=np.ones(1))
    np.testing.assert_array_equal(x, X)
    np.testing.assert_array_equal(h0, H0)


# ---------------------------------------------------------------------------
# 2. Edge cases, decided by live Keras
# ---------------------------------------------------------------------------

keras = pytest.importorskip("keras")


def keras_rnn_layer(**options):
    """A Keras SimpleRNN with the module's weights (D=3, U=5)."""
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


# ---------------------------------------------------------------------------
# 3. Models from files
# ---------------------------------------------------------------------------

layers = keras.layers


def randomize(model, seed=0):
    """Random weights with non-zero biases; recurrent kernels at spectral radius 0.9."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        new = []
        for v in layer.weights:
            shape = tuple(v.shape)
            w = rng.uniform(-1, 1, shape)
            if "recurrent" in v.name:
                w *= 0.9 / np.max(np.abs(np.linalg.eigvals(w)))
            elif v.name == "bias":
                w = rng.uniform(0.1, 0.5, shape) * rng.choice([-1, 1], shape)
            new.append(w.astype(v.dtype))
        layer.set_weights(new)
    return model


def token_model():
    """Embedding(mask_zero) -> SimpleRNN(return_sequences) -> SimpleRNN -> Dense(sigmoid)."""
    ids = keras.Input((6,), dtype="int32")
    h = layers.Embedding(20, 4, mask_zero=True)(ids)
    h = layers.SimpleRNN(5, return_sequences=True)(h)
    h = layers.SimpleRNN(3, activation="relu", go_backwards=True)(h)
    out = layers.Dense(2, activation="sigmoid")(h)
    return randomize(keras.Model(ids, out, name="tokens"))


def float_model():
    """Input (T, 3) -> SimpleRNN(4, return_sequences, no bias) -> Dense(2, softmax) per step."""
    return randomize(keras.Sequential([
        keras.Input((5, 3)), layers.SimpleRNN(4, return_sequences=True, use_bias=False),
        layers.Dense(2, activation="softmax"),
    ], name="floats"), seed=1)


def state_model():
    """A functional model returning (output, final_state) of its last SimpleRNN."""
    x = keras.Input((5, 3))
    out, state = layers.SimpleRNN(4, return_state=True)(x)
    return randomize(keras.Model(x, [out, state], name="with_state"), seed=2)


def token_ids():
    ids = np.random.default_rng(7).integers(1, 20, (3, 6))
    ids[0, 4:] = 0  # right padding
    ids[1, :2] = 0  # left padding
    return ids


def float_inputs():
    return np.random.default_rng(8).uniform(-1, 1, (3, 5, 3)).astype(np.float32)


MODELS = {"tokens": (token_model, token_ids), "floats": (float_model, float_inputs), "with_state": (state_model, float_inputs)}


def assert_same_outputs(got, want, tol=TOL):
    got = got if isinstance(got, (list, tuple)) else [got]
    want = want if isinstance(want, (list, tuple)) else [want]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if tol is None:
            np.testing.assert_array_equal(np.asarray(g), np.asarray(w))
        else:
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), **tol)


@pytest.mark.keras
@pytest.mark.parametrize("name", list(MODELS))
def test_keras_model_to_npz_and_back_equals_predict(name, tmp_path):
    build, inputs = MODELS[name]
    model, x = build(), inputs()
    path = tmp_path / "model.npz"
    rnn_ref.save_npz(model, path)
    loaded = rnn_ref.load(path)
    assert_same_outputs(loaded(x), model.predict(x, verbose=0))
    assert_same_outputs(loaded(x), rnn_ref.from_keras(model)(x), tol=None)  # bit for bit
    rnn_ref.save_npz(loaded, tmp_path / "again.npz")  # a NumpyModel saves too
    assert_same_outputs(rnn_ref.load(tmp_path / "again.npz")(x), loaded(x), tol=None)


@pytest.mark.keras
@pytest.mark.parametrize("name", list(MODELS))
def test_keras_file_loads_and_equals_predict(name, tmp_path):
    build, inputs = MODELS[name]
    model, x = build(), inputs()
    path = tmp_path / "model.keras"
    model.save(path)
    assert_same_outputs(rnn_ref.load(path)(x), model.predict(x, verbose=0))
    assert_same_outputs(rnn_ref.load(str(path))(x), rnn_ref.from_keras(model)(x), tol=None)


@pytest.mark.keras
def test_lambda_layer_in_a_keras_file_is_refused(tmp_path):
    model = keras.Sequential([keras.Input((5, 3)), layers.Lambda(lambda t: 2 * t), layers.SimpleRNN(4)])
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(ValueError, match=r"layer 'lambda\w*' is a Lambda layer: it holds Python code"):
        rnn_ref.load(tmp_path / "lambda.keras")


@keras.saving.register_keras_serializable(package="rnn_ref_tests")
class Doubling(keras.layers.Layer):
    """A custom layer, registered, so Keras itself could rebuild it."""

    def call(self, x):
        return 2 * x


def halve(x):
    return 0.5 * x


@pytest.mark.keras
def test_custom_objects_in_a_keras_file_are_refused(tmp_path):
    model = keras.Sequential([keras.Input((5, 3)), Doubling(), layers.SimpleRNN(4)])
    model.save(tmp_path / "custom.keras")
    with pytest.raises(ValueError, match=r"uses the custom class 'rnn_ref_tests>Doubling', which is not part of Keras"):
        rnn_ref.load(tmp_path / "custom.keras")
    model = keras.Sequential([keras.Input((5, 3)), layers.SimpleRNN(4, activation=halve)])
    model.save(tmp_path / "activation.keras")
    with pytest.raises(ValueError, match=r"layer 'simple_rnn\w*' uses the Python function 'halve'"):
        rnn_ref.load(tmp_path / "activation.keras")


@pytest.mark.keras
def test_unsupported_layers_are_refused_by_name(tmp_path):
    model = keras.Sequential([keras.Input((5, 3)), layers.LSTM(4, name="lstm_layer"), layers.Dense(1)])
    for convert in (rnn_ref.from_keras, lambda m: (m.save(tmp_path / "lstm.keras"), rnn_ref.load(tmp_path / "lstm.keras"))):
        with pytest.raises(ValueError) as info:
            convert(model)
        message = str(info.value)
        assert "'lstm_layer'" in message and "LSTM" in message
        assert all(kind in message for kind in ("Embedding", "SimpleRNN", "Dense"))


# --- .npz written by hand, and every way an .npz can be wrong -----------------


def handmade(tmp_path, config=None, **arrays):
    """Write an .npz with the given config (a dict, or raw text) and arrays."""
    path = tmp_path / "hand.npz"
    if config is not None:
        arrays["config"] = np.array(config if isinstance(config, str) else json.dumps(config))
    np.savez(path, **arrays)
    return path


def rnn_dense_config(**rnn_options):
    return {
        "format": "rnn_ref.npz", "version": 1, "name": "hand",
        "layers": [{"class": "SimpleRNN", "name": "rnn", **rnn_options}, {"class": "Dense", "activation": "sigmoid"}],
    }


HEAD_K, HEAD_B = np.array([[0.5], [-1.0], [0.25], [0.75], [-0.5]], np.float32), np.array([0.2], np.float32)
GOOD = dict(layer0_kernel=KERNEL, layer0_recurrent_kernel=RECURRENT, layer0_bias=BIAS, layer1_kernel=HEAD_K, layer1_bias=HEAD_B)


def test_handwritten_npz_equals_the_functions(tmp_path):
    model = rnn_ref.load(handmade(tmp_path, rnn_dense_config(return_sequences=True), **GOOD))
    want = dense(rnn(return_sequences=True), HEAD_K, HEAD_B, "sigmoid")
    np.testing.assert_array_equal(model(X), want)


def test_npz_keeps_a_stateful_layer_state(tmp_path):
    h = np.random.default_rng(9).normal(size=(B, U)).astype(np.float32)
    path = handmade(tmp_path, rnn_dense_config(stateful=True, return_sequences=True), layer0_state=h, **GOOD)
    model = rnn_ref.load(path)
    np.testing.assert_array_equal(model.layers[0].state, h)
    rnn_ref.save_npz(model, tmp_path / "again.npz")
    np.testing.assert_array_equal(rnn_ref.load(tmp_path / "again.npz").layers[0].state, h)
    want = dense(rnn(return_sequences=True, initial_state=h), HEAD_K, HEAD_B, "sigmoid")
    np.testing.assert_array_equal(model(X), want)


def drop(d, key):
    return {k: v for k, v in d.items() if k != key}


NPZ_REFUSALS = {
    "no config": (None, GOOD, "an .npz without a 'config' array"),
    "config not JSON": ("{layers: [", GOOD, "'config' is not valid JSON"),
    "wrong format": ({**rnn_dense_config(), "format": "other"}, GOOD, "this rnn_ref reads format 'rnn_ref.npz' version 1"),
    "unknown top-level key": ({**rnn_dense_config(), "optimizer": "adam"}, GOOD, "config has unknown keys ['optimizer']"),
    "unsupported class": ({**rnn_dense_config(), "layers": [{"class": "LSTM"}]}, {}, "class 'LSTM', which is not supported; supported: Embedding, SimpleRNN, Dense"),
    "misspelt option": (rnn_dense_config(retrun_sequences=True), GOOD, "unknown keys ['retrun_sequences']"),
    "option of the wrong type": (rnn_dense_config(return_sequences="yes"), GOOD, "return_sequences must be true or false, got 'yes'"),
    "unknown activation": (rnn_dense_config(activation="tanhh"), GOOD, "got 'tanhh'"),
    "integer dtype": (rnn_dense_config(dtype="int32"), GOOD, "dtype must be a float dtype name"),
    "missing weight": (rnn_dense_config(), drop(GOOD, "layer0_recurrent_kernel"), "missing the weight array 'layer0_recurrent_kernel'"),
    "array of no layer": (rnn_dense_config(), {**GOOD, "layer2_kernel": HEAD_K}, "arrays ['layer2_kernel'] belong to no layer"),
    "transposed kernel": (rnn_dense_config(), {**GOOD, "layer0_kernel": KERNEL.T}, "kernel must have shape (D, U) = (?, 5), got (5, 3)"),
    "head for other units": (rnn_dense_config(), {**GOOD, "layer1_kernel": np.ones((4, 1), np.float32)}, "kernel must have shape (N, K) = (5, ?), got (4, 1)"),
    "bias of shape (1,)": (rnn_dense_config(), {**GOOD, "layer0_bias": np.ones(1, np.float32)}, "bias must have shape (U,) = (5,), got (1,)"),
    "complex weight": (rnn_dense_config(), {**GOOD, "layer0_kernel": c64(KERNEL)}, "layer0_kernel must be real"),
    "state of a layer that is not stateful": (rnn_dense_config(), {**GOOD, "layer0_state": H0}, "has a state array but is not stateful"),
    "state output followed by a layer": (rnn_dense_config(return_state=True), GOOD, "follows a SimpleRNN with return_state"),
    "SimpleRNN after a vector": (
        {**rnn_dense_config(), "layers": [{"class": "SimpleRNN"}, {"class": "SimpleRNN"}]},
        dict(layer0_kernel=KERNEL, layer0_recurrent_kernel=RECURRENT, layer1_kernel=np.ones((U, 2), np.float32),
             layer1_recurrent_kernel=np.eye(2, dtype=np.float32)),
        "needs a sequence (B, T, D), but layers[0] outputs one vector per sample",
    ),
    "bad outputs": ({**rnn_dense_config(), "outputs": [0, 2]}, GOOD, "outputs index 2"),
}


@pytest.mark.parametrize("config, arrays, message", list(NPZ_REFUSALS.values()), ids=list(NPZ_REFUSALS))
def test_malformed_npz_is_refused(config, arrays, message, tmp_path):
    with pytest.raises(ValueError, match=re.escape(message)):
        rnn_ref.load(handmade(tmp_path, config, **arrays))


def test_pickled_npz_is_refused(tmp_path):
    weights_as_objects = np.empty(2, object)
    weights_as_objects[:] = [KERNEL, RECURRENT]
    path = handmade(tmp_path, rnn_dense_config(), layer0_weights=weights_as_objects, **GOOD)
    with pytest.raises(ValueError, match=r"array 'layer0_weights' is a pickled object array; rnn_ref loads with allow_pickle=False"):
        rnn_ref.load(path)


def test_files_of_other_kinds_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        rnn_ref.load(tmp_path / "missing.keras")
    (tmp_path / "text.keras").write_text("not a model")
    with pytest.raises(ValueError, match="neither a .keras model nor an .npz of weights"):
        rnn_ref.load(tmp_path / "text.keras")
    (tmp_path / "legacy.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    with pytest.raises(ValueError, match=r"legacy HDF5 \(.h5\) Keras file"):
        rnn_ref.load(tmp_path / "legacy.h5")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="neither config.json"):
        rnn_ref.load(tmp_path / "other.zip")
