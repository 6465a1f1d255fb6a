"""Other implementations of SimpleRNN, correct and wrong, for calibrating and
testing the checker.

The correct ones compute the same function as ``rnn_ref.simple_rnn`` but
round differently; the checker must pass them on every case, chaotic weights
included. The wrong ones carry one plausible bug each; the checker must
catch them with a small counterexample.
"""

from __future__ import annotations

import numpy as np

from ..activations import get as get_activation
from ..simple_rnn import simple_rnn


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


# -- wrong, one bug each ---------------------------------------------------------

def scaled_output(scale):
    """Correct except for a relative error ``scale`` on every result."""
    def f(*args, **kw):
        out = simple_rnn(*args, **kw)
        if isinstance(out, tuple):
            return tuple((o * (1 + scale)).astype(o.dtype) for o in out)
        return (out * (1 + scale)).astype(out.dtype)
    f.__name__ = f"scaled_output_{scale:g}"
    return f


def transposed_recurrent_kernel(inputs, kernel, recurrent_kernel, bias=None, **kw):
    """Uses ``recurrent_kernel.T``: the textbook ``U @ h`` with U = recurrent_kernel."""
    return simple_rnn(inputs, kernel, np.asarray(recurrent_kernel).T, bias, **kw)


def missing_activation(inputs, kernel, recurrent_kernel, bias=None, **kw):
    """Ignores the activation (the scalar recurrence of the seed)."""
    return simple_rnn(inputs, kernel, recurrent_kernel, bias, **{**kw, "activation": "linear"})


def ignores_mask(inputs, kernel, recurrent_kernel, bias=None, **kw):
    """Drops the mask, as converters that pass masking through do."""
    return simple_rnn(inputs, kernel, recurrent_kernel, bias, **{**kw, "mask": None})


def backwards_output_in_input_order(inputs, kernel, recurrent_kernel, bias=None, **kw):
    """Re-reverses go_backwards sequences (ONNX's order, not Keras's)."""
    out = simple_rnn(inputs, kernel, recurrent_kernel, bias, **kw)
    if not (kw.get("go_backwards") and kw.get("return_sequences")):
        return out
    flip = lambda o: np.ascontiguousarray(o[..., ::-1, :])  # noqa: E731
    return (flip(out[0]), out[1]) if isinstance(out, tuple) else flip(out)


def ignores_initial_state(inputs, kernel, recurrent_kernel, bias=None, **kw):
    """Always starts from zeros (so stateful chunks restart too)."""
    return simple_rnn(inputs, kernel, recurrent_kernel, bias, **{**kw, "initial_state": None})


def masked_output_is_state(inputs, kernel, recurrent_kernel, bias=None, **kw):
    """At a padded step outputs the carried state: before the first valid step that is
    the initial state, not zero (Keras's JAX and NumPy backends do this)."""
    mask, h0 = kw.get("mask"), kw.get("initial_state")
    if mask is None or h0 is None or kw.get("zero_output_for_mask"):
        return simple_rnn(inputs, kernel, recurrent_kernel, bias, **kw)
    out = simple_rnn(inputs, kernel, recurrent_kernel, bias, **{**kw, "return_sequences": True, "return_state": True})
    seq, state = out
    m = np.asarray(mask, dtype=bool)
    if kw.get("go_backwards"):
        m = m[..., ::-1]
    before_first = np.cumsum(m, axis=-1) == 0  # (B, T) or (T,)
    seq = np.where(before_first[..., None], np.expand_dims(np.asarray(h0, seq.dtype), -2), seq).astype(seq.dtype)
    result = seq if kw.get("return_sequences") else seq[..., -1, :]
    return (result, state) if kw.get("return_state") else result


def final_state_is_first_step(inputs, kernel, recurrent_kernel, bias=None, **kw):
    """Returns the state after the first step as the final state."""
    if not kw.get("return_state"):
        return simple_rnn(inputs, kernel, recurrent_kernel, bias, **kw)
    out, _ = simple_rnn(inputs, kernel, recurrent_kernel, bias, **kw)
    first = {**kw, "return_sequences": False, "return_state": False}
    x = np.asarray(inputs)
    step = x[..., -1:, :] if kw.get("go_backwards") else x[..., :1, :]
    if first.get("mask") is not None:
        first["mask"] = np.asarray(first["mask"])[..., -1:] if kw.get("go_backwards") else np.asarray(first["mask"])[..., :1]
    first["go_backwards"] = False
    return out, simple_rnn(step, kernel, recurrent_kernel, bias, **first)


def last_output_one_step_early(inputs, kernel, recurrent_kernel, bias=None, **kw):
    """Without return_sequences, returns the output of step T-2 (an off-by-one loop)."""
    if kw.get("return_sequences") or np.shape(inputs)[-2] < 2:
        return simple_rnn(inputs, kernel, recurrent_kernel, bias, **kw)
    out = simple_rnn(inputs, kernel, recurrent_kernel, bias, **{**kw, "return_sequences": True})
    if isinstance(out, tuple):
        return out[0][..., -2, :], out[1]
    return out[..., -2, :]


def one_sequence_as_a_batch(inputs, kernel, recurrent_kernel, bias=None, **kw):
    """Reads one sequence (T, D) as T sequences of one step each."""
    x = np.asarray(inputs)
    if x.ndim != 2:
        return simple_rnn(inputs, kernel, recurrent_kernel, bias, **kw)
    kw = {**kw, "mask": None, "initial_state": None, "return_sequences": False}
    out = simple_rnn(x[:, None, :], kernel, recurrent_kernel, bias, **kw)  # (T, U) or ((T, U), (T, U))
    return (out[0][-1], out[1][-1]) if isinstance(out, tuple) else out[-1]


def bias_as_array(inputs, kernel, recurrent_kernel, bias=None, **kw):
    """Converts the bias with ``np.asarray(bias, dtype)`` unconditionally: None becomes NaN."""
    dtype = np.asarray(inputs).dtype
    b = np.broadcast_to(np.asarray(bias, dtype=dtype), (np.shape(recurrent_kernel)[0],))
    return simple_rnn(inputs, kernel, recurrent_kernel, b, **kw)


WRONG = {
    "scaled_output_1e-4": scaled_output(1e-4),
    "transposed_recurrent_kernel": transposed_recurrent_kernel,
    "missing_activation": missing_activation,
    "ignores_mask": ignores_mask,
    "backwards_output_in_input_order": backwards_output_in_input_order,
    "ignores_initial_state": ignores_initial_state,
    "masked_output_is_state": masked_output_is_state,
    "final_state_is_first_step": final_state_is_first_step,
    "last_output_one_step_early": last_output_one_step_early,
    "one_sequence_as_a_batch": one_sequence_as_a_batch,
    "bias_as_array": bias_as_array,
}


# -- the seeds' style: textbook layout, tanh only, few or no options ------------------
#
# What people write from a textbook: ``h = tanh(W @ x_t + U @ h + b)`` with
# W (U, D), U (U, U), one sequence x (T, D) at a time, no keyword arguments;
# or a batched loop that takes a few options and declines the rest with
# NotImplementedError. The checker must check them where they work and catch
# each bug below with a small case (``--layout textbook``).

def _seed_loop(x, W, U, b, *, step):
    h = np.zeros(U.shape[0], dtype=x.dtype)  # (U,)
    for t in range(len(x)):
        h = step(x[t], h, W, U, b)  # (U,)
    return h


def seed_rnn(x, W, U, b):
    """Correct: the last h over one sequence x (T, D)."""
    return _seed_loop(x, W, U, b, step=lambda x_t, h, W, U, b: np.tanh(W @ x_t + U @ h + b))


def seed_bias_after_tanh(x, W, U, b):
    """Adds the bias after the activation."""
    return _seed_loop(x, W, U, b, step=lambda x_t, h, W, U, b: np.tanh(W @ x_t + U @ h) + b)


def seed_no_activation(x, W, U, b):
    """Leaves the activation out (the seed's scalar recurrence)."""
    return _seed_loop(x, W, U, b, step=lambda x_t, h, W, U, b: W @ x_t + U @ h + b)


def seed_transposed_recurrent(x, W, U, b):
    """Multiplies the state by U.T."""
    return _seed_loop(x, W, U, b, step=lambda x_t, h, W, U, b: np.tanh(W @ x_t + U.T @ h + b))


def seed_state_not_carried(x, W, U, b):
    """Starts every step from a zero state."""
    return _seed_loop(x, W, U, b, step=lambda x_t, h, W, U, b: np.tanh(W @ x_t + U @ np.zeros_like(h) + b))


def seed_last_step_dropped(x, W, U, b):
    """Stops one step early (``range(len(x) - 1)``)."""
    return _seed_loop(x[:-1], W, U, b, step=lambda x_t, h, W, U, b: np.tanh(W @ x_t + U @ h + b))


def _seed_batched(x, W, U, b, activation, return_sequences, options, *, step):
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


def seed_options_rnn(x, W, U, b, activation="tanh", return_sequences=False, **options):
    """Correct: a batched loop with tanh and return_sequences, declining everything else."""
    return _seed_batched(x, W, U, b, activation, return_sequences, options,
                         step=lambda x_t, h, W, U, b: np.tanh(x_t @ W.T + h @ U.T + b))


def seed_options_bias_after_tanh(x, W, U, b, activation="tanh", return_sequences=False, **options):
    """The batched loop, bias added after tanh."""
    return _seed_batched(x, W, U, b, activation, return_sequences, options,
                         step=lambda x_t, h, W, U, b: np.tanh(x_t @ W.T + h @ U.T) + b)


def seed_options_no_activation(x, W, U, b, activation="tanh", return_sequences=False, **options):
    """The batched loop without tanh."""
    return _seed_batched(x, W, U, b, activation, return_sequences, options,
                         step=lambda x_t, h, W, U, b: x_t @ W.T + h @ U.T + b)


def seed_options_transposed_recurrent(x, W, U, b, activation="tanh", return_sequences=False, **options):
    """The batched loop, state multiplied by U.T (``h @ U``)."""
    return _seed_batched(x, W, U, b, activation, return_sequences, options,
                         step=lambda x_t, h, W, U, b: np.tanh(x_t @ W.T + h @ U + b))


def seed_options_state_not_carried(x, W, U, b, activation="tanh", return_sequences=False, **options):
    """The batched loop, state reset to zero at every step."""
    return _seed_batched(x, W, U, b, activation, return_sequences, options,
                         step=lambda x_t, h, W, U, b: np.tanh(x_t @ W.T + np.zeros_like(h) @ U.T + b))


def seed_options_last_step_dropped(x, W, U, b, activation="tanh", return_sequences=False, **options):
    """The batched loop over T - 1 steps."""
    return _seed_batched(np.asarray(x)[:, :-1], W, U, b, activation, return_sequences, options,
                         step=lambda x_t, h, W, U, b: np.tanh(x_t @ W.T + h @ U.T + b))


SEED_STYLE_CORRECT = {"seed_rnn": seed_rnn, "seed_options_rnn": seed_options_rnn}

#: Bug name -> (the no-options function, the function with declined options).
SEED_STYLE_WRONG = {
    "bias_after_tanh": (seed_bias_after_tanh, seed_options_bias_after_tanh),
    "no_activation": (seed_no_activation, seed_options_no_activation),
    "transposed_recurrent": (seed_transposed_recurrent, seed_options_transposed_recurrent),
    "state_not_carried": (seed_state_not_carried, seed_options_state_not_carried),
    "last_step_dropped": (seed_last_step_dropped, seed_options_last_step_dropped),
}
