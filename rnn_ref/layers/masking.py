"""Keras ``Masking`` in NumPy: zero the steps whose features all equal ``mask_value``, and mask them.

Letters: B batch, T time steps, D features; ``...`` any leading axes (usually (B, T)).
"""

from __future__ import annotations

import numpy as np

from rnn_ref.layers import _checks


def compute_mask(inputs, mask_value=0.0):
    """The mask ``Masking`` passes on: True at a step where some feature differs from ``mask_value``.

    inputs : (..., D) -> (...) bool. A NaN differs from every value, ``mask_value`` NaN included
    (Keras compares with ``not_equal``), so a NaN feature keeps its step.
    """
    x = _checks.float_array("inputs", inputs)  # (..., D)
    if x.ndim < 1:
        raise ValueError(f"inputs must have a feature axis (..., D), got shape {x.shape}")
    return np.any(x != mask_value, axis=-1)  # (...)


def masking(inputs, mask_value=0.0):
    """Keras ``Masking(mask_value)``: the input with its masked steps set to zero.

    inputs : (..., D) -> (..., D), the same dtype. A step (a vector of D
    features) is masked when all of its features equal ``mask_value``
    (``compute_mask`` is the mask the next layers receive). Measured on
    Keras 3.15.1: the masked steps are selected to 0 (``where``, not a
    product), so a step of ``inf`` features that equals an infinite
    ``mask_value`` becomes 0, not NaN.
    """
    x = _checks.float_array("inputs", inputs)  # (..., D)
    keep = compute_mask(x, mask_value)[..., None]  # (..., 1)
    return np.where(keep, x, np.zeros((), x.dtype))  # (..., D)
