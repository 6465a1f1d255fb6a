"""The tolerance model: no false alarms on correct implementations, wrong ones
caught, and the rules of ``tolerance.judge`` one by one; plus a smoke test of
``python -m rnn_ref report`` (every layer).

Correct implementations (rnn_ref and the CORRECT variants) round differently
from Keras; with chaotic recurrent weights their errors reach O(1), and the
budget must follow without ever failing them.
"""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnn_ref import simple_rnn
from rnn_ref.commands.main import main as cli
from rnn_ref.harness import tolerance
from rnn_ref.harness.cases import BOUNDED, MASK_PATTERNS, cases, make_case
from rnn_ref.harness.context import Context, PropertyFailure
from rnn_ref.harness.properties import PROPERTIES
from rnn_ref.implementations.mutants import scaled_output
from rnn_ref.harness.tally import needed_factor
from rnn_ref.commands.report.sweeps import implementations, label

IMPLEMENTATIONS = implementations()  # rnn_ref + the correct variants


@pytest.fixture(scope="module")
def ctx():
    return Context()


def _f64(kw):
    return {k: v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
            for k, v in kw.items()}


# -- (a) zero false alarms on correct implementations, chaotic weights ---------------

@pytest.mark.keras
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@given(data=st.data())
def test_correct_implementations_pass_on_chaotic_weights(ctx, dtype, data):
    case = data.draw(cases(
        dtype=st.just(dtype), activation=st.sampled_from(BOUNDED), gain=st.floats(0.05, 3.0),
        T=st.integers(60, 300), mask_pattern=st.sampled_from(("none",) + MASK_PATTERNS)), label="case")
    for name, f in IMPLEMENTATIONS.items():
        ctx.expect(f, case, name)  # raises PropertyFailure on a false alarm


@pytest.mark.keras
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation, gain", [("tanh", 3.0), ("hard_tanh", 2.4), ("relu6", 2.4)])
def test_correct_implementations_pass_where_errors_reach_order_one(ctx, dtype, activation, gain):
    """Long chaotic sequences, where every implementation's error grows to O(1)."""
    case = make_case(B=3, T=300, D=8, U=24, dtype=dtype, seed=7, gain=gain, activation=activation,
                     return_sequences=True, return_state=True)
    results = [ctx.expect(f, case, name) for name, f in IMPLEMENTATIONS.items()]
    out, _ = results[0]
    assert np.max(out.budget) > 1e-3, "the case is not chaotic: the test proves nothing"


# -- (b) wrong implementations are caught on well-conditioned cases --------------------

@pytest.mark.keras
@pytest.mark.parametrize("dtype, scale", [("float32", 1e-4), ("float64", 1e-7)])
@pytest.mark.parametrize("activation, options", [
    ("tanh", {}), ("sigmoid", {"return_sequences": True}), ("softsign", {"mask_pattern": "random"}),
    ("relu", {"initial_state": True}), ("linear", {"go_backwards": True}),
])
def test_scaled_output_is_caught(ctx, dtype, scale, activation, options):
    case = make_case(B=2, T=40, D=5, U=6, dtype=dtype, seed=3, gain=0.5, activation=activation, **options)
    with pytest.raises(PropertyFailure, match="exceed the budget"):
        ctx.expect(scaled_output(scale), case)
    ctx.expect(simple_rnn, case)  # and the unscaled reference passes the same case


# -- (c) the rules of judge --------------------------------------------------------------

def _judge(candidate, keras=None, truth=None, spread=None, dtype="float32", time_axis=None, m=4):
    truth = np.asarray(truth if truth is not None else candidate, dtype=np.float64)
    keras = np.asarray(keras if keras is not None else truth, dtype=dtype)
    spread = np.zeros_like(truth) if spread is None else np.asarray(spread, dtype=np.float64)
    return tolerance.judge("t", np.asarray(candidate, dtype=dtype), keras, truth, spread, dtype,
                           m=m, time_axis=time_axis)


@pytest.mark.parametrize("candidate, truth, ok", [
    ([np.nan], [np.nan], True),
    ([np.inf], [np.inf], True),
    ([-np.inf], [-np.inf], True),
    ([np.inf], [-np.inf], False),
    ([np.nan], [0.5], False),
    ([0.5], [np.nan], False),
    ([np.inf], [0.5], False),
    ([np.nan], [np.inf], False),
])
def test_non_finite_values_agree_only_with_the_same_non_finite_value(candidate, truth, ok):
    with np.errstate(all="ignore"):
        v = _judge(candidate, keras=truth, truth=truth)
    assert v.ok is ok, v.summary()


def test_truth_beyond_the_dtype_range_is_inf_in_that_dtype():
    # 1e39 overflows float32: +inf is the correctly rounded float32 result.
    with np.errstate(all="ignore"):
        assert _judge([np.inf], keras=[np.inf], truth=[1e39]).ok
        assert not _judge([3e38], keras=[np.inf], truth=[1e39]).ok


def test_overflow_near_the_largest_value_is_correct_rounding():
    big = float(np.finfo(np.float32).max)
    truth = [big * (1 - 2.0**-25)]  # finite, but within the budget of float32's largest value
    with np.errstate(all="ignore"):
        assert _judge([np.inf], keras=[np.inf], truth=truth).ok
        assert _judge([np.inf], keras=truth, truth=truth).ok
        assert not _judge([np.inf], keras=[1.0], truth=[1.0]).ok  # far from the range: a real overflow


def test_ulps_are_counted_in_the_dtype_spacing_at_the_truth():
    one = np.float32(1)
    up = np.nextafter(one, np.float32(2))
    assert tolerance.ulps(np.array([up]), np.array([1.0]), np.float32)[0] == 1
    assert tolerance.ulps(np.array([1.0 + 3 * 2.0**-52]), np.array([1.0]), np.float64)[0] == pytest.approx(3)
    assert tolerance.ulps(np.array([np.float32(1.5)]), np.array([1.5]), np.float32)[0] == 0
    v = _judge([float(up)], truth=[1.0], keras=[1.0])
    assert v.max_ulps == 1 and v.max_abs == pytest.approx(2.0**-23)


def test_a_keras_off_by_1e_3_is_reported_as_keras_disagreeing():
    truth = np.array([[0.25, -0.5, 0.75]])
    v = _judge(truth, keras=truth + 1e-3, truth=truth, spread=np.full_like(truth, 1e-7))
    assert not v.ok
    assert v.reason.startswith("Keras disagrees"), v.reason
    assert "a bug in rnn_ref or in Keras" in v.reason
    # the candidate itself is within its budget: Keras's error is in it
    assert v.max_abs == 0 and v.worst["error"] <= v.worst["budget"]


def test_budget_parts_are_recorded_and_add_up():
    T, U = 6, 3
    truth = np.full((1, T, U), 0.5)
    spread = np.full_like(truth, 1e-7)
    spread[0, 2, 1] = 1e-4  # a spike at step 2
    keras = (truth + 2e-7).astype(np.float32)
    cand = (truth + 1e-6).astype(np.float32)
    v = _judge(cand, keras=keras, truth=truth, spread=spread, time_axis=1, m=10)
    assert v.ok, v.summary()
    w = v.worst
    assert set(w) >= {"index", "candidate", "keras", "truth", "error", "budget", "keras_envelope",
                      "conditioning_envelope", "floor"}
    assert w["budget"] == pytest.approx(tolerance.FACTOR * max(w["keras_envelope"], w["conditioning_envelope"])
                                        + w["floor"])
    assert w["floor"] == pytest.approx(tolerance.FLOOR_ULPS * 2.0**-24 * np.sqrt(10))
    assert v.budget.shape == truth.shape
    # the envelope is a running max over time: the spike raises the budget from step 2 on, for every unit
    assert np.all(v.budget[0, :2] < 1e-4) and np.all(v.budget[0, 2:] > tolerance.FACTOR * 1e-4)
    assert needed_factor(w) <= tolerance.FACTOR
    d = v.to_dict()
    assert "budget" not in d and d["worst"] == w


def test_shape_mismatch_fails_with_a_reason():
    v = tolerance.judge("t", np.zeros(3, np.float32), np.zeros(4, np.float32), np.zeros(4), np.zeros(4),
                        "float32", m=2, time_axis=None)
    assert not v.ok and "shape" in v.reason


# -- (d) conditioning grows with the gain ---------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conditioning_grows_with_gain(dtype):
    def spread(gain):
        case = make_case(B=2, T=200, D=8, U=24, dtype=dtype, seed=11, gain=gain, return_sequences=True)
        kw = _f64(case.kwargs())
        return tolerance.conditioning(simple_rnn, kw, dtype, rng=np.random.default_rng(0))

    # Measured (seeds 11-13): gain 0.5 gives 4.8e-7 (float32, 8 u) and 1.0e-15 (float64, 9 u);
    # gain 3 gives 2.0 in both: the perturbed trajectories decorrelate (tanh outputs differ by
    # at most 2), from 1e-5 (float32) and 3e-14 (float64) at step 10.
    calm, chaotic = spread(0.5), spread(3.0)
    u = tolerance.roundoff(dtype)
    assert calm.max() < 100 * u  # a contracting recurrence stays at the roundoff level
    assert chaotic.max() > 0.5  # a chaotic one loses every digit by step 200
    assert chaotic.max() > 1e5 * calm.max()
    assert chaotic[:, -1].max() > 1e3 * chaotic[:, 10].max()  # and it grows along the sequence


# -- (d') the rounding of intermediates: no false alarm, a real disagreement still found ---

#: rnn_ref's GRU, exponential candidate activation, float32: the update gate z = 1 - 4e-8
#: rounds to exactly 1 in float32 at one step, so every float32 loop drops (1 - z) h~ with
#: h~ near 1e13 (Keras and rnn_ref in float32 agree to 1e-6 there, 18% and 64% from the
#: float64 truth); perturbing only the inputs measured a conditioning far below that.
GRU_ROUNDED_GATE = dict(B=2, T=33, D=7, U=10, dtype="float32", seed=28819, gain=1.0, activation="tanh",
                        mask_pattern="none", initial_state=False, return_sequences=True, layer="GRU",
                        recurrent_activation="sigmoid", reset_after=True)
#: The same GRU at another seed: the exp candidate overflows float32 (1e123 in float64) at a
#: step where z rounds to exactly 1, so every float32 loop computes 0 * inf = NaN where the
#: truth rounds to +inf; only runs whose gates and candidates are rounded onto float32's
#: values reproduce it (at T=33 only the run rounding to the nearest value does, reliably:
#: perturbed ones leave z below 1, or above, as often as at 1).
GRU_OVERFLOW_UNDER_A_CLOSED_GATE = dict(GRU_ROUNDED_GATE, B=4, T=31, seed=40014)
#: An LSTM with an exponential activation (gain 0.25 for an unbounded one): exp(c) overflows
#: float64 too, so the truth is +inf, while every float32 loop multiplies that inf by an output
#: gate that rounds to 0 and gives NaN.
LSTM_INF_TIMES_A_CLOSED_GATE = dict(B=2, T=9, D=7, U=10, dtype="float32", seed=26822, gain=0.25, activation="tanh",
                                    mask_pattern="none", initial_state=False, return_sequences=True, layer="LSTM",
                                    recurrent_activation="sigmoid")


class _OneGainOracle:
    """A Keras-like oracle wrong by a relative ``scale`` (an output scaled by 1 + scale)."""

    def __init__(self, oracle, scale):
        self.oracle, self.scale = oracle, scale

    def __call__(self, **kw):
        out = self.oracle(**kw)
        return tuple(o * (1 + self.scale) for o in out) if isinstance(out, tuple) else out * (1 + self.scale)


@pytest.mark.keras
@pytest.mark.platform
@pytest.mark.parametrize("where", [GRU_ROUNDED_GATE, GRU_OVERFLOW_UNDER_A_CLOSED_GATE,
                                   dict(GRU_OVERFLOW_UNDER_A_CLOSED_GATE, T=33), LSTM_INF_TIMES_A_CLOSED_GATE],
                         ids=["rounded", "overflow", "overflow-T33", "inf-times-zero"])
def test_a_gate_rounded_to_one_in_float32_is_not_a_false_alarm(monkeypatch, where):
    """The property that raised the false alarm holds with the activations perturbed in the
    conditioning runs, and fails again when the runs perturb the inputs only (the mutant)."""
    case = make_case(**where)
    gru = case.spec.reference  # rnn_ref's own layer: a correct implementation
    prop = PROPERTIES["every_activation_matches_keras"]
    prop.check(Context(spec=case.spec), gru, case)
    inputs_only = tolerance.conditioning

    def mutant(fn, kwargs, dtype, *, rng, runs=None, intermediates=False, base=None):
        return inputs_only(fn, kwargs, dtype, rng=rng, runs=runs, intermediates=False, base=base)

    monkeypatch.setattr(tolerance, "conditioning", mutant)
    with pytest.raises(PropertyFailure, match="Keras disagrees with the float64 reference beyond its conditioning"):
        prop.check(Context(spec=case.spec), gru, case)


@pytest.mark.keras
@pytest.mark.platform
@pytest.mark.parametrize("layer", ["SimpleRNN", "LSTM", "GRU"])
def test_a_keras_wrong_by_one_percent_is_still_caught(layer):
    """A well-conditioned float32 case (gain 0.5, T=40): a Keras-like result scaled by
    1.01 is reported as Keras disagreeing, with the activations perturbed too."""
    from rnn_ref.harness.oracle import KerasOracle

    case = make_case(B=3, T=40, D=5, U=7, dtype="float32", seed=3, gain=0.5, activation="tanh", layer=layer,
                     return_sequences=True)
    oracle = KerasOracle(case.spec)
    Context(oracle, spec=case.spec).expect(case.spec.reference, case)  # the real Keras passes
    with pytest.raises(PropertyFailure, match="Keras disagrees"):
        Context(_OneGainOracle(oracle, 0.01), spec=case.spec).expect(case.spec.reference, case)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_perturbed_activations_keep_a_contracting_recurrence_at_roundoff(dtype):
    """Perturbing every activation's argument and result adds rounding-sized noise, no more:
    at gain 0.5 the spread stays under 100 u, as with the inputs alone."""
    case = make_case(B=2, T=200, D=8, U=24, dtype=dtype, seed=11, gain=0.5, return_sequences=True)
    kw = _f64(case.kwargs())
    spread = tolerance.conditioning(simple_rnn, kw, dtype, rng=np.random.default_rng(0), intermediates=True)
    assert 0 < spread.max() < 100 * tolerance.roundoff(dtype)


# -- (e) the report command ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    assert cli(["report", "--quick", "--out", str(out)]) == 0
    return out


@pytest.mark.keras
def test_report_quick_writes_everything(quick_report):
    files = {p.name for p in quick_report.iterdir()}
    per_layer = {f"{plot}{suffix}.png" for plot in ("error_vs_length", "error_vs_spectral_radius",
                                                    "gradient_error_vs_length", "gradient_error_vs_spectral_radius")
                 for suffix in ("", "_lstm", "_gru")}
    assert {"report.md", "report.json", "ulp_histograms.png", "budget_vs_error.png", *per_layer} <= files
    data = json.loads((quick_report / "report.json").read_text())
    assert data["schema_version"] == 1
    assert data["budget_rule"]["FACTOR"] == tolerance.FACTOR
    assert {"keras", "tensorflow", "numpy"} <= set(data["environment"])
    assert data["settings"]["layers"] == ["SimpleRNN", "LSTM", "GRU"]
    cell = data["properties"]["matches_keras"]["by_dtype"]
    for entry in cell.values():
        assert entry["examples"] >= 1
        assert {"max_abs", "max_rel", "max_ulps"} <= set(entry["keras"])
        assert set(entry["implementations"]) == set(IMPLEMENTATIONS)
    # the gradient properties run on rnn_ref's backward pass alone, and are judged
    gradient_props = {name: prop.layers for name, prop in PROPERTIES.items() if prop.takes == "gradients"}
    assert gradient_props
    for name, layers in {**gradient_props, "chaotic_gradients": ("SimpleRNN", "LSTM", "GRU")}.items():
        for row in (label(name, layer) for layer in layers):
            assert row in data["properties"], row
            for entry in data["properties"][row]["by_dtype"].values():
                assert entry["examples"] >= 1 and set(entry["implementations"]) <= {"rnn_ref"}
    judged = [e for e in data["properties"]["gradients_match_keras (GRU)"]["by_dtype"].values()]
    assert sum(e["implementations"]["rnn_ref"]["verdicts"] for e in judged) >= 1
    # LSTM and GRU rows, labelled as tests/test_properties.py labels them, on their reference only
    for layer in ("LSTM", "GRU"):
        for name, prop in PROPERTIES.items():
            row = f"{name} ({layer})"
            assert (row in data["properties"]) == (layer in prop.layers), row
        assert "single_step_equals_dense (LSTM)" not in data["properties"]
        for entry in data["properties"][f"matches_keras ({layer})"]["by_dtype"].values():
            assert entry["examples"] >= 1 and set(entry["implementations"]) == {"rnn_ref"}
        assert f"chaotic_weights ({layer})" in data["properties"]
    for layer in ("SimpleRNN", "LSTM", "GRU"):
        sweeps = data["sweeps"]["by_layer"][layer]
        assert set(sweeps) == {"length", "spectral_radius", "gradient_length", "gradient_spectral_radius"}
        assert sweeps["length"]["layer"] == layer
        # the gradient sweeps: d inputs and d kernel of Keras and rnn_ref, per grid point
        for sweep, grid in ((sweeps["gradient_length"], "t"), (sweeps["gradient_spectral_radius"], "gain")):
            assert sweep["layer"] == layer
            cells = ([d for reg in sweep["regimes"].values() for d in reg["by_dtype"].values()] if "regimes" in sweep
                     else list(sweep["by_dtype"].values()))
            assert len(cells) >= 2
            for d in cells:
                assert set(d["max_error"]) == {f"{who}: d {g}" for who in ("keras", "rnn_ref")
                                               for g in ("inputs", "kernel")}
                for series in (*d["max_error"].values(), *d["conditioning"].values(), *d["budget"].values()):
                    assert len(series) == len(sweep[grid])
                    assert all(float(x) >= 0 for x in series)
                assert set(d["needed_factor"]) == {"keras", "rnn_ref"}
        # well-conditioned (gain 0.5), every gradient's error stays at the roundoff level
        calm = sweeps["gradient_length"]["regimes"]["well-conditioned"]["by_dtype"]
        for dtype, d in calm.items():
            assert max(float(x) for e in d["max_error"].values() for x in e) < 1e3 * tolerance.roundoff(dtype)
        # the FACTOR the gradients needed, apart from the forward one
        grads = data["factor_gradients"][layer]
        assert set(grads) == {"keras", "rnn_ref"}
        assert grads["rnn_ref"]["all"]["verdicts"] >= 1
        assert set(grads["rnn_ref"]["by_sweep"]) == {"gradients", "chaotic_gradients"}
        assert data["factor_margin_gradients"][layer]["implementations_max"] < tolerance.FACTOR
    for layer in ("LSTM", "GRU"):
        # the needed FACTOR of its implementation and of Keras
        assert set(data["factor"][layer]) == {"keras", "rnn_ref"}
        assert data["factor"][layer]["rnn_ref"]["all"]["verdicts"] >= 1
        assert set(data["factor"][layer]["rnn_ref"]["by_sweep"]) == {"properties", "chaotic_weights"}
        assert set(data["factor"][layer]["keras"]["by_sweep"]) == {"properties", "chaotic_weights"}
        assert data["factor_margin"][layer]["implementations_max"] < tolerance.FACTOR
    assert list(data["summary"]["by_layer"]) == ["SimpleRNN", "LSTM", "GRU"]
    assert data["summary"]["failed_examples"] == 0
    md = (quick_report / "report.md").read_text()
    assert "## The budget rule" in md and "![error_vs_length](error_vs_length.png)" in md
    assert "![error_vs_length (LSTM)](error_vs_length_lstm.png)" in md
    assert "### matches_keras (LSTM)" in md and "### bidirectional_matches_keras (GRU)" in md
    assert "#### LSTM" in md and "#### GRU" in md  # the dedicated sweeps' tables
    factor = md.split("## FACTOR per layer")[1].split("## FACTOR for gradients")[0]
    for layer in ("SimpleRNN", "LSTM", "GRU"):
        lines = factor.split(f"- **{layer}**: ")[1].splitlines()
        assert lines[1].startswith("  - the whole sweep: correct implementations at most ")
    # the gradients' FACTOR, their rows and their sweeps
    gradient_factor = md.split("## FACTOR for gradients")[1].split("## Overflowed results")[0]
    for layer in ("SimpleRNN", "LSTM", "GRU"):
        lines = gradient_factor.split(f"- **{layer}**: ")[1].splitlines()
        assert lines[1].startswith("  - the whole sweep: correct implementations at most ")
        assert any(line.startswith("  - chaotic_gradients: ") for line in lines[2:4])
    assert "### gradients_match_keras (LSTM)" in md and "### chaotic_gradients (GRU)" in md
    assert "![gradient_error_vs_length (GRU)](gradient_error_vs_length_gru.png)" in md
    assert "![gradient_error_vs_spectral_radius](gradient_error_vs_spectral_radius.png)" in md
    assert md.count("Gradients against T (tanh") == 3 and md.count("Gradients against the spectral radius") == 3
    for png in files - {"report.md", "report.json"}:
        assert (quick_report / png).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.keras
def test_report_compare_exit_status(quick_report, tmp_path):
    path = quick_report / "report.json"
    assert cli(["report", "compare", str(path), str(path)]) == 0
    data = json.loads(path.read_text())
    entry = data["properties"]["matches_keras"]["by_dtype"]
    dtype = next(iter(entry))
    # below the floor (0 -> 1 ulp: one rounding where there was none): not worse
    cell = entry[dtype]["implementations"]["float64_inside"]
    cell["max_ulps"] = 0.0
    (tmp_path / "zero.json").write_text(json.dumps(data))
    cell["max_ulps"] = 1.0
    (tmp_path / "one.json").write_text(json.dumps(data))
    assert cli(["report", "compare", str(tmp_path / "zero.json"), str(tmp_path / "one.json")]) == 0
    # max_abs is listed when it moves, but does not gate
    cell["max_abs"] = 1e3 * float(cell["max_abs"]) + 1.0
    (tmp_path / "abs.json").write_text(json.dumps(data))
    assert cli(["report", "compare", str(tmp_path / "one.json"), str(tmp_path / "abs.json")]) == 0
    # 10 -> 100 ulps: ten times, above the floor: worse (unless the threshold is raised)
    for name, ulps in (("base", 10.0), ("worse", 100.0)):
        entry[dtype]["implementations"]["rnn_ref"]["max_ulps"] = ulps
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
    base, worse = str(tmp_path / "base.json"), str(tmp_path / "worse.json")
    assert cli(["report", "compare", base, worse]) == 1
    assert cli(["report", "compare", base, worse, "--threshold", "20"]) == 0
    assert cli(["report", "compare", worse, base]) == 0  # better is not a failure
    # a new failure is worse whatever its figures
    entry[dtype]["implementations"]["fused_product"]["failed_examples"] = 1
    (tmp_path / "failed.json").write_text(json.dumps(data))
    assert cli(["report", "compare", worse, str(tmp_path / "failed.json")]) == 1


def check_noise(noise_class):
    """The perturbed runs' factors 1 + s * N(0, 1): fresh at every call (a step's rounding is
    independent of the last step's), of the asked shape, mean 1 and spread s."""
    noise = noise_class(np.random.default_rng(0), 1e-3)
    first, second = noise.factors((3, 4)), noise.factors((3, 4))
    assert first.shape == second.shape == (3, 4)
    assert not np.array_equal(first, second), "the same factors handed out twice"
    z = (np.concatenate([noise.factors((7, 5)).ravel() for _ in range(600)]) - 1) / 1e-3  # crosses refills
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05
    assert np.unique(z).size == z.size, "factors repeat"


def test_noise_factors_are_fresh_normal_draws():
    check_noise(tolerance._Noise)


def test_noise_that_hands_out_the_same_factors_is_caught():
    class Stuck(tolerance._Noise):
        def factors(self, shape):
            out = super().factors(shape)
            self.used = 0  # the mutant: never moves on in its pool
            return out

    with pytest.raises(AssertionError, match="twice"):
        check_noise(Stuck)


# -- the truth computed once: the conditioning starts from it --------------------------

def check_forward_truth(forward_truth):
    """``forward_truth``'s spread is the conditioning of the reference from its own float64
    run, as ``tolerance.conditioning`` computes it without being given that run."""
    case = make_case(B=2, T=40, D=3, U=5, dtype="float32", activation="tanh", gain=1.3, seed=5,
                     mask_pattern="random", return_sequences=True)
    kw = case.kwargs()
    kw64 = _f64(kw)
    _, spread, _ = forward_truth(simple_rnn, kw, kw64, np.dtype("float32"), np.random.default_rng(9))
    alone = tolerance.conditioning(simple_rnn, kw64, np.dtype("float32"), rng=np.random.default_rng(9),
                                   intermediates=True)
    alone = Context.internal_overflow(simple_rnn(**kw), simple_rnn(**kw64), alone, np.dtype("float32"))
    assert np.max(alone) > 0
    np.testing.assert_array_equal(spread, alone, err_msg="the conditioning did not start from the truth")


def test_the_conditioning_starts_from_the_truth():
    from rnn_ref.harness.context import forward_truth  # noqa: PLC0415

    check_forward_truth(forward_truth)


def test_a_conditioning_from_the_wrong_run_is_caught():
    """The mutant: the conditioning given the reference's run in the case's dtype as its base."""
    def wrong_base(reference, kw, kw64, dtype, rng):
        spread = tolerance.conditioning(reference, kw64, dtype, rng=rng, intermediates=True, base=reference(**kw))
        return reference(**kw64), Context.internal_overflow(reference(**kw), reference(**kw64), spread, dtype), ()

    with pytest.raises(AssertionError, match="did not start from the truth"):
        check_forward_truth(wrong_base)


def check_rounding(rounding):
    """A perturbed activation: its argument and its result each moved by fresh noise and rounded
    once onto the dtype's values (the float64 product rounded to the dtype)."""
    x = np.random.default_rng(1).standard_normal(2000) * 3  # float64
    got = rounding("linear", np.float32, np.random.default_rng(4))(x)
    noise = tolerance._Noise(np.random.default_rng(4), tolerance.PERTURB_ULPS * tolerance.roundoff(np.float32))
    once = (x * noise.factors(x.shape)).astype(np.float32).astype(np.float64)
    expected = (once * noise.factors(x.shape)).astype(np.float32).astype(np.float64)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, expected, err_msg="not the product rounded once")


def test_a_perturbed_activation_rounds_the_moved_value_once():
    check_rounding(tolerance._rounding)


def test_a_perturbed_activation_rounded_twice_is_caught():
    """The mutant: the factors applied in float32 to the argument already rounded to float32."""
    def twice(activation, dtype, rng):
        noise = tolerance._Noise(rng, tolerance.PERTURB_ULPS * tolerance.roundoff(dtype))

        def on_grid(a):
            return (np.asarray(a).astype(dtype) * noise.factors(np.shape(a)).astype(dtype)).astype(np.float64)
        return lambda x: on_grid(on_grid(x))

    with pytest.raises(AssertionError, match="not the product rounded once"):
        check_rounding(twice)
