"""``python -m rnn_ref.runtimes.worker MODEL.keras``: serve a Keras model's predictions
on the backend ``KERAS_BACKEND`` names, over this process's standard input and output.

A process holds one Keras backend, chosen when Keras is first imported; so each backend
other than the parent's runs in a worker of its own (``backend.BackendRuntime`` starts
and stops it). The protocol is frames of an 8-byte big-endian length and an ``.npz``:

    worker -> parent   hello: {"facts": JSON} or {"error": text}
    parent -> worker   inputs: input_0, input_1, ...      (an empty frame: stop)
    worker -> parent   outputs: output_0, ... or {"error": text}
    parent -> worker   {"reset": True}: zero the stateful layers' states
    worker -> parent   {"reset": True} or {"error": text}

The real standard output is kept for the frames and file descriptor 1 is pointed at
standard error, so that whatever the backend prints cannot corrupt a frame.
"""

from __future__ import annotations

import io
import json
import os
import struct
import sys
import traceback

import numpy as np


def write_frame(stream, arrays: dict) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    payload = buffer.getvalue()
    stream.write(struct.pack(">Q", len(payload)) + payload)
    stream.flush()


def read_frame(stream) -> dict | None:
    """The next frame's arrays; None at an empty frame or the end of the stream."""
    header = stream.read(8)
    if len(header) < 8:
        return None
    (n,) = struct.unpack(">Q", header)
    if n == 0:
        return None
    payload = stream.read(n)
    with np.load(io.BytesIO(payload), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def reset_keras_states(model) -> None:
    """Zero the states of every stateful layer of a Keras model, a Bidirectional's two
    directions included (a Keras 3 model has no ``reset_states`` of its own)."""
    for layer in model.layers:
        parts = [getattr(layer, "forward_layer", None), getattr(layer, "backward_layer", None)]
        for part in [p for p in parts if p is not None] or [layer]:
            if getattr(part, "stateful", False):
                part.reset_state()


def _error(e: BaseException) -> dict:
    last = traceback.extract_tb(e.__traceback__)[-1:] if e.__traceback__ else []
    where = f" (at {os.path.basename(last[0].filename)}:{last[0].lineno})" if last else ""
    return {"error": np.array(f"{type(e).__name__}: {e}{where}")}


def serve(model_path: str) -> int:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    try:
        try:
            __import__({"numpy": "numpy", "tensorflow": "tensorflow"}.get(backend, backend))
        except ImportError as e:
            raise ImportError(f"Keras's {backend} backend needs the package {backend!r}, which is not "
                              f"installed ({e}); pip install -e '.[runtimes]'") from e
        import keras

        if keras.backend.backend() != backend:
            raise RuntimeError(f"Keras started on the {keras.backend.backend()} backend, not {backend}")
        model = keras.saving.load_model(model_path, safe_mode=True, compile=False)
        module = sys.modules.get(backend)
        facts = {"keras": keras.__version__, backend: getattr(module, "__version__", "?")}
    except Exception as e:  # noqa: BLE001 - told to the parent, which reports it
        write_frame(out, _error(e))
        return 1
    write_frame(out, {"facts": np.array(json.dumps(facts))})
    while True:
        request = read_frame(sys.stdin.buffer)
        if request is None:
            return 0
        if "reset" in request:
            try:
                reset_keras_states(model)
                write_frame(out, {"reset": np.array(True)})
            except Exception as e:  # noqa: BLE001
                write_frame(out, _error(e))
            continue
        inputs = [request[f"input_{i}"] for i in range(len(request))]
        try:
            result = model.predict_on_batch(inputs[0] if len(inputs) == 1 else inputs)
            result = result if isinstance(result, (list, tuple)) else [result]
            write_frame(out, {f"output_{i}": np.asarray(r) for i, r in enumerate(result)})
        except Exception as e:  # noqa: BLE001
            write_frame(out, _error(e))


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1]))
