"""A Keras model rebuilt as a chain of NumPy layers.

    >>> np_model = rnn_ref.from_keras(keras_model)   # built by rnn_ref.keras_graph
    >>> np_model(x)          # equals keras_model.predict(x)
    >>> np_model.summary()

Letters: B batch, T time steps, D input features, U units, V vocabulary size,
E embedding size, N and K the input and output features of a Dense layer.

This module is what a rebuilt model is: the layers ``Embedding`` and
``Dense`` (here), ``SimpleRNN``, ``LSTM``, ``GRU`` and ``Bidirectional``
(``rnn_ref.recurrent_layers``), each holding NumPy arrays and calling the
pure functions of rnn_ref, and ``NumpyModel``, which runs them in order.
How one is read from a Keras model is in ``rnn_ref.keras_graph``; how one
is saved and read as an ``.npz`` is in ``rnn_ref.npz``.

Each layer class declares what the other modules need to know about it
(``rnn_ref.layer_base.Layer``): ``OPTIONS`` (option name -> default, as in
the Keras config), ``WEIGHTS`` (its weight arrays, in the order of Keras's
``layer.get_weights()``), ``OPTIONAL`` (arrays that may be None) and
``STATE`` (arrays a stateful layer carries from one call to the next).

Masks travel as in Keras. ``Embedding(mask_zero=True)`` emits ``ids != 0``;
a recurrent layer consumes it and passes it on only with
``return_sequences`` (unchanged, even with ``go_backwards``: Keras does not
reverse it); ``Dense`` passes it on without using it; an ``Embedding``
without ``mask_zero`` drops it. A recurrent layer rebuilt from Keras also
knows whether Keras feeds it a mask (``mask_in``) and checks its own
propagation against that at every call.

Dtypes follow Keras too: the input is cast to the model input's dtype, and
each layer computes in its compute dtype (a float32 layer casts float64
inputs to float32; a ``dtype="float64"`` layer computes in float64). The
NumPy model computes ``model(x)``; Keras's ``predict`` equals it except that
it first rounds NumPy float arrays to ``floatx`` (float32): for a float64
model, ``model.predict(x)`` is ``np_model(x.astype(np.float32))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import shape as check_shape
from .dense import dense
from .embedding import compute_mask as embedding_mask
from .embedding import embedding
from .layer_base import Layer
from .recurrent_layers import GRU, LSTM, Bidirectional, SimpleRNN

__all__ = ["Layer", "Embedding", "Dense", "SimpleRNN", "LSTM", "GRU", "Bidirectional", "LAYERS",
           "NumpyModel", "from_keras"]


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


#: The NumPy layer classes by name (the name a saved config uses).
LAYERS = {cls.__name__: cls for cls in (Embedding, SimpleRNN, Dense, LSTM, GRU, Bidirectional)}


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------


@dataclass(repr=False)
class NumpyModel:
    """A chain of NumPy layers; ``model(x)`` runs them in order, passing masks on.

    layers : the NumPy layers, first to last (a Keras layer called twice in
        the chain appears twice, with the same weights).
    input_dtype : the model input's dtype; ``x`` is cast to it first, as Keras does.
    outputs : which outputs of the last layer come back, in the structure
        ``model.predict`` returns them: an int indexes the last layer's outputs
        (``(output, *states)`` of a recurrent layer with ``return_state``,
        ``(forward, backward, ...)`` of a Bidirectional with merge_mode None);
        lists, tuples and dicts of ints are kept; None returns the last
        layer's result as it is.
    """

    layers: list
    name: str = "model"
    input_dtype: np.dtype | None = None
    outputs: object = None

    def __call__(self, x):
        x = np.asarray(x)
        if self.input_dtype is not None:
            x = x.astype(self.input_dtype, copy=False)
        mask = None  # (B, T) bool, or None
        for layer in self.layers:
            y = layer(x, mask)
            mask = layer.compute_mask(x, mask)
            x = y
        return self._select(x)

    def gradients(self, x, y, loss, sample_weight=None):
        """``rnn_ref.gradients.model_gradients(self, x, y, loss, sample_weight)``: a list in
        trainable_weights' order."""
        from .gradients import model_gradients  # noqa: PLC0415  (gradients imports this module)

        return model_gradients(self, x, y, loss, sample_weight)

    def train_step(self, x, y, loss, learning_rate, sample_weight=None):
        """``rnn_ref.gradients.train_step``: one plain SGD step in place; returns the loss."""
        from .gradients import train_step  # noqa: PLC0415

        return train_step(self, x, y, loss, learning_rate, sample_weight)

    def reset_state(self):
        """Zero the states of every stateful layer (the Keras ``layer.reset_state()``)."""
        for layer in self.layers:
            if getattr(layer, "stateful", False):
                layer.reset_state()

    def _select(self, result):
        if self.outputs is None:
            return result
        flat = result if isinstance(result, tuple) else (result,)

        def pick(spec):
            if isinstance(spec, dict):
                return {k: pick(v) for k, v in spec.items()}
            if isinstance(spec, (list, tuple)):
                return type(spec)(pick(s) for s in spec)
            return flat[spec]

        picked = pick(self.outputs)
        if isinstance(picked, (list, tuple)) and len(picked) == 1:
            return picked[0]  # Keras unpacks a single output the same way
        return picked

    def summary(self, print_fn=print):
        """Print one line per layer: name, kind, weight shapes, options."""
        rows = [("#", "layer", "kind", "weights", "options")]
        for i, layer in enumerate(self.layers):
            w = ", ".join(f"{k} {tuple(v.shape)}" for k, v in layer.weights().items())
            rows.append((str(i), layer.name, type(layer).__name__, w, ", ".join(layer.options())))
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
        lines = [f"NumpyModel {self.name!r}, input dtype {self.input_dtype}"]
        for r in rows:
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
        total = sum(v.size for layer in self.layers for v in layer.weights().values())
        lines.append(f"parameters: {total:,}")
        print_fn("\n".join(lines))

    def __repr__(self):
        inner = "".join(f"\n    {layer!r}," for layer in self.layers)
        return f"NumpyModel({self.name!r}, layers=[{inner}\n])"


def from_keras(model) -> NumpyModel:
    """Rebuild a built Keras model as a ``NumpyModel``: ``rnn_ref.keras_graph.from_keras``.

    Kept here so that ``from rnn_ref.model import from_keras`` goes on working.
    """
    from .keras_graph import from_keras as rebuild  # noqa: PLC0415  (keras_graph imports this module)

    return rebuild(model)
