"""Run the property catalogue on a candidate, outside pytest.

``run_property`` drives hypothesis programmatically: it draws cases, shrinks
a failure to a minimal one, and returns a ``PropertyResult`` holding the
verdict, the minimal case and a reproduction. ``python -m rnn_ref check``
and the tolerance report are built on it; the test suite runs the same
properties through pytest.

The candidate is called through a guard that tells its faults from the
checker's own:

* an exception raised inside the candidate becomes ``CandidateRaised`` (a
  ``CandidateError``), so the property fails with the exception named;
  ``NotImplementedError`` passes through and marks the example as declined;
* with ``case_timeout`` the candidate's own time on one case (all its calls
  for that case; Keras and the reference are not counted) is limited, and
  a case that runs over stops the property at once, without shrinking
  (every shrinking step could take the full limit again).
"""

from __future__ import annotations

import math
import signal
import sysconfig
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis.errors import Flaky

from . import tolerance
from .cases import Support, features_of
from .properties import PROPERTIES, CandidateError, Context, PropertyFailure, Unsupported, case_of


_WRAPPER_FILES = {__file__, __file__.replace("runner.py", "properties.py"),
                  __file__.replace("runner.py", "candidate.py"), str(Path(__file__).parent.parent / "check.py")}
_LIBRARY_DIRS = tuple({sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")})


class CaseTimeout(Exception):
    """The candidate took longer than the per-case limit."""


class CandidateRaised(CandidateError):
    """The candidate raised an exception other than NotImplementedError."""


class _Alarm(BaseException):
    # Raised by SIGALRM inside the candidate. A BaseException, so that a
    # candidate's own ``except Exception`` cannot swallow it.
    pass


class _Stop(BaseException):
    # Ends the hypothesis run early (a timeout, or the shrinking budget spent);
    # hypothesis lets non-Exception errors through without shrinking them.
    pass


@dataclass
class PropertyResult:
    name: str
    status: str  # "pass", "FAIL", "unsupported", "error"
    examples: int = 0  # examples run, shrinking steps included
    seconds: float = 0.0
    message: str = ""
    case: str = ""  # the minimal failing case, described
    reproduction: str = ""
    verdicts: list = field(default_factory=list)  # Verdict.to_dict() of the failure
    declined: int = 0  # examples on which the candidate raised NotImplementedError
    note: str = ""  # how the case was found (e.g. "not shrunk: ...")
    failed: int = 0  # examples that failed (while searching and shrinking)
    drawn: object = None  # the failing case as drawn (not serialised)

    @property
    def checked(self) -> int:
        """Examples the candidate ran and that were judged."""
        return self.examples - self.declined

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "drawn"}
        d["checked"] = self.checked
        return d


@contextmanager
def _time_limit(seconds: float | None, exc=None):
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
            with _time_limit(remaining, _Alarm()):
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


def _size(drawn) -> tuple:
    """Sort key of a drawn case: smaller arrays first, then fewer steps, rows, features, units."""
    s = case_of(drawn).shape
    return (s["B"] * s["T"] * (s["D"] + s["U"]), s["T"], s["B"], s["D"], s["U"])


def run_property(
    name: str,
    candidate,
    ctx: Context | None = None,
    *,
    support: Support | None = None,
    max_examples: int = 25,
    seed: int | None = 0,
    case_timeout: float | None = None,
    shrink: bool = True,
    shrink_seconds: float | None = None,
    anchors: bool = True,
    on_example=None,
    coverage: set | None = None,
    target: str | None = None,
    layout: str = "keras",
) -> PropertyResult:
    """Check one property of ``candidate``; never raises for a candidate's fault.

    Cases are drawn inside ``support`` (default: everything); a property that
    needs something outside it is "unsupported" without running. When the
    drawn cases pass, the property's realistic-size cases (``anchors``) run
    too. ``case_timeout`` limits the candidate's time on one case;
    ``shrink_seconds`` limits the time spent shrinking a failure (the
    smallest failing case seen so far is reported when it runs out).
    ``on_example(examples, declined, failed)`` is called after each example;
    ``coverage`` (a set) collects ``cases.features_of`` of the candidate's calls.
    ``target`` and ``layout`` only shape the reproduction.
    """
    prop = PROPERTIES[name]
    ctx = ctx or Context()
    ctx.property = name
    ctx.support = support = support or ctx.support
    try:
        strategy = prop.strategy_for(support)
    except Unsupported as e:
        return PropertyResult(name, "unsupported", message=str(e))
    state = {"examples": 0, "declined": 0, "failed": 0, "unsupported": {}, "last": None,
             "candidate_seconds": 0.0, "failed_at": None, "best": None, "stop": None}
    if coverage is not None:
        state["coverage"] = coverage
    fn = guarded(candidate, case_timeout, state)

    def run_one(drawn):
        state["examples"] += 1
        state["last"] = drawn
        state["candidate_seconds"] = 0.0
        state["last_kwargs"] = None
        try:
            prop.check(ctx, fn, drawn)
        except NotImplementedError as e:
            state["declined"] += 1
            why = str(e).strip() or "NotImplementedError"
            state["unsupported"][why] = state["unsupported"].get(why, 0) + 1
            return  # an unsupported option is not a failure
        except CaseTimeout as e:
            state["failed"] += 1
            state["best"] = (drawn, e, state["last_kwargs"])
            state["stop"] = "not shrunk: a case that runs over the time limit stops the property"
            raise _Stop() from None
        except BaseException as e:
            state["failed"] += 1
            if state["failed_at"] is None:
                state["failed_at"] = time.perf_counter()
            if state["best"] is None or _size(drawn) <= _size(state["best"][0]):
                state["best"] = (drawn, e, state["last_kwargs"])
            raise
        finally:
            if on_example:
                on_example(state["examples"], state["declined"], state["failed"])

    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if shrink else [])

    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=seed is None,
              phases=phases, print_blob=False, report_multiple_bugs=False, verbosity=Verbosity.quiet,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much])
    @given(strategy)
    def check(drawn):
        if (state["failed_at"] is not None and shrink_seconds is not None
                and time.perf_counter() - state["failed_at"] > shrink_seconds):
            state["stop"] = f"shrinking stopped after {shrink_seconds:g} s; the smallest failing case found is shown"
            raise _Stop()
        run_one(drawn)

    if seed is not None:
        check = _seeded(check, seed)
    start = time.perf_counter()
    error = None
    try:
        check()
        for anchor in prop.anchors(support) if anchors else ():
            try:
                run_one(anchor)
            except _Stop:
                raise
            except BaseException as e:  # noqa: BLE001
                if isinstance(e, KeyboardInterrupt):
                    raise
                state["stop"] = ("found at the seed's size (T=250, D=32, U=100) after the smaller random "
                                 "cases passed; not shrunk")
                raise _Stop() from e
    except _Stop:
        drawn, error, last_kwargs = state["best"]
    except Flaky as e:
        drawn, last_kwargs = state["last"], state.get("last_kwargs")
        error = CandidateError(
            "the candidate's result is not reproducible: a case failed once and passed when run again "
            f"({type(e).__name__})")
    except Exception as e:  # noqa: BLE001
        drawn, error, last_kwargs = state["last"], e, state.get("last_kwargs")
    seconds = time.perf_counter() - start
    counts = dict(examples=state["examples"], declined=state["declined"], failed=state["failed"])
    if error is not None:
        case = case_of(drawn) if drawn is not None else None
        faulty = isinstance(error, (PropertyFailure, CandidateError, CaseTimeout))
        return PropertyResult(
            name, "FAIL" if faulty else "error", seconds=seconds,
            message=_message(error),
            case=case.describe() if case is not None else "",
            reproduction=_reproduction(name, drawn, target=target, layout=layout,
                                       overrides=_option_overrides(case, last_kwargs, error)),
            verdicts=[v.to_dict() for v in getattr(error, "verdicts", [])],
            note=state["stop"] or "", drawn=drawn, **counts,
        )
    reasons = sorted(state["unsupported"], key=state["unsupported"].get, reverse=True)
    if state["examples"] == state["declined"]:
        why = "; ".join(reasons) if reasons else "no example ran"
        return PropertyResult(name, "unsupported", seconds=seconds, message=f"every example declined: {why}", **counts)
    return PropertyResult(name, "pass", seconds=seconds, message="; ".join(reasons), **counts)


def _seeded(test, seed):
    from hypothesis import seed as hypothesis_seed

    return hypothesis_seed(seed)(test)


def _message(e: BaseException) -> str:
    if isinstance(e, PropertyFailure):
        notes = []
        for v in getattr(e, "verdicts", []):
            w = v.worst or {}
            if not v.ok and w and math.isnan(w.get("candidate", 0.0)) and math.isfinite(w.get("keras", math.nan)):
                notes.append(f"{v.label}: the candidate returned NaN where Keras has a number")
        return "\n".join([*notes, str(e)])
    if isinstance(e, (CandidateError, CaseTimeout)):
        return str(e)
    return f"checker error (not the candidate's fault?): {describe_exception(e)}"


OPTIONS = ("activation", "return_sequences", "return_state", "go_backwards", "zero_output_for_mask")


def _option_overrides(case, last_kwargs, error) -> dict:
    """Options of the candidate's last call that differ from the case's own, when
    that call is the one judged (a failure with verdicts)."""
    if case is None or not last_kwargs or not getattr(error, "verdicts", None):
        return {}
    own = case.kwargs()
    return {k: last_kwargs[k] for k in OPTIONS
            if k in last_kwargs and isinstance(last_kwargs[k], (str, bool)) and last_kwargs[k] != own[k]}


#: A reproduction prints the case's arrays when they hold at most this many numbers.
SMALL_CASE = 64


def _reproduction(name: str, case, *, target: str | None = None, layout: str = "keras",
                  overrides: dict | None = None) -> str:
    """A script that rebuilds the case (``case``: a Case, or what the property
    drew) and runs the candidate, Keras and the float64 reference on it, then
    the property itself. With ``target`` it imports the candidate from there."""
    if case is None:
        return ""
    drawn = case
    case = case_of(drawn)
    lines = [case.snippet().rstrip("\n")]
    arg = "case"
    if drawn is not case:
        extras = ", ".join(repr(_plain(x)) for x in drawn[1:])
        lines.append(f"drawn = (case, {extras})  # the case and what the property drew with it")
        arg = "drawn"
    arrays = {k: v for k, v in case.kwargs().items() if isinstance(v, np.ndarray)}
    if sum(v.size for v in arrays.values()) <= SMALL_CASE:
        lines += ["import numpy as np",
                  "with np.printoptions(precision=9, suppress=False):",
                  "    for name, value in case.kwargs().items():",
                  "        if isinstance(value, np.ndarray):",
                  "            print(f'{name} = {value!r}')"]
    if target is None:
        load = "candidate = your_function  # the function under test, called like rnn_ref.simple_rnn"
        support = ""
    else:
        layout_arg = "" if layout == "keras" else f", layout={layout!r}"
        load = (f"candidate = load_candidate({target!r}{layout_arg})  # run from the directory the check ran in; "
                "it probes what the function handles")
        support = "support=candidate.support"
    opts = "".join(f", {k}={v!r}" for k, v in (overrides or {}).items())
    lines += [
        "import os",
        'os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")',
        *(["from rnn_ref.harness.candidate import load_candidate"] if target is not None else []),
        "from rnn_ref.harness.properties import PROPERTIES, Context",
        "from rnn_ref.harness.runner import compare",
        load,
        f"compare(candidate, case{opts})  # candidate vs Keras vs float64 truth, worst element",
        "try:",
        f"    PROPERTIES[{name!r}].check(Context({support}), candidate, {arg})",
        f"    print({name + ' holds on this case'!r})",
        "except AssertionError as failure:",
        f"    print({name + ' fails:'!r}, failure)",
    ]
    return "\n".join(lines) + "\n"


def _plain(x):
    """Drawn extras as plain Python (lists of ints) for the reproduction."""
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (list, tuple)):
        return type(x)(_plain(v) for v in x)
    if isinstance(x, np.generic):
        return x.item()
    return x


def compare(candidate, case, *, oracle=None, file=None, **overrides) -> str:
    """Run ``candidate``, Keras and the float64 reference on ``case`` (with option
    overrides); print and return, for each returned array, the element where the
    candidate is furthest from the truth."""
    from ..simple_rnn import simple_rnn
    from .oracle import KerasSimpleRNN

    kw = case.kwargs(**overrides)
    head = f"{case.describe()}" + "".join(f"; {k}={v!r}" for k, v in overrides.items())
    lines = [head]
    try:
        with np.errstate(all="ignore"):
            got = candidate(**kw)
    except Exception as e:  # noqa: BLE001
        lines.append(f"  the candidate raised {describe_exception(e)}")
        got = None
    if got is not None:
        keras = (oracle or KerasSimpleRNN())(**kw)
        with np.errstate(all="ignore"):
            truth = simple_rnn(**case.astype("float64").kwargs(**overrides))
        parts = ("output", "final_state") if kw["return_state"] else ("output",)
        as_t = lambda o: tuple(o) if isinstance(o, (tuple, list)) else (o,)  # noqa: E731
        if len(as_t(got)) != len(parts):
            lines.append(f"  the candidate returned {len(as_t(got))} arrays, expected {len(parts)} ({', '.join(parts)})")
        for part, g, k, t in zip(parts, as_t(got), as_t(keras), as_t(truth)):
            g = np.asarray(g)
            if g.shape != t.shape or g.dtype != case.dtype:
                lines.append(f"  {part}: candidate {g.dtype}{g.shape}, expected {case.dtype}{t.shape}")
                continue
            err = tolerance._abs_err(g, t, case.dtype)  # non-finite values agree only with the same
            i = tuple(int(j) for j in np.unravel_index(int(np.argmax(err)), err.shape)) if err.size else ()
            lines.append(
                f"  {part}{list(i)}: candidate {float(g[i])!r}, Keras {float(k[i])!r}, "
                f"float64 truth {float(t[i])!r}; max |candidate - truth| = {float(err[i]):.3g}"
            )
    text = "\n".join(lines)
    print(text, file=file)
    return text


def run_all(candidate, names=None, *, progress=None, **kw) -> list[PropertyResult]:
    """Run every property (or ``names``) on ``candidate``; ``progress(result)`` after each.
    The cases are drawn inside ``support``, by default ``candidate.support`` (set by
    ``candidate.load_candidate``) or everything."""
    kw.setdefault("support", getattr(candidate, "support", None))
    ctx = kw.pop("ctx", None) or Context()
    results = []
    for name in names or PROPERTIES:
        r = run_property(name, candidate, ctx, **kw)
        results.append(r)
        if progress:
            progress(r)
    return results
