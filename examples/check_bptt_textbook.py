"""Backpropagation through time written from scratch, and three classic mistakes.

A tanh RNN over one sequence in the textbook layout (column vectors
multiplied from the left), the way min-char-rnn and cs231n write it:

    W (U, D), U_rec (U, U), b (U,)
    z_t = W @ x_t + U_rec @ h_{t-1} + b,   h_t = tanh(z_t),   h_0 = 0

The backward pass takes dh (T, U), the gradient of the loss with respect to
each h_t (what the layers above send back), and returns the gradients of the
loss with respect to the inputs and the weights. Going back from the last
step, with g the gradient reaching h_t from later steps (zero after the last):

    dz_t  = (dh_t + g) * (1 - h_t ** 2)        tanh'(z_t), from the output h_t
    dW   += outer(dz_t, x_t);  dU_rec += outer(dz_t, h_{t-1});  db += dz_t
    dx_t  = W.T @ dz_t
    g     = U_rec.T @ dz_t                     carried to step t - 1

Check them (``--gradients``: a backward pass; ``--layout textbook``: the
weights as above; the checker sees one sequence at a time, and that dh has
one row per step)::

    python -m rnn_ref check examples/check_bptt_textbook.py:rnn_backward --gradients --layout textbook
    python -m rnn_ref check examples/check_bptt_textbook.py:derivative_at_pre_activation --gradients --layout textbook
    python -m rnn_ref check examples/check_bptt_textbook.py:gradient_not_carried --gradients --layout textbook
    python -m rnn_ref check examples/check_bptt_textbook.py:clipped_like_min_char_rnn --gradients --layout textbook

The first passes every property it can be checked on (exit status 0); each
of the others fails with a minimal case (exit status 1).
"""

from __future__ import annotations

import numpy as np


def _forward(x, W, U_rec, b):
    """Hidden states h (T + 1, U) with h[0] = 0, and pre-activations z (T, U)."""
    T, U = x.shape[0], W.shape[0]
    h = np.zeros((T + 1, U), dtype=x.dtype)
    z = np.zeros((T, U), dtype=x.dtype)
    for t in range(T):
        z[t] = W @ x[t] + U_rec @ h[t] + b  # (U,)
        h[t + 1] = np.tanh(z[t])  # (U,)
    return h, z


def rnn_backward(x, W, U_rec, b, dh):
    """Correct BPTT for one sequence x (T, D), given dh (T, U); returns a dict of gradients."""
    h, _ = _forward(x, W, U_rec, b)
    dW, dU, db = np.zeros_like(W), np.zeros_like(U_rec), np.zeros_like(b)
    dx = np.zeros_like(x)
    g = np.zeros(W.shape[0], dtype=x.dtype)  # the gradient reaching h_t from later steps
    for t in reversed(range(x.shape[0])):
        dz = (dh[t] + g) * (1 - h[t + 1] ** 2)  # (U,)
        dW += np.outer(dz, x[t])  # (U, D)
        dU += np.outer(dz, h[t])  # (U, U)
        db += dz
        dx[t] = W.T @ dz  # (D,)
        g = U_rec.T @ dz  # (U,)
    return {"dx": dx, "dW": dW, "dU_rec": dU, "db": db}


def derivative_at_pre_activation(x, W, U_rec, b, dh):
    """Bug: tanh'(z) written as 1 - z**2, the derivative formula applied to z instead of h = tanh(z)."""
    h, z = _forward(x, W, U_rec, b)
    dW, dU, db = np.zeros_like(W), np.zeros_like(U_rec), np.zeros_like(b)
    g = np.zeros(W.shape[0], dtype=x.dtype)
    for t in reversed(range(x.shape[0])):
        dz = (dh[t] + g) * (1 - z[t] ** 2)  # should be 1 - h[t + 1] ** 2
        dW += np.outer(dz, x[t])
        dU += np.outer(dz, h[t])
        db += dz
        g = U_rec.T @ dz
    return dW, dU, db


def gradient_not_carried(x, W, U_rec, b, dh):
    """Bug: each step uses only its own dh_t; nothing flows back through U_rec to earlier steps."""
    h, _ = _forward(x, W, U_rec, b)
    dW, dU, db = np.zeros_like(W), np.zeros_like(U_rec), np.zeros_like(b)
    for t in reversed(range(x.shape[0])):
        dz = dh[t] * (1 - h[t + 1] ** 2)  # the carried U_rec.T @ dz of step t + 1 is missing
        dW += np.outer(dz, x[t])
        dU += np.outer(dz, h[t])
        db += dz
    return dW, dU, db


def clipped_like_min_char_rnn(x, W, U_rec, b, dh):
    """Bug: min-char-rnn's ``np.clip(dparam, -5, 5, out=dparam)`` left in a function that
    claims to return the gradients: right while every gradient is under 5 in size."""
    grads = rnn_backward(x, W, U_rec, b, dh)
    for name in ("dW", "dU_rec", "db"):
        np.clip(grads[name], -5, 5, out=grads[name])  # training's exploding-gradient guard
    return grads
