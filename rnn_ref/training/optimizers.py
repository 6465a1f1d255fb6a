"""Keras 3's SGD, Adam, AdamW, RMSprop and Adagrad in NumPy, one step as Keras takes it.

Legend (shapes)
  P      number of variables: params, grads and each slot are lists of P arrays
  S_i    shape of variable i (any shape); a slot of variable i has shape S_i
  ()     a scalar
  t      the step being taken, 1 for the first (Keras's ``iterations + 1``)
  p, g   a variable and its gradient, both S_i

One step (``apply``), in Keras's order (keras/src/optimizers/base_optimizer.py,
``BaseOptimizer._backend_apply_gradients``, lines 587-594, and ``apply``, line 533):

  1. clip the gradients: ``clipnorm`` (each variable on its own), or ``global_clipnorm``
     (all together), or ``clipvalue`` (each element). At most one of the three may be
     given (not None), and one <= 0 clips nothing (base_optimizer.py, lines 130-138, 870-881);
  2. weight decay, ``p <- p - p * weight_decay * lr``, on every variable, before the update
     (keras/src/backend/tensorflow/optimizer.py, ``_apply_weight_decay``, line 98);
  3. the optimizer's own update of each variable from its clipped gradient;
  4. ``iterations += 1``.

Clipping reads only the gradients and decay only the variables, so 1 and 2 commute.

Precision: every update computes in the dtype of its variable, float32 or float64. What
the update sees of a hyperparameter is what ``constants(dtype)`` returns, as Keras's
TensorFlow backend converts it (each measured in float64, where it shows):

* the learning rate lives in a float32 variable (floatx; base_optimizer.py, lines
  185-191), so float64 variables are updated with ``float64(float32(learning_rate))``
  (under ``keras.config.set_floatx("float64")`` the variable is float64 and the value
  exact: set the optimizer's ``floatx`` to "float64"; measured, the conversions below
  still go through float32 then);
* a Python float that Keras passes through ``ops.cast``/``tf.cast`` becomes a float32
  tensor first: SGD's ``momentum`` (sgd.py, line 104), Adam's ``beta_1`` and ``beta_2``
  in ``beta ** t`` (adam.py, lines 107-112), ``weight_decay`` (tensorflow/optimizer.py,
  line 97) and Adagrad's ``initial_accumulator_value`` (through ``initializers.Constant``,
  adagrad.py, line 73);
* the others (``1 - beta``, ``epsilon``, ``rho``, ``1 - rho``, RMSprop's ``momentum``, the
  clipping thresholds) meet a tensor in an arithmetic op and take its dtype directly.

Out of scope (refused with an error): learning-rate schedules and callables, ``use_ema``,
mixed dtypes among the variables, ``None`` gradients.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import numpy as np

from rnn_ref.training.rows import Rows, square, summed, values, with_values

__all__ = ["State", "Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad"]

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class State(NamedTuple):
    """What an optimizer carries from one step to the next.

    iterations  steps taken so far (Keras's ``optimizer.iterations``)
    slots       slot name -> tuple of P arrays, the one of variable i shaped S_i
    """

    iterations: int
    slots: dict[str, tuple[np.ndarray, ...]]


def via_float32(value, dtype, floatx="float32"):
    """``value`` as Keras's ``ops.cast(value, dtype)`` gives it: through a tensor of Keras's
    ``floatx`` (float32 by default; exact under ``keras.config.set_floatx("float64")``)."""
    return np.dtype(dtype).type(np.dtype(floatx).type(value))


def exact(value, dtype):
    """``value`` converted straight to ``dtype`` (a Python float meeting a tensor in an op)."""
    return np.dtype(dtype).type(value)


def _clips(value) -> bool:
    """Whether a clipping threshold acts: Keras tests ``if self.clipnorm and self.clipnorm > 0``."""
    return value is not None and value > 0


def _is_real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _check_real(name, value, *, optional=False):
    if value is None and optional:
        return
    if not _is_real(value):
        expected = "a number or None" if optional else "a number"
        raise ValueError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")


class Optimizer:
    """The part every optimizer shares: arguments, clipping, weight decay, state.

    A subclass names its slots (``slot_names``), their starting value (``initial_slot``),
    its hyperparameters as the update sees them (``constants``) and the update of one
    variable (``update``).
    """

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False):
        if callable(learning_rate):
            raise NotImplementedError(
                "learning_rate must be a float; schedules and callables are not supported "
                f"here, got {learning_rate!r}")
        if not isinstance(learning_rate, float):  # Keras refuses an int too
            raise ValueError(f"learning_rate must be a float such as 0.01, got "
                             f"{type(learning_rate).__name__} {learning_rate!r}")
        if use_ema:
            raise NotImplementedError("use_ema=True (a moving average of the weights) is not "
                                      "supported here; pass use_ema=False")
        for name, value in [("weight_decay", weight_decay), ("clipnorm", clipnorm),
                            ("clipvalue", clipvalue), ("global_clipnorm", global_clipnorm)]:
            _check_real(name, value, optional=True)
        given = [n for n, v in [("clipnorm", clipnorm), ("clipvalue", clipvalue),
                                ("global_clipnorm", global_clipnorm)] if v is not None]
        if len(given) > 1:
            raise ValueError(f"only one of clipnorm, clipvalue and global_clipnorm can be set, "
                             f"got {', '.join(given)}")
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.use_ema = False
        self._state = None  # step()'s state

    #: Keras's ``keras.config.floatx()`` when the Keras optimizer was made: the dtype of its
    #: learning-rate variable. Set it to "float64" (``opt.floatx = "float64"``) to match a
    #: Keras optimizer made under ``set_floatx("float64")``, whose learning rate is exact.
    floatx = "float32"

    # -- what a subclass provides ------------------------------------------------------

    def slot_names(self) -> tuple[str, ...]:
        """The slots this configuration keeps, one array per variable each."""
        return ()

    def initial_slot(self, name, p):
        """The value slot ``name`` starts at for variable ``p`` (shaped like it)."""
        return np.zeros_like(p)

    def constants(self, dtype) -> dict:
        """The hyperparameters as an update in ``dtype`` sees them (see the module's notes)."""
        dtype = np.dtype(dtype)
        clips = {name: exact(value, dtype) if _clips(value) else None for name, value in
                 [("clipnorm", self.clipnorm), ("global_clipnorm", self.global_clipnorm),
                  ("clipvalue", self.clipvalue)]}
        return {
            "lr": via_float32(self.learning_rate, dtype, self.floatx),
            "weight_decay": None if self.weight_decay is None else via_float32(self.weight_decay, dtype),
            **clips,
            # Keras divides the Python float, then converts the quotient
            "1/global_clipnorm": exact(1.0 / self.global_clipnorm, dtype) if clips["global_clipnorm"] else None,
        }

    def update(self, g, p, slots, c, t):
        """One variable's update: returns the new ``p`` and a dict of its new slot values.

        g, p: S_i; slots: name -> S_i; c: ``constants(dtype)``; t: the step, 1 for the first.
        """
        raise NotImplementedError

    # -- the steps of apply -------------------------------------------------------------

    def clip(self, grads, c):
        """Step 1: the clipped gradients (a list of P arrays, each S_i)."""
        if c["clipnorm"] is not None:  # each variable's gradient to norm <= clipnorm
            return [self._clip_norm(g, c["clipnorm"]) for g in grads]
        if c["global_clipnorm"] is not None:  # all gradients scaled by one factor
            return self._clip_global_norm(grads, c["global_clipnorm"], c["1/global_clipnorm"])
        if c["clipvalue"] is not None:  # each element into [-clipvalue, clipvalue]
            return [with_values(g, np.clip(values(g), -c["clipvalue"], c["clipvalue"])) for g in grads]
        return list(grads)

    @staticmethod
    def _clip_norm(g, clipnorm):
        # g * clipnorm / max(||g||, clipnorm): a gradient under the threshold is
        # multiplied and divided by clipnorm (tf.clip_by_norm does the same).
        v = values(g)  # a gradient in rows: the norm and the scaling over its occurrences
        sum_sq = np.sum(v * v)  # ()
        norm = np.sqrt(sum_sq) if sum_sq > 0 else sum_sq
        return with_values(g, (v * clipnorm) / np.maximum(norm, clipnorm))

    @staticmethod
    def _clip_global_norm(grads, clipnorm, inverse):
        norm = np.sqrt(np.sum(np.stack([np.sum(values(g) * values(g)) for g in grads])))  # (P,) -> ()
        with np.errstate(divide="ignore", invalid="ignore"):
            # clipnorm * min(1/norm, 1/clipnorm) is min(clipnorm/norm, 1); a non-finite
            # norm makes it NaN (norm - norm), as in Keras.
            scale = clipnorm * np.minimum(1 / norm, inverse) + (norm - norm)
            # Keras multiplies a tensor by rows (IndexedSlices): the rows are summed into a
            # dense gradient first, which the update then squares as it is
            return [(np.asarray(summed(g)) if isinstance(g, Rows) else g) * scale for g in grads]

    @staticmethod
    def decay(params, c):
        """Step 2: ``p - p * weight_decay * lr`` for each variable (unchanged without decay)."""
        if c["weight_decay"] is None:
            return list(params)
        return [p - p * c["weight_decay"] * c["lr"] for p in params]

    # -- the public API -----------------------------------------------------------------

    def init(self, params) -> State:
        """The state before the first step: every slot at its initial value, iterations 0."""
        params = self._check_params(params)
        return State(0, {name: tuple(self.initial_slot(name, p) for p in params)
                         for name in self.slot_names()})

    def apply(self, grads, params, state: State):
        """One step, as Keras's ``apply_gradients``: returns (new params, new state).

        grads, params: lists of P arrays, grads[i] shaped and typed like params[i] (or a
        ``rows.Rows``, an Embedding's gradient as Keras's TensorFlow backend gives it: one row
        per token occurrence). Nothing passed in is modified.
        """
        params = self._check_params(params)
        grads = self._check_grads(grads, params)
        self._check_state(state, params)
        c = self.constants(params[0].dtype)
        t = state.iterations + 1
        grads = [summed(g) if isinstance(g, Rows) else g for g in self.clip(grads, c)]
        params = self.decay(params, c)
        new_params, new_slots = [], {name: [] for name in state.slots}
        for i, (g, p) in enumerate(zip(grads, params)):
            p, slots = self.update(g, p, {n: s[i] for n, s in state.slots.items()}, c, t)
            new_params.append(p)
            for name in new_slots:
                new_slots[name].append(slots[name])
        return new_params, State(t, {n: tuple(s) for n, s in new_slots.items()})

    def step(self, grads, params):
        """``apply`` with the state kept here (started by ``init`` on the first call)."""
        if self._state is None:
            self._state = self.init(params)
        params, self._state = self.apply(grads, params, self._state)
        return params

    def exact_twin(self, dtype):
        """A copy that computes exactly (in float64) what this optimizer computes in
        ``dtype``: the same hyperparameters as an update in ``dtype`` sees them
        (``constants(dtype)``), float64 arithmetic. The truth of a training in ``dtype``."""
        twin = copy.copy(self)
        seen = self.constants(np.dtype(dtype))
        twin.constants = lambda _: {k: None if v is None else np.float64(v) for k, v in seen.items()}
        twin._state = None
        return twin

    @property
    def state(self):
        """The state ``step`` keeps (None before the first step)."""
        return self._state

    # -- argument checks ----------------------------------------------------------------

    @staticmethod
    def _check_params(params):
        if isinstance(params, np.ndarray) or not isinstance(params, (list, tuple)):
            raise ValueError(f"params must be a list of arrays, got {type(params).__name__}")
        if not params:
            raise ValueError("params must hold at least one array, got an empty list")
        params = [np.asarray(p) for p in params]
        for i, p in enumerate(params):
            if p.dtype not in _DTYPES:
                raise ValueError(f"params[{i}] has dtype {p.dtype}, expected float32 or float64")
        dtypes = sorted({str(p.dtype) for p in params})
        if len(dtypes) > 1:
            raise ValueError(f"params must share one dtype, got {' and '.join(dtypes)}")
        return params

    @staticmethod
    def _check_grads(grads, params):
        if isinstance(grads, np.ndarray) or not isinstance(grads, (list, tuple)) or len(grads) != len(params):
            got = len(grads) if isinstance(grads, (list, tuple)) else type(grads).__name__
            raise ValueError(f"grads must be a list of {len(params)} arrays shaped like params, got {got}")
        checked = []
        for i, (g, p) in enumerate(zip(grads, params)):
            if g is None:
                raise ValueError(f"grads[{i}] is None; every variable needs a gradient here")
            g = g if isinstance(g, Rows) else np.asarray(g)
            if g.shape != p.shape:
                raise ValueError(f"grads[{i}] has shape {g.shape}, expected {p.shape} like params[{i}]")
            if g.dtype != p.dtype:
                raise ValueError(f"grads[{i}] has dtype {g.dtype}, expected {p.dtype} like params[{i}]")
            checked.append(g)
        return checked

    def _check_state(self, state, params):
        if not isinstance(state, State):
            raise ValueError(f"state must be the State that init() or apply() returned, "
                             f"got {type(state).__name__}")
        if set(state.slots) != set(self.slot_names()):
            raise ValueError(f"state has slots {sorted(state.slots)}, expected "
                             f"{sorted(self.slot_names())}: was it made by another optimizer?")
        for name, values in state.slots.items():
            if len(values) != len(params):
                raise ValueError(f"state was made for {len(values)} variables, got {len(params)} params")
            for i, (s, p) in enumerate(zip(values, params)):
                if s.shape != p.shape or s.dtype != p.dtype:
                    raise ValueError(f"state slot {name}[{i}] is {s.dtype} {s.shape}, expected "
                                     f"{p.dtype} {p.shape} like params[{i}]")


class SGD(Optimizer):
    """Gradient descent, with momentum and Nesterov momentum (keras/src/optimizers/sgd.py).

    Without momentum:   p <- p - lr g
    With momentum mu:   m <- mu m - lr g;  p <- p + m               (m starts at 0)
    Nesterov:           m <- mu m - lr g;  p <- p + mu m - lr g     (with the new m)

    Keras keeps the ``momentum`` slot only when momentum != 0, and accepts momentum only
    as a float in [0, 1].
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema)
        if not isinstance(momentum, float) or not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be a float in [0, 1], got {momentum!r}")
        self.momentum = momentum
        self.nesterov = bool(nesterov)

    def slot_names(self):
        return ("momentum",) if self.momentum != 0 else ()

    def constants(self, dtype):
        return {**super().constants(dtype), "momentum": via_float32(self.momentum, dtype)}

    def update(self, g, p, slots, c, t):
        if "momentum" not in slots:
            return p - g * c["lr"], slots
        mu, lr = c["momentum"], c["lr"]
        m = slots["momentum"] * mu - g * lr
        step = m * mu - g * lr if self.nesterov else m
        return p + step, {"momentum": m}


class Adam(Optimizer):
    """Adam (keras/src/optimizers/adam.py), optionally AMSGrad.

    With beta_1, beta_2, eps and m, v starting at 0:

        m <- m + (1 - beta_1) (g - m)          (= beta_1 m + (1 - beta_1) g)
        v <- v + (1 - beta_2) (g^2 - v)
        v_max <- max(v_max, v); v <- v_max     (amsgrad only; v_max starts at 0)
        alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t)
        p <- p - alpha m / (sqrt(v) + eps)

    Where this differs from Algorithm 1 of Kingma and Ba: the bias corrections enter through
    ``alpha`` and ``eps`` is added outside the square root of the uncorrected ``v``. In terms
    of m_hat = m / (1 - beta_1^t) and v_hat = v / (1 - beta_2^t) the step is
    lr m_hat / (sqrt(v_hat) + eps / sqrt(1 - beta_2^t)): the paper's update with eps grown
    by 1 / sqrt(1 - beta_2^t) (31.6 times at t = 1 for beta_2 = 0.999). With ``amsgrad``
    the maximum is over the uncorrected v and ``alpha`` still applies both corrections.

    The corrections do not cancel exactly: ``1 - beta`` enters in the variable's dtype but
    ``beta ** t`` through float32, so at the defaults the first step of an element with
    sqrt(1 - beta_2) |g| >> eps has size lr (1 - 6.6e-6), not lr, in float32 and float64.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema)
        for name, value in [("beta_1", beta_1), ("beta_2", beta_2), ("epsilon", epsilon)]:
            _check_real(name, value)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.amsgrad = bool(amsgrad)

    def slot_names(self):
        return ("momentum", "velocity") + (("velocity_hat",) if self.amsgrad else ())

    def constants(self, dtype):
        return {**super().constants(dtype),
                "beta_1": via_float32(self.beta_1, dtype), "beta_2": via_float32(self.beta_2, dtype),
                "1-beta_1": exact(1 - self.beta_1, dtype), "1-beta_2": exact(1 - self.beta_2, dtype),
                "epsilon": exact(self.epsilon, dtype)}

    def alpha(self, c, t, dtype):
        """The step size lr sqrt(1 - beta_2^t) / (1 - beta_1^t), a scalar in ``dtype``."""
        t = np.dtype(dtype).type(t)
        return c["lr"] * np.sqrt(1 - c["beta_2"] ** t) / (1 - c["beta_1"] ** t)

    def update(self, g, p, slots, c, t):
        m = slots["momentum"] + (g - slots["momentum"]) * c["1-beta_1"]
        v = slots["velocity"] + (square(g) - slots["velocity"]) * c["1-beta_2"]
        new = {"momentum": m, "velocity": v}
        if self.amsgrad:
            v = new["velocity_hat"] = np.maximum(slots["velocity_hat"], v)
        return p - (m * self.alpha(c, t, p.dtype)) / (np.sqrt(v) + c["epsilon"]), new


class AdamW(Adam):
    """Adam with decoupled weight decay (keras/src/optimizers/adamw.py).

    Keras's AdamW is its Adam with the shared weight decay of step 2 switched on by default
    (weight_decay=0.004) and required (None refused):

        p <- p - p * weight_decay * lr,   then the Adam step above

    The decay multiplies the pre-step variable and does not pass through the moments,
    which is what "decoupled" means; Keras scales it by the learning rate.
    """

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False):
        if weight_decay is None:
            raise ValueError("AdamW needs weight_decay as a float (0.004 by default), got None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay,
                         clipnorm, clipvalue, global_clipnorm, use_ema)


class RMSprop(Optimizer):
    """RMSprop, optionally centered and with momentum (keras/src/optimizers/rmsprop.py).

    With rho, eps and v (and mean_g, mom) starting at 0:

        v <- rho v + (1 - rho) g^2
        mean_g <- rho mean_g + (1 - rho) g          (centered only)
        d = v + eps,  or  v - mean_g^2 + eps        (centered)
        increment = lr g / sqrt(d)                  (eps inside the square root)
        mom <- momentum mom + increment;  p <- p - mom     (momentum > 0)
        p <- p - increment                                 (otherwise)
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema)
        for name, value in [("rho", rho), ("momentum", momentum), ("epsilon", epsilon)]:
            _check_real(name, value)
        self.rho, self.momentum, self.epsilon = rho, momentum, epsilon
        self.centered = bool(centered)

    def slot_names(self):
        return (("velocity",) + (("momentum",) if self.momentum > 0 else ())
                + (("average_gradient",) if self.centered else ()))

    def constants(self, dtype):
        return {**super().constants(dtype), "rho": exact(self.rho, dtype),
                "1-rho": exact(1 - self.rho, dtype), "momentum": exact(self.momentum, dtype),
                "epsilon": exact(self.epsilon, dtype)}

    def update(self, g, p, slots, c, t):
        v = c["rho"] * slots["velocity"] + c["1-rho"] * square(g)
        new = {"velocity": v}
        if self.centered:
            mean_g = new["average_gradient"] = c["rho"] * slots["average_gradient"] + c["1-rho"] * g
            d = v - mean_g * mean_g + c["epsilon"]
        else:
            d = v + c["epsilon"]
        increment = (c["lr"] * g) / np.sqrt(d)
        if "momentum" not in slots:
            return p - increment, new
        mom = new["momentum"] = c["momentum"] * slots["momentum"] + increment
        return p - mom, new


class Adagrad(Optimizer):
    """Adagrad (keras/src/optimizers/adagrad.py).

        acc <- acc + g^2                     (acc starts at initial_accumulator_value)
        p <- p - lr g / sqrt(acc + eps)

    The accumulator starts at ``initial_accumulator_value`` (0.1), not at 0 as Duchi et al.'s
    sum of squared gradients does, and eps is added inside the square root, where many
    write-ups of Adagrad put it outside: sqrt(acc) + eps.
    """

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema)
        _check_real("initial_accumulator_value", initial_accumulator_value)
        _check_real("epsilon", epsilon)
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon

    def slot_names(self):
        return ("accumulator",)

    def initial_slot(self, name, p):
        return np.full_like(p, via_float32(self.initial_accumulator_value, p.dtype))

    def constants(self, dtype):
        return {**super().constants(dtype), "epsilon": exact(self.epsilon, dtype)}

    def update(self, g, p, slots, c, t):
        acc = slots["accumulator"] + square(g)
        return p - (c["lr"] * g) / np.sqrt(acc + c["epsilon"]), {"accumulator": acc}
