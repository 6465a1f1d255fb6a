"""Correct implementations of SimpleRNN that round differently from ``rnn_ref.simple_rnn``.

The checker must pass them on every case, chaotic weights included; the
tolerance report measures how far each lands from the float64 truth. Their
deliberately wrong counterparts are in ``rnn_ref.implementations.mutants``. Also here: the
seeds' style done right (textbook layout, tanh only, few or no options).
"""

from __future__ import annotations

import numpy as np

from rnn_ref.layers.activations import get as get_activation
from rnn_ref.layers.simple_rnn import simple_rnn


# -- correct, rounding differently -------------------------------------------

def float64_inside(inputs, kernel, recurrent_kernel, bias=None, **options):
    """Computes in float64 and rounds the result to the inputs' dtype once."""
    dtype = np.asarray(inputs).dtype
    to64 = lambda a: None if a is None else np.asarray(a, dtype=np.float64)  # noqa: E731
    if options.get("initial_state") is not None:
        options["initial_state"] = to64(options["initial_state"])
    out = simple_rnn(to64(inputs), to64(kernel), to64(recurrent_kernel), to64(bias), **options)
    if isinstance(out, tuple):
        return tuple(o.astype(dtype) for o in out)
    return out.astype(dtype)


def fused_product(inputs, kernel, recurrent_kernel, bias=None, *, activation="tanh",
                  return_sequences=False, return_state=False, go_backwards=False, mask=None,
                  initial_state=None, zero_output_for_mask=False):
    """One product per step: ``[x_t, h] @ [[kernel], [recurrent_kernel]] + bias``."""
    x = np.asarray(inputs)
    single = x.ndim == 2
    if single:
        x = x[None]
        mask = None if mask is None else np.asarray(mask)[None]
        initial_state = None if initial_state is None else np.asarray(initial_state)[None]
    dt = x.dtype
    B, T, D = x.shape
    U = recurrent_kernel.shape[0]
    W = np.concatenate([kernel, recurrent_kernel]).astype(dt)  # (D + U, U)
    b = np.zeros(U, dt) if bias is None else bias.astype(dt)
    act = get_activation(activation)
    if go_backwards:
        x = x[:, ::-1]
        mask = None if mask is None else np.asarray(mask)[:, ::-1]
    h = np.zeros((B, U), dt) if initial_state is None else np.asarray(initial_state, dt)
    prev = np.zeros((B, U), dt)
    outs = []
    for t in range(T):
        new = act(np.concatenate([x[:, t], h], axis=1) @ W + b)
        if mask is not None:
            m = np.asarray(mask)[:, t, None].astype(bool)
            h = np.where(m, new, h)
            new = np.where(m, new, np.zeros_like(new) if zero_output_for_mask else prev)
        else:
            h = new
        outs.append(new)
        prev = new
    out = np.stack(outs, axis=1) if return_sequences else outs[-1]
    if single:
        out, h = out[0], h[0]
    return (out, h) if return_state else out


def per_sample_textbook(inputs, kernel, recurrent_kernel, bias=None, **options):
    """The textbook loop, one sample at a time, ``tanh(W @ x + U @ h + b)`` with W = kernel.T."""
    x = np.asarray(inputs)
    if x.ndim == 2:
        return _per_sample_one(x, kernel, recurrent_kernel, bias, **options)
    results = []
    for b in range(x.shape[0]):
        opts = dict(options)
        for k in ("mask", "initial_state"):
            if opts.get(k) is not None:
                opts[k] = np.asarray(opts[k])[b]
        results.append(_per_sample_one(x[b], kernel, recurrent_kernel, bias, **opts))
    if options.get("return_state"):
        return tuple(np.stack(p).astype(x.dtype).reshape((x.shape[0],) + p[0].shape) for p in zip(*results))
    return np.stack(results).reshape((x.shape[0],) + np.shape(results[0])).astype(x.dtype)


def _per_sample_one(x, kernel, recurrent_kernel, bias, *, activation="tanh", return_sequences=False,
                    return_state=False, go_backwards=False, mask=None, initial_state=None,
                    zero_output_for_mask=False):
    dt = x.dtype
    W, Ur = np.asarray(kernel, dt).T, np.asarray(recurrent_kernel, dt).T  # (U, D), (U, U)
    b = np.zeros(W.shape[0], dt) if bias is None else np.asarray(bias, dt)
    act = get_activation(activation)
    steps = range(len(x) - 1, -1, -1) if go_backwards else range(len(x))
    h = np.zeros(W.shape[0], dt) if initial_state is None else np.asarray(initial_state, dt)
    prev, outs = np.zeros_like(h), []
    for t in steps:
        new = act(W @ x[t] + Ur @ h + b)
        if mask is not None and not mask[t]:
            new = np.zeros_like(h) if zero_output_for_mask else prev
        else:
            h = new
        outs.append(new)
        prev = new
    out = np.stack(outs) if return_sequences else outs[-1]
    return (out, h) if return_state else out


CORRECT = {"float64_inside": float64_inside, "fused_product": fused_product,
           "per_sample_textbook": per_sample_textbook}


# -- the seeds' style: textbook layout, tanh only, few or no options -------------------
#
# What people write from a textbook: ``h = tanh(W @ x_t + U @ h + b)`` with
# W (U, D), U (U, U), one sequence x (T, D) at a time, no keyword arguments;
# or a batched loop that takes a few options and declines the rest with
# NotImplementedError. The checker must check them where they work and catch
# each bug in ``rnn_ref.implementations.mutants`` with a small case (``--layout textbook``).

def seed_loop(x, W, U, b, *, step):
    """h after ``step(x_t, h, W, U, b)`` over one sequence x (T, D), from h = 0."""
    h = np.zeros(U.shape[0], dtype=x.dtype)  # (U,)
    for t in range(len(x)):
        h = step(x[t], h, W, U, b)  # (U,)
    return h


def seed_batched(x, W, U, b, activation, return_sequences, options, *, step):
    """``step`` over a batch x (B, T, D), tanh and return_sequences only: every other
    activation or option given is declined with NotImplementedError."""
    if activation != "tanh":
        raise NotImplementedError("only tanh")
    given = sorted(k for k, v in options.items() if v is not None and v is not False)
    if given:
        raise NotImplementedError(f"{', '.join(given)} not supported")
    x = np.asarray(x)
    if x.ndim != 3:
        raise NotImplementedError("inputs must be (B, T, D)")
    h = np.zeros((x.shape[0], U.shape[0]), dtype=x.dtype)  # (B, U)
    hs = []
    for t in range(x.shape[1]):
        h = step(x[:, t], h, W, U, b)  # (B, U)
        hs.append(h)
    return np.stack(hs, axis=1) if return_sequences else hs[-1]


def seed_rnn(x, W, U, b):
    """Correct: the last h over one sequence x (T, D)."""
    return seed_loop(x, W, U, b, step=lambda x_t, h, W, U, b: np.tanh(W @ x_t + U @ h + b))


def seed_options_rnn(x, W, U, b, activation="tanh", return_sequences=False, **options):
    """Correct: a batched loop with tanh and return_sequences, declining everything else."""
    return seed_batched(x, W, U, b, activation, return_sequences, options,
                        step=lambda x_t, h, W, U, b: np.tanh(x_t @ W.T + h @ U.T + b))


def seed_rnn_states(x, W, U, b):
    """Correct, as the U/W/V answers write it: every state of one sequence x (T, D),
    computed in float64 from ``h = np.zeros(U)`` whatever the inputs' dtype."""
    h = np.zeros(U.shape[0])
    states = []
    for x_t in x:
        h = np.tanh(W @ x_t + U @ h + b)
        states.append(h)
    return np.array(states)  # (T, U)


SEED_STYLE = {"seed_rnn": seed_rnn, "seed_options_rnn": seed_options_rnn, "seed_rnn_states": seed_rnn_states}
