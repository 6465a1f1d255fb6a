"""``fit``: a NumpyModel trained as Keras's ``model.fit(x, y, epochs, batch_size, shuffle=False)``.

    >>> from rnn_ref.training import fit, optimizers
    >>> np_model = rnn_ref.from_keras(keras_model)
    >>> losses = fit(np_model, x, y, "binary_crossentropy", optimizers.Adam(0.01), epochs=2, batch_size=32)

What one epoch does, as Keras 3's ``fit`` with ``shuffle=False`` (TensorFlow backend):

1. the samples are cut in order into batches of ``batch_size``; the last batch holds what
   is left (``ceil(B / batch_size)`` batches, the last one partial);
2. for each batch: the loss is Keras's ``"sum_over_batch_size"`` mean of that batch, its
   padded steps weighed 0 and its valid ones ``n / valid`` when the output carries a mask,
   times the batch's ``sample_weight`` rows (``rnn_ref.models.gradients``, which follows
   ``compile`` and the ``Loss`` classes); its gradients with respect to every weight, in
   ``keras_model.trainable_weights``' order, go to the optimizer, which takes one step
   (``rnn_ref.training.optimizers``: clipping, weight decay, the update, Keras's order).
   The first layer's Embedding's gradient goes as Keras's TensorFlow backend passes it, one
   row per token occurrence (``gradients``, ``rnn_ref.training.rows``): Adam, RMSprop and
   Adagrad square, and clipping clips, each occurrence of a token repeated in the batch;
3. the epoch's loss is the mean of the batch losses weighed by their number of samples
   (Keras's loss tracker: ``update_state(loss, sample_weight=batch size)``), what
   ``history.history["loss"]`` holds.

The optimizer keeps its state (slots, iterations) from one ``fit`` to the next, as a
Keras optimizer does: ``fit`` steps it with ``optimizer.step``. ``train_step`` is one
batch's step with the state passed in and returned.

Letters: B samples, b the samples of one batch, P the number of weights.
"""

from __future__ import annotations

import math

import numpy as np

from rnn_ref.models.feedforward import Embedding
from rnn_ref.models.gradients import set_weight, unique_layers, value_and_gradients
from rnn_ref.models.model import NumpyModel
from rnn_ref.training.rows import Rows

__all__ = ["fit", "train_step", "gradients", "trainable_weights", "set_trainable_weights", "batches"]


def trainable_weights(np_model) -> list:
    """The model's weights, a list of P arrays in ``keras_model.trainable_weights``' order
    (each layer's ``get_weights()`` order, layers first to last, a shared layer once)."""
    return [w for layer in unique_layers(np_model.layers) for w in layer.weights().values()]


def set_trainable_weights(np_model, weights) -> None:
    """Put ``weights`` (``trainable_weights``' order) in place of the model's own."""
    slots = [(layer, k) for layer in unique_layers(np_model.layers) for k in layer.weights()]
    if len(slots) != len(weights):
        raise ValueError(f"the model has {len(slots)} trainable weights, got {len(weights)} arrays")
    for (layer, k), w in zip(slots, weights):
        set_weight(layer, k, w)


def batches(n: int, batch_size: int) -> list:
    """The slices Keras's ``fit(shuffle=False)`` cuts ``n`` samples into: in order, the last
    one partial."""
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def gradients(np_model, x, y, loss, sample_weight=None):
    """``(loss, gradients)`` as Keras's TensorFlow backend hands them to the optimizer: a list
    in ``trainable_weights``' order, each cast to its weight's dtype, the first layer's
    Embedding's as ``rows.Rows``, one row per token occurrence (``tf.IndexedSlices``).

    The occurrences' rows come from the same model with the Embedding replaced by one whose
    table has a row per position of the batch (row 0 for padding under ``mask_zero``): the
    gradient of that table is the occurrences' rows. An Embedding that is not the first
    layer, or shared, gets its summed (dense) gradient.
    """
    params = trainable_weights(np_model)
    first = np_model.layers[0] if np_model.layers else None
    ids = np.asarray(x)
    if not isinstance(first, Embedding) or sum(layer is first for layer in np_model.layers) > 1 or ids.ndim < 1:
        value, grads = value_and_gradients(np_model, x, y, loss, sample_weight)
        return value, [np.asarray(g).astype(p.dtype, copy=False) for g, p in zip(grads, params)]
    ids = ids.astype(np.int64) if ids.dtype.kind != "i" else ids
    flat = ids.reshape(-1)  # (n,)
    positions = np.arange(1, flat.size + 1).reshape(ids.shape)
    if first.mask_zero:
        positions = np.where(ids != 0, positions, 0)
    table = np.concatenate([first.embeddings[:1], first.embeddings[flat]])  # (n + 1, E): row 0, then each position
    swapped = Embedding(first.name, table, first.mask_zero, first.dtype)
    model = NumpyModel([swapped, *np_model.layers[1:]], np_model.name, np_model.input_dtype, np_model.outputs)
    value, grads = value_and_gradients(model, positions, y, loss, sample_weight)
    grads = [np.asarray(g).astype(p.dtype, copy=False) for g, p in zip(grads, params)]
    rows = np.concatenate([[0], flat])  # row 0 (padding, whose gradient is 0) adds to embedding 0
    grads[0] = Rows(rows, grads[0], tuple(first.embeddings.shape))
    return value, grads


def train_step(np_model, x, y, loss, optimizer, state=None, sample_weight=None):
    """One optimizer step on one batch, the model's weights replaced in place.

    ``optimizer``: an ``rnn_ref.training.optimizers`` optimizer; ``state``: what its
    ``init`` or the previous ``train_step`` returned (None: a fresh ``optimizer.init``).
    Returns ``(loss before the step, new state)``. The gradients are cast to the weights'
    dtype (a float32 model's are float32).
    """
    params = trainable_weights(np_model)
    value, grads = gradients(np_model, x, y, loss, sample_weight)
    if state is None:
        state = optimizer.init(params)
    params, state = optimizer.apply(grads, params, state)
    set_trainable_weights(np_model, params)
    return value, state


def fit(np_model, x, y, loss, optimizer, epochs=1, batch_size=32, sample_weight=None) -> list:
    """Train ``np_model`` in place as ``model.fit(x, y, epochs=epochs, batch_size=batch_size,
    shuffle=False, sample_weight=sample_weight)`` does with the Keras optimizer of the same
    settings; returns the per-epoch mean losses (``history.history["loss"]``).

    x : (B, ...) the model input; y : (B, ...) the targets; sample_weight : (B,) or per step
    (B, T), or None. ``optimizer`` keeps its state between calls (``optimizer.state``).
    """
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same number of samples, got {len(x)} and {len(y)}")
    if sample_weight is not None and len(sample_weight) != len(x):
        raise ValueError(f"sample_weight must have one row per sample ({len(x)}), got {len(sample_weight)}")
    if not isinstance(epochs, (int, np.integer)) or isinstance(epochs, bool) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative int, got {epochs!r}")
    cuts = batches(len(x), batch_size)
    history = []
    for _ in range(epochs):
        total, seen = 0.0, 0
        for cut in cuts:
            sw = None if sample_weight is None else np.asarray(sample_weight)[cut]
            params = trainable_weights(np_model)
            value, grads = gradients(np_model, x[cut], y[cut], loss, sw)
            set_trainable_weights(np_model, optimizer.step(grads, params))
            b = cut.stop - cut.start
            total, seen = total + value * b, seen + b
        history.append(total / seen if seen else math.nan)
    return history
