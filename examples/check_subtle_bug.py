"""A vectorised SimpleRNN with one subtle masking bug, for ``python -m rnn_ref check``.

At a padded step (mask False) Keras keeps the state and repeats the previous
*output*. This implementation keeps the state and outputs the *state*. After
the first valid step of a row the two are the same number, so random masks,
left and right padding all agree with Keras. They differ only before the
first valid step when an initial state is given: Keras outputs zeros there
(there is no previous output yet), this function outputs the initial state.

    python -m rnn_ref check examples/check_subtle_bug.py:simple_rnn_forward

fails (exit status 1) on a one-row, one-step case: the step masked, a random
initial state, the output the initial state instead of zero.
"""

from __future__ import annotations

import numpy as np

from rnn_ref.layers.activations import get as activation_by_name


def simple_rnn_forward(inputs, kernel, recurrent_kernel, bias=None, *, activation="tanh",
                       return_sequences=False, return_state=False, go_backwards=False, mask=None,
                       initial_state=None, zero_output_for_mask=False):
    """SimpleRNN over inputs (B, T, D) or one sequence (T, D), Keras's layout."""
    x = np.asarray(inputs)
    if x.dtype.kind != "f":
        x = x.astype(np.float32)
    if isinstance(initial_state, (list, tuple)):
        (initial_state,) = initial_state
    single = x.ndim == 2
    if single:
        x = x[None]
        mask = None if mask is None else np.asarray(mask)[None]
        initial_state = None if initial_state is None else np.asarray(initial_state)[None]
    dtype = x.dtype
    B, T, _ = x.shape
    U = recurrent_kernel.shape[0]
    kernel = np.asarray(kernel, dtype)
    recurrent_kernel = np.asarray(recurrent_kernel, dtype)
    f = activation_by_name(activation)

    h = np.zeros((B, U), dtype) if initial_state is None else np.array(initial_state, dtype)
    m = None if mask is None else np.asarray(mask, bool)
    if go_backwards:
        x = x[:, ::-1]
        m = None if m is None else m[:, ::-1]
    z = x @ kernel  # (B, T, U), every step's input projection at once
    if bias is not None:
        z = z + np.asarray(bias, dtype)

    outputs = np.empty((B, T, U), dtype)
    for t in range(T):
        h_new = f(z[:, t] + h @ recurrent_kernel)  # (B, U)
        if m is None:
            h = h_new
            outputs[:, t] = h
            continue
        valid = m[:, t, None]  # (B, 1)
        h = np.where(valid, h_new, h)  # a padded row keeps its state ...
        outputs[:, t] = np.where(valid, h, 0) if zero_output_for_mask else h  # ... and outputs it (the bug)

    out = outputs if return_sequences else outputs[:, -1]
    if single:
        out, h = out[0], h[0]
    return (out, h) if return_state else out
