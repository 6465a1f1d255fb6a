"""What a candidate handles (``Support``), and the cases of SimpleRNN, LSTM and GRU calls.

``Case`` and ``make_case`` are in ``case.py``, the hypothesis strategy
``cases`` in ``strategies.py``; this module exports them all, so that
``from rnn_ref.harness.cases import make_case, cases`` works. ``cases`` is
imported on first use, so that this module (and the offline check built on
it) imports without hypothesis.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rnn_ref.layers.activations import ACTIVATIONS, BOUNDED, ELEMENTWISE  # noqa: F401  (BOUNDED, ELEMENTWISE: exported)
from rnn_ref.layers.bidirectional import MERGE_MODES
from rnn_ref.harness.case import GATE_ACTIVATIONS, MASK_PATTERNS, OPTION_NAMES, Case, each_state, extra_options, make_case, orthogonal


def bidirectional_kwargs(case: Case, other: Case, merge_mode="concat") -> dict:
    """Keyword arguments of a Bidirectional call (``rnn_ref.bidirectional`` with
    the case's layer bound): ``case``'s inputs, options and weights for the
    forward layer, ``other``'s weights for the backward one; the initial
    states are the forward ones (``case``'s) then the backward ones (``other``'s).
    go_backwards and zero_output_for_mask are Bidirectional's to set, not passed."""
    spec = case.spec
    kw = case.kwargs()
    options = {k: v for k, v in kw.items() if k not in (*spec.weights, "inputs", "go_backwards",
                                                         "zero_output_for_mask", "initial_state")}
    if case.initial_state is not None:
        as_t = lambda s: s if isinstance(s, tuple) else (s,)  # noqa: E731
        options["initial_state"] = [*as_t(case.initial_state), *as_t(other.initial_state)]
    return dict(inputs=case.inputs, forward=tuple(getattr(case, w) for w in spec.weights),
                backward=tuple(getattr(other, w) for w in spec.weights), merge_mode=merge_mode, **options)


def features_of(kwargs: dict) -> set:
    """The (dimension, value) pairs one call with ``simple_rnn``'s arguments exercises
    (a mask counts as ``("mask_pattern", "mask")``)."""
    x = np.asarray(kwargs["inputs"])
    return {
        ("activation", kwargs.get("activation", "tanh")),
        ("dtype", x.dtype.name),
        ("use_bias", (kwargs.get("bias") if "forward" not in kwargs else (*kwargs["forward"], None)[2]) is not None),
        ("mask_pattern", "none" if kwargs.get("mask") is None else "mask"),
        ("initial_state", kwargs.get("initial_state") is not None),
        ("unbatched", x.ndim == 2),
        *((k, bool(kwargs.get(k, False))) for k in ("return_sequences", "return_state", "go_backwards",
                                                     "zero_output_for_mask")),
        *((k, kwargs[k]) for k in ("recurrent_activation", "reset_after", "merge_mode") if k in kwargs),
    }




class Support(NamedTuple):
    """The values of each drawn dimension that an implementation handles.

    Properties draw their cases inside it (``Property.strategy_for``), so a
    function that handles only tanh, float32 and no masks is checked on
    every case of that kind instead of declining most of them. The fields
    are ``cases``'s option arguments, plus ``unbatched`` (one sequence (T, D)
    as input). ``FULL`` is everything ``rnn_ref.simple_rnn`` handles.
    """

    activation: tuple = tuple(ACTIVATIONS)
    dtype: tuple = ("float32", "float64")
    use_bias: tuple = (True, False)
    mask_pattern: tuple = ("none",) + MASK_PATTERNS
    initial_state: tuple = (False, True)
    return_sequences: tuple = (False, True)
    return_state: tuple = (False, True)
    go_backwards: tuple = (False, True)
    zero_output_for_mask: tuple = (False, True)
    unbatched: tuple = (False, True)
    recurrent_activation: tuple = GATE_ACTIVATIONS  # an LSTM's or a GRU's gates
    reset_after: tuple = (True, False)  # a GRU's
    merge_mode: tuple = MERGE_MODES  # a Bidirectional function's

    def lacks(self, dimension: str, values) -> list:
        """The ``values`` of ``dimension`` not supported."""
        have = getattr(self, dimension)
        return [v for v in values if v not in have]


FULL = Support()


def within(kwargs: dict, support: Support) -> bool:
    """Whether the call ``kwargs`` (``simple_rnn``'s arguments) exercises only what
    ``support`` holds (a mask of any pattern where it holds one)."""
    for dim, value in features_of(kwargs):
        if dim == "mask_pattern":
            ok = ("none" in support.mask_pattern) if value == "none" else any(
                p != "none" for p in support.mask_pattern)
        else:
            ok = value in getattr(support, dim, (value,))
        if not ok:
            return False
    return True

#: The value of each dimension in Keras's default configuration.
DEFAULTS = dict(activation="tanh", dtype="float32", use_bias=True, mask_pattern="none", initial_state=False,
                return_sequences=False, return_state=False, go_backwards=False, zero_output_for_mask=False,
                unbatched=False, recurrent_activation="sigmoid", reset_after=True,
                merge_mode="concat")


def feature(dimension: str, value) -> str:
    """A readable name of one value of a dimension: ``bias=None``, ``mask (random)``, ..."""
    if dimension == "activation":
        return f"activation={value!r}"
    if dimension == "dtype":
        return str(value)
    if dimension == "use_bias":
        return "a bias" if value else "bias=None"
    if dimension == "mask_pattern":
        return "no mask" if value == "none" else f"mask ({value})"
    if dimension == "initial_state":
        return "initial_state" if value else "no initial_state"
    if dimension in ("recurrent_activation", "merge_mode"):
        return f"{dimension}={value!r}"
    if dimension == "unbatched":
        return "one sequence (T, D)" if value else "a batch (B, T, D)"
    return f"{dimension}={value}"


def __getattr__(name):
    # The hypothesis strategy is imported here, not at the top, to keep
    # hypothesis out of this module's import (the offline check needs NumPy only).
    if name == "cases":
        from rnn_ref.harness.strategies import cases

        return cases
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
