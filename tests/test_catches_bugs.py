"""The catalogue catches plausible bugs, each with a small counterexample.

A property that a wrong implementation also satisfies proves nothing; here
each mutant of rnn_ref.implementations.mutants must fail the properties
that concern it, and the shrunk case must stay small.
"""

import pytest

from rnn_ref.harness.candidate import Adapted, probe
from rnn_ref.harness.context import Context
from rnn_ref.harness.properties import PROPERTIES, properties_for
from rnn_ref.harness.runner import run_property
from rnn_ref.models.registry import RECURRENT
from rnn_ref.implementations import mutants, variants

pytestmark = pytest.mark.keras

EXPECTED = [
    ("scaled_output_1e-4", "matches_keras"),
    ("transposed_recurrent_kernel", "matches_keras"),
    ("transposed_recurrent_kernel", "batch_rows_are_independent"),
    ("missing_activation", "every_activation_matches_keras"),
    ("missing_activation", "single_step_equals_dense"),
    ("ignores_mask", "mask_matches_keras"),
    ("ignores_mask", "masked_step_repeats_previous_output"),
    ("ignores_mask", "zero_output_for_mask_zeros_padded_steps"),
    ("backwards_output_in_input_order", "go_backwards_equals_forward_on_reversed_input"),
    ("ignores_initial_state", "initial_state_matches_keras"),
    ("ignores_initial_state", "stateful_chunks_equal_one_sequence"),
    ("masked_output_is_state", "leading_masked_steps_output_zero_with_initial_state"),
    ("final_state_is_first_step", "return_state_returns_output_and_final_state"),
    ("last_output_one_step_early", "return_sequences_last_step_is_output"),
    ("one_sequence_as_a_batch", "unbatched_equals_batch_of_one"),
    ("bias_as_array", "use_bias_false_matches_keras"),
]

#: (layer, mutant, property): porting bugs of the gated layers.
GATED = [
    ("LSTM", "lstm_gates_ifco_read_as_icfo", "matches_keras"),
    ("LSTM", "lstm_ignores_initial_c", "initial_state_matches_keras"),
    ("LSTM", "lstm_ignores_initial_c", "stateful_chunks_equal_one_sequence"),
    ("LSTM", "lstm_returns_h_as_c", "return_state_returns_output_and_final_state"),
    ("GRU", "gru_pytorch_gate_order", "matches_keras"),
    ("GRU", "gru_input_bias_for_both", "matches_keras"),
]


@pytest.fixture(scope="module")
def contexts():
    return {layer: Context(spec=spec) for layer, spec in RECURRENT.items()}


@pytest.fixture(scope="module")
def ctx(contexts):
    return contexts["SimpleRNN"]


@pytest.mark.parametrize("layer, mutant, prop", [("SimpleRNN", *e) for e in EXPECTED] + GATED)
def test_mutant_fails_with_a_small_case(layer, mutant, prop, contexts):
    ctx = contexts[layer]
    result = run_property(prop, mutants.MUTANTS[mutant], ctx, max_examples=40, seed=1)
    assert result.status == "FAIL", f"{mutant} passed {prop} on {result.examples} examples"
    sizes = dict(kv.split("=") for kv in result.case.split(";")[0].split()[:4])
    # Shrunk to a handful of steps and rows (every_activation_matches_keras pins
    # U = 10 by design, so units are only bounded where the strategy varies them).
    assert int(sizes["T"]) <= 4 and int(sizes["B"]) <= 2, f"counterexample not minimal: {result.case}"
    if prop != "every_activation_matches_keras":
        assert int(sizes["U"]) <= 3, f"counterexample not minimal: {result.case}"
    assert result.reproduction.startswith("from rnn_ref.harness.cases import make_case")


# -- functions in the seeds' style ---------------------------------------------------
#
# Textbook layout, tanh only: one sequence at a time without any keyword
# argument, or a batched loop that declines every option but
# return_sequences. The checker must check them where they work (not
# report "unsupported" and exit 0) and catch each bug with a small case.

@pytest.mark.parametrize("style", ["no_options", "declined_options"])
@pytest.mark.parametrize("bug", list(mutants.SEED_STYLE))
def test_seed_style_bug_fails_with_a_small_case(bug, style, ctx):
    fn = mutants.SEED_STYLE[bug][0 if style == "no_options" else 1]
    candidate = Adapted(fn, "textbook")
    found = probe(candidate)
    assert found.problem is None, found.problem
    result = run_property("matches_keras", candidate, ctx, support=found.support, max_examples=25, seed=0)
    assert result.status == "FAIL", f"{fn.__name__} passed matches_keras on {result.checked} examples"
    sizes = dict(kv.split("=") for kv in result.case.split(";")[0].split()[:4])
    assert int(sizes["T"]) <= 2 and int(sizes["B"]) <= 2 and int(sizes["U"]) <= 2, result.case
    assert "activation='tanh'" in result.case and "bias=None" not in result.case  # what the function handles


@pytest.mark.parametrize("name", list(variants.SEED_STYLE))
def test_seed_style_correct_function_is_checked_and_passes(name, ctx):
    candidate = Adapted(variants.SEED_STYLE[name], "textbook")
    found = probe(candidate)
    assert found.problem is None, found.problem
    assert found.support.activation == ("tanh",) and found.support.use_bias == (True,)
    assert found.support.mask_pattern == ("none",) and found.support.go_backwards == (False,)
    results = {n: run_property(n, candidate, ctx, support=found.support, max_examples=10, seed=0) for n in properties_for("SimpleRNN")}
    assert {r.status for r in results.values()} <= {"pass", "unsupported"}, {n: r.message for n, r in results.items()}
    passed = [n for n, r in results.items() if r.status == "pass"]
    assert {"matches_keras", "batch_rows_are_independent", "single_step_equals_dense"} <= set(passed)
    # each of them ran its drawn examples (and the case at the seed's size where it has one), none declined
    expected = {n: 10 + len(PROPERTIES[n].anchors(found.support)) for n in passed}
    assert {n: (results[n].checked, results[n].declined) for n in passed} == {n: (e, 0) for n, e in expected.items()}
    assert expected["matches_keras"] == 11
    assert results["mask_matches_keras"].status == "unsupported" and results["mask_matches_keras"].checked == 0
