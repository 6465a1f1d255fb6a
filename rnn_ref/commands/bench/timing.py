"""Timing shared by the sections: the repeats' statistics, calls per repeat, seconds per call,
and a limit on the BLAS thread pool (threadpoolctl, optional)."""

from __future__ import annotations

import gc
import math
import time
from contextlib import contextmanager

import numpy as np


def stats(values) -> dict:
    """Median, quartiles, min and max of the repeats."""
    v = np.asarray(values, dtype=np.float64)
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return dict(median=float(med), q1=float(q1), q3=float(q3), iqr=float(q3 - q1),
                min=float(v.min()), max=float(v.max()), repeats=int(v.size), values=[float(x) for x in v])


def spread_goal(spread: float, goal_spread: float) -> dict:
    """The goal on a row's spread (its slowest repeat over its fastest): under ``goal_spread``."""
    return dict(spread_goal=f"< {goal_spread:g}", spread_goal_met=bool(spread < goal_spread))


def has_threadpoolctl() -> bool:
    try:
        import threadpoolctl  # noqa: F401, PLC0415  (optional: its absence is the answer)
    except ImportError:
        return False
    return True


@contextmanager
def limit_blas_threads(n):
    """Limit the BLAS thread pool to n threads inside the block (None: leave it alone)."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits  # noqa: PLC0415  (optional: needed only when n is given)

    with threadpool_limits(limits=n, user_api="blas"):
        yield


def calls_per_repeat(fn, target_s):
    """How many calls make one repeat last about ``target_s`` (at least 1, at most 200)."""
    t = time.perf_counter()
    fn()
    once = time.perf_counter() - t
    return max(1, min(200, math.ceil(target_s / max(once, 1e-6))))


def time_per_call(fn, calls, blas_threads=None, settle_s=0.0):
    """Seconds per call over ``calls`` consecutive calls.

    Keras's and OpenBLAS's worker threads keep spinning for a moment after
    their work, and on two cores the other library then competes with them.
    So each timed block starts after ``settle_s`` of sleep and one untimed
    call: each library is timed in its own steady state, not in the wake of
    the other.
    """
    with limit_blas_threads(blas_threads):
        time.sleep(settle_s)
        fn()
        return time_calls(fn, calls)


def time_calls(fn, calls):
    """Seconds per call over ``calls`` consecutive calls, right away: no pause, no untimed call,
    so that each library runs in the wake of the other, as in one process that uses both."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - t) / calls
    finally:
        if was:
            gc.enable()
