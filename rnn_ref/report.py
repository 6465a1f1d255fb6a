"""Numeric tolerance report: how far Keras and correct implementations are
from the float64 reference, next to the budget that decides pass or fail.

    python -m rnn_ref report [--out DIR] [--max-examples N] [--seed S] [--quick]
    python -m rnn_ref report compare OLD.json NEW.json [--threshold X]

The first form runs three sweeps and writes DIR/report.md, DIR/report.json
and PNG plots:

* every property of the catalogue, on ``rnn_ref.simple_rnn`` and on each
  correct variant of ``rnn_ref.harness.variants`` (same function, different
  rounding), with the recurrent gain widened to chaotic values (up to 3)
  wherever the activation is bounded, plus ``chaotic_weights`` (matches_keras
  on long sequences with activations that can turn chaotic). Every judged
  result goes through ``Context(record=...)`` into a ``ToleranceTable``;
* error against sequence length (tanh, T up to 512, a well-conditioned and a
  chaotic gain, both dtypes);
* error against the recurrent spectral radius (tanh, T = 200, gain 0.1 to 3.5).

The second form compares two files of the same kind (two report.json, or two
``pytest --tolerance-report`` files) figure by figure and exits with status 1
when a figure got worse by more than the threshold, 2 when the files cannot
be compared. It warns when their seeds or hypothesis profiles differ. The
JSON schema and the threshold are described in docs/report.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .harness import tolerance
from .harness.cases import BOUNDED, Case, make_case
from .harness.properties import PROPERTIES, Context, case_of

SCHEMA_VERSION = 1
#: What a JSON file of the tolerance table is (its "kind" field), and how to
#: name it in messages. ``report compare`` compares two files of the same kind.
KINDS = {
    "report": "a report.json of `python -m rnn_ref report`",
    "pytest": "a tolerance table of `pytest --tolerance-report`",
}

#: Widened recurrent gain of the property sweep (bounded activations only).
WIDE_GAIN = (0.05, 3.0)
#: Figures kept per implementation; ``compare`` looks at all of them.
FIGURES = ("max_abs", "max_rel", "max_ulps", "max_budget_ratio")
#: Default ``compare`` threshold: a figure is worse when new > THRESHOLD * old
#: (4 = two bits) and new - old is above the figure's floor (``_floor``).
THRESHOLD = 4.0
#: Figures that can make ``compare`` fail. max_abs and max_rel are listed
#: when they move but do not gate: max_abs scales with the outputs
#: (unbounded activations reach 1e30), and max_rel repeats max_ulps without
#: the dtype's grid. Failure counts are worse as soon as they grow.
GATED = ("max_ulps", "max_budget_ratio", "failed", "failed_examples")
#: Failure records kept per property, dtype and implementation (all are counted).
KEEP_FAILURES = 3

#: Default sweep sizes; ``--quick`` uses the second value. Per-property
#: weights scale ``max_examples`` for properties that make many Keras calls
#: per example (every_activation traces one Keras layer per activation).
DEFAULT_EXAMPLES, QUICK_EXAMPLES = 20, 1
WEIGHTS = {"every_activation_matches_keras": 0.3, "batch_rows_are_independent": 0.6, "chaotic_weights": 2.0}

#: Activations whose recurrence can turn chaotic at gains <= 3. The sigmoid
#: family's slope is at most 1/2 (1/4 for sigmoid): at gain 3, T = 300 their
#: conditioning stayed at 2e-7 to 3e-6 (float32), a contracting recurrence.
CHAOTIC_ACTIVATIONS = ("tanh", "hard_tanh", "softsign", "relu6")


def _sweeps() -> dict:
    """Everything the property sweep runs: the catalogue's properties, plus
    ``chaotic_weights``, a report-only sweep of matches_keras on long sequences
    with activations that can turn chaotic, where most cases are chaotic."""
    from hypothesis import strategies as st

    from .harness.cases import MASK_PATTERNS
    from .harness.properties import Property

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
    from . import simple_rnn
    from .harness.variants import CORRECT

    return {"rnn_ref": simple_rnn, **CORRECT}


# -- the tolerance table: what a run's verdicts add up to ------------------------

def _finite_max(a: float, b: float) -> float:
    if isinstance(b, float) and math.isnan(b):
        return a
    return max(a, b)


@dataclass
class Tally:
    """Figures of one implementation on one property and dtype.

    A verdict whose truth or Keras overflowed (``Verdict.overflowed``) is
    counted in ``overflowed`` and left out of max_abs, max_rel and max_ulps,
    which then describe the results that stayed in the dtype's range. It still
    counts in verdicts, failed and the budget ratio (the budget judged it).
    """

    verdicts: int = 0
    failed: int = 0  # verdicts over budget (a Keras disagreement included)
    keras_disagreements: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    max_ulps: float = 0.0
    max_budget_ratio: float = 0.0  # error / budget at the element closest to its budget
    needed_factor: float = 0.0  # the FACTOR that element would have needed
    closest: str = ""  # the case of max_budget_ratio, when known
    overflowed: int = 0  # verdicts whose truth or Keras holds +-inf or NaN
    overflowed_case: str = ""  # the first such case and result (Verdict.label)

    def add(self, v: tolerance.Verdict, case: str = "") -> None:
        self.verdicts += 1
        if not v.ok:
            self.failed += 1
            if v.reason.startswith("Keras disagrees"):
                self.keras_disagreements += 1
        if v.overflowed:
            self.overflowed += 1
            self.overflowed_case = self.overflowed_case or (f"{case}; result {v.label}" if case else v.label)
        else:
            self.max_abs = _finite_max(self.max_abs, v.max_abs)
            self.max_rel = _finite_max(self.max_rel, v.max_rel)
            self.max_ulps = _finite_max(self.max_ulps, v.max_ulps)
        w = v.worst
        if w and w.get("budget", 0) > 0:
            ratio = w["error"] / w["budget"]
            if ratio > self.max_budget_ratio:
                self.max_budget_ratio, self.closest = float(ratio), case
            self.needed_factor = _finite_max(self.needed_factor, needed_factor(w))

    def merge(self, other: "Tally") -> None:
        self.verdicts += other.verdicts
        self.failed += other.failed
        self.keras_disagreements += other.keras_disagreements
        self.overflowed += other.overflowed
        self.overflowed_case = self.overflowed_case or other.overflowed_case
        for f in ("max_abs", "max_rel", "max_ulps", "needed_factor"):
            setattr(self, f, _finite_max(getattr(self, f), getattr(other, f)))
        if other.max_budget_ratio > self.max_budget_ratio:
            self.max_budget_ratio, self.closest = other.max_budget_ratio, other.closest

    def to_dict(self) -> dict:
        return {k: _json_num(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Tally":
        t = cls()
        for k, v in d.items():
            if k in ("verdicts", "failed", "keras_disagreements", "overflowed"):
                setattr(t, k, int(v))
            elif k in ("closest", "overflowed_case"):
                setattr(t, k, v)
            elif hasattr(t, k):
                setattr(t, k, float(v))
        return t


def needed_factor(worst: dict) -> float:
    """The smallest FACTOR under which the element ``worst`` (Verdict.worst) passes."""
    excess = worst["error"] - worst["floor"]
    if excess <= 0:
        return 0.0
    env = max(worst["keras_envelope"], worst["conditioning_envelope"])
    return excess / env if env > 0 else math.inf


@dataclass
class KerasTally:
    """Keras against the float64 reference on one property and dtype; overflowed
    verdicts are counted apart and left out of the maxima, as in ``Tally``."""

    verdicts: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    max_ulps: float = 0.0
    overflowed: int = 0

    def add(self, v: tolerance.Verdict, count: bool) -> None:
        self.verdicts += int(count)
        if v.overflowed:
            self.overflowed += int(count)
            return
        self.max_abs = _finite_max(self.max_abs, v.keras_max_abs)
        self.max_rel = _finite_max(self.max_rel, v.keras_max_rel)
        self.max_ulps = _finite_max(self.max_ulps, v.keras_max_ulps)

    def merge(self, other: "KerasTally") -> None:
        self.verdicts += other.verdicts
        self.overflowed += other.overflowed
        for f in ("max_abs", "max_rel", "max_ulps"):
            setattr(self, f, _finite_max(getattr(self, f), getattr(other, f)))

    def to_dict(self) -> dict:
        return {k: _json_num(v) for k, v in self.__dict__.items()}


@dataclass
class ToleranceTable:
    """Verdicts summed per property, dtype and implementation.

    ``recorder(name)`` returns the ``record`` callable of a ``Context`` that
    runs implementation ``name``. Keras's figures are taken from every
    verdict (they do not depend on the candidate); its verdict count from the
    first implementation's only.
    """

    primary: str = "rnn_ref"
    impl: dict = field(default_factory=dict)  # (property, dtype, implementation) -> Tally
    keras: dict = field(default_factory=dict)  # (property, dtype) -> KerasTally
    examples: dict = field(default_factory=dict)  # (property, dtype) -> cases drawn
    failures: dict = field(default_factory=dict)  # (property, dtype) -> [dict]
    failed_examples: dict = field(default_factory=dict)  # (property, dtype, implementation) -> n
    # per verdict, for the plots: (implementation, dtype, error, budget, max_ulps, keras_max_ulps)
    points: list | None = None
    current_case: str = ""

    def recorder(self, implementation: str):
        def record(prop: str, verdict: tolerance.Verdict) -> None:
            self.add(prop, implementation, verdict)
        return record

    def add(self, prop: str, implementation: str, v: tolerance.Verdict) -> None:
        self.impl.setdefault((prop, v.dtype, implementation), Tally()).add(v, self.current_case)
        self.keras.setdefault((prop, v.dtype), KerasTally()).add(v, implementation == self.primary)
        if self.points is not None and v.worst:
            self.points.append((implementation, v.dtype, v.worst["error"], v.worst["budget"], v.max_ulps,
                                v.keras_max_ulps))

    def count_example(self, prop: str, dtype: str) -> None:
        self.examples[(prop, dtype)] = self.examples.get((prop, dtype), 0) + 1

    def add_failure(self, prop: str, dtype: str, implementation: str, case: str, message: str) -> None:
        key = (prop, dtype, implementation)
        self.failed_examples[key] = self.failed_examples.get(key, 0) + 1
        kept = self.failures.setdefault((prop, dtype), [])
        if sum(f["implementation"] == implementation for f in kept) < KEEP_FAILURES:
            kept.append({"implementation": implementation, "case": case, "message": message[:2000]})

    def merge(self, other: "ToleranceTable") -> None:
        for k, t in other.impl.items():
            self.impl.setdefault(k, Tally()).merge(t)
        for k, t in other.keras.items():
            self.keras.setdefault(k, KerasTally()).merge(t)
        for k, n in other.examples.items():
            self.examples[k] = self.examples.get(k, 0) + n
        for k, n in other.failed_examples.items():
            self.failed_examples[k] = self.failed_examples.get(k, 0) + n
        for k, fs in other.failures.items():
            self.failures.setdefault(k, []).extend(fs)

    def keys(self) -> list[tuple[str, str]]:
        """(property, dtype) pairs in catalogue order, then dtype order."""
        seen = {(p, d) for p, d, _ in self.impl} | set(self.keras) | set(self.examples)
        order = {p: i for i, p in enumerate(_sweeps())}
        return sorted(seen, key=lambda k: (order.get(k[0], len(order)), k[0], k[1]))

    def implementations(self) -> list[str]:
        names = list(dict.fromkeys(i for _, _, i in self.impl))
        return sorted(names, key=lambda n: (n != self.primary, names.index(n)))

    def properties_json(self) -> dict:
        """The ``properties`` block of report.json (see docs/report.md)."""
        out: dict = {}
        known = _sweeps()
        for prop, dtype in self.keys():
            p = out.setdefault(prop, {"doc": known[prop].doc if prop in known else "", "by_dtype": {}})
            entry = {
                "examples": self.examples.get((prop, dtype)),
                "keras": self.keras.get((prop, dtype), KerasTally()).to_dict(),
                "implementations": {},
                "failures": self.failures.get((prop, dtype), []),
            }
            for name in self.implementations():
                t = self.impl.get((prop, dtype, name))
                if t is None:
                    continue
                d = t.to_dict()
                d["failed_examples"] = self.failed_examples.get((prop, dtype, name), 0)
                entry["implementations"][name] = d
            p["by_dtype"][dtype] = entry
        return out

    def to_json(self) -> dict:
        return {"primary": self.primary, "properties": self.properties_json()}

    @classmethod
    def from_json(cls, data: dict) -> "ToleranceTable":
        t = cls(primary=data.get("primary", "rnn_ref"))
        for prop, p in data.get("properties", {}).items():
            for dtype, e in p["by_dtype"].items():
                if e.get("examples") is not None:
                    t.examples[(prop, dtype)] = e["examples"]
                k = KerasTally()
                for f, v in e["keras"].items():
                    if hasattr(k, f):
                        setattr(k, f, int(v) if f in ("verdicts", "overflowed") else float(v))
                t.keras[(prop, dtype)] = k
                for name, d in e["implementations"].items():
                    t.impl[(prop, dtype, name)] = Tally.from_dict(d)
                    if d.get("failed_examples"):
                        t.failed_examples[(prop, dtype, name)] = d["failed_examples"]
                if e.get("failures"):
                    t.failures[(prop, dtype)] = list(e["failures"])
        return t


def budget_rule() -> dict:
    return {
        "FACTOR": tolerance.FACTOR,
        "FLOOR_ULPS": tolerance.FLOOR_ULPS,
        "PERTURB_ULPS": tolerance.PERTURB_ULPS,
        "PERTURB_RUNS": tolerance.PERTURB_RUNS,
        "rule": ("budget = FACTOR * max over units and earlier steps of max(Keras error, conditioning) "
                 "+ FLOOR_ULPS * u * sqrt(D + U + 1) * max(1, |truth|); conditioning = largest move of the "
                 "float64 reference over PERTURB_RUNS runs with every input and weight perturbed by "
                 "PERTURB_ULPS * u (relative); u = 2^-24 (float32), 2^-53 (float64)"),
    }


def _json_num(v):
    """JSON has no inf or NaN: they are written as the strings "inf", "-inf", "nan"."""
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def _sanitize(obj):
    """``obj`` with every non-finite float written as a string (see _json_num)."""
    if isinstance(obj, dict):
        return {k: _sanitize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_sanitize(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return _json_num(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _fmt(x) -> str:
    if isinstance(x, str):
        if x not in ("inf", "-inf", "nan"):
            return x
        x = float(x)
    if x is None:
        return "-"
    if x == 0:
        return "0"
    if isinstance(x, int):
        return str(x)
    return f"{x:.3g}"


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
    s = case.shape
    new = make_case(
        B=s["B"], T=s["T"], D=s["D"], U=s["U"], dtype=case.dtype.name, seed=case.seed, gain=gain,
        activation=case.activation, use_bias=case.bias is not None, mask_pattern=case.mask_pattern,
        initial_state=case.initial_state is not None, return_sequences=case.return_sequences,
        return_state=case.return_state, go_backwards=case.go_backwards,
        zero_output_for_mask=case.zero_output_for_mask,
    )
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
    from .harness.oracle import KerasSimpleRNN

    impls = impls or implementations()
    table = table or ToleranceTable(primary=next(iter(impls)))
    oracle = oracle or KerasSimpleRNN()
    contexts = {name: Context(oracle, record=table.recorder(name)) for name in impls}
    sweeps = _sweeps()
    for name in names or sweeps:
        n = max(1, round(max_examples * WEIGHTS.get(name, 1.0)))
        start = time.perf_counter()
        widen = wide and name in PROPERTIES  # chaotic_weights draws its own gains
        done = _sweep_one(sweeps[name], n, _seed(seed, name), table, contexts, impls, widen, on_example)
        if on_property:
            on_property(name, done, n, time.perf_counter() - start)
    return table


def _seed(seed: int, name: str) -> int:
    """A seed per property: with one seed for all, hypothesis draws the same
    first cases for every property (same shapes, gains and dtype)."""
    return seed * 100003 + zlib.crc32(name.encode()) % 100003


def _sweep_one(prop, n, seed, table, contexts, impls, wide, on_example) -> int:
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

def _hi(kw: dict) -> dict:
    """The float arrays of ``kw`` in extended precision (np.longdouble)."""
    return {k: v.astype(np.longdouble) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
            for k, v in kw.items()}


def _f64(kw: dict) -> dict:
    return {k: v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
            for k, v in kw.items()}


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
    kw = case.kwargs(return_sequences=True)
    dtype = case.dtype
    with np.errstate(all="ignore"):
        truth_hi = simple_rnn_hi(kw)
        kw64 = _f64(kw)
        from . import simple_rnn

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


def simple_rnn_hi(kw: dict) -> np.ndarray:
    from . import simple_rnn

    return simple_rnn(**_hi(kw))


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
                "max_error": {n: [_json_num(float(x)) for x in a[grid - 1]] for n, a in acc.items()
                              if n not in ("conditioning", "budget")},
                "conditioning": [_json_num(float(x)) for x in acc["conditioning"][grid - 1]],
                "budget": [_json_num(float(x)) for x in acc["budget"][grid - 1]],
            }
    ulp_hist = {}
    for dtype, per in hist.items():
        ulp_hist[dtype] = {n: _histogram(np.concatenate(v)) for n, v in per.items()}
    out["ulp_histogram"] = {"regime": gains[0][0], "edges": list(ULP_EDGES), "counts": ulp_hist}
    return out


def _first_above(a: np.ndarray, level: float):
    """The first step t (1-based) where ``a`` exceeds ``level``, or None."""
    i = np.flatnonzero(np.asarray(a) > level)
    return int(i[0]) + 1 if i.size else None


#: Bin edges of the ulp histograms: 0, then powers of 2 (the last bin is open).
ULP_EDGES = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 2.0**16, 2.0**24, math.inf)


def _histogram(values: np.ndarray) -> list[int]:
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
                rows.setdefault(n, []).append(_json_num(x))
        out["by_dtype"][dtype] = {
            "max_error": {n: v for n, v in rows.items() if n not in ("conditioning", "budget_at_worst", "lyapunov")},
            "conditioning": rows["conditioning"], "budget_at_worst": rows["budget_at_worst"],
            "lyapunov": rows["lyapunov"],
        }
    return out


# -- plots ------------------------------------------------------------------------------

COLORS = {"keras": "black", "rnn_ref": "tab:blue", "float64_inside": "tab:green",
          "fused_product": "tab:orange", "per_sample_textbook": "tab:red"}


def _arr(values) -> np.ndarray:
    return np.array([float(v) for v in values], dtype=np.float64)


def _pos(a: np.ndarray, lo: float) -> np.ndarray:
    """Values for a log axis: zeros are drawn at ``lo``."""
    return np.where(a > 0, a, lo)


def plot_length(length: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    regimes = list(length["regimes"])
    fig, axes = plt.subplots(len(regimes), 2, figsize=(11, 4 * len(regimes)), squeeze=False)
    t = np.array(length["t"])
    for r, regime in enumerate(regimes):
        reg = length["regimes"][regime]
        for c, dtype in enumerate(("float32", "float64")):
            ax = axes[r][c]
            d = reg["by_dtype"][dtype]
            lo = tolerance.roundoff(dtype) * 1e-2
            for n, e in d["max_error"].items():
                ax.plot(t, _pos(_arr(e), lo), "o-", ms=3, color=COLORS.get(n), label=n,
                        lw=2.2 if n == "keras" else 1.2, alpha=0.9)
            ax.plot(t, _pos(_arr(d["conditioning"]), lo), "--", color="gray", label="conditioning s")
            ax.plot(t, _pos(_arr(d["budget"]), lo), ":", color="purple", lw=2, label="budget (rnn_ref)")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("sequence length T (error of the output at step T)")
            ax.set_ylabel("max |result - truth|")
            ax.set_title(f"{dtype}, {regime} (gain {reg['gain']:g}, lambda_1 {d['lyapunov']:+.3f})", fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"Error against sequence length (tanh, B={length['B']} D={length['D']} U={length['U']}, "
                 f"max over {length['seeds']} seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_radius(radius: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    g = np.array(radius["gain"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for c, dtype in enumerate(("float32", "float64")):
        ax = axes[c]
        d = radius["by_dtype"][dtype]
        lo = tolerance.roundoff(dtype) * 1e-2
        for n, e in d["max_error"].items():
            ax.plot(g, _pos(_arr(e), lo), "o-", ms=3, color=COLORS.get(n), label=n, lw=2.2 if n == "keras" else 1.2)
        ax.plot(g, _pos(_arr(d["conditioning"]), lo), "--", color="gray", label="conditioning s")
        ax.plot(g, _pos(_arr(d["budget_at_worst"]), lo), ":", color="purple", lw=2, label="budget at worst element")
        ax.set_yscale("log")
        ax.set_xlabel("spectral radius of recurrent_kernel (gain)")
        ax.set_ylabel(f"max |result - truth| over T={radius['T']}")
        ax.set_title(dtype)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    ax = axes[2]
    for dtype, style in (("float32", "o-"), ("float64", "s--")):
        ax.plot(g, _arr(radius["by_dtype"][dtype]["lyapunov"]), style, ms=3, label=dtype)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("spectral radius of recurrent_kernel (gain)")
    ax.set_ylabel("largest Lyapunov exponent (per step)")
    ax.set_title("chaos: lambda_1 > 0")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle(f"Error against spectral radius (tanh, T={radius['T']}, max over {radius['seeds']} seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_ulp_histograms(length: dict, points: list, path: Path, primary: str = "rnn_ref") -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 8))
    h = length["ulp_histogram"]
    for c, dtype in enumerate(("float32", "float64")):
        per = {n: np.array(v, dtype=float) for n, v in h["counts"].get(dtype, {}).items()}
        _bars(axes[0][c], per, "fraction of elements",
              f"{dtype}: every output element, {h['regime']} tanh sweep (ulps from the truth)")
        rows = [p for p in points if p[1] == dtype]
        series = {"keras": [p[5] for p in rows if p[0] == primary]}
        for p in rows:
            series.setdefault(p[0], []).append(p[4])
        per = {n: np.array(_histogram(np.array(v, dtype=float)), dtype=float) for n, v in series.items()}
        _bars(axes[1][c], per, "fraction of judged results",
              f"{dtype}: max ulps of each judged result, property sweep (gain up to {WIDE_GAIN[1]:g})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _bars(ax, counts: dict, ylabel: str, title: str) -> None:
    """Grouped bars of the fraction of each series in each ulp bin."""
    width = 0.8 / max(1, len(counts))
    for k, (n, c) in enumerate(counts.items()):
        x = np.arange(len(c)) + (k - (len(counts) - 1) / 2) * width
        ax.bar(x, c / max(1.0, c.sum()), width=width, color=COLORS.get(n), label=n)
    ax.set_xticks(np.arange(len(ULP_EDGES) - 1))
    ax.set_xticklabels(_bin_labels(), rotation=45, fontsize=7)
    if any(c.sum() > 0 for c in counts.values()):
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("ulps from the truth")
    ax.set_title(title, fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)


def _bin_labels() -> list[str]:
    """Labels of the histogram bins [lo, hi); below 0.5 ulp is correctly rounded."""
    lab = lambda x: f"{x:g}" if x < 2**16 else f"2^{int(math.log2(x))}"  # noqa: E731
    e = ULP_EDGES
    return [f"[{lab(lo)}, {lab(hi)})" for lo, hi in zip(e[:-2], e[1:-1])] + [f">= {lab(e[-2])}"]


def plot_budget(points: list, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    for c, dtype in enumerate(("float32", "float64")):
        ax = axes[c]
        rows = [p for p in points if p[1] == dtype and math.isfinite(p[3]) and p[3] > 0]
        if rows:
            lo = min(p[3] for p in rows) * 1e-3
            names = list(dict.fromkeys(p[0] for p in rows))
            for n in names:
                b = np.array([p[3] for p in rows if p[0] == n])
                e = np.array([p[2] for p in rows if p[0] == n])
                e = np.where(np.isfinite(e), e, b.max() * 10)
                ax.scatter(b, np.maximum(e, lo), s=8, alpha=0.5, color=COLORS.get(n), label=n)
            hi = max(max(p[3] for p in rows), max(p[2] for p in rows if math.isfinite(p[2])))
            ax.plot([lo, hi], [lo, hi], "k-", lw=1, label="error = budget")
            ax.plot([lo, hi], [lo / tolerance.FACTOR, hi / tolerance.FACTOR], "k:", lw=1,
                    label=f"error = budget / FACTOR ({tolerance.FACTOR:g})")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.legend(fontsize=8)
        ax.set_xlabel("budget at the element closest to its budget")
        ax.set_ylabel("|result - truth| there (zeros drawn at the bottom)")
        ax.set_title(f"{dtype}: every judged result of the property sweep (fails above the line)", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- writing the report ------------------------------------------------------------------

PLOTS = {
    "error_vs_length": "error_vs_length.png",
    "error_vs_spectral_radius": "error_vs_spectral_radius.png",
    "ulp_histograms": "ulp_histograms.png",
    "budget_vs_error": "budget_vs_error.png",
}


def environment() -> dict:
    from .harness.oracle import versions
    from . import __version__

    import hypothesis

    env = dict(versions())
    env.update(python=platform.python_version(), platform=platform.platform(), rnn_ref=__version__,
               hypothesis=hypothesis.__version__, longdouble_mantissa_bits=int(np.finfo(np.longdouble).nmant) + 1)
    return env


def summary(table: ToleranceTable) -> dict:
    out = {"examples": sum(table.examples.values()), "verdicts": 0, "failed_examples": 0, "overflowed": 0,
           "by_implementation": {}}
    for name in table.implementations():
        ts = [t for (_, _, i), t in table.impl.items() if i == name]
        fails = sum(n for (_, _, i), n in table.failed_examples.items() if i == name)
        worst = max(ts, key=lambda t: t.max_budget_ratio, default=Tally())
        out["by_implementation"][name] = {
            "verdicts": sum(t.verdicts for t in ts),
            "failed_examples": fails,
            "overflowed": sum(t.overflowed for t in ts),
            "max_budget_ratio": _json_num(worst.max_budget_ratio),
            "needed_factor": _json_num(max((t.needed_factor for t in ts), default=0.0)),
            "closest": worst.closest,
        }
        out["verdicts"] += sum(t.verdicts for t in ts)
        out["failed_examples"] += fails
        out["overflowed"] += sum(t.overflowed for t in ts)
    return out


def report_run(settings: dict) -> dict:
    """The seed and hypothesis profile of a report run, from its ``settings``:
    the fields that tell whether two files drew the same cases (see ``run_of``)."""
    return {
        "seed": settings.get("seed"),
        "hypothesis_profile": "report-quick" if settings.get("quick") else "report",
        "hypothesis_settings": {"max_examples": settings.get("max_examples"), "derandomize": False},
    }


def write_json(path: Path, table: ToleranceTable, settings: dict, length: dict, radius: dict, seconds: dict) -> dict:
    data = {
        "schema_version": SCHEMA_VERSION,
        "kind": "report",
        **report_run(settings),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": settings,
        "environment": environment(),
        "budget_rule": budget_rule(),
        "implementations": {n: (f.__doc__ or "").strip().splitlines()[0] for n, f in implementations().items()},
        "summary": summary(table),
        **table.to_json(),
        "sweeps": {"length": length, "spectral_radius": radius},
        "plots": PLOTS,
        "seconds": seconds,
    }
    path.write_text(json.dumps(_sanitize(data), indent=1, allow_nan=False) + "\n")
    return data


def write_markdown(path: Path, data: dict) -> None:
    r = data["budget_rule"]
    s = data["settings"]
    env = data["environment"]
    summ = data["summary"]
    L = []
    w = L.append
    w("# Numeric tolerance report\n")
    w(f"Generated {data['created']} by `python -m rnn_ref report` "
      f"({s['max_examples']} examples a property, seed {s['seed']}{', quick' if s['quick'] else ''}). "
      f"Keras {env['keras']}, TensorFlow {env['tensorflow']}, NumPy {env['numpy']}, Python {env['python']}.\n")
    w("## How to read it\n")
    w("Every number is a distance to the *truth*: the float64 NumPy reference run on the case's exact values "
      "(float32 values are exact in float64). In float64 that truth is `rnn_ref` itself, so `rnn_ref` and "
      "`float64_inside` show 0 there; the sweeps plotted below use an extended-precision truth "
      f"(np.longdouble, {env['longdouble_mantissa_bits']}-bit mantissa) so that float64 errors are visible.\n")
    w("- **Keras** is the live `tf.keras` layer; its error is the yardstick.")
    w("- **rnn_ref** is `rnn_ref.simple_rnn`; the other implementations compute the same function and round "
      "differently (`float64_inside`: float64 inside, rounded once; `fused_product`: one product per step on "
      "`[x_t, h]`; `per_sample_textbook`: `W @ x + U @ h + b` one sample at a time). All of them are correct, "
      "so every failure below is a false alarm of the checker, or a real disagreement between Keras and the "
      "reference.")
    w("- **max ulps** is the largest elementwise distance in units of the dtype's spacing at the truth; "
      "**max rel** divides by |truth| (large where the truth is near 0).")
    w("- **err/budget** is the largest error/budget ratio met: below 1 passes. The gap to 1 is the margin "
      "the checker kept; **needed FACTOR** is the FACTOR that element would have needed.")
    w("- **overflowed** counts the results where the truth or Keras left the dtype's range (+-inf or NaN); "
      "they are judged and counted like the others, but kept out of the max columns (see "
      "[Overflowed results](#overflowed-results)).")
    w("- Recurrent gains are widened to chaotic values (up to "
      f"{s['wide_gain'][1]:g}) for bounded activations: there errors grow like exp(lambda_1 t) and reach "
      "O(1) for every implementation, Keras included. Large numbers there are not bugs, they are the "
      "conditioning of the case, and the budget follows them.\n")
    w("See docs/report.md for the JSON schema and the `compare` threshold.\n")
    w("## The budget rule\n")
    w("```")
    w(f"budget = FACTOR * max over units and steps <= t of max(e_k, s)  +  floor")
    w(f"  FACTOR = {r['FACTOR']:g}")
    w(f"  e_k    = |Keras - truth|")
    w(f"  s      = conditioning: largest move of the float64 reference over {r['PERTURB_RUNS']} runs with every")
    w(f"           input and weight perturbed by {r['PERTURB_ULPS']:g} u (relative)")
    w(f"  floor  = {r['FLOOR_ULPS']:g} * u * sqrt(D + U + 1) * max(1, |truth|)")
    w(f"  u      = 2^-24 (float32), 2^-53 (float64)")
    w("```")
    w("A result fails when |result - truth| > budget anywhere. Keras is held to the same rule with e_k left "
      "out (a failure there is reported as \"Keras disagrees\").\n")
    w("## Summary\n")
    w(f"{summ['examples']} cases drawn, {summ['verdicts']} judged results "
      f"({summ.get('overflowed', 0)} of them overflowed, see below), {summ['failed_examples']} failed examples.\n")
    w("| implementation | judged results | failed examples | max err/budget | needed FACTOR | closest case |")
    w("|---|---:|---:|---:|---:|---|")
    for n, d in summ["by_implementation"].items():
        w(f"| {n} | {d['verdicts']} | {d['failed_examples']} | {_fmt(d['max_budget_ratio'])} | "
          f"{_fmt(d['needed_factor'])} | {d['closest'] or '-'} |")
    w("")
    _write_overflowed(w, data)
    w("## Plots\n")
    captions = {
        "error_vs_length": "Error of the output at step T against T (log grid, one return_sequences run of "
                           "length 512). Well-conditioned: errors stay at a few ulps. Chaotic: every "
                           "implementation's error grows like exp(lambda_1 T) with the conditioning, and "
                           "the budget follows.",
        "error_vs_spectral_radius": "Largest error over T = 200 steps against the spectral radius of "
                                    "recurrent_kernel, with the largest Lyapunov exponent of the trajectory: "
                                    "errors leave the roundoff level where lambda_1 turns positive.",
        "ulp_histograms": "Top: every output element of the well-conditioned tanh sweep, in ulps from the "
                          "truth. Bottom: the largest ulp distance of every judged result of the property sweep.",
        "budget_vs_error": "Each judged result of the property sweep at its element closest to the budget: "
                           "error against budget. Points under the solid line pass; points under the dotted "
                           "line would pass with FACTOR = 1.",
    }
    for key, fname in data["plots"].items():
        w(f"### {key.replace('_', ' ')}\n")
        w(f"![{key}]({fname})\n")
        w(captions[key] + "\n")
    sw = data["sweeps"]
    w("### Figures from the sweeps\n")
    length = data["sweeps"]["length"]
    first = next(iter(next(iter(length["regimes"].values()))["by_dtype"].values()))
    names = list(first["max_error"])
    w(f"Length sweep (tanh, T up to {length['T']}, max over {length['seeds']} seeds): the largest error, "
      "and the first step where it exceeds 1e-2 (lambda_1 predicts about ln(1e-2 / u) / lambda_1).\n")
    w("| regime | dtype | lambda_1 | " + " | ".join(names) + " | conditioning | budget |")
    w("|---|---|---:|" + "---:|" * (len(names) + 2))
    for regime, reg in length["regimes"].items():
        for dtype, d in reg["by_dtype"].items():
            fa = d["first_step_above_1e-2"]
            cell = lambda n, e: _fmt(max(_arr(e))) + (f" (t={fa[n]})" if fa.get(n) else "")  # noqa: E731
            w(f"| {regime} (gain {reg['gain']:g}) | {dtype} | {d['lyapunov']:+.3f} | "
              + " | ".join(cell(n, d["max_error"][n]) for n in names)
              + f" | {cell('conditioning', d['conditioning'])} | {_fmt(max(_arr(d['budget'])))} |")
    w("")
    radius = data["sweeps"]["spectral_radius"]
    w(f"Spectral radius sweep (tanh, T = {radius['T']}, max over {radius['seeds']} seeds): largest error of "
      "Keras and rnn_ref, the conditioning, and the budget where rnn_ref's error is largest.\n")
    w("| gain | lambda_1 | " + " | ".join(
        f"{dt} {c}" for dt in ("float32", "float64") for c in ("Keras", "rnn_ref", "conditioning", "budget")) + " |")
    w("|---:|---:|" + "---:|" * 8)
    for i, g in enumerate(radius["gain"]):
        cells = []
        for dt in ("float32", "float64"):
            d = radius["by_dtype"][dt]
            cells += [_fmt(d["max_error"]["keras"][i]), _fmt(d["max_error"].get("rnn_ref", ["-"] * (i + 1))[i]),
                      _fmt(d["conditioning"][i]), _fmt(d["budget_at_worst"][i])]
        w(f"| {g:g} | {float(radius['by_dtype']['float32']['lyapunov'][i]):+.3f} | " + " | ".join(cells) + " |")
    w("")
    w("## Per property\n")
    w("Columns: results judged (verdicts), failed examples, results that overflowed, and the figures "
      "against the truth over the results that did not overflow (\"-\" when all did). "
      "The Keras row is Keras against the truth on the same calls.\n")
    for prop, p in data["properties"].items():
        w(f"### {prop}\n")
        w(f"{p['doc']}\n")
        w("| dtype | examples | who | verdicts | failed | overflowed | max abs | max rel | max ulps | err/budget "
          "| needed FACTOR |")
        w("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        fails = []
        for dtype, e in p["by_dtype"].items():
            k = e["keras"]
            w(f"| {dtype} | {e['examples'] if e['examples'] is not None else '-'} | Keras | {k['verdicts']} | - | "
              f"{k.get('overflowed', 0)} | {_maxima(k)} | - | - |")
            for n, d in e["implementations"].items():
                w(f"| | | {n} | {d['verdicts']} | {d['failed_examples']} | {d.get('overflowed', 0)} | "
                  f"{_maxima(d)} | {_fmt(d['max_budget_ratio'])} | {_fmt(d['needed_factor'])} |")
            fails += [(dtype, f) for f in e["failures"]]
        w("")
        if fails:
            w("Failures:\n")
            for dtype, f in fails:
                msg = f["message"].strip().replace("\n", "\n    ")
                w(f"- {dtype}, {f['implementation']}: `{f['case']}`\n\n    {msg}\n")
    w("## Environment\n")
    w("| | |\n|---|---|")
    for k, v in env.items():
        w(f"| {k} | {v} |")
    w("")
    w("Run times (s): " + ", ".join(f"{k} {v:.1f}" for k, v in data["seconds"].items()) + "\n")
    path.write_text("\n".join(L) + "\n")


def _maxima(d: dict) -> str:
    """The max abs, max rel and max ulps cells of a tally: "-" when every verdict overflowed."""
    if d["verdicts"] and d.get("overflowed", 0) >= d["verdicts"]:
        return "- | - | -"
    return " | ".join(_fmt(d[f]) for f in ("max_abs", "max_rel", "max_ulps"))


def _write_overflowed(w, data: dict) -> None:
    """The "Overflowed results" section of report.md: what they are, where they were met."""
    primary = data.get("primary", "rnn_ref")
    rows = []
    for prop, p in data["properties"].items():
        for dtype, e in p["by_dtype"].items():
            d = e["implementations"].get(primary, {})
            n, nk = d.get("overflowed", 0), e["keras"].get("overflowed", 0)
            if n or nk:
                rows.append((prop, dtype, n, d.get("verdicts", 0), d.get("overflowed_case", "")))
    w("## Overflowed results\n")
    if not rows:
        w("No result overflowed: the truth and Keras stayed finite in every judged result.\n")
        return
    total = sum(r[2] for r in rows)
    everyone = data.get("summary", {}).get("overflowed", total)
    w(f"{total} results of {primary} overflowed ({everyone} over all implementations): the truth (the float64 "
      "reference rounded to the case's dtype) or Keras's result holds +-inf or NaN. Unbounded activations do this: an `exponential` recurrence "
      "passes float32's largest value (3.4e38) within a few dozen steps and float64's (1.8e308) soon after, "
      "and NaN follows (inf - inf, 0 * inf). Such a result is still judged element by element (an inf "
      "agrees only with the same inf, the finite elements keep their budget) and counted in verdicts, "
      "failed and err/budget. Its max abs, max rel and max ulps are left out of the max columns: they mix "
      "infinite errors with the finite elements next to the overflow, whose values are so large that a "
      "relative error of 1e-13 is an absolute error of 1e120, and ulps past the dtype's range are "
      "undefined. The max columns show the results that stayed in range; the **overflowed** column counts "
      "the others. The other implementations see the same truth and Keras, so they overflow on the same "
      "results.\n")
    w(f"| property | dtype | overflowed ({primary}) | of verdicts | first case; result |")
    w("|---|---|---:|---:|---|")
    for prop, dtype, n, v, case in rows:
        w(f"| {prop} | {dtype} | {n} | {v} | {case or '-'} |")
    w("")


# -- compare ---------------------------------------------------------------------------------

def _floor(figure: str, dtype: str) -> float:
    """Changes smaller than this never count as worse (or better), whatever the ratio."""
    u = tolerance.roundoff(dtype) if dtype in ("float32", "float64") else tolerance.roundoff("float32")
    return {"max_ulps": 2.0, "max_abs": 2 * u, "max_rel": 2 * u, "max_budget_ratio": 0.05}.get(figure, 0.0)


#: Counts compared as soon as they move; of them only GATED ones fail a comparison.
COUNTS = ("failed", "failed_examples", "overflowed")


def _figures(data: dict) -> dict:
    """(property, dtype, who, figure) -> value for every figure of a report.json."""
    rows = {}
    for prop, p in data.get("properties", {}).items():
        for dtype, e in p["by_dtype"].items():
            for f in ("max_abs", "max_rel", "max_ulps"):
                rows[(prop, dtype, "keras", f)] = float(e["keras"][f])
            if "overflowed" in e["keras"]:
                rows[(prop, dtype, "keras", "overflowed")] = float(e["keras"]["overflowed"])
            for n, d in e["implementations"].items():
                for f in FIGURES:
                    rows[(prop, dtype, n, f)] = float(d[f])
                for f in ("failed", "failed_examples"):
                    rows[(prop, dtype, n, f)] = float(d.get(f, 0))
                if "overflowed" in d:  # files written before overflowed results were counted apart lack it
                    rows[(prop, dtype, n, "overflowed")] = float(d["overflowed"])
    return rows


def compare(old: dict, new: dict, threshold: float = THRESHOLD) -> list[dict]:
    """Every figure present in both reports, with its status: "worse" or
    "better" (a GATED figure beyond the threshold), "changed" (max_abs or
    max_rel beyond the threshold, or the overflowed count, for information)
    or "same". A figure is beyond the threshold when new > threshold * old
    (or the reverse) and the difference is above its floor; counts as soon
    as they move."""
    a, b = _figures(old), _figures(new)
    rows = []
    for key in [k for k in b if k in a]:
        prop, dtype, who, fig = key
        o, n = a[key], b[key]
        with np.errstate(all="ignore"):
            ratio = n / o if o > 0 else (math.inf if n > 0 else 1.0)
        if fig in COUNTS:
            up, down = n > o, n < o
        elif math.isnan(o) or math.isnan(n):
            up, down = not (math.isnan(o) and math.isnan(n)), False
        else:
            floor = _floor(fig, dtype)
            up = n != o and n > threshold * o and n - o > floor
            down = n != o and o > threshold * n and o - n > floor
        if fig in GATED:
            status = "worse" if up else ("better" if down else "same")
        else:
            status = "changed" if up or down else "same"
        rows.append(dict(property=prop, dtype=dtype, who=who, figure=fig, old=o, new=n, ratio=ratio, status=status))
    return rows


def _missing(old: dict, new: dict) -> tuple[list, list]:
    a, b = set(_figures(old)), set(_figures(new))
    cells = lambda s: sorted({(k[0], k[1], k[2]) for k in s})  # noqa: E731
    return cells(a - b), cells(b - a)


def file_kind(data: dict) -> str | None:
    """What a tolerance-table file is: its "kind" field, or for files written
    before that field existed, what its structure says (a report.json has
    settings, sweeps and a summary; a pytest file has the implementation
    "candidate" and none of those). None when neither fits."""
    if "kind" in data:
        return data["kind"]
    if any(k in data for k in ("settings", "sweeps", "summary")):
        return "report"
    if data.get("primary") == "candidate" and "properties" in data:
        return "pytest"
    return None


def run_of(data: dict) -> dict | None:
    """The seed and hypothesis profile a file's cases were drawn with:
    {seed, hypothesis_profile, hypothesis_settings}, taken from the file's own
    fields, or from its settings for a report.json written before they were
    recorded; None when the file does not say."""
    if "hypothesis_profile" in data:
        return {k: data.get(k) for k in ("seed", "hypothesis_profile", "hypothesis_settings")}
    if file_kind(data) == "report" and "settings" in data:
        return report_run(data["settings"])
    return None


def like_for_like(old: dict, new: dict, old_name: str = "OLD", new_name: str = "NEW") -> str | None:
    """A warning when two files' cases were not drawn alike (another seed,
    profile or example count, unseeded random draws, or a file that does not
    say), or None when they were."""
    a, b = run_of(old), run_of(new)
    unknown = [n for n, r in ((old_name, a), (new_name, b)) if r is None]
    if unknown:
        return (f"{' and '.join(unknown)} {'does' if len(unknown) == 1 else 'do'} not record the seed and "
                "hypothesis profile of its run (written before they were recorded): the figures may come "
                "from different cases")
    diffs = []
    for key, label in (("seed", "seed"), ("hypothesis_profile", "hypothesis profile")):
        if a[key] != b[key]:
            diffs.append(f"{label} {a[key]!r} -> {b[key]!r}")
    sa, sb = a.get("hypothesis_settings") or {}, b.get("hypothesis_settings") or {}
    for k in sorted(set(sa) | set(sb)):
        if sa.get(k) != sb.get(k):
            diffs.append(f"{k} {sa.get(k)!r} -> {sb.get(k)!r}")
    if diffs:
        return (f"{old_name} and {new_name} were drawn differently ({', '.join(diffs)}): the figures come "
                "from different cases and are not like for like")
    if a["seed"] is None and not sa.get("derandomize"):
        return (f"{old_name} and {new_name} come from unseeded runs (hypothesis profile "
                f"{a['hypothesis_profile']!r} is not derandomized and no --hypothesis-seed was given): "
                "the figures come from different cases and are not like for like")
    return None


def _load(path: Path) -> tuple[dict | None, str]:
    """The JSON object in ``path``, or None and what was wrong with it."""
    expected = f"expected {KINDS['report']} or {KINDS['pytest']}"
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        return None, f"cannot read {path}: {e.strerror or e}"
    except ValueError as e:
        return None, f"{path} is not JSON ({e}); {expected}"
    if not isinstance(data, dict):
        return None, f"{path} holds a JSON {type(data).__name__}, not an object; {expected}"
    return data, ""


def check_comparable(old: dict, new: dict, old_name: str = "OLD", new_name: str = "NEW") -> str | None:
    """Why ``old`` and ``new`` cannot be compared (one line), or None when they can:
    both must be of a known kind, the same one, and of SCHEMA_VERSION."""
    kinds = {}
    for name, d in ((old_name, old), (new_name, new)):
        k = file_kind(d)
        if k is None:
            return (f"cannot tell what {name} is: it has no \"kind\" field, and neither the settings of a "
                    f"report.json nor the \"candidate\" implementation of a pytest file; expected "
                    f"{KINDS['report']} or {KINDS['pytest']}")
        if k not in KINDS:
            return f"{name} has kind {k!r}, expected one of {', '.join(map(repr, KINDS))}"
        kinds[name] = k
    if kinds[old_name] != kinds[new_name]:
        return (f"cannot compare {old_name} (kind {kinds[old_name]!r}: {KINDS[kinds[old_name]]}) with {new_name} "
                f"(kind {kinds[new_name]!r}: {KINDS[kinds[new_name]]}): their figures come from different "
                f"runs and implementations; compare two files of the same kind")
    for name, d in ((old_name, old), (new_name, new)):
        if d.get("schema_version") != SCHEMA_VERSION:
            return f"{name} has schema_version {d.get('schema_version')!r}, expected {SCHEMA_VERSION}"
    return None


def main_compare(argv) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m rnn_ref report compare",
        description="Compare two report.json files property by property; exit 1 when a figure got worse.")
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--threshold", type=float, default=THRESHOLD,
                    help=f"a figure is worse when new > THRESHOLD * old and the change is above its floor "
                         f"(default {THRESHOLD:g}, two bits; see docs/report.md)")
    ap.add_argument("--all", action="store_true", help="list unchanged figures too")
    args = ap.parse_args(argv)
    (old, why_old), (new, why_new) = _load(args.old), _load(args.new)
    if old is None or new is None:
        print(why_old or why_new, file=sys.stderr)
        return 2
    why = check_comparable(old, new, str(args.old), str(args.new))
    if why:
        print(why, file=sys.stderr)
        return 2
    warning = like_for_like(old, new, str(args.old), str(args.new))
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    rows = compare(old, new, args.threshold)
    from rich.console import Console
    from rich.table import Table

    console = Console() if sys.stdout.isatty() else Console(width=160)
    notes = []
    for key in ("settings", "environment", "budget_rule"):
        o, n = old.get(key, {}), new.get(key, {})
        for k in sorted(set(o) | set(n)):
            if o.get(k) != n.get(k) and k not in ("rule",):
                notes.append(f"{key}.{k}: {o.get(k)!r} -> {n.get(k)!r}")
    if notes:
        console.print("[bold]Differences in settings or environment[/bold] (figures are comparable only "
                      "for the same settings):")
        for s in notes:
            console.print(f"  {s}")
    gone, added = _missing(old, new)
    if gone:
        console.print(f"only in OLD: {', '.join('/'.join(c) for c in gone)}")
    if added:
        console.print(f"only in NEW: {', '.join('/'.join(c) for c in added)}")
    shown = [r for r in rows if args.all or r["status"] != "same" or r["old"] != r["new"]]
    table = Table(title=f"{args.old} -> {args.new} (threshold {args.threshold:g})")
    for col in ("property", "dtype", "who", "figure", "old", "new", "new/old", "status"):
        table.add_column(col, justify="right" if col in ("old", "new", "new/old") else "left")
    style = {"worse": "bold red", "better": "green", "changed": "yellow", "same": ""}
    for r in shown:
        table.add_row(r["property"], r["dtype"], r["who"], r["figure"], _fmt(r["old"]), _fmt(r["new"]),
                      _fmt(r["ratio"]), f"[{style[r['status']]}]{r['status']}[/]" if style[r["status"]] else r["status"])
    if shown:
        console.print(table)
    worse = [r for r in rows if r["status"] == "worse"]
    better = [r for r in rows if r["status"] == "better"]
    changed = [r for r in rows if r["status"] == "changed"]
    console.print(f"{len(rows)} figures compared: {len(worse)} worse, {len(better)} better, {len(changed)} "
                  f"changed (max_abs/max_rel beyond the threshold, overflowed counts; not gating), "
                  f"{len(rows) - len(worse) - len(better) - len(changed)} within it.")
    return 1 if worse else 0


# -- the command ---------------------------------------------------------------------------

def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "compare":
        return main_compare(argv[1:])
    ap = argparse.ArgumentParser(
        prog="python -m rnn_ref report",
        description="Sweep every property against Keras for rnn_ref and the correct variants, with chaotic "
                    "weights, and write report.md, report.json and plots. "
                    "`python -m rnn_ref report compare OLD.json NEW.json` compares two reports.")
    ap.add_argument("--out", type=Path, default=Path("report"), help="output directory (default: report)")
    ap.add_argument("--max-examples", type=int, default=None,
                    help=f"cases a property (default {DEFAULT_EXAMPLES}, {QUICK_EXAMPLES} with --quick)")
    ap.add_argument("--seed", type=int, default=0, help="hypothesis seed of the property sweep (default 0)")
    ap.add_argument("--quick", action="store_true", help="a small sweep for smoke tests (seconds, not minutes)")
    ap.add_argument("--properties", nargs="*", default=None, help="only these properties")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # the property sweep runs per-step softmax over one unit on purpose
    warnings.filterwarnings("ignore", message="You are using a softmax over axis -1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from .harness.oracle import KerasSimpleRNN

    max_examples = args.max_examples or (QUICK_EXAMPLES if args.quick else DEFAULT_EXAMPLES)
    names = args.properties or list(_sweeps())
    unknown = [n for n in names if n not in _sweeps()]
    if unknown:
        print(f"unknown properties: {', '.join(unknown)}", file=sys.stderr)
        return 2
    if args.quick:
        length_kw = dict(T=64, seeds=1, B=2, D=4, U=8)
        radius_kw = dict(gains=[0.5, 1.5, 3.0], T=50, seeds=1, B=2, D=4, U=8)
    else:
        length_kw, radius_kw = {}, {}
    impls = implementations()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    oracle = KerasSimpleRNN()
    table = ToleranceTable(primary="rnn_ref", points=[])
    seconds = {}
    n_examples = sum(max(1, round(max_examples * WEIGHTS.get(n, 1.0))) for n in names)
    n_length = 2 * 2 * length_kw.get("seeds", 4)
    n_radius = 2 * len(radius_kw.get("gains", range(18))) * radius_kw.get("seeds", 3)
    start = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task("properties", total=n_examples)

        def on_example(name):
            progress.update(task, advance=1, description=f"property {name}")

        def on_property(name, done, planned, secs):
            progress.update(task, advance=planned - done)
            fails = sum(n for (p, _, _), n in table.failed_examples.items() if p == name)
            progress.console.print(f"{name}: {done} cases x {len(impls)} implementations, {fails} failures, "
                                 f"{secs:.1f} s")

        t0 = time.perf_counter()
        sweep_properties(names, max_examples=max_examples, seed=args.seed, table=table, oracle=oracle,
                         impls=impls, on_example=on_example, on_property=on_property)
        seconds["properties"] = time.perf_counter() - t0
        task2 = progress.add_task("error vs sequence length", total=n_length)
        t0 = time.perf_counter()
        length = sweep_length(oracle, impls, on_run=lambda: progress.advance(task2), **length_kw)
        seconds["length_sweep"] = time.perf_counter() - t0
        task3 = progress.add_task("error vs spectral radius", total=n_radius)
        t0 = time.perf_counter()
        radius = sweep_radius(oracle, impls, on_run=lambda: progress.advance(task3), **radius_kw)
        seconds["radius_sweep"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    plot_length(length, out / PLOTS["error_vs_length"])
    plot_radius(radius, out / PLOTS["error_vs_spectral_radius"])
    plot_ulp_histograms(length, table.points, out / PLOTS["ulp_histograms"])
    plot_budget(table.points, out / PLOTS["budget_vs_error"])
    seconds["plots"] = time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - start
    settings = {"max_examples": max_examples, "seed": args.seed, "quick": bool(args.quick),
                "wide_gain": list(WIDE_GAIN), "weights": WEIGHTS, "properties": names,
                "length_sweep": {k: v for k, v in length.items() if k in ("T", "seeds", "B", "D", "U")},
                "radius_sweep": {k: v for k, v in radius.items() if k in ("T", "seeds", "B", "D", "U")}}
    data = write_json(out / "report.json", table, settings, length, radius, {k: round(v, 2) for k, v in seconds.items()})
    write_markdown(out / "report.md", data)

    summary_table = Table(title=f"Tolerance summary (details in {out / 'report.md'})")
    for col, just in (("property", "left"), ("dtype", "left"), ("cases", "right"), ("Keras ulps", "right"),
                      ("rnn_ref ulps", "right"), ("variants ulps", "right"), ("max err/budget", "right"),
                      ("failed", "right"), ("overflowed", "right")):
        summary_table.add_column(col, justify=just)
    for prop, dtype in table.keys():
        k = table.keras.get((prop, dtype), KerasTally())
        ts = {n: table.impl.get((prop, dtype, n)) for n in table.implementations()}
        ts = {n: t for n, t in ts.items() if t is not None}
        main_t = ts.get(table.primary)
        others = [t.max_ulps for n, t in ts.items() if n != table.primary]
        worst = max(ts.items(), key=lambda kv: kv[1].max_budget_ratio, default=(None, Tally()))
        fails = sum(table.failed_examples.get((prop, dtype, n), 0) for n in ts)
        summary_table.add_row(
            prop, dtype, str(table.examples.get((prop, dtype), 0)), _fmt(k.max_ulps),
            _fmt(main_t.max_ulps) if main_t else "-", _fmt(max(others)) if others else "-",
            f"{worst[1].max_budget_ratio:.3f} ({worst[0]})" if worst[0] else "-",
            f"[bold red]{fails}[/]" if fails else "0", str(main_t.overflowed) if main_t else "-")
    out_console = Console() if sys.stdout.isatty() else Console(width=160)
    out_console.print(summary_table)
    s = data["summary"]
    out_console.print(
        f"{s['examples']} cases, {s['verdicts']} judged results ({s['overflowed']} overflowed, not in the ulps "
        f"columns), {s['failed_examples']} failed examples; "
        + "; ".join(f"{n}: max err/budget {_fmt(d['max_budget_ratio'])}, needed FACTOR {_fmt(d['needed_factor'])}"
                    for n, d in s["by_implementation"].items())
        + f" (FACTOR = {tolerance.FACTOR:g}). Wrote {out}/report.md, report.json and {len(PLOTS)} plots "
          f"in {seconds['total']:.0f} s.")
    return 0
