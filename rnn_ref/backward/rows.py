"""Both cores for a large batch's vjp: the rows in blocks, each block's forward and backward
loop in its own thread, the blocks' gradients put together.

The rows of a batch never meet in a recurrent layer (``rnn_ref.layers.parallel``), forward or
backward: row b's output, its input gradient and its initial-state gradient depend on row b
alone, and each weight's gradient is a sum over rows. So ``split_by_rows(vjp)`` runs ``vjp``
on row blocks of the inputs, the mask and the initial states, in threads of
``parallel``'s pool, joins the outputs and, in ``backward``, the per-row gradients in row
order, and adds the blocks' weight gradients. The result is the same up to the order of
those sums (float32: of order 1e-7 relative).

When: from 2 ``parallel.MIN_ROWS`` rows (the same rule as the forward loops, ``parallel.blocks``),
with more than one thread allowed (``parallel.threads``), threadpoolctl installed, and a
batched input (B, T, D) whose mask and initial states have B rows. Anything else runs
``vjp`` as it is. Each block's loops hold BLAS to one thread, as an unsplit vjp does.

Letters: B batch, T time steps, D input features, U units.
"""

from __future__ import annotations

import functools

import numpy as np

from rnn_ref.layers import parallel

#: Fields of a layer's grads that are per row (joined in row order); every other field is a
#: weight's gradient, summed over the blocks.
PER_ROW = ("inputs", "initial_state")


def split_by_rows(vjp):
    """``vjp(inputs, kernel, recurrent_kernel, bias=None, **options)`` on row blocks in threads
    for a large batch (module docstring); the same signature and results."""

    @functools.wraps(vjp)
    def split(inputs, kernel, recurrent_kernel, bias=None, **options):
        rows = _row_blocks(inputs, options)
        if rows is None:
            return vjp(inputs, kernel, recurrent_kernel, bias, **options)

        def block_vjp(r):
            return vjp(inputs[r], kernel, recurrent_kernel, bias, **_block_options(options, r))

        parts = parallel.in_threads(block_vjp, rows)  # [(out, backward)] in row order
        outs = [out for out, _ in parts]
        out = (tuple(np.concatenate(p) for p in zip(*outs)) if isinstance(outs[0], tuple)
               else np.concatenate(outs))  # (B, ...) each

        def backward(*cotangents):
            expected = [np.shape(o) for o in (out if isinstance(out, tuple) else (out,))]
            if len(cotangents) > len(expected) or any(
                    c is not None and np.shape(c) != e for c, e in zip(cotangents, expected)):
                # A wrong cotangent: the unsplit vjp says what it expected, in its own words.
                return vjp(inputs, kernel, recurrent_kernel, bias, **options)[1](*cotangents)
            grads = parallel.in_threads(
                lambda k: parts[k][1](*(None if c is None else c[rows[k]] for c in cotangents)),
                range(len(rows)))
            return _joined(grads)

        return out, backward

    return split


def _row_blocks(inputs, options):
    """The row blocks of a call worth splitting, or None (module docstring)."""
    if not isinstance(inputs, np.ndarray) or inputs.ndim != 3:
        return None
    B = inputs.shape[0]
    rows = parallel.blocks(B, parallel.threads())
    if len(rows) < 2 or not parallel.can_split():
        return None
    mask, states = options.get("mask"), options.get("initial_state")
    if mask is not None and np.shape(mask)[:1] != (B,):
        return None
    if states is not None:
        listed = states if isinstance(states, (list, tuple)) else [states]
        if any(np.ndim(s) != 2 or np.shape(s)[0] != B for s in listed):
            return None
    return rows


def _block_options(options, r):
    """The options of a call for row block ``r``: its rows of the mask and the initial states."""
    opts = dict(options)
    if opts.get("mask") is not None:
        opts["mask"] = np.asarray(opts["mask"])[r]  # (b, T)
    states = opts.get("initial_state")
    if states is not None:
        opts["initial_state"] = (type(states)(np.asarray(s)[r] for s in states)
                                 if isinstance(states, (list, tuple)) else np.asarray(states)[r])  # (b, U) each
    return opts


def _joined(grads):
    """One grads NamedTuple from the blocks': per-row fields joined, weight gradients added."""
    first = grads[0]
    fields = {}
    for name in first._fields:
        values = [getattr(g, name) for g in grads]
        if values[0] is None:
            fields[name] = None
        elif name in PER_ROW:
            fields[name] = (type(values[0])(np.concatenate(p) for p in zip(*values))
                            if isinstance(values[0], (list, tuple)) else np.concatenate(values))  # (B, ...)
        else:
            fields[name] = functools.reduce(np.add, values)  # a weight's gradient: the sum over rows
    return type(first)(**fields)
