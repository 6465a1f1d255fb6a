"""Keras ``Bidirectional`` wrapper in NumPy, around ``simple_rnn``, ``lstm`` or ``gru``.

Two copies of the layer with their own weights read the same inputs: the
forward one from the first step to the last, the backward one with
``go_backwards`` from the last to the first. Then, as Keras does::

    y     = layer(inputs, *forward)                             # (B, T, U) or (B, U)
    y_rev = layer(inputs, *backward, go_backwards=True)         # (B, T, U) or (B, U)
    y_rev = y_rev[:, ::-1]    # only with return_sequences: back in input order
    output = merge(y, y_rev)  # concat (B, [T,] 2U); sum, mul, ave (B, [T,] U); None (y, y_rev)

Without ``return_sequences`` y_rev is the backward layer's last output, the
one of input step 0. Keras sets ``zero_output_for_mask = return_sequences``
on both inner layers, whatever the wrapped layer said: with a mask and
``return_sequences`` padded steps output zeros, not the previous output.
"""

from __future__ import annotations

import inspect
from typing import NamedTuple, Optional

import numpy as np

from rnn_ref.layers import _checks, memory, parallel, recurrence
from rnn_ref.layers.gru import STATES as GRU_STATES, gru
from rnn_ref.layers.lstm import STATES as LSTM_STATES, lstm
from rnn_ref.layers.simple_rnn import STATES as SIMPLE_RNN_STATES, simple_rnn

#: The layers Bidirectional wraps, and their states.
LAYERS = {simple_rnn: SIMPLE_RNN_STATES, lstm: LSTM_STATES, gru: GRU_STATES}

MERGE_MODES = ("concat", "sum", "mul", "ave", None)

#: Options of the inner layers that Bidirectional sets itself.
_FIXED = {
    "go_backwards": "the forward layer runs forwards and the backward one backwards "
                    "(Keras refuses a wrapped layer with go_backwards=True)",
    "zero_output_for_mask": "Keras sets it to return_sequences on both inner layers",
}


def bidirectional(layer, inputs, forward, backward, *, merge_mode="concat", **options):
    """Run a Keras ``Bidirectional(layer)`` on ``inputs``.

    Letters: B batch, T time steps, D input features, U units (of each direction).

    Parameters
    ----------
    layer : rnn_ref.simple_rnn, rnn_ref.lstm or rnn_ref.gru
    inputs : (B, T, D), or one sequence (T, D)
    forward, backward : (kernel, recurrent_kernel, bias) or (kernel, recurrent_kernel)
        Each direction's weights in the layer's layout (Keras's weight order:
        the forward layer's, then the backward layer's).
    merge_mode : "concat", "sum", "mul", "ave" or None
        How the two outputs are combined; None returns the pair (y, y_rev),
        a tuple as Keras returns it.
    **options
        The layer's keyword options (activation, return_sequences, mask, ...)
        except ``go_backwards`` and ``zero_output_for_mask``, which
        Bidirectional sets. ``initial_state`` lists the forward states, then
        the backward ones: [h_f, h_b], or [h_f, c_f, h_b, c_b] for lstm.

    Returns
    -------
    output : (B, 2U) with "concat", (B, U) with the others; with
        ``return_sequences`` (B, T, 2U) or (B, T, U), in input order.
    with ``return_state``: (output, *forward_states, *backward_states), each
        state (B, U); with merge_mode None, Keras's flat (y, y_rev, *states).
        For one sequence the leading B axis is dropped.
    """
    split = directions(layer, inputs, merge_mode, options)
    options, init_f, init_b = split.options, split.initial_forward, split.initial_backward
    return_sequences, return_state = split.return_sequences, split.return_state

    y, y_rev = parallel.side_by_side(  # the two directions at once on a small batch (rnn_ref.layers.parallel)
        lambda: _run("forward", layer, inputs, forward, go_backwards=False, initial_state=init_f, **options),
        lambda: _run("backward", layer, inputs, backward, go_backwards=True, initial_state=init_b, **options),
        rows=split.rows)
    states = ()
    if return_state:
        (y, *states_f), (y_rev, *states_b) = y, y_rev
        states = (*states_f, *states_b)  # (B, U) each
    if return_sequences:
        y_rev = np.flip(y_rev, axis=-2)  # (B, T, U), from processing order back to input order

    output = merge(y, y_rev, merge_mode)
    if return_state:
        return (*output, *states) if merge_mode is None else (output, *states)
    return output


def merge(y, y_rev, merge_mode):
    """The two directions' outputs (both in input order) merged as Keras merges them:
    concat (B, [T,] 2U); sum, mul, ave (B, [T,] U); None the pair (y, y_rev)."""
    if merge_mode == "concat":
        merged = memory.take((*y.shape[:-1], 2 * y.shape[-1]), y.dtype)  # (B, [T,] 2U): rnn_ref.layers.memory
        return np.concatenate([y, y_rev], axis=-1, out=merged)
    if merge_mode == "sum":
        return y + y_rev
    if merge_mode == "mul":
        return y * y_rev
    if merge_mode == "ave":
        return (y + y_rev) / 2
    return (y, np.ascontiguousarray(y_rev))


def _run(direction, layer, inputs, weights, **options):
    """One direction; argument errors name it."""
    if not isinstance(weights, (list, tuple)) or len(weights) not in (2, 3):
        raise TypeError(f"{direction} must be a tuple (kernel, recurrent_kernel, bias) or "
                        f"(kernel, recurrent_kernel), got {type(weights).__name__}"
                        + (f" of {len(weights)}" if isinstance(weights, (list, tuple)) else ""))
    try:
        return layer(inputs, *weights, **options)
    except (ValueError, TypeError) as e:
        raise type(e)(f"{direction} layer: {e}") from None


class Directions(NamedTuple):
    """A Bidirectional call's arguments, checked and split between its two layers."""

    options: dict  # for both layers, without initial_state, zero_output_for_mask set as Keras sets it
    initial_forward: Optional[list]  # the forward layer's initial states, None if not given
    initial_backward: Optional[list]
    return_sequences: bool
    return_state: bool
    rows: int  # B, 1 for one sequence


def directions(layer, inputs, merge_mode, options) -> Directions:
    """Check a call of ``bidirectional`` (or of its vjp) and split it between the two layers.

    Refuses a layer Bidirectional does not wrap, an unknown merge mode, the options
    Bidirectional sets itself, options the layer does not have, bad inputs and an
    ``initial_state`` of the wrong length, each in the caller's terms.
    """
    options = dict(options)
    if layer not in LAYERS:
        raise TypeError(f"layer must be rnn_ref.simple_rnn, rnn_ref.lstm or rnn_ref.gru, got {layer!r}")
    if merge_mode not in MERGE_MODES:
        raise ValueError(f"merge_mode must be one of {', '.join(map(repr, MERGE_MODES))}, got {merge_mode!r}")
    for name, why in _FIXED.items():
        if name in options:
            raise TypeError(f"{name} is not an option of bidirectional: {why}")
    accepted = [p.name for p in inspect.signature(layer).parameters.values() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"{layer.__name__} has no option {', '.join(unknown)}; its options are "
                        f"{', '.join(n for n in accepted if n not in _FIXED)}")
    x, _ = recurrence.batched_inputs(inputs)  # refuse bad inputs before naming a direction
    names = LAYERS[layer]  # the states of one direction: ("h",) or ("h", "c")
    initial_state = options.pop("initial_state", None)
    init_f = init_b = None
    if initial_state is not None:
        given = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        want = [f"{n}_{d}" for d in ("forward", "backward") for n in names]
        if len(given) != len(want):
            raise ValueError(f"initial_state must be a list of {len(want)} arrays (B, U) "
                             f"({', '.join(want)}), got {len(given)}")
        init_f, init_b = given[:len(names)], given[len(names):]
    return_sequences = _checks.flag("return_sequences", options.get("return_sequences", False))
    return_state = _checks.flag("return_state", options.get("return_state", False))
    options["zero_output_for_mask"] = return_sequences  # as Keras sets it on both layers
    return Directions(options, init_f, init_b, return_sequences, return_state, x.shape[0])
