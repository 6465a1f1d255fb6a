"""The frame of the property catalogue: ``Property``, the registry ``PROPERTIES``, ``prop``.

``properties.py`` (the layer's and the Bidirectional function's properties)
and ``gradient_properties.py`` (a backward pass's) register their properties
here with ``prop``; ``properties`` imports ``gradient_properties``, so that
importing it gives the whole catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from hypothesis import strategies as st

from rnn_ref.layers.activations import ELEMENTWISE
from rnn_ref.harness.strategies import cases
from rnn_ref.harness.cases import BOUNDED, DEFAULTS, FULL, GATE_ACTIVATIONS, MASK_PATTERNS, Case, Support, extra_options, feature, make_case
from rnn_ref.models.registry import RECURRENT, SIMPLE_RNN, LayerSpec


class Unsupported(Exception):
    """A property needs a feature the candidate does not handle."""


#: What a property draws in each dimension it does not pin.
DRAWN = dict(activation=ELEMENTWISE, dtype=("float32", "float64"), use_bias=(True, False),
             mask_pattern=("none",), initial_state=(False, True), return_sequences=(False, True),
             return_state=(False, True), go_backwards=(False, True), zero_output_for_mask=(False, True),
             recurrent_activation=GATE_ACTIVATIONS, reset_after=(True, False))

#: The dimensions every layer's cases have (the others are options of some layers only).
CASE_DIMENSIONS = tuple(d for d in DRAWN if d not in ("recurrent_activation", "reset_after"))

#: The realistic size every property is also checked at: the seed question's
#: Embedding(5000, 32) -> SimpleRNN(100) on sequences of 250 steps.
SEED_SIZE = dict(B=2, T=250, D=32, U=100)


class Prefer(tuple):
    """Pinned values in order of preference: the first one supported is drawn
    (``Prefer((True, False))``: True, or False for a function without it)."""


def _choice(values: tuple) -> st.SearchStrategy:
    if len(values) == 1:
        return st.just(values[0])
    if set(values) == {False, True}:
        return st.booleans()  # shrinks to False, Keras's default
    return st.sampled_from(values)


def _any_of(dim: str, values) -> str:
    if dim == "mask_pattern" and "none" not in values and len(values) > 1:
        return "a mask"
    return " or ".join(feature(dim, v) for v in values)


@dataclass(frozen=True)
class Property:
    """A property: its check, and how its cases are drawn.

    ``pins`` restricts dimensions of ``cases`` to some values (a mask
    property draws only masks); ``needs`` names values the check uses
    itself through overrides (the last-step property calls with both
    return_sequences values); ``shapes`` are strategies for other arguments
    of ``cases`` (B, T, D, U, gain);
    ``wrap`` turns the case strategy into what ``check`` takes; ``anchor``
    overrides ``SEED_SIZE`` for the realistic-size case (None: no such case).
    ``takes`` is what the candidate is: ``"layer"``, a function called like
    the layer's reference, or ``"bidirectional"``, a function called like
    ``rnn_ref.bidirectional`` with the layer bound (``inputs, forward,
    backward, merge_mode=..., **options``).
    """

    name: str
    doc: str
    check: Callable
    pins: dict = field(default_factory=dict)
    shapes: dict = field(default_factory=dict)
    needs: dict = field(default_factory=dict)
    wrap: Callable | None = None
    anchor: dict | None = field(default_factory=dict)
    layers: tuple = tuple(RECURRENT)  # the layers (spec names) the property applies to
    takes: str = "layer"

    def values(self, support: Support = FULL) -> dict:
        """The values each dimension is drawn from for a candidate with ``support``;
        raises Unsupported naming what is missing."""
        values = {}
        for dim, default in DRAWN.items():
            wanted = tuple(self.pins.get(dim, default))
            allowed = tuple(v for v in wanted if v in getattr(support, dim))
            if isinstance(self.pins.get(dim), Prefer):
                allowed = allowed[:1]
            if not allowed:
                raise Unsupported("needs " + _any_of(dim, wanted))
            values[dim] = allowed
        for dim, wanted in self.needs.items():
            missing = support.lacks(dim, wanted)
            if missing:
                raise Unsupported("needs " + " and ".join(feature(dim, v) for v in missing))
        return values

    def strategy_for(self, support: Support = FULL, spec: LayerSpec = SIMPLE_RNN) -> st.SearchStrategy:
        """What ``check`` takes, drawn inside ``support`` (raises Unsupported)."""
        if spec.name not in self.layers:
            raise Unsupported(f"does not apply to {spec.name}")
        values = self.values(support)
        strategy = cases(**self.shapes, **{dim: _choice(v) for dim, v in values.items()},
                              layer=st.just(spec.name))
        return self.wrap(strategy, support) if self.wrap else strategy

    @property
    def strategy(self) -> st.SearchStrategy:
        return self.strategy_for(FULL)

    def anchors(self, support: Support = FULL, spec: LayerSpec = SIMPLE_RNN) -> list:
        """Cases at the seed's size in the configuration closest to Keras's
        defaults that the property and ``support`` allow (empty when the
        property has no anchor or is unsupported)."""
        if self.anchor is None or self.wrap is not None or spec.name not in self.layers:
            return []
        try:
            values = self.values(support)
        except Unsupported:
            return []
        pick = {dim: DEFAULTS[dim] if DEFAULTS[dim] in v else v[0] for dim, v in values.items()
                if dim in CASE_DIMENSIONS or dim in extra_options(spec.name)}
        gain = 1.0 if pick["activation"] in BOUNDED else 0.5  # Keras's orthogonal initializer has gain 1
        return [make_case(**{**SEED_SIZE, **self.anchor}, seed=250, gain=gain, layer=spec.name, **pick)]


PROPERTIES: dict[str, Property] = {}


def case_of(drawn) -> Case:
    """The Case inside what a property's strategy drew (some draw extras with it)."""
    return drawn if isinstance(drawn, Case) else drawn[0]


def prop(*, pins=None, shapes=None, needs=None, wrap=None, anchor=None, layers=None, takes="layer"):
    """Register a property; see ``Property`` for the arguments (``anchor=False``: no realistic-size case)."""
    def register(fn):
        name = fn.__name__
        PROPERTIES[name] = Property(name, (fn.__doc__ or "").strip().splitlines()[0], fn, dict(pins or {}),
                                    dict(shapes or {}), dict(needs or {}), wrap,
                                    None if anchor is False else dict(anchor or {}), tuple(layers or RECURRENT), takes)
        return fn
    return register


def properties_for(layer: str, takes: str = "layer") -> dict:
    """The properties that apply to ``layer`` (a spec name) for a candidate of kind ``takes``."""
    return {name: p for name, p in PROPERTIES.items() if layer in p.layers and p.takes == takes}


#: Every mask pattern, and no mask.
ANY_MASK = ("none",) + MASK_PATTERNS
