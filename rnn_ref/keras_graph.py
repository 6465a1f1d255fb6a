"""Reading a Keras model into a ``NumpyModel``: its graph, its layers' options and weights.

    >>> np_model = rnn_ref.from_keras(keras_model)
    >>> np_model(x)          # equals keras_model.predict(x)

What is supported, and nothing else (anything else is refused with a
ValueError that names the layer, never skipped):

* ``Sequential`` and functional models whose layers form one chain from one
  ``Input`` to the output: each layer takes the previous layer's output;
* layers ``InputLayer`` and those in ``KERAS_LAYERS`` (``Embedding``,
  ``SimpleRNN``, ``Dense``), exact classes, with all the options that change
  the forward pass.

``KERAS_LAYERS`` holds one entry per Keras layer class: the NumPy layer of
``rnn_ref.model`` it becomes, the options read from it and what else is
read (for a SimpleRNN: its current state and whether Keras feeds it a mask).
The weights come from ``layer.get_weights()``, named in order by the NumPy
layer's ``WEIGHTS``. Supporting another layer class means adding its NumPy
layer to ``rnn_ref.model`` and one entry here.

Masks: for each SimpleRNN, the walker reads from the Keras graph whether
Keras feeds it a mask, and the NumPy model checks its own propagation
against that at every call. Only the masks Keras propagates from
``Embedding(mask_zero=True)`` are supported; an explicit mask is refused.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ._tf import keras_and_tf
from .activations import ACTIVATIONS
from .model import SIMPLE_RNN_OPTIONS, Dense, Embedding, NumpyModel, SimpleRNN


@dataclass(frozen=True)
class KerasLayer:
    """How one Keras layer class becomes a NumPy layer.

    numpy_layer : the NumPy layer class. Its ``WEIGHTS`` name the arrays of
        ``layer.get_weights()`` in order (``bias`` only when the Keras layer
        has ``use_bias``).
    options : the Keras attributes copied to the NumPy layer: an activation
        as its Keras name, a flag as a bool (as the NumPy layer's
        ``OPTIONS`` defaults say).
    extra : ``extra(layer, node, is_last, dtype)`` returns further
        arguments of the NumPy layer, read from the layer or its place in
        the graph; None if there are none.
    """

    numpy_layer: type
    options: tuple
    extra: Callable | None = None


def _simple_rnn_extra(layer, node, is_last, dtype):
    """A SimpleRNN's current state (B, U) if stateful, whether Keras feeds it a mask,
    and ``return_state`` only where a later layer could see it."""
    mask_in = node.arguments.kwargs.get("mask") is not None
    state = None
    if layer.stateful and layer.states is not None:
        state = np.asarray(layer.states[0].numpy(), dtype=dtype)  # (B, U)
    if layer.unroll and mask_in and layer.go_backwards and layer.zero_output_for_mask and layer.return_sequences:
        warnings.warn(
            f"layer {layer.name!r}: with unroll=True, go_backwards, zero_output_for_mask, "
            "return_sequences and a mask, Keras (TF backend) zeroes the outputs of the steps masked "
            "in input order instead of processing order, unlike unroll=False; this NumPy model "
            "follows unroll=False, so its outputs differ from the Keras model here",
            stacklevel=4,  # the caller of from_keras
        )
    return {
        # A state output that no later layer can reach changes nothing.
        "return_state": bool(layer.return_state) and is_last,
        "state": state,
        "mask_in": mask_in,
    }


#: The Keras layer classes ``from_keras`` converts, by class name.
KERAS_LAYERS = {
    "Embedding": KerasLayer(Embedding, options=("mask_zero",)),
    "SimpleRNN": KerasLayer(SimpleRNN, options=(*SIMPLE_RNN_OPTIONS, "stateful"), extra=_simple_rnn_extra),
    "Dense": KerasLayer(Dense, options=("activation",)),
}

#: Every Keras layer class a model may hold.
SUPPORTED = ("InputLayer", *KERAS_LAYERS)


def from_keras(model) -> NumpyModel:
    """Rebuild a built Keras ``Sequential`` or functional model as a ``NumpyModel``.

    The weights are copied (``layer.get_weights()``), and so is the current
    state of stateful SimpleRNN layers, so the NumPy model continues from
    where the Keras model is. Raises ValueError for anything outside the
    supported chain (see the module docstring), naming the layer.
    """
    keras, _ = keras_and_tf()

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


def _convert(layer, node, is_last, keras):
    """The NumPy layer for one call (``node``) of a supported Keras layer."""
    entry = KERAS_LAYERS[type(layer).__name__]
    cls = entry.numpy_layer
    dtype = np.dtype(layer.compute_dtype)
    args = dict.fromkeys(cls.OPTIONAL)  # absent arrays are None
    names = [w for w in cls.WEIGHTS if w != "bias" or layer.use_bias]
    args.update(zip(names, (np.asarray(w) for w in layer.get_weights())))
    for key in entry.options:
        value = getattr(layer, key)
        args[key] = _activation(layer, value, keras) if isinstance(cls.OPTIONS[key], str) else bool(value)
    if entry.extra is not None:
        args.update(entry.extra(layer, node, is_last, dtype))
    return cls(name=layer.name, dtype=dtype, **args)


def _activation(layer, function, keras):
    """The rnn_ref name of a Keras activation function; refuse custom ones."""
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


# ---------------------------------------------------------------------------
# The graph: which layers, called in which order, on what
# ---------------------------------------------------------------------------


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
    kind = type(layer).__name__
    # Exact classes only: a subclass may change the forward pass.
    if kind not in KERAS_LAYERS or getattr(keras.layers, kind, None) is not type(layer):
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
