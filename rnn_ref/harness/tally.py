"""The tolerance table: what the verdicts of a run add up to.

A ``ToleranceTable`` sums every judged result (``tolerance.Verdict``) per
property, dtype and implementation. The pytest plugin fills one during a test
run (``pytest --tolerance-report``), ``python -m rnn_ref report`` during its
property sweep; both write it in the same JSON layout (docs/report.md), which
``report compare`` reads back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rnn_ref.harness import tolerance

#: Version of the JSON layout of a tolerance table (report.json and the pytest file).
SCHEMA_VERSION = 1
#: Failure records kept per property, dtype and implementation (all are counted).
KEEP_FAILURES = 3


def json_number(v):
    """``v``, or for a non-finite float the string "inf", "-inf" or "nan" (JSON has no infinity)."""
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def jsonable(obj):
    """``obj`` with NumPy scalars made Python numbers and every non-finite float
    written as a string (see ``json_number``), ready for ``json.dumps(allow_nan=False)``."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return json_number(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def fmt(x) -> str:
    """A figure for a table cell: 3 significant digits, "0", or "-" for None."""
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


def _finite_max(a: float, b: float) -> float:
    """max(a, b), ignoring a NaN ``b``."""
    if isinstance(b, float) and math.isnan(b):
        return a
    return max(a, b)


def needed_factor(worst: dict) -> float:
    """The smallest FACTOR under which the element ``worst`` (Verdict.worst) passes."""
    excess = worst["error"] - worst["floor"]
    if excess <= 0:
        return 0.0
    env = max(worst["keras_envelope"], worst["conditioning_envelope"])
    return excess / env if env > 0 else math.inf


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

    def merge(self, other: Tally) -> None:
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
        return {k: json_number(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict) -> Tally:
        t = cls()
        for k, v in d.items():
            if k in ("verdicts", "failed", "keras_disagreements", "overflowed"):
                setattr(t, k, int(v))
            elif k in ("closest", "overflowed_case"):
                setattr(t, k, v)
            elif hasattr(t, k):
                setattr(t, k, float(v))
        return t


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

    def merge(self, other: KerasTally) -> None:
        self.verdicts += other.verdicts
        self.overflowed += other.overflowed
        for f in ("max_abs", "max_rel", "max_ulps"):
            setattr(self, f, _finite_max(getattr(self, f), getattr(other, f)))

    def to_dict(self) -> dict:
        return {k: json_number(v) for k, v in self.__dict__.items()}


@dataclass
class ToleranceTable:
    """Verdicts summed per property, dtype and implementation.

    ``recorder(name)`` returns the ``record`` callable of a ``Context`` that
    runs implementation ``name``. Keras's figures are taken from every
    verdict (they do not depend on the candidate); its verdict count from the
    first implementation's only. ``catalogue`` (property name -> Property)
    orders the properties and gives their docs; by default the harness's
    ``PROPERTIES``.
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
    catalogue: dict | None = field(default=None, repr=False)

    def known_properties(self) -> dict:
        """The catalogue the table orders and documents its properties by."""
        if self.catalogue is None:
            from rnn_ref.harness.properties import PROPERTIES  # noqa: PLC0415  (hypothesis only when needed)

            return PROPERTIES
        return self.catalogue

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

    def merge(self, other: ToleranceTable) -> None:
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
        order = {p: i for i, p in enumerate(self.known_properties())}
        return sorted(seen, key=lambda k: (order.get(k[0], len(order)), k[0], k[1]))

    def implementations(self) -> list[str]:
        names = list(dict.fromkeys(i for _, _, i in self.impl))
        return sorted(names, key=lambda n: (n != self.primary, names.index(n)))

    def properties_json(self) -> dict:
        """The ``properties`` block of report.json (see docs/report.md)."""
        out: dict = {}
        known = self.known_properties()
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
    def from_json(cls, data: dict, catalogue: dict | None = None) -> ToleranceTable:
        """The table written by ``to_json``; figures are read back, failure records kept."""
        t = cls(primary=data.get("primary", "rnn_ref"), catalogue=catalogue)
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
