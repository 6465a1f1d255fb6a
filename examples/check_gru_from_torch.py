"""A GRU written from PyTorch's equations, and the same code ported to Keras's weights.

PyTorch's ``nn.GRU`` stacks its gate blocks in the order r, z, n (reset,
update, new) and keeps two biases; Keras's ``GRU`` stacks them z, r, h.
Letters: B batch, T time steps, D input features, U units.

    r_t = sigmoid(W_ir @ x_t + b_ir + W_hr @ h_{t-1} + b_hr)
    z_t = sigmoid(W_iz @ x_t + b_iz + W_hz @ h_{t-1} + b_hz)
    n_t = tanh(W_in @ x_t + b_in + r_t * (W_hn @ h_{t-1} + b_hn))
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

This is Keras's GRU with ``reset_after=True`` (its default): Keras writes
the last line ``h_t = z_t * h_{t-1} + (1 - z_t) * h~_t``, the same thing.

``gru_torch`` takes PyTorch's arrays, ``weight_ih (3U, D)``,
``weight_hh (3U, U)``, ``bias_ih (3U,)``, ``bias_hh (3U,)``, and is correct:

    python -m rnn_ref check examples/check_gru_from_torch.py:gru_torch --layer gru --layout torch

passes (exit status 0). ``gru_ported`` is the same loop moved to Keras's
arrays, ``kernel (D, 3U)``, ``recurrent_kernel (U, 3U)``, ``bias (2, 3U)``
(row 0 input, row 1 recurrent): the products are turned around and the
bias rows taken apart, but the gate blocks are still read as r, z, n. That
is the classic porting bug, and

    python -m rnn_ref check examples/check_gru_from_torch.py:gru_ported --layer gru

fails (exit status 1) on a one-unit, one-step case: the reset and update
gates are swapped.
"""

from __future__ import annotations

import numpy as np


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def gru_torch(x, weight_ih, weight_hh, bias_ih, bias_hh):
    """GRU over x (B, T, D), PyTorch's layout and gate order r, z, n; returns the last h (B, U)."""
    B, T, _ = x.shape
    U = weight_hh.shape[1]

    h = np.zeros((B, U), x.dtype)
    for t in range(T):
        gi = x[:, t] @ weight_ih.T + bias_ih  # (B, 3U), blocks r, z, n
        gh = h @ weight_hh.T + bias_hh  # (B, 3U)
        r = sigmoid(gi[:, :U] + gh[:, :U])  # (B, U)
        z = sigmoid(gi[:, U:2 * U] + gh[:, U:2 * U])
        n = np.tanh(gi[:, 2 * U:] + r * gh[:, 2 * U:])
        h = (1 - z) * n + z * h
    return h


def gru_ported(x, kernel, recurrent_kernel, bias):
    """``gru_torch`` moved to Keras's layout (kernel (D, 3U), bias (2, 3U)), blocks still read as r, z, n."""
    B, T, _ = x.shape
    U = recurrent_kernel.shape[0]
    bias_ih, bias_hh = bias  # (3U,) each: Keras's rows 0 and 1

    h = np.zeros((B, U), x.dtype)
    for t in range(T):
        gi = x[:, t] @ kernel + bias_ih  # (B, 3U): Keras's blocks are z, r, h ...
        gh = h @ recurrent_kernel + bias_hh  # (B, 3U)
        r = sigmoid(gi[:, :U] + gh[:, :U])  # (B, U) ... so this is the update gate, not the reset gate
        z = sigmoid(gi[:, U:2 * U] + gh[:, U:2 * U])  # and this the reset gate
        n = np.tanh(gi[:, 2 * U:] + r * gh[:, 2 * U:])
        h = (1 - z) * n + z * h
    return h
