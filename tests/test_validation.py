"""Validation: a malformed question never gets a plausible number.

Every refusal of ``simple_rnn``, ``dense`` and ``embedding`` names the
argument, the expected shape in the docstring letters and what was given; a
property checks that no wrong shape of any argument is ever broadcast into an
answer.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rnn_ref.layers.dense import dense
from rnn_ref.layers.embedding import embedding
from tiny_rnn import BIAS, H0, KERNEL, MASK, RECURRENT, TABLE, B, D, T, U, X, c64, rnn

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

