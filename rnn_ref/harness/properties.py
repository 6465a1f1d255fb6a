"""The property catalogue: what it means to compute what Keras computes.

Each property is defined once, as a function of a candidate implementation
(anything with the contract of a layer spec's reference function) and a
drawn case. The test suite applies the catalogue to the reference itself;
``python -m rnn_ref check`` applies the same catalogue to a user's function.

Every result the candidate returns is judged against the float64 reference
and live Keras (``context.Context``); relations between two of the
candidate's own results (last step vs plain output, chunks vs one sequence,
...) are checked on top, within the sum of the two budgets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from hypothesis import strategies as st

from .. import ACTIVATIONS
from ..activations import ELEMENTWISE
from ..dense import dense
from .cases import BOUNDED, DEFAULTS, FULL, MASK_PATTERNS, Case, Support, each_state, feature, make_case
from .context import Context, Judged
from .spec import LAYERS, SIMPLE_RNN, LayerSpec


class Unsupported(Exception):
    """A property needs a feature the candidate does not handle."""


#: What a property draws in each dimension it does not pin.
DRAWN = dict(activation=ELEMENTWISE, dtype=("float32", "float64"), use_bias=(True, False),
             mask_pattern=("none",), initial_state=(False, True), return_sequences=(False, True),
             return_state=(False, True), go_backwards=(False, True), zero_output_for_mask=(False, True))

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
    """

    name: str
    doc: str
    check: Callable
    pins: dict = field(default_factory=dict)
    shapes: dict = field(default_factory=dict)
    needs: dict = field(default_factory=dict)
    wrap: Callable | None = None
    anchor: dict | None = field(default_factory=dict)
    layers: tuple = tuple(LAYERS)  # the layers (spec names) the property applies to

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
        strategy = spec.cases(**self.shapes, **{dim: _choice(v) for dim, v in values.items()},
                              layer=st.just(spec.name))
        return self.wrap(strategy) if self.wrap else strategy

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
        pick = {dim: DEFAULTS[dim] if DEFAULTS[dim] in v else v[0] for dim, v in values.items()}
        gain = 1.0 if pick["activation"] in BOUNDED else 0.5  # Keras's orthogonal initializer has gain 1
        return [make_case(**{**SEED_SIZE, **self.anchor}, seed=250, gain=gain, layer=spec.name, **pick)]


PROPERTIES: dict[str, Property] = {}


def case_of(drawn) -> Case:
    """The Case inside what a property's strategy drew (some draw extras with it)."""
    return drawn if isinstance(drawn, Case) else drawn[0]


def prop(*, pins=None, shapes=None, needs=None, wrap=None, anchor=None, layers=None):
    """Register a property; see ``Property`` for the arguments (``anchor=False``: no realistic-size case)."""
    def register(fn):
        name = fn.__name__
        PROPERTIES[name] = Property(name, (fn.__doc__ or "").strip().splitlines()[0], fn, dict(pins or {}),
                                    dict(shapes or {}), dict(needs or {}), wrap,
                                    None if anchor is False else dict(anchor or {}), tuple(layers or LAYERS))
        return fn
    return register


# -- the catalogue ---------------------------------------------------------------

ANY_MASK = ("none",) + MASK_PATTERNS


@prop(pins=dict(mask_pattern=ANY_MASK))
def matches_keras(ctx: Context, f, case: Case):
    """Any shape, dtype, activation and option: the result matches Keras."""
    ctx.expect(f, case)


# Each activation is a separate Keras build, so this property keeps the layer
# configuration to a few choices (D in {3, 7}, U = 10, full sequences, bias) and
# lets B, T, the weights, the gain, the initial state and the dtype vary:
# Keras builds are then reused across examples. Shapes and options are swept
# by the other properties.
@prop(pins=dict(activation=("tanh",), return_state=(False,), return_sequences=Prefer((True, False)),
               use_bias=Prefer((True, False)), go_backwards=(False,), zero_output_for_mask=(False,)),
      shapes=dict(D=st.sampled_from((3, 7)), U=st.just(10)), anchor=False)
def every_activation_matches_keras(ctx: Context, f, case: Case):
    """Every Keras activation name gives Keras's result."""
    for name in (a for a in ACTIVATIONS if a in ctx.support.activation):
        # Unbounded activations are run with a contracting recurrent kernel.
        gain = case.gain if name in BOUNDED else min(case.gain, 0.5)
        c = case._replace(recurrent_kernel=case.recurrent_kernel * (gain / case.gain), gain=gain, activation=name)
        ctx.expect(f, c, f"activation={name!r}")


@prop(pins=dict(return_state=(False,)), needs=dict(return_sequences=(True, False)))
def return_sequences_last_step_is_output(ctx: Context, f, case: Case):
    """The last step of return_sequences=True is the output of return_sequences=False."""
    seq = ctx.expect(f, case, "sequence", return_sequences=True)
    last = ctx.expect(f, case, "last output", return_sequences=False)
    step = Judged(seq.value[:, -1], seq.budget[:, -1])
    ctx.relate("sequences[:, -1] vs last output", step, last)


@prop(pins=dict(return_state=(True,), mask_pattern=ANY_MASK))
def return_state_returns_output_and_final_state(ctx: Context, f, case: Case):
    """return_state=True gives (output, *final states); without a mask the (first) state is the last output."""
    out, state, *_ = ctx.expect(f, case)
    if case.mask is None:
        last = Judged(out.value[:, -1], out.budget[:, -1]) if case.return_sequences else out
        ctx.relate("final_state vs last output", state, last)


@prop(pins=dict(go_backwards=(True,), mask_pattern=ANY_MASK))
def go_backwards_equals_forward_on_reversed_input(ctx: Context, f, case: Case):
    """go_backwards=True equals a forward pass on the reversed input, outputs in processing order."""
    back = ctx.expect(f, case, "go_backwards=True")
    rev = case._replace(
        inputs=np.ascontiguousarray(case.inputs[:, ::-1]), go_backwards=False,
        mask=None if case.mask is None else np.ascontiguousarray(case.mask[:, ::-1]),
    )
    fwd = ctx.expect(f, rev, "forward on reversed input")
    pairs = zip(back, fwd) if isinstance(back, tuple) else [(back, fwd)]
    for a, b in pairs:
        ctx.relate("go_backwards vs reversed forward", a, b)


@prop(pins=dict(mask_pattern=MASK_PATTERNS))
def mask_matches_keras(ctx: Context, f, case: Case):
    """Masks (random, left and right padding, all-masked rows, leading masked steps) match Keras."""
    ctx.expect(f, case)


@prop(pins=dict(mask_pattern=MASK_PATTERNS, return_sequences=(True,), zero_output_for_mask=(False,),
               go_backwards=(False,)))
def masked_step_repeats_previous_output(ctx: Context, f, case: Case):
    """At a padded step the output repeats the previous output (zero before the first valid step)."""
    out = ctx.expect(f, case)
    out = out[0] if isinstance(out, tuple) else out
    y, m = out.value, case.mask
    prev = np.concatenate([np.zeros_like(y[:, :1]), y[:, :-1]], axis=1)  # (B, T, U)
    ctx.exactly("output at a padded step vs previous output", y, prev, ~m[:, :, None])


@prop(pins=dict(mask_pattern=("leading_masked",), initial_state=(True,), return_sequences=(True,),
               go_backwards=(False,)))
def leading_masked_steps_output_zero_with_initial_state(ctx: Context, f, case: Case):
    """Before the first valid step the output is zero even with a non-zero initial_state."""
    out = ctx.expect(f, case)
    out = out[0] if isinstance(out, tuple) else out
    before_first = np.cumsum(case.mask, axis=1) == 0  # (B, T)
    ctx.exactly("output before the first valid step", out.value, 0.0, before_first[:, :, None])


@prop(pins=dict(mask_pattern=MASK_PATTERNS, zero_output_for_mask=(True,), return_sequences=(True,)))
def zero_output_for_mask_zeros_padded_steps(ctx: Context, f, case: Case):
    """With zero_output_for_mask=True the output is zero at every padded step."""
    out = ctx.expect(f, case)
    out = out[0] if isinstance(out, tuple) else out
    m = case.mask[:, ::-1] if case.go_backwards else case.mask  # outputs are in processing order
    ctx.exactly("output at a padded step", out.value, 0.0, ~m[:, :, None])


@prop(pins=dict(initial_state=(True,), mask_pattern=ANY_MASK))
def initial_state_matches_keras(ctx: Context, f, case: Case):
    """A given initial_state is the state before the first step, as in Keras."""
    ctx.expect(f, case)


@st.composite
def _with_cuts(draw, case_strategy):
    case = draw(case_strategy)
    T = case.shape["T"]
    cuts = sorted(draw(st.sets(st.integers(1, T - 1), min_size=1, max_size=min(4, T - 1)), label="cuts"))
    return case, np.diff([0, *cuts, T]).tolist()


@prop(pins=dict(go_backwards=(False,), return_sequences=(True,), return_state=(True,),
               zero_output_for_mask=(False,), initial_state=(False,)),
      shapes=dict(T=st.integers(2, 60)), needs=dict(initial_state=(True,)), wrap=_with_cuts)
def stateful_chunks_equal_one_sequence(ctx: Context, f, drawn):
    """Chunks fed with the previous final state (Keras stateful=True) equal one long sequence."""
    case, chunks = drawn
    whole_out, *whole_states = ctx.expect(f, case, "whole sequence")
    layer_options = {"activation": case.activation, **dict(case.extras)}
    keras_outs, _ = ctx.oracle.stateful_chunks(
        case.inputs, case.kernel, case.recurrent_kernel, case.bias, chunks=chunks, **layer_options)
    states, start = None, 0
    for n, k_out in zip(chunks, keras_outs):
        # one state is passed as an array, several as a tuple (an LSTM's h and c)
        given = None if states is None else states[0] if len(states) == 1 else tuple(states)
        piece = case._replace(inputs=case.inputs[:, start:start + n], initial_state=given)
        out, *states = ctx.call(f, piece)
        sl = slice(start, start + n)
        ctx.relate(f"chunk {start}:{start + n} vs whole sequence", Judged(out, whole_out.budget[:, sl]),
                   Judged(whole_out.value[:, sl], whole_out.budget[:, sl]))
        ctx.relate(f"Keras stateful chunk {start}:{start + n} vs whole sequence",
                   Judged(k_out, whole_out.budget[:, sl]), Judged(whole_out.value[:, sl], whole_out.budget[:, sl]))
        start += n
    for state, whole_state in zip(states, whole_states):
        ctx.relate("final state after the chunks", Judged(state, whole_state.budget), whole_state)


def _unrollable(case_strategy):
    return case_strategy.map(_without_keras_unroll_bug)


def _without_keras_unroll_bug(case: Case) -> Case:
    if case.go_backwards and case.zero_output_for_mask and case.return_sequences and case.mask is not None:
        # Keras's unrolled loop zeroes the wrong steps here (keras-team/keras#17596);
        # tests/test_keras_quirks.py pins it. The candidate is held to unroll=False.
        case = case._replace(zero_output_for_mask=False)
    return case


@prop(pins=dict(mask_pattern=ANY_MASK), shapes=dict(T=st.integers(1, 16)), wrap=_unrollable)
def unroll_true_equals_unroll_false(ctx: Context, f, case: Case):
    """Keras's unrolled loop (unroll=True) gives the same result."""
    ctx.expect(f, case, "vs Keras unroll=True", unroll=True)


@prop(pins=dict(use_bias=(False,), mask_pattern=("none", "random")))
def use_bias_false_matches_keras(ctx: Context, f, case: Case):
    """bias=None is Keras's use_bias=False."""
    ctx.expect(f, case)


@prop(pins=dict(mask_pattern=ANY_MASK), shapes=dict(B=st.integers(2, 5)))
def batch_rows_are_independent(ctx: Context, f, case: Case):
    """Each batch row's result is the result of that row alone."""
    whole = ctx.expect(f, case)
    whole = whole if isinstance(whole, tuple) else (whole,)
    for b in range(case.shape["B"]):
        row = case._replace(
            inputs=case.inputs[b:b + 1], mask=None if case.mask is None else case.mask[b:b + 1],
            initial_state=each_state(case.initial_state, lambda s: s[b:b + 1]))
        alone = ctx.call(f, row)
        alone = alone if isinstance(alone, tuple) else (alone,)
        for w, a in zip(whole, alone):
            ctx.relate(f"row {b} alone vs in the batch", Judged(a, w.budget[b:b + 1]),
                       Judged(w.value[b:b + 1], w.budget[b:b + 1]))


@prop(pins=dict(return_state=(False,), mask_pattern=("none",)), shapes=dict(T=st.just(1)), anchor=dict(T=1),
      layers=("SimpleRNN",))
def single_step_equals_dense(ctx: Context, f, case: Case):
    """With T=1 the layer is a Dense layer on [x, h0] with kernel [[kernel], [recurrent_kernel]]."""
    out = ctx.expect(f, case)
    h0 = case.initial_state if case.initial_state is not None else np.zeros_like(case.inputs[:, 0, :0])
    x = np.concatenate([case.inputs[:, 0], h0], axis=1)  # (B, D + U) or (B, D)
    k = case.kernel if case.initial_state is None else np.concatenate([case.kernel, case.recurrent_kernel])
    y = dense(x, k, case.bias, case.activation)  # (B, U)
    y = y[:, None] if case.return_sequences else y
    ctx.relate("single step vs dense", out, Judged(y, out.budget))


@prop(pins=dict(mask_pattern=ANY_MASK), shapes=dict(B=st.just(1)), needs=dict(unbatched=(True,)), anchor=dict(B=1))
def unbatched_equals_batch_of_one(ctx: Context, f, case: Case):
    """One sequence (T, D) gives the batch-of-one result without the batch axis."""
    batched = ctx.expect(f, case, "batch of one")
    single = ctx.expect(f, case, "one sequence", inputs=case.inputs[0],
                        mask=None if case.mask is None else case.mask[0],
                        initial_state=each_state(case.initial_state, lambda s: s[0]))
    pairs = zip(batched, single) if isinstance(batched, tuple) else [(batched, single)]
    for b, s in pairs:
        ctx.relate("one sequence vs batch of one", Judged(b.value[0], b.budget[0]), s)
