"""A saved ``.keras`` model, read without running code from the file.

    >>> np_model = rnn_ref.load("model.keras")

The archive's ``config.json`` is checked first: a ``Lambda`` layer or any
custom object (a class or function that is not part of Keras) is refused,
because rebuilding it means running Python code; so is one inside the
layers a ``Bidirectional`` wraps (named ``'wrapper/wrapped'`` in the
message). Only then is the model read with
``keras.saving.load_model(path, safe_mode=True, compile=False)`` and
converted with ``rnn_ref.from_keras``, which refuses the layers it does not
support.
"""

from __future__ import annotations

import json
import zipfile

from rnn_ref._tf import keras_and_tf
from rnn_ref.models.keras_graph import KERAS_LAYERS, from_keras
from rnn_ref.models.model import NumpyModel


def load_keras(path) -> NumpyModel:
    """Read a ``.keras`` archive as a NumpyModel; ValueError if it holds code or cannot be read."""
    with zipfile.ZipFile(path) as z:
        try:
            config = json.loads(z.read("config.json"))
        except ValueError as e:
            raise ValueError(f"{path}: config.json is not valid JSON ({e})") from None
    refuse_code(path, config)

    keras, _ = keras_and_tf()
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as e:  # Keras raises many types; say which file and why
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: Keras could not load this model in safe mode: {reason}") from e
    return from_keras(model)


def refuse_code(path, config) -> None:
    """Refuse a Keras config (the parsed ``config.json``) that needs Python code to rebuild:
    Lambda layers and objects from outside Keras (custom layers, activations, ...)."""
    *others, last = KERAS_LAYERS
    supported = f"{', '.join(others)} and {last}"

    def check(node, layer):
        kind = node.get("class_name")
        if kind == "Lambda":
            raise ValueError(
                f"{path}: layer {layer!r} is a Lambda layer: it holds Python code, and rnn_ref never "
                f"runs code from a file. Rebuild the model without it; rnn_ref supports {supported} layers"
            )
        if kind is not None and "module" in node and not _is_keras(node["module"]):
            if kind == "function":
                what = f"the Python function {node.get('config')!r}"
            else:
                what = f"the custom class {node.get('registered_name') or kind!r}"
            raise ValueError(
                f"{path}: layer {layer!r} uses {what}, which is not part of Keras: rebuilding it would "
                "run Python code that is not in the file, which rnn_ref refuses. Use built-in Keras "
                f"layers and activation names (rnn_ref supports {supported})"
            )

    def walk(node, layer):
        if isinstance(node, dict):
            check(node, layer)
            for key, value in node.items():
                if key == "layers" and isinstance(value, list):
                    for item in value:
                        walk(item, _layer_name(item))
                elif key in _WRAPPED_KEYS and isinstance(value, dict):
                    walk(value, f"{layer}/{_layer_name(value)}")  # a wrapper's layers: 'bidi/forward_lstm'
                else:
                    walk(value, layer)
        elif isinstance(node, list):
            for value in node:
                walk(value, layer)

    walk(config, config.get("config", {}).get("name", "?") if isinstance(config, dict) else "?")


#: The config keys of a wrapper (Bidirectional) that hold the configs of the layers it wraps.
_WRAPPED_KEYS = ("layer", "backward_layer")


def _is_keras(module) -> bool:
    return isinstance(module, str) and (module == "keras" or module.startswith("keras."))


def _layer_name(node) -> str:
    if not isinstance(node, dict):
        return "?"
    cfg = node.get("config")
    return node.get("name") or (cfg.get("name") if isinstance(cfg, dict) else None) or "?"
