"""Mutants: implementations of SimpleRNN with one plausible bug each.

The checker must catch each with a small counterexample
(tests/test_catches_bugs.py): in Keras's layout with every option, and in
the seeds' style (textbook layout, tanh only, one sequence at a time or a
batched loop that declines most options), whose correct versions are in
``rnn_ref.implementations.variants``. ``python -m rnn_ref check rnn_ref.implementations.mutants:NAME`` shows
what a failure looks like.
"""

from __future__ import annotations

import numpy as np

from rnn_ref.layers.gru import gru
from rnn_ref.layers.lstm import lstm
from rnn_ref.layers.simple_rnn import simple_rnn
from rnn_ref.implementations.variants import seed_batched, seed_loop


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


MUTANTS = {
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


# -- the seeds' style ---------------------------------------------------------------

def seed_bias_after_tanh(x, W, U, b):
    """Adds the bias after the activation."""
    return seed_loop(x, W, U, b, step=lambda x_t, h, W, U, b: np.tanh(W @ x_t + U @ h) + b)


def seed_no_activation(x, W, U, b):
    """Leaves the activation out (the seed's scalar recurrence)."""
    return seed_loop(x, W, U, b, step=lambda x_t, h, W, U, b: W @ x_t + U @ h + b)


def seed_transposed_recurrent(x, W, U, b):
    """Multiplies the state by U.T."""
    return seed_loop(x, W, U, b, step=lambda x_t, h, W, U, b: np.tanh(W @ x_t + U.T @ h + b))


def seed_state_not_carried(x, W, U, b):
    """Starts every step from a zero state."""
    return seed_loop(x, W, U, b, step=lambda x_t, h, W, U, b: np.tanh(W @ x_t + U @ np.zeros_like(h) + b))


def seed_last_step_dropped(x, W, U, b):
    """Stops one step early (``range(len(x) - 1)``)."""
    return seed_loop(x[:-1], W, U, b, step=lambda x_t, h, W, U, b: np.tanh(W @ x_t + U @ h + b))


def seed_options_bias_after_tanh(x, W, U, b, activation="tanh", return_sequences=False, **options):
    """The batched loop, bias added after tanh."""
    return seed_batched(x, W, U, b, activation, return_sequences, options,
                        step=lambda x_t, h, W, U, b: np.tanh(x_t @ W.T + h @ U.T) + b)


def seed_options_no_activation(x, W, U, b, activation="tanh", return_sequences=False, **options):
    """The batched loop without tanh."""
    return seed_batched(x, W, U, b, activation, return_sequences, options,
                        step=lambda x_t, h, W, U, b: x_t @ W.T + h @ U.T + b)


def seed_options_transposed_recurrent(x, W, U, b, activation="tanh", return_sequences=False, **options):
    """The batched loop, state multiplied by U.T (``h @ U``)."""
    return seed_batched(x, W, U, b, activation, return_sequences, options,
                        step=lambda x_t, h, W, U, b: np.tanh(x_t @ W.T + h @ U + b))


def seed_options_state_not_carried(x, W, U, b, activation="tanh", return_sequences=False, **options):
    """The batched loop, state reset to zero at every step."""
    return seed_batched(x, W, U, b, activation, return_sequences, options,
                        step=lambda x_t, h, W, U, b: np.tanh(x_t @ W.T + np.zeros_like(h) @ U.T + b))


def seed_options_last_step_dropped(x, W, U, b, activation="tanh", return_sequences=False, **options):
    """The batched loop over T - 1 steps."""
    return seed_batched(np.asarray(x)[:, :-1], W, U, b, activation, return_sequences, options,
                        step=lambda x_t, h, W, U, b: np.tanh(x_t @ W.T + h @ U.T + b))


#: Bug name -> (the no-options function, the function with declined options).
SEED_STYLE = {
    "bias_after_tanh": (seed_bias_after_tanh, seed_options_bias_after_tanh),
    "no_activation": (seed_no_activation, seed_options_no_activation),
    "transposed_recurrent": (seed_transposed_recurrent, seed_options_transposed_recurrent),
    "state_not_carried": (seed_state_not_carried, seed_options_state_not_carried),
    "last_step_dropped": (seed_last_step_dropped, seed_options_last_step_dropped),
}


# -- LSTM and GRU: porting bugs --------------------------------------------------------

def _blocks(a, order):
    """The gate blocks of the last axis of ``a`` (k blocks of U columns) in ``order``."""
    if a is None:
        return None
    a = np.asarray(a)
    k = len(order)
    U = a.shape[-1] // k
    return np.concatenate([a[..., i * U:(i + 1) * U] for i in order], axis=-1)


def _reordered(layer, order):
    def f(inputs, kernel, recurrent_kernel, bias=None, **kw):
        return layer(inputs, _blocks(kernel, order), _blocks(recurrent_kernel, order), _blocks(bias, order), **kw)
    return f


def lstm_gates_ifco_read_as_icfo(inputs, kernel, recurrent_kernel, bias=None, **kw):
    """Reads Keras's i, f, c, o blocks in TensorFlow 1's order i, c, f, o."""
    return _reordered(lstm, (0, 2, 1, 3))(inputs, kernel, recurrent_kernel, bias, **kw)


def lstm_ignores_initial_c(inputs, kernel, recurrent_kernel, bias=None, **kw):
    """Starts the cell state c from zeros whatever initial_state says (h0 is used)."""
    h0c0 = kw.get("initial_state")
    if h0c0 is not None:
        kw = {**kw, "initial_state": [h0c0[0], np.zeros_like(np.asarray(h0c0[1]))]}
    return lstm(inputs, kernel, recurrent_kernel, bias, **kw)


def lstm_returns_h_as_c(inputs, kernel, recurrent_kernel, bias=None, **kw):
    """With return_state, returns h twice instead of (h, c)."""
    out = lstm(inputs, kernel, recurrent_kernel, bias, **kw)
    return (out[0], out[1], out[1]) if kw.get("return_state") else out


def gru_pytorch_gate_order(inputs, kernel, recurrent_kernel, bias=None, **kw):
    """Reads Keras's z, r, h blocks in PyTorch's order r, z, n."""
    return _reordered(gru, (1, 0, 2))(inputs, kernel, recurrent_kernel, bias, **kw)


def gru_input_bias_for_both(inputs, kernel, recurrent_kernel, bias=None, **kw):
    """With reset_after, uses the input bias row for the recurrent product too."""
    if bias is not None and np.ndim(bias) == 2:
        bias = np.stack([np.asarray(bias)[0], np.asarray(bias)[0]])
    return gru(inputs, kernel, recurrent_kernel, bias, **kw)


MUTANTS.update({
    "lstm_gates_ifco_read_as_icfo": lstm_gates_ifco_read_as_icfo,
    "lstm_ignores_initial_c": lstm_ignores_initial_c,
    "lstm_returns_h_as_c": lstm_returns_h_as_c,
    "gru_pytorch_gate_order": gru_pytorch_gate_order,
    "gru_input_bias_for_both": gru_input_bias_for_both,
})


# -- LSTM and GRU: the gate equations (single_step_equals_gate_equations) ----------------

def lstm_input_forget_swapped(inputs, kernel, recurrent_kernel, bias=None, **kw):
    """Reads the i and f blocks the other way round (i, f, c, o taken as f, i, c, o)."""
    return _reordered(lstm, (1, 0, 2, 3))(inputs, kernel, recurrent_kernel, bias, **kw)


def gru_reset_after_applied_before_product(inputs, kernel, recurrent_kernel, bias=None, **kw):
    """With reset_after=True, applies the reset gate before the recurrent product, as
    reset_after=False does: h~ = act(x W_h + b_h + (r * h) U_h + b_rh) instead of
    act(x W_h + b_h + r * (h U_h + b_rh)) (both bias rows kept, neither reset)."""
    if not kw.get("reset_after", True):
        return gru(inputs, kernel, recurrent_kernel, bias, **kw)
    b = None if bias is None else np.asarray(bias)[0] + np.asarray(bias)[1]  # (3U,): z and r see both rows as before
    return gru(inputs, kernel, recurrent_kernel, b, **{**kw, "reset_after": False})


MUTANTS.update({
    "lstm_input_forget_swapped": lstm_input_forget_swapped,
    "gru_reset_after_applied_before_product": gru_reset_after_applied_before_product,
})


# -- Bidirectional functions (check --layer bidirectional) ---------------------------------
# Each is called like rnn_ref.bidirectional with an LSTM bound:
# f(inputs, forward, backward, merge_mode="concat", **options).

def _directions(inputs, forward, backward, *, mask=None, initial_state=None, backward_mask=True,
                zero_output=True, reverse=True, **options):
    """Both LSTM directions, the backward one's outputs back in input order."""
    sequences = options.get("return_sequences", False)
    init_f = init_b = None
    if initial_state is not None:
        init_f, init_b = list(initial_state[:2]), list(initial_state[2:])
    zero = sequences and zero_output
    y = lstm(inputs, *forward, mask=mask, initial_state=init_f, zero_output_for_mask=zero, **options)
    y_rev = lstm(inputs, *backward, go_backwards=True, mask=mask if backward_mask else None,
                 initial_state=init_b, zero_output_for_mask=zero, **options)
    if options.get("return_state"):
        (y, *states_f), (y_rev, *states_b) = y, y_rev
    else:
        states_f = states_b = []
    if sequences and reverse:
        y_rev = np.flip(y_rev, axis=-2)
    return y, y_rev, [*states_f, *states_b]


def _merge(y, y_rev, states, merge_mode, *, ave_as_sum=False):
    if merge_mode == "concat":
        out = np.concatenate([y, y_rev], axis=-1)
    elif merge_mode == "sum" or (merge_mode == "ave" and ave_as_sum):
        out = y + y_rev
    elif merge_mode == "mul":
        out = y * y_rev
    elif merge_mode == "ave":
        out = (y + y_rev) / 2
    else:
        return (y, np.ascontiguousarray(y_rev), *states) if states else (y, np.ascontiguousarray(y_rev))
    return (out, *states) if states else out


def bidirectional_backward_ignores_mask(inputs, forward, backward, merge_mode="concat", **options):
    """The backward layer runs without the mask (padded steps read as data)."""
    return _merge(*_directions(inputs, forward, backward, backward_mask=False, **options), merge_mode)


def bidirectional_padded_steps_not_zeroed(inputs, forward, backward, merge_mode="concat", **options):
    """Keeps the layers' own zero_output_for_mask=False: a padded step repeats the
    previous output instead of the zeros Bidirectional forces with return_sequences."""
    return _merge(*_directions(inputs, forward, backward, zero_output=False, **options), merge_mode)


def bidirectional_backward_in_processing_order(inputs, forward, backward, merge_mode="concat", **options):
    """Leaves the backward outputs in processing order (last input step first)."""
    return _merge(*_directions(inputs, forward, backward, reverse=False, **options), merge_mode)


def bidirectional_initial_states_swapped(inputs, forward, backward, merge_mode="concat", initial_state=None,
                                         **options):
    """Takes initial_state as the backward states first, then the forward ones."""
    if initial_state is not None:
        initial_state = [*initial_state[2:], *initial_state[:2]]
    return _merge(*_directions(inputs, forward, backward, initial_state=initial_state, **options), merge_mode)


def bidirectional_ave_is_sum(inputs, forward, backward, merge_mode="concat", **options):
    """merge_mode="ave" forgets to halve the sum."""
    return _merge(*_directions(inputs, forward, backward, **options), merge_mode, ave_as_sum=True)


#: Bidirectional(LSTM) functions with one bug each.
BIDIRECTIONAL_MUTANTS = {f.__name__: f for f in (
    bidirectional_backward_ignores_mask, bidirectional_padded_steps_not_zeroed,
    bidirectional_backward_in_processing_order, bidirectional_initial_states_swapped, bidirectional_ave_is_sum)}


# -- backward passes ------------------------------------------------------------------
# Called like ``rnn_ref.harness.backprop.reference_backward(layer)``:
# ``f(inputs, kernel, recurrent_kernel, bias=None, *, d_output, **options)`` returning
# ``{name: gradient}`` in Keras's layout (``check --gradients`` on a keras-layout
# function, tests/test_check_gradients.py). Each is rnn_ref's own backward pass
# (``rnn_ref.vjp``) with one plausible bug, for any of the three layers.

def _reference_grads(layer, inputs, kernel, recurrent_kernel, bias, d_output, **options):
    from rnn_ref.models.registry import vjp

    _, back = vjp(layer, inputs, kernel, recurrent_kernel, bias, **options)
    return {k: v for k, v in back(d_output)._asdict().items() if v is not None}


def _backward_mutant(bug):
    """One backward mutant per layer: ``bug(layer, inputs, ..., d_output=, **options)``."""
    def for_layer(layer):
        def backward(inputs, kernel, recurrent_kernel, bias=None, *, d_output, **options):
            if options.pop("return_state", False):
                raise NotImplementedError("a backward pass takes the output's cotangent only")
            return bug(layer, inputs, kernel, recurrent_kernel, bias, d_output, **options)

        backward.__name__ = f"{bug.__name__}_{layer.__name__}"
        backward.__doc__ = bug.__doc__
        return backward
    return {layer.__name__: for_layer(layer) for layer in (simple_rnn, lstm, gru)}


def grad_weights_averaged_over_batch(layer, inputs, kernel, recurrent_kernel, bias, d_output, **options):
    """The weight gradients divided by the batch size (a mean loss's 1/B applied twice)."""
    grads = _reference_grads(layer, inputs, kernel, recurrent_kernel, bias, d_output, **options)
    B = np.shape(inputs)[0] if np.ndim(inputs) == 3 else 1
    for name in ("kernel", "recurrent_kernel", "bias"):
        if name in grads:
            grads[name] = (grads[name] / B).astype(grads[name].dtype)
    return grads


def grad_last_output_at_first_step(layer, inputs, kernel, recurrent_kernel, bias, d_output, **options):
    """Without return_sequences, the last output's cotangent is put at the first step processed."""
    if options.get("return_sequences"):
        return _reference_grads(layer, inputs, kernel, recurrent_kernel, bias, d_output, **options)
    d = np.asarray(d_output)
    T = np.shape(inputs)[-2]
    seq = np.zeros((*d.shape[:-1], T, d.shape[-1]), dtype=d.dtype)  # ([B,] T, U)
    seq[..., 0, :] = d
    return _reference_grads(layer, inputs, kernel, recurrent_kernel, bias, seq,
                            **{**options, "return_sequences": True})


def grad_padded_inputs_get_gradient(layer, inputs, kernel, recurrent_kernel, bias, d_output, **options):
    """The inputs' gradient at padded steps is the one the step would have without the mask."""
    grads = _reference_grads(layer, inputs, kernel, recurrent_kernel, bias, d_output, **options)
    mask = options.get("mask")
    if mask is not None:
        unmasked = _reference_grads(layer, inputs, kernel, recurrent_kernel, bias, d_output,
                                    **{**options, "mask": None})
        grads["inputs"] = np.where(np.asarray(mask)[..., None], grads["inputs"], unmasked["inputs"])
    return grads


def grad_one_sequence_ignores_mask(layer, inputs, kernel, recurrent_kernel, bias, d_output, **options):
    """One sequence (T, D) is run as a batch of one, without its mask."""
    if np.ndim(inputs) == 2:
        options = {**options, "mask": None}
    return _reference_grads(layer, inputs, kernel, recurrent_kernel, bias, d_output, **options)


def grad_hard_sigmoid_as_sigmoid(layer, inputs, kernel, recurrent_kernel, bias, d_output, **options):
    """hard_sigmoid's derivative taken as sigmoid's (the gradients of the smooth function)."""
    options = {k: ("sigmoid" if v == "hard_sigmoid" else v) for k, v in options.items()}
    return _reference_grads(layer, inputs, kernel, recurrent_kernel, bias, d_output, **options)


def grad_initial_state_not_carried(layer, inputs, kernel, recurrent_kernel, bias, d_output, **options):
    """The initial state's gradient is what reaches it from the first step's output alone (not carried back
    from later steps)."""
    grads = _reference_grads(layer, inputs, kernel, recurrent_kernel, bias, d_output, **options)
    if "initial_state" in grads and options.get("return_sequences"):
        d = np.zeros_like(np.asarray(d_output))
        d[..., :1, :] = np.asarray(d_output)[..., :1, :]
        grads["initial_state"] = _reference_grads(layer, inputs, kernel, recurrent_kernel, bias, d,
                                                  **options)["initial_state"]
    return grads


#: layer name (rnn_ref.simple_rnn.__name__, ...) -> the mutant for that layer, by bug.
GRADIENT_MUTANTS = {bug.__name__: _backward_mutant(bug) for bug in (
    grad_weights_averaged_over_batch, grad_last_output_at_first_step, grad_padded_inputs_get_gradient,
    grad_one_sequence_ignores_mask, grad_hard_sigmoid_as_sigmoid, grad_initial_state_not_carried)}
