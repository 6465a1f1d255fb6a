"""What the report runs: the property sweep over every implementation, and
the two dedicated tanh sweeps (error against sequence length and against the
recurrent spectral radius) with an extended-precision truth."""

from __future__ import annotations

import math
import time
import zlib

import numpy as np

from ..harness import tolerance
from ..harness.cases import BOUNDED, Case, make_case
from ..harness.context import Context
from ..harness.properties import PROPERTIES, case_of
from ..harness.tally import ToleranceTable, json_number

#: Widened recurrent gain of the property sweep (bounded activations only).
WIDE_GAIN = (0.05, 3.0)

#: Default sweep sizes; ``--quick`` uses the second value. Per-property
#: weights scale ``max_examples`` for properties that make many Keras calls
#: per example (every_activation traces one Keras layer per activation).
DEFAULT_EXAMPLES, QUICK_EXAMPLES = 20, 1
WEIGHTS = {"every_activation_matches_keras": 0.3, "batch_rows_are_independent": 0.6, "chaotic_weights": 2.0}

#: Activations whose recurrence can turn chaotic at gains <= 3. The sigmoid
#: family's slope is at most 1/2 (1/4 for sigmoid): at gain 3, T = 300 their
#: conditioning stayed at 2e-7 to 3e-6 (float32), a contracting recurrence.
CHAOTIC_ACTIVATIONS = ("tanh", "hard_tanh", "softsign", "relu6")

#: Bin edges of the ulp histograms: 0, then powers of 2 (the last bin is open).
ULP_EDGES = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 2.0**16, 2.0**24, math.inf)


def catalogue() -> dict:
    """Everything the property sweep runs: the catalogue's properties, plus
    ``chaotic_weights``, a report-only sweep of matches_keras on long sequences
    with activations that can turn chaotic, where most cases are chaotic."""
    from hypothesis import strategies as st

    from ..harness.cases import MASK_PATTERNS
    from ..harness.properties import Property

    chaotic = Property(
        "chaotic_weights",
        "matches_keras on long sequences (T 60-300), activations that can turn chaotic, gain 0.5-3 "
        "(report only)",
        PROPERTIES["matches_keras"].check,
        pins=dict(activation=CHAOTIC_ACTIVATIONS, mask_pattern=("none",) + MASK_PATTERNS),
        shapes=dict(gain=st.floats(0.5, 3.0), T=st.integers(60, 300)),
        anchor=None,
    )
    return {**PROPERTIES, chaotic.name: chaotic}


def implementations() -> dict:
    """The implementations the report compares: rnn_ref and the correct variants."""
    from .. import simple_rnn
    from ..variants import CORRECT

    return {"rnn_ref": simple_rnn, **CORRECT}


# -- the property sweep ------------------------------------------------------------

def regain(drawn, gain: float):
    """``drawn`` (what a property's strategy drew) with its case rebuilt at
    recurrent gain ``gain``, when the activation is bounded; unchanged otherwise.

    The case is rebuilt by ``make_case`` from its own description, so the
    reproduction snippet of a failure rebuilds it exactly.
    """
    case = case_of(drawn)
    if case.activation not in BOUNDED:
        return drawn
    new = make_case(**case.params(gain=gain))
    if not (np.array_equal(new.inputs, case.inputs) and _same(new.mask, case.mask)):
        # Not a make_case case (a property built its own arrays): scale the kernel.
        new = case._replace(recurrent_kernel=(case.recurrent_kernel * (gain / case.gain)).astype(case.dtype),
                            gain=gain)
    if isinstance(drawn, Case):
        return new
    return (new, *drawn[1:])


def _same(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))


def widened(strategy, gain=None):
    """``strategy`` with the recurrent gain redrawn from ``gain`` (default
    floats in WIDE_GAIN) for bounded activations. The property's own
    strategy is not changed."""
    from hypothesis import strategies as st

    gain = gain if gain is not None else st.floats(*WIDE_GAIN)

    @st.composite
    def draw(draw_):
        drawn = draw_(strategy)
        return regain(drawn, draw_(gain, label="widened gain"))

    return draw()


def sweep_properties(names=None, *, max_examples=DEFAULT_EXAMPLES, seed=0, table=None, oracle=None,
                     impls=None, wide=True, on_example=None, on_property=None) -> ToleranceTable:
    """Run every property (or ``names``) on every implementation, on the same
    drawn cases, and return the table of their verdicts. A failure is counted
    and kept (at most KEEP_FAILURES a cell), and the sweep goes on."""
    from ..harness.oracle import KerasOracle

    sweeps = catalogue()
    impls = impls or implementations()
    table = table or ToleranceTable(primary=next(iter(impls)), catalogue=sweeps)
    oracle = oracle or KerasOracle()
    contexts = {name: Context(oracle, record=table.recorder(name)) for name in impls}
    for name in names or sweeps:
        n = max(1, round(max_examples * WEIGHTS.get(name, 1.0)))
        start = time.perf_counter()
        widen = wide and name in PROPERTIES  # chaotic_weights draws its own gains
        done = _sweep_one(sweeps[name], n, property_seed(seed, name), table, contexts, impls, widen, on_example)
        if on_property:
            on_property(name, done, n, time.perf_counter() - start)
    return table


def property_seed(seed: int, name: str) -> int:
    """A seed per property: with one seed for all, hypothesis draws the same
    first cases for every property (same shapes, gains and dtype)."""
    return seed * 100003 + zlib.crc32(name.encode()) % 100003


def _sweep_one(prop, n, seed, table, contexts, impls, wide, on_example) -> int:
    """Run property ``prop`` on ``n`` drawn cases; the number of cases run."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    name = prop.name
    strategy = widened(prop.strategy) if wide else prop.strategy
    done = [0]

    @hypothesis_seed(seed)
    @settings(max_examples=n, deadline=None, database=None, derandomize=False,
              phases=[Phase.explicit, Phase.generate], print_blob=False,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(drawn):
        case = case_of(drawn)
        dtype = case.dtype.name
        table.count_example(name, dtype)
        table.current_case = case.describe()
        for impl_name, f in impls.items():
            ctx = contexts[impl_name]
            ctx.property = name
            try:
                with np.errstate(all="ignore"):
                    prop.check(ctx, f, drawn)
            except NotImplementedError:
                pass
            except Exception as e:  # noqa: BLE001  (a failure is data here)
                msg = str(e) if isinstance(e, AssertionError) else f"{type(e).__name__}: {e}"
                table.add_failure(name, dtype, impl_name, table.current_case, msg)
        done[0] += 1
        if on_example:
            on_example(name)

    run()
    return done[0]


# -- the dedicated sweeps ------------------------------------------------------------

def _cast(kw: dict, dtype) -> dict:
    """The float arrays of ``kw`` cast to ``dtype``."""
    return {k: v.astype(dtype) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
            for k, v in kw.items()}


def simple_rnn_hi(kw: dict) -> np.ndarray:
    """The reference on the arguments ``kw`` in extended precision (np.longdouble)."""
    from .. import simple_rnn

    return simple_rnn(**_cast(kw, np.longdouble))


def lyapunov(seq: np.ndarray, recurrent_kernel: np.ndarray, *, transient: int = 20, seed: int = 0) -> float:
    """Largest Lyapunov exponent of a tanh trajectory ``seq`` (B, T, U): the
    mean log growth of a tangent vector through J_t = diag(1 - h_t^2) R^T,
    after ``transient`` steps, averaged over the batch rows."""
    B, T, U = seq.shape
    if T <= transient + 1:
        transient = 0
    R = np.asarray(recurrent_kernel, dtype=np.float64)
    v = np.random.default_rng(seed).standard_normal((B, U))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    logs = []
    for t in range(T):
        v = (v @ R) * (1 - np.asarray(seq[:, t], dtype=np.float64) ** 2)
        n = np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-300)
        v /= n
        if t >= transient:
            logs.append(np.log(n[:, 0]))
    return float(np.mean(logs)) if logs else 0.0


def _one_run(oracle, impls, case: Case) -> dict:
    """Errors per step of Keras and each implementation on one tanh case with
    return_sequences=True: elementwise |result - extended-precision truth|,
    the harness's conditioning and budget, and the ulps of each result."""
    from .. import simple_rnn

    kw = case.kwargs(return_sequences=True)
    dtype = case.dtype
    with np.errstate(all="ignore"):
        truth_hi = simple_rnn_hi(kw)
        kw64 = _cast(kw, np.float64)
        truth64 = simple_rnn(**kw64)
        spread = tolerance.conditioning(simple_rnn, kw64, dtype, rng=np.random.default_rng(case.seed))
        results = {"keras": oracle(**kw)}
        for name, f in impls.items():
            results[name] = f(**kw)
        errors = {n: np.abs(r.astype(np.longdouble) - truth_hi).astype(np.float64) for n, r in results.items()}
        ulps = {n: tolerance.ulps(r, truth_hi.astype(np.float64), dtype) for n, r in results.items()}
        m = case.shape["D"] + case.shape["U"] + 1
        v = tolerance.judge("sweep", results[next(iter(impls))], results["keras"], truth64, spread, dtype,
                            m=m, time_axis=1)
    return {"errors": errors, "ulps": ulps, "spread": spread, "budget": np.asarray(v.budget),
            "lyapunov": lyapunov(truth64, kw64["recurrent_kernel"], seed=case.seed)}


def _per_step(a: np.ndarray) -> np.ndarray:
    """Max over batch rows and units: (B, T, U) -> (T,)."""
    return np.max(a, axis=(0, 2))


def sweep_length(oracle, impls, *, T=512, seeds=4, gains=(("well-conditioned", 0.5), ("chaotic", 3.0)),
                 B=4, D=8, U=32, on_run=None) -> dict:
    """Error at step t (= error of a length-t sequence's last output) for t = 1..T."""
    grid = np.unique(np.round(np.geomspace(1, T, 28)).astype(int))
    out = {"T": int(T), "seeds": int(seeds), "B": B, "D": D, "U": U, "activation": "tanh",
           "t": grid.tolist(), "regimes": {}}
    hist = {}
    for regime, gain in gains:
        reg = out["regimes"].setdefault(regime, {"gain": gain, "by_dtype": {}})
        for dtype in ("float32", "float64"):
            acc: dict = {}
            lyap = []
            for s in range(seeds):
                case = make_case(B=B, T=T, D=D, U=U, dtype=dtype, seed=1000 + s, gain=gain, activation="tanh")
                r = _one_run(oracle, impls, case)
                for n, e in r["errors"].items():
                    acc[n] = np.maximum(acc.get(n, 0), _per_step(e))
                acc["conditioning"] = np.maximum(acc.get("conditioning", 0), _per_step(r["spread"]))
                acc["budget"] = np.maximum(acc.get("budget", 0), _per_step(r["budget"]))
                lyap.append(r["lyapunov"])
                if regime == gains[0][0]:
                    for n, u in r["ulps"].items():
                        hist.setdefault(dtype, {}).setdefault(n, []).append(u.ravel())
                if on_run:
                    on_run()
            reg["by_dtype"][dtype] = {
                "lyapunov": float(np.mean(lyap)),
                "first_step_above_1e-2": {n: _first_above(a, 1e-2) for n, a in acc.items() if n != "budget"},
                "max_error": {n: [json_number(float(x)) for x in a[grid - 1]] for n, a in acc.items()
                              if n not in ("conditioning", "budget")},
                "conditioning": [json_number(float(x)) for x in acc["conditioning"][grid - 1]],
                "budget": [json_number(float(x)) for x in acc["budget"][grid - 1]],
            }
    ulp_hist = {}
    for dtype, per in hist.items():
        ulp_hist[dtype] = {n: histogram(np.concatenate(v)) for n, v in per.items()}
    out["ulp_histogram"] = {"regime": gains[0][0], "edges": list(ULP_EDGES), "counts": ulp_hist}
    return out


def _first_above(a: np.ndarray, level: float):
    """The first step t (1-based) where ``a`` exceeds ``level``, or None."""
    i = np.flatnonzero(np.asarray(a) > level)
    return int(i[0]) + 1 if i.size else None


def histogram(values: np.ndarray) -> list[int]:
    """Counts of ``values`` (ulps) in the bins of ULP_EDGES."""
    counts, _ = np.histogram(np.minimum(values, 1e300), bins=np.array(ULP_EDGES[:-1] + (1e301,)))
    return counts.astype(int).tolist()


def sweep_radius(oracle, impls, *, gains=None, T=200, seeds=3, B=4, D=8, U=32, on_run=None) -> dict:
    """Largest error over a length-T sequence against the recurrent spectral radius."""
    gains = np.round(np.linspace(0.1, 3.5, 18), 3) if gains is None else np.asarray(gains)
    out = {"T": int(T), "seeds": int(seeds), "B": B, "D": D, "U": U, "activation": "tanh",
           "gain": [float(g) for g in gains], "by_dtype": {}}
    for dtype in ("float32", "float64"):
        rows: dict = {}
        for g in gains:
            acc: dict = {}
            lyap = []
            for s in range(seeds):
                case = make_case(B=B, T=T, D=D, U=U, dtype=dtype, seed=2000 + s, gain=float(g), activation="tanh")
                r = _one_run(oracle, impls, case)
                for n, e in r["errors"].items():
                    acc[n] = max(acc.get(n, 0.0), float(e.max()))
                acc["conditioning"] = max(acc.get("conditioning", 0.0), float(r["spread"].max()))
                acc["budget_at_worst"] = acc.get("budget_at_worst", 0.0)
                # the budget where the primary implementation's error is largest
                e0 = r["errors"][next(iter(impls))]
                i = np.unravel_index(int(np.argmax(e0)), e0.shape)
                acc["budget_at_worst"] = max(acc["budget_at_worst"], float(r["budget"][i]))
                lyap.append(r["lyapunov"])
                if on_run:
                    on_run()
            acc["lyapunov"] = float(np.mean(lyap))
            for n, x in acc.items():
                rows.setdefault(n, []).append(json_number(x))
        out["by_dtype"][dtype] = {
            "max_error": {n: v for n, v in rows.items() if n not in ("conditioning", "budget_at_worst", "lyapunov")},
            "conditioning": rows["conditioning"], "budget_at_worst": rows["budget_at_worst"],
            "lyapunov": rows["lyapunov"],
        }
    return out
