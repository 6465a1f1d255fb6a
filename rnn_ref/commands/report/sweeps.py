"""What the report runs: the property sweep of every layer (SimpleRNN on its
correct implementations, LSTM and GRU on their reference), one Context and one
KerasOracle per layer and implementation. The dedicated sweeps are in
``dedicated``."""

from __future__ import annotations

import functools
import re
import time
import zlib

import numpy as np

from rnn_ref.harness.cases import BOUNDED, Case, make_case
from rnn_ref.harness.properties import PROPERTIES, case_of
from rnn_ref.models.registry import RECURRENT, SIMPLE_RNN
from rnn_ref.harness.tally import ToleranceTable

#: Widened recurrent gain of the property sweep (bounded activations only), every layer.
WIDE_GAIN = (0.05, 3.0)

#: Default sweep sizes; ``--quick`` uses the second value. Per-property
#: weights scale ``max_examples`` for properties that make many Keras calls
#: per example (every_activation traces one Keras layer per activation).
DEFAULT_EXAMPLES, QUICK_EXAMPLES = 20, 1
WEIGHTS = {"every_activation_matches_keras": 0.3, "batch_rows_are_independent": 0.6, "chaotic_weights": 2.0,
           # the gradient properties, on rnn_ref's backward pass: every_activation_gradients
           # traces one Keras layer per activation; the centred differences (float64, no
           # Keras, no budget: nothing for the FACTOR tally) take 2 forward passes per element
           "every_activation_gradients_match_keras": 0.3, "gradient_batch_rows_are_independent": 0.6,
           "gradients_match_finite_differences": 0.25, "chaotic_gradients": 1.4}

#: Properties whose gains the property sweep does not widen: centred differences
#: need the small, contracting cases their property draws (their truncation error grows with the third derivative).
OWN_GAINS = ("gradients_match_finite_differences",)

#: Activations whose recurrence can turn chaotic. The sigmoid family's slope is
#: at most 1/2 (1/4 for sigmoid): at gain 3, T = 300 their SimpleRNN
#: conditioning stayed at 2e-7 to 3e-6 (float32), a contracting recurrence.
CHAOTIC_ACTIVATIONS = ("tanh", "hard_tanh", "softsign", "relu6")

#: Per layer, where its tanh recurrence (sigmoid gates) turns chaotic, so that
#: its chaotic sweeps are chaotic: ``chaotic`` is the gain of the length sweep's
#: chaotic regime, ``radius`` the top of the spectral radius sweep's grid and
#: ``chaotic_weights`` the gains that report-only property draws. Measured by
#: the radius sweeps (B=4, D=8, U=32, T=200, 3 seeds): lambda_1 crosses 0 near
#: gain 1.7 for SimpleRNN, 3.3 to 3.8 for GRU and 3.6 to 4.3 for LSTM; at the
#: ``chaotic`` gains the length sweeps measure +0.22, +0.12 and +0.23 per step.
#: The property sweep's widened gains (WIDE_GAIN) stay the same for every
#: layer, so there an LSTM is not chaotic and a GRU barely.
CHAOS = {
    "SimpleRNN": {"chaotic": 3.0, "radius": 3.5, "chaotic_weights": (0.5, 3.0)},
    "GRU": {"chaotic": 7.0, "radius": 8.0, "chaotic_weights": (1.0, 7.0)},
    "LSTM": {"chaotic": 10.0, "radius": 12.0, "chaotic_weights": (2.0, 10.0)},
}



# -- layers, their implementations and property labels ------------------------------------

def label(name: str, layer: str) -> str:
    """The row label of property ``name`` on ``layer``: the name for SimpleRNN,
    ``"name (LSTM)"`` otherwise (as tests/test_properties.py labels them)."""
    return name if layer == SIMPLE_RNN.name else f"{name} ({layer})"


def split_label(text: str) -> tuple[str, str]:
    """(property name, layer) of a row label written by ``label``."""
    m = re.fullmatch(r"(.+) \((\w+)\)", text)
    return (m[1], m[2]) if m and m[2] in RECURRENT else (text, SIMPLE_RNN.name)


def catalogue(layer: str = SIMPLE_RNN.name) -> dict:
    """Everything the property sweep runs on ``layer``: the catalogue's
    properties, plus ``chaotic_weights``, a report-only sweep of matches_keras
    on long sequences with activations that can turn chaotic, at the layer's
    chaotic gains (CHAOS), where most cases are chaotic."""
    from hypothesis import strategies as st

    from rnn_ref.harness.cases import MASK_PATTERNS
    from rnn_ref.harness.properties import Property

    lo, hi = CHAOS[layer]["chaotic_weights"]
    chaotic = Property(
        "chaotic_weights",
        f"matches_keras on long sequences (T 60-300), activations that can turn chaotic, gain {lo:g}-{hi:g} "
        "(report only)",
        PROPERTIES["matches_keras"].check,
        pins=dict(activation=CHAOTIC_ACTIVATIONS, mask_pattern=("none",) + MASK_PATTERNS),
        shapes=dict(gain=st.floats(lo, hi), T=st.integers(60, 300)),
        anchor=None,
    )
    gradients = Property(
        "chaotic_gradients",
        f"gradients_match_keras on long sequences (T 60-300), activations that can turn chaotic, gain {lo:g}-{hi:g} "
        "(report only)",
        PROPERTIES["gradients_match_keras"].check,
        pins=dict(activation=CHAOTIC_ACTIVATIONS, mask_pattern=("none",) + MASK_PATTERNS, return_state=(False,)),
        shapes=dict(gain=st.floats(lo, hi), T=st.integers(60, 300)),
        anchor=None, takes="gradients",
    )
    return {**PROPERTIES, chaotic.name: chaotic, gradients.name: gradients}


def implementations(layer: str = SIMPLE_RNN.name) -> dict:
    """The implementations the report compares on ``layer``: for SimpleRNN,
    rnn_ref and the correct variants; for LSTM and GRU, their reference."""
    if layer == SIMPLE_RNN.name:
        from rnn_ref import simple_rnn
        from rnn_ref.implementations.variants import CORRECT

        return {"rnn_ref": simple_rnn, **CORRECT}
    return {"rnn_ref": RECURRENT[layer].reference}


def candidates(prop, layer: str, impls: dict) -> dict:
    """What property ``prop`` runs on ``layer``: the layer's implementations
    ``impls`` for a property of a layer function, and for a property of a
    Bidirectional function (``Property.takes == "bidirectional"``)
    ``rnn_ref.bidirectional`` around the layer's reference, under the name of
    the first implementation (it wraps only rnn_ref's own layer functions); for a
    property of a backward pass (``takes == "gradients"``) rnn_ref's own,
    ``reference_backward`` of the layer's reference, under the same name."""
    if getattr(prop, "takes", "layer") == "gradients":
        from rnn_ref.harness.backprop import reference_backward

        return {next(iter(impls)): reference_backward(RECURRENT[layer].reference)}
    if getattr(prop, "takes", "layer") == "bidirectional":
        from rnn_ref.layers.bidirectional import bidirectional

        return {next(iter(impls)): functools.partial(bidirectional, RECURRENT[layer].reference)}
    return impls


def applies(name: str, layer: str) -> bool:
    """Whether property ``name`` of the report's catalogue runs on ``layer`` (``Property.layers``)."""
    prop = catalogue(layer).get(name)
    return prop is not None and layer in prop.layers


def is_gradient(name: str) -> bool:
    """Whether property ``name`` (or a row label of it) judges a backward pass (``takes == "gradients"``)."""
    prop = catalogue().get(split_label(name)[0])
    return prop is not None and getattr(prop, "takes", "layer") == "gradients"


def examples_of(name: str, max_examples: int) -> int:
    """Cases property ``name`` draws a layer: ``max_examples`` times its weight, at least 1."""
    return max(1, round(max_examples * WEIGHTS.get(name, 1.0)))


def labelled_catalogue(names, layers) -> dict:
    """Row label -> Property for every property of ``names`` that applies to
    each of ``layers``, layer by layer: the order and docs of the report's tables."""
    return {label(n, layer): catalogue(layer)[n] for layer in layers for n in names if applies(n, layer)}


# -- the property sweep ------------------------------------------------------------

def regain(drawn, gain: float):
    """``drawn`` (what a property's strategy drew) with its case rebuilt at
    recurrent gain ``gain``, when the activation is bounded; unchanged otherwise.

    The case is rebuilt by ``make_case`` from its own description, so the
    reproduction snippet of a failure rebuilds it exactly.
    """
    case = case_of(drawn)
    if case.activation not in BOUNDED:
        return drawn
    new = make_case(**case.params(gain=gain))
    if not (np.array_equal(new.inputs, case.inputs) and _same(new.mask, case.mask)):
        # Not a make_case case (a property built its own arrays): scale the kernel.
        new = case._replace(recurrent_kernel=(case.recurrent_kernel * (gain / case.gain)).astype(case.dtype),
                            gain=gain)
    if isinstance(drawn, Case):
        return new
    return (new, *drawn[1:])


def _same(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))


def widened(strategy, gain=None):
    """``strategy`` with the recurrent gain redrawn from ``gain`` (default
    floats in WIDE_GAIN) for bounded activations. The property's own
    strategy is not changed."""
    from hypothesis import strategies as st

    gain = gain if gain is not None else st.floats(*WIDE_GAIN)

    @st.composite
    def draw(draw_):
        drawn = draw_(strategy)
        return regain(drawn, draw_(gain, label="widened gain"))

    return draw()


def planned(names, layers, max_examples: int) -> int:
    """The number of cases the property sweep draws."""
    return sum(examples_of(n, max_examples) for layer in layers for n in names if applies(n, layer))


def sweep_properties(names=None, *, layers=(SIMPLE_RNN.name,), max_examples=DEFAULT_EXAMPLES, seed=0, table=None,
                     factors=None, wide=True, wide_gain=WIDE_GAIN, impls=None, on_example=None,
                     on_property=None) -> ToleranceTable:
    """Run every property (or ``names``) of each layer of ``layers`` on the
    layer's implementations (``impls`` for SimpleRNN if given; see
    ``candidates`` for the properties of a Bidirectional function), on the same
    drawn cases, with one KerasOracle per layer and one Context per layer and
    implementation, and return the table of their verdicts (row labels from ``label``). A
    failure is counted and kept (at most KEEP_FAILURES a cell), and the sweep
    goes on. ``factors`` (a ``factor.FactorTally``) also collects the needed
    FACTOR of every verdict, and Keras's own."""
    from hypothesis import strategies as st

    from rnn_ref.harness.oracle import KerasOracle
    from rnn_ref.commands.report.factor import FactorContext, FactorTally

    names = list(names or catalogue())
    table = table or ToleranceTable(primary="rnn_ref", catalogue=labelled_catalogue(names, layers))
    factors = factors if factors is not None else FactorTally()
    gain = st.floats(*wide_gain)
    for layer in layers:
        spec = RECURRENT[layer]
        layer_impls = impls if impls is not None and layer == SIMPLE_RNN.name else implementations(layer)
        oracle = KerasOracle(spec)
        primary = next(iter(layer_impls))
        contexts = {n: FactorContext(oracle, record=factors.recorder(table, layer, n), spec=spec,
                                     on_keras=factors.keras_recorder(table, layer) if n == primary else None)
                    for n in layer_impls}
        props = catalogue(layer)
        for name in names:
            if not applies(name, layer):
                continue
            row = label(name, layer)
            n = examples_of(name, max_examples)
            start = time.perf_counter()
            strategy = props[name].strategy_for(spec=spec)
            if wide and name in PROPERTIES and name not in OWN_GAINS:  # chaotic_* draw their own gains
                strategy = widened(strategy, gain)
            done = _sweep_one(props[name], row, strategy, n, property_seed(seed, row), table, contexts,
                              candidates(props[name], layer, layer_impls), on_example)
            if on_property:
                on_property(row, done, n, time.perf_counter() - start)
    return table


def property_seed(seed: int, name: str) -> int:
    """A seed per property row: with one seed for all, hypothesis draws the same
    first cases for every property (same shapes, gains and dtype)."""
    return seed * 100003 + zlib.crc32(name.encode()) % 100003


def _sweep_one(prop, row, strategy, n, seed, table, contexts, impls, on_example) -> int:
    """Run property ``prop`` (row label ``row``) on ``n`` cases drawn from
    ``strategy``; the number of cases run."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    done = [0]

    @hypothesis_seed(seed)
    @settings(max_examples=n, deadline=None, database=None, derandomize=False,
              phases=[Phase.explicit, Phase.generate], print_blob=False,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(drawn):
        case = case_of(drawn)
        dtype = case.dtype.name
        table.count_example(row, dtype)
        table.current_case = case.describe()
        for impl_name, f in impls.items():
            ctx = contexts[impl_name]
            ctx.property = row
            try:
                with np.errstate(all="ignore"):
                    prop.check(ctx, f, drawn)
            except NotImplementedError:
                pass
            except Exception as e:  # noqa: BLE001  (a failure is data here)
                msg = str(e) if isinstance(e, AssertionError) else f"{type(e).__name__}: {e}"
                table.add_failure(row, dtype, impl_name, table.current_case, msg)
        done[0] += 1
        if on_example:
            on_example(row)

    run()
    return done[0]
