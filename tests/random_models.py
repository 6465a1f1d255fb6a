"""Random weights for Keras models and padded token batches, shared by the model tests."""

from __future__ import annotations

import numpy as np

from rnn_ref.harness.cases import orthogonal

#: Norm (and spectral radius) of every recurrent gate block: each step contracts.
GAIN = 0.9


def random_weight(name, shape, rng, dtype=np.float64):
    """A random weight for a Keras variable called ``name``: asymmetric, biases non-zero."""
    if name == "recurrent_kernel":  # (U, G U): G blocks, each GAIN times a non-symmetric orthogonal matrix
        U = shape[0]
        w = np.concatenate([orthogonal(rng, U, GAIN) for _ in range(shape[1] // U)], axis=1)
    elif name == "kernel":  # (D, G U), or a Dense's (N, K): pre-activations of order 1
        w = rng.standard_normal(shape) / np.sqrt(shape[0])
    elif name == "bias":  # (G U,), or a GRU's (2, 3U) with two independent rows
        w = 0.5 * rng.standard_normal(shape)
        w[np.abs(w) < 0.05] = 0.3  # non-zero, so a dropped bias shows
    elif name == "embeddings":  # (V, E)
        w = rng.standard_normal(shape)
    else:
        raise AssertionError(f"no random rule for weight {name!r}")
    return w.astype(dtype)


def randomize(model, seed):
    """Random weights, drawn from ``seed``, for every layer of ``model`` (both directions
    of a Bidirectional), in each variable's dtype."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([random_weight(v.name, tuple(v.shape), rng, v.dtype) for v in layer.weights])


def token_batch(rng, B, T, V, *, all_padding_row=False):
    """Token ids (B, T) in [1, V) with zero padding: row 0 left-padded, row 1
    right-padded, row 2 all padding if asked, the other rows either way or none.
    Padded rows keep at least two real tokens when T >= 3, so that the
    recurrence (not only the first step) is exercised."""
    ids = rng.integers(1, V, size=(B, T))  # (B, T)
    for b in range(B):
        n_pad = int(rng.integers(1, T - 1)) if T > 2 else T - 1
        style = ("left", "right")[b] if b < 2 else rng.choice(["left", "right", "none"])
        if style == "left":
            ids[b, :n_pad] = 0
        elif style == "right":
            ids[b, T - n_pad:] = 0
    if all_padding_row:
        ids[2] = 0
    return ids
