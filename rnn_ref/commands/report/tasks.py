"""The report's work cut into tasks, and their results merged.

A report run is a list of ``Task``\\ s (``plan``): one per (layer, property)
of the property sweep, and one per (layer, dedicated sweep). ``run_task``
runs one of them in any process (the client, a Dask worker of a
``LocalCluster`` or of an external cluster) and returns a picklable result:

* a property task returns the rows of its ``ToleranceTable`` (one property of
  one layer, its catalogue dropped), its FACTOR cells and plot points
  (``PropertyResult``);
* a dedicated task returns the dict its sweep function builds
  (``DedicatedResult``).

Reproducibility: everything a task draws depends on the task alone. A
property task's hypothesis seed is ``sweeps.property_seed(report seed, row
label)``, computed where the task runs from the report's seed and the task's
name, never from the worker or the order; the dedicated sweeps build their
cases from fixed seeds. ``merge`` folds the results in the order of ``plan``
(not the order they finished), so the merged table, FACTOR tally and sweeps
are the same whatever the number of workers.

A worker process lives across tasks: the Keras layers its oracles build stay
in ``oracle._SHARED`` (the process-wide ``LayerCache``) for the next task on
that worker; each result says how many were cached when it started
(``worker["cached_layers"]``).
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from rnn_ref.models.registry import RECURRENT
from rnn_ref.harness.tally import ToleranceTable
from rnn_ref.commands.report.dedicated import radius_gains, radius_grid, sweep_gradient_length, sweep_gradient_radius, sweep_length, sweep_radius
from rnn_ref.commands.report.factor import FactorCell, FactorTally
from rnn_ref.commands.report.sweeps import applies, examples_of, implementations, label, labelled_catalogue, sweep_properties

#: The dedicated sweeps of a layer: the key in report.json's ``sweeps.by_layer[layer]``
#: and the key of its time in report.json's ``seconds``.
DEDICATED = {"length": "length_sweep", "spectral_radius": "radius_sweep",
             "gradient_length": "gradient_length_sweep", "gradient_spectral_radius": "gradient_radius_sweep"}

#: The full sizes of the dedicated sweeps (the sweep functions' own defaults), per kind.
FULL_SIZES = {
    "length": dict(T=512, seeds=4, B=4, D=8, U=32),
    "spectral_radius": dict(gain_fractions=None, gain_points=18, T=200, seeds=3, B=4, D=8, U=32),
    "gradient_length": dict(T=128, points=8, seeds=2, B=4, D=8, U=32),
    "gradient_spectral_radius": dict(gain_fractions=None, gain_points=12, T=100, seeds=2, B=4, D=8, U=32),
}


#: The sweep sizes of a run: cases a property (before WEIGHTS) and the dedicated
#: sweeps' sizes over FULL_SIZES. "default" is what ``make report`` runs (chosen
#: to take under 3 minutes on 2 cores, docs/scale.md), "full" the whole sweep
#: (``make report FULL=1``), "quick" a smoke test.
SIZES = {
    "full": {"examples": 20, "sweeps": {}},
    "default": {"examples": 8, "sweeps": {
        "length": dict(T=256, seeds=2),
        "spectral_radius": dict(gain_points=9, seeds=2),
        "gradient_length": dict(T=96, points=6, seeds=1),
        "gradient_spectral_radius": dict(gain_points=6, seeds=1),
    }},
    "quick": {"examples": 1, "sweeps": {
        "length": dict(T=64, seeds=1, B=2, D=4, U=8),
        "spectral_radius": dict(gain_fractions=(0.15, 0.5, 1.0), T=50, seeds=1, B=2, D=4, U=8),
        "gradient_length": dict(T=24, points=3, seeds=1, B=2, D=4, U=8),
        "gradient_spectral_radius": dict(gain_fractions=(0.5, 1.0), T=24, seeds=1, B=2, D=4, U=8),
    }},
}


@dataclass(frozen=True)
class Task:
    """One unit of a report run. ``kind`` is "property" or a key of DEDICATED;
    ``name`` the property's name (or the sweep's kind); ``options`` the
    property sweep's (max_examples, seed, wide_gain) or the sweep's sizes, as
    sorted (key, value) pairs so that a Task is hashable and picklable."""

    kind: str
    layer: str
    name: str
    options: tuple = ()

    @property
    def key(self) -> str:
        """The task's name, unique in a run: the property's row label
        (``matches_keras (LSTM)``) or ``sweep length (LSTM)``."""
        if self.kind == "property":
            return label(self.name, self.layer)
        return f"sweep {self.kind} ({self.layer})"

    @property
    def kw(self) -> dict:
        return dict(self.options)

    def units(self) -> int:
        """What the progress bar counts for this task: cases drawn (a property)
        or runs of the layer (a dedicated sweep)."""
        kw = self.kw
        if self.kind == "property":
            return examples_of(self.name, kw["max_examples"])
        return dedicated_runs(self.kind, self.layer, kw)

    def steps(self) -> int:
        """Time steps this task runs in all (for the time estimate): cases for a
        property task, sequence steps summed over the runs of a dedicated sweep."""
        kw = self.kw
        if self.kind == "property":
            return self.units()
        if self.kind == "gradient_length":
            return 2 * 2 * int(_length_grid(kw["T"], kw["points"]).sum()) * kw["seeds"]
        return self.units() * kw["T"]


def _length_grid(T: int, points: int) -> np.ndarray:
    """The lengths of the gradient length sweep (as ``dedicated.sweep_gradient_length`` builds them)."""
    return np.unique(np.round(np.geomspace(1, T, points)).astype(int))


def dedicated_runs(kind: str, layer: str, kw: dict) -> int:
    """Runs of ``layer`` (one case each) of dedicated sweep ``kind`` with sizes ``kw``."""
    if kind == "length":
        return 2 * 2 * kw["seeds"]  # two regimes, two dtypes
    if kind == "gradient_length":
        return 2 * 2 * len(_length_grid(kw["T"], kw["points"])) * kw["seeds"]
    n_gains = len(_gains(kind, layer, kw))
    return 2 * n_gains * kw["seeds"]


def _gains(kind: str, layer: str, kw: dict) -> list:
    """The gains of a spectral radius sweep: ``gain_fractions`` of the layer's
    radius top, or ``gain_points`` gains from 0.1 to that top (``dedicated.radius_grid``)."""
    if kw.get("gain_fractions") is not None:
        return radius_gains(layer, kw["gain_fractions"])
    return radius_grid(layer, kw["gain_points"]).tolist()


def plan(names, layers, *, max_examples: int, seed: int, wide_gain, sizes: dict) -> list[Task]:
    """The tasks of a report run, in the order their results are merged: the
    property sweep layer by layer (the order of ``labelled_catalogue``), then
    each layer's four dedicated sweeps. ``sizes`` gives, per kind of DEDICATED,
    the sweep's sizes (FULL_SIZES's keys)."""
    options = (("max_examples", int(max_examples)), ("seed", int(seed)),
               ("wide_gain", tuple(float(g) for g in wide_gain)))
    tasks = [Task("property", layer, n, options) for layer in layers for n in names if applies(n, layer)]
    for layer in layers:
        for kind in DEDICATED:
            kw = {**FULL_SIZES[kind], **sizes.get(kind, {})}
            tasks.append(Task(kind, layer, kind, tuple(sorted(kw.items()))))
    return tasks


# -- running one task -----------------------------------------------------------------

@dataclass
class PropertyResult:
    """What a property task sends back: its table (one row label, both dtypes),
    its FACTOR cells and plot points, the cases it ran and its seconds."""

    key: str
    table: ToleranceTable
    factor_cells: dict
    factor_points: list
    done: int
    seconds: float
    worker: dict = field(default_factory=dict)


@dataclass
class DedicatedResult:
    """What a dedicated task sends back: the sweep's dict and its seconds."""

    key: str
    sweep: dict
    seconds: float
    worker: dict = field(default_factory=dict)


def worker_state() -> dict:
    """This process's id and the Keras layers its oracles hold (the process-wide
    LayerCache of ``harness.oracle``), read before a task runs."""
    from rnn_ref.harness import oracle  # keeps TensorFlow's module out of a NumPy-only import of this one

    return {"pid": os.getpid(), "cached_layers": sum(len(c) for c in oracle._SHARED.values())}


def quiet_warnings() -> None:
    """The warnings a report run expects, silenced in the process that runs a
    task (a Dask worker does not inherit the client's filters): the property
    sweep's per-step softmax over one unit, on purpose; and hypothesis's notice
    that the global ``random`` module moved during a draw, which on a Dask worker
    is the worker's own event loop using it in another thread (the strategies
    draw from hypothesis's seeded generator, not from ``random``)."""
    warnings.filterwarnings("ignore", message="You are using a softmax over axis -1")
    warnings.filterwarnings("ignore", message="Do not use the `random` module inside strategies")


def run_task(task: Task, on_example=None) -> PropertyResult | DedicatedResult:
    """Run ``task`` in this process and return its picklable result.
    ``on_example(row)`` is called after each case of a property task (in-process
    progress; a Dask worker has nobody to call)."""
    quiet_warnings()
    state = worker_state()
    start = time.perf_counter()
    if task.kind == "property":
        return _run_property(task, on_example, state, start)
    return DedicatedResult(task.key, _run_dedicated(task), time.perf_counter() - start, state)


def _run_property(task: Task, on_example, state: dict, start: float) -> PropertyResult:
    kw = task.kw
    table = ToleranceTable(primary="rnn_ref", catalogue=labelled_catalogue([task.name], [task.layer]))
    factors = FactorTally()
    done = [0]

    def on_property(row, n, planned_n, secs):
        done[0] = n

    sweep_properties([task.name], layers=(task.layer,), max_examples=kw["max_examples"], seed=kw["seed"],
                     table=table, factors=factors, wide_gain=kw["wide_gain"], on_example=on_example,
                     on_property=on_property)
    table.catalogue = None  # Property objects hold hypothesis strategies: the client has its own catalogue
    table.current_case = ""
    return PropertyResult(task.key, table, factors.cells, factors.points, done[0], time.perf_counter() - start,
                          state)


def _run_dedicated(task: Task) -> dict:
    from rnn_ref.harness.backprop import reference_backward
    from rnn_ref.harness.oracle import KerasOracle

    spec, kw = RECURRENT[task.layer], task.kw
    oracle = KerasOracle(spec)
    if task.kind in ("spectral_radius", "gradient_spectral_radius"):
        gains = _gains(task.kind, task.layer, kw)
        kw = {k: v for k, v in kw.items() if k not in ("gain_fractions", "gain_points")}
        kw["gains"] = gains
    if task.kind == "length":
        return sweep_length(oracle, implementations(task.layer), layer=task.layer, **kw)
    if task.kind == "spectral_radius":
        return sweep_radius(oracle, implementations(task.layer), layer=task.layer, **kw)
    backward = reference_backward(spec.reference)
    if task.kind == "gradient_length":
        return sweep_gradient_length(oracle, backward, layer=task.layer, **kw)
    if task.kind == "gradient_spectral_radius":
        return sweep_gradient_radius(oracle, backward, layer=task.layer, **kw)
    raise ValueError(f"unknown task kind {task.kind!r}")


# -- merging ---------------------------------------------------------------------------

@dataclass
class Merged:
    """A run's results put together: the tolerance table, the FACTOR tally,
    the dedicated sweeps per layer and the seconds the tasks took, per part."""

    table: ToleranceTable
    factors: FactorTally
    dedicated: dict
    seconds: dict


def merge(tasks: list[Task], results: dict, catalogue: dict) -> Merged:
    """Fold ``results`` (task key -> result) in the order of ``tasks``; the
    order they arrived in plays no part. Every task must have its result.
    ``catalogue`` is the run's ``labelled_catalogue`` (the table's order and docs)."""
    missing = [t.key for t in tasks if t.key not in results]
    if missing:
        raise ValueError(f"no result for {len(missing)} task(s): {', '.join(missing[:5])}")
    table = ToleranceTable(primary="rnn_ref", catalogue=catalogue)
    factors = FactorTally()
    dedicated: dict = {}
    seconds = {"properties": 0.0, **{v: 0.0 for v in DEDICATED.values()}}
    for task in tasks:
        r = results[task.key]
        if task.kind == "property":
            table.merge(r.table)
            for key, cell in r.factor_cells.items():
                merge_cell(factors.cells.setdefault(key, FactorCell()), cell)
            factors.points.extend(r.factor_points)
            seconds["properties"] += r.seconds
        else:
            dedicated.setdefault(task.layer, {})[task.kind] = r.sweep
            seconds[DEDICATED[task.kind]] += r.seconds
    return Merged(table, factors, dedicated, seconds)


def merge_cell(into: FactorCell, other: FactorCell) -> None:
    """Add ``other``'s needed FACTORs to ``into`` as if its verdicts had come
    after ``into``'s (the first of equal largest ratios keeps its case)."""
    into.needed.extend(other.needed)
    if other.max_ratio > into.max_ratio:
        into.max_ratio, into.closest = other.max_ratio, other.closest
    into.left_out += other.left_out


# -- the time estimate ------------------------------------------------------------------

#: Seconds a case of a property task takes on one worker, per layer (SimpleRNN's
#: cases run four implementations, but its cases are smaller), times CASE_WEIGHT
#: of the property. Measured from report.json's ``tasks`` of one full run
#: (``report --full``, 2 local workers, 98 tasks, 731 s of task time in 404 s of
#: wall time) on this project's 2-core x86-64 machine, shared with another job
#: (load average about 6), TensorFlow 2.21, Keras 3.15: a task's seconds over its
#: cases, median over the properties of the layer. The weights are the ratios
#: of a property's seconds a case to that median (the mean over the layers), for
#: those more than 1.5 times away from it; the rest count 1. Building and
#: tracing a Keras layer for each new configuration is most of a case's time.
CASE_SECONDS = {"SimpleRNN": 0.30, "LSTM": 0.31, "GRU": 0.28}
CASE_WEIGHT = {"every_activation_matches_keras": 9.0, "every_activation_gradients_match_keras": 6.1,
               "chaotic_gradients": 2.9, "last_output_gradient_is_sequence_gradient_at_last_step": 2.5,
               "go_backwards_equals_forward_on_reversed_input": 2.3, "bidirectional_matches_keras": 1.85,
               "masked_steps_add_nothing_to_gradients": 1.65, "gradients_match_finite_differences": 0.1,
               "single_step_equals_gate_equations": 0.12, "unroll_true_equals_unroll_false": 0.5}
#: Seconds per time step of a dedicated sweep's runs (``Task.steps``), per kind and
#: layer, from the same run: the task's seconds over its steps.
STEP_SECONDS = {
    "length": {"SimpleRNN": 0.43e-3, "LSTM": 0.72e-3, "GRU": 0.70e-3},
    "spectral_radius": {"SimpleRNN": 0.31e-3, "LSTM": 0.53e-3, "GRU": 0.84e-3},
    "gradient_length": {"SimpleRNN": 1.2e-3, "LSTM": 3.6e-3, "GRU": 2.7e-3},
    "gradient_spectral_radius": {"SimpleRNN": 0.67e-3, "LSTM": 2.2e-3, "GRU": 2.0e-3},
}
#: Seconds before the first task runs (the workers start and import TensorFlow)
#: and after the last (merge, plots, report.md), from a default run (plots 8.3 s).
START_SECONDS, FINISH_SECONDS = 10.0, 10.0


def estimate_task(task: Task) -> float:
    """The seconds ``task`` should take on one worker of the measuring machine."""
    if task.kind == "property":
        return task.steps() * CASE_SECONDS[task.layer] * CASE_WEIGHT.get(task.name, 1.0)
    return task.steps() * STEP_SECONDS[task.kind][task.layer]


def estimate_seconds(tasks: list[Task], workers: int) -> float:
    """The wall time of running ``tasks`` on ``workers`` workers (0: in this
    process), writing included: the tasks' seconds spread over the workers,
    never less than the longest task."""
    each = [estimate_task(t) for t in tasks]
    spread = sum(each) / max(workers, 1)
    return START_SECONDS + max(spread, max(each, default=0.0)) + FINISH_SECONDS


def duration(seconds: float) -> str:
    """``seconds`` for a person: "45 s", "3 min 10 s"."""
    seconds = round(seconds)
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"
