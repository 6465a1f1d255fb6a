"""Keras's ``Embedding``, ``Masking`` and ``Dense`` as NumPy layers of a rebuilt model (``rnn_ref.models.model``).

Each holds its NumPy arrays and calls rnn_ref's pure function (``rnn_ref.embedding``,
``rnn_ref.masking``, ``rnn_ref.dense``); what it declares is ``rnn_ref.models.base.Layer``'s. The recurrent
layers are in ``rnn_ref.models.recurrent``.

Letters: B batch, T time steps, V vocabulary size, E embedding size, D the features of
a Masking layer, N and K the input and output features of a Dense layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnn_ref.layers._checks import shape as check_shape
from rnn_ref.layers.dense import dense
from rnn_ref.layers.embedding import compute_mask as embedding_mask
from rnn_ref.layers.embedding import embedding
from rnn_ref.layers.masking import compute_mask as masking_mask
from rnn_ref.layers.masking import masking
from rnn_ref.models.base import Layer


@dataclass(repr=False)
class Embedding(Layer):
    """Keras ``Embedding``: ids (B, T) -> (B, T, E).

    embeddings : (V, E)
    mask_zero : emit the mask ``ids != 0`` (B, T) for the next layers.
    dtype : the compute dtype; the looked-up rows are cast to it.
    """

    OPTIONS = {"mask_zero": False}
    WEIGHTS = ("embeddings",)

    name: str
    embeddings: np.ndarray  # (V, E)
    mask_zero: bool = False
    dtype: np.dtype = np.dtype("float32")

    def __call__(self, ids, mask=None):
        ids = np.asarray(ids)
        if ids.dtype not in (np.int32, np.int64):
            ids = ids.astype(np.int32)  # Keras casts other ids to int32 (floats truncate)
        return embedding(ids, self.embeddings).astype(self.dtype, copy=False)  # (B, T, E)

    def compute_mask(self, ids, mask=None):
        return embedding_mask(ids) if self.mask_zero else None  # (B, T) or None

    def check_input(self, features, sequence):
        check_shape("embeddings", self.embeddings, "V, E", (None, None))
        return self.embeddings.shape[1], True

    def __repr__(self):
        V, E = self.embeddings.shape
        return f"Embedding({self.name!r}, V={V}, E={E}, mask_zero={self.mask_zero})"


@dataclass(repr=False)
class Masking(Layer):
    """Keras ``Masking``: (B, T, D) -> (B, T, D), the steps whose D features all equal
    ``mask_value`` set to 0, and the mask ``any(x != mask_value)`` (B, T) for the next layers.

    It replaces any incoming mask, as Keras's does. No weights.
    """

    OPTIONS = {"mask_value": 0.0}

    name: str
    mask_value: float = 0.0
    dtype: np.dtype = np.dtype("float32")

    def __call__(self, x, mask=None):
        x = np.asarray(x).astype(self.dtype, copy=False)
        return masking(x, self.mask_value)  # (B, T, D)

    def compute_mask(self, x, mask=None):
        return masking_mask(np.asarray(x).astype(self.dtype, copy=False), self.mask_value)  # (B, T)

    def check_input(self, features, sequence):
        return features, sequence

    def options(self):
        return [f"mask_value={self.mask_value!r}"]

    def __repr__(self):
        return f"Masking({self.name!r}, mask_value={self.mask_value!r})"


@dataclass(repr=False)
class Dense(Layer):
    """Keras ``Dense``: (..., N) -> (..., K), on the last axis (so per step on (B, T, N)).

    kernel : (N, K); bias : (K,) or None. A mask passes through unchanged.
    """

    OPTIONS = {"activation": "linear"}
    WEIGHTS = ("kernel", "bias")
    OPTIONAL = ("bias",)

    name: str
    kernel: np.ndarray  # (N, K)
    bias: np.ndarray | None  # (K,)
    activation: str = "linear"
    dtype: np.dtype = np.dtype("float32")

    def __call__(self, x, mask=None):
        x = np.asarray(x).astype(self.dtype, copy=False)
        return dense(x, self.kernel, self.bias, self.activation)  # (..., K)

    def check_input(self, features, sequence):
        check_shape("kernel", self.kernel, "N, K", (features, None))
        if self.bias is not None:
            check_shape("bias", self.bias, "K", (self.kernel.shape[1],))
        return self.kernel.shape[1], sequence

    def __repr__(self):
        N, K = self.kernel.shape
        return f"Dense({self.name!r}, N={N}, K={K}, activation={self.activation!r})"
