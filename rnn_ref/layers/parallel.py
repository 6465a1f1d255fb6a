"""Both cores for a large batch: the time loop on row blocks in threads, BLAS on one thread.

The rows of a batch never meet in a recurrent layer: row b of every step
depends only on row b of the inputs, the mask and the states. So the loop of
``rnn_ref.layers.recurrence.run`` can run on the first half of the rows in one
thread and on the second half in another, and the halves put back in order
give the same output, up to the rounding of the BLAS's blocking (the same
products, cut differently; |difference| of order 1e-7 in float32).

Why threads rather than OpenBLAS's own two threads: OpenBLAS splits every
product of every step over its threads, which then wait for each other 250
times a call; with TensorFlow's thread pool in the same process (or any other
work on the machine) each wait can last a scheduler time slice. Measured on
2 cores, ``Embedding(5000, 32) -> SimpleRNN(100) -> Dense(1)``, T = 250,
TensorFlow loaded and used in the process, on a shared machine (load 0.3 to
6; docs/bench.md, section (b)): at B = 1024 the median call took 96 ms to
2.1 s with OpenBLAS's two threads (single calls 89 ms to 2.1 s), 123 ms with
one BLAS thread, and 65-79 ms split over two threads of one BLAS thread each
(136 ms at load 3 to 4), which only meet at the end of the call. NumPy releases
the GIL in its products and elementwise functions, so the two loops overlap;
only the Python of each step (a few microseconds) does not.

The threshold, ``MIN_ROWS`` rows a block: in the same measurements, split in
two, B = 128 took 11.4-14.5 ms against 12.4-15 ms unsplit, B = 64 7.4-7.8 ms
against 7.0 ms: below 64 rows a thread the Python of the steps, serialised by
the GIL, and the hand-over to the pool cost more than the second core gives.
At every batch size BLAS is held to one thread for the loop (``one_blas_thread``):
OpenBLAS shares out a product among its threads from a size that the input
projection of all steps already reaches at B = 1, and an LSTM's or a GRU's step
(4 or 3 blocks of U columns) from B = 8 or so; then its threads wait for each other
at every step, and while anything else runs on the machine (TensorFlow's pool, a
second process) each wait can last a time slice. Measured on 2 cores at load 3.5,
T = 250, D = 32, U = 100, median of 7 calls, OpenBLAS's two threads against one:
SimpleRNN B = 1 12.0 ms against 0.40 ms, B = 8 92 ms against 1.1 ms; LSTM B = 32
162 ms against 31 ms; GRU B = 8 204 ms against 14 ms, B = 32 54 ms against 26 ms.
Limiting costs about 10 microseconds a call. The backward loops run the same way
(``blas_held_to_one_thread``), and a vjp of a large batch is split by rows as the forward loop
is (``rnn_ref.backward.rows``, through ``in_threads``).

The input projection is computed a few steps at a time (``projection_chunk``),
for every batch size: about 2 MB of it stays in the cache, where all T steps
at once (100 MB at B = 1024) were fresh memory written and read back.
Each thread keeps that chunk's buffer for its next call (``scratch``), and
the projection's products do not depend on the chunk (``projection_by_step``).

Turning the split off: ``RNN_REF_THREADS=1`` in the environment (read at
each call), or ``rnn_ref.layers.parallel.set_threads(1)``; ``set_threads(None)``
goes back to the environment or the number of usable cores. Without
``threadpoolctl`` nothing is split (two threads each running a two-thread
BLAS would be worse than one).

Only the cells that say so are split or projected in chunks: a cell class
with ``SPLITS_BY_ROWS = True`` (the plain forward cells ``SimpleRNNCell``,
``LSTMCell``, ``GRUCell``). The recording cells of the backward pass set it
back to False: they keep per-step records of the whole batch in their one
projection, and run as before. So this module never needs the cell classes.
"""

from __future__ import annotations

import copy
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager

import numpy as np

#: Rows per thread below which the batch is not split (see the module docstring): B >= 128 runs
#: in two threads on two cores, 64 <= B < 128 in one thread with one BLAS thread. Measured for
#: SimpleRNN(100); a GRU or LSTM step does 3-4 times the work per row and might gain sooner, but
#: one threshold keeps the rule simple.
MIN_ROWS = 64

#: Rows from which a Bidirectional's two directions run side by side (``side_by_side``): below it
#: a step is mostly the Python of the loop, which the GIL serialises (at B = 1 two threads took
#: 5.3 to 8.0 ms where one after the other took 5.1 to 5.5, LSTM(100), T = 250).
MIN_SIDE_BY_SIDE_ROWS = 32

#: Steps of one batched product of the input projection on a small batch (``projection_by_step``
#: false): a product's rounding may depend on how many steps it covers, so the steps are always
#: taken this many at a time from the start of the call, and every chunk is a multiple of it.
PROJECTION_STEPS = 64

#: Bytes of input projection computed at once (``projection_chunk``): about 2 MB, a size the
#: cache still holds when the steps read it (8-16 steps for a block of 512 rows of SimpleRNN(100)).
CHUNK_BYTES = 2 * 2**20

_threads = None  # set_threads(n); None: RNN_REF_THREADS, or the usable cores
_pool = None  # ThreadPoolExecutor, made on first use
_background = None  # ThreadPoolExecutor of one thread (in_background), made on first use
_pool_lock = threading.Lock()
_limit_lock = threading.Lock()
_limit_users = 0  # calls inside the BLAS limit right now (threads of the user may overlap)
_limit = None  # the threadpoolctl limiter while _limit_users > 0


def set_threads(n: int | None) -> None:
    """Use at most ``n`` threads per call (1: never split); None: ``RNN_REF_THREADS`` or the cores."""
    global _threads
    if n is not None and int(n) < 1:
        raise ValueError(f"threads must be at least 1, got {n}")
    _threads = None if n is None else int(n)


def threads() -> int:
    """The threads a call may use: ``set_threads``, else ``RNN_REF_THREADS``, else the usable cores."""
    if _threads is not None:
        return _threads
    env = os.environ.get("RNN_REF_THREADS", "").strip()
    if env:
        if not env.isdigit():
            raise ValueError(f"RNN_REF_THREADS must be a whole number (1: no split), got {env!r}")
        return max(1, int(env))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def blocks(B: int, n_threads: int, min_rows: int | None = None) -> list[slice]:
    """The row blocks of a batch of B: as many as fit ``min_rows`` (default ``MIN_ROWS``) each,
    at most ``n_threads``, in order and covering every row once."""
    n = max(1, min(n_threads, B // max(1, MIN_ROWS if min_rows is None else min_rows)))
    edges = [B * i // n for i in range(n + 1)]
    return [slice(a, b) for a, b in zip(edges, edges[1:])]


def plain(cell) -> bool:
    """Whether ``cell`` is one of the plain forward cells: its rows are independent, its
    ``project`` is the same on any steps, and it keeps nothing of a call but a per-call buffer.
    The cell's class says so with ``SPLITS_BY_ROWS = True``; a cell without it is not split."""
    return getattr(type(cell), "SPLITS_BY_ROWS", False) is True


def run_loop(loop, cell, x, states, mask, outputs):
    """``loop(cell, x, states, mask, outputs, chunk=...)`` -> (last output, final states), on row
    blocks in threads when the batch is large enough (see the module docstring), else as it is.

    x (B, T, D), states [(B, U), ...], mask (B, T) or None, outputs (T, B, U) or None: each
    block gets its rows of them (its own view of ``outputs``, which it fills) and its own
    shallow copy of the cell (a cell keeps a per-call buffer); the blocks' results are put back
    together in row order.
    """
    B = x.shape[0]
    if not plain(cell):
        with one_blas_thread():
            return loop(cell, x, states, mask, outputs)  # a recording cell: the whole projection at once
    if B < MIN_ROWS or threads() == 1 or _threadpoolctl() is None:
        with one_blas_thread():
            return loop(cell, x, states, mask, outputs, chunk=projection_chunk(cell, B))  # this thread alone

    def block(r):
        rows = r.stop - r.start
        return loop(copy.copy(cell), x[r], [s[r] for s in states], None if mask is None else mask[r],
                    None if outputs is None else outputs[:, r], chunk=projection_chunk(cell, rows))

    rows = blocks(B, threads())  # one block from MIN_ROWS rows, two from 2 MIN_ROWS, ...
    if len(rows) == 1:
        with one_blas_thread():
            return block(rows[0])
    results = in_threads(block, rows)
    last = np.concatenate([out for out, _ in results])  # (B, U)
    final = [np.concatenate(s) for s in zip(*(st for _, st in results))]  # [(B, U), ...]
    return last, final


def can_split() -> bool:
    """Whether a call may run blocks in threads: more than one thread allowed, and threadpoolctl
    there to hold each block's BLAS to one thread."""
    return threads() > 1 and _threadpoolctl() is not None


def in_threads(fn, items) -> list:
    """``[fn(item) for item in items]``, the first item in this thread and the others in the pool,
    all with BLAS held to one thread. Waits for every item; the first failure is raised."""
    items = list(items)
    with one_blas_thread():
        others = [_executor().submit(fn, item) for item in items[1:]]
        try:
            first = fn(items[0])
        finally:
            wait(others)  # the others end inside the BLAS limit, even if the first failed
        return [first, *(f.result() for f in others)]


def in_background(fn, *args):
    """``fn(*args)`` on the background thread (one, shared by every call), as a
    ``concurrent.futures.Future``: work that a loop does not wait for at once, such as a backward
    loop's weight gradients (``rnn_ref.backward.step_sums``). Under the caller's BLAS limit if it
    holds one (the limit is process-wide)."""
    global _background
    with _pool_lock:
        if _background is None:
            _background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rnn_ref-background")
    return _background.submit(fn, *args)


def second_core_free(rows: int) -> bool:
    """Whether a loop of ``rows`` rows leaves a core idle, so that work can go to the background:
    more than one thread allowed, threadpoolctl there, and fewer rows than ``run_loop`` and
    ``rnn_ref.backward.rows`` split over the cores (2 ``MIN_ROWS``)."""
    return rows < 2 * MIN_ROWS and can_split()


def projection_chunk(cell, rows: int) -> int:
    """Steps of input projection to compute at once for ``rows`` rows: about ``CHUNK_BYTES``.

    The projection of all T steps at once is (T, B, G): 100 MB at B = 1024 for SimpleRNN(100),
    T = 250, written before the first step and read back from memory, fresh memory that the
    kernel faults in page by page at every call. A few steps at a time it stays in the cache and
    the same memory is reused. Measured on one block of 512 rows (one thread, one BLAS thread):
    64 ms a call with the whole projection, 55 ms with 8-16 steps at a time.

    The numbers are the same for any chunk this returns (``rnn_ref.layers.recurrence.input_projection``
    keeps each step's products the same): with ``projection_by_step`` any number of steps, else a
    multiple of ``PROJECTION_STEPS``.
    """
    width = cell.kernel.shape[1]  # G
    itemsize = cell.kernel.dtype.itemsize
    steps = CHUNK_BYTES // max(1, rows * width * itemsize)
    if projection_by_step(rows, width, itemsize):
        return max(1, steps)
    return max(PROJECTION_STEPS, steps - steps % PROJECTION_STEPS)  # B = 0 or G = 0: any


def projection_by_step(rows: int, width: int, itemsize: int) -> bool:
    """Whether the input projection of ``rows`` rows and ``width`` (G) columns is one product
    (rows, D) @ (D, G) per step (``rnn_ref.layers.recurrence.input_projection``): when a chunk of
    ``CHUNK_BYTES`` holds fewer steps than there are rows.

    The other way, NumPy's product of a (rows, C, D) block of C steps makes one BLAS call
    (C, D) @ (D, G) per row: at 512 rows of an LSTM(100) a chunk is 2 steps, 512 calls of two
    rows each. Measured (T = 250, D = 32, one BLAS thread, the chunks of a call): 512 rows and
    G = 400 91.6 ms that way, 34.3 ms a product per step; G = 100 16.2 against 13.9 ms; 128 rows
    and G = 400 11.7 against 8.5 ms. On a small batch a product per step is slower: 1 row 0.07
    against 0.32 ms, 32 rows and G = 400 2.46 against 2.56 ms; 64 rows and G = 100 1.33
    against 1.61 ms. The rule (fewer steps in a chunk than rows) puts each of these on its
    faster side.
    """
    return rows * rows * width * itemsize > CHUNK_BYTES


#: Buffers each thread keeps between calls (``scratch``), the most recently used.
SCRATCH_KEPT = 4

_scratch = threading.local()  # .free: {(shape, dtype): buffer} of this thread, oldest first


@contextmanager
def scratch(shape, dtype):
    """A buffer of ``shape`` and ``dtype`` for use inside the block only (a loop's input
    projection), taken from the ones this thread kept from earlier calls, or new.

    Why: memory freed by one call and asked for again by the next often goes back to the
    kernel in between, and is then faulted in page by page. Measured on the model of
    docs/bench.md, section (b), at B = 32: 4.3 ms and about 1000 page faults a call with a new
    projection buffer each call, 2.8 ms and none with the kept one. The buffer is checked out
    while the block runs, so a call inside the block (another thread's, or a nested one) gets
    another; a thread keeps at most ``SCRATCH_KEPT`` buffers, about ``CHUNK_BYTES`` each.
    """
    free = getattr(_scratch, "free", None)
    if free is None:
        free = _scratch.free = {}
    key = (tuple(shape), np.dtype(dtype).str)
    buffer = free.pop(key, None)
    if buffer is None:
        buffer = np.empty(shape, dtype=dtype)
    try:
        yield buffer
    finally:
        while len(free) >= SCRATCH_KEPT:
            del free[next(iter(free))]  # the least recently used
        free[key] = buffer


@contextmanager
def one_blas_thread():
    """BLAS limited to one thread inside the block, restored after it (nothing without
    threadpoolctl). The limit is process-wide, so overlapping calls share it: the first to
    enter sets it, the last to leave restores it."""
    global _limit_users, _limit
    if _threadpoolctl() is None:
        yield
        return
    with _limit_lock:
        if _limit_users == 0:
            _limit = _threadpoolctl().limit(limits=1, user_api="blas")
        _limit_users += 1
    try:
        yield
    finally:
        with _limit_lock:
            _limit_users -= 1
            if _limit_users == 0:
                _limit.restore_original_limits()
                _limit = None


def side_by_side(first, second, rows: int):
    """``(first(), second())``, the second in another thread when a batch of ``rows`` rows is too
    small for ``run_loop`` to use more than one core (below 2 ``MIN_ROWS``) and large enough for
    the two loops to overlap (``MIN_SIDE_BY_SIDE_ROWS``): a Bidirectional's two
    directions, each its own loop. Each call computes what it computes alone, bit for bit. When
    both raise, the first one's exception is raised, as if they had run one after the other."""
    if threads() == 1 or not MIN_SIDE_BY_SIDE_ROWS <= rows < 2 * MIN_ROWS or _threadpoolctl() is None:
        return first(), second()
    other = _executor().submit(second)
    try:
        result = first()
    finally:
        wait([other])
    return result, other.result()


def blas_held_to_one_thread(fn):
    """``fn`` that runs with BLAS held to one thread (``one_blas_thread``): for a backward loop."""
    @functools.wraps(fn)
    def held(*args, **kwargs):
        with one_blas_thread():
            return fn(*args, **kwargs)

    return held


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            # Sized for up to 8 blocks; only as many threads as blocks are ever started.
            _pool = ThreadPoolExecutor(max_workers=7, thread_name_prefix="rnn_ref")
        return _pool


_controller = None


def _threadpoolctl():
    """A ``threadpoolctl.ThreadpoolController`` (made once: finding the BLAS libraries takes
    about a millisecond), or None without threadpoolctl."""
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController  # noqa: PLC0415
        except ImportError:
            _controller = False
        else:
            _controller = ThreadpoolController()
    return _controller or None
