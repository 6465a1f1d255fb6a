"""The property catalogue: what it means to compute what Keras computes.

Each property is defined once, as a function of a candidate implementation
(anything with the contract of a layer spec's reference function) and a
drawn case. The test suite applies the catalogue to the reference itself;
``python -m rnn_ref check`` applies the same catalogue to a user's function.

Every result the candidate returns is judged against the float64 reference
and live Keras (``context.Context``); relations between two of the
candidate's own results (last step vs plain output, chunks vs one sequence,
...) are checked on top, within the sum of the two budgets.

``Property``, ``prop`` and the registry ``PROPERTIES`` are in
``catalogue.py`` (exported from here too); importing this module registers
these properties and then ``gradient_properties``'s.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from rnn_ref import ACTIVATIONS
from rnn_ref.layers.activations import get as activation_named
from rnn_ref.layers.bidirectional import MERGE_MODES, bidirectional
from rnn_ref.layers.dense import dense
from rnn_ref.harness.cases import BOUNDED, FULL, GATE_ACTIVATIONS, MASK_PATTERNS, Case, bidirectional_kwargs, each_state, make_case
from rnn_ref.harness.catalogue import ANY_MASK, CASE_DIMENSIONS, DRAWN, PROPERTIES, SEED_SIZE, Prefer, Property, Unsupported, case_of, prop, properties_for
from rnn_ref.harness.context import CandidateError, Context, Judged, PropertyFailure
from rnn_ref.harness.tolerance import roundoff


# -- the catalogue ---------------------------------------------------------------

@prop(pins=dict(mask_pattern=ANY_MASK))
def matches_keras(ctx: Context, f, case: Case):
    """Any shape, dtype, activation and option: the result matches Keras."""
    ctx.expect(f, case)


# Each activation is a separate Keras build, so this property keeps the layer
# configuration to a few choices (D = 7, U = 10, full sequences, bias, no
# initial state, Keras's gate activation and GRU variant) and lets B, T up to
# 40, the weights, the gain and the dtype vary: Keras builds are then reused
# across examples. Long sequences, shapes, initial states and options are swept
# with every activation by the other properties.
@prop(pins=dict(activation=("tanh",), return_state=(False,), return_sequences=Prefer((True, False)),
               use_bias=Prefer((True, False)), go_backwards=(False,), zero_output_for_mask=(False,),
               initial_state=Prefer((False, True)),
               recurrent_activation=Prefer(GATE_ACTIVATIONS), reset_after=Prefer((True, False))),
      shapes=dict(D=st.just(7), U=st.just(10), T=st.integers(1, 40)), anchor=False)
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
def _with_cuts(draw, case_strategy, support=FULL):
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


def _unrollable(case_strategy, support=FULL):
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


# -- LSTM and GRU gates, Bidirectional ----------------------------------------------------

def _gate_step(case: Case) -> np.ndarray:
    """One step (T=1) of an LSTM or a GRU written out from the gate equations of
    Keras's LSTMCell and GRUCell (keras/src/layers/rnn/lstm.py, gru.py, 3.15.1),
    in the case's dtype, from zero states when the case has no initial_state.
    Returns h (B, U)."""
    x = case.inputs[:, 0]  # (B, D)
    B, U = x.shape[0], case.shape["U"]
    options = dict(case.extras)
    act, gate = activation_named(case.activation), activation_named(options["recurrent_activation"])
    zeros = np.zeros((B, U), dtype=case.dtype)
    if case.layer == "LSTM":
        h0, c0 = case.initial_state if case.initial_state is not None else (zeros, zeros)
        # z = x @ kernel + h0 @ recurrent_kernel + bias: one Dense on [x, h0], blocks i, f, c, o
        z = dense(np.concatenate([x, h0], axis=1), np.concatenate([case.kernel, case.recurrent_kernel]), case.bias)
        i, f, g, o = (z[:, k * U:(k + 1) * U] for k in range(4))  # (B, U) each
        c = gate(f) * c0 + gate(i) * act(g)
        return gate(o) * act(c)
    if case.layer != "GRU":
        raise ValueError(f"no gate equations for {case.layer}")
    h0 = case.initial_state if case.initial_state is not None else zeros
    W = [case.kernel[:, k * U:(k + 1) * U] for k in range(3)]  # z, r, h blocks, (D, U) each
    R = [case.recurrent_kernel[:, k * U:(k + 1) * U] for k in range(3)]  # (U, U) each
    if options["reset_after"]:
        # bias (2, 3U): row 0 goes with the input product, row 1 with the recurrent one
        b_in, b_rec = (None, None) if case.bias is None else (case.bias[0], case.bias[1])
        blk = lambda b, k: None if b is None else b[k * U:(k + 1) * U]  # noqa: E731
        xs = [dense(x, W[k], blk(b_in, k)) for k in range(3)]
        hs = [dense(h0, R[k], blk(b_rec, k)) for k in range(3)]
        z, r = gate(xs[0] + hs[0]), gate(xs[1] + hs[1])
        hh = act(xs[2] + r * hs[2])  # the reset gate after the recurrent product (and its bias)
    else:
        # bias (3U,), added to the input product only
        blk = lambda k: None if case.bias is None else case.bias[k * U:(k + 1) * U]  # noqa: E731
        z = gate(dense(x, W[0], blk(0)) + h0 @ R[0])
        r = gate(dense(x, W[1], blk(1)) + h0 @ R[1])
        hh = act(dense(x, W[2], blk(2)) + (r * h0) @ R[2])  # the reset gate before the product
    return z * h0 + (1 - z) * hh


@prop(pins=dict(return_state=(False,), mask_pattern=("none",)), shapes=dict(T=st.just(1)), anchor=dict(T=1),
      layers=("LSTM", "GRU"))
def single_step_equals_gate_equations(ctx: Context, f, case: Case):
    """With T=1 an LSTM or a GRU is its gate equations, written out (gate orders i, f, c, o and z, r, h)."""
    out = ctx.expect(f, case)
    with np.errstate(all="ignore"):
        y = _gate_step(case)  # (B, U)
    y = y[:, None] if case.return_sequences else y
    ctx.relate("single step vs gate equations", out, Judged(y, out.budget))


@st.composite
def _with_merge_mode(draw, case_strategy, support=FULL):
    """(case, merge_mode): a case for ``bidirectional_matches_keras`` and Keras's merge mode.

    Bidirectional runs its inner layers with zero_output_for_mask = return_sequences.
    The case's own zero_output_for_mask is pinned ``Prefer((True, False))``, so it is
    True exactly when the candidate handles True: when it does not, a case with a
    mask and return_sequences is rebuilt without the mask (the candidate is checked
    where it works). The case then carries the zero_output_for_mask its inner calls use
    (True only with a mask and return_sequences: without a mask the option does nothing)."""
    case = draw(case_strategy)
    if case.mask is not None and case.return_sequences and not case.zero_output_for_mask:
        case = make_case(**case.params(mask_pattern="none"))
    case = case._replace(zero_output_for_mask=case.return_sequences and case.mask is not None)
    modes = [m for m in MERGE_MODES if m in support.merge_mode]  # shrinks to "concat", Keras's default
    return case, draw(st.sampled_from(modes), label="merge_mode")


def _backward_weights(case: Case) -> Case:
    """The backward layer's weights and initial states: the case rebuilt from the next seed."""
    return make_case(**case.params(seed=case.seed + 1))


def _merged(merge_mode, y: Judged, y_rev: Judged, dtype) -> list:
    """Merge the two directions as Keras does, in the case's dtype, with the budget
    of the merged values (see bidirectional_matches_keras); a list of one Judged,
    or of two for merge_mode None."""
    if merge_mode is None:
        return [y, y_rev]
    a, b, ea, eb = y.value, y_rev.value, y.budget, y_rev.budget
    if merge_mode == "concat":
        return [Judged(np.concatenate([a, b], axis=-1), np.concatenate([ea, eb], axis=-1))]
    with np.errstate(all="ignore"):
        if merge_mode == "sum":
            value, budget = a + b, ea + eb
        elif merge_mode == "ave":
            value, budget = (a + b) / 2, (ea + eb) / 2
        elif merge_mode == "mul":
            value, budget = a * b, np.abs(a) * eb + np.abs(b) * ea + ea * eb
        else:
            raise ValueError(f"unknown merge_mode {merge_mode!r}")
        budget = budget + roundoff(dtype) * np.abs(value.astype(np.float64))  # the merge's own rounding
    # inf * 0 (an unjudgeable element times an exact zero) is NaN: still unjudgeable
    return [Judged(value, np.where(np.isnan(budget), np.inf, budget))]


def _directions(case: Case, other: Case) -> tuple[Case, Case]:
    """The forward layer's call (the case's weights) and the backward layer's
    (``other``'s weights and initial state, go_backwards=True), with the
    zero_output_for_mask Bidirectional gives them (see _with_merge_mode)."""
    zero_output = case.zero_output_for_mask
    fwd = case._replace(go_backwards=False, zero_output_for_mask=zero_output)
    bwd = case._replace(kernel=other.kernel, recurrent_kernel=other.recurrent_kernel, bias=other.bias,
                        initial_state=other.initial_state, go_backwards=True, zero_output_for_mask=zero_output)
    return fwd, bwd


def _as_tuple(out) -> tuple:
    return out if isinstance(out, tuple) else (out,)


def _judge_bidirectional(ctx: Context, got: list, case: Case, other: Case, merge_mode) -> None:
    """The candidate's Bidirectional results ``got`` (Judged, with their budgets) and
    Keras's Bidirectional output against the float64 truth, rnn_ref.bidirectional
    on the reference in float64."""
    spec = ctx.spec
    keras = _as_tuple(ctx.oracle.bidirectional(**bidirectional_kwargs(case, other, merge_mode)))
    with np.errstate(all="ignore"):
        truth = _as_tuple(bidirectional(spec.reference, **bidirectional_kwargs(
            case.astype(np.float64), other.astype(np.float64), merge_mode)))
    if not len(got) == len(keras) == len(truth):
        raise PropertyFailure(f"Bidirectional returned {len(keras)} arrays, the reference {len(truth)} and the "
                              f"candidate {len(got)}")
    names = ["output"] if merge_mode is not None else ["forward output", "backward output"]
    names += [f"{d} {s}" for d in ("forward", "backward") for s in spec.states] if case.return_state else []
    for name, g, k, t in zip(names, got, keras, truth):
        if np.shape(g.value) != np.shape(t):
            raise CandidateError(f"merge_mode={merge_mode!r}: {name} has shape {np.shape(g.value)}, expected "
                                 f"{np.shape(t)} for {case.describe()}")
        if np.asarray(g.value).dtype != case.dtype:
            raise CandidateError(f"merge_mode={merge_mode!r}: {name} has dtype {np.asarray(g.value).dtype}, "
                                 f"expected {case.dtype} (the dtype of the inputs)")
        exact = Judged(t, np.zeros_like(t))
        ctx.relate(f"merge_mode={merge_mode!r}, {name}: candidate vs float64 truth", g, exact)
        ctx.relate(f"merge_mode={merge_mode!r}, {name}: Keras Bidirectional vs float64 truth "
                   "(the reference or the harness disagrees with Keras)", Judged(k, g.budget), exact)


def _merged_directions(ctx: Context, f, case: Case, other: Case, merge_mode, label: str = "") -> list:
    """Both directions of ``case`` run by the layer function ``f`` and judged like any
    other call, merged as Bidirectional merges them: a list of Judged (the merged
    output or two outputs, then the forward states and the backward ones)."""
    fwd_case, bwd_case = _directions(case, other)
    y, *states_f = _as_tuple(ctx.expect(f, fwd_case, f"forward layer{label}"))
    y_rev, *states_b = _as_tuple(ctx.expect(f, bwd_case, f"backward layer (go_backwards=True){label}"))
    if case.return_sequences:  # processing order back to input order, as Bidirectional does
        y_rev = Judged(np.flip(y_rev.value, axis=1), np.flip(y_rev.budget, axis=1))
    # The budget of a merged element. ctx.expect has checked |y - y*| <= e_f and
    # |y' - y'*| <= e_b elementwise (y*, y'* the float64 truth, e the budgets), so:
    #   concat: each half keeps its own budget;
    #   sum:    |(y + y') - (y* + y'*)| <= e_f + e_b            (triangle inequality);
    #   ave:    half of that (the division by 2 is exact);
    #   mul:    y y' - y* y'* = y (y' - y'*) + y'* (y - y*) and |y'*| <= |y'| + e_b, so
    #           |y y' - y* y'*| <= |y| e_b + |y'| e_f + e_f e_b;
    # plus one rounding of the merge itself in the case's dtype, u |result|. States are
    # not merged: each keeps the budget of the call that returned it.
    return [*_merged(merge_mode, y, y_rev, case.dtype), *states_f, *states_b]


@prop(pins=dict(mask_pattern=ANY_MASK, go_backwards=(False,), zero_output_for_mask=Prefer((True, False))),
      needs=dict(go_backwards=(True,)),
      shapes=dict(D=st.sampled_from((3, 5)), U=st.integers(2, 6), T=st.integers(1, 20)),
      wrap=_with_merge_mode, anchor=False)
def bidirectional_matches_keras(ctx: Context, f, drawn):
    """Wrapped as Keras's Bidirectional does it (every merge_mode), the layer matches keras.layers.Bidirectional."""
    case, merge_mode = drawn
    other = _backward_weights(case)
    # Each direction is one call of the candidate, judged like any other call against
    # Keras's own layer and the float64 reference; they are merged here as
    # rnn_ref.bidirectional merges them (it takes only rnn_ref's own layer functions).
    got = _merged_directions(ctx, f, case, other, merge_mode)
    _judge_bidirectional(ctx, got, case, other, merge_mode)


# -- a Bidirectional function --------------------------------------------------------
# The candidate computes Keras's Bidirectional itself, called like
# rnn_ref.bidirectional with the layer bound: g(inputs=, forward=, backward=,
# merge_mode=, **options). The budget of each result is the one a correct layer
# earns on the same case: both directions of the reference are judged (against
# Keras's inner layer and the float64 truth) and merged as above.

def _check_bidirectional_function(ctx: Context, g, drawn):
    case, merge_mode = drawn
    other = _backward_weights(case)
    budgets = _merged_directions(ctx, ctx.spec.reference, case, other, merge_mode, " (reference, for the budget)")
    with np.errstate(all="ignore"):  # overflow in explosive cases is judged, not warned
        out = g(**bidirectional_kwargs(case, other, merge_mode))
    parts = list(out) if isinstance(out, (tuple, list)) else [out]
    if len(parts) != len(budgets):
        raise CandidateError(f"merge_mode={merge_mode!r}, return_state={case.return_state}: the candidate returned "
                             f"{len(parts)} arrays, Keras's Bidirectional returns {len(budgets)}")
    got = [Judged(np.asarray(p), b.budget) for p, b in zip(parts, budgets)]
    _judge_bidirectional(ctx, got, case, other, merge_mode)


_BIDIRECTIONAL_PINS = dict(go_backwards=(False,), zero_output_for_mask=Prefer((True, False)))
_BIDIRECTIONAL_SHAPES = dict(D=st.sampled_from((3, 5)), U=st.integers(2, 6), T=st.integers(1, 20))


@prop(pins=dict(mask_pattern=ANY_MASK, **_BIDIRECTIONAL_PINS), shapes=_BIDIRECTIONAL_SHAPES,
      wrap=_with_merge_mode, anchor=False, takes="bidirectional")
def bidirectional_function_matches_keras(ctx: Context, g, drawn):
    """Any merge_mode and option: the Bidirectional function matches keras.layers.Bidirectional."""
    _check_bidirectional_function(ctx, g, drawn)


@prop(pins=dict(mask_pattern=MASK_PATTERNS, return_sequences=Prefer((True, False)), **_BIDIRECTIONAL_PINS),
      shapes=_BIDIRECTIONAL_SHAPES, wrap=_with_merge_mode, anchor=False, takes="bidirectional")
def bidirectional_function_masks_match_keras(ctx: Context, g, drawn):
    """With masks, padded steps output zeros and each direction skips them, as in keras.layers.Bidirectional."""
    _check_bidirectional_function(ctx, g, drawn)


# The gradient properties (a candidate of kind "gradients") register themselves in the
# same catalogue; imported last, so that PROPERTIES lists them after these.
from rnn_ref.harness import gradient_properties  # noqa: E402,F401
