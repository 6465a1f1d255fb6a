"""What every runtime gives the model checks: ``predict(inputs) -> outputs`` and its facts.

A runtime runs a saved Keras model somewhere other than the process's own Keras (or in it,
for the sanity line): another Keras backend in a worker process, ONNX Runtime on a
converted graph, the LiteRT interpreter on a flatbuffer, or a user's function. It is opened
once per check and closed at the end (``with open_runtime(...) as rt``).

``predict`` takes the model's inputs as a list of arrays (one per model input, batch
first) and returns its outputs as a list of arrays. ``reset_state()`` zeroes the states a
stateful model carries from call to call (the Keras ``layer.reset_state()`` of each stateful
layer); ``reset_unsupported()`` says why a runtime cannot (None: it can). ``facts`` says what the check must
respect: a fixed batch or length the artifact was built with (None: any), the versions of
what computes, and notes (how it was converted, what was given up on the way).
"""

from __future__ import annotations

import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable


class Declined(Exception):
    """The runtime cannot run this model: a converter refused it, a backend is missing.
    The message is the converter's or the installer's, trimmed to its first useful lines."""


@dataclass
class Facts:
    batch: int | None = None        # the artifact takes only batches of this size
    length: int | None = None       # ... only sequences of this many steps
    versions: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


class Runtime:
    """A started runtime. Subclasses set ``name`` and ``facts`` and implement ``predict``;
    ``close`` stops what ``__init__`` started (a worker process, a session)."""

    name = "runtime"

    def __init__(self):
        self.facts = Facts()

    def predict(self, inputs: list) -> list:
        raise NotImplementedError

    def reset_state(self) -> None:
        """Zero the states of a stateful model (nothing to do for a model without)."""
        raise NotImplementedError(self.reset_unsupported())

    def reset_unsupported(self) -> str | None:
        """Why this runtime cannot zero a stateful model's states; None when it can."""
        return None if type(self).reset_state is not Runtime.reset_state else (
            f"the {self.name} runtime cannot reset a stateful model's states")

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class CallableRuntime(Runtime):
    """Any ``predict(inputs) -> outputs`` function (one array or a list of them back).

    ``reset``: what zeroes a stateful model's states; by default the function's own
    ``reset_state`` attribute (``predict.reset_state = model.reset_state``), if it has one."""

    def __init__(self, fn: Callable, name: str, *, batch: int | None = None, length: int | None = None,
                 reset: Callable | None = None):
        super().__init__()
        self.fn, self.name = fn, name
        self.facts = Facts(batch=batch, length=length)
        self._reset = reset if reset is not None else getattr(fn, "reset_state", None)

    def predict(self, inputs):
        out = self.fn(list(inputs))
        return list(out) if isinstance(out, (list, tuple)) else [out]

    def reset_state(self):
        if not callable(self._reset):
            raise NotImplementedError(self.reset_unsupported())
        self._reset()

    def reset_unsupported(self):
        return None if callable(self._reset) else (
            f"{self.name} has no reset_state: the checks of a stateful model zero its states before each "
            "call; give the function one (predict.reset_state = model.reset_state) or define reset_state() "
            "in its module")


def first_lines(message: str, limit: int = 3) -> str:
    """The lines of a converter's error worth reading: the ones that say 'error', else the last.

    The TFLite converter's MLIR errors (one ``<unknown>:0: error: loc(callsite(...)): what``
    line per op, then the whole function) come back as their first line's head and each
    distinct complaint once, naming its ops: ``Could not translate MLIR to FlatBuffer.
    'tf.AddV2', 'tf.Mul', ... op is neither a custom op nor a flex op``."""
    mlir = _mlir_errors(str(message))
    if mlir:
        return mlir
    lines = [l.strip().replace("<unknown>:0: error: ", "").split(". Please consider")[0]
             for l in str(message).splitlines() if l.strip()]
    errors = [l for l in lines if "error" in l.lower() and "loc(" not in l]
    picked = (errors or lines)[-limit:]
    text = " / ".join(picked)
    return text if len(text) < 600 else text[:600] + " ..."


def _mlir_errors(message: str, names: int = 6) -> str:
    """``first_lines`` of an MLIR error dump, or "" when ``message`` is not one."""
    lines = message.splitlines()
    complaints = [l.rsplit(")):", 1)[-1].strip() for l in lines if "error: loc(" in l and ")):" in l]
    if not complaints:
        return ""
    head = next((l.split("<unknown>")[0].strip() for l in lines if l.split("<unknown>")[0].strip()), "")
    grouped = {}  # the complaint with its op's name taken out -> the names
    for c in complaints:
        found = re.search(r"'[^']+'", c)
        key = c.replace(found.group(0), "{}", 1) if found else c
        grouped.setdefault(key, []).extend([found.group(0)] if found else [])
    parts = []
    for key, ops in grouped.items():
        ops = list(dict.fromkeys(ops))
        listed = ", ".join(ops[:names]) + (f" and {len(ops) - names} more" if len(ops) > names else "")
        parts.append(key.replace("{}", listed, 1) if ops else key)
    text = " ".join([head, *parts[:3]]).strip()
    return text if len(text) < 600 else text[:600] + " ..."


@contextmanager
def quiet_output():
    """File descriptors 1 and 2 to /dev/null for the duration (converters print to both)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)
