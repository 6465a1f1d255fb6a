"""``jax``, ``numpy``, ``torch``: Keras 3 on another backend, in a worker process.

``BackendRuntime`` starts ``python -m rnn_ref.runtimes.worker MODEL`` with
``KERAS_BACKEND`` set, waits for its hello (the versions, or why it cannot load the
model: a missing backend package is a ``Declined``), and sends it one frame of inputs a
call (and a reset frame for ``reset_state``). ``close`` sends the empty frame and waits; a worker that does not stop is killed.
Its standard error goes to a temporary file, whose last lines explain a worker that died.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from rnn_ref.runtimes.base import Declined, Runtime
from rnn_ref.runtimes.worker import read_frame, write_frame

BACKENDS = {"jax": "jax", "numpy": "numpy", "torch": "torch"}  # backend -> the package it needs


class BackendRuntime(Runtime):
    def __init__(self, backend: str, model_path: str):
        super().__init__()
        self.name = backend
        package = BACKENDS[backend]
        if importlib.util.find_spec(package) is None:
            extra = {"jax": "runtimes", "torch": "torch"}.get(backend)  # numpy: always there
            raise Declined(f"Keras's {backend} backend needs the package {package!r}, which is not installed"
                           + (f"; pip install -e '.[{extra}]'" if extra else ""))
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
               "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
        self._log = tempfile.TemporaryFile()
        self._process = subprocess.Popen([sys.executable, "-m", "rnn_ref.runtimes.worker", str(model_path)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env)
        hello = self._receive()
        if "error" in hello:
            self.close()
            raise Declined(f"the {backend} worker could not load the model: {hello['error']}")
        self.facts.versions = json.loads(str(hello["facts"]))
        self.facts.notes.append(f"Keras with KERAS_BACKEND={backend} in worker process {self._process.pid}")

    def _receive(self) -> dict:
        frame = read_frame(self._process.stdout)
        if frame is None:
            raise Declined(f"the {self.name} worker stopped: {self._log_tail()}")
        return frame

    def _log_tail(self, lines: int = 3) -> str:
        self._log.seek(0)
        text = self._log.read().decode(errors="replace").strip().splitlines()
        return " / ".join(text[-lines:]) or "(nothing on its standard error)"

    def predict(self, inputs):
        write_frame(self._process.stdin, {f"input_{i}": x for i, x in enumerate(inputs)})
        reply = self._receive()
        if "error" in reply:
            raise RuntimeError(f"the {self.name} backend raised {reply['error']}")
        return [reply[f"output_{i}"] for i in range(len(reply))]

    def reset_state(self):
        write_frame(self._process.stdin, {"reset": np.array(True)})
        reply = self._receive()
        if "error" in reply:
            raise RuntimeError(f"the {self.name} backend could not reset the states: {reply['error']}")

    def close(self):
        process = getattr(self, "_process", None)
        if process is None:
            return
        self._process = None
        try:
            if process.poll() is None:
                process.stdin.write(b"\0" * 8)
                process.stdin.flush()
                process.stdin.close()
                process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        finally:
            process.stdout.close()
            self._log.close()
