"""The gate-equation and Bidirectional properties: they hold for rnn_ref's references
and catch plausible bugs with a small case.

tests/test_properties.py applies both properties to the references with the full
example count; here they run through ``run_property`` (what ``python -m rnn_ref
check`` runs) with a few examples, then on mutants: an LSTM with its input and
forget gates swapped and a GRU that applies reset_after=True's reset gate before
the recurrent product (rnn_ref.implementations.mutants), and, for Bidirectional, layer functions
wrapped here whose go_backwards or zero_output_for_mask is wrong.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnn_ref.implementations import mutants
from rnn_ref.harness.cases import FULL, MASK_PATTERNS, make_case
from rnn_ref.harness.context import Context
from rnn_ref.harness.properties import PROPERTIES, Unsupported, _gate_step
from rnn_ref.harness.runner import run_property
from rnn_ref.models.registry import RECURRENT

from model_judging import judge_call

GATES = "single_step_equals_gate_equations"
BIDIRECTIONAL = "bidirectional_matches_keras"


@pytest.fixture(scope="module")
def contexts():
    return {layer: Context(spec=spec) for layer, spec in RECURRENT.items()}


def _sizes(result) -> dict:
    """B, T, D, U of a result's minimal case."""
    return {k: int(v) for k, v in (kv.split("=") for kv in result.case.split(";")[0].split()[:4])}


# -- what the properties apply to (no Keras) ---------------------------------------------

def test_the_properties_apply_to_their_layers():
    assert PROPERTIES[GATES].layers == ("LSTM", "GRU")
    assert set(PROPERTIES[BIDIRECTIONAL].layers) == set(RECURRENT)
    with pytest.raises(Unsupported, match="does not apply"):
        PROPERTIES[GATES].strategy_for(spec=RECURRENT["SimpleRNN"])


def test_bidirectional_needs_go_backwards():
    support = FULL._replace(go_backwards=(False,))
    result = run_property(BIDIRECTIONAL, RECURRENT["LSTM"].reference, Context(spec=RECURRENT["LSTM"]),
                          support=support, max_examples=2)
    assert result.status == "unsupported" and "go_backwards=True" in result.message


# -- the written-out equations are Keras's ------------------------------------------------

@pytest.mark.keras
@pytest.mark.parametrize("layer, extras", [("LSTM", {}), ("GRU", {"reset_after": True}),
                                           ("GRU", {"reset_after": False})])
@pytest.mark.parametrize("initial_state", [False, True])
@pytest.mark.parametrize("use_bias", [True, False])
def test_gate_equations_equal_keras_in_float64(layer, extras, initial_state, use_bias, contexts):
    case = make_case(B=3, T=1, D=4, U=5, dtype="float64", seed=7, layer=layer, initial_state=initial_state,
                     use_bias=use_bias, **extras)
    keras = contexts[layer].oracle(**case.kwargs())
    arrays = ("inputs", "kernel", "recurrent_kernel", "bias", "initial_state")

    def gate_step(**call):  # the written-out equations as a function of the case's arrays
        state = call.pop("initial_state")
        return _gate_step(case._replace(**call, initial_state=tuple(state) if isinstance(state, list) else state))

    # float64: the equations' result is the truth, so this is Keras against it within its
    # conditioning (the harness's budget, rnn_ref.harness.judging)
    kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in case._asdict().items() if k in arrays}
    judge_call("gate equations", gate_step, kwargs, keras[:, 0] if keras.ndim == 3 else keras, case.dtype,
               m=case.shape["D"] + case.shape["U"] + 1).check()


@pytest.mark.keras
@pytest.mark.parametrize("layer, extras", [("LSTM", {}), ("GRU", {"reset_after": True})])
def test_gate_equations_with_two_gate_blocks_swapped_are_rejected(layer, extras, contexts):
    """The judgement above rejects equations that read the first two gate blocks in the
    other order (i, f swapped; z, r swapped): PyTorch's GRU order, a classic porting bug."""
    case = make_case(B=3, T=1, D=4, U=5, dtype="float64", seed=7, layer=layer, initial_state=True, **extras)
    keras = contexts[layer].oracle(**case.kwargs())
    U = case.shape["U"]
    order = np.r_[U:2 * U, 0:U, 2 * U:case.kernel.shape[1]]

    def swapped(inputs, kernel, recurrent_kernel, bias):
        b = None if bias is None else bias[..., order]
        return _gate_step(case._replace(inputs=inputs, kernel=kernel[:, order],
                                        recurrent_kernel=recurrent_kernel[:, order], bias=b))

    judgement = judge_call("swapped gate blocks", swapped, dict(inputs=case.inputs, kernel=case.kernel,
                           recurrent_kernel=case.recurrent_kernel, bias=case.bias), keras[:, 0] if keras.ndim == 3
                           else keras, case.dtype, m=case.shape["D"] + U + 1)
    assert not judgement.ok and judgement.ratio > 100, judgement.ratio


# -- the references pass ------------------------------------------------------------------

@pytest.mark.keras
@pytest.mark.parametrize("layer, name", [("LSTM", GATES), ("GRU", GATES), ("SimpleRNN", BIDIRECTIONAL),
                                         ("LSTM", BIDIRECTIONAL), ("GRU", BIDIRECTIONAL)])
def test_the_reference_passes(layer, name, contexts):
    result = run_property(name, RECURRENT[layer].reference, contexts[layer], max_examples=6, seed=0)
    assert result.status == "pass", result.message
    assert result.checked == result.examples >= 6


# -- the mutants fail -----------------------------------------------------------------------

@pytest.mark.keras
@pytest.mark.parametrize("layer, mutant", [("LSTM", "lstm_input_forget_swapped"),
                                           ("GRU", "gru_reset_after_applied_before_product")])
def test_gate_mutant_fails_with_a_small_case(layer, mutant, contexts):
    result = run_property(GATES, mutants.MUTANTS[mutant], contexts[layer], max_examples=25, seed=0)
    assert result.status == "FAIL", f"{mutant} passed {GATES} on {result.examples} examples"
    s = _sizes(result)
    assert s["T"] == 1 and s["B"] <= 2 and s["U"] <= 2 and s["D"] <= 2, result.case
    if mutant.startswith("gru"):
        assert "reset_after=True" in result.case
    assert result.reproduction.startswith("from rnn_ref.harness.cases import make_case")


def backwards_in_input_order(layer):
    """``layer`` whose go_backwards returns its sequence in input order (ONNX's reverse
    direction), not in processing order as Keras does; inside Bidirectional the
    backward outputs then come out reversed."""
    def f(*args, **kw):
        out = layer(*args, **kw)
        if not (kw.get("go_backwards") and kw.get("return_sequences")):
            return out
        flip = lambda o: np.ascontiguousarray(o[..., ::-1, :])  # noqa: E731
        return (flip(out[0]), *out[1:]) if isinstance(out, tuple) else flip(out)
    return f


def ignores_zero_output_for_mask(layer):
    """``layer`` that accepts zero_output_for_mask and ignores it (padded steps repeat
    the previous output, where Bidirectional's inner layers output zeros)."""
    def f(*args, **kw):
        return layer(*args, **{**kw, "zero_output_for_mask": False})
    return f


def declines_zero_output_for_mask(layer):
    """``layer`` that refuses zero_output_for_mask=True: checked without masks where it would need it."""
    def f(*args, **kw):
        if kw.get("zero_output_for_mask"):
            raise NotImplementedError("zero_output_for_mask=True")
        return layer(*args, **kw)
    return f


@pytest.mark.keras
@pytest.mark.parametrize("layer", list(RECURRENT))
def test_bidirectional_catches_backward_outputs_in_input_order(layer, contexts):
    candidate = backwards_in_input_order(RECURRENT[layer].reference)
    result = run_property(BIDIRECTIONAL, candidate, contexts[layer], max_examples=25, seed=0)
    assert result.status == "FAIL", f"passed on {result.examples} examples"
    s = _sizes(result)
    assert s["T"] <= 3 and s["B"] <= 2 and s["U"] <= 2 and s["D"] == 3, result.case  # D is 3 or 5
    assert "return_sequences=True" in result.case and "backward layer (go_backwards=True)" in result.message
    assert result.drawn[1] == "concat"  # shrunk to Keras's default merge mode
    # The failing call ran the backward weights: no compare() line that would run the forward ones
    assert "compare(candidate" not in result.reproduction
    assert f"PROPERTIES[{BIDIRECTIONAL!r}].check(" in result.reproduction


@pytest.mark.keras
def test_bidirectional_catches_a_layer_ignoring_zero_output_for_mask(contexts):
    candidate = ignores_zero_output_for_mask(RECURRENT["GRU"].reference)
    where = FULL._replace(mask_pattern=MASK_PATTERNS, return_sequences=(True,))  # only where it matters
    result = run_property(BIDIRECTIONAL, candidate, contexts["GRU"], support=where, max_examples=25, seed=0)
    assert result.status == "FAIL", f"passed on {result.examples} examples"
    assert "mask=" in result.case and "return_sequences=True" in result.case, result.case
    assert _sizes(result)["T"] <= 3, result.case


@pytest.mark.keras
def test_bidirectional_draws_no_mask_with_sequences_for_a_layer_without_zero_output_for_mask(contexts):
    support = FULL._replace(zero_output_for_mask=(False,))
    seen = []
    candidate = declines_zero_output_for_mask(RECURRENT["LSTM"].reference)

    def recording(*args, **kw):
        seen.append((kw.get("mask") is not None, kw["return_sequences"]))
        return candidate(*args, **kw)

    result = run_property(BIDIRECTIONAL, recording, contexts["LSTM"], support=support, max_examples=25, seed=0)
    assert result.status == "pass" and result.declined == 0, result.message
    assert (True, False) in seen and (False, True) in seen  # masks still drawn, sequences too
    assert (True, True) not in seen  # never together
