"""Calling a candidate so that its faults are told from the checker's own.

* an exception raised inside the candidate becomes ``CandidateRaised`` (a
  ``CandidateError``), named with the innermost frame of the candidate's
  code; ``NotImplementedError`` passes through and marks the example as
  declined;
* with ``case_timeout`` the candidate's own time on one case (all its calls
  for that case; Keras and the reference are not counted) is limited.
"""

from __future__ import annotations

import signal
import sysconfig
import threading
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from rnn_ref.harness.cases import features_of
from rnn_ref.harness.context import CandidateError

_HERE = Path(__file__).parent
_WRAPPER_FILES = {str(_HERE / f) for f in ("guard.py", "runner.py", "properties.py", "candidate.py", "probing.py")} | {
    str(_HERE.parent / "commands" / "check.py")}
_LIBRARY_DIRS = tuple({sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")})


class CaseTimeout(Exception):
    """The candidate took longer than the per-case limit."""


class CandidateRaised(CandidateError):
    """The candidate raised an exception other than NotImplementedError."""


class _Alarm(BaseException):
    # Raised by SIGALRM inside the candidate. A BaseException, so that a
    # candidate's own ``except Exception`` cannot swallow it.
    pass


@contextmanager
def time_limit(seconds: float | None, exc=None):
    """Raise ``exc`` (default CaseTimeout) in the main thread after ``seconds``
    (POSIX only; elsewhere, or off the main thread, there is no limit)."""
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        yield
        return

    def _raise(signum, frame):
        if exc is None:
            raise CaseTimeout(f"the candidate took longer than {seconds:g} s on one case")
        raise exc

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def describe_exception(e: BaseException) -> str:
    """``TypeError: message (at file.py:12)``, naming the innermost frame of the
    code that raised it: library frames (NumPy, the standard library) and the
    checker's own call wrappers are skipped when there is another."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename not in _WRAPPER_FILES]
    own = [f for f in frames if not f.filename.startswith(_LIBRARY_DIRS)]
    tb = own or frames
    where = f" (at {tb[-1].filename}:{tb[-1].lineno})" if tb else ""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}{where}"


def guarded(candidate, case_timeout: float | None = None, state: dict | None = None):
    """``candidate`` wrapped as described in the module docstring.

    ``state["candidate_seconds"]`` accumulates the candidate's time; reset it
    to 0 at the start of a case. ``state["last_kwargs"]`` is the last call's
    keyword arguments.
    """
    state = {"candidate_seconds": 0.0} if state is None else state
    state.setdefault("candidate_seconds", 0.0)

    def call(*args, **kwargs):
        state["last_kwargs"] = kwargs
        remaining = None
        if case_timeout:
            remaining = case_timeout - state["candidate_seconds"]
            if remaining <= 0:
                raise CaseTimeout(f"the candidate took longer than {case_timeout:g} s on one case")
        start = time.perf_counter()
        try:
            with time_limit(remaining, _Alarm()):
                out = candidate(*args, **kwargs)
        except _Alarm:
            raise CaseTimeout(f"the candidate took longer than {case_timeout:g} s on one case") from None
        except (NotImplementedError, CandidateError):
            raise  # declined, or misbehaviour the adapter already named
        except (Exception, SystemExit) as e:  # noqa: BLE001  (anything the candidate raises is its fault)
            raise CandidateRaised(f"the candidate raised {describe_exception(e)}") from e
        finally:
            state["candidate_seconds"] += time.perf_counter() - start
        if "coverage" in state:
            state["coverage"] |= features_of(kwargs)
        for part in out if isinstance(out, (tuple, list)) else (out,):
            try:
                np.asarray(part)
            except Exception as e:  # noqa: BLE001
                raise CandidateError(f"the candidate returned something that is not an array: {describe_exception(e)}") from None
        return out

    call.__name__ = getattr(candidate, "__name__", "candidate")
    call.__wrapped__ = candidate
    return call
