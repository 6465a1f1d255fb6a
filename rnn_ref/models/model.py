"""A Keras model rebuilt as a chain of NumPy layers.

    >>> np_model = rnn_ref.from_keras(keras_model)   # built by rnn_ref.models.keras_graph
    >>> np_model(x)          # equals keras_model.predict(x)
    >>> np_model.summary()

Letters: B batch, T time steps, D input features, U units, V vocabulary size,
E embedding size, N and K the input and output features of a Dense layer.

This module is what a rebuilt model is: the layers ``Embedding`` and
``Dense`` (``rnn_ref.models.feedforward``), ``SimpleRNN``, ``LSTM``, ``GRU``
and ``Bidirectional`` (``rnn_ref.models.recurrent``), each holding NumPy
arrays and calling the pure functions of rnn_ref, and ``NumpyModel``, which
runs them in order (its gradients and SGD step: ``rnn_ref.models.gradients``).
How one is read from a Keras model is in ``rnn_ref.models.keras_graph``
(``rnn_ref.from_keras``); how one is saved and read as an ``.npz`` is in
``rnn_ref.npz``.

Each layer class declares what the other modules need to know about it
(``rnn_ref.models.base.Layer``): ``OPTIONS`` (option name -> default, as in
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

from rnn_ref.models.feedforward import Dense, Embedding
from rnn_ref.models.gradients import model_gradients, train_step
from rnn_ref.models.base import Layer
from rnn_ref.models.recurrent import GRU, LSTM, Bidirectional, SimpleRNN

__all__ = ["Layer", "Embedding", "Dense", "SimpleRNN", "LSTM", "GRU", "Bidirectional", "NumpyModel"]


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
        """``rnn_ref.models.gradients.model_gradients(self, x, y, loss, sample_weight)``: a list in
        trainable_weights' order."""
        return model_gradients(self, x, y, loss, sample_weight)

    def train_step(self, x, y, loss, learning_rate, sample_weight=None):
        """``rnn_ref.models.gradients.train_step``: one plain SGD step in place; returns the loss."""
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
