"""The scalar linear recurrence, grown to SimpleRNN's signature, for ``python -m rnn_ref check``.

The recurrence keeps one number of state per sequence,

    s_0 = 0,    s_t = x_t * w_x + s_{t-1} * w_rec

Below it is generalised as far as it goes without changing its nature:
vectors instead of numbers (x_t (D,), s_t (U,), w_x (D, U), w_rec (U, U),
in Keras's layout), a batch, an optional bias, an initial state, and the
return options. What it still lacks is the activation: it accepts the
``activation`` argument and computes the linear recurrence anyway. Masks and
``go_backwards`` are not attempted; it says so with NotImplementedError,
which the checker reports as "unsupported" rather than as a failure.

    python -m rnn_ref check examples/check_scalar_recurrence.py:linear_recurrence

fails (exit status 1): the counterexamples shrink to one step, one feature,
one unit, where tanh(x * w_x) and x * w_x already differ.
"""

from __future__ import annotations

import numpy as np


def linear_recurrence(inputs, kernel, recurrent_kernel, bias=None, *, activation="tanh",
                      return_sequences=False, return_state=False, go_backwards=False, mask=None,
                      initial_state=None, zero_output_for_mask=False):
    """s_t = x_t @ w_x + s_{t-1} @ w_rec (+ bias) over inputs (B, T, D) or (T, D); no activation."""
    if mask is not None:
        raise NotImplementedError("masks are not supported")
    if go_backwards:
        raise NotImplementedError("go_backwards is not supported")
    X = np.asarray(inputs)
    single = X.ndim == 2
    if single:
        X = X[None]
    if isinstance(initial_state, (list, tuple)):
        (initial_state,) = initial_state
    B, T, D = X.shape
    U = recurrent_kernel.shape[0]

    # S[:, k] holds s_k; S[:, 0] is the initial state, the others follow one by one.
    S = np.zeros((B, T + 1, U), dtype=X.dtype)
    if initial_state is not None:
        S[:, 0] = np.reshape(initial_state, (B, U))
    for k in range(T):
        S[:, k + 1] = X[:, k] @ kernel + S[:, k] @ recurrent_kernel
        if bias is not None:
            S[:, k + 1] += bias

    states = S[:, 1:]  # (B, T, U)
    output = states if return_sequences else states[:, -1]
    final = states[:, -1]
    if single:
        output, final = output[0], final[0]
    return (output, final) if return_state else output
