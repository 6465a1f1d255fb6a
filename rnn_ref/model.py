"""A Keras model rebuilt as a chain of NumPy layers.

    >>> np_model = rnn_ref.from_keras(keras_model)   # built by rnn_ref.keras_graph
    >>> np_model(x)          # equals keras_model.predict(x)
    >>> np_model.summary()

Letters: B batch, T time steps, D input features, U units, V vocabulary size,
E embedding size, N and K the input and output features of a Dense layer.

This module is what a rebuilt model is: the layers ``Embedding``,
``SimpleRNN`` and ``Dense``, each holding NumPy arrays and calling the pure
functions of rnn_ref, and ``NumpyModel``, which runs them in order. How
one is read from a Keras model is in ``rnn_ref.keras_graph``; how one is
saved and read as an ``.npz`` is in ``rnn_ref.npz``.

Each layer class declares what the other modules need to know about it:
``OPTIONS`` (option name -> default, as in the Keras config), ``WEIGHTS``
(its weight arrays, in the order of Keras's ``layer.get_weights()``),
``OPTIONAL`` (arrays that may be None) and ``STATE`` (arrays a stateful
layer carries from one call to the next).

Masks travel as in Keras. ``Embedding(mask_zero=True)`` emits ``ids != 0``;
``SimpleRNN`` consumes it and passes it on only with ``return_sequences``
(unchanged, even with ``go_backwards``: Keras does not reverse it); ``Dense``
passes it on without using it; an ``Embedding`` without ``mask_zero`` drops
it. A SimpleRNN rebuilt from Keras also knows whether Keras feeds it a mask
(``mask_in``) and checks its own propagation against that at every call.

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
from .recurrence import CALL_OPTIONS
from .simple_rnn import OPTIONS as simple_rnn_options
from .simple_rnn import simple_rnn

#: The options of a SimpleRNN layer with their defaults: those of ``simple_rnn``
#: (activation, return_sequences, return_state, go_backwards,
#: zero_output_for_mask) without ``mask`` and ``initial_state``, which are
#: arrays of each call, not options.
SIMPLE_RNN_OPTIONS = {k: v for k, v in simple_rnn_options.items() if k not in CALL_OPTIONS}


# ---------------------------------------------------------------------------
# The NumPy layers. Each holds its weights as NumPy arrays and calls the pure
# function of rnn_ref. ``__call__(x, mask)`` computes the output and
# ``compute_mask(x, mask)`` the mask the next layer receives, as in Keras.
# ---------------------------------------------------------------------------


class Layer:
    """What every NumPy layer declares and shares.

    OPTIONS : option name -> default. A str default is an activation name,
        False a flag, None a flag that may also be unknown.
    WEIGHTS : the weight arrays, in the order of Keras's ``layer.get_weights()``.
    OPTIONAL : the arrays that may be None (``bias`` is None for ``use_bias=False``).
    STATE : the arrays a stateful layer carries between calls (not weights).
    NEEDS_SEQUENCE : the input must be a sequence (B, T, ...).
    """

    OPTIONS = {}
    WEIGHTS = ()
    OPTIONAL = ()
    STATE = ()
    NEEDS_SEQUENCE = False

    def compute_mask(self, x, mask):
        return mask  # passed on unchanged

    def weights(self):
        """The weight arrays by name, absent optional ones left out."""
        return {k: getattr(self, k) for k in self.WEIGHTS if getattr(self, k) is not None}

    def arrays(self):
        """The weights, and the current state of a stateful layer: what ``save_npz`` writes."""
        arrays = self.weights()
        if getattr(self, "stateful", False):
            arrays.update({k: getattr(self, k) for k in self.STATE if getattr(self, k) is not None})
        return arrays

    def options(self):
        """The activation and the flags that are on (and "no bias"), as short words for ``summary``."""
        words = [getattr(self, k) for k, default in self.OPTIONS.items() if isinstance(default, str)]
        words += self.flags()
        if "bias" in self.OPTIONAL and self.bias is None:
            words.append("no bias")
        return words

    def flags(self):
        """The names of the flags that are on."""
        return [k for k, default in self.OPTIONS.items() if default is False and getattr(self, k)]

    def check_input(self, features, sequence):
        """Check the weights' shapes for an input of ``features`` features (None: not known).

        ``sequence`` says whether the input is a sequence (B, T, ...) (None:
        not known). Returns the same two for the output; raises ValueError.
        """
        raise NotImplementedError


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
class SimpleRNN(Layer):
    """Keras ``SimpleRNN``: (B, T, D) -> (B, U), or (B, T, U) with ``return_sequences``.

    kernel : (D, U); recurrent_kernel : (U, U); bias : (U,) or None (``use_bias=False``)
    return_state : return ``(output, final_state)``, final_state (B, U).
    stateful : start each call from the previous call's final state
        (``state``, (B, U); None means zeros); ``reset_state()`` zeroes it.
    mask_in : whether Keras feeds this layer a mask (read from the Keras
        graph); None skips the check. ``unroll`` is not kept: Keras gives the
        same numbers either way (apart from the case ``from_keras`` warns about).
    """

    OPTIONS = {**SIMPLE_RNN_OPTIONS, "stateful": False, "mask_in": None}
    WEIGHTS = ("kernel", "recurrent_kernel", "bias")
    OPTIONAL = ("bias", "state")
    STATE = ("state",)
    NEEDS_SEQUENCE = True

    name: str
    kernel: np.ndarray  # (D, U)
    recurrent_kernel: np.ndarray  # (U, U)
    bias: np.ndarray | None  # (U,)
    activation: str = "tanh"
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False
    zero_output_for_mask: bool = False
    stateful: bool = False
    dtype: np.dtype = np.dtype("float32")
    state: np.ndarray | None = None  # (B, U), only used when stateful
    mask_in: bool | None = None

    def __call__(self, x, mask=None):
        if self.mask_in is not None and self.mask_in != (mask is not None):
            given = "a mask" if mask is not None else "no mask"
            raise RuntimeError(
                f"layer {self.name!r} (SimpleRNN) received {given}, but Keras "
                f"{'feeds it a mask' if self.mask_in else 'feeds it none'}: the mask propagation "
                "of this model does not match the Keras graph"
            )
        x = np.asarray(x).astype(self.dtype, copy=False)  # Keras casts inputs to the compute dtype
        if x.ndim != 3:
            # In a model the batch axis is always there (Keras refuses (T, D) too).
            raise ValueError(f"layer {self.name!r} (SimpleRNN) expects inputs of shape (B, T, D), got {x.shape}")
        initial_state = None
        if self.stateful and self.state is not None:
            if self.state.shape[0] != x.shape[0]:
                raise ValueError(
                    f"layer {self.name!r} is stateful with batch size {self.state.shape[0]}, "
                    f"got a batch of {x.shape[0]}; call reset_state() first to change it"
                )
            initial_state = self.state  # (B, U)
        output, final_state = simple_rnn(
            x, self.kernel, self.recurrent_kernel, self.bias,
            activation=self.activation,
            return_sequences=self.return_sequences,
            return_state=True,
            go_backwards=self.go_backwards,
            mask=mask,
            initial_state=initial_state,
            zero_output_for_mask=self.zero_output_for_mask,
        )  # (B, U) or (B, T, U); (B, U)
        if self.stateful:
            self.state = final_state
        return (output, final_state) if self.return_state else output

    def compute_mask(self, x, mask):
        return mask if self.return_sequences else None  # (B, T) or None, never reversed

    def reset_state(self):
        """Zero the stored state (keeps its batch size, as Keras does)."""
        if self.state is not None:
            self.state = np.zeros_like(self.state)

    def options(self):
        return super().options() + (["masked"] if self.mask_in else [])

    def check_input(self, features, sequence):
        rk = self.recurrent_kernel
        if rk.ndim != 2 or rk.shape[0] != rk.shape[1] or rk.shape[0] == 0:
            raise ValueError(f"recurrent_kernel must be a square (U, U) array, got shape {rk.shape}")
        U = rk.shape[0]
        check_shape("kernel", self.kernel, "D, U", (features, U))
        if self.bias is not None:
            check_shape("bias", self.bias, "U", (U,))
        if self.state is not None:
            check_shape("state", self.state, "B, U", (None, U))
        return U, self.return_sequences

    def __repr__(self):
        D, U = self.kernel.shape
        args = [f"D={D}", f"U={U}", f"activation={self.activation!r}"]
        args += [f"{f}=True" for f in self.flags()]
        if self.bias is None:
            args.append("use_bias=False")
        return f"SimpleRNN({self.name!r}, {', '.join(args)})"


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
LAYERS = {cls.__name__: cls for cls in (Embedding, SimpleRNN, Dense)}


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
        (``(output, final_state)`` for a SimpleRNN with ``return_state``);
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

    def reset_state(self):
        """Zero the state of every stateful SimpleRNN (the Keras ``layer.reset_state()``)."""
        for layer in self.layers:
            if isinstance(layer, SimpleRNN):
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
