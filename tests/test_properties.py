"""The property catalogue applied to the reference of every layer, against live Keras.

`python -m rnn_ref check` runs the same catalogue on anyone's implementation;
this file is that checker applied to ourselves: each property, for each layer
it applies to (SimpleRNN, LSTM, GRU), with that layer's reference function as
the candidate.
"""

import functools

import pytest
from hypothesis import example, given, note, settings

import rnn_ref
from rnn_ref.harness.backprop import reference_backward
from rnn_ref.harness.context import Context
from rnn_ref.harness.properties import PROPERTIES, case_of, properties_for
from rnn_ref.models.registry import RECURRENT

CASES = [(layer, name) for layer in RECURRENT for name in properties_for(layer)]

#: Gradient properties, applied to each layer's backward pass, rnn_ref.vjp.
GRADIENTS = [(layer, name) for layer in RECURRENT for name in properties_for(layer, "gradients")]
#: Properties of a Bidirectional function, applied to rnn_ref.bidirectional around each layer.
WRAPPED = [(layer, name) for layer in RECURRENT for name in properties_for(layer, "bidirectional")]

#: The share of the profile's examples a property runs in the suite, where one example
#: costs several Keras builds (each Keras configuration met once is a build and an eager
#: call or a trace, 30 to 100 ms): an every_activation example builds each of Keras's 29
#: activations, so a third of the ci profile's 15 (5) judges 145 configurations a layer
#: (the gradient version half of GRADIENT_EXAMPLES, 2: 58, each activation's derivative
#: being also compared with GradientTape by tests/test_vjp*.py); a Bidirectional example
#: builds both directions and the wrapper. ``python -m rnn_ref check`` runs the full count.
SHARE = {"every_activation_matches_keras": 3, "every_activation_gradients_match_keras": 2,
         "bidirectional_matches_keras": 2, "bidirectional_function_matches_keras": 2,
         "bidirectional_function_masks_match_keras": 2}


def examples(name, of=None):
    """The examples property ``name`` runs here: ``of`` (default the profile's) divided by its SHARE."""
    of = settings.default.max_examples if of is None else of
    return max(1, of // SHARE.get(name, 1))


@pytest.fixture(scope="module")
def contexts(tolerance_recorder):
    return {layer: Context(record=tolerance_recorder, spec=spec) for layer, spec in RECURRENT.items()}


@pytest.mark.keras
@pytest.mark.parametrize("layer, name", CASES, ids=[f"{layer}-{name}" for layer, name in CASES])
def test_property(layer, name, contexts):
    prop, spec, ctx = PROPERTIES[name], RECURRENT[layer], contexts[layer]

    @settings(max_examples=examples(name))
    @given(prop.strategy_for(spec=spec))
    def check(case):
        shown = case_of(case)
        note(f"{name}: {shown.describe()}\nreproduce with:\n{shown.snippet()}")
        ctx.property = name if layer == "SimpleRNN" else f"{name} ({layer})"
        prop.check(ctx, spec.reference, case)

    for anchor in prop.anchors(spec=spec):  # the seed's size, T=250 D=32 U=100, as `check` runs it too
        check = example(anchor)(check)
    check()


@pytest.mark.keras
@pytest.mark.parametrize("layer, name", WRAPPED, ids=[f"Bidirectional_{layer}-{name}" for layer, name in WRAPPED])
def test_bidirectional_property(layer, name, contexts):
    prop, spec, ctx = PROPERTIES[name], RECURRENT[layer], contexts[layer]
    candidate = functools.partial(rnn_ref.bidirectional, spec.reference)

    @settings(max_examples=examples(name))
    @given(prop.strategy_for(spec=spec))
    def check(drawn):
        shown = case_of(drawn)
        note(f"{name}: {shown.describe()}; merge_mode={drawn[1]!r}\nreproduce with:\n{shown.snippet()}")
        ctx.property = f"{name} ({layer})"
        prop.check(ctx, candidate, drawn)

    check()


def test_every_layer_has_its_properties():
    for layer in RECURRENT:
        applies = {name for name, prop in PROPERTIES.items() if layer in prop.layers}
        assert {"matches_keras", "mask_matches_keras", "stateful_chunks_equal_one_sequence",
                "unbatched_equals_batch_of_one", "every_activation_matches_keras"} <= applies, layer


@pytest.mark.keras
def test_an_overflow_inside_a_step_is_not_judged_but_the_rest_is(contexts):
    """An LSTM with exponential activation and hard_tanh gates: exp(c) overflows float32
    inside a step while a gate is exactly 0 (inf * 0 = NaN), where the float64 truth is 0.
    Those elements cannot be judged; the others still are."""
    import numpy as np

    import rnn_ref
    from rnn_ref.harness.cases import make_case
    from rnn_ref.harness.context import PropertyFailure

    base = make_case(B=2, T=262, D=3, U=10, dtype="float32", seed=56, gain=1.0, return_sequences=True,
                     layer="LSTM", recurrent_activation="hard_tanh")
    case = base._replace(recurrent_kernel=base.recurrent_kernel * 0.5, gain=0.5, activation="exponential")
    with np.errstate(all="ignore"):  # the overflow is the point
        out = rnn_ref.lstm(**case.kwargs())
        truth = rnn_ref.lstm(**case.astype("float64").kwargs())
    assert (np.isnan(out) & np.isfinite(truth)).any()  # the case does overflow inside a step
    ctx = contexts["LSTM"]
    ctx.expect(rnn_ref.lstm, case)  # the reference passes

    def first_step_off(*args, **kw):
        y = rnn_ref.lstm(*args, **kw)  # (B, T, U)
        y[:, 0] += np.float32(1e-3)  # before any overflow, where the case is well conditioned
        return y

    unrecorded = Context(spec=RECURRENT["LSTM"])  # a failure meant to happen stays out of the tolerance table
    with pytest.raises(PropertyFailure):
        unrecorded.expect(first_step_off, case)


#: The gradient properties run a third of the profile's examples (5 in ci): each example
#: judges every gradient with three to nine perturbed float64 backward passes for its
#: budget, every option combination is also run deterministically by tests/test_vjp*.py,
#: and check --gradients runs the full count on a user's function.
GRADIENT_EXAMPLES = max(1, settings.default.max_examples // 3)


@pytest.mark.keras
@pytest.mark.parametrize("layer, name", GRADIENTS, ids=[f"{layer}-{name}" for layer, name in GRADIENTS])
def test_gradient_property(layer, name, contexts):
    prop, spec, ctx = PROPERTIES[name], RECURRENT[layer], contexts[layer]
    candidate = reference_backward(spec.reference)

    @settings(max_examples=examples(name, of=GRADIENT_EXAMPLES))
    @given(prop.strategy_for(spec=spec))
    def check(case):
        shown = case_of(case)
        note(f"{name}: {shown.describe()}\nreproduce with:\n{shown.snippet()}")
        ctx.property = name if layer == "SimpleRNN" else f"{name} ({layer})"
        prop.check(ctx, candidate, case)

    for anchor in prop.anchors(spec=spec):
        check = example(anchor)(check)
    check()
