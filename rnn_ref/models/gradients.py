"""Gradients of a whole NumpyModel's loss, and one plain SGD step.

    >>> np_model = rnn_ref.from_keras(keras_model)
    >>> grads = model_gradients(np_model, x, y, "binary_crossentropy")
    >>> # [(V, E), (E, U), (U, U), (U,), (U, 1), (1,)]: keras_model.trainable_weights' order
    >>> loss = train_step(np_model, x, y, "binary_crossentropy", learning_rate=0.1)

``model_gradients`` runs the model forward once with each layer's vjp
(``rnn_ref.vjp``), computes the loss and its gradient with respect to the
model output (``losses``), and chains the layers' backward functions from
the last layer to the first. Masks flow as in the forward pass
(``NumpyModel.__call__``).

The loss, as Keras 3 computes it (TF backend, measured on Keras 3.15.1)
-----------------------------------------------------------------------
``keras.losses.binary_crossentropy``, ``categorical_crossentropy`` and
``sparse_categorical_crossentropy`` look for the ``_keras_logits`` that
Keras's ``sigmoid`` and ``softmax`` attach to their outputs; when present
they compute from the logits (``sigmoid_cross_entropy_with_logits``,
``softmax_cross_entropy_with_logits``), NOT from the clipped probabilities.
A model whose last layer is ``Dense(..., "sigmoid" | "softmax")`` therefore
gets the logits path in ``tf.GradientTape`` on ``loss(y, model(x))``, in
``compile(loss=...)`` + ``train_on_batch``, ``evaluate`` and
``compute_loss`` alike (all measured equal). Only a loss computed on
``model.predict``'s NumPy output (no logits attached) takes the clipped path
(``clip(p, 1e-7, 1 - 1e-7)``; its gradient is 0 where p was clipped): at a
saturated output the two differ completely (logit 120, target 0: 120.0 from
logits, 16.1 clipped; gradient 1 vs 0). ``model_gradients`` follows Keras:
with a crossentropy and a last Dense with sigmoid or softmax, the loss is
computed from that Dense's pre-activation, and the Dense is differentiated
as a linear layer. Keras uses the logits whichever crossentropy meets
whichever of the two activations (binary_crossentropy on a softmax output
computes a sigmoid crossentropy of the softmax's logits); so does this module.

One exception, measured: the ``Loss`` classes (``keras.losses.BinaryCrossentropy()``,
and so ``compile(loss=...)`` + ``train_on_batch``) first cast y_pred to their
dtype, floatx (float32) by default. For a ``dtype="float64"`` model the cast
makes a new tensor without ``_keras_logits``, so Keras then takes the CLIPPED
float32 path (logit 120, target 0: loss 16.03, gradient 0, and
``train_on_batch`` leaves the weights unchanged), while the function form
``keras.losses.binary_crossentropy(y, model(x))`` still uses the logits. This
module follows the function form (the logits); ``train_step`` therefore equals
``train_on_batch`` for float32 models (and for float64 ones away from
saturation, up to float32 rounding of the loss), not at float64 saturation.

Reduction: Keras's default ``"sum_over_batch_size"``: the per-sample loss
(the mean over the last axis for binary_crossentropy and mse, the sum over
classes for the categorical ones) averaged over every other axis.

Bidirectional layers are differentiated with ``rnn_ref.vjp`` of
``rnn_ref.bidirectional`` (``rnn_ref.backward.bidirectional``); their
gradients come in Keras's order, the forward layer's weights then the
backward layer's, and ``train_step`` updates the wrapped layers' weights.

Masks and sample weights (measured): when the model output carries a mask
(``Embedding(mask_zero=True)`` up to a sequence output), ``compile`` + ``fit``
/ ``train_on_batch`` / ``evaluate`` and the ``Loss`` classes weight each valid
step by ``n / valid`` and each padded one by 0, so the loss is the mean over the
valid steps; ``sample_weight`` multiplies those weights and the sum is still
divided by n ("sum_over_batch_size"). The function form
``mean(keras.losses.binary_crossentropy(y, model(x)))`` ignores the mask (it
averages the padded steps too: 0.69320 against 0.69309 on one padded batch).
This module follows ``compile`` and the ``Loss`` classes, what training does.

Several arrays: the last layer may return its states (``return_state``) or a
Bidirectional's two outputs (merge_mode None), as a functional model's outputs
select; the loss then takes the one array the model outputs (its final state
``Model(inp, state)``, say), and the others get no cotangent. Not supported
(raise NotImplementedError): several arrays from any other layer, a model
with several outputs.

Stateful layers: as ``model(x)`` in Keras, a gradient computation starts
from the states the previous call left and advances them; the incoming
states are constants (truncated backpropagation through time).

Letters: B batch, T time steps, K output features, n the number of
per-sample losses (B, or B T for a sequence output).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rnn_ref.models.registry import vjp
from rnn_ref.layers.bidirectional import bidirectional
from rnn_ref.layers.dense import dense
from rnn_ref.layers.embedding import embedding
from rnn_ref.layers.masking import masking
from rnn_ref.models.feedforward import Dense, Embedding, Masking
from rnn_ref.models.recurrent import Bidirectional, Recurrent, check_mask_in

EPSILON = 1e-7  # keras.backend.epsilon(), the clipping of the probability formulas


class LossValue(NamedTuple):
    value: float  # the loss, averaged as "sum_over_batch_size"
    gradient: np.ndarray  # d value / d y_pred, shaped like y_pred (the logits when from_logits)


# ---------------------------------------------------------------------------
# Losses: value and gradient with respect to the model output (or its logits)
# ---------------------------------------------------------------------------


def _sigmoid(z):
    return np.where(z >= 0, 1 / (1 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1 + np.exp(-np.abs(z))))


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))  # (..., K)


def _clip(p):
    """Keras's ``clip(p, eps, 1 - eps)`` and where its gradient passes (TF's clip_by_value: inclusive bounds)."""
    eps = np.asarray(EPSILON, p.dtype)
    one = np.asarray(1, p.dtype)
    return np.clip(p, eps, one - eps), (p >= eps) & (p <= one - eps)


def _float(y_pred):
    p = np.asarray(y_pred)
    return p if p.dtype.kind == "f" else p.astype(np.float32)


def _reduced(per, d_per, weights):
    """Keras's "sum_over_batch_size" of the per-sample losses ``per`` (...) weighted by
    ``weights`` (..., default 1): ``sum(per * weights) / n``, n = per.size, and its
    gradient ``d_per * weights / n`` from ``d_per`` (..., K), the gradient of each
    per-sample loss with respect to its row of y_pred."""
    n = per.size
    if weights is None:
        return LossValue(float(np.mean(per)), (d_per / n).astype(d_per.dtype))
    w = np.asarray(weights, dtype=per.dtype)
    return LossValue(float(np.sum(per * w) / n), (d_per * (w / n)[..., None]).astype(d_per.dtype))


def mse(y_true, y_pred, from_logits=False, weights=None):
    """Mean squared error: mean over the last axis of (y_pred - y_true)^2, then over the batch.

    y_true, y_pred : (..., K) -> LossValue; the gradient is 2 (y_pred - y_true) / (K n).
    ``weights`` (...): per-sample weights, as ``loss_weights`` makes them.
    """
    del from_logits  # not a crossentropy: the output is used as it is
    p = _float(y_pred)
    diff = p - np.asarray(y_true, dtype=p.dtype)  # (..., K)
    K = diff.shape[-1]
    return _reduced(np.mean(diff * diff, axis=-1), 2 * diff / K, weights)


def binary_crossentropy(y_true, y_pred, from_logits=False, weights=None):
    """Keras ``binary_crossentropy``: mean over the last axis, then over the batch.

    y_true (..., K) in [0, 1]; y_pred (..., K): probabilities, or logits z
    with ``from_logits`` (then per element ``max(z, 0) - z y + log1p(exp(-|z|))``,
    gradient ``(sigmoid(z) - y) / (K n)``). Probabilities are clipped to
    [1e-7, 1 - 1e-7] first, and the gradient is 0 where they were clipped.
    """
    p = _float(y_pred)
    y = np.asarray(y_true, dtype=p.dtype)
    K = p.shape[-1]
    if from_logits:
        z = p
        per = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))  # (..., K)
        grad = _sigmoid(z) - y  # d per / d z
    else:
        pc, inside = _clip(p)
        per = -(y * np.log(pc) + (1 - y) * np.log(1 - pc))
        grad = np.where(inside, -y / pc + (1 - y) / (1 - pc), 0)
    return _reduced(np.mean(per, axis=-1), grad / K, weights)


def categorical_crossentropy(y_true, y_pred, from_logits=False, weights=None):
    """Keras ``categorical_crossentropy``: -sum over classes of y log q, mean over the batch.

    y_true (..., K), a distribution per sample (one-hot); y_pred (..., K):
    probabilities, or logits z with ``from_logits`` (q = softmax(z); gradient
    ``(sum(y) softmax(z) - y) / n``, TF's ``softmax(z) - y`` for a target that
    sums to 1). Probabilities are renormalised to sum to 1, then clipped.
    """
    p = _float(y_pred)
    y = np.asarray(y_true, dtype=p.dtype)
    if from_logits:
        log_q = _log_softmax(p)  # (..., K)
        per = -(y * log_q).sum(axis=-1)
        grad = y.sum(axis=-1, keepdims=True) * np.exp(log_q) - y
    else:
        s = p.sum(axis=-1, keepdims=True)  # (..., 1)
        q = p / s
        qc, inside = _clip(q)
        per = -(y * np.log(qc)).sum(axis=-1)
        dq = np.where(inside, -y / qc, 0)  # (..., K)
        grad = dq / s - (dq * p).sum(axis=-1, keepdims=True) / (s * s)  # through q = p / sum(p)
    return _reduced(per, grad, weights)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, weights=None):
    """Keras ``sparse_categorical_crossentropy``: integer labels (...) or (..., 1).

    y_pred (..., K): probabilities (Keras clips them and takes the log as the
    logits), or logits with ``from_logits``; gradient ``(softmax - onehot) / n``
    with respect to those logits.
    """
    p = _float(y_pred)
    labels = np.asarray(y_true).astype(np.int64)
    if labels.ndim == p.ndim and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if labels.shape != p.shape[:-1]:
        raise ValueError(f"sparse labels must be shaped {p.shape[:-1]} (or with a trailing 1), got {labels.shape}")
    K = p.shape[-1]
    onehot = (labels[..., None] == np.arange(K)).astype(p.dtype)  # (..., K)
    if from_logits:
        logits, inside, pc = p, None, None
    else:
        pc, inside = _clip(p)
        logits = np.log(pc)
    log_q = _log_softmax(logits)
    per = -(onehot * log_q).sum(axis=-1)
    grad = np.exp(log_q) - onehot  # d per / d logits
    if not from_logits:
        grad = np.where(inside, grad / pc, 0)  # through logits = log(clip(p))
    return _reduced(per, grad, weights)


def loss_weights(shape, mask=None, sample_weight=None, dtype=np.float32):
    """The weight of each per-sample loss (``shape``: y_pred's without its last axis), as
    Keras's ``Loss`` classes, ``compile`` and ``fit`` weight them; None when neither is given.

    mask (B, T), the model output's (a padded sequence): each valid step weighs
    ``n / valid`` and a padded one 0, so the loss is the mean over the valid steps
    (0 when none is valid). sample_weight: shaped like the per-sample losses, (B,) or
    (B, T), with or without a trailing 1; it multiplies the mask's weight. Keras does not
    broadcast a (B,) sample_weight over the steps of a sequence output (measured: an
    error, or the wrong axis when B = T), so neither does this.
    """
    weights = None
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != tuple(shape):
            raise ValueError(f"the output's mask must have the shape of the per-sample losses {tuple(shape)}, "
                             f"got {m.shape}")
        valid = int(m.sum())
        weights = np.where(m, m.size / valid if valid else 0.0, 0.0).astype(dtype)
    if sample_weight is not None:
        sw = np.asarray(sample_weight, dtype=dtype)
        if sw.ndim == len(shape) + 1 and sw.shape[-1] == 1:
            sw = sw[..., 0]
        if sw.shape != tuple(shape):
            raise ValueError(f"sample_weight must have the shape of the per-sample losses {tuple(shape)} "
                             f"(or with a trailing 1), got {np.shape(sample_weight)}")
        weights = sw if weights is None else weights * sw
    return weights


#: The losses by their Keras names.
LOSSES = {
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "mse": mse,
    "mean_squared_error": mse,
}
#: Losses that Keras computes from the logits of a sigmoid or softmax output.
CROSSENTROPIES = (binary_crossentropy, categorical_crossentropy, sparse_categorical_crossentropy)
LOGIT_ACTIVATIONS = ("sigmoid", "softmax")


def get_loss(loss):
    """A loss of this module, by Keras name or as the function itself."""
    if callable(loss) and loss in LOSSES.values():
        return loss
    if isinstance(loss, str) and loss in LOSSES:
        return LOSSES[loss]
    raise ValueError(f"loss must be one of {', '.join(LOSSES)} (or its function here), got {loss!r}")


# ---------------------------------------------------------------------------
# The model: forward with vjps, then backward through the chain
# ---------------------------------------------------------------------------


def value_and_gradients(np_model, x, y, loss, sample_weight=None):
    """``(loss value, [gradient of each weight])``, the weights in ``keras_model.trainable_weights``' order.

    np_model : a ``rnn_ref.models.model.NumpyModel`` (read: its ``layers``, ``input_dtype`` and ``outputs``);
    x : the model input ((B, T) ids or (B, T, D)); y : the targets, as Keras takes them;
    sample_weight : (B,) or per step (B, T), as ``train_on_batch`` takes it. A sequence
    output that carries a mask (padded steps) is averaged over its valid steps, as
    ``compile``, ``fit`` and the ``Loss`` classes do (``loss_weights``).
    A layer that appears twice in the chain (a shared Keras layer) gets the sum of its gradients.
    """
    if np_model.inputs:
        names = ", ".join(i.name for i in np_model.inputs)
        raise NotImplementedError(f"model {np_model.name!r} takes {len(np_model.inputs)} inputs ({names}); "
                                  "model_gradients supports models of one input")
    loss_fn = get_loss(loss)
    picked = _one_output(np_model.outputs)  # None: the last layer's result as it is; k: its k-th output
    h = np.asarray(x)
    if np_model.input_dtype is not None:
        h = h.astype(np_model.input_dtype, copy=False)
    mask = None  # (B, T) bool or None
    backwards = []  # (layer, backward function), first to last
    last = len(np_model.layers) - 1
    from_logits = False
    for i, layer in enumerate(np_model.layers):
        logits_head = (i == last and loss_fn in CROSSENTROPIES and isinstance(layer, Dense)
                       and layer.activation in LOGIT_ACTIVATIONS)
        out, backward = _layer_vjp(layer, h, mask, linear=logits_head, several=i == last)
        from_logits = logits_head
        mask = layer.compute_mask(h, mask)
        if i == last and isinstance(out, tuple):  # (output(s), *states): the loss takes one of them
            k = 0 if picked is None and len(out) == 1 else picked
            if k is None or not 0 <= k < len(out):
                raise NotImplementedError(f"layer {layer.name!r} returns {len(out)} arrays; model_gradients "
                                          f"supports a model with one of them as its output, got {np_model.outputs!r}")
            mask = mask if k < _sequence_outputs(layer) else None  # states carry no mask
            backward = _picked(backward, k, len(out))
            out = out[k]
        elif i == last and picked not in (None, 0):
            raise NotImplementedError(f"model_gradients supports one output, the model selects {np_model.outputs!r}")
        backwards.append((layer, backward))
        h = out
    weights = loss_weights(np.shape(h)[:-1], mask, sample_weight, dtype=_float(h).dtype)  # (B[, T]) or None
    value, d = loss_fn(y, h, from_logits=from_logits, weights=weights)  # d: of the output, or of the logits

    grads = {}  # (id(layer), weight name) -> gradient, in trainable_weights order
    for layer, _ in backwards:
        for k in layer.weights():
            grads.setdefault((id(layer), k), None)
    for layer, backward in reversed(backwards):
        d_in, d_weights = backward(d)
        for k, g in d_weights.items():
            key = (id(layer), k)
            grads[key] = g if grads[key] is None else grads[key] + g
        d = d_in
    return value, list(grads.values())


def model_gradients(np_model, x, y, loss, sample_weight=None):
    """The gradients of ``loss(y, np_model(x))`` (Keras's mean over the batch, over the valid
    steps of a masked sequence output, weighted by ``sample_weight``) with respect to every
    weight, a list in the order of ``keras_model.trainable_weights``: each layer's
    ``get_weights()`` order, layers first to last."""
    return value_and_gradients(np_model, x, y, loss, sample_weight)[1]


def train_step(np_model, x, y, loss, learning_rate, sample_weight=None):
    """One plain SGD step on ``np_model``'s weights (replaced in place on the layers):
    ``w -= learning_rate * gradient``, as ``keras.optimizers.SGD(learning_rate)`` in one
    ``train_on_batch(x, y, sample_weight)``. Returns the loss before the step."""
    value, grads = value_and_gradients(np_model, x, y, loss, sample_weight)
    weights = [(layer, k, w) for layer in unique_layers(np_model.layers) for k, w in layer.weights().items()]
    for (layer, k, w), g in zip(weights, grads):
        lr = np.asarray(learning_rate, dtype=w.dtype)
        set_weight(layer, k, w - lr * g.astype(w.dtype, copy=False))
    return value


def set_weight(layer, name, value):
    """Replace one weight of ``layer`` (named as in ``layer.weights()``); a Bidirectional's
    ``forward_kernel`` is its forward layer's ``kernel``."""
    if isinstance(layer, Bidirectional):
        direction, name = name.split("_", 1)  # "forward" or "backward", then the wrapped layer's name
        layer = getattr(layer, direction)
    setattr(layer, name, value)


def unique_layers(layers):
    """``layers`` with each layer once (a layer shared by two places of a model counts once), in order."""
    seen, out = set(), []
    for layer in layers:
        if id(layer) not in seen:
            seen.add(id(layer))
            out.append(layer)
    return out


def _one_output(outputs):
    """The index of the model's one output among the last layer's arrays (None: its result as it is)."""
    if outputs is None or isinstance(outputs, int):
        return outputs
    if isinstance(outputs, (list, tuple)) and len(outputs) == 1 and isinstance(outputs[0], int):
        return outputs[0]
    raise NotImplementedError(f"model_gradients supports one output, the model selects {outputs!r}")


def _sequence_outputs(layer) -> int:
    """How many of the layer's arrays are outputs (carrying its mask), before the states."""
    return 2 if isinstance(layer, Bidirectional) and layer.merge_mode is None else 1


def _picked(backward, k, n):
    """``backward`` of all n arrays of a layer, as a function of the cotangent of its k-th alone."""
    def picked(d):
        return backward(tuple(d if i == k else None for i in range(n)))
    return picked


def _weight_gradients(g, prefix=""):
    """``{name: gradient}`` of one recurrent layer's weights from its vjp's gradients ``g``,
    named as ``layer.weights()`` names them (``prefix``: a Bidirectional's direction)."""
    names = ("kernel", "recurrent_kernel", "bias")
    return {prefix + k: v for k, v in zip(names, (g.kernel, g.recurrent_kernel, g.bias)) if v is not None}


def _layer_vjp(layer, h, mask, linear=False, several=False):
    """Run ``layer`` on h as ``layer(h, mask)`` does, with its vjp.

    Returns ``(output, backward)``; ``backward(d_output)`` returns
    ``(d_input or None, {weight name: gradient})``. ``linear``: a Dense run
    without its activation (its output is then the logits). ``several``: a
    recurrent layer with ``return_state`` (or a Bidirectional with merge_mode
    None) returns the tuple of its arrays, and its backward takes the tuple of
    their cotangents (None for zeros); refused otherwise.
    """
    if isinstance(layer, Embedding):
        ids = np.asarray(h)
        if ids.dtype not in (np.int32, np.int64):
            ids = ids.astype(np.int32)  # as Embedding.__call__
        out, bw = vjp(embedding, ids, layer.embeddings)  # (B, T, E)
        w_dtype = layer.embeddings.dtype

        def backward(d):
            return None, {"embeddings": bw(np.asarray(d, dtype=w_dtype)).embeddings}

        return out.astype(layer.dtype, copy=False), backward

    if isinstance(layer, Masking):
        x = np.asarray(h).astype(layer.dtype, copy=False)
        out, bw = vjp(masking, x, layer.mask_value)  # (B, T, D)
        return out, lambda d: (bw(d).inputs, {})

    if isinstance(layer, Dense):
        x = np.asarray(h).astype(layer.dtype, copy=False)
        out, bw = vjp(dense, x, layer.kernel, layer.bias, None if linear else layer.activation)  # (..., K)

        def backward(d):
            g = bw(d)
            return g.inputs, {k: v for k, v in (("kernel", g.kernel), ("bias", g.bias)) if v is not None}

        return out, backward

    if isinstance(layer, Bidirectional):
        if (layer.return_state or layer.merge_mode is None) and not several:
            raise NotImplementedError(f"layer {layer.name!r} (Bidirectional) returns several arrays "
                                      "(return_state or merge_mode None); only the model's last layer may")
        check_mask_in(layer, mask)
        x = np.asarray(h).astype(layer.dtype, copy=False)  # (B, T, D)
        if x.ndim != 3:
            raise ValueError(f"layer {layer.name!r} (Bidirectional) expects (B, T, D), got {x.shape}")
        f, b = layer.forward, layer.backward
        states_f, states_b = f.initial_state(x.shape[0]), b.initial_state(x.shape[0])  # constants (truncated BPTT)
        initial = None if states_f is None or states_b is None else [*states_f, *states_b]
        options = {k: v for k, v in f.call_options().items() if k not in layer.SET_BY_WRAPPER}
        result, bw = vjp(
            bidirectional, f.FUNCTION, x, (f.kernel, f.recurrent_kernel, f.bias),
            (b.kernel, b.recurrent_kernel, b.bias), merge_mode=layer.merge_mode, mask=mask,
            initial_state=initial, **{**options, "return_state": True})  # (B, [T,] 2U or U); (B, U) each
        n_out = _sequence_outputs(layer)
        outputs, states = result[:n_out], result[n_out:]
        if layer.stateful:
            f.set_states(states[:len(f.STATE)])
            b.set_states(states[len(f.STATE):])
        n_states = len(states)
        visible = (*outputs, *states) if layer.return_state else tuple(outputs)  # what layer(h, mask) returns

        def backward(d):
            d = tuple(d) if len(visible) > 1 else (d,)  # one cotangent per visible array
            d_output = d[:n_out] if n_out == 2 else d[0]
            g = bw(d_output, *(d[n_out:] or [None] * n_states))
            return g.inputs, {**_weight_gradients(g.forward, "forward_"), **_weight_gradients(g.backward, "backward_")}

        return (visible if len(visible) > 1 else visible[0]), backward

    if isinstance(layer, Recurrent):
        if layer.return_state and not several:
            raise NotImplementedError(f"layer {layer.name!r}: return_state inside a model is supported on the "
                                      "last layer only")
        check_mask_in(layer, mask)
        x = np.asarray(h).astype(layer.dtype, copy=False)  # (B, T, D)
        if x.ndim != 3:
            raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) expects (B, T, D), got {x.shape}")
        initial = layer.initial_state(x.shape[0])  # previous batch's states: constants (truncated BPTT)
        (output, *states), bw = vjp(
            layer.FUNCTION, x, layer.kernel, layer.recurrent_kernel, layer.bias,
            mask=mask, initial_state=initial, **{**layer.call_options(), "return_state": True})
        if layer.stateful:
            layer.set_states(states)
        n_states = len(states)

        def backward(d):
            g = bw(*d) if layer.return_state else bw(d, *([None] * n_states))  # d: one cotangent per array
            return g.inputs, _weight_gradients(g)

        return ((output, *states) if layer.return_state else output), backward

    raise NotImplementedError(f"layer {layer.name!r}: no gradient for {type(layer).__name__}")
