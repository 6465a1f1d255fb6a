"""A learner's training step for the textbook softmax RNN with Adagrad, correct and with bugs.

The correct step is examples/train_softmax_rnn_adagrad.py's, written compactly here with
one switch per bug; each mutant is a plausible slip from min-char-rnn-style code that
``python -m rnn_ref check --training ... --optimizer adagrad --learning-rate 0.1
--clipvalue 5`` must reject (tests/test_check_training.py):

  adagrad_eps_outside_sqrt    p -= lr g / (sqrt(acc) + eps), where Keras takes sqrt(acc + eps)
  adagrad_accumulator_from_0  acc starts at 0 (Duchi et al.), where Keras starts at 0.1
  adagrad_clip_after_update   the accumulator takes the unclipped gradient, the step the clipped one
  adagrad_summed_gradients    the loss summed over the batch and the steps (min-char-rnn's), not averaged

Each is ``step(params, x, y, state)``: params {"U", "W", "V", "b", "c"} (textbook layout),
x (B, T, D), y (B, T) integer labels, state a dict the step keeps its accumulators in.
"""

from __future__ import annotations

import numpy as np

LEARNING_RATE = 0.1
CLIPVALUE = 5.0
EPSILON = 1e-7
INITIAL_ACCUMULATOR = np.float32(0.1)  # Keras makes it through a float32 constant


def gradients(params, x, y, *, mean=True):
    """The gradients of the cross-entropy over every step, averaged over B T (``mean``) or summed."""
    U, W, V, b, c = (params[k] for k in ("U", "W", "V", "b", "c"))
    x = np.asarray(x, dtype=U.dtype)
    B, T, _ = x.shape
    hs = [np.zeros((B, W.shape[0]), U.dtype)]  # h_0 = 0, then (B, H) a step
    for t in range(T):
        hs.append(np.tanh(x[:, t] @ U.T + hs[-1] @ W.T + b))
    z = np.stack(hs[1:]) @ V.T + c  # (T, B, K) logits
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    d = p - np.eye(V.shape[0], dtype=U.dtype)[np.asarray(y).T]  # (T, B, K)
    if mean:
        d = d / (B * T)
    g = {k: np.zeros_like(params[k]) for k in params}
    dh_next = np.zeros_like(hs[0])
    for t in reversed(range(T)):
        g["V"] += d[t].T @ hs[t + 1]
        g["c"] += d[t].sum(0)
        dz = (d[t] @ V + dh_next) * (1 - hs[t + 1] ** 2)  # (B, H)
        g["U"] += dz.T @ x[:, t]
        g["W"] += dz.T @ hs[t]
        g["b"] += dz.sum(0)
        dh_next = dz @ W
    return g


def _adagrad_step(params, x, y, state, *, eps_outside=False, acc0=INITIAL_ACCUMULATOR, clip_after=False,
                  mean=True):
    grads = gradients(params, x, y, mean=mean)
    acc = state.setdefault("acc", {k: np.full_like(p, acc0) for k, p in params.items()})
    new = {}
    for k, p in params.items():
        raw = grads[k]
        g = np.clip(raw, -CLIPVALUE, CLIPVALUE)
        acc[k] = acc[k] + (raw * raw if clip_after else g * g)
        denominator = np.sqrt(acc[k]) + EPSILON if eps_outside else np.sqrt(acc[k] + EPSILON)
        new[k] = p - LEARNING_RATE * g / denominator
    return new


def adagrad_step(params, x, y, state):
    """The correct step (as examples/train_softmax_rnn_adagrad.py)."""
    return _adagrad_step(params, x, y, state)


def adagrad_eps_outside_sqrt(params, x, y, state):
    return _adagrad_step(params, x, y, state, eps_outside=True)


def adagrad_accumulator_from_0(params, x, y, state):
    return _adagrad_step(params, x, y, state, acc0=0.0)


def adagrad_clip_after_update(params, x, y, state):
    return _adagrad_step(params, x, y, state, clip_after=True)


def adagrad_summed_gradients(params, x, y, state):
    return _adagrad_step(params, x, y, state, mean=False)


#: name -> the mutant, for the tests and the docs.
TRAINING_MUTANTS = {f.__name__: f for f in (adagrad_eps_outside_sqrt, adagrad_accumulator_from_0,
                                            adagrad_clip_after_update, adagrad_summed_gradients)}
