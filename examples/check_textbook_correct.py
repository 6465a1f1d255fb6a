"""A textbook SimpleRNN loop with every Keras option, for ``python -m rnn_ref check``.

The weights are in the textbook layout, which multiplies a column vector
from the left:

    W      (U, D)    input weights
    U_rec  (U, U)    recurrent weights
    b      (U,)      bias, or None for a layer without bias

    h_t = activation(W @ x_t + U_rec @ h_{t-1} + b)

One sample at a time, one step at a time, the options of Keras ``SimpleRNN``
handled inside the loop. Keras stores ``kernel = W.T`` and
``recurrent_kernel = U_rec.T``; ``--layout textbook`` tells the checker to
pass the transposes:

    python -m rnn_ref check examples/check_textbook_correct.py:rnn_forward --layout textbook

Every property holds (exit status 0). The activations are looked up by their
Keras names in ``rnn_ref.layers.activations``, so that what is checked is the loop.
"""

from __future__ import annotations

import numpy as np

from rnn_ref.layers.activations import get as activation_by_name


def rnn_forward(inputs, W, U_rec, b=None, *, activation="tanh", return_sequences=False,
                return_state=False, go_backwards=False, mask=None, initial_state=None,
                zero_output_for_mask=False):
    """SimpleRNN over inputs (B, T, D), or one sequence (T, D), with W (U, D), U_rec (U, U), b (U,)."""
    x = np.asarray(inputs)
    if x.dtype.kind != "f":
        x = x.astype(np.float32)  # Keras computes integer inputs in float32
    if isinstance(initial_state, (list, tuple)):
        (initial_state,) = initial_state
    if x.ndim == 2:  # one sequence: run it as a batch of one and drop the batch axis
        first = lambda a: None if a is None else np.asarray(a)[None]  # noqa: E731
        result = rnn_forward(x[None], W, U_rec, b, activation=activation, return_sequences=return_sequences,
                             return_state=return_state, go_backwards=go_backwards, mask=first(mask),
                             initial_state=first(initial_state), zero_output_for_mask=zero_output_for_mask)
        return (result[0][0], result[1][0]) if return_state else result[0]

    dtype = x.dtype
    W = np.asarray(W, dtype)  # (U, D)
    U_rec = np.asarray(U_rec, dtype)  # (U, U)
    units = U_rec.shape[0]
    b = np.zeros(units, dtype) if b is None else np.asarray(b, dtype)  # (U,)
    f = activation_by_name(activation)
    batch, steps, _ = x.shape

    outputs = np.zeros((batch, steps, units), dtype)  # in processing order, as Keras returns them
    final_states = np.zeros((batch, units), dtype)
    for i in range(batch):
        h = np.zeros(units, dtype) if initial_state is None else np.array(initial_state[i], dtype)
        y = np.zeros(units, dtype)  # the previous output; zero before the first valid step
        order = range(steps - 1, -1, -1) if go_backwards else range(steps)
        for k, t in enumerate(order):
            if mask is None or mask[i][t]:
                h = f(W @ x[i, t] + U_rec @ h + b)  # (U,)
                y = h
            elif zero_output_for_mask:
                y = np.zeros(units, dtype)  # a padded step outputs zeros ...
            # ... or repeats the previous output; either way the state h is kept
            outputs[i, k] = y
        final_states[i] = h

    result = outputs if return_sequences else outputs[:, -1]
    return (result, final_states) if return_state else result
