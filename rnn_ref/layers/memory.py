"""Memory for large arrays that a call makes and a later call would make again, reused.

Two kinds: a layer's result sequence (B, T, U) and a Bidirectional's merged (B, T, 2U)
(``rnn_ref.layers.recurrence.run``, ``rnn_ref.layers.bidirectional.merge``), which in a model
are the next layer's input and dropped after it; and the records a vjp keeps of its forward
pass (the pre-activations, the gates, the states: arrays of all T steps, tens of megabytes from
B = 128), which its ``backward`` function holds as long as it lives (``rnn_ref.backward``).
New arrays of that size are new memory at each call, which the kernel hands over page by page,
and how long that takes varies with what else the machine does. Measured in one process with
TensorFlow loaded (T = 250, D = 32, U = 100, median of 8): the LSTM's vjp at B = 256 took about
10 000 page faults and 220 ms a call with new records, none and 159 ms with kept ones; the
demo's second model (Embedding -> Bidirectional(LSTM(64)) -> GRU(32) -> Dense) at B = 1024
took 388 ms [358, 517] with about 1 600 faults a call, 300 ms [298, 307] and none with kept
sequences (at B = 256: 142 ms [127, 219] against 121 ms [116, 132]).

``take(shape, dtype)`` gives such an array, in memory that an earlier call used and gave back,
or new. The memory goes back when the array and every view of it are gone: the array is made
on a memoryview of that memory, so NumPy makes every view of the array refer to the array, not
to the memory beneath. So memory still in use, by the caller or by anything it kept, is never
handed out again. What a vjp returns is memory of its own all the same (``own_states``): a
view would keep a whole record from being reused.

Idle memory is kept up to ``KEPT_BYTES`` in all, the least recently given back let go first;
``release()`` lets it all go, and ``KEPT_BYTES = 0`` keeps none.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

#: The most memory that idle arrays may hold (the records of one LSTM vjp at B = 256, T = 250,
#: U = 100 take about 180 MB; the demo's second model's sequences at B = 1024 about 260 MB).
KEPT_BYTES = 512 * 2**20

# Reentrant: a collection that frees a record (and so calls _give_back) may start in this very
# thread while it holds the lock; nothing done under the lock allocates a tracked object, so none
# starts there, but a lock that cannot deadlock on it is the safer one.
_lock = threading.RLock()
_idle: list[tuple[tuple, np.ndarray]] = []  # ((shape, dtype), memory), the least recently given back first
_kept = 0  # bytes in _idle


def take(shape, dtype) -> np.ndarray:
    """An uninitialised array of ``shape`` and ``dtype``, in idle memory of that size or new memory,
    which becomes idle again once nothing refers to the array or a view of it."""
    global _kept
    key = (tuple(shape), np.dtype(dtype).str)
    memory = None
    with _lock:
        for k in reversed(range(len(_idle))):  # the most recently given back first
            if _idle[k][0] == key:
                memory = _idle.pop(k)[1]
                _kept -= memory.nbytes
                break
    if memory is None:
        memory = np.empty(shape, dtype=dtype)
    flat = np.frombuffer(memory.data, dtype=dtype)  # every view of it refers to it (module docstring)
    weakref.finalize(flat, _give_back, (key, memory))
    return flat.reshape(shape)


def _give_back(entry) -> None:
    """Memory no longer used, ``entry = ((shape, dtype), memory)``, becomes idle; beyond
    ``KEPT_BYTES``, the least recently given back goes (so that what a program uses now is kept,
    not what it used once)."""
    global _kept
    with _lock:
        _idle.append(entry)
        _kept += entry[1].nbytes
        while _kept > KEPT_BYTES:
            _kept -= _idle.pop(0)[1].nbytes


def own_states(out, return_state: bool):
    """A recurrent layer's result with its final states copied (``return_state``): a recording
    cell's last state is a block of its records, which it would keep from being reused."""
    return (out[0], *(np.array(s) for s in out[1:])) if return_state else out


def kept_bytes() -> int:
    """The memory held idle now."""
    return _kept


def release() -> None:
    """Let all idle memory go (back to the allocator)."""
    global _kept
    with _lock:
        _idle.clear()
        _kept = 0
