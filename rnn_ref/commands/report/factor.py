"""How much of FACTOR each layer uses.

For every judged result of the property sweep, the FACTOR its worst element
needed (``tally.needed_factor``: (error - floor) / max(Keras envelope,
conditioning envelope), at the element closest to its budget), kept per
layer, who (Keras or an implementation) and dtype, so that the report can
give the largest value and the percentiles. Keras's own figure is the one of
the harness's check of Keras ("Keras disagrees"): its error against the
conditioning alone.

The gradient properties (a backward pass as the candidate, judged by
``Context.judge_gradients``) are tallied apart, as the ``gradients`` group:
their budget has the same terms (m = products + B*T, the envelope of d inputs
over every step), and the report gives their needed FACTOR next to the
forward one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rnn_ref.harness import tolerance
from rnn_ref.harness.context import Context
from rnn_ref.harness.properties import PROPERTIES
from rnn_ref.models.registry import SIMPLE_RNN
from rnn_ref.harness.tally import json_number, needed_factor


class FactorContext(Context):
    """A Context that also judges Keras's result of every call the way the
    harness checks Keras: against the truth Keras is held to, with the budget
    FACTOR * conditioning envelope + floor (no Keras term); each such verdict
    goes to ``on_keras(property, verdict)``. The candidate's verdicts are the
    Context's own, unchanged.

    It hooks ``Context.judge_all``, the one place that sees Keras's result,
    the truth and the conditioning together, and ``Context.judge_gradients``,
    its counterpart for the gradients of a backward pass."""

    def __init__(self, oracle=None, *, on_keras=None, **kwargs):
        super().__init__(oracle, **kwargs)
        self.on_keras = on_keras

    def judge_all(self, label, got, keras, truth, keras_truth, spread, case, kw):
        if self.on_keras is not None:
            for v in keras_verdicts(self.spec, label, keras, keras_truth, spread, case, kw):
                self.on_keras(self.property, v)
        return super().judge_all(label, got, keras, truth, keras_truth, spread, case, kw)

    def judge_gradients(self, label, got, keras, truth, keras_truth, spread, case, kw):
        if self.on_keras is not None:
            for v in keras_gradient_verdicts(self.spec, label, got, keras, truth, keras_truth, spread, case, kw):
                self.on_keras(self.property, v)
        return super().judge_gradients(label, got, keras, truth, keras_truth, spread, case, kw)


def keras_verdicts(spec, label, keras, keras_truth, spread, case, kw) -> list:
    """Keras's results judged as a candidate against ``keras_truth``, with
    that truth correctly rounded to the case's dtype in the place of Keras: the
    budget is FACTOR * max(conditioning, half an ulp of rounding) envelope +
    floor, the budget of the harness's check of Keras (the conditioning,
    measured with perturbations of 2 u, is above half an ulp wherever it
    matters), and a truth beyond the dtype's range is +-inf there, as Keras's
    result is."""
    parts = ("output", *spec.states) if kw["return_state"] else ("output",)
    as_t = lambda o: o if isinstance(o, tuple) else (o,)  # noqa: E731
    batched = np.ndim(kw["inputs"]) == 3
    m = spec.products(case.shape["D"], case.shape["U"])
    out = []
    for name, k, kt, s in zip(parts, as_t(keras), as_t(keras_truth), as_t(spread)):
        seq = name == "output" and kw["return_sequences"]
        time_axis = (1 if batched else 0) if seq else None
        with np.errstate(all="ignore"):
            rounded = np.asarray(kt, dtype=np.float64).astype(case.dtype)
            out.append(tolerance.judge(f"Keras {label}, {name}", k, rounded, kt, s, case.dtype, m=m,
                                       time_axis=time_axis))
    return out


def keras_gradient_verdicts(spec, label, got, keras, truth, keras_truth, spread, case, kw) -> list:
    """Keras's gradients (GradientTape) judged as a candidate against ``keras_truth``
    correctly rounded to the case's dtype, as ``keras_verdicts`` judges its outputs,
    with the terms of ``Context.judge_gradients``: m = one step's products + B*T, the
    envelope of d inputs over every step. One verdict per gradient the candidate
    returned; none when ``keras_truth`` is Keras itself (an activation Keras computes
    differently, whose truth the backward pass does not take: the harness does not
    check Keras there either)."""
    if keras_truth is keras:
        return []
    B, T = (np.shape(kw["inputs"]) if np.ndim(kw["inputs"]) == 3 else (1, *np.shape(kw["inputs"])))[:2]
    m = spec.products(case.shape["D"], case.shape["U"]) + B * T
    out = []
    for key, g in got.items():
        name, shown = key.split(":")[0], key.split(":")[-1]
        k = np.asarray(keras[name])
        time_axis = (np.ndim(k) - 2) if name == "inputs" else None
        with np.errstate(all="ignore"):
            rounded = np.asarray(keras_truth[name], dtype=np.float64).astype(case.dtype)
            out.append(tolerance.judge(f"Keras {label}: d {shown}", k, rounded, keras_truth[name], spread[name],
                                       case.dtype, m=m, time_axis=time_axis, whole_time=True))
    return out


@dataclass
class FactorCell:
    """The needed FACTOR of every judged result of one layer, who, sweep and dtype."""

    needed: list = field(default_factory=list)
    max_ratio: float = 0.0  # largest error / budget
    closest: str = ""  # its case
    left_out: int = 0  # Keras's results that overflowed (see FactorTally.keras_recorder)

    @classmethod
    def merged(cls, cells) -> FactorCell:
        cells = list(cells)
        worst = max(cells, key=lambda c: c.max_ratio)
        return cls([x for c in cells for x in c.needed], worst.max_ratio, worst.closest,
                   sum(c.left_out for c in cells))

    def stats(self) -> dict:
        a = np.asarray(self.needed, dtype=np.float64)
        q = (lambda p: float(np.percentile(a, p))) if a.size else (lambda p: 0.0)  # noqa: E731
        return {"verdicts": int(a.size), "max_needed_factor": json_number(float(a.max(initial=0))),
                "p99_needed_factor": json_number(q(99)), "median_needed_factor": json_number(q(50)),
                "max_budget_ratio": json_number(float(self.max_ratio)), "closest": self.closest,
                "overflowed_left_out": self.left_out}


def who_of(implementation: str, layer: str) -> str:
    """An implementation's name in the plots: ``rnn_ref (LSTM)`` for the other layers."""
    return implementation if layer == SIMPLE_RNN.name else f"{implementation} ({layer})"


#: The parts of the property sweep the figures are kept apart for, per group
#: (GROUPS): the catalogue's properties (gains widened to WIDE_GAIN) and a
#: report-only one of long sequences at each layer's chaotic gains.
SWEEPS = ("properties", "chaotic_weights")
GRADIENT_SWEEPS = ("gradients", "chaotic_gradients")

#: The groups tallied apart: the layer's outputs (the properties of a layer or a
#: Bidirectional function) and the gradients of its backward pass.
GROUPS = {"forward": SWEEPS, "gradients": GRADIENT_SWEEPS}


def sweep_of(row: str) -> str:
    """The part of the property sweep (SWEEPS, GRADIENT_SWEEPS) a row label
    (``chaotic_weights (GRU)``, ``gradients_match_keras (LSTM)``) belongs to."""
    name = row.split(" (")[0]
    if name in ("chaotic_weights", "chaotic_gradients"):  # the report's own sweeps (sweeps.catalogue)
        return name
    prop = PROPERTIES.get(name)
    return "gradients" if getattr(prop, "takes", "layer") == "gradients" else "properties"


def group_of(sweep: str) -> str:
    """The group (GROUPS) of a part of the sweep."""
    return "gradients" if sweep in GRADIENT_SWEEPS else "forward"


class FactorTally:
    """Needed FACTORs per (layer, who, sweep, dtype); ``points`` holds, per
    judged result, (who, dtype, error, budget, max ulps, Keras max ulps) for the plots."""

    def __init__(self):
        self.cells: dict = {}
        self.points: list = []

    def cell(self, layer: str, who: str, prop: str, dtype: str) -> FactorCell:
        return self.cells.setdefault((layer, who, sweep_of(prop), dtype), FactorCell())

    def add(self, layer: str, who: str, prop: str, v: tolerance.Verdict, case: str = "") -> None:
        w = v.worst
        if not w or not w.get("budget", 0) > 0:
            return
        cell = self.cell(layer, who, prop, v.dtype)
        cell.needed.append(needed_factor(w))
        ratio = w["error"] / w["budget"]
        if ratio > cell.max_ratio:
            cell.max_ratio, cell.closest = float(ratio), case

    def recorder(self, table, layer: str, implementation: str):
        """The ``record`` of a Context running ``implementation`` on ``layer``:
        into ``table`` (a ToleranceTable), here and into the plot points."""
        who = who_of(implementation, layer)

        def record(prop: str, v: tolerance.Verdict) -> None:
            table.add(prop, implementation, v)
            self.add(layer, implementation, prop, v, table.current_case)
            if v.worst:
                self.points.append((who, v.dtype, v.worst["error"], v.worst["budget"], v.max_ulps,
                                    v.keras_max_ulps))
        return record

    def keras_recorder(self, table, layer: str):
        """The ``on_keras`` of a FactorContext on ``layer``. Keras's results
        where the truth or Keras overflowed (``Verdict.overflowed``) are counted
        and left out: after Keras overflows in a row the harness stops judging
        Keras there (its NaN after an inf is no disagreement), which a verdict
        with Keras as the candidate cannot know."""
        def record(prop: str, v: tolerance.Verdict) -> None:
            if v.overflowed:
                self.cell(layer, "keras", prop, v.dtype).left_out += 1
                return
            self.add(layer, "keras", prop, v, table.current_case)
        return record

    def to_json(self, group: str = "forward") -> dict:
        """{layer: {who: {"all": stats, "by_dtype": {dtype: stats},
        "by_sweep": {sweep: {dtype: stats}}}}}, Keras first, of the results of
        ``group`` (GROUPS: "forward" or "gradients"; see docs/report.md)."""
        out: dict = {}
        order = GROUPS[group]
        keys = sorted((k for k in self.cells if k[2] in order), key=lambda k: (k[1] != "keras", order.index(k[2]), k[3]))
        for layer, who, sweep, dtype in keys:
            out.setdefault(layer, {}).setdefault(who, {}).setdefault(sweep, {})[dtype] = self.cells[
                (layer, who, sweep, dtype)]
        for per in out.values():
            for who, by_sweep in per.items():
                dtypes = sorted({d for cells in by_sweep.values() for d in cells})
                per[who] = {
                    "all": FactorCell.merged(c for cells in by_sweep.values() for c in cells.values()).stats(),
                    "by_dtype": {d: FactorCell.merged(cells[d] for cells in by_sweep.values() if d in cells).stats()
                                 for d in dtypes},
                    "by_sweep": {sw: {d: c.stats() for d, c in cells.items()} for sw, cells in by_sweep.items()},
                }
        return out


def factor_margin(factor_json: dict) -> dict:
    """Per layer: the largest needed FACTOR of any correct implementation and
    of Keras, their largest 99th percentile (over the dtypes: in float64
    rnn_ref is the truth, and its zeros would dilute the percentile of both
    dtypes together), and FACTOR over the largest (the margin)."""
    out = {}
    for layer, per in factor_json.items():
        def top(who_filter, field):
            return max((float(s[field]) for w, d in per.items() if who_filter(w) for s in d["by_dtype"].values()),
                       default=0.0)

        impl_max, keras_max = top(lambda w: w != "keras", "max_needed_factor"), top(lambda w: w == "keras",
                                                                                     "max_needed_factor")
        worst = max(impl_max, keras_max)
        out[layer] = {
            "implementations_max": impl_max,
            "implementations_p99": top(lambda w: w != "keras", "p99_needed_factor"),
            "keras_max": keras_max,
            "keras_p99": top(lambda w: w == "keras", "p99_needed_factor"),
            "margin": tolerance.FACTOR / worst if worst > 0 else None,
        }
    return out
