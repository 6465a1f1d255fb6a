"""The training properties, defined once: applied to rnn_ref's optimizers by the suite
(tests/test_optimizers.py, tests/test_check_training.py) and to a learner's training step
by ``python -m rnn_ref check --training``.

Three kinds (``TrainingProperty.takes``):

* ``"optimizer"``: ``check(O, **drawn)`` with ``O`` a namespace of optimizer classes
  (``rnn_ref.training.optimizers``, or the same with one class replaced by a mutant: the
  harness does not import training/, which sits beside it). Float64 runs against an
  equation written out here differ only by rounding: the bound is ``within_floor``,
  FACTOR * FLOOR_ULPS ulps of the magnitudes involved (``tolerance``'s constants);
* ``"step"``: ``check(trainer, case)``, a ``Trainer`` (the learner's steps, the reference
  training in the case's dtype and its exact float64 twin) on a ``SoftmaxCase``; judged by
  ``training_judge`` (truth, spread of reruns from nudged weights and data, ``tolerance.judge``);
* ``"fit"``: ``check(runs)``, a ``training_judge.FitRuns`` (our ``fit`` in the case's dtype,
  its float64 exact twin, the weights and data before training, Keras's weights and per-epoch
  losses after ``model.fit``): the weights and losses after ``fit`` equal Keras's, both within
  the training budget (``training_judge.judge_fit``); a slip in ``fit`` is in its twin too,
  and shows as Keras's error beyond its budget. No strategy: each case is a Keras run,
  built by the caller (tests/test_fit.py); the check returns the ``FitJudgement``.

Each check raises ``TrainingFailure`` with what was wrong and what was expected (and, where
judged against a budget, the worst error / budget as ``ratio``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
from hypothesis import strategies as st

from rnn_ref.harness import tolerance
from rnn_ref.harness.training_judge import FitRuns, judge_fit, judge_training, worst_ratio


class TrainingFailure(AssertionError):
    """A training property does not hold; the message says where and by how much."""

    def __init__(self, message, ratio=None):
        super().__init__(message)
        self.ratio = ratio  # the worst error / budget, where the property has a budget


@dataclass(frozen=True)
class TrainingProperty:
    name: str
    doc: str
    check: Callable
    strategy: Callable | None  # () -> a strategy of the check's keyword arguments ("optimizer") or a
    # SoftmaxCase ("step"); None for "fit" (the cases are Keras runs, the caller's)
    takes: str


TRAINING_PROPERTIES: dict[str, TrainingProperty] = {}


def prop(name, takes, strategy):
    def register(check):
        TRAINING_PROPERTIES[name] = TrainingProperty(name, (check.__doc__ or "").strip().split("\n")[0],
                                                     check, strategy, takes)
        return check
    return register


def properties(takes):
    return {n: p for n, p in TRAINING_PROPERTIES.items() if p.takes == takes}


# -- optimizer cases ------------------------------------------------------------------------

class OptimizerCase(NamedTuple):
    """P = 2 variables shaped (D, U) and (U,), D != U; N steps of gradients."""
    dtype: str
    params: list  # P arrays
    grads: list  # N lists of P arrays, each shaped like its variable


def _nonzero(dtype, shape, low, high):
    """Arrays of values with |x| in [low, high] (as rounded to dtype), either sign."""
    low, high = (float(np.dtype(dtype).type(x)) for x in (low, high))
    mag = st.floats(low, high, width=8 * np.dtype(dtype).itemsize)
    elem = st.one_of(mag, mag.map(lambda x: -x))
    return st.lists(elem, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))).map(
        lambda v: np.array(v, dtype=dtype).reshape(shape))


@st.composite
def optimizer_cases(draw, dtype, max_steps=8):
    U = draw(st.integers(1, 3), label="U")
    D = draw(st.integers(1, 4).filter(lambda d: d != U), label="D")
    N = draw(st.integers(1, max_steps), label="N")
    shapes = [(D, U), (U,)]
    # gradient scale: 3e-6 puts Adam's sqrt(v) near eps = 1e-7; 30 makes the clipping act
    scale = draw(st.sampled_from([3e-6, 1e-3, 1.0, 30.0]), label="gradient scale")
    params = [draw(_nonzero(dtype, s, 0.05, 2.0)) for s in shapes]
    grads = [[draw(_nonzero(dtype, s, 0.05 * scale, 2.0 * scale)) for s in shapes] for _ in range(N)]
    return OptimizerCase(dtype, params, grads)


LR = st.sampled_from([1e-3, 0.01, 0.1])


def run_optimizer(opt, params, grads):
    """The variables after the N steps of ``grads`` (N lists of P arrays), and sum_t |change_t|."""
    state = opt.init(params)
    moved = [np.zeros(p.shape) for p in params]
    for step in grads:
        new, state = opt.apply(step, params, state)
        moved = [m + np.abs(a.astype(np.float64) - b) for m, a, b in zip(moved, new, params)]
        params = new
    return params, moved


def within_floor(got, expected, magnitude):
    """(ok, error / bound) for |got - expected| <= FACTOR * FLOOR_ULPS * u64 * magnitude."""
    bound = tolerance.FACTOR * tolerance.FLOOR_ULPS * np.finfo(np.float64).eps * np.asarray(magnitude)
    err = np.abs(np.asarray(got) - expected)
    return bool(np.all(err <= bound)), float(np.max(err / bound, initial=0.0))


def _require(ok_ratio, what):
    ok, ratio = ok_ratio
    if not ok:
        raise TrainingFailure(f"{what}: error / bound {ratio:.3g}, expected <= 1 (bound: FACTOR * FLOOR_ULPS "
                              "float64 ulps of the magnitudes)")


lr32 = lambda lr: np.float64(np.float32(lr))  # noqa: E731  the learning rate a float64 update sees


# -- optimizer properties -------------------------------------------------------------------

@prop("first_step_equations", "optimizer",
      lambda: st.fixed_dictionaries({"case": optimizer_cases("float64", max_steps=1), "lr": LR,
                                     "eps": st.sampled_from([1e-7, 1e-2])}))
def first_step_equations(O, case, lr, eps):
    """One step of SGD, RMSprop, Adagrad and Adam equals its equation written out (Keras's constants)."""
    p, g = case.params[0], case.grads[0][0]
    (sgd,), _ = run_optimizer(O.SGD(learning_rate=lr), [p], [[g]])
    if not np.array_equal(sgd, p - lr32(lr) * g):  # the same two roundings
        raise TrainingFailure(f"SGD: p - lr g expected, got a difference of {np.max(np.abs(sgd - p + lr32(lr) * g)):.3g}")
    (rms,), _ = run_optimizer(O.RMSprop(learning_rate=lr, epsilon=eps), [p], [[g]])
    (ada,), _ = run_optimizer(O.Adagrad(learning_rate=lr, epsilon=eps), [p], [[g]])
    (adam,), _ = run_optimizer(O.Adam(learning_rate=lr, epsilon=eps), [p], [[g]])
    acc0 = np.float64(np.float32(0.1))  # initial_accumulator_value as Keras rounds it
    b1, b2 = np.float64(np.float32(0.9)), np.float64(np.float32(0.999))  # in beta ** t
    alpha = lr32(lr) * np.sqrt(1 - b2) / (1 - b1)
    for name, new, expected in [
            ("RMSprop, lr g / sqrt((1 - rho) g^2 + eps)", rms, lr32(lr) * g / np.sqrt((1 - 0.9) * g * g + eps)),
            ("Adagrad, lr g / sqrt(0.1 + g^2 + eps)", ada, lr32(lr) * g / np.sqrt(acc0 + g * g + eps)),
            ("Adam, alpha (1 - b1) g / (sqrt((1 - b2) g^2) + eps)", adam,
             alpha * (1 - 0.9) * g / (np.sqrt((1 - 0.999) * g * g) + eps))]:
        _require(within_floor(p - new, expected, np.abs(p) + np.abs(expected)), name)


@prop("momentum_closed_form", "optimizer",
      lambda: st.fixed_dictionaries({"case": optimizer_cases("float64", max_steps=1), "lr": LR,
                                     "mu": st.sampled_from([0.0, 0.5, 0.9]), "n": st.integers(1, 8),
                                     "nesterov": st.booleans()}))
def momentum_closed_form(O, case, lr, mu, n, nesterov):
    """N SGD steps on a fixed gradient: p_0 - N lr g, or with momentum the geometric sums."""
    p, g = case.params[0], case.grads[0][0]
    (new,), moved = run_optimizer(O.SGD(learning_rate=lr, momentum=mu, nesterov=nesterov), [p], [[g]] * n)
    mu_, lr_ = np.float64(np.float32(mu)), lr32(lr)  # momentum as Keras rounds it
    # m_t = -lr g (1 - mu^t) / (1 - mu); sum_{t<=N} m_t = -lr g (N - mu (1 - mu^N) / (1 - mu)) / (1 - mu)
    sum_m = -lr_ * g / (1 - mu_) * (n - mu_ * (1 - mu_ ** n) / (1 - mu_))
    expected = p + (mu_ * sum_m - n * lr_ * g if nesterov and mu else sum_m)
    _require(within_floor(new, expected, np.abs(expected) + moved[0]),
             f"SGD(momentum={mu}, nesterov={nesterov}) after {n} steps against the closed form")


@prop("adam_is_the_paper_with_scaled_eps", "optimizer",
      lambda: st.fixed_dictionaries({"case": optimizer_cases("float64"), "lr": LR,
                                     "b1": st.sampled_from([0.9, 0.5]), "b2": st.sampled_from([0.999, 0.9])}))
def adam_is_the_paper_with_scaled_eps(O, case, lr, b1, b2):
    """Adam equals Kingma and Ba's Algorithm 1 with eps / sqrt(1 - beta_2^t) for eps."""
    opt = O.Adam(learning_rate=lr, beta_1=b1, beta_2=b2)
    (new,), moved = run_optimizer(opt, case.params[:1], [g[:1] for g in case.grads])
    c = opt.constants(np.float64)  # beta ** t with beta rounded through float32, as Keras
    p, m, v = case.params[0], 0.0, 0.0
    for t, step in enumerate(case.grads, 1):
        g = step[0]
        m = (1 - c["1-beta_1"]) * m + c["1-beta_1"] * g
        v = (1 - c["1-beta_2"]) * v + c["1-beta_2"] * g * g
        m_hat, v_hat = m / (1 - c["beta_1"] ** t), v / (1 - c["beta_2"] ** t)
        p = p - c["lr"] * m_hat / (np.sqrt(v_hat) + 1e-7 / np.sqrt(1 - c["beta_2"] ** t))
    _require(within_floor(new, p, np.abs(p) + moved[0]), f"Adam after {len(case.grads)} steps against Algorithm 1")


@prop("clipping_bounds", "optimizer",
      lambda: st.fixed_dictionaries({"case": optimizer_cases("float64", max_steps=1),
                                     "clip": st.sampled_from(["clipnorm", "global_clipnorm", "clipvalue"]),
                                     "c": st.sampled_from([0.5, 2.0, 50.0])}))
def clipping_bounds(O, case, clip, c):
    """clipnorm: each variable's gradient to norm <= c; global_clipnorm: all by one factor to
    global norm <= c; clipvalue: each element into [-c, c]; the direction kept."""
    zeros = [np.zeros_like(p) for p in case.params]
    new, _ = run_optimizer(O.SGD(learning_rate=1.0, **{clip: c}), zeros, case.grads[:1])
    grads, d = case.grads[0], [-x for x in new]  # SGD(1.0) from zeros: minus the clipped gradients
    if clip == "clipvalue":
        if not all(np.array_equal(x, np.clip(g, -c, c)) for x, g in zip(d, grads)):
            raise TrainingFailure(f"clipvalue={c}: the update is not clip(g, -{c}, {c})")
        return
    norms, got = [np.sqrt(np.sum(g * g)) for g in grads], [np.sqrt(np.sum(x * x)) for x in d]
    if clip == "global_clipnorm":  # one norm, one factor for all variables
        norms, got = [np.sqrt(sum(n * n for n in norms))] * len(grads), [np.sqrt(sum(n * n for n in got))]
    _require(within_floor(np.minimum(got, c), got, c), f"{clip}={c}: a norm of the update {max(got):.6g} above {c}")
    for x, g, norm in zip(d, grads, norms):
        _require(within_floor(x, g * min(1.0, c / norm), np.abs(g)),
                 f"{clip}={c}: the update is not g min(1, {c} / ||g||) (norm {norm:.6g})")


CONFIG_NAMES = ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad")


@prop("weight_decay_zero_is_none", "optimizer",
      lambda: st.fixed_dictionaries({"name": st.sampled_from(CONFIG_NAMES), "lr": LR,
                                     "case": st.sampled_from(["float32", "float64"]).flatmap(optimizer_cases)}))
def weight_decay_zero_is_none(O, name, lr, case):
    """weight_decay=0 changes nothing: the same variables as without decay, bit for bit."""
    extra = {"momentum": 0.9} if name == "SGD" else {"centered": True} if name == "RMSprop" else {}
    decayed, _ = run_optimizer(getattr(O, name)(learning_rate=lr, weight_decay=0.0, **extra), case.params, case.grads)
    plain = getattr(O, "Adam" if name == "AdamW" else name)(learning_rate=lr, weight_decay=None, **extra)
    undecayed, _ = run_optimizer(plain, case.params, case.grads)
    if not all(np.array_equal(a, b) for a, b in zip(decayed, undecayed)):
        worst = max(float(np.max(np.abs(a - b))) for a, b in zip(decayed, undecayed))
        raise TrainingFailure(f"{name}(weight_decay=0.0) differs from no decay by {worst:.3g}; expected equal")


# -- a learner's training step: the softmax RNN ----------------------------------------------

class SoftmaxCase(NamedTuple):
    """N batches for the softmax RNN: params in the keras layout [kernel (D, H),
    recurrent_kernel (H, H), bias (H,), dense kernel (H, K), dense bias (K,)],
    xs (N, B, T, D), ys (N, B, T) labels in [0, K)."""
    dtype: str
    params: list
    xs: np.ndarray
    ys: np.ndarray
    scale: float  # the inputs' size (weights into the hidden layer divided by it)

    def describe(self) -> str:
        N, B, T, D = self.xs.shape
        H, K = self.params[1].shape[0], self.params[4].shape[0]
        return f"N={N} steps, B={B}, T={T}, D={D}, H={H}, K={K}, {self.dtype}, input scale {self.scale:g}"


@st.composite
def softmax_cases(draw, steps=(1, 4), scales=(1.0,)):
    N = draw(st.integers(*steps), label="N")
    B, T = draw(st.integers(1, 3), label="B"), draw(st.integers(1, 4), label="T")
    D, H = draw(st.integers(1, 4), label="D"), draw(st.integers(1, 4), label="H")
    K = draw(st.integers(2, 4), label="K")
    dtype = draw(st.sampled_from(["float32", "float64"]), label="dtype")
    scale = draw(st.sampled_from(scales), label="scale")
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16), label="seed"))

    def away_from_zero(shape, size):
        w = size * rng.standard_normal(shape)
        return np.where(np.abs(w) < 0.1 * size, 0.3 * size, w)

    params = [away_from_zero((D, H), 1 / (scale * np.sqrt(D))), away_from_zero((H, H), 0.9 / np.sqrt(H)),
              away_from_zero((H,), 0.5), away_from_zero((H, K), 1 / np.sqrt(H)), away_from_zero((K,), 0.5)]
    xs = scale * rng.standard_normal((N, B, T, D))
    ys = rng.integers(0, K, (N, B, T))
    return SoftmaxCase(dtype, [p.astype(dtype) for p in params], xs.astype(dtype), ys, scale)


class Trainer(NamedTuple):
    """What a step property compares: each ``(params keras layout, xs, ys) -> params``."""
    candidate: Callable  # the learner's steps (in the case's dtype)
    reference: Callable  # rnn_ref's training in the case's dtype (Keras's fit)
    exact: Callable  # (params, xs, ys, dtype): the same in float64 with dtype's constants (the truth)


NAMES = ("kernel (U.T)", "recurrent_kernel (W.T)", "bias (b)", "dense kernel (V.T)", "dense bias (c)")


def judge_steps(trainer: Trainer, case: SoftmaxCase):
    """The verdicts of the learner's weights after the case's steps, and the worst ratio."""
    got = trainer.candidate(case.params, case.xs, case.ys)
    reference = trainer.reference(case.params, case.xs, case.ys)

    def run(p, data):
        return trainer.reference(p, data[0], data[1])

    def exact(p, data):
        return trainer.exact(p, data[0], data[1], case.dtype)

    verdicts, _, _ = judge_training("weights", NAMES, got, reference, run, exact, case.params,
                                    [case.xs, case.ys], steps=len(case.xs))
    return verdicts, worst_ratio(verdicts)


def _check_steps(trainer, case):
    verdicts, ratio = judge_steps(trainer, case)
    bad = [v for v in verdicts if not v.ok]
    if bad:
        raise TrainingFailure(f"after {len(case.xs)} steps ({case.describe()}), error / budget {ratio:.3g}:\n"
                              + "\n".join(v.summary() for v in bad), ratio=ratio)


@prop("one_step", "step", lambda: softmax_cases(steps=(1, 1)))
def one_step(trainer, case):
    """One step from the same weights equals the reference's (gradients of the mean loss, one update)."""
    _check_steps(trainer, case)


@prop("several_steps", "step", lambda: softmax_cases(steps=(2, 4)))
def several_steps(trainer, case):
    """Several steps, the optimizer's state carried, equal the reference training's."""
    _check_steps(trainer, case)


@prop("large_gradients", "step", lambda: softmax_cases(steps=(1, 3), scales=(100.0,)))
def large_gradients(trainer, case):
    """Inputs of size 100: gradients beyond the usual clipping thresholds, clipped as Keras clips them."""
    _check_steps(trainer, case)


# -- fit against Keras's model.fit ------------------------------------------------------------

@prop("fit_equals_keras", "fit", None)
def fit_equals_keras(runs: FitRuns):
    """The weights and per-epoch losses after fit equal Keras's model.fit (each within the training budget)."""
    judgement = judge_fit(runs)
    bad = [v for v in (*judgement.verdicts, *judgement.keras) if not v.ok]
    if bad:
        ratio = max(judgement.ratio, judgement.keras_ratio)
        raise TrainingFailure(f"{runs.describe()}: error / budget {ratio:.3g} (fit {judgement.ratio:.3g}, "
                              f"Keras {judgement.keras_ratio:.3g}), expected <= 1:\n"
                              + "\n".join(v.summary() for v in bad), ratio=ratio)
    return judgement
