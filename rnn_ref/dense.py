"""Keras ``Dense`` forward pass in NumPy."""

from __future__ import annotations

from . import _checks
from .activations import get as get_activation


def dense(inputs, kernel, bias=None, activation=None):
    """``activation(inputs @ kernel + bias)`` on the last axis, as Keras ``Dense``.

    Letters: N the input features, K the units; ``...`` any leading axes
    (a batch (B,), or a batch of sequences (B, T)).

    inputs : (..., N); kernel : (N, K); bias : (K,) or None -> (..., K)
    """
    x = _checks.float_array("inputs", inputs)
    if x.ndim < 1:
        raise ValueError(f"inputs must have at least one axis (..., N), got shape {x.shape}")
    kernel = _checks.float_array("kernel", kernel, x.dtype)
    _checks.shape("kernel", kernel, "N, K", (x.shape[-1], None))
    y = x @ kernel  # (..., K)
    if bias is not None:
        bias = _checks.float_array("bias", bias, x.dtype)
        _checks.shape("bias", bias, "K", (kernel.shape[1],))
        y = y + bias
    return get_activation(activation)(y)
