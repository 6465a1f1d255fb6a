"""``rnn_ref.harness.judging``, the judge every test module's comparison with Keras goes
through, on live Keras: it must reject a result wrong by 1% where the case is well
conditioned, and accept a result that carries nothing but float32 rounding where the case
expands rounding errors (an LSTM with exponential gates, the case of
tests/test_lstm_gru.py's ``test_every_activation_name``; a chaotic SimpleRNN), which a
fixed ``ulps * T`` formula rejects.

"A result that carries only float32 rounding" is the float32 reference run on its inputs
and weights moved by one float32 ulp each (np.nextafter, a random direction per element):
a correct computation whose inputs differ by one rounding, as another implementation's
rounding order makes them differ inside each step.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("keras")

import test_lstm_gru as lg  # noqa: E402  (tests/ is on sys.path)
from rnn_ref.harness.judging import as_float64, judge_gradients, judge_outputs  # noqa: E402
from rnn_ref.models.registry import LSTM  # noqa: E402

pytestmark = pytest.mark.keras


def judge_case(case, got=None):
    """The reference on ``case`` against Keras with the judge; ``got`` replaces the
    reference's own float32 result (a flat tuple) when given."""
    a = lg.arrays(case)
    keras_arrays = lg.flat_arrays(lg.keras_result(case, a))
    if got is None:
        got = lg.flat_arrays(lg.reference_result(case, a))
    return judge_outputs(case.layer, lg.reference_call(case), a._asdict(), got, keras_arrays, case.dtype,
                         m=lg.products(case), time_axes=lg.time_axes(case, len(got)), seed=case.seed)


def one_ulp_off(value, rng):
    """Every floating array (also in lists and tuples) moved by one ulp of its dtype, up or down."""
    if isinstance(value, (list, tuple)):
        return type(value)(one_ulp_off(v, rng) for v in value)
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        away = np.where(rng.random(value.shape) < 0.5, -np.inf, np.inf).astype(value.dtype)
        return np.nextafter(value, away)
    return value


def rounded_differently(case):
    """The float32 reference on the case's arrays moved by one ulp each (module docstring)."""
    a = lg.arrays(case)
    moved = {k: one_ulp_off(v, np.random.default_rng(case.seed + 1)) for k, v in a._asdict().items()}
    return lg.reference_call(case)(**moved)


def fixed_formula(case, keras_array):
    """The fixed bound the test modules used before: 2 (D + U + 9) u T max(1, max|Keras|)."""
    return 2 * (case.D + case.U + 9) * 2.0 ** -24 * case.T * max(1.0, float(np.max(np.abs(keras_array))))


WELL_CONDITIONED = lg.fixed_case("lstm", dtype="float32", seed=3, gain=0.5)
#: test_every_activation_name's case that failed a fixed formula on a CPU without AVX-512
EXPONENTIAL_GATES = lg.fixed_case("lstm", dtype="float32", B=2, T=4, D=3, U=2, mask=None,
                                  seed=len("exponential"), recurrent_activation="exponential")
#: gain 3 tanh: rounding errors grow like exp(lambda t) until they fill the tanh range
CHAOTIC = lg.fixed_case("simple_rnn", dtype="float32", B=2, T=80, D=3, U=12, mask=None, gain=3.0, seed=1,
                        initial_state=False, return_state=False, recurrent_activation=None, reset_after=None)


@pytest.mark.parametrize("case", [WELL_CONDITIONED, WELL_CONDITIONED._replace(layer="gru", reset_after=True)],
                         ids=["lstm", "gru"])
def test_one_percent_off_fails(case):
    """The reference passes; the same result 1% off (output and states) must fail, by far."""
    judge_case(case).check()
    wrong = tuple(g * np.float32(1.01) for g in lg.flat_arrays(lg.reference_result(case, lg.arrays(case))))
    judgement = judge_case(case, wrong)
    with pytest.raises(AssertionError, match="exceed the budget"):
        judgement.check()
    assert judgement.ratio > 10, f"a 1% error is only {judgement.ratio:.3g} x the budget"


@pytest.mark.parametrize("case", [EXPONENTIAL_GATES, CHAOTIC], ids=["lstm_exponential_gates", "chaotic_simple_rnn"])
def test_float32_rounding_alone_passes_where_errors_grow(case):
    """One ulp on every input and weight, carried through an expanding recurrence, is
    accepted; the chaotic case's difference exceeds the fixed formula many times over
    (which is why the modules no longer use it)."""
    judge_case(case).check()
    got = rounded_differently(case)
    judgement = judge_case(case, got)
    assert judgement.ok, judgement.summary()
    if case is CHAOTIC:
        truth = lg.reference_call(case)(**as_float64(lg.arrays(case)._asdict()))
        error = float(np.max(np.abs(got[0] - truth[0])))
        assert error > 10 * fixed_formula(case, truth[0]), (
            f"the chaotic case is not chaotic: a one-ulp change moves it by {error:.3g} only")


def test_gradient_one_percent_off_fails():
    """judge_gradients on an LSTM's backward pass (tests/test_vjp_lstm.py's case): the float32
    gradients pass, the same with d kernel 1% off fail."""
    import test_vjp_lstm as vl
    from test_vjp import named

    case = vl.fixed_case(dtype="float32")
    a = vl.arrays(case)

    def gradients(**arrays):
        return named(vl.reference_grads(case, a._replace(**arrays))[1])

    got, keras_grads = gradients(**a._asdict()), named(vl.keras_grads(case, a))
    options = dict(m=LSTM.products(case.D, case.U) + case.B * case.T, time_axes={"inputs": 1}, seed=case.seed)
    judge_gradients("lstm", gradients, a._asdict(), got, keras_grads, case.dtype, **options).check()
    wrong = dict(got, kernel=got["kernel"] * np.float32(1.01))
    judgement = judge_gradients("lstm", gradients, a._asdict(), wrong, keras_grads, case.dtype, **options)
    with pytest.raises(AssertionError, match="d kernel|lstm kernel"):
        judgement.check()
    assert judgement.ratio > 10, f"a 1% error is only {judgement.ratio:.3g} x the budget"
