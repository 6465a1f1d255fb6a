"""``check --gradients``: backward passes checked property by property, bugs caught small.

The gradient properties (rnn_ref.harness.gradient_properties) run on rnn_ref's
own backward pass in tests/test_properties.py; here they run on functions
written otherwise: the textbook BPTT of examples/check_bptt_textbook.py (one
sequence, per-step cotangents, a dict or a tuple), keras- and torch-layout
backward passes of the gated layers, and mutants with one bug each, which
must fail the property that concerns them with a small case.
"""

import textwrap
from pathlib import Path

import numpy as np
import pytest

from rnn_ref.implementations import mutants
from rnn_ref.harness.backward_candidate import AdaptedGradients
from rnn_ref.harness.candidate import probe
from rnn_ref.harness.context import CandidateError, Context
from rnn_ref.harness.properties import properties_for
from rnn_ref.harness.runner import run_property
from rnn_ref.models.registry import RECURRENT

from check_helpers import result_line, run_check

pytestmark = pytest.mark.keras

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "check_bptt_textbook.py"
TEXTBOOK = ("--gradients", "--layout", "textbook")

#: (bug, property it must fail, layers).
EXPECTED = [
    ("grad_weights_averaged_over_batch", "gradient_batch_rows_are_independent", ("simple_rnn", "lstm", "gru")),
    ("grad_last_output_at_first_step", "last_output_gradient_is_sequence_gradient_at_last_step",
     ("simple_rnn", "lstm", "gru")),
    ("grad_padded_inputs_get_gradient", "masked_steps_add_nothing_to_gradients", ("simple_rnn", "lstm", "gru")),
    ("grad_one_sequence_ignores_mask", "unbatched_gradients_equal_batch_of_one", ("simple_rnn", "gru")),
    ("grad_hard_sigmoid_as_sigmoid", "every_activation_gradients_match_keras", ("simple_rnn", "lstm")),
    ("grad_initial_state_not_carried", "chunk_initial_state_gradient_flows_to_previous_chunk", ("simple_rnn", "gru")),
    ("grad_weights_averaged_over_batch", "gradients_match_keras", ("simple_rnn",)),
]


@pytest.fixture(scope="module")
def contexts():
    return {spec.cli_name: Context(spec=spec) for spec in RECURRENT.values()}


def _sizes(case: str) -> dict:
    return {k: int(v) for k, v in (kv.split("=") for kv in case.split(";")[0].split()[:4])}


@pytest.mark.parametrize("bug, prop, layer", [(b, p, lay) for b, p, layers in EXPECTED for lay in layers])
def test_backward_mutant_fails_its_property_with_a_small_case(bug, prop, layer, contexts):
    ctx = contexts[layer]
    fn = mutants.GRADIENT_MUTANTS[bug][ctx.spec.reference.__name__]
    candidate = AdaptedGradients(fn, "keras", spec=ctx.spec)
    found = probe(candidate)
    assert found.problem is None, found.problem
    result = run_property(prop, candidate, ctx, support=found.support, max_examples=30, seed=1)
    assert result.status == "FAIL", f"{fn.__name__} passed {prop} on {result.checked} examples"
    sizes = _sizes(result.case)
    assert sizes["T"] <= 4 and sizes["B"] <= 2, f"counterexample not minimal: {result.case}"
    if prop != "every_activation_gradients_match_keras":  # it pins D = 7, U = 10
        assert sizes["U"] <= 3 and sizes["D"] <= 3, f"counterexample not minimal: {result.case}"
    assert "load_candidate" not in result.reproduction or "gradients=True" in result.reproduction


def test_rnn_ref_backward_passes_the_catalogue_through_the_adapter(contexts):
    """rnn_ref.vjp, handed over as a keras-layout function, passes with every feature supported."""
    ctx = contexts["gru"]

    def gru_backward(inputs, kernel, recurrent_kernel, bias=None, d_output=None, **options):
        return mutants._reference_grads(mutants.gru, inputs, kernel, recurrent_kernel, bias, d_output, **options)

    candidate = AdaptedGradients(gru_backward, "keras", spec=ctx.spec)
    found = probe(candidate)
    assert found.problem is None and not found.declined, found.declined
    for name in properties_for("GRU", "gradients"):
        if name == "every_activation_gradients_match_keras":
            continue  # 29 activations: run on rnn_ref's backward pass in tests/test_properties.py
        r = run_property(name, candidate, ctx, support=found.support, max_examples=2, seed=0, anchors=False)
        assert r.status == "pass" and r.checked >= 2, (name, r.status, r.message)


# -- the textbook examples through the command line ---------------------------------------

def test_textbook_bptt_passes(capsys):
    status, out, err = run_check(capsys, f"{EXAMPLE}:rnn_backward", *TEXTBOOK, "--max-examples", "10")
    assert status == 0, out + err
    assert "one sequence at a time" in out and "reads dh as one cotangent per step" in out
    for prop in ("gradients_match_keras", "gradients_match_finite_differences", "gradient_batch_rows_are_independent",
                 "last_output_gradient_is_sequence_gradient_at_last_step", "unbatched_gradients_equal_batch_of_one"):
        assert result_line(out, prop).startswith("pass"), out
    assert result_line(out, "masked_steps_add_nothing_to_gradients").startswith("unsupported")


@pytest.mark.parametrize("bug, prop, most_steps", [
    ("derivative_at_pre_activation", "gradients_match_finite_differences", 1),
    ("derivative_at_pre_activation", "gradients_match_keras", 1),
    ("gradient_not_carried", "gradients_match_keras", 2),  # one step has nothing to carry
    ("gradient_not_carried", "gradients_match_finite_differences", 2),
])
def test_textbook_bptt_bugs_fail_with_a_minimal_case(capsys, bug, prop, most_steps):
    status, out, err = run_check(capsys, f"{EXAMPLE}:{bug}", *TEXTBOOK, "--property", prop)
    assert status == 1, out + err
    assert result_line(out, prop).startswith("FAIL")
    case = next(ln for ln in out.splitlines() if ln.startswith("minimal case:"))
    sizes = _sizes(case.removeprefix("minimal case: "))
    assert sizes == {"B": 1, "T": most_steps, "D": 1, "U": 1}, case


def test_clipping_left_in_is_caught_where_gradients_exceed_five(capsys):
    status, out, err = run_check(capsys, f"{EXAMPLE}:clipped_like_min_char_rnn", *TEXTBOOK,
                                 "--property", "gradients_match_keras")
    assert status == 1, out + err
    assert "exceed the budget" in out
    # right wherever every gradient is under 5: its small cases pass
    status, out, _ = run_check(capsys, f"{EXAMPLE}:clipped_like_min_char_rnn", *TEXTBOOK,
                               "--property", "gradients_match_finite_differences")
    assert status == 0, out


# -- layouts and return conventions --------------------------------------------------------

TORCH_GRU = '''
import numpy as np
import rnn_ref

def _keras_weights(w_ih, w_hh, b_ih, b_hh, order=(1, 0, 2)):
    # PyTorch's gates r z n back to Keras's z r h, transposed
    k = lambda a: np.concatenate([np.split(a, 3)[order.index(j)] for j in range(3)])
    return k(w_ih).T, k(w_hh).T, np.stack([k(b_ih), k(b_hh)])

def gru_backward(x, w_ih, w_hh, b_ih, b_hh, d_out{extra}):
    kernel, recurrent, bias = _keras_weights(w_ih, w_hh, b_ih, b_hh)
    _, back = rnn_ref.vjp(rnn_ref.gru, x, kernel, recurrent, bias, return_sequences=True)
    g = back(d_out)
    t = lambda a: np.concatenate([np.split(a, 3, axis=-1)[j] for j in (1, 0, 2)], axis=-1)
    grads = {{"dx": g.inputs, "dw_ih": t(g.kernel).T, "dw_hh": t(g.recurrent_kernel).T,
              "db_ih": t(g.bias[0]), "db_hh": {hh}}}
    return grads
'''


@pytest.mark.parametrize("hh, passes", [("t(g.bias[1])", True), ("np.zeros_like(b_hh)", False)])
def test_torch_layout_gru_backward(tmp_path, capsys, hh, passes):
    path = tmp_path / "torch_gru.py"
    path.write_text(TORCH_GRU.format(extra="", hh=hh))
    status, out, err = run_check(capsys, f"{path}:gru_backward", "--gradients", "--layer", "gru", "--layout", "torch",
                                 "--property", "gradients_match_keras", "--max-examples", "8")
    assert status == (0 if passes else 1), out + err
    if not passes:
        assert "d bias" in out


def test_return_conventions_are_read_by_name_and_by_shape():
    spec = RECURRENT["SimpleRNN"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 3)).astype(np.float32)  # T = U = D = 3: shapes alone are ambiguous
    W, U, b = (rng.standard_normal(s).astype(np.float32) for s in ((3, 3), (3, 3), (3,)))
    d = rng.standard_normal((2, 3)).astype(np.float32)
    truth = mutants._reference_grads(mutants.simple_rnn, x, W.T, U.T, b, d)

    def as_textbook(grads):
        return grads["inputs"], grads["kernel"].T, grads["recurrent_kernel"].T, grads["bias"]

    returns = {
        "tuple with dx": lambda *a: as_textbook(truth),
        "tuple with dx and no initial state": lambda *a: (*as_textbook(truth), None),
        "tuple of the weights": lambda *a: as_textbook(truth)[1:],
        "dict of own names": lambda *a: dict(zip(("dx", "dW", "dU", "db"), as_textbook(truth))),
        "dict of Keras names": lambda *a: dict(zip(("inputs", "kernel", "recurrent_kernel", "bias"),
                                                   as_textbook(truth))),
    }
    for label, body in returns.items():
        def fn(x, W, U, b, dy):
            return body()

        got = AdaptedGradients(fn, "textbook", spec=spec)(x, W.T, U.T, b, d_output=d)
        for name in ("kernel", "recurrent_kernel", "bias"):
            np.testing.assert_array_equal(got[name], truth[name], err_msg=f"{label}: {name}")
        assert ("inputs" in got) == (label != "tuple of the weights"), label
        assert "initial_state" not in got, label

    def unknown(x, W, U, b, dy):
        return {"grad_of_something": W}

    with pytest.raises(CandidateError, match="'grad_of_something'.*expected names like dx, dW, dU, db"):
        AdaptedGradients(unknown, "textbook", spec=spec)(x, W.T, U.T, b, d_output=d)


def test_gradients_refused_for_bidirectional(capsys):
    status, _, err = run_check(capsys, f"{EXAMPLE}:rnn_backward", "--gradients", "--layer", "bidirectional")
    assert status == 2 and "Bidirectional one is not supported" in err


def test_source_of_the_textbook_example_documents_its_commands():
    text = EXAMPLE.read_text()
    for name in ("rnn_backward", "derivative_at_pre_activation", "gradient_not_carried", "clipped_like_min_char_rnn"):
        assert f"check examples/check_bptt_textbook.py:{name} --gradients --layout textbook" in textwrap.dedent(text)
