"""How close is close enough: a budget derived from the case, not a fixed rtol.

For a case in dtype ``dt`` (unit roundoff u: 2^-24 float32, 2^-53 float64):

* truth   the float64 reference on the case's exact values (float32 values
          are exactly representable in float64);
* e_k     |Keras in dt - truth|, Keras's own rounding error on this case;
* s       the conditioning: how far the float64 reference moves when every
          input and weight is perturbed by a few units of roundoff of dt and,
          at every step, every activation's argument and result too (Monte
          Carlo arithmetic, as Verificarlo and CADNA do it: each of those
          elementwise results is where a correct implementation in dt rounds).
          In a contracting recurrence s stays near u; with chaotic weights it
          grows like exp(lambda_1 t), as the rounding error of any correct
          implementation does; where one rounded gate decides a step (a GRU's
          z rounding to exactly 1 in float32 drops (1 - z) times a huge
          candidate) the perturbed runs take both sides of it;
* floor   the rounding of a single step, ``FLOOR_ULPS * u * sqrt(D + U + 1) * max(1, |truth|)``
          (a dot product of m terms rounds like sqrt(m) u in practice).

The budget of an element at step t is

    budget = FACTOR * max over units and over steps <= t of max(e_k, s)  +  floor

taken per batch row. The maximum over units and earlier steps makes the
budget follow the error's envelope instead of the noise of one element;
FACTOR covers the difference between two independent correct roundings,
whose ratio is a random variable (measured below, see ``FACTOR``).

An implementation fails an element when |candidate - truth| > budget. Keras
itself is held to the same rule with e_k left out of its own budget; a
failure there means that the reference or Keras is wrong, and it is
reported as such.

Non-finite values agree only with the same non-finite value in the truth
(NaN with NaN, +inf with +inf); a finite value where the truth is not
finite, or the reverse, fails.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from rnn_ref.layers import activations

#: Ratio allowed between a correct implementation's error and the envelope
#: of Keras's error and the conditioning. Measured in two sweeps (gains 0.05
#: to 3, T up to 300, every elementwise activation and mask pattern, both
#: dtypes): on 800 cases the largest ratio needed was 2.6 for Keras against
#: the conditioning, 3.7 for a fused-product loop and 7.2 for a per-sample
#: textbook loop (chaotic hard_tanh, gain 2.4); on 1200 other cases 4.55,
#: 4.03 and 2.7; 99% of cases needed less than 1.5. For LSTM and GRU
#: (docs/report.md, "FACTOR per layer"; 2786 cases at gains 0.05 to 3) at most
#: 1.51 for the reference and 2.92 for Keras, 99% under 0.02; at their chaotic
#: gains (GRU 1 to 7, LSTM 2 to 10) LSTM needed at most 3.75, GRU 8.49 (rnn_ref)
#: and 14.4 (Keras against the conditioning alone: a saturated relu6 GRU whose
#: three perturbed runs under-estimated the spread). Errors of two correct
#: roundings in a chaotic recurrence differ by a random factor, so the margin
#: is wide: 16 keeps 2x over SimpleRNN's worst and 5.5x over LSTM's and GRU's
#: at gains up to 3 (the property suite's range), and still leaves the budget of a
#: well-conditioned float32 case near 1e-5 (float64: 2e-14), far below the
#: 1e-4 (1e-7) relative errors the checker must catch (tests/test_tolerance.py).
#: Those figures are of inputs-only conditioning runs. With the activations
#: perturbed and rounded too (ACTIVATION_SLOTS), `make report FULL=1` (1627 cases,
#: 9943 results, docs/report.md) needed at most 3.69 for an implementation and 1.89
#: for Keras against the conditioning alone in the forward pass (3.52 for gradients).
FACTOR = 16.0
#: Floor in units of roundoff per sqrt(m): one step's dot product plus the
#: activation (glibc and TF document tanh/exp within 2 ulp).
FLOOR_ULPS = 4.0
#: Relative size of the perturbation used to measure conditioning, in units
#: of roundoff of the case's dtype, and the number of perturbed runs.
PERTURB_ULPS = 2.0
PERTURB_RUNS = 3
#: The keyword arguments of a forward reference that name an activation: the
#: conditioning runs replace each by the same function with its argument and its
#: result perturbed by PERTURB_ULPS * u (relative) at every call, i.e. at every
#: step and gate, where a correct implementation in the case's dtype rounds them.
#: Perturbing only the inputs, before the first step, misses rounding that one
#: step amplifies on its own. Measured (GRU, exponential candidate activation,
#: float32, T=33, B=2, D=7, U=10, gain 1, seed 28819): the update gate z = 1 - 4e-8
#: rounds to 1 in float32, so every float32 loop (Keras's and rnn_ref's agree to
#: 1e-6) drops (1 - z) h~ with h~ near 1e13 where float64 keeps 4e5; inputs-only
#: runs gave a conditioning 450 times below Keras's error there (a false alarm),
#: runs with the activations perturbed cover it.
ACTIVATION_SLOTS = ("activation", "recurrent_activation")
#: Gradients in an exploding recurrence: three perturbed runs can under-estimate the
#: spread of one element by orders of magnitude (the report measured Keras needing
#: FACTOR 48 against three runs and 0.28 against thirty, chaotic LSTM). So where the
#: three runs find a gradient ill-conditioned (spread above ILL_CONDITIONED of its
#: largest value) GRADIENT_EXTRA_RUNS more are run; and where the spread reaches
#: LOST of its largest value the gradient has no digits a budget could stand on
#: (every implementation's error is of its own size): it is not judged.
ILL_CONDITIONED = 2.0 ** -6
GRADIENT_EXTRA_RUNS = 6
LOST = 2.0 ** -4


def budget_rule_text(values: bool = True) -> str:
    """The budget rule in one line: with the numbers of FACTOR and FLOOR_ULPS
    (``values=True``), or with their names."""
    factor, floor = (f"{FACTOR:g}", f"{FLOOR_ULPS:g}") if values else ("FACTOR", "FLOOR_ULPS")
    return (f"budget = {factor} * max over units and steps <= t of max(Keras error, conditioning) "
            f"+ {floor} * u * sqrt(D + U + 1) * max(1, |truth|)")


def budget_rule() -> dict:
    """The constants of the budget and the rule in words, as report.json and
    ``pytest --tolerance-report`` record them (their ``budget_rule`` field)."""
    return {
        "FACTOR": FACTOR,
        "FLOOR_ULPS": FLOOR_ULPS,
        "PERTURB_ULPS": PERTURB_ULPS,
        "PERTURB_RUNS": PERTURB_RUNS,
        "rule": (f"{budget_rule_text(values=False)}; conditioning = largest move of the float64 reference "
                 "over PERTURB_RUNS runs with every input and weight perturbed by PERTURB_ULPS * u (relative), "
                 "and in a forward pass every activation's argument and result at every step too; "
                 "u = 2^-24 (float32), 2^-53 (float64)"),
    }


def roundoff(dtype) -> float:
    """Unit roundoff u of a float dtype (half the spacing at 1)."""
    return float(np.finfo(dtype).eps) / 2


@dataclass
class Verdict:
    """The outcome of one comparison and the figures behind it."""

    ok: bool
    label: str
    dtype: str
    max_abs: float = 0.0  # candidate vs truth
    max_rel: float = 0.0
    max_ulps: float = 0.0
    keras_max_abs: float = 0.0
    keras_max_rel: float = 0.0
    keras_max_ulps: float = 0.0
    worst: dict = field(default_factory=dict)  # the element with the largest error / budget
    budget: np.ndarray | None = field(default=None, repr=False, compare=False)
    reason: str = ""
    # The truth (rounded to the dtype) or Keras holds +-inf or NaN: the values left the
    # dtype's range. The figures above then mix finite elements of any size with
    # infinite ones; reports count such results apart (``overflowed``).
    overflowed: bool = False
    # The platform's result the candidate matched (``judge``'s alternatives), "" for the truth.
    alternative: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("budget", None)
        return d

    def summary(self) -> str:
        w = self.worst
        lines = [f"{self.label}: {self.reason or 'ok'}"]
        if w:
            lines.append(
                f"  worst element {w['index']}: candidate {w['candidate']!r}, Keras {w['keras']!r}, "
                f"float64 truth {w['truth']!r}; |candidate - truth| = {w['error']:.3g} "
                f"> budget {w['budget']:.3g}" if not self.ok else
                f"  worst element {w['index']}: error {w['error']:.3g} within budget {w['budget']:.3g}"
            )
            lines.append(
                f"  budget = {FACTOR:g} * max(Keras error {w['keras_envelope']:.3g}, conditioning "
                f"{w['conditioning_envelope']:.3g}) + floor {w['floor']:.3g}"
            )
        if self.alternative:
            lines.append(f"  judged against the result Keras gives with {self.alternative} "
                         "(platform-dependent, docs/errors.md)")
        lines.append(
            f"  candidate vs truth: max abs {self.max_abs:.3g}, max rel {self.max_rel:.3g}, "
            f"max ulps {self.max_ulps:.3g}; Keras vs truth: max abs {self.keras_max_abs:.3g}, "
            f"max rel {self.keras_max_rel:.3g}, max ulps {self.keras_max_ulps:.3g}"
        )
        return "\n".join(lines)


def _envelope(err: np.ndarray, time_axis: int | None, whole_time: bool = False) -> np.ndarray:
    """Max over the units axis, running max over time (``whole_time``: max over every
    step), broadcast back to err's shape."""
    env = np.max(err, axis=-1, keepdims=True) if err.ndim else err
    if time_axis is not None and env.ndim > 1:
        if whole_time:
            env = np.max(env, axis=time_axis, keepdims=True)
        else:
            env = np.maximum.accumulate(env, axis=time_axis)
    return np.broadcast_to(env, err.shape)


def abs_err(a: np.ndarray, truth: np.ndarray, dtype=np.float64) -> np.ndarray:
    """|a - truth|, where the truth is first rounded to ``dtype`` to decide
    non-finite agreement: a value beyond the dtype's range is +-inf there, and
    an inf or NaN agrees only with the same inf or with NaN (error 0); any
    other disagreement about finiteness is an infinite error."""
    a = np.asarray(a, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        t_d = truth.astype(dtype).astype(np.float64)
        err = np.abs(a - truth)
    nonfinite = ~np.isfinite(t_d)
    agree = (a == t_d) | (np.isnan(a) & np.isnan(t_d))
    err = np.where(nonfinite, np.where(agree, 0.0, np.inf), err)
    err = np.where(np.isfinite(t_d) & ~np.isfinite(a), np.inf, err)
    return np.where(np.isnan(err), np.inf, err)


def ulps(a: np.ndarray, truth: np.ndarray, dtype) -> np.ndarray:
    """Elementwise |a - truth| in units of the spacing of ``dtype`` at the truth."""
    t = np.asarray(truth)
    with np.errstate(over="ignore"):
        spacing = np.spacing(np.abs(np.where(np.isfinite(t), t, 0)).astype(dtype)).astype(np.float64)
        spacing = np.maximum(spacing, np.finfo(dtype).smallest_normal)
    return abs_err(a, t, dtype) / spacing


def judge(
    label: str,
    candidate: np.ndarray,
    keras: np.ndarray,
    truth: np.ndarray,
    spread: np.ndarray,
    dtype,
    *,
    m: int,
    time_axis: int | None,
    keras_truth: np.ndarray | None = None,
    whole_time: bool = False,
    alternatives: tuple = (),
) -> Verdict:
    """Judge ``candidate`` against the float64 ``truth`` with the case's budget.

    candidate, keras, truth, spread: the same shape; ``m`` = D + U + 1 terms
    per step's dot product; ``time_axis`` the axis of steps (None for a last
    output or a state); ``whole_time``: the envelope is the maximum over every
    step instead of the running maximum (a gradient, whose error grows backwards).
    ``alternatives``: ``(name, truth)`` pairs, other results Keras gives on some
    platform (``harness.context.PLATFORM_ALTERNATIVES``); the candidate is judged
    against whichever of the truth and these it matches (the whole array, not
    element by element), and so is Keras.
    """
    dtype = np.dtype(dtype)
    candidate = np.asarray(candidate)
    if candidate.shape != truth.shape:
        return Verdict(False, label, dtype.name, reason=f"shape {candidate.shape}, expected {truth.shape}")
    u = roundoff(dtype)
    truth = np.asarray(truth, dtype=np.float64)
    named = (("", truth), *((n, np.asarray(t, dtype=np.float64)) for n, t in alternatives))
    matched, truth = closest(candidate, named, dtype)
    e_c = abs_err(candidate, truth, dtype)
    _, keras_side = closest(keras, named, dtype)
    e_k = abs_err(keras, keras_side, dtype)
    overflowed = _overflowed(truth, keras, dtype)
    if keras_truth is None:
        e_k_model = e_k
    else:
        e_k_model = abs_err(keras, closest(keras, (("", keras_truth), *named[1:]), dtype)[1], dtype)
    scale = np.maximum(1.0, np.abs(np.where(np.isfinite(truth), truth, 0.0)))
    floor = FLOOR_ULPS * u * np.sqrt(m) * scale
    s_env = _envelope(np.asarray(spread, dtype=np.float64), time_axis, whole_time)
    k_env = _envelope(e_k, time_axis, whole_time)
    budget = FACTOR * np.maximum(k_env, s_env) + floor
    keras_budget = FACTOR * s_env + floor
    # Overflow to +-inf is correct rounding where the truth plus the budget
    # reaches the dtype's largest value; after Keras overflows, nothing later
    # in that row can be compared (its envelope is then infinite anyway).
    big = float(np.finfo(dtype).max)
    near_max = np.abs(np.where(np.isfinite(truth), truth, 0)) + budget >= big
    e_c = np.where(near_max & np.isinf(np.asarray(candidate, dtype=np.float64)), 0.0, e_c)
    k_over = near_max & np.isinf(np.asarray(keras, dtype=np.float64))
    e_k_model = np.where(_envelope(k_over.astype(float), time_axis, whole_time) > 0, 0.0, e_k_model)

    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        rel = lambda e: np.where(e == 0, 0.0, e / np.maximum(np.abs(truth), np.finfo(dtype).tiny))  # noqa: E731
        v = Verdict(
            ok=True, label=label, dtype=dtype.name,
            max_abs=float(e_c.max(initial=0)), max_rel=float(rel(e_c).max(initial=0)),
            max_ulps=float(ulps(candidate, truth, dtype).max(initial=0)),
            keras_max_abs=float(e_k.max(initial=0)), keras_max_rel=float(rel(e_k).max(initial=0)),
            keras_max_ulps=float(ulps(keras, keras_side, dtype).max(initial=0)), overflowed=overflowed,
            alternative=matched,
        )
        if e_c.size == 0:
            v.budget = budget
            return v
        v.budget = budget
        # Where the budget is infinite nothing can be judged (inf / inf would be NaN,
        # and a NaN would hide the largest ratio from argmax).
        ratio = np.where(np.isinf(budget), 0.0, e_c / budget)
        i = np.unravel_index(int(np.argmax(ratio)), e_c.shape)
        v.worst = dict(
            index=tuple(int(j) for j in i), candidate=_num(candidate[i]), keras=_num(keras[i]),
            truth=_num(truth[i]), error=float(e_c[i]), budget=float(budget[i]),
            keras_envelope=float(k_env[i]), conditioning_envelope=float(s_env[i]), floor=float(floor[i]),
        )
        if ratio[i] > 1:
            v.ok = False
            v.reason = f"{int(np.sum(ratio > 1))} of {e_c.size} elements exceed the budget"
        elif np.any(e_k_model > keras_budget):
            over = np.where(e_k_model > keras_budget, e_k_model / np.where(np.isinf(keras_budget), 1, keras_budget), 0)
            j = np.unravel_index(int(np.argmax(over)), e_k.shape)
            v.ok = False
            v.reason = (
                f"Keras disagrees with the float64 reference beyond its conditioning at {tuple(map(int, j))}: "
                f"Keras {_num(keras[j])}, reference {_num(truth[j])}, |diff| {float(e_k_model[j]):.3g} > "
                f"{float(keras_budget[j]):.3g} (a bug in rnn_ref or in Keras)"
            )
    return v


def closest(result, truths, dtype) -> tuple[str, np.ndarray]:
    """Of ``(name, truth)`` pairs, the one ``result`` disagrees with about finiteness
    (NaN, +-inf) in the fewest elements, then the one with the smallest finite error;
    the first on a tie."""
    if len(truths) == 1:
        return truths[0]

    def score(pair):
        e = abs_err(result, pair[1], dtype)
        return int(np.isinf(e).sum()), float(np.max(e, where=np.isfinite(e), initial=0.0))

    return min(truths, key=score)


def _overflowed(truth: np.ndarray, keras: np.ndarray, dtype) -> bool:
    """Whether the truth, rounded to ``dtype``, or Keras's result holds +-inf or NaN."""
    with np.errstate(over="ignore", invalid="ignore"):
        t_d = np.asarray(truth, dtype=np.float64).astype(dtype)
    return bool(not np.all(np.isfinite(t_d)) or not np.all(np.isfinite(np.asarray(keras, dtype=np.float64))))


def _num(x) -> float:
    return float(np.asarray(x, dtype=np.float64))


def conditioning(fn, kwargs: dict, dtype, *, rng: np.random.Generator, runs: int | None = None,
                 intermediates: bool = False, base=None):
    """How far ``fn`` (the float64 reference) moves when its floating inputs are
    perturbed by PERTURB_ULPS units of roundoff of ``dtype``, and with
    ``intermediates`` the argument and result of every activation call as well
    (the keyword arguments named in ACTIVATION_SLOTS): the elementwise maximum
    over PERTURB_RUNS runs (or ``runs``), shaped like fn's output (a tuple when
    fn returns one). The forward judgements pass ``intermediates=True``; a
    backward pass looks its derivatives up by the activation's name, so its
    conditioning perturbs the inputs only. ``base``: ``fn(**kwargs)`` when the caller has it
    already (the truth), so that it is not computed again."""
    u = roundoff(dtype)
    base = _as_tuple(fn(**kwargs) if base is None else base)
    spread = [np.zeros(b.shape) for b in base]
    for run in range(PERTURB_RUNS if runs is None else runs):
        kw = {name: _perturbed(value, u, rng) for name, value in kwargs.items()}
        if intermediates:
            # the first run rounds each activation to the nearest value of the dtype, as a
            # correctly rounded implementation does; the others perturb before rounding
            kw.update({slot: _rounding(kw[slot], dtype, rng if run else None) for slot in ACTIVATION_SLOTS
                       if slot in kw})
        with np.errstate(all="ignore"):
            moved = _as_tuple(fn(**kw))
        # Rounded to the dtype: a perturbed run that overflows the dtype where
        # the base run does not gives an infinite spread (no budget can tell a
        # correct overflow from a wrong one there).
        moved = [np.asarray(mv, dtype=np.float64).astype(dtype) for mv in moved]
        spread = [np.maximum(s, abs_err(mv, b, dtype)) for s, mv, b in zip(spread, moved, base)]
    # Where the float64 run itself is not finite, a perturbed run that agrees (the same
    # inf, or NaN) moved it by 0, and one that does not (NaN where the base is inf: an
    # inf met a gate of exactly 0 inside a step) by inf: no budget can judge there.
    return tuple(spread) if len(spread) > 1 else spread[0]


def _perturbed(value, u, rng):
    """A floating array (or a list of them, e.g. several initial states) with each
    element moved by PERTURB_ULPS * u relative; anything else (masks, options) unchanged."""
    if isinstance(value, (list, tuple)):
        return type(value)(_perturbed(v, u, rng) for v in value)
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        a = value.astype(np.float64)
        return a * (1 + PERTURB_ULPS * u * rng.standard_normal(a.shape))
    return value


def _rounding(activation, dtype, rng):
    """``activation`` (a Keras name, None or a callable) with its argument and its
    result each rounded onto the values ``dtype`` has: to the nearest one without
    ``rng``, else after a relative move of PERTURB_ULPS * u with fresh noise at every
    call (random rounding of a pre-activation and of a gate or candidate value). So a
    gate within u of 1 is exactly 1 (1 - z = 0, as in every float32 loop) or 1 - 2u,
    and a result beyond the dtype's range is +-inf: an exp candidate that overflows
    float32 inside a step, times a gate of exactly 0, is NaN there, where the float64
    truth carries on with 1e123."""
    f = activations.get(activation)
    u = roundoff(dtype)
    noise = None if rng is None else _Noise(rng, PERTURB_ULPS * u)

    def on_grid(a):  # called inside the perturbed run's errstate(all="ignore"): overflow to inf is wanted
        a = np.asarray(a)
        if noise is None:
            return a.astype(dtype).astype(np.float64)
        # the product rounded once, to dtype, as a.astype(dtype) of it would be (the loop
        # multiplies in float64 and casts its result), in one call instead of two
        moved = np.multiply(a, noise.factors(a.shape), out=np.empty(a.shape, dtype), casting="unsafe")
        return moved.astype(np.float64)

    return lambda x: on_grid(f(on_grid(x)))


class _Noise:
    """Factors 1 + scale * N(0, 1), drawn from ``rng`` many at a time and handed out in the
    shapes asked for: the same distribution as a draw per call, at a fraction of its cost on
    the small arrays of a step (a property's activation is called twice a step, thousands of
    times an example)."""

    BATCH = 4096

    def __init__(self, rng, scale):
        self.rng, self.scale = rng, scale
        self.pool, self.used = np.empty(0), 0

    def factors(self, shape):
        n = math.prod(shape)
        if self.used + n > self.pool.size:
            self.pool = 1 + self.scale * self.rng.standard_normal(max(self.BATCH, n))
            self.used = 0
        out = self.pool[self.used:self.used + n].reshape(shape)
        self.used += n
        return out


def _as_tuple(out):
    return tuple(out) if isinstance(out, tuple) else (out,)
