"""Backpropagation through ``rnn_ref.bidirectional``, a Keras ``Bidirectional``.

    >>> out, backward = rnn_ref.vjp(rnn_ref.bidirectional, rnn_ref.lstm, x, fwd, bwd,
    ...                             merge_mode="concat", return_sequences=True)
    >>> grads = backward(d_out)      # d_out (B, T, 2U), the cotangent of out
    >>> grads.inputs                 # (B, T, D): d sum(out * d_out) / d x, both directions
    >>> grads.forward.kernel         # (D, 4U): the forward layer's LSTMGrads; grads.backward likewise

``bidirectional_vjp(layer, inputs, forward, backward, *, merge_mode, layer_vjp, **options)``
takes ``rnn_ref.bidirectional``'s arguments and the wrapped layer's vjp
(``rnn_ref.vjp(rnn_ref.bidirectional, ...)`` calls it with the one the registry names), runs it once and returns its output, bit for bit, with a
function ``backward`` of the output's cotangent:

* ``backward(d_output)``: d_output shaped like the output; with merge_mode
  None the pair ``(d_y, d_y_rev)``, each shaped like its half;
* with ``return_state``: ``backward(d_output, *d_states)``, the states'
  cotangents in the order ``bidirectional`` returns the states: the forward
  layer's, then the backward layer's ((d_h_f, d_h_b); (d_h_f, d_c_f, d_h_b,
  d_c_b) for lstm). With merge_mode None d_output is still the one pair.

None stands for zeros anywhere (the whole d_output, one half of the pair, a
state). ``backward`` returns ``BidirectionalGrads``:

* ``inputs``: the gradient of the inputs, both directions' shares added;
* ``forward``, ``backward``: each direction's gradients as the wrapped layer's
  vjp returns them (``SimpleRNNGrads``, ``LSTMGrads`` or ``GRUGrads``), for
  the weights it was given as ``(kernel, recurrent_kernel[, bias])``; their
  ``inputs`` is that direction's share, their ``initial_state`` its states'
  gradients ([dh] or [dh, dc]), None if no initial_state was given;
* ``initial_state``: the gradient of ``initial_state`` as it was given, one
  flat list: forward states, then backward states; None if not given.

Letters: B batch, T time steps, D input features, U units (of each direction).

The forward pass, as ``rnn_ref.bidirectional`` computes it
-----------------------------------------------------------
::

    y     = layer(x, *forward, zero_output_for_mask=rs)                       # (B, [T,] U)
    r     = layer(x, *backward, go_backwards=True, zero_output_for_mask=rs)   # (B, [T,] U), processing order
    y_rev = r[:, ::-1] with return_sequences (rs), else r                     # input order
    output = merge(y, y_rev)

Both layers read the same inputs and the same mask (the backward layer
flips both with its steps); without return_sequences r is the backward
layer's last output, that of input step 0.

The backward pass, from the output's cotangent g
-------------------------------------------------
1. Through the merge, to the cotangents (dy, dy_rev) of its two arguments
   (each the derivative of ``sum(output * g)`` with respect to one of them):

   * concat: output = [y, y_rev] on the last axis, a copy of each entry, so
     the cotangent splits: dy = g[..., :U], dy_rev = g[..., U:];
   * sum: output = y + y_rev, d output / d y = d output / d y_rev = 1, so
     dy = dy_rev = g (each branch gets all of it);
   * mul: output = y * y_rev, d output / d y = y_rev, so each branch gets g
     times the OTHER branch: dy = g * y_rev, dy_rev = g * y;
   * ave: output = (y + y_rev) / 2, so each branch gets half: dy = dy_rev =
     g / 2 (exact in binary floating point);
   * None: output = (y, y_rev), g is the pair (dy, dy_rev) already.

2. Back through the flip: y_rev = r[:, ::-1] is a permutation of the steps,
   and the vjp of a permutation is the inverse permutation, here the same
   flip: dr = dy_rev[:, ::-1], in the backward layer's processing order,
   which is how its vjp takes its output's cotangent. Without
   return_sequences there is nothing to flip.

3. Through each layer: the wrapped layer's vjp (``layer_vjp``), with the
   options Bidirectional set (go_backwards, zero_output_for_mask), gives its
   weights', initial states' and inputs' gradients from (dy, its d_states)
   and (dr, its d_states). No recurrence is derived here: masks, padded
   steps and go_backwards are the wrapped layer's vjp's business (the
   backward layer's input gradient comes back in input order).

4. The inputs reach both layers: d inputs = d inputs (forward) + d inputs
   (backward).
"""

from __future__ import annotations

import inspect
from typing import NamedTuple, Optional

import numpy as np

from rnn_ref.layers import _checks, parallel
from rnn_ref.layers.bidirectional import LAYERS, directions, merge


class BidirectionalGrads(NamedTuple):
    inputs: np.ndarray  # (B, T, D), or (T, D) for one sequence: both directions' shares added
    forward: tuple  # the wrapped layer's grads NamedTuple (SimpleRNNGrads, LSTMGrads, GRUGrads)
    backward: tuple  # the same for the backward layer; its inputs in input order
    initial_state: Optional[list]  # [h_f, (c_f,) h_b, (c_b)] like the initial_state given; None if not given


def bidirectional_vjp(layer, inputs, forward, backward, *, merge_mode="concat", layer_vjp, **options):
    """``(bidirectional(...), backward)``: the output of ``rnn_ref.bidirectional`` and its
    vector-Jacobian product (the module docstring).

    layer_vjp : the vjp of ``layer`` (``rnn_ref.vjp`` passes the one the layer registry names).

    backward(d_output) or, with ``return_state``, backward(d_output, *d_states)
        d_output shaped like the output: (B, [T,] 2U) for "concat", (B, [T,] U) for
        "sum", "mul", "ave", the pair (d_y, d_y_rev) for None; d_states (B, U) each,
        the forward layer's then the backward one's; the B axis dropped for one
        sequence; None means zeros. Returns ``BidirectionalGrads``.
    """
    initial_state = options.get("initial_state")  # its gradient comes back as the same kind of sequence
    split = directions(layer, inputs, merge_mode, options)  # checked as rnn_ref.bidirectional checks it
    options, init_f, init_b = split.options, split.initial_forward, split.initial_backward
    return_sequences, return_state = split.return_sequences, split.return_state
    names = LAYERS[layer]  # the states of one direction: ("h",) or ("h", "c")
    n = len(names)

    (y, back_f), (r, back_b) = parallel.side_by_side(  # at once on a small batch, as rnn_ref.bidirectional
        lambda: _direction_vjp("forward", layer, layer_vjp, inputs, forward, go_backwards=False,
                               initial_state=init_f, **options),
        lambda: _direction_vjp("backward", layer, layer_vjp, inputs, backward, go_backwards=True,
                               initial_state=init_b, **options),
        rows=split.rows)
    states = ()
    if return_state:
        (y, *states_f), (r, *states_b) = y, r
        states = (*states_f, *states_b)  # (B, U) each
    y_rev = np.flip(r, axis=-2) if return_sequences else r  # (B, T, U): processing order -> input order

    output = merge(y, y_rev, merge_mode)  # exactly as rnn_ref.bidirectional builds it
    if return_state:
        out = (*output, *states) if merge_mode is None else (output, *states)
    else:
        out = output

    half, dtype = y.shape, y.dtype  # (B, [T,] U), or without B for one sequence
    letters = ("B, " if len(half) == (3 if return_sequences else 2) else "") + ("T, U" if return_sequences else "U")
    state_names = [f"d_{s}_{d}" for d in ("forward", "backward") for s in names]
    call = f"bidirectional({layer.__name__}, merge_mode={merge_mode!r}, return_state={return_state})"

    def backward_fn(*cotangents):
        """d_output [, *d_states] -> BidirectionalGrads (the module docstring)."""
        expected = ["d_output", *state_names] if return_state else ["d_output"]
        if len(cotangents) != len(expected):
            pair = " (d_output the pair (d_y, d_y_rev))" if merge_mode is None else ""
            raise TypeError(f"backward of {call} takes ({', '.join(expected)}){pair}, "
                            f"got {len(cotangents)} cotangents")
        dy, dy_rev = _merge_backward(cotangents[0], merge_mode, y, y_rev, letters, dtype)  # (B, [T,] U) each
        dr = _to_processing_order(dy_rev, return_sequences)  # (B, [T,] U): the backward layer's order
        d_states = list(cotangents[1:])  # forward's n, then backward's n
        # One after the other: on a batch small enough for the forward passes to run side by side,
        # each backward loop already runs its weight-gradient products on the other core
        # (rnn_ref.backward.step_sums). Measured (LSTM, T = 250, D = 32, U = 100, median of 7),
        # the whole vjp with the backward loops side by side against one after the other:
        # B = 32 74.0 -> 66.3 ms, B = 64 113 -> 100 ms, B = 100 131 -> 118 ms.
        g_f, g_b = back_f(dy, *d_states[:n]), back_b(dr, *d_states[n:])
        d_initial = None
        if initial_state is not None:
            flat = [*g_f.initial_state, *g_b.initial_state]  # (B, U) each
            d_initial = type(initial_state)(flat)  # a list or a tuple, as given
        return BidirectionalGrads(
            inputs=g_f.inputs + g_b.inputs,  # (B, T, D): the inputs feed both layers
            forward=g_f,
            backward=g_b,
            initial_state=d_initial,
        )

    return out, backward_fn


def _merge_backward(d_output, merge_mode, y, y_rev, letters, dtype):
    """The cotangents (dy, dy_rev) of the merge's two arguments, each shaped like y (input order)."""
    half = y.shape
    if merge_mode is None:
        pair = (None, None) if d_output is None else d_output
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise TypeError("with merge_mode None, d_output must be the pair (d_y, d_y_rev), like the output "
                            f"(y, y_rev); got {type(d_output).__name__}"
                            + (f" of {len(pair)}" if isinstance(pair, (list, tuple)) else ""))
        return tuple(_half_cotangent(name, d, half, letters, dtype) for name, d in zip(("d_y", "d_y_rev"), pair))
    if merge_mode == "concat":
        whole = (*half[:-1], 2 * half[-1])
        g = _half_cotangent("d_output", d_output, whole, letters.replace("U", "2U"), dtype)  # (B, [T,] 2U)
        U = half[-1]
        return g[..., :U], g[..., U:]  # (B, [T,] U) each: concat's cotangent splits
    g = _half_cotangent("d_output", d_output, half, letters, dtype)  # (B, [T,] U)
    if merge_mode == "sum":
        return g, g  # each branch gets all of it
    if merge_mode == "mul":
        return g * y_rev, g * y  # each branch times the OTHER branch
    return g / 2, g / 2  # ave: each branch half


def _to_processing_order(dy_rev, return_sequences):
    """dy_rev (input order) -> the cotangent of the backward layer's output (processing order):
    the vjp of the flip y_rev = r[:, ::-1] is the same flip (step 2 of the module docstring)."""
    return np.flip(dy_rev, axis=-2) if return_sequences else dy_rev  # (B, [T,] U)


def _half_cotangent(name, value, shape, letters, dtype):
    """A cotangent as an array of ``shape`` in ``dtype``; None is zeros."""
    if value is None:
        return np.zeros(shape, dtype=dtype)
    d = _checks.float_array(name, value, dtype)
    _checks.shape(name, d, letters, shape, hint="the cotangent has the output's shape")
    return d


def _direction_vjp(direction, layer, layer_vjp, inputs, weights, **options):
    """One direction's vjp, as ``rnn_ref.vjp(layer, ...)`` gives it; argument errors name the
    direction, as rnn_ref.bidirectional's."""
    if not isinstance(weights, (list, tuple)) or len(weights) not in (2, 3):
        raise TypeError(f"{direction} must be a tuple (kernel, recurrent_kernel, bias) or "
                        f"(kernel, recurrent_kernel), got {type(weights).__name__}"
                        + (f" of {len(weights)}" if isinstance(weights, (list, tuple)) else ""))
    try:
        inspect.signature(layer).bind(inputs, *weights, **options)  # refused in the layer's own terms, as rnn_ref.vjp
        out, back = layer_vjp(inputs, *weights, **options)
    except (ValueError, TypeError) as e:
        raise type(e)(f"{direction} layer: {e}") from None

    def back_named(*cotangents):
        try:
            return back(*cotangents)
        except (ValueError, TypeError) as e:
            raise type(e)(f"{direction} layer: {e}") from None

    return out, back_named
