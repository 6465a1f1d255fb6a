"""The gradient properties: what it means to backpropagate as Keras does.

The same catalogue as the forward pass (``properties``), for a candidate of
kind ``"gradients"``: a backward pass called as ``backprop`` describes,
``f(inputs, kernel, recurrent_kernel, bias, d_output=..., **options)``
returning ``{name: gradient}``. The suite applies them to ``rnn_ref.vjp``
(``backprop.reference_backward``); ``check --gradients`` to a user's function
(``backward_candidate.AdaptedGradients``). Every gradient is judged against
``tf.GradientTape`` on the Keras layer and the float64 truth with the case's
budget (``Context.expect_gradients``); relations between two of the
candidate's own results are checked within the sum of their budgets.

``return_state`` is pinned False: the backward pass takes the output's
cotangent only.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from rnn_ref import ACTIVATIONS
from rnn_ref.harness.backprop import cotangent_for
from rnn_ref.harness.cases import BOUNDED, GATE_ACTIVATIONS, MASK_PATTERNS, Case, each_state
from rnn_ref.harness.catalogue import ANY_MASK, Prefer, prop
from rnn_ref.harness.context import Context, Judged, PropertyFailure

#: What every gradient property pins.
BACKWARD = dict(return_state=(False,))

#: Sequences of the relational properties: long enough for masks, go_backwards and
#: gradients through many steps; gradients_match_keras and every property's
#: seed-size case (T=250) draw the long ones.
RELATIONS_T = st.integers(1, 40)

#: Activations that are smooth enough (C^1 at least, no kink) for centred
#: differences: a kink inside the difference step gives an O(1) error.
SMOOTH = ("tanh", "sigmoid", "linear", "softplus", "softsign", "silu", "gelu", "elu", "mish", "exponential")


@prop(pins=dict(mask_pattern=ANY_MASK, **BACKWARD), takes="gradients")
def gradients_match_keras(ctx: Context, f, case: Case):
    """Any shape, dtype, activation and option: every gradient matches tf.GradientTape."""
    ctx.expect_gradients(f, case)


# As every_activation_matches_keras: one layer configuration per activation (one
# Keras build each), B up to 2 and T up to 6 (each step takes every activation's
# derivative; long sequences are gradients_match_keras's), the weights, gain and
# dtype drawn.
@prop(pins=dict(activation=("tanh",), return_sequences=Prefer((True, False)), use_bias=Prefer((True, False)),
               go_backwards=(False,), zero_output_for_mask=(False,), initial_state=Prefer((False, True)),
               recurrent_activation=Prefer(GATE_ACTIVATIONS), reset_after=Prefer((True, False)), **BACKWARD),
      shapes=dict(B=st.integers(1, 2), D=st.just(7), U=st.just(10), T=st.integers(1, 6)), anchor=False,
      takes="gradients")
def every_activation_gradients_match_keras(ctx: Context, f, case: Case):
    """Every Keras activation name: the gradients match tf.GradientTape (TensorFlow's derivative at kinks)."""
    for name in (a for a in ACTIVATIONS if a in ctx.support.activation):
        gain = case.gain if name in BOUNDED else min(case.gain, 0.5)
        c = case._replace(recurrent_kernel=case.recurrent_kernel * (gain / case.gain), gain=gain, activation=name)
        ctx.expect_gradients(f, c, f"activation={name!r}")


@prop(pins=dict(mask_pattern=MASK_PATTERNS, **BACKWARD), shapes=dict(T=RELATIONS_T), takes="gradients")
def masked_steps_add_nothing_to_gradients(ctx: Context, f, case: Case):
    """A padded step's input gets a zero gradient, and changing it changes no other gradient."""
    grads = ctx.expect_gradients(f, case)
    padded = ~case.mask  # (B, T), in input order whatever go_backwards says
    if "inputs" in grads:
        # where the float64 truth itself is not finite (inf * 0 through an overflowed
        # activation), Keras has NaN there too: only finite truths are held to zero
        finite = np.isfinite(grads["inputs"].truth)
        ctx.exactly("d inputs at a padded step", grads["inputs"].value, 0.0, padded[:, :, None] & finite)
    other = np.where(padded[:, :, None], 1.5 - 2 * case.inputs, case.inputs).astype(case.dtype)  # (B, T, D)
    moved = ctx.call_gradients(f, case, None, inputs=other)
    for key, judged in grads.items():
        if key == "inputs":
            continue
        ctx.relate(f"d {key.split(':')[-1]} with other values at the padded steps", Judged(moved[key], judged.budget),
                   judged)


@prop(pins=dict(**BACKWARD), shapes=dict(T=RELATIONS_T), needs=dict(return_sequences=(True, False)),
      takes="gradients")
def last_output_gradient_is_sequence_gradient_at_last_step(ctx: Context, f, case: Case):
    """return_sequences=False has the gradients of return_sequences=True with d_output zero but at the last step."""
    d_last = cotangent_for(case, case.kwargs(return_sequences=False))  # (B, U)
    d_seq = np.zeros((*case.inputs.shape[:2], d_last.shape[-1]), dtype=case.dtype)  # (B, T, U)
    d_seq[:, -1] = d_last  # the last step in processing order, where the last output is
    last = ctx.expect_gradients(f, case, "return_sequences=False", d_output=d_last, return_sequences=False)
    seq = ctx.expect_gradients(f, case, "return_sequences=True", d_output=d_seq, return_sequences=True)
    for key in last.keys() & seq.keys():
        ctx.relate(f"d {key.split(':')[-1]}: last output vs sequence with the last step's cotangent",
                   last[key], seq[key])


@prop(pins=dict(mask_pattern=ANY_MASK, **BACKWARD), shapes=dict(B=st.integers(2, 4), T=RELATIONS_T),
      takes="gradients")
def gradient_batch_rows_are_independent(ctx: Context, f, case: Case):
    """A row's input and state gradients are those of the row alone; the weight gradients are the rows' sum."""
    d_output = cotangent_for(case)
    whole = ctx.expect_gradients(f, case, d_output=d_output)
    rows = []
    for b in range(case.shape["B"]):
        row = case._replace(inputs=case.inputs[b:b + 1], mask=None if case.mask is None else case.mask[b:b + 1],
                            initial_state=each_state(case.initial_state, lambda s: s[b:b + 1]))
        rows.append(ctx.call_gradients(f, row, d_output[b:b + 1]))
    for key, w in whole.items():
        shown = key.split(":")[-1]
        if key == "inputs" or key.startswith("initial_state"):
            for b, alone in enumerate(rows):
                ctx.relate(f"d {shown}, row {b} alone vs in the batch", Judged(alone[key], w.budget[b:b + 1]),
                           Judged(w.value[b:b + 1], w.budget[b:b + 1]))
        else:
            with np.errstate(all="ignore"):
                total = np.sum([r[key].astype(np.float64) for r in rows], axis=0)
            ctx.relate(f"d {shown}: sum of the rows alone vs the batch", Judged(total, w.budget), w)


@prop(pins=dict(mask_pattern=ANY_MASK, **BACKWARD), shapes=dict(B=st.just(1), T=RELATIONS_T),
      needs=dict(unbatched=(True,)),
      anchor=dict(B=1), takes="gradients")
def unbatched_gradients_equal_batch_of_one(ctx: Context, f, case: Case):
    """One sequence (T, D) has the gradients of a batch of one, without the batch axis on d inputs and d state."""
    d_output = cotangent_for(case)
    batched = ctx.expect_gradients(f, case, "batch of one", d_output=d_output)
    single = ctx.expect_gradients(f, case, "one sequence", d_output=d_output[0], inputs=case.inputs[0],
                                  mask=None if case.mask is None else case.mask[0],
                                  initial_state=each_state(case.initial_state, lambda s: s[0]))
    for key in batched.keys() & single.keys():
        b, s = batched[key], single[key]
        if key == "inputs" or key.startswith("initial_state"):
            b = Judged(b.value[0], b.budget[0])
        ctx.relate(f"d {key.split(':')[-1]}: one sequence vs batch of one", s, b)


#: Centred differences with step h = FD_STEP * max(1, |value|). The difference of the
#: float64 loss L = sum(output * d_output) is exact to within its rounding, about
#: eps * S / h with S = sum |output * d_output| (eps = 2^-52), and its truncation error is
#: h^2 |f'''(x)| / 6, under h^2 for the small, contracting cases drawn here. An exact
#: gradient g therefore meets
#:     |g - difference| <= FD_RELATIVE * max(|g|, |difference|) + FD_ROUNDING * eps * S / h + h^2,
#: FD_ROUNDING = 16 covering the few roundings of each of the two losses, and the
#: cs231n relative error FD_RELATIVE = 1e-6 what is left for larger gradients (an
#: exact gradient measures ~1e-9 there); a gradient off by a factor, a sign or a
#: missing term is off by far more.
FD_STEP = 1e-6
FD_RELATIVE = 1e-6
FD_ROUNDING = 16.0


@prop(pins=dict(dtype=("float64",), activation=SMOOTH, recurrent_activation=Prefer(("sigmoid",)),
               mask_pattern=ANY_MASK, **BACKWARD),
      shapes=dict(B=st.integers(1, 2), T=st.integers(1, 6), D=st.integers(1, 3), U=st.integers(1, 3),
                  gain=st.floats(0.1, 1.0)),
      anchor=False, takes="gradients")
def gradients_match_finite_differences(ctx: Context, f, case: Case):
    """In float64 each gradient agrees with centred differences of the forward pass (cs231n relative error)."""
    d_output = cotangent_for(case)
    got = ctx.call_gradients(f, case, d_output)
    reference = ctx.spec.reference
    kw = case.kwargs(return_state=False)

    def loss(**call):
        with np.errstate(all="ignore"):
            return float(np.sum(np.asarray(reference(**call), dtype=np.float64) * d_output))

    with np.errstate(all="ignore"):
        scale = float(np.sum(np.abs(np.asarray(reference(**kw), dtype=np.float64) * d_output)))  # S
    eps = float(np.finfo(np.float64).eps)

    for key, g in got.items():
        name, shown = key.split(":")[0], key.split(":")[-1]
        slot, index = (name.split("[")[0], int(name.split("[")[1][:-1])) if "[" in name else (name, None)
        base = kw[slot] if index is None else kw[slot][index]
        fd, steps = np.zeros(np.shape(base)), np.zeros(np.shape(base))
        for i in np.ndindex(fd.shape):
            h = steps[i] = FD_STEP * max(1.0, abs(float(base[i])))
            values = []
            for sign in (1, -1):
                moved = base.copy()
                moved[i] += sign * h
                call = dict(kw)
                if index is None:
                    call[slot] = moved
                else:
                    states = list(kw[slot])
                    states[index] = moved
                    call[slot] = states
                values.append(loss(**call))
            fd[i] = (values[0] - values[1]) / (2 * h)
        g = np.asarray(g, dtype=np.float64)
        allowed = FD_RELATIVE * np.maximum(np.abs(g), np.abs(fd)) + FD_ROUNDING * eps * scale / steps + steps ** 2
        err = np.abs(g - fd)
        ratio = np.where(np.isnan(err), np.inf, err / allowed)
        i = np.unravel_index(int(np.argmax(ratio)), ratio.shape) if ratio.size else None
        if i is not None and ratio[i] > 1:
            rel = err[i] / max(abs(g[i]), abs(fd[i]))  # cs231n's relative error
            raise PropertyFailure(
                f"d {shown} disagrees with centred differences of the forward pass at {tuple(map(int, i))}: "
                f"candidate {float(g[i])!r}, difference {float(fd[i])!r}: |diff| {err[i]:.3g} > allowed {allowed[i]:.3g}, "
                f"relative error |a - b| / max(|a|, |b|) = {rel:.3g}; {int(np.sum(ratio > 1))} of {ratio.size} elements")


@st.composite
def _with_cut(draw, case_strategy, support=None):
    case = draw(case_strategy)
    return case, draw(st.integers(1, case.shape["T"] - 1), label="cut")


@prop(pins=dict(mask_pattern=("none",), go_backwards=(False,), initial_state=(False,), return_sequences=(True,),
               zero_output_for_mask=(False,), **BACKWARD),
      needs=dict(initial_state=(True,), return_sequences=(False,)), shapes=dict(T=st.integers(2, 30)),
      wrap=_with_cut, layers=("SimpleRNN", "GRU"), anchor=False, takes="gradients")
def chunk_initial_state_gradient_flows_to_previous_chunk(ctx: Context, f, drawn):
    """Split in two chunks: the second's d initial_state, sent back through the first, gives the whole sequence's gradients."""
    case, k = drawn
    d = cotangent_for(case)  # (B, T, U)
    d[:, :k] = 0  # the loss sees the second chunk's outputs only
    whole = ctx.expect_gradients(f, case, "whole sequence", d_output=d)
    with np.errstate(all="ignore"):  # the state between the chunks, from the reference in the case's dtype
        h_k = ctx.spec.reference(**case.kwargs(inputs=case.inputs[:, :k], return_sequences=False))  # (B, U)
    second = ctx.expect_gradients(f, case, f"steps {k}: from the state at step {k}", d_output=d[:, k:],
                                  inputs=case.inputs[:, k:], initial_state=h_k)
    if "initial_state" not in second:
        raise NotImplementedError("it returns no gradient of the initial state")
    # The state is the first chunk's last output (no mask): its cotangent is the second chunk's d initial_state.
    first = ctx.expect_gradients(f, case, f"steps :{k} with the second chunk's d initial_state as d_output",
                                 d_output=second["initial_state"].value, inputs=case.inputs[:, :k],
                                 return_sequences=False)
    for key, w in whole.items():
        shown = key.split(":")[-1]
        if key == "inputs":
            ctx.relate(f"d inputs of steps :{k}", first[key], Judged(w.value[:, :k], w.budget[:, :k]))
            ctx.relate(f"d inputs of steps {k}:", second[key], Judged(w.value[:, k:], w.budget[:, k:]))
        elif key in first and key in second:
            with np.errstate(all="ignore"):
                total = first[key].value.astype(np.float64) + second[key].value
            ctx.relate(f"d {shown}: first chunk + second chunk vs the whole sequence",
                       Judged(total, first[key].budget + second[key].budget), w)
