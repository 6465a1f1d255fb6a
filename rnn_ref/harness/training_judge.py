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

Measured budgets and ratios are in tests/test_fit.py and tests/test_check_training.py.
"""

from __future__ import annotations

from typing import Callable, Sequence

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

