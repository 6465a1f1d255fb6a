"""Reading a Keras model into a ``NumpyModel``: its graph, its layers' options and weights.

    >>> np_model = rnn_ref.from_keras(keras_model)
    >>> np_model(x)          # equals keras_model.predict(x)

What is supported, and nothing else (anything else is refused with a
ValueError that names the layer, never skipped):

* ``Sequential`` and functional models whose layers form one chain from an
  ``Input`` to the output: each layer takes the previous layer's output;
  other ``Input``s may feed a recurrent layer or a Bidirectional as its
  ``initial_state`` or as an explicit boolean ``mask`` (streaming models);
* layers ``InputLayer`` and those in ``KERAS_LAYERS`` (``Embedding``,
  ``SimpleRNN``, ``Dense``, ``LSTM``, ``GRU``, ``Bidirectional`` around a
  SimpleRNN, LSTM or GRU), exact classes, with all the options that change
  the forward pass. Accepted and not kept, because Keras gives the same
  numbers at inference with any value: ``dropout``, ``recurrent_dropout``,
  ``implementation``, ``unroll`` (but see the warning below), ``use_cudnn``,
  initializers, regularizers and constraints.

``KERAS_LAYERS`` holds one entry per layer of the registry
(``rnn_ref.models.registry.SPECS``): the NumPy layer it becomes, the options read from it and what else is read (for a recurrent
layer: its current states and whether Keras feeds it a mask; for a
Bidirectional: its two wrapped layers, forward then backward). The weights
come from ``layer.get_weights()``, named in order by the NumPy layer's
``WEIGHTS``. Supporting another layer class means adding its NumPy layer
(``rnn_ref.models.recurrent`` or ``feedforward``) and its spec in the registry.

Masks: for each recurrent layer, the walker reads from the Keras graph
whether Keras feeds it a mask, and the NumPy model checks its own
propagation against that at every call. Supported: the masks Keras
propagates from ``Embedding(mask_zero=True)`` and ``Masking``, and an
explicit mask that is a model input; any other explicit mask is refused.
A layer called with ``initial_state`` gets no propagated mask, as in Keras
(``rnn_ref.models.model``: Keras fills the mask in only for a call with one
tensor argument).

With ``unroll=True``, ``go_backwards``, ``zero_output_for_mask``,
``return_sequences`` and a mask (so also in a masked ``Bidirectional`` with
``return_sequences`` and ``unroll=True``: its backward layer is such a
layer), Keras's TensorFlow backend zeroes the wrong steps; the NumPy model
follows ``unroll=False`` and ``from_keras`` warns.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from rnn_ref._tf import keras_and_tf
from rnn_ref.layers.activations import ACTIVATIONS
from rnn_ref.models.model import Bidirectional, Feed, ModelInput, NumpyModel
from rnn_ref.models.recurrent import Recurrent
from rnn_ref.models.registry import SPECS


@dataclass(frozen=True)
class KerasLayer:
    """How one Keras layer class becomes a NumPy layer.

    numpy_layer : the NumPy layer class. Its ``WEIGHTS`` name the arrays of
        ``layer.get_weights()`` in order (``bias`` only when the Keras layer
        has ``use_bias``).
    options : the Keras attributes copied to the NumPy layer, as the NumPy
        layer's ``OPTIONS`` defaults say (``rnn_ref.models.base``): an
        activation as its Keras name, a flag as a bool, a choice as it is.
    extra : ``extra(layer, node, is_last, keras)`` returns further
        arguments of the NumPy layer, read from the layer or its place in
        the graph (``node`` is None for a layer wrapped in a Bidirectional);
        None if there are none.
    """

    numpy_layer: type
    options: tuple
    extra: Callable | None = None


def _recurrent_extra(layer, node, is_last, keras):
    """A recurrent layer's current states (B, U) each if stateful, whether Keras feeds it
    a mask, and ``return_state`` only where a later layer could see it."""
    cls = KERAS_LAYERS[type(layer).__name__].numpy_layer
    mask_in = None if node is None else node.arguments.kwargs.get("mask") is not None
    states = {}
    if layer.stateful and layer.states is not None:
        dtype = np.dtype(layer.compute_dtype)
        states = {k: np.asarray(v.numpy(), dtype=dtype) for k, v in zip(cls.STATE, layer.states)}  # (B, U)
    if mask_in and layer.go_backwards and layer.zero_output_for_mask and layer.return_sequences:
        _warn_unroll(layer, layer)
    return {
        # A state output that no later layer can reach changes nothing.
        "return_state": bool(layer.return_state) and is_last,
        "mask_in": mask_in,
        **states,
    }


def _bidirectional_extra(layer, node, is_last, keras):
    """The two wrapped layers, forward then backward, and whether Keras feeds the wrapper a mask."""
    where = f"layer {layer.name!r} (Bidirectional)"
    wrapped = (layer.forward_layer, layer.backward_layer)
    for sub in wrapped:
        if type(sub).__name__ not in WRAPPED:
            raise ValueError(f"{where} wraps a layer of class {type(sub).__name__}; rnn_ref supports "
                             f"Bidirectional around {', '.join(WRAPPED)}")
        _check_supported(sub, keras)
    if layer.forward_layer.go_backwards:
        raise ValueError(f"{where}: its forward layer has go_backwards=True (a backward_layer was given with "
                         "go_backwards=False); rnn_ref supports the forward layer going forwards")
    if layer.merge_mode is None and not is_last:
        raise ValueError(f"{where}: merge_mode=None returns the pair (forward, backward), which only the last "
                         "layer of the chain may return; use a merge mode or make it the last layer")
    if np.dtype(layer.compute_dtype) != np.dtype(layer.forward_layer.compute_dtype):
        raise ValueError(f"{where} computes in {layer.compute_dtype}, its wrapped layer in "
                         f"{layer.forward_layer.compute_dtype}; rnn_ref supports one dtype for both")
    mask_in = node.arguments.kwargs.get("mask") is not None
    if mask_in and layer.return_sequences:  # the backward layer: go_backwards, zero_output_for_mask forced
        _warn_unroll(layer, layer.backward_layer)
    forward, backward = (_convert(sub, None, is_last, keras) for sub in wrapped)
    return {"forward": forward, "backward": backward, "mask_in": mask_in}


def _warn_unroll(layer, recurrent):
    """Warn when Keras's unrolled loop zeroes other steps than the loop the NumPy model follows."""
    if recurrent.unroll:
        warnings.warn(
            f"layer {layer.name!r}: with unroll=True, go_backwards, zero_output_for_mask, "
            "return_sequences and a mask, Keras (TF backend) zeroes the outputs of the steps masked "
            "in input order instead of processing order, unlike unroll=False; this NumPy model "
            "follows unroll=False, so its outputs differ from the Keras model here",
            stacklevel=5,  # the caller of from_keras
        )


def _attributes(cls):
    """The options of NumPy layer ``cls`` read as attributes of the Keras layer: all of its
    ``OPTIONS`` (Keras's names) but ``mask_in``, which the graph says."""
    return tuple(k for k in cls.OPTIONS if k != "mask_in")


def _extra(cls):
    """What else is read for a NumPy layer class: a recurrent layer's states and mask, a wrapper's layers."""
    if issubclass(cls, Recurrent):
        return _recurrent_extra
    return _bidirectional_extra if hasattr(cls, "DIRECTIONS") else None


#: The Keras layer classes ``from_keras`` converts, by class name: every layer of the registry.
KERAS_LAYERS = {name: KerasLayer(spec.numpy_layer, options=_attributes(spec.numpy_layer),
                                 extra=_extra(spec.numpy_layer))
                for name, spec in SPECS.items()}

#: The Keras classes a Bidirectional may wrap.
WRAPPED = tuple(cls.__name__ for cls in Bidirectional.WRAPS)

#: Every Keras layer class a model may hold.
SUPPORTED = ("InputLayer", *KERAS_LAYERS)


def from_keras(model) -> NumpyModel:
    """Rebuild a built Keras ``Sequential`` or functional model as a ``NumpyModel``.

    The weights are copied (``layer.get_weights()``), and so are the current
    states of stateful recurrent layers, so the NumPy model continues from
    where the Keras model is. Raises ValueError for anything outside the
    supported chain (see the module docstring), naming the layer.
    """
    keras, _ = keras_and_tf()

    graph = _graph_of(model, keras)
    model_inputs = list(graph.inputs)
    for t in model_inputs:
        if getattr(t, "sparse", False) or getattr(t, "ragged", False):
            raise ValueError(f"model {model.name!r}: sparse or ragged inputs are not supported")
    chain, outputs = _chain(graph, model_inputs, keras)
    data = chain[0][2]

    layers, feeds = [], []
    for layer, node, _, is_last in chain:
        if getattr(layer, "stateful", False) and sum(entry[0] is layer for entry in chain) > 1:
            raise ValueError(f"stateful layer {layer.name!r} is used more than once; not supported")
        layers.append(_convert(layer, node, is_last, keras))  # one per call of the layer
        feeds.append(_feed(layer, node, model_inputs, keras))
    several = len(model_inputs) > 1
    return NumpyModel(
        layers=layers,
        name=model.name,
        input_dtype=np.dtype(data.dtype),
        outputs=outputs,
        inputs=tuple(ModelInput(_input_name(t), np.dtype(t.dtype), tuple(t.shape)) for t in model_inputs)
        if several else (),
        data_input=next(i for i, t in enumerate(model_inputs) if t is data),
        feeds=tuple(feeds) if several else (),
    )


def _input_name(tensor) -> str:
    """The name Keras's ``predict`` knows an input by: its InputLayer's."""
    return tensor._keras_history.operation.name


def _feed(layer, node, model_inputs, keras):
    """The model inputs a call (``node``) of a recurrent layer or a Bidirectional takes
    as ``initial_state`` or as its explicit mask; None if it takes none."""
    kwargs = node.arguments.kwargs
    states = kwargs.get("initial_state")
    states = [] if states is None else keras.tree.flatten(states)
    mask = kwargs.get("mask")
    mask = mask if any(mask is t for t in model_inputs) else None
    if not states and mask is None:
        return None
    if not isinstance(layer, tuple(getattr(keras.layers, c) for c in (*WRAPPED, "Bidirectional"))):
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) takes a model input besides its data; "
                         "only a recurrent layer's initial_state and mask may")

    def index(t, what):
        for i, m in enumerate(model_inputs):
            if t is m:
                return i
        op = getattr(getattr(t, "_keras_history", None), "operation", None)
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}): its {what} comes from "
                         f"{'layer ' + repr(op.name) if op is not None else 'a computed tensor'}; rnn_ref "
                         "supports initial states and masks that are model inputs (keras.Input)")

    return Feed(initial_state=tuple(index(t, "initial_state") for t in states),
                mask=None if mask is None else index(mask, "mask"))


def _convert(layer, node, is_last, keras):
    """The NumPy layer for one call (``node``) of a supported Keras layer."""
    entry = KERAS_LAYERS[type(layer).__name__]
    cls = entry.numpy_layer
    args = dict.fromkeys(cls.OPTIONAL)  # absent arrays are None
    if cls.WEIGHTS:
        names = [w for w in cls.WEIGHTS if w != "bias" or layer.use_bias]
        weights = layer.get_weights()
        if len(weights) != len(names):
            raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) has {len(weights)} weights; "
                             f"expected {len(names)}: {', '.join(names)}")
        args.update(zip(names, (np.asarray(w) for w in weights)))
    for key in entry.options:
        value, default = getattr(layer, key), cls.OPTIONS[key]
        if isinstance(default, str):
            args[key] = _activation(layer, value, keras)
        elif isinstance(default, float):
            args[key] = float(value)
        elif isinstance(default, tuple):
            args[key] = value  # a choice: Keras has checked it
        else:
            args[key] = bool(value)
    if entry.extra is not None:
        args.update(entry.extra(layer, node, is_last, keras))
    return cls(name=layer.name, dtype=np.dtype(layer.compute_dtype), **args)


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
    return graph


def _node_of(tensor):
    op, node_index, tensor_index = tensor._keras_history
    return op, op._inbound_nodes[node_index], tensor_index


def _chain(graph, model_inputs, keras):
    """Walk from the output back to an input; return [(layer, node, data, is_last)] (``data``
    the tensor the layer was called on) and the output spec."""
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
        data = _data_input(layer, node, model_inputs, keras)
        chain.append((layer, node, data, not chain))
        if any(data is t for t in model_inputs):
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


def _data_input(layer, node, model_inputs, keras):
    """The one tensor ``layer`` was called on; refuse anything more than ``initial_state`` and an
    explicit mask (checked by ``_feed``: model inputs) and the masks Keras propagates."""
    kind = type(layer).__name__
    args, kwargs = node.arguments.args, node.arguments.kwargs
    if len(args) != 1 or not isinstance(args[0], keras.KerasTensor):
        raise ValueError(f"layer {layer.name!r} ({kind}) must be called on one tensor, got {len(args)} arguments")
    data = args[0]
    for key, value in kwargs.items():
        if key == "mask":
            if value is not None and not _is_propagated_mask(value, data) and \
                    not any(value is t for t in model_inputs):
                raise ValueError(
                    f"layer {layer.name!r} ({kind}) was given an explicit mask computed in the model; "
                    "supported: the masks Keras propagates from Embedding(mask_zero=True) and Masking, "
                    "and a mask that is a model input (keras.Input)"
                )
        elif key == "initial_state":
            continue  # checked by _feed
        elif key == "training":
            if value:
                raise ValueError(f"layer {layer.name!r} ({kind}) was called with training=True")
        elif value is not None:
            raise ValueError(f"layer {layer.name!r} ({kind}) was called with {key}=...; not supported")
    return data


def _is_propagated_mask(mask, data) -> bool:
    """True for the mask Keras itself propagates from Embedding(mask_zero=True) or Masking:
    the data's own mask, or, in a model loaded from a file, where Keras records it as
    recomputed ops: ``not_equal(ids, 0)`` on the ids of an Embedding with mask_zero
    upstream of ``data``, or ``any(not_equal(x, mask_value), axis=-1)`` on the input of a
    Masking upstream of ``data``."""
    propagated = getattr(data, "_keras_mask", None)
    if propagated is None:
        return False
    if mask is propagated:
        return True
    op = _op_of(mask)
    if type(op).__name__ == "Any":
        if list(getattr(op, "axis", None) or ()) != [-1] or getattr(op, "keepdims", True):
            return False
        (inner,) = op._inbound_nodes[0].arguments.args or (None,)
        compared = _not_equal_args(inner)
        return compared is not None and any(compared[0] is t and compared[1] == v
                                            for t, v in _masking_inputs_upstream(data))
    compared = _not_equal_args(mask)
    return compared is not None and compared[1] == 0 and any(compared[0] is t for t in _embedding_ids_upstream(data))


def _op_of(tensor):
    op = getattr(getattr(tensor, "_keras_history", None), "operation", None)
    return op if getattr(op, "_inbound_nodes", None) else None


def _not_equal_args(tensor):
    """``(x, value)`` if ``tensor`` is ``not_equal(x, value)`` with a number ``value``, else None."""
    op = _op_of(tensor)
    if type(op).__name__ != "NotEqual":
        return None
    args = op._inbound_nodes[0].arguments.args
    if len(args) != 2 or isinstance(args[1], bool) or not isinstance(args[1], (int, float)):
        return None
    return args[0], args[1]


def _embedding_ids_upstream(tensor):
    """The id tensors of the Embedding(mask_zero=True) layers that ``tensor`` derives from."""
    return [t for kind, t, _ in _upstream_mask_sources(tensor) if kind == "Embedding"]


def _masking_inputs_upstream(tensor):
    """``(input, mask_value)`` of the Masking layers that ``tensor`` derives from."""
    return [(t, value) for kind, t, value in _upstream_mask_sources(tensor) if kind == "Masking"]


def _upstream_mask_sources(tensor):
    """``(kind, input tensor, mask value)`` of the Embedding(mask_zero=True) and Masking layers
    that ``tensor`` derives from."""
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
            found.extend(("Embedding", t, 0) for t in inputs)
        elif type(layer).__name__ == "Masking":
            found.extend(("Masking", t, float(layer.mask_value)) for t in inputs)
        todo.extend(a for a in inputs if hasattr(a, "_keras_history"))
    return found
