"""Models from files: a saved ``.keras`` model, or an ``.npz`` of weights and a config.

    >>> np_model = rnn_ref.load("model.keras")   # or "model.npz"
    >>> rnn_ref.save_npz(keras_model, "model.npz")  # or a NumpyModel

Loading never runs code from the file. A ``.keras`` file is read with
``keras.saving.load_model(path, safe_mode=True, compile=False)`` after its
``config.json`` has been checked: a ``Lambda`` layer or any custom object
(a class or function that is not part of Keras) is refused, because
rebuilding it means running Python code. The model is then converted with
``rnn_ref.from_keras``, which refuses layers it does not support.
An ``.npz`` is read with ``numpy.load(path, allow_pickle=False)``: a
pickled object array is refused.

The ``.npz`` format
-------------------
The file type is recognised from the content, not the name.

``config``: a 0-d string array (``np.array(json_text)``) holding JSON::

    {"format": "rnn_ref.npz", "version": 1,
     "name": "model",                 # optional
     "input_dtype": "int32",          # optional: the model input is cast to it
     "outputs": null,                 # optional, see below
     "layers": [
       {"class": "Embedding", "name": "embedding", "mask_zero": true},
       {"class": "SimpleRNN", "name": "rnn", "activation": "tanh", "return_sequences": false},
       {"class": "Dense", "name": "head", "activation": "sigmoid"}
     ]}

Layer keys (all but ``class`` optional, defaults as in Keras):

* every layer: ``name`` (default ``layer{i}``), ``dtype`` (the compute
  dtype, default ``"float32"``);
* ``Embedding``: ``mask_zero`` (false);
* ``SimpleRNN``: ``activation`` ("tanh"), ``return_sequences``,
  ``return_state``, ``go_backwards``, ``zero_output_for_mask``, ``stateful``
  (all false), ``mask_in`` (whether the layer receives a mask: true, false,
  or null to skip that check; default null);
* ``Dense``: ``activation`` ("linear").

Unknown keys are refused (a misspelt option must not be ignored).

Weights, one array each, named ``layer{i}_{weight}`` with ``i`` the layer's
position in ``layers`` (letters as in the functions' docstrings):

* ``Embedding``: ``embeddings`` (V, E);
* ``SimpleRNN``: ``kernel`` (D, U), ``recurrent_kernel`` (U, U), ``bias`` (U,)
  (absent: no bias, Keras's ``use_bias=False``), ``state`` (B, U) (only for
  a stateful layer, optional: its current state);
* ``Dense``: ``kernel`` (N, K), ``bias`` (K,) (absent: no bias).

Weights are cast to the layer's dtype. The chain is checked when the file is
read: each layer's input features equal the previous layer's output
features, a SimpleRNN receives a sequence, and only the last layer may
return its state.

``outputs`` selects what the model returns from the last layer's results
(``(output, final_state)`` for a SimpleRNN with ``return_state``): null for
the result as it is, an int index, a list of them, ``{"tuple": [...]}`` or
``{"dict": {"key": ...}}`` (nested as needed).
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from . import _checks
from .activations import get as get_activation

FORMAT = "rnn_ref.npz"
VERSION = 1

#: Options of each layer class in the ``.npz`` config, with their defaults.
OPTIONS = {
    "Embedding": {"mask_zero": False},
    "SimpleRNN": {
        "activation": "tanh", "return_sequences": False, "return_state": False, "go_backwards": False,
        "zero_output_for_mask": False, "stateful": False, "mask_in": None,
    },
    "Dense": {"activation": "linear"},
}
#: Weight arrays of each layer class: (required, optional).
WEIGHTS = {
    "Embedding": (("embeddings",), ()),
    "SimpleRNN": (("kernel", "recurrent_kernel"), ("bias", "state")),
    "Dense": (("kernel",), ("bias",)),
}
_COMMON = {"class", "name", "dtype"}


def load(path):
    """Load a model saved as ``.keras`` (Keras, safe mode) or ``.npz`` (``save_npz``) as a NumpyModel.

    Raises FileNotFoundError for a missing file, ValueError for a file that is
    neither format, holds code (a Lambda layer, a custom object, a pickle),
    or describes a model rnn_ref does not support, naming what and why.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"\x89HDF"):
        raise ValueError(
            f"{path}: a legacy HDF5 (.h5) Keras file; rnn_ref reads only the safe .keras format "
            "(load it in Keras and save it with model.save('model.keras')) or an .npz"
        )
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: neither a .keras model nor an .npz of weights (not a zip archive)")
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
    if "config.json" in names:
        return _load_keras(path)
    if "config.npy" in names:
        return _load_npz(path)
    if names and all(n.endswith(".npy") for n in names):
        raise ValueError(
            f"{path}: an .npz without a 'config' array; an rnn_ref .npz holds its layer list as JSON "
            "in 'config' (see rnn_ref.load for the format)"
        )
    raise ValueError(
        f"{path}: a zip archive with neither config.json (a .keras model) nor a 'config' array "
        f"(an rnn_ref .npz); it holds {sorted(names)[:10]}"
    )


# ---------------------------------------------------------------------------
# .keras
# ---------------------------------------------------------------------------


def _load_keras(path):
    with zipfile.ZipFile(path) as z:
        try:
            config = json.loads(z.read("config.json"))
        except ValueError as e:
            raise ValueError(f"{path}: config.json is not valid JSON ({e})") from None
    _refuse_code(path, config)

    import keras  # noqa: PLC0415  (only .keras files need Keras)

    from .model import from_keras  # noqa: PLC0415

    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as e:  # Keras raises many types; say which file and why
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: Keras could not load this model in safe mode: {reason}") from e
    return from_keras(model)


def _refuse_code(path, config):
    """Refuse a Keras config that needs Python code to rebuild: Lambda layers
    and objects from outside Keras (custom layers, activations, ...)."""

    def check(node, layer):
        kind = node.get("class_name")
        if kind == "Lambda":
            raise ValueError(
                f"{path}: layer {layer!r} is a Lambda layer: it holds Python code, and rnn_ref never "
                "runs code from a file. Rebuild the model without it; rnn_ref supports Embedding, "
                "SimpleRNN and Dense layers"
            )
        if kind is not None and "module" in node and not _is_keras(node["module"]):
            if kind == "function":
                what = f"the Python function {node.get('config')!r}"
            else:
                what = f"the custom class {node.get('registered_name') or kind!r}"
            raise ValueError(
                f"{path}: layer {layer!r} uses {what}, which is not part of Keras: rebuilding it would "
                "run Python code that is not in the file, which rnn_ref refuses. Use built-in Keras "
                "layers and activation names (rnn_ref supports Embedding, SimpleRNN and Dense)"
            )

    def walk(node, layer):
        if isinstance(node, dict):
            check(node, layer)
            for key, value in node.items():
                if key == "layers" and isinstance(value, list):
                    for item in value:
                        walk(item, _layer_name(item))
                else:
                    walk(value, layer)
        elif isinstance(node, list):
            for value in node:
                walk(value, layer)

    walk(config, config.get("config", {}).get("name", "?") if isinstance(config, dict) else "?")


def _is_keras(module) -> bool:
    return isinstance(module, str) and (module == "keras" or module.startswith("keras."))


def _layer_name(node) -> str:
    if not isinstance(node, dict):
        return "?"
    cfg = node.get("config")
    return node.get("name") or (cfg.get("name") if isinstance(cfg, dict) else None) or "?"


# ---------------------------------------------------------------------------
# .npz
# ---------------------------------------------------------------------------


def save_npz(model, path) -> None:
    """Save a NumpyModel, or a Keras model (converted with ``from_keras``), as an ``.npz``.

    The file is written exactly at ``path`` (no suffix is added); see the
    module docstring for the format. ``load(path)`` rebuilds the same model.
    """
    from .model import Dense, Embedding, NumpyModel, SimpleRNN, from_keras  # noqa: PLC0415

    if not isinstance(model, NumpyModel):
        model = from_keras(model)
    layers, arrays = [], {}
    for i, layer in enumerate(model.layers):
        kind = {Embedding: "Embedding", SimpleRNN: "SimpleRNN", Dense: "Dense"}.get(type(layer))
        if kind is None:
            raise ValueError(f"layer {i} ({type(layer).__name__}) cannot be saved; supported: {', '.join(OPTIONS)}")
        entry = {"class": kind, "name": layer.name, "dtype": np.dtype(layer.dtype).name}
        for key in OPTIONS[kind]:
            value = getattr(layer, key)
            entry[key] = value if value is None or isinstance(value, str) else bool(value)
        layers.append(entry)
        for name, value in layer.weights().items():
            arrays[f"layer{i}_{name}"] = np.asarray(value)
        if kind == "SimpleRNN" and layer.stateful and layer.state is not None:
            arrays[f"layer{i}_state"] = np.asarray(layer.state)
    config = {
        "format": FORMAT,
        "version": VERSION,
        "name": model.name,
        "input_dtype": None if model.input_dtype is None else np.dtype(model.input_dtype).name,
        "outputs": _encode_outputs(model.outputs),
        "layers": layers,
    }
    with open(os.fspath(path), "wb") as f:
        np.savez(f, config=np.array(json.dumps(config)), **arrays)


def _load_npz(path):
    from .model import Dense, Embedding, NumpyModel, SimpleRNN  # noqa: PLC0415

    classes = {"Embedding": Embedding, "SimpleRNN": SimpleRNN, "Dense": Dense}
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
    config = _read_config(path, arrays.pop("config", None))
    layer_configs = config.get("layers")
    if not isinstance(layer_configs, list) or not layer_configs:
        raise ValueError(f"{path}: config 'layers' must be a non-empty list of layer objects")

    layers, used = [], set()
    for i, cfg in enumerate(layer_configs):
        if not isinstance(cfg, dict):
            raise ValueError(f"{path}: layers[{i}] must be a JSON object, got {cfg!r}")
        kind = cfg.get("class")
        if kind not in OPTIONS:
            raise ValueError(
                f"{path}: layers[{i}] has class {kind!r}, which is not supported; supported: {', '.join(OPTIONS)}"
            )
        unknown = set(cfg) - _COMMON - set(OPTIONS[kind])
        if unknown:
            raise ValueError(
                f"{path}: layers[{i}] ({kind}) has unknown keys {sorted(unknown)}; "
                f"known: {sorted(_COMMON | set(OPTIONS[kind]))}"
            )
        name = cfg.get("name", f"layer{i}")
        where = f"{path}: layers[{i}] ({kind} {name!r})"
        dtype = _float_dtype(where, "dtype", cfg.get("dtype", "float32"))
        options = {}
        for key, default in OPTIONS[kind].items():
            value = cfg.get(key, default)
            if key == "activation":
                if not isinstance(value, str):
                    raise ValueError(f"{where}: activation must be a Keras activation name, got {value!r}")
                try:
                    get_activation(value)
                except ValueError as e:
                    raise ValueError(f"{where}: {e}") from None
            elif key == "mask_in":
                if value is not None and not isinstance(value, bool):
                    raise ValueError(f"{where}: mask_in must be true, false or null, got {value!r}")
            elif not isinstance(value, bool):
                raise ValueError(f"{where}: {key} must be true or false, got {value!r}")
            options[key] = value
        required, optional = WEIGHTS[kind]
        weights = {}
        for w in required + optional:
            key = f"layer{i}_{w}"
            if key in arrays:
                try:
                    weights[w] = _checks.float_array(key, arrays[key], dtype)
                except TypeError as e:
                    raise ValueError(f"{path}: {e}") from None
                used.add(key)
            elif w in required:
                raise ValueError(f"{where}: missing the weight array {key!r}")
        if "state" in weights and not options["stateful"]:
            raise ValueError(f"{where}: has a state array but is not stateful")
        layers.append(classes[kind](name=name, dtype=dtype, **_weights_args(kind, weights), **options))

    extra = sorted(set(arrays) - used)
    if extra:
        raise ValueError(
            f"{path}: arrays {extra} belong to no layer; expected names layer{{i}}_{{weight}} "
            "with the weights listed in rnn_ref.load.WEIGHTS"
        )
    _check_chain(path, layers)
    input_dtype = config.get("input_dtype")
    if input_dtype is not None:
        input_dtype = _dtype(f"{path}: config", "input_dtype", input_dtype)
    return NumpyModel(
        layers=layers,
        name=str(config.get("name", "model")),
        input_dtype=input_dtype,
        outputs=_decode_outputs(path, config.get("outputs")),
    )


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
    known = {"format", "version", "name", "input_dtype", "outputs", "layers"}
    unknown = set(config) - known
    if unknown:
        raise ValueError(f"{path}: config has unknown keys {sorted(unknown)}; known: {sorted(known)}")
    if config.get("format") != FORMAT or config.get("version") != VERSION:
        raise ValueError(
            f"{path}: config format {config.get('format')!r} version {config.get('version')!r}; "
            f"this rnn_ref reads format {FORMAT!r} version {VERSION}"
        )
    return config


def _weights_args(kind, weights):
    if kind == "Embedding":
        return {"embeddings": weights["embeddings"]}
    args = {"kernel": weights["kernel"], "bias": weights.get("bias")}
    if kind == "SimpleRNN":
        args["recurrent_kernel"] = weights["recurrent_kernel"]
        args["state"] = weights.get("state")
    return args


def _check_chain(path, layers):
    """Shapes inside each layer and between layers: refuse what could only run by accident."""
    features, rank_is_sequence, previous = None, None, None  # what flows out of the previous layer
    for i, layer in enumerate(layers):
        kind = type(layer).__name__
        where = f"{path}: layers[{i}] ({kind} {layer.name!r})"
        if previous is not None and previous[0] == "SimpleRNN" and previous[1].return_state:
            raise ValueError(f"{where}: follows a SimpleRNN with return_state, whose (output, state) pair no layer can take")
        try:
            if kind == "Embedding":
                _checks.shape("embeddings", layer.embeddings, "V, E", (None, None))
                features, rank_is_sequence = layer.embeddings.shape[1], True
            elif kind == "SimpleRNN":
                rk = layer.recurrent_kernel
                if rk.ndim != 2 or rk.shape[0] != rk.shape[1] or rk.shape[0] == 0:
                    raise ValueError(f"recurrent_kernel must be a square (U, U) array, got shape {rk.shape}")
                U = rk.shape[0]
                _checks.shape("kernel", layer.kernel, "D, U", (features, U))
                if layer.bias is not None:
                    _checks.shape("bias", layer.bias, "U", (U,))
                if layer.state is not None:
                    _checks.shape("state", layer.state, "B, U", (None, U))
                if rank_is_sequence is False:
                    raise ValueError(
                        f"needs a sequence (B, T, D), but layers[{i - 1}] outputs one vector per sample "
                        "(a SimpleRNN without return_sequences)"
                    )
                features, rank_is_sequence = U, layer.return_sequences
            else:  # Dense
                _checks.shape("kernel", layer.kernel, "N, K", (features, None))
                if layer.bias is not None:
                    _checks.shape("bias", layer.bias, "K", (layer.kernel.shape[1],))
                features = layer.kernel.shape[1]
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        previous = (kind, layer)


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


def _decode_outputs(path, spec):
    if spec is None:
        return None
    if isinstance(spec, bool) or not isinstance(spec, (int, list, dict)):
        raise ValueError(f"{path}: outputs must be null, an int, a list, {{'tuple': [...]}} or {{'dict': {{...}}}}, got {spec!r}")
    if isinstance(spec, int):
        if spec not in (0, 1):
            raise ValueError(f"{path}: outputs index {spec}: the last layer returns at most (output, state)")
        return spec
    if isinstance(spec, list):
        return [_decode_outputs(path, s) for s in spec]
    if set(spec) == {"tuple"} and isinstance(spec["tuple"], list):
        return tuple(_decode_outputs(path, s) for s in spec["tuple"])
    if set(spec) == {"dict"} and isinstance(spec["dict"], dict):
        return {k: _decode_outputs(path, v) for k, v in spec["dict"].items()}
    raise ValueError(f"{path}: outputs object must be {{'tuple': [...]}} or {{'dict': {{...}}}}, got {spec!r}")
