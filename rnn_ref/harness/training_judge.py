"""The budget of a training run: the weights after N optimizer steps, judged like a layer's output.

A training run here is any function ``run(params, data) -> params``: P weight arrays and
the data (arrays: inputs, targets, sample weights) in, the P weights after its steps out,
computing in the dtype of what it is given. The harness knows no optimizer (training/ is
beside it); whoever judges passes the runs in.

* truth   ``exact_run`` (the same training in float64 arithmetic, the hyperparameters as
          the case's dtype sees them) on the case's values cast up (float32 values are
          exact in float64);
* spread  how far ``run`` in the case's dtype lands from the truth when every weight and
          every floating datum is moved by NUDGE_ULPS ulps, each in a random direction
          (``tolerance.PERTURB_RUNS`` reruns, a fixed generator): the rounding of the dtype
          plus the conditioning of the training. A contracting run keeps it near u; a large
          learning rate or many steps in an expanding regime (a chaotic run) grow it as they
          grow any correct implementation's error, so the budget grows with it instead of
          turning into a false alarm;
* judge   each weight array through ``tolerance.judge``: ``FACTOR * max(reference's error,
          spread)`` (envelope over the last axis) plus the floor ``FLOOR_ULPS u sqrt(m)
          max(1, |truth|)`` with m = N + 1 (each step rounds each weight once more). The
          reference (Keras's ``fit``, or rnn_ref's float32 training where Keras is not run)
          is held to ``FACTOR * spread + floor`` in the same call.

``judge_fit`` judges a ``fit`` and Keras's ``model.fit`` of the same case this way
(``FitRuns``: the runs, the start, Keras's weights and per-epoch losses), and Keras alone
against ``FACTOR * spread + floor``: the catalogue's ``"fit"`` property
(``training_properties.fit_equals_keras``).

Measured budgets and ratios are in tests/test_fit.py and tests/test_check_training.py.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import numpy as np

from rnn_ref.harness import tolerance

#: Ulps each weight and floating datum is moved by in a rerun (each element up or down).
NUDGE_ULPS = 2


def nudge(x, rng, ulps=NUDGE_ULPS):
    """A floating array moved ``ulps`` ulps up or down, a random direction per element;
    anything else (integer ids, labels, None) unchanged."""
    if x is None:
        return None
    x = np.asarray(x)
    if x.dtype.kind != "f":
        return x
    toward = np.where(rng.random(x.shape) < 0.5, -np.inf, np.inf).astype(x.dtype)
    for _ in range(ulps):
        x = np.nextafter(x, toward)
    return x


def as_float64(x):
    """A floating array as float64 (exact from float32); anything else unchanged."""
    if x is None:
        return None
    x = np.asarray(x)
    return x.astype(np.float64) if x.dtype.kind == "f" else x


def truth_and_spread(run: Callable, exact_run: Callable, params: Sequence, data: Sequence, *,
                     seed: int = 0, reruns: int | None = None):
    """(truth, spread): P float64 arrays each, as the module docstring defines them."""
    truth = [np.asarray(t, dtype=np.float64) for t in exact_run([as_float64(p) for p in params],
                                                                 [as_float64(d) for d in data])]
    rng = np.random.default_rng(seed)
    spread = [np.zeros(t.shape) for t in truth]
    for _ in range(tolerance.PERTURB_RUNS if reruns is None else reruns):
        with np.errstate(all="ignore"):
            moved = run([nudge(p, rng) for p in params], [nudge(d, rng) for d in data])
        spread = [np.maximum(s, tolerance.abs_err(m, t, np.asarray(p).dtype))
                  for s, m, t, p in zip(spread, moved, truth, params)]
    return truth, spread


def judge_weights(label: str, names: Sequence[str], got: Sequence, reference: Sequence, truth: Sequence,
                  spread: Sequence, dtype, steps: int) -> list:
    """One ``tolerance.Verdict`` per weight array: ``got`` against the truth with the budget
    of ``reference`` (Keras, or the reference training) and the spread."""
    verdicts = []
    for name, g, r, t, s in zip(names, got, reference, truth, spread):
        g, r, t, s = (np.asarray(a) for a in (g, r, t, s))
        if g.ndim == 0:  # a scalar weight: one "unit"
            g, r, t, s = (a.reshape(1) for a in (g, r, t, s))
        verdicts.append(tolerance.judge(f"{label}: {name}", g, r, t, s, dtype, m=steps + 1, time_axis=None))
    return verdicts


def judge_training(label: str, names: Sequence[str], got: Sequence, reference: Sequence, run: Callable,
                   exact_run: Callable, params: Sequence, data: Sequence, steps: int, *, seed: int = 0):
    """The verdicts of each weight after a training of ``steps`` steps (see the module
    docstring), and the truth and spread they were judged with."""
    dtype = np.asarray(params[0]).dtype
    truth, spread = truth_and_spread(run, exact_run, params, data, seed=seed)
    return judge_weights(label, names, got, reference, truth, spread, dtype, steps), truth, spread


def worst_ratio(verdicts) -> float:
    """The largest error / budget among the verdicts (inf for a shape or finiteness failure)."""
    ratios = []
    for v in verdicts:
        w = v.worst
        if not w:
            ratios.append(0.0 if v.ok else np.inf)
        else:
            ratios.append(w["error"] / w["budget"] if w["budget"] > 0 else (np.inf if w["error"] else 0.0))
    return max(ratios, default=0.0)



# -- a fit against Keras's ----------------------------------------------------------------

class FitRuns(NamedTuple):
    """What the ``"fit"`` property compares: a ``fit`` and Keras's ``model.fit`` of the same
    model, data and optimizer. The runs are ``(params, data) -> [*P weights, per-epoch losses]``;
    ``data`` holds the floating data the reruns nudge (the targets, the sample weights or None),
    the inputs (token ids) are the runs' own."""
    run: Callable  # the fit in the case's dtype (what is judged, and the spread's reruns)
    exact: Callable  # the same fit in float64 arithmetic, the case's constants (the truth)
    params: Sequence  # the P weights before training, ``trainable_weights``' order
    data: Sequence
    keras_weights: Sequence  # Keras's P weights after its fit
    keras_losses: Sequence  # Keras's ``history.history["loss"]``
    samples: int
    batch_size: int
    epochs: int
    label: str = "fit"

    @property
    def steps(self) -> int:
        return self.epochs * -(-self.samples // self.batch_size)

    def describe(self) -> str:
        p = np.asarray(self.params[0])
        return (f"{self.label}: {self.epochs} epochs of {self.samples} samples in batches of {self.batch_size} "
                f"({self.steps} steps), {len(self.params)} weights, {p.dtype}")


class FitJudgement(NamedTuple):
    verdicts: list  # one per weight and one for the losses: ours against the truth, Keras's in them
    keras: list  # Keras's alone, held to FACTOR * spread + floor
    ours: list  # the P weights and the losses of ``run`` on the case
    truth: list
    spread: list
    ratio: float  # our worst error / budget
    keras_ratio: float  # Keras's worst error / its budget


def judge_fit(runs: FitRuns) -> FitJudgement:
    """Our fit's weights and losses, and Keras's, against the truth within the training budget."""
    names = [*(f"w{i} {np.shape(p)}" for i, p in enumerate(runs.params)), "epoch losses"]
    ours = runs.run(runs.params, runs.data)
    keras = [*runs.keras_weights, np.asarray(runs.keras_losses)]
    verdicts, truth, spread = judge_training(runs.label, names, ours, keras, runs.run, runs.exact, runs.params,
                                             runs.data, runs.steps)
    dtype = np.asarray(runs.params[0]).dtype
    # Keras as the candidate, the truth as the "reference": its budget is FACTOR * spread + floor
    alone = judge_weights(f"{runs.label} (Keras)", names, keras, truth, truth, spread, dtype, runs.steps)
    return FitJudgement(verdicts, alone, ours, truth, spread, worst_ratio(verdicts), worst_ratio(alone))
