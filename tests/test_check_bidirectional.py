"""``python -m rnn_ref check --layer bidirectional``: a Keras Bidirectional written by hand.

rnn_ref.bidirectional around each layer passes the Bidirectional properties
(tests/test_properties.py); here the checker finds the layer a function
wraps, takes flat and textbook signatures, and fails the classic bugs of
Bidirectional code (rnn_ref/implementations/mutants.py) with small cases.
"""

from __future__ import annotations

import numpy as np
import pytest

import rnn_ref
from check_helpers import run_check
from rnn_ref.harness.candidate import AdaptedBidirectional, probe, wrapped_layer
from rnn_ref.harness.context import Context
from rnn_ref.harness.runner import run_property
from rnn_ref.models.registry import GRU, LSTM, SIMPLE_RNN
from rnn_ref.implementations.mutants import BIDIRECTIONAL_MUTANTS

pytestmark = pytest.mark.keras

HERE = __file__


def bi_lstm(inputs, forward, backward, merge_mode="concat", **options):
    return rnn_ref.bidirectional(rnn_ref.lstm, inputs, forward, backward, merge_mode=merge_mode, **options)


def bi_gru_textbook_flat(x, W_f, U_f, b_f, W_b, U_b, b_b):
    """Flat textbook arrays, no options: transposes back and calls the reference."""
    return rnn_ref.bidirectional(rnn_ref.gru, x, (W_f.T, U_f.T, b_f), (W_b.T, U_b.T, b_b))


def test_the_wrapped_layer_is_found_from_the_weights_the_function_takes():
    assert wrapped_layer(bi_lstm) is LSTM
    assert wrapped_layer(bi_gru_textbook_flat, "textbook") is GRU
    assert wrapped_layer(bi_gru_textbook_flat, "keras") is None  # W_f.T has the wrong shape
    simple = lambda x, f, b, merge_mode="concat": rnn_ref.bidirectional(rnn_ref.simple_rnn, x, f, b)  # noqa: E731
    assert wrapped_layer(simple) is SIMPLE_RNN


def test_probe_reads_merge_modes_and_options():
    found = probe(AdaptedBidirectional(bi_lstm, spec=LSTM))
    assert found.problem is None and found.declined == {}
    assert found.support.merge_mode == ("concat", "sum", "mul", "ave", None)
    found = probe(AdaptedBidirectional(bi_gru_textbook_flat, "textbook", spec=GRU))
    assert found.problem is None
    assert found.support.merge_mode == ("concat",) and found.support.mask_pattern == ("none",)


def test_a_correct_flat_textbook_function_passes(capsys):
    status, out, err = run_check(capsys, f"{HERE}:bi_gru_textbook_flat", "--layer", "bidirectional",
                                 "--layout", "textbook", "--max-examples", "6")
    assert status == 0, out + err
    assert "(Bidirectional(GRU), layout textbook)" in out
    assert "pass        bidirectional_function_matches_keras" in out


#: Each mutant and the property expected to catch it (the mask bugs by the mask property).
CAUGHT_BY = {
    "bidirectional_backward_ignores_mask": "bidirectional_function_masks_match_keras",
    "bidirectional_padded_steps_not_zeroed": "bidirectional_function_masks_match_keras",
    "bidirectional_backward_in_processing_order": "bidirectional_function_matches_keras",
    "bidirectional_initial_states_swapped": "bidirectional_function_matches_keras",
    "bidirectional_ave_is_sum": "bidirectional_function_matches_keras",
}


def test_every_bidirectional_mutant_is_tested():
    assert set(CAUGHT_BY) == set(BIDIRECTIONAL_MUTANTS)


@pytest.mark.parametrize("name", sorted(CAUGHT_BY))
def test_bidirectional_mutant_fails_with_a_small_case(name):
    candidate = AdaptedBidirectional(BIDIRECTIONAL_MUTANTS[name], spec=LSTM)
    found = probe(candidate)
    ctx = Context(spec=LSTM, support=found.support)
    r = run_property(CAUGHT_BY[name], candidate, ctx, support=found.support, max_examples=25, seed=0,
                     shrink_seconds=10)
    assert r.status == "FAIL", (r.status, r.message)
    case = r.drawn[0]
    assert case.shape["T"] <= 3 and case.shape["U"] <= 3 and case.shape["B"] <= 2, r.case


def test_the_cli_finds_the_wrapped_layer_and_fails_a_mutant(capsys):
    status, out, err = run_check(capsys, "rnn_ref.implementations.mutants:bidirectional_backward_ignores_mask",
                                 "--layer", "bidirectional", "--max-examples", "10")
    assert status == 1, out + err
    assert "(Bidirectional(LSTM), layout keras)" in out
    assert "FAIL        bidirectional_function_masks_match_keras" in out
    assert "layer='bidirectional', wrap='lstm'" in out  # the reproduction loads it the same way


def test_wrap_without_bidirectional_is_refused(capsys):
    status, out, err = run_check(capsys, "rnn_ref:lstm", "--layer", "lstm", "--wrap", "gru")
    assert status == 2 and "--wrap goes with --layer bidirectional" in err
