"""Run the property catalogue on a candidate, outside pytest.

``run_property`` drives hypothesis programmatically: it draws cases, shrinks
a failure to a minimal one, and returns a ``PropertyResult`` holding the
verdict, the minimal case and a reproduction. ``python -m rnn_ref check``
and the tolerance report are built on it; the test suite runs the same
properties through pytest.
"""

from __future__ import annotations

import signal
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, given, settings

from .properties import PROPERTIES, CandidateError, Context, PropertyFailure, case_of


class CaseTimeout(Exception):
    """The candidate took longer than the per-case limit."""


@dataclass
class PropertyResult:
    name: str
    status: str  # "pass", "FAIL", "unsupported", "error"
    examples: int = 0
    seconds: float = 0.0
    message: str = ""
    case: str = ""  # the minimal failing case, described
    reproduction: str = ""
    verdicts: list = field(default_factory=list)  # Verdict.to_dict() of the failure

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@contextmanager
def _time_limit(seconds: float | None):
    """Raise CaseTimeout in the main thread after ``seconds`` (POSIX only)."""
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        yield
        return

    def _raise(signum, frame):
        raise CaseTimeout(f"the candidate took longer than {seconds:g} s on one case")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_property(
    name: str,
    candidate,
    ctx: Context | None = None,
    *,
    max_examples: int = 25,
    seed: int | None = 0,
    case_timeout: float | None = None,
    shrink: bool = True,
) -> PropertyResult:
    """Check one property of ``candidate``; never raises for a candidate's fault."""
    prop = PROPERTIES[name]
    ctx = ctx or Context()
    ctx.property = name
    state = {"examples": 0, "unsupported": None, "last": None}

    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if shrink else [])

    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=seed is None,
              phases=phases, print_blob=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much])
    @given(prop.strategy)
    def check(drawn):
        state["examples"] += 1
        state["last"] = drawn
        try:
            with _time_limit(case_timeout):
                prop.check(ctx, candidate, drawn)
        except NotImplementedError as e:
            state["unsupported"] = str(e) or "NotImplementedError"
            return  # an unsupported option is not a failure

    if seed is not None:
        check = _seeded(check, seed)
    start = time.perf_counter()
    try:
        check()
    except (PropertyFailure, CandidateError, CaseTimeout, Exception) as e:  # noqa: BLE001
        case = case_of(state["last"]) if state["last"] is not None else None
        return PropertyResult(
            name, "FAIL", state["examples"], time.perf_counter() - start,
            message=_message(e),
            case=case.describe() if case is not None else "",
            reproduction=_reproduction(name, case),
            verdicts=[v.to_dict() for v in getattr(e, "verdicts", [])],
        )
    seconds = time.perf_counter() - start
    if state["unsupported"] is not None:
        return PropertyResult(name, "unsupported", state["examples"], seconds, message=state["unsupported"])
    return PropertyResult(name, "pass", state["examples"], seconds)


def _seeded(test, seed):
    from hypothesis import seed as hypothesis_seed

    return hypothesis_seed(seed)(test)


def _message(e: BaseException) -> str:
    if isinstance(e, (PropertyFailure, CandidateError, CaseTimeout)):
        return str(e)
    tb = traceback.extract_tb(e.__traceback__)
    where = f" (at {tb[-1].filename}:{tb[-1].lineno})" if tb else ""
    return f"the candidate raised {type(e).__name__}: {e}{where}"


def _reproduction(name: str, case) -> str:
    if case is None:
        return ""
    return (
        case.snippet()
        + "from rnn_ref.harness.properties import PROPERTIES, Context\n"
        + f"# then: PROPERTIES[{name!r}].check(Context(), your_function, case)\n"
        + "# or compare directly:\n"
        + "import rnn_ref; expected = rnn_ref.simple_rnn(**case.astype('float64').kwargs())\n"
        + "got = your_function(**case.kwargs())\n"
    )


def run_all(candidate, names=None, *, progress=None, **kw) -> list[PropertyResult]:
    """Run every property (or ``names``) on ``candidate``; ``progress(result)`` after each."""
    ctx = kw.pop("ctx", None) or Context()
    results = []
    for name in names or PROPERTIES:
        r = run_property(name, candidate, ctx, **kw)
        results.append(r)
        if progress:
            progress(r)
    return results
