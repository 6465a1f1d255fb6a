"""Run the property catalogue on a candidate, outside pytest.

``run_property`` drives hypothesis programmatically: it draws cases, shrinks
a failure to a minimal one, and returns a ``PropertyResult`` holding the
verdict, the minimal case and a reproduction. ``python -m rnn_ref check``
and the tolerance report are built on it; the test suite runs the same
properties through pytest.

The candidate is called through ``guard.guarded``, which tells its faults
from the checker's own; a case that runs over the time limit stops the
property at once, without shrinking (every shrinking step could take the
full limit again). A failure comes with ``reproduction.reproduction``.
"""

from __future__ import annotations

import math
import time

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis.errors import Flaky

from rnn_ref.harness.cases import Support
from rnn_ref.harness.result import PropertyResult
from rnn_ref.harness.guard import CaseTimeout, describe_exception, guarded
from rnn_ref.harness.context import CandidateError, Context, PropertyFailure
from rnn_ref.harness.properties import PROPERTIES, Unsupported, case_of, properties_for
from rnn_ref.harness.reproduction import option_overrides, reproduction


class _Stop(BaseException):
    # Ends the hypothesis run early (a timeout, or the shrinking budget spent);
    # hypothesis lets non-Exception errors through without shrinking them.
    pass


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
        strategy = prop.strategy_for(support, ctx.spec)
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
        for anchor in prop.anchors(support, ctx.spec) if anchors else ():
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
            reproduction=reproduction(name, drawn, target=target, layout=layout,
                                       overrides=option_overrides(case, last_kwargs, error)),
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


def run_all(candidate, names=None, *, progress=None, **kw) -> list[PropertyResult]:
    """Run every property (or ``names``) on ``candidate``; ``progress(result)`` after each.
    The cases are drawn inside ``support``, by default ``candidate.support`` (set by
    ``candidate.load_candidate``) or everything."""
    kw.setdefault("support", getattr(candidate, "support", None))
    ctx = kw.pop("ctx", None) or Context()
    results = []
    for name in names or properties_for(ctx.spec.name):
        r = run_property(name, candidate, ctx, **kw)
        results.append(r)
        if progress:
            progress(r)
    return results
