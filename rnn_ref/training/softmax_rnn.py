"""The reference training of the textbook softmax RNN, what ``check --training`` judges a step against.

The textbook class (examples/softmax_rnn_class.py), D inputs, H hidden units, K classes:

    h_t = tanh(U x_t + W h_{t-1} + b)        U (H, D), W (H, H), b (H,)    (b is b_h)
    o_t = softmax(V h_t + c)                 V (K, H), c (K,)              (c is b_y)

is Keras's ``SimpleRNN(H, return_sequences=True) -> Dense(K, "softmax")`` with
``kernel = U.T``, ``recurrent_kernel = W.T``, ``bias = b``, ``Dense.kernel = V.T``,
``Dense.bias = c``; its loss is ``sparse_categorical_crossentropy``, the mean over the
batch and the steps of -log o_t[label_t] (from the logits, as Keras computes it). One
training step on a batch x (B, T, D), labels y (B, T) is one ``fit`` step of that model
(``rnn_ref.training.fit.train_step``): the mean loss's gradients, then the optimizer.

Layouts of the parameters:
  keras     a list [kernel (D, H), recurrent_kernel (H, H), bias (H,), dense kernel (H, K),
            dense bias (K,)], ``model.trainable_weights``' order
  textbook  a dict {"U": (H, D), "W": (H, H), "V": (K, H), "b": (H,), "c": (K,)}
"""

from __future__ import annotations

import numpy as np

from rnn_ref.models.feedforward import Dense
from rnn_ref.models.model import NumpyModel
from rnn_ref.models.recurrent import SimpleRNN
from rnn_ref.training.fit import trainable_weights, train_step

LOSS = "sparse_categorical_crossentropy"
TEXTBOOK_NAMES = ("U", "W", "V", "b", "c")
KERAS_NAMES = ("kernel", "recurrent_kernel", "bias", "dense_kernel", "dense_bias")
LAYOUTS = ("textbook", "keras")


def model(params) -> NumpyModel:
    """The NumpyModel SimpleRNN(return_sequences) -> Dense(softmax) with ``params`` (keras layout)."""
    kernel, recurrent_kernel, bias, dense_kernel, dense_bias = params
    dtype = np.asarray(kernel).dtype
    rnn = SimpleRNN("simple_rnn", kernel, recurrent_kernel, bias, return_sequences=True, dtype=dtype)
    head = Dense("dense", dense_kernel, dense_bias, activation="softmax", dtype=dtype)
    return NumpyModel([rnn, head], name="softmax_rnn", input_dtype=dtype)


def reference_training(params, xs, ys, optimizer) -> list:
    """The weights (keras layout) after one step per batch, ``xs[i]`` (B, T, D) with labels
    ``ys[i]`` (B, T), with ``optimizer`` (its state started here), in the params' dtype."""
    np_model, state = model(params), None
    dtype = np.asarray(params[0]).dtype
    for x, y in zip(xs, ys):
        _, state = train_step(np_model, np.asarray(x, dtype=dtype), y, LOSS, optimizer, state)
    return trainable_weights(np_model)


def to_layout(params, layout):
    """Keras-layout params as ``layout`` has them (fresh, writable arrays)."""
    kernel, recurrent_kernel, bias, dense_kernel, dense_bias = (np.array(p) for p in params)
    if layout == "keras":
        return [kernel, recurrent_kernel, bias, dense_kernel, dense_bias]
    if layout == "textbook":
        return {"U": np.ascontiguousarray(kernel.T), "W": np.ascontiguousarray(recurrent_kernel.T),
                "V": np.ascontiguousarray(dense_kernel.T), "b": bias, "c": dense_bias}
    raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")


def from_layout(params, layout, like) -> list:
    """``params`` in ``layout`` back to the keras layout; ``like`` (keras layout) gives the
    expected shapes and dtype. Raises ValueError saying what is missing or misshapen."""
    if layout == "textbook":
        if not isinstance(params, dict) or set(TEXTBOOK_NAMES) - set(params):
            got = sorted(params) if isinstance(params, dict) else type(params).__name__
            raise ValueError(f"expected a dict with keys {', '.join(TEXTBOOK_NAMES)}, got {got}")
        arrays = [np.asarray(params[k]) for k in TEXTBOOK_NAMES]
        U, W, V, b, c = arrays
        out, names = [U.T, W.T, b, V.T, c], ["U.T", "W.T", "b", "V.T", "c"]
    elif layout == "keras":
        if not isinstance(params, (list, tuple)) or len(params) != 5:
            raise ValueError(f"expected a list of 5 arrays ({', '.join(KERAS_NAMES)}), got "
                             f"{type(params).__name__}{'' if not isinstance(params, (list, tuple)) else f' of {len(params)}'}")
        out, names = [np.asarray(p) for p in params], list(KERAS_NAMES)
    else:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    for name, o, ref in zip(names, out, like):
        if o.shape != np.shape(ref):
            raise ValueError(f"{name} has shape {o.shape}, expected {np.shape(ref)}")
    return out
