"""Keras ``Dense`` forward pass in NumPy."""

from __future__ import annotations

from rnn_ref.layers import _checks
from rnn_ref.layers.activations import get as get_activation


def dense(inputs, kernel, bias=None, activation=None):
    """``activation(inputs @ kernel + bias)`` on the last axis, as Keras ``Dense``.

    Letters: N the input features, K the units; ``...`` any leading axes
    (a batch (B,), or a batch of sequences (B, T)).

    inputs : (..., N); kernel : (N, K); bias : (K,) or None -> (..., K)

    Integer and bool inputs are cast to float32 as Keras does; the result
    is in the inputs' floating dtype.
    """
    x = _checks.float_array("inputs", inputs)
    if x.ndim < 1:
        raise ValueError(f"inputs must have at least one axis, shape (..., N), got shape {x.shape}")
    N = x.shape[-1]
    kernel = _checks.float_array("kernel", kernel, x.dtype)
    hint = f"N = {N} comes from the last axis of inputs {x.shape}"
    if kernel.ndim == 2 and kernel.shape[1] == N and kernel.shape[0] != N:
        hint = "it looks transposed: Keras computes x @ kernel, so a textbook W of shape (K, N) is passed as W.T"
    _checks.shape("kernel", kernel, "N, K", (N, None), hint=hint)
    K = kernel.shape[1]
    if bias is not None:
        bias = _checks.float_array("bias", bias, x.dtype)
        _checks.shape("bias", bias, "K", (K,), hint="one bias per unit; Keras refuses other shapes too")
    act = get_activation(activation)
    y = x @ kernel  # (..., K)
    if bias is not None:
        y = y + bias
    return act(y)
