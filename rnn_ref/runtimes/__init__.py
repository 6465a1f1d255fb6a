"""Runtimes a Keras model can be moved to, each as ``predict(inputs) -> outputs``.

``open_runtime(name, model_path, ...)`` starts one (a context manager: ``close`` stops
what it started):

    keras        Keras on TensorFlow in this process (the sanity line)
    jax, numpy   Keras 3 with that backend in a worker process (torch too, if installed)
    onnx         tf2onnx's conversion, or ``artifact=model.onnx``, run by ONNX Runtime
    litert       the TFLite converter's flatbuffer, or ``artifact=model.tflite``, run by the
                 LiteRT interpreter (a fixed batch when the converter needs one)

A runtime that cannot run the model raises ``Declined`` with the converter's or the
installer's message. A user's function is wrapped by ``CallableRuntime``.
TensorFlow and the converters are imported when a runtime starts, not here.
"""

from __future__ import annotations

from rnn_ref.runtimes.base import CallableRuntime, Declined, Facts, Runtime

NAMES = ("keras", "jax", "numpy", "torch", "onnx", "litert")


def open_runtime(name: str, model_path: str, *, model=None, artifact: str | None = None,
                 batch: int | None = None) -> Runtime:
    """Start the runtime ``name`` on the saved model ``model_path`` (``model``: the same
    model already loaded in this process's Keras, to convert without loading it again)."""
    if name in ("jax", "numpy", "torch"):
        from rnn_ref.runtimes.backend import BackendRuntime  # noqa: PLC0415

        return BackendRuntime(name, model_path)
    if model is None and artifact is None or name == "keras" and model is None:
        from rnn_ref._tf import keras_and_tf  # noqa: PLC0415

        keras, _ = keras_and_tf()
        model = keras.saving.load_model(model_path, safe_mode=True, compile=False)
    if name == "keras":
        from rnn_ref.runtimes.keras_tf import KerasTF  # noqa: PLC0415

        return KerasTF(model_path, model)
    if name == "onnx":
        from rnn_ref.runtimes.onnx_runtime import OnnxRuntime  # noqa: PLC0415

        return OnnxRuntime(model, artifact)
    if name == "litert":
        from rnn_ref.runtimes.litert import LiteRT  # noqa: PLC0415

        return LiteRT(model, artifact, batch)
    raise ValueError(f"unknown runtime {name!r}; known: {', '.join(NAMES)}, or MODULE:CALLABLE / PATH.py:CALLABLE")


__all__ = ["NAMES", "CallableRuntime", "Declined", "Facts", "Runtime", "open_runtime"]
