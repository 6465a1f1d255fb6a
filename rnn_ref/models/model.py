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
propagation against that at every call. ``Masking`` replaces the mask with
``any(x != mask_value)`` over the features.

Several inputs. A model may take, besides the sequence the chain starts from,
inputs that a recurrent layer (or a Bidirectional) receives as its
``initial_state`` or as an explicit ``mask`` (streaming models do both): its
``Feed``. Keras fills in a layer's mask from its input only when the call has
one tensor argument, so a layer called with ``initial_state`` and no explicit
``mask`` runs unmasked even after ``Masking`` or ``Embedding(mask_zero=True)``
(measured on Keras 3.15.1's TensorFlow, JAX and NumPy backends alike); the mask
passed on to the next layer is the explicit one if given, else the incoming
one, used or not. ``model([x, h0])`` takes the inputs in the model's order (or
a dict by input name), as ``keras_model.predict`` does.

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

from rnn_ref.models.feedforward import Dense, Embedding, Masking
from rnn_ref.models.gradients import model_gradients, train_step
from rnn_ref.models.base import Layer
from rnn_ref.models.recurrent import GRU, LSTM, Bidirectional, SimpleRNN

__all__ = ["Layer", "Embedding", "Masking", "Dense", "SimpleRNN", "LSTM", "GRU", "Bidirectional", "NumpyModel",
           "ModelInput", "Feed"]


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInput:
    """One input of a model with several: its Keras name, dtype and shape (batch first, None: any)."""

    name: str
    dtype: np.dtype
    shape: tuple


@dataclass(frozen=True)
class Feed:
    """What a layer takes from the model's inputs besides its data: indices into the inputs.

    initial_state : the inputs holding its initial states, in its states' order
        ((B, U) each: an LSTM's h then c; a Bidirectional's forward states then
        backward ones). Empty: none.
    mask : the input holding its explicit mask (B, T), cast to bool; None: none.
    """

    initial_state: tuple = ()
    mask: int | None = None


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
    inputs : for a model with several inputs, each one (``ModelInput``), in the
        order ``model([...])`` takes them; empty for a model of one input.
    data_input : which of ``inputs`` the chain of layers starts from.
    feeds : for a model with several inputs, one ``Feed`` or None per layer.
    """

    layers: list
    name: str = "model"
    input_dtype: np.dtype | None = None
    outputs: object = None
    inputs: tuple = ()
    data_input: int = 0
    feeds: tuple = ()

    def __call__(self, x):
        arrays = self.take_inputs(x)
        x = arrays[self.data_input]
        if self.input_dtype is not None:
            x = x.astype(self.input_dtype, copy=False)
        mask = None  # (B, T) bool, or None
        for layer, feed in zip(self.layers, self.feeds or [None] * len(self.layers)):
            if feed is None:
                y = layer(x, mask)
                mask = layer.compute_mask(x, mask)
            else:
                call_mask, passed_on, extra = self.fed(feed, arrays, mask)
                y = layer(x, call_mask, **extra)
                mask = layer.compute_mask(x, passed_on)
            x = y
        return self._select(x)

    def take_inputs(self, x) -> list:
        """The model's inputs as a list of arrays, in its order: one array for a model of one
        input; a list, a tuple or a dict by input name for one of several, each float one cast
        to its ``Input``'s dtype as Keras casts it (a float64 state given to a float32 ``Input``
        is rounded to float32 before a float64 layer reads it)."""
        if not self.inputs:
            return [np.asarray(x)]
        return [a.astype(i.dtype, copy=False) if a.dtype.kind == "f" and np.dtype(i.dtype).kind == "f" else a
                for a, i in zip(self._listed(x), self.inputs)]  # a float input cast to its Input's dtype, as Keras

    def _listed(self, x) -> list:
        """``x`` as the list of the model's inputs, in its order (a list, a tuple or a dict by name)."""
        names = [i.name for i in self.inputs]
        if isinstance(x, dict):
            missing, unknown = set(names) - set(x), set(x) - set(names)
            if missing or unknown:
                raise ValueError(f"model {self.name!r} takes the inputs {', '.join(names)}; got a dict "
                                 f"with {', '.join(map(str, x))}")
            x = [x[n] for n in names]
        if not isinstance(x, (list, tuple)) or len(x) != len(names):
            got = f"{len(x)} arrays" if isinstance(x, (list, tuple)) else f"one {type(x).__name__}"
            raise ValueError(f"model {self.name!r} takes {len(names)} inputs ({', '.join(names)}): pass a list "
                             f"of {len(names)} arrays in that order or a dict by name, got {got}")
        return [np.asarray(a) for a in x]

    @staticmethod
    def fed(feed, arrays, mask):
        """For a layer with ``feed``: the mask it is called with, the mask it passes on
        (before its own rule) and its extra arguments, as Keras's ``Layer.__call__`` decides."""
        extra, call_mask, passed_on = {}, mask, mask
        if feed.initial_state:
            extra["initial_state"] = [arrays[i] for i in feed.initial_state]  # (B, U) each
            call_mask = None  # several tensor arguments: Keras does not fill in the mask
        if feed.mask is not None:
            call_mask = passed_on = arrays[feed.mask].astype(bool)  # (B, T)
        return call_mask, passed_on, extra

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
        if self.inputs:
            lines.append("inputs: " + ", ".join(f"{i.name} {i.dtype} {i.shape}" for i in self.inputs))
            for layer, feed in zip(self.layers, self.feeds):
                if feed is not None:
                    fed = [f"initial_state from {', '.join(self.inputs[i].name for i in feed.initial_state)}"
                           if feed.initial_state else "", f"mask from {self.inputs[feed.mask].name}"
                           if feed.mask is not None else ""]
                    lines.append(f"  {layer.name}: " + "; ".join(f for f in fed if f))
        for r in rows:
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
        total = sum(v.size for layer in self.layers for v in layer.weights().values())
        lines.append(f"parameters: {total:,}")
        print_fn("\n".join(lines))

    def __repr__(self):
        inner = "".join(f"\n    {layer!r}," for layer in self.layers)
        return f"NumpyModel({self.name!r}, layers=[{inner}\n])"
