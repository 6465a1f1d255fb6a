"""Memory for the records a vjp keeps of its forward pass, reused from one vjp to the next.

A vjp records every step of its forward pass (the pre-activations, the gates, the states:
arrays of all T steps, tens of megabytes from B = 128), and its ``backward`` function keeps
them as long as it lives. New arrays of that size are new memory at each call, which the
kernel hands over page by page: measured in one process with TensorFlow loaded (T = 250,
D = 32, U = 100, B = 256 in two row blocks), the LSTM's vjp took about 10 000 page faults
and 220 ms a call with new records, against 146 ms without TensorFlow in the process.

``take(shape, dtype)`` gives an array for such a record, in memory that an earlier vjp used
and gave back, or new. The memory goes back when the array and every view of it are gone (the
array is made on a memoryview of it, so NumPy makes every view of the array refer to the array,
not to the memory beneath), so records still in use are never handed out again, however they
are held. What a vjp returns (its output, final states and gradients) is memory of its own
all the same (``own_states``): a view would keep a whole record from being reused.

Idle records are kept up to ``KEPT_BYTES`` in all; ``release()`` lets them go.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

#: The most memory that idle records may hold (the records of one LSTM vjp at B = 256,
#: T = 250, U = 100 take about 180 MB, a second call while the first's ``backward`` is still
#: alive as much again).
KEPT_BYTES = 512 * 2**20

_lock = threading.Lock()
_free: dict[tuple, list[np.ndarray]] = {}  # (shape, dtype) -> idle arrays
_kept = 0  # bytes in _free


def take(shape, dtype) -> np.ndarray:
    """An uninitialised array of ``shape`` and ``dtype`` in an idle record's memory or new memory,
    which goes back to the idle records once nothing refers to the array or a view of it."""
    global _kept
    key = (tuple(shape), np.dtype(dtype).str)
    with _lock:
        idle = _free.get(key)
        memory = idle.pop() if idle else None
        if memory is not None:
            _kept -= memory.nbytes
    if memory is None:
        memory = np.empty(shape, dtype=dtype)
    flat = np.frombuffer(memory.data, dtype=dtype)  # every view of it refers to it (module docstring)
    weakref.finalize(flat, _give_back, key, memory)
    return flat.reshape(shape)


def _give_back(key, array) -> None:
    global _kept
    with _lock:
        if _kept + array.nbytes <= KEPT_BYTES:
            _free.setdefault(key, []).append(array)
            _kept += array.nbytes


def own_states(out, return_state: bool):
    """A recurrent layer's result with its final states copied (``return_state``): a recording
    cell's last state is a block of its records, which must not outlive them."""
    return (out[0], *(np.array(s) for s in out[1:])) if return_state else out


def kept_bytes() -> int:
    """The memory the idle records hold now."""
    return _kept


def release() -> None:
    """Let every idle record go (the memory returns to the allocator)."""
    global _kept
    with _lock:
        _free.clear()
        _kept = 0
