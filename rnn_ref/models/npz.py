"""A NumpyModel as an ``.npz`` of weights and a JSON config.

    >>> rnn_ref.save_npz(keras_model, "model.npz")  # or a NumpyModel
    >>> np_model = rnn_ref.load("model.npz")

An ``.npz`` is read with ``numpy.load(path, allow_pickle=False)``: a
pickled object array is refused, so reading never runs code from the file.

The format
----------
``config``: a 0-d string array (``np.array(json_text)``) holding JSON::

    {"format": "rnn_ref.npz", "version": 1,
     "name": "model",                 # optional
     "input_dtype": "int32",          # optional: the model input is cast to it
     "outputs": null,                 # optional, see below
     "layers": [
       {"class": "Embedding", "name": "embedding", "mask_zero": true},
       {"class": "Bidirectional", "name": "bi", "merge_mode": "concat",
        "layer": {"class": "LSTM", "return_sequences": true}},
       {"class": "GRU", "name": "gru", "reset_after": true},
       {"class": "Dense", "name": "head", "activation": "sigmoid"}
     ]}

Layer keys (all but ``class`` optional, defaults as in Keras; each layer
class of ``rnn_ref.models.model`` lists its own in ``OPTIONS``):

* every layer: ``name`` (default ``layer{i}``), ``dtype`` (the compute
  dtype, default ``"float32"``);
* ``Embedding``: ``mask_zero`` (false);
* ``SimpleRNN``, ``LSTM``, ``GRU``: ``activation`` ("tanh"),
  ``return_sequences``, ``return_state``, ``go_backwards``,
  ``zero_output_for_mask``, ``stateful`` (all false), ``mask_in`` (whether
  the layer receives a mask: true, false, or null to skip that check;
  default null); ``LSTM`` and ``GRU`` also ``recurrent_activation``
  ("sigmoid"), ``GRU`` also ``reset_after`` (true);
* ``Bidirectional``: ``merge_mode`` ("concat", "sum", "mul", "ave" or null;
  default "concat"), ``mask_in`` (as above), and ``layer`` (required): the
  wrapped layer, ``{"class": "SimpleRNN" | "LSTM" | "GRU", ...}`` with that
  class's keys except ``name``, ``dtype`` and those the wrapper sets
  (``go_backwards``, ``zero_output_for_mask``, ``mask_in``); both directions
  have these options;
* ``Masking``: ``mask_value`` (0.0);
* ``Dense``: ``activation`` ("linear").

A model with several inputs (initial states or a mask fed to a recurrent
layer, ``rnn_ref.models.model``) also has the top-level keys ``inputs``, a list
of ``{"name": ..., "dtype": ..., "shape": [null, ...]}`` in the order the model
takes them, and ``data_input``, the index of the one the layers start from;
and a layer fed from them has ``feed``: ``{"initial_state": [input indices],
"mask": input index or null}``.

Unknown keys are refused (a misspelt option must not be ignored).

Weights, one array each, named ``layer{i}_{weight}`` with ``i`` the layer's
position in ``layers`` (letters as in the functions' docstrings; each layer
class lists its own in ``WEIGHTS`` and ``STATE``):

* ``Embedding``: ``embeddings`` (V, E);
* ``SimpleRNN``: ``kernel`` (D, U), ``recurrent_kernel`` (U, U), ``bias`` (U,)
  (absent: no bias, Keras's ``use_bias=False``), ``state`` (B, U) (only for
  a stateful layer, optional: its current state);
* ``LSTM``: ``kernel`` (D, 4U), ``recurrent_kernel`` (U, 4U), ``bias`` (4U,)
  (gate blocks i, f, c, o; bias optional), ``state_h`` and ``state_c``
  (B, U) (stateful only, optional, both or neither);
* ``GRU``: ``kernel`` (D, 3U), ``recurrent_kernel`` (U, 3U), ``bias`` (2, 3U)
  with ``reset_after`` (row 0 input, row 1 recurrent), else (3U,) (gate
  blocks z, r, h; optional), ``state`` (B, U) (stateful only, optional);
* ``Bidirectional``: the wrapped layer's arrays once per direction, named
  ``layer{i}_forward_{weight}`` and ``layer{i}_backward_{weight}``
  (``layer{i}_forward_kernel``, ..., ``layer{i}_backward_state_c``);
* ``Dense``: ``kernel`` (N, K), ``bias`` (K,) (absent: no bias).

Weights are cast to the layer's dtype. The chain is checked when the file is
read: each layer's input features equal the previous layer's output
features, a recurrent layer receives a sequence, and only the last layer may
return several arrays (``return_state``, or a Bidirectional's merge_mode null).

``outputs`` selects what the model returns from the last layer's results
(``(output, *states)`` for a recurrent layer with ``return_state``, ``(forward,
backward, *states)`` for a Bidirectional with merge_mode null): null for the
result as it is, an int index, a list of them, ``{"tuple": [...]}`` or
``{"dict": {"key": ...}}`` (nested as needed).
"""

from __future__ import annotations

import json
import os

import numpy as np

from rnn_ref.layers._checks import float_array
from rnn_ref.layers.activations import get as get_activation
from rnn_ref.models.keras_graph import from_keras
from rnn_ref.models.base import option_default
from rnn_ref.models.model import Feed, ModelInput, NumpyModel
from rnn_ref.models.registry import SPECS

#: The NumPy layer class of each ``class`` a file may name: every layer of the registry.
LAYERS = {name: spec.numpy_layer for name, spec in SPECS.items()}

FORMAT = "rnn_ref.npz"
VERSION = 1

_COMMON = {"class", "name", "dtype", "feed"}  # the keys every layer may have
_TOP = {"format", "version", "name", "input_dtype", "outputs", "layers", "inputs", "data_input"}


def save_npz(model, path) -> None:
    """Save a NumpyModel, or a Keras model (converted with ``from_keras``), as an ``.npz``.

    The file is written exactly at ``path`` (no suffix is added); see the
    module docstring for the format. ``load(path)`` rebuilds the same model.
    """
    if not isinstance(model, NumpyModel):
        model = from_keras(model)
    layers, arrays = [], {}
    for i, layer in enumerate(model.layers):
        kind = type(layer).__name__
        if LAYERS.get(kind) is not type(layer):
            raise ValueError(f"layer {i} ({kind}) cannot be saved; supported: {', '.join(LAYERS)}")
        entry = {"class": kind, "name": layer.name, "dtype": np.dtype(layer.dtype).name,
                 **_options_of(layer, layer.OPTIONS)}
        if hasattr(layer, "DIRECTIONS"):  # a wrapper: the options its layers share
            wrapped = getattr(layer, layer.DIRECTIONS[0])
            entry["layer"] = {"class": type(wrapped).__name__,
                              **_options_of(wrapped, layer.wrapped_options(type(wrapped)))}
        feed = model.feeds[i] if model.feeds else None
        if feed is not None:
            entry["feed"] = {"initial_state": list(feed.initial_state), "mask": feed.mask}
        layers.append(entry)
        for name, value in layer.arrays().items():
            arrays[f"layer{i}_{name}"] = np.asarray(value)
    config = {
        "format": FORMAT,
        "version": VERSION,
        "name": model.name,
        "input_dtype": None if model.input_dtype is None else np.dtype(model.input_dtype).name,
        "outputs": _encode_outputs(model.outputs),
        "layers": layers,
    }
    if model.inputs:
        config["inputs"] = [{"name": m.name, "dtype": np.dtype(m.dtype).name, "shape": list(m.shape)}
                            for m in model.inputs]
        config["data_input"] = model.data_input
    with open(os.fspath(path), "wb") as f:
        np.savez(f, config=np.array(json.dumps(config)), **arrays)


def _options_of(layer, keys):
    """The values of the options ``keys`` of ``layer``, as JSON values."""
    values = {key: getattr(layer, key) for key in keys}
    return {k: v if v is None or isinstance(v, str) else float(v) if isinstance(v, (float, np.floating))
            else bool(v) for k, v in values.items()}


def load_npz(path) -> NumpyModel:
    """Read an ``.npz`` in the format above as a NumpyModel; ValueError says what is wrong in it."""
    arrays = _read_arrays(path)
    config = _read_config(path, arrays.pop("config", None))
    layer_configs = config.get("layers")
    if not isinstance(layer_configs, list) or not layer_configs:
        raise ValueError(f"{path}: config 'layers' must be a non-empty list of layer objects")

    layers = [_read_layer(path, i, cfg, arrays) for i, cfg in enumerate(layer_configs)]
    expected = [f"layer{i}_{w}" for i, layer in enumerate(layers) for w in layer.array_names()]
    extra = sorted(set(arrays) - set(expected))
    if extra:
        raise ValueError(
            f"{path}: arrays {extra} belong to no layer; expected names layer{{i}}_{{weight}}, "
            f"for the layers of this config: {', '.join(expected)}"
        )
    _check_chain(path, layers)
    input_dtype = config.get("input_dtype")
    if input_dtype is not None:
        input_dtype = _dtype(f"{path}: config", "input_dtype", input_dtype)
    inputs, data_input, feeds = _read_inputs(path, config, layer_configs, layers)
    return NumpyModel(
        layers=layers,
        name=str(config.get("name", "model")),
        input_dtype=input_dtype,
        outputs=_decode_outputs(path, config.get("outputs"), layers[-1].output_count()),
        inputs=inputs,
        data_input=data_input,
        feeds=feeds,
    )


def _read_inputs(path, config, layer_configs, layers):
    """The ``inputs``, ``data_input`` and each layer's ``feed`` of a model with several inputs, checked."""
    specs = config.get("inputs")
    fed = [i for i, cfg in enumerate(layer_configs) if cfg.get("feed") is not None]
    if specs is None:
        if fed:
            raise ValueError(f"{path}: layers[{fed[0]}] has a 'feed' but the config has no 'inputs'")
        return (), 0, ()
    if not isinstance(specs, list) or len(specs) < 2 or not all(isinstance(m, dict) for m in specs):
        raise ValueError(f"{path}: 'inputs' must be a list of two or more {{\"name\", \"dtype\", \"shape\"}} "
                         f"objects, got {specs!r}")
    inputs = []
    for k, m in enumerate(specs):
        _refuse_unknown(f"{path}: inputs[{k}]", m, {"name", "dtype", "shape"})
        shape = m.get("shape")
        if not isinstance(shape, list) or not all(d is None or (isinstance(d, int) and d > 0) for d in shape):
            raise ValueError(f"{path}: inputs[{k}] shape must be a list of sizes or nulls, got {shape!r}")
        inputs.append(ModelInput(str(m.get("name", f"input{k}")), _dtype(f"{path}: inputs[{k}]", "dtype",
                                                                       m.get("dtype")), tuple(shape)))
    data_input = config.get("data_input", 0)
    if not isinstance(data_input, int) or isinstance(data_input, bool) or not 0 <= data_input < len(inputs):
        raise ValueError(f"{path}: data_input must be an index into the {len(inputs)} inputs, got {data_input!r}")

    def index(where, k):
        if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k < len(inputs) or k == data_input:
            raise ValueError(f"{where}: {k!r} is not the index of an input other than data_input "
                             f"{data_input} (inputs 0 to {len(inputs) - 1})")
        return k

    feeds = []
    for i, (cfg, layer) in enumerate(zip(layer_configs, layers)):
        feed = cfg.get("feed")
        if feed is None:
            feeds.append(None)
            continue
        where = f"{path}: layers[{i}] ({type(layer).__name__} {layer.name!r}) feed"
        if not isinstance(feed, dict) or set(feed) - {"initial_state", "mask"}:
            raise ValueError(f"{where} must be {{\"initial_state\": [...], \"mask\": k or null}}, got {feed!r}")
        states = feed.get("initial_state") or []
        count = len(layer.forward.STATE) * 2 if hasattr(layer, "DIRECTIONS") else len(getattr(layer, "STATE", ()))
        if not layer.NEEDS_SEQUENCE or (states and len(states) != count):
            raise ValueError(f"{where}: takes {count} initial states (a recurrent layer's), got {states!r}")
        mask = feed.get("mask")
        feeds.append(Feed(tuple(index(where, k) for k in states), None if mask is None else index(where, mask)))
    return tuple(inputs), data_input, tuple(feeds)


def _read_arrays(path):
    with np.load(path, allow_pickle=False) as data:
        arrays = {}
        for key in data.files:
            try:
                arrays[key] = data[key]
            except ValueError as e:
                if "allow_pickle" in str(e):
                    raise ValueError(
                        f"{path}: array {key!r} is a pickled object array; rnn_ref loads with "
                        "allow_pickle=False because unpickling can run code. Store numbers as numeric "
                        "arrays and the config as a string array (np.array(json_text))"
                    ) from None
                raise
    return arrays


def _read_config(path, arr):
    if arr is None:
        raise ValueError(f"{path}: no 'config' array; an rnn_ref .npz holds its layer list as JSON in 'config'")
    if arr.dtype.kind not in "US" or arr.size != 1:
        raise ValueError(f"{path}: 'config' must be one JSON string (np.array(json_text)), got {arr.dtype} {arr.shape}")
    text = arr.reshape(()).item()
    text = text.decode() if isinstance(text, bytes) else text
    try:
        config = json.loads(text)
    except ValueError as e:
        raise ValueError(f"{path}: 'config' is not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: 'config' must be a JSON object")
    unknown = set(config) - _TOP
    if unknown:
        raise ValueError(f"{path}: config has unknown keys {sorted(unknown)}; known: {sorted(_TOP)}")
    if config.get("format") != FORMAT or config.get("version") != VERSION:
        raise ValueError(
            f"{path}: config format {config.get('format')!r} version {config.get('version')!r}; "
            f"this rnn_ref reads format {FORMAT!r} version {VERSION}"
        )
    return config


def _read_layer(path, i, cfg, arrays):
    """Layer ``i`` of the config as a NumPy layer: its options checked, its arrays cast to its dtype."""
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: layers[{i}] must be a JSON object, got {cfg!r}")
    kind = cfg.get("class")
    if not isinstance(kind, str) or kind not in LAYERS:
        raise ValueError(
            f"{path}: layers[{i}] has class {kind!r}, which is not supported; supported: {', '.join(LAYERS)}"
        )
    cls = LAYERS[kind]
    wrapper = hasattr(cls, "DIRECTIONS")
    known = _COMMON | set(cls.OPTIONS) | ({"layer"} if wrapper else set())  # "layer": the wrapped layer's config
    _refuse_unknown(f"{path}: layers[{i}] ({kind})", cfg, known)
    name = cfg.get("name", f"layer{i}")
    where = f"{path}: layers[{i}] ({kind} {name!r})"
    dtype = _float_dtype(where, "dtype", cfg.get("dtype", "float32"))
    args = _layer_args(where, cls, cls.OPTIONS, cfg, arrays, f"layer{i}_", dtype)
    if wrapper:
        args.update(_wrapped_layers(where, cls, name, cfg.get("layer"), arrays, f"layer{i}_", dtype))
    try:
        return cls(name=name, dtype=dtype, **args)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def _wrapped_layers(where, cls, name, cfg, arrays, prefix, dtype):
    """The layers of a wrapper (one per direction), from its ``layer`` config and arrays."""
    names = [c.__name__ for c in cls.WRAPS]
    kind = cfg.get("class") if isinstance(cfg, dict) else None
    if kind not in names:
        raise ValueError(f"{where}: 'layer' must be the wrapped layer's config, {{\"class\": ...}} with class "
                         f"one of {', '.join(names)}; got {cfg!r}")
    inner = LAYERS[kind]
    options = {k: inner.OPTIONS[k] for k in cls.wrapped_options(inner)}
    _refuse_unknown(f"{where}: layer ({kind})", cfg, {"class"} | set(options))
    layers = {}
    for d in cls.DIRECTIONS:
        args = _layer_args(f"{where}: {d} layer", inner, options, cfg, arrays, f"{prefix}{d}_", dtype)
        layers[d] = inner(name=f"{d}_{name}", dtype=dtype, **args)
    return layers


def _refuse_unknown(where, cfg, known):
    unknown = set(cfg) - known
    if unknown:
        raise ValueError(f"{where} has unknown keys {sorted(unknown)}; known: {sorted(known)}")


def _layer_args(where, cls, options, cfg, arrays, prefix, dtype):
    """The options (checked) and the arrays named ``{prefix}{weight}`` (cast to ``dtype``) of a ``cls``."""
    args = dict.fromkeys(cls.OPTIONAL)  # absent arrays are None
    for key, spec in options.items():
        args[key] = _option(where, key, spec, cfg.get(key, option_default(spec)))
    for w in cls.WEIGHTS + cls.STATE:
        key = f"{prefix}{w}"
        if key in arrays:
            try:
                args[w] = float_array(key, arrays[key], dtype)
            except TypeError as e:
                raise ValueError(f"{where}: {e}") from None
        elif w not in cls.OPTIONAL:
            raise ValueError(f"{where}: missing the weight array {key!r}")
    if any(args[w] is not None for w in cls.STATE) and not args.get("stateful"):
        raise ValueError(f"{where}: has a state array but is not stateful")
    return args


def _option(where, key, spec, value):
    """An option's value, checked against the kind its declaration says (``rnn_ref.models.base``):
    an activation name, a flag, a flag that may be null, or one of a tuple of values."""
    if isinstance(spec, tuple):
        if value not in spec or isinstance(value, bool):
            raise ValueError(f"{where}: {key} must be one of {', '.join(json.dumps(v) for v in spec)}, got {value!r}")
    elif isinstance(spec, str):
        if not isinstance(value, str):
            raise ValueError(f"{where}: {key} must be a Keras activation name, got {value!r}")
        try:
            get_activation(value)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
    elif isinstance(spec, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: {key} must be a number, got {value!r}")
        value = float(value)
    elif spec is None:
        if value is not None and not isinstance(value, bool):
            raise ValueError(f"{where}: {key} must be true, false or null, got {value!r}")
    elif not isinstance(value, bool):
        raise ValueError(f"{where}: {key} must be true or false, got {value!r}")
    return value


def _check_chain(path, layers):
    """Shapes inside each layer and between layers: refuse what could only run by accident."""
    features, sequence = None, None  # what flows out of the previous layer; None: not known
    flattened_by = None  # the layer that turned the sequence into one vector per sample
    for i, layer in enumerate(layers):
        where = f"{path}: layers[{i}] ({type(layer).__name__} {layer.name!r})"
        previous = layers[i - 1] if i else None
        if previous is not None and previous.output_count() > 1:
            if previous.return_state:
                raise ValueError(
                    f"{where}: follows a {type(previous).__name__} with return_state, whose (output, state) "
                    "pair no layer can take"
                )
            raise ValueError(f"{where}: follows a Bidirectional with merge_mode null, whose (forward, backward) "
                             "pair no layer can take")
        try:
            out = layer.check_input(features, sequence)
            if layer.NEEDS_SEQUENCE and sequence is False:
                raise ValueError(
                    f"needs a sequence (B, T, D), but layers[{i - 1}] outputs one vector per sample "
                    f"(a {type(flattened_by).__name__} without return_sequences)"
                )
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        if sequence is not False and out[1] is False:
            flattened_by = layer
        features, sequence = out


def _float_dtype(where, key, name):
    dt = _dtype(where, key, name)
    if dt.kind != "f":
        raise ValueError(f"{where}: {key} must be a float dtype name such as 'float32', got {name!r}")
    return dt


def _dtype(where, key, name):
    try:
        dt = np.dtype(name) if isinstance(name, str) else None
    except TypeError:
        dt = None
    if dt is None or dt.kind not in "biuf":
        raise ValueError(f"{where}: {key} must be a numeric dtype name such as 'float32', got {name!r}")
    return dt


def _encode_outputs(spec):
    if spec is None or isinstance(spec, int):
        return spec
    if isinstance(spec, tuple):
        return {"tuple": [_encode_outputs(s) for s in spec]}
    if isinstance(spec, list):
        return [_encode_outputs(s) for s in spec]
    if isinstance(spec, dict):
        return {"dict": {str(k): _encode_outputs(v) for k, v in spec.items()}}
    raise ValueError(f"cannot save the output structure {spec!r}")


def _decode_outputs(path, spec, count):
    """The ``outputs`` of the config; indices must be below ``count``, the last layer's number of outputs."""
    if spec is None:
        return None
    if isinstance(spec, bool) or not isinstance(spec, (int, list, dict)):
        raise ValueError(f"{path}: outputs must be null, an int, a list, {{'tuple': [...]}} or {{'dict': {{...}}}}, got {spec!r}")
    if isinstance(spec, int):
        if not 0 <= spec < count:
            raise ValueError(f"{path}: outputs index {spec}: the last layer returns {count} "
                             f"array{'s' if count > 1 else ''} (indices 0 to {count - 1})")
        return spec
    if isinstance(spec, list):
        return [_decode_outputs(path, s, count) for s in spec]
    if set(spec) == {"tuple"} and isinstance(spec["tuple"], list):
        return tuple(_decode_outputs(path, s, count) for s in spec["tuple"])
    if set(spec) == {"dict"} and isinstance(spec["dict"], dict):
        return {k: _decode_outputs(path, v, count) for k, v in spec["dict"].items()}
    raise ValueError(f"{path}: outputs object must be {{'tuple': [...]}} or {{'dict': {{...}}}}, got {spec!r}")
