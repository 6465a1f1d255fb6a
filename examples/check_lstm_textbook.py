"""A textbook LSTM, no options, for ``python -m rnn_ref check --layer lstm``.

The weights are in the textbook layout, which multiplies a column vector
from the left; each holds four gate blocks of U rows, stacked in Keras's
order i, f, c, o (input, forget, cell candidate, output):

    W      (4U, D)   input weights
    U_rec  (4U, U)   recurrent weights
    b      (4U,)     bias

    i_t = sigmoid(W_i @ x_t + U_i @ h_{t-1} + b_i)
    f_t = sigmoid(W_f @ x_t + U_f @ h_{t-1} + b_f)
    g_t = tanh(W_c @ x_t + U_c @ h_{t-1} + b_c)
    o_t = sigmoid(W_o @ x_t + U_o @ h_{t-1} + b_o)
    c_t = f_t * c_{t-1} + i_t * g_t
    h_t = o_t * tanh(c_t)

Letters: B batch, T time steps, D input features, U units. The loop runs
over time with the whole batch at once, so ``W @ x_t`` for every row is
``x_t @ W.T``. It takes no options and returns the last h; the checker
declines what it does not take (other activations, masks, ...) and checks
the rest. Keras stores ``kernel = W.T`` and ``recurrent_kernel = U_rec.T``;
``--layout textbook`` tells the checker to pass the transposes:

    python -m rnn_ref check examples/check_lstm_textbook.py:lstm_forward --layer lstm --layout textbook

Every property it can be given holds (exit status 0).
"""

from __future__ import annotations

import numpy as np


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def lstm_forward(x, W, U_rec, b):
    """LSTM over x (B, T, D) with W (4U, D), U_rec (4U, U), b (4U,); returns the last h (B, U)."""
    B, T, _ = x.shape
    U = U_rec.shape[1]

    h = np.zeros((B, U), x.dtype)
    c = np.zeros((B, U), x.dtype)
    for t in range(T):
        a = x[:, t] @ W.T + h @ U_rec.T + b  # (B, 4U), gate blocks i, f, c, o
        i = sigmoid(a[:, 0 * U:1 * U])  # (B, U)
        f = sigmoid(a[:, 1 * U:2 * U])
        g = np.tanh(a[:, 2 * U:3 * U])
        o = sigmoid(a[:, 3 * U:4 * U])
        c = f * c + i * g
        h = o * np.tanh(c)
    return h
