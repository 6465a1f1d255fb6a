"""A Keras model rebuilt as a chain of NumPy layers.

    >>> np_model = rnn_ref.from_keras(keras_model)
    >>> np_model(x)          # equals keras_model.predict(x)
    >>> np_model.summary()

Letters: B batch, T time steps, D input features, U units, V vocabulary size,
E embedding size, N and K the input and output features of a Dense layer.

What is supported, and nothing else (anything else is refused with a
ValueError that names the layer, never skipped):

* ``Sequential`` and functional models whose layers form one chain from one
  ``Input`` to the output: each layer takes the previous layer's output;
* layers ``InputLayer``, ``Embedding``, ``SimpleRNN`` and ``Dense``, with all
  the options that change the forward pass (see each class below).

Masks travel as in Keras. ``Embedding(mask_zero=True)`` emits ``ids != 0``;
``SimpleRNN`` consumes it and passes it on only with ``return_sequences``
(unchanged, even with ``go_backwards``: Keras does not reverse it); ``Dense``
passes it on without using it; an ``Embedding`` without ``mask_zero`` drops
it. For each SimpleRNN, ``from_keras`` also reads from the Keras graph whether
Keras feeds it a mask, and the NumPy model checks its own propagation against
that at every call.

Dtypes follow Keras too: the input is cast to the model input's dtype, and
each layer computes in its compute dtype (a float32 layer casts float64
inputs to float32; a ``dtype="float64"`` layer computes in float64). The
NumPy model computes ``model(x)``; Keras's ``predict`` equals it except that
it first rounds NumPy float arrays to ``floatx`` (float32): for a float64
model, ``model.predict(x)`` is ``np_model(x.astype(np.float32))``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .dense import dense
from .embedding import compute_mask as embedding_mask
from .embedding import embedding
from .simple_rnn import simple_rnn

#: The Keras layer classes ``from_keras`` converts.
SUPPORTED = ("InputLayer", "Embedding", "SimpleRNN", "Dense")


# ---------------------------------------------------------------------------
# The NumPy layers. Each holds its weights as NumPy arrays and calls the pure
# function of rnn_ref. ``__call__(x, mask)`` computes the output and
# ``compute_mask(x, mask)`` the mask the next layer receives, as in Keras.
# ---------------------------------------------------------------------------


@dataclass(repr=False)
class Embedding:
    """Keras ``Embedding``: ids (B, T) -> (B, T, E).

    embeddings : (V, E)
    mask_zero : emit the mask ``ids != 0`` (B, T) for the next layers.
    dtype : the compute dtype; the looked-up rows are cast to it.
    """

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

    def weights(self):
        return {"embeddings": self.embeddings}

    def options(self):
        return ["mask_zero"] if self.mask_zero else []

    def __repr__(self):
        V, E = self.embeddings.shape
        return f"Embedding({self.name!r}, V={V}, E={E}, mask_zero={self.mask_zero})"


@dataclass(repr=False)
class SimpleRNN:
    """Keras ``SimpleRNN``: (B, T, D) -> (B, U), or (B, T, U) with ``return_sequences``.

    kernel : (D, U); recurrent_kernel : (U, U); bias : (U,) or None (``use_bias=False``)
    return_state : return ``(output, final_state)``, final_state (B, U).
    stateful : start each call from the previous call's final state
        (``state``, (B, U); None means zeros); ``reset_state()`` zeroes it.
    mask_in : whether Keras feeds this layer a mask (read from the Keras
        graph); None skips the check. ``unroll`` is not kept: Keras gives the
        same numbers either way (apart from the case ``from_keras`` warns about).
    """

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

    def weights(self):
        w = {"kernel": self.kernel, "recurrent_kernel": self.recurrent_kernel}
        if self.bias is not None:
            w["bias"] = self.bias
        return w

    def options(self):
        flags = ["return_sequences", "return_state", "go_backwards", "zero_output_for_mask", "stateful"]
        opts = [self.activation] + [f for f in flags if getattr(self, f)]
        if self.bias is None:
            opts.append("no bias")
        if self.mask_in:
            opts.append("masked")
        return opts

    def __repr__(self):
        D, U = self.kernel.shape
        flags = ["return_sequences", "return_state", "go_backwards", "zero_output_for_mask", "stateful"]
        args = [f"D={D}", f"U={U}", f"activation={self.activation!r}"]
        args += [f"{f}=True" for f in flags if getattr(self, f)]
        if self.bias is None:
            args.append("use_bias=False")
        return f"SimpleRNN({self.name!r}, {', '.join(args)})"


@dataclass(repr=False)
class Dense:
    """Keras ``Dense``: (..., N) -> (..., K), on the last axis (so per step on (B, T, N)).

    kernel : (N, K); bias : (K,) or None. A mask passes through unchanged.
    """

    name: str
    kernel: np.ndarray  # (N, K)
    bias: np.ndarray | None  # (K,)
    activation: str = "linear"
    dtype: np.dtype = np.dtype("float32")

    def __call__(self, x, mask=None):
        x = np.asarray(x).astype(self.dtype, copy=False)
        return dense(x, self.kernel, self.bias, self.activation)  # (..., K)

    def compute_mask(self, x, mask):
        return mask

    def weights(self):
        return {"kernel": self.kernel} if self.bias is None else {"kernel": self.kernel, "bias": self.bias}

    def options(self):
        return [self.activation] + ([] if self.bias is not None else ["no bias"])

    def __repr__(self):
        N, K = self.kernel.shape
        return f"Dense({self.name!r}, N={N}, K={K}, activation={self.activation!r})"


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


# ---------------------------------------------------------------------------
# Conversion from Keras
# ---------------------------------------------------------------------------


def from_keras(model) -> NumpyModel:
    """Rebuild a built Keras ``Sequential`` or functional model as a ``NumpyModel``.

    The weights are copied (``layer.get_weights()``), and so is the current
    state of stateful SimpleRNN layers, so the NumPy model continues from
    where the Keras model is. Raises ValueError for anything outside the
    supported chain (see the module docstring), naming the layer.
    """
    import keras  # noqa: PLC0415  (only the conversion needs Keras)

    graph = _graph_of(model, keras)
    (model_input,) = graph.inputs
    if getattr(model_input, "sparse", False) or getattr(model_input, "ragged", False):
        raise ValueError(f"model {model.name!r}: sparse or ragged inputs are not supported")
    chain, outputs = _chain(graph, model_input, keras)

    layers = []
    for layer, node, is_last in chain:
        if getattr(layer, "stateful", False) and sum(l is layer for l, _, _ in chain) > 1:
            raise ValueError(f"stateful layer {layer.name!r} is used more than once; not supported")
        layers.append(_convert(layer, node, is_last, keras))  # one per call of the layer
    return NumpyModel(
        layers=layers,
        name=model.name,
        input_dtype=np.dtype(model_input.dtype),
        outputs=outputs,
    )


def _graph_of(model, keras):
    """The functional graph Keras runs: the model itself, or a Sequential's inner one."""
    if isinstance(model, keras.Sequential):
        graph = getattr(model, "_functional", None)
        if graph is None:
            raise ValueError(
                f"Sequential model {model.name!r} is not built: start it with keras.Input(...) "
                "or call it once on data before from_keras"
            )
    elif isinstance(model, keras.Model) and hasattr(model, "_nodes_by_depth"):
        graph = model
    else:
        raise ValueError(
            f"model {model.name!r} ({type(model).__name__}) is not a Sequential or functional model; "
            "a subclassed model has no graph to read"
        )
    if len(graph.inputs) != 1:
        raise ValueError(f"model {model.name!r} has {len(graph.inputs)} inputs; only one is supported")
    return graph


def _node_of(tensor):
    op, node_index, tensor_index = tensor._keras_history
    return op, op._inbound_nodes[node_index], tensor_index


def _chain(graph, model_input, keras):
    """Walk from the output back to the input; return [(layer, node, is_last)] and the output spec."""
    flat_outputs = keras.tree.flatten(graph.output)
    last_op, last_node, _ = _node_of(flat_outputs[0])
    for t in flat_outputs:
        op, node, _ = _node_of(t)
        if node is not last_node:
            raise ValueError(
                f"model outputs come from layers {last_op.name!r} and {op.name!r}: only a chain "
                "of layers ending in one layer is supported"
            )
    outputs = keras.tree.map_structure(lambda t: _node_of(t)[2], graph.output)

    chain = []
    node = last_node
    while True:
        layer = node.operation
        kind = type(layer).__name__
        if kind == "InputLayer" and isinstance(layer, keras.layers.InputLayer):
            break
        _check_supported(layer, keras)
        data = _data_input(layer, node, keras)
        chain.append((layer, node, not chain))
        if data is model_input:
            break
        op, node, tensor_index = _node_of(data)
        if tensor_index != 0:
            raise ValueError(
                f"layer {layer.name!r} ({kind}) takes output {tensor_index} of layer {op.name!r}; "
                "only the main output of a layer can feed the next one"
            )
    if not chain:
        raise ValueError("the model has no layers besides its input")
    chain.reverse()
    return chain, outputs


def _check_supported(layer, keras):
    kinds = {
        "Embedding": keras.layers.Embedding,
        "SimpleRNN": keras.layers.SimpleRNN,
        "Dense": keras.layers.Dense,
    }
    kind = type(layer).__name__
    # Exact classes only: a subclass may change the forward pass.
    if kinds.get(kind) is not type(layer):
        raise ValueError(
            f"layer {getattr(layer, 'name', '?')!r} of class {kind} is not supported; "
            f"supported layer classes: {', '.join(SUPPORTED)}"
        )
    if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
        raise ValueError(f"layer {layer.name!r} ({kind}): LoRA and quantized layers are not supported")


def _data_input(layer, node, keras):
    """The one tensor ``layer`` was called on; refuse anything more (explicit masks, initial states)."""
    kind = type(layer).__name__
    args, kwargs = node.arguments.args, node.arguments.kwargs
    if len(args) != 1 or not isinstance(args[0], keras.KerasTensor):
        raise ValueError(f"layer {layer.name!r} ({kind}) must be called on one tensor, got {len(args)} arguments")
    data = args[0]
    for key, value in kwargs.items():
        if key == "mask":
            if value is not None and not _is_propagated_mask(value, data):
                raise ValueError(
                    f"layer {layer.name!r} ({kind}) was given an explicit mask; only the masks "
                    "Keras propagates from Embedding(mask_zero=True) are supported"
                )
        elif key == "training":
            if value:
                raise ValueError(f"layer {layer.name!r} ({kind}) was called with training=True")
        elif value is not None:
            raise ValueError(f"layer {layer.name!r} ({kind}) was called with {key}=...; not supported")
    return data


def _is_propagated_mask(mask, data) -> bool:
    """True for the mask Keras itself propagates from Embedding(mask_zero=True):
    the data's own mask, or (in a model loaded from a file, where Keras records
    it as a recomputed op) ``not_equal(ids, 0)`` on the ids of an Embedding
    with mask_zero upstream of ``data``."""
    propagated = getattr(data, "_keras_mask", None)
    if propagated is None:
        return False
    if mask is propagated:
        return True
    op = getattr(getattr(mask, "_keras_history", None), "operation", None)
    if type(op).__name__ != "NotEqual" or not getattr(op, "_inbound_nodes", None):
        return False
    args = op._inbound_nodes[0].arguments.args
    if len(args) != 2 or not (isinstance(args[1], (int, float)) and args[1] == 0):
        return False
    return args[0] in _embedding_ids_upstream(data)


def _embedding_ids_upstream(tensor):
    """The id tensors of the Embedding(mask_zero=True) layers that ``tensor`` derives from."""
    found, seen, todo = [], set(), [tensor]
    while todo:
        t = todo.pop()
        history = getattr(t, "_keras_history", None)
        if history is None or id(t) in seen:
            continue
        seen.add(id(t))
        layer = history.operation
        node = layer._inbound_nodes[history.node_index]
        inputs = list(node.arguments.args)
        if type(layer).__name__ == "Embedding" and getattr(layer, "mask_zero", False):
            found.extend(inputs)
        todo.extend(a for a in inputs if hasattr(a, "_keras_history"))
    return found


def _activation(layer, function, keras):
    """The rnn_ref name of a Keras activation function; refuse custom ones."""
    from .activations import ACTIVATIONS  # noqa: PLC0415

    for name in ACTIVATIONS:
        try:
            if keras.activations.get(name) is function:
                return name
        except ValueError:  # a name this Keras version does not have
            continue
    raise ValueError(
        f"layer {layer.name!r} ({type(layer).__name__}): activation {function!r} is not one of the "
        f"Keras activations rnn_ref knows by name; known: {', '.join(sorted(ACTIVATIONS))}"
    )


def _convert(layer, node, is_last, keras):
    kind = type(layer).__name__
    dtype = np.dtype(layer.compute_dtype)
    weights = [np.asarray(w) for w in layer.get_weights()]
    if kind == "Embedding":
        (embeddings,) = weights
        return Embedding(layer.name, embeddings, mask_zero=bool(layer.mask_zero), dtype=dtype)
    if kind == "Dense":
        kernel, bias = (weights[0], weights[1]) if layer.use_bias else (weights[0], None)
        return Dense(layer.name, kernel, bias, activation=_activation(layer, layer.activation, keras), dtype=dtype)
    # SimpleRNN
    cell = layer.cell
    kernel, recurrent_kernel = weights[0], weights[1]
    bias = weights[2] if cell.use_bias else None
    mask_in = node.arguments.kwargs.get("mask") is not None
    state = None
    if layer.stateful and layer.states is not None:
        state = np.asarray(layer.states[0].numpy(), dtype=dtype)  # (B, U)
    rnn = SimpleRNN(
        layer.name, kernel, recurrent_kernel, bias,
        activation=_activation(layer, cell.activation, keras),
        return_sequences=bool(layer.return_sequences),
        # A state output that no later layer can reach changes nothing.
        return_state=bool(layer.return_state) and is_last,
        go_backwards=bool(layer.go_backwards),
        zero_output_for_mask=bool(layer.zero_output_for_mask),
        stateful=bool(layer.stateful),
        dtype=dtype,
        state=state,
        mask_in=mask_in,
    )
    if layer.unroll and mask_in and rnn.go_backwards and rnn.zero_output_for_mask and rnn.return_sequences:
        warnings.warn(
            f"layer {layer.name!r}: with unroll=True, go_backwards, zero_output_for_mask, "
            "return_sequences and a mask, Keras (TF backend) zeroes the outputs of the steps masked "
            "in input order instead of processing order, unlike unroll=False; this NumPy model "
            "follows unroll=False, so its outputs differ from the Keras model here",
            stacklevel=3,
        )
    return rnn
