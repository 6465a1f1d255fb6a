"""Running a candidate on a case and judging what it returns.

``Context.expect`` calls the candidate, checks the structure, shape and
dtype of what comes back, and judges every returned array against live
Keras and the float64 reference (the layer spec's reference function) with
the budget of ``tolerance.judge``; ``relate`` and ``exactly`` check
relations between two of the candidate's own results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from rnn_ref.harness import tolerance
from rnn_ref.harness.backprop import cotangent_for, float64_gradients, named_arrays, reference_backward
from rnn_ref.harness.cases import FULL, Case, Support
from rnn_ref.layers.activations import softmax_onednn
from rnn_ref.harness.oracle import KerasOracle
from rnn_ref.models.registry import SIMPLE_RNN, LayerSpec


def _tf_float64_gelu(x):
    """GELU as TensorFlow 2.21 computes it in float64: its constant 1/sqrt(2) is
    rounded to float32 first (tf.nn.gelu casts a Python float through a float32
    tensor), so exact-GELU results are off by up to 5.0e-9
    (tests/test_keras_quirks.py pins this)."""
    from rnn_ref.layers.activations import erfc

    c = float(np.float32(0.7071067811865476))
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * x * erfc(-x * c).astype(np.float64)


def _tf_float64_leaky_relu(x):
    """leaky_relu as TensorFlow 2.21 computes it in float64: the slope 0.2 is
    rounded to float32 (0.200000003), a relative error of 1.5e-8 on negative inputs."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x >= 0, x, float(np.float32(0.2)) * x)


#: (activation, dtype) -> what Keras computes instead of the exact formula.
#: Keras is checked against the reference run with this activation; the
#: candidate is still judged against the exact float64 truth, with Keras's
#: deviation counted in its budget (so copying Keras's behaviour also passes).
KNOWN_KERAS_DEVIATIONS = {
    ("gelu", "float64"): _tf_float64_gelu,
    ("leaky_relu", "float64"): _tf_float64_leaky_relu,
}


#: (activation, dtype) -> the results Keras gives instead on some platforms, each
#: with the switch that selects it. The reference computes the formula in IEEE
#: arithmetic (TensorFlow's result with oneDNN off); a candidate, and Keras, that
#: match any of these pass too, so a verdict does not depend on the checker's CPU
#: (docs/errors.md, "Results that depend on the platform"; tests/test_nonfinite.py).
PLATFORM_ALTERNATIVES = {
    ("softmax", "float32"): (("TF_ENABLE_ONEDNN_OPTS=1", softmax_onednn),),
}


def platform_alternatives(reference, kw: dict, kw64: dict, truth, dtype) -> tuple:
    """The other truths of a call in ``dtype``: for each activation slot whose (name,
    dtype) has platform alternatives, the float64 reference with that slot's
    alternative, as ``(switch, truth)`` pairs (each truth shaped like ``truth``, a
    tuple with return_state). Empty where none applies or the truth is finite (the
    alternatives differ only where a value is not finite)."""
    dtype = np.dtype(dtype).name
    if all(np.all(np.isfinite(t)) for t in (truth if isinstance(truth, tuple) else (truth,))):
        return ()
    out = []
    for slot in tolerance.ACTIVATION_SLOTS:
        for switch, fn in PLATFORM_ALTERNATIVES.get((kw.get(slot), dtype), ()) if isinstance(kw.get(slot), str) else ():
            out.append((switch, reference(**{**kw64, slot: fn})))
    return tuple(out)


def forward_truth(reference, kw: dict, kw64: dict, dtype, rng) -> tuple:
    """What a forward judgement needs of the float64 ``reference`` on a call (``kw`` in
    the case's dtype, ``kw64`` the same in float64): ``(truth, spread, alternatives)``,
    the truth, the conditioning (activations perturbed and rounded too, and infinite
    where the reference run in the dtype overflowed inside a step) and the platform
    alternatives of the truth (``platform_alternatives``)."""
    truth = reference(**kw64)
    spread = tolerance.conditioning(reference, kw64, dtype, rng=rng, intermediates=True, base=truth)
    spread = Context.internal_overflow(reference(**kw), truth, spread, dtype)
    return truth, spread, platform_alternatives(reference, kw, kw64, truth, dtype)


def gradient_spread(gradients_of, kwargs: dict, dtype, rng, truth: tuple, in_dtype: tuple) -> tuple:
    """The conditioning of a call's gradients, by the rules of a gradient judgement.

    ``gradients_of(**kwargs)``: the float64 gradients as a tuple (the cotangents among
    ``kwargs``, so that they are perturbed too); ``truth``: those gradients on the exact
    values; ``in_dtype``: the reference's backward pass in the case's dtype, in the same
    order. Where the first runs find a gradient ill-conditioned (ILL_CONDITIONED),
    GRADIENT_EXTRA_RUNS more are run; a gradient whose spread reaches LOST of its
    largest value has no digits left and is not judged (infinite spread), nor is any
    gradient of a call where one left the dtype's range. Returns one spread a gradient."""
    as_t = lambda o: o if isinstance(o, tuple) else (o,)  # noqa: E731
    largest_of = lambda a: float(np.max(np.where(np.isfinite(a), a, 0), initial=0))  # noqa: E731
    spread = as_t(tolerance.conditioning(gradients_of, kwargs, dtype, rng=rng, base=truth))
    peak = [largest_of(np.abs(t)) for t in truth]
    largest = [largest_of(s) for s in spread]
    if any(s > tolerance.ILL_CONDITIONED * p for s, p in zip(largest, peak)):  # see ILL_CONDITIONED
        more = as_t(tolerance.conditioning(gradients_of, kwargs, dtype, rng=rng, runs=tolerance.GRADIENT_EXTRA_RUNS,
                                           base=truth))
        spread = tuple(np.maximum(a, b) for a, b in zip(spread, more))
        largest = [largest_of(s) for s in spread]
    # A gradient beyond the dtype's range anywhere (in the truth, or in the reference run in
    # the dtype) has passed infinities through the sums, whose order decides between inf,
    # NaN and garbage elsewhere: then no gradient of the call is judged, as where one
    # has no digits left (see LOST).
    exploded = any(not np.all(np.isfinite(np.asarray(t).astype(dtype))) or not np.all(np.isfinite(d))
                   for t, d in zip(truth, in_dtype))
    spread = tuple(np.full_like(s, np.inf) if exploded or (l > 0 and l >= tolerance.LOST * p) else s
                   for s, l, p in zip(spread, largest, peak))  # (an all-zero gradient is judged)
    spread = tuple(Context.internal_overflow(d, t, s, dtype) for d, t, s in zip(in_dtype, truth, spread))
    # Where a gradient leaves the dtype's range, the order of the additions decides
    # between +-inf and NaN (inf - inf): nothing there can be judged.
    return tuple(np.where(np.isfinite(np.asarray(t).astype(dtype)), s, np.inf) for t, s in zip(truth, spread))


class PropertyFailure(AssertionError):
    """A property does not hold; ``verdicts`` carry the figures."""

    def __init__(self, message: str, verdicts=()):
        super().__init__(message)
        self.verdicts = list(verdicts)


class CandidateError(AssertionError):
    """The candidate misbehaved: wrong structure, shape or dtype, or changed its inputs."""


@dataclass
class Judged:
    """A candidate result with its budget, for relations between results."""

    value: np.ndarray
    budget: np.ndarray
    truth: np.ndarray | None = None  # the float64 truth it was judged against (gradients)


class Context:
    """Runs a candidate on cases and judges its results against truth and Keras."""

    def __init__(self, oracle: KerasOracle | None = None, *, record: Callable | None = None,
                 support: Support = FULL, spec: LayerSpec = SIMPLE_RNN):
        self.spec = spec
        self.oracle = oracle or KerasOracle(spec)
        self.record = record  # called with each Verdict (for tolerance reports)
        self.property = ""
        self.support = support  # what the candidate handles: properties stay inside it

    # -- running the candidate ------------------------------------------------
    def call(self, candidate, case: Case, **overrides):
        kw = case.kwargs(**overrides)
        # Writable C-contiguous copies (a view such as x[:, ::-1] is refused by
        # torch.from_numpy and others); comparing them with the case's own
        # arrays afterwards shows a change in place.
        passed = {k: np.array(v, order="C") if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        with np.errstate(all="ignore"):  # overflow in explosive cases is judged, not warned
            out = candidate(**passed)
        for k, v in kw.items():
            if isinstance(v, np.ndarray) and not np.array_equal(passed[k], v, equal_nan=True):
                raise CandidateError(f"the candidate modified its argument {k!r} in place")
        return _check_structure(out, kw, case, self.spec)

    # -- judging --------------------------------------------------------------
    def expect(self, candidate, case: Case, label: str = "output", *, unroll=False, **overrides):
        """Call the candidate on ``case`` (with option overrides) and judge every
        returned array; return them as ``Judged`` (a tuple with return_state)."""
        got = self.call(candidate, case, **overrides)
        kw = case.kwargs(**overrides)
        keras = self.oracle(**kw, unroll=unroll)
        kw64 = {k: v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
                for k, v in kw.items()}
        with np.errstate(all="ignore"):
            reference = self.spec.reference
            truth, spread, alternatives = forward_truth(reference, kw, kw64, case.dtype,
                                                        np.random.default_rng(case.seed))
            # Keras's own version of an activation that deviates from the formula, in every slot
            deviants = {slot: KNOWN_KERAS_DEVIATIONS.get((kw[slot], case.dtype.name))
                        for slot in ("activation", "recurrent_activation") if isinstance(kw.get(slot), str)}
            deviants = {slot: fn for slot, fn in deviants.items() if fn is not None}
            keras_truth = reference(**{**kw64, **deviants}) if deviants else truth
        if alternatives:
            return self.judge_all(label, got, keras, truth, keras_truth, spread, case, kw, alternatives=alternatives)
        return self.judge_all(label, got, keras, truth, keras_truth, spread, case, kw)

    @staticmethod
    def internal_overflow(in_dtype, truth, spread, dtype):
        """Where the reference run in the case's dtype is not finite although the
        float64 truth rounds to a finite number, the dtype's range was exceeded
        inside a step (an LSTM's exp(c) overflowing before a zero gate multiplies
        it: inf * 0 = NaN). No budget can tell a correct overflow from a wrong one
        there, so the conditioning is infinite (and stays so for later steps)."""
        as_t = lambda o: tuple(o) if isinstance(o, tuple) else (o,)  # noqa: E731
        out = []
        for d, t, s in zip(as_t(in_dtype), as_t(truth), as_t(spread)):
            finite_truth = np.isfinite(np.asarray(t, dtype=np.float64).astype(dtype))
            out.append(np.where(~np.isfinite(np.asarray(d, dtype=np.float64)) & finite_truth, np.inf, s))
        return tuple(out) if isinstance(spread, tuple) else out[0]

    def judge_all(self, label, got, keras, truth, keras_truth, spread, case, kw, alternatives=()):
        """Judge each returned array (``got``) against ``truth`` with Keras's result and
        the conditioning ``spread`` in its budget; raise PropertyFailure naming the
        arrays over budget, else return them as Judged. ``expect`` calls it once per
        call of the candidate: the one place that sees the candidate's result, Keras's,
        the truth and the conditioning together (the report's FACTOR tally extends it).
        ``alternatives``: ``(switch, truth)`` pairs from ``platform_alternatives``."""
        parts = ("output", *self.spec.states) if kw["return_state"] else ("output",)
        as_t = lambda o: o if isinstance(o, tuple) else (o,)  # noqa: E731
        results, verdicts = [], []
        batched = np.ndim(kw["inputs"]) == 3
        m = self.spec.products(case.shape["D"], case.shape["U"])
        for i, (name, g, k, t, kt, s) in enumerate(zip(parts, as_t(got), as_t(keras), as_t(truth),
                                                        as_t(keras_truth), as_t(spread))):
            seq = name == "output" and kw["return_sequences"]
            time_axis = (1 if batched else 0) if seq else None
            part = (name if label == "output" else f"{label}, {name}") if len(parts) > 1 else label
            v = tolerance.judge(part, g, k, t, s, case.dtype, m=m, time_axis=time_axis, keras_truth=kt,
                                alternatives=tuple((sw, as_t(alt)[i]) for sw, alt in alternatives))
            verdicts.append(v)
            if self.record:
                self.record(self.property, v)
            results.append(Judged(np.asarray(g), v.budget))
        bad = [v for v in verdicts if not v.ok]
        if bad:
            raise PropertyFailure("\n".join(v.summary() for v in bad), verdicts)
        return tuple(results) if len(results) > 1 else results[0]

    # -- the backward pass ----------------------------------------------------
    def call_gradients(self, candidate, case: Case, d_output=None, *, expected: dict | None = None,
                       **overrides) -> dict:
        """Call a backward-pass candidate (see ``backprop``) on ``case`` with the output's
        cotangent (default: the case's own, ``cotangent_for``); return its gradients as
        ``{name: array}`` (``named_arrays``' names), checked for shape and dtype against
        ``expected`` (default: the reference's gradients of the call)."""
        kw = case.kwargs(**overrides)
        d_output = cotangent_for(case, kw) if d_output is None else d_output
        passed = {k: np.array(v, order="C") if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        with np.errstate(all="ignore"):
            got = candidate(**passed, d_output=np.array(d_output, order="C"))
        for k, v in kw.items():
            if isinstance(v, np.ndarray) and not np.array_equal(passed[k], v, equal_nan=True):
                raise CandidateError(f"the candidate modified its argument {k!r} in place")
        if not isinstance(got, dict):
            raise CandidateError(f"a backward pass must return its gradients as a dict, got {type(got).__name__}")
        if expected is None:
            with np.errstate(all="ignore"):
                expected = dict(named_arrays(reference_backward(self.spec.reference)(**kw, d_output=d_output)))
        shapes = expected
        flat = {}
        for key, value in got.items():  # several initial states one by one, as named_arrays names them
            if isinstance(value, (list, tuple)):
                name, _, shown = key.partition(":")
                flat.update({f"{name}[{i}]" + (f":{shown}[{i}]" if shown else ""): v for i, v in enumerate(value)})
            elif value is not None:
                flat[key] = value
        result = {}
        for key, value in flat.items():
            name = key.split(":")[0]
            if name not in shapes:
                raise CandidateError(f"the candidate returned a gradient of {key.split(':')[-1]!r}, which this call "
                                     f"has no argument for (it has {', '.join(shapes)})")
            arr = np.asarray(value)
            if arr.shape != shapes[name].shape:
                raise CandidateError(f"the gradient of {key.split(':')[-1]} has shape {arr.shape}, expected "
                                     f"{shapes[name].shape} for {case.describe()}")
            if arr.dtype != case.dtype:
                raise CandidateError(f"the gradient of {key.split(':')[-1]} has dtype {arr.dtype}, expected "
                                     f"{case.dtype} (the dtype of the inputs)")
            result[key] = arr
        if not result:
            raise CandidateError("the candidate returned no gradients")
        return result

    def expect_gradients(self, candidate, case: Case, label: str = "gradients", d_output=None, **overrides) -> dict:
        """Call a backward-pass candidate on ``case`` and judge each gradient it returns
        against GradientTape on the Keras layer and the float64 truth (the reference's
        vjp), with the budget of ``tolerance.judge``; return ``{name: Judged}``.

        The budget's terms are the forward pass's: Keras's own error, the conditioning
        (how far the float64 gradients move when every input, weight and the cotangent
        is perturbed by PERTURB_ULPS units of roundoff) and the rounding floor, with
        m = one step's products + B*T (a weight gradient sums over every row and step).
        A gradient's error grows backwards through the steps, so the envelope of an
        ``inputs`` gradient is its maximum over all steps (and units) of a row; a weight
        gradient's is its maximum over each row of the weight."""
        from rnn_ref.harness.oracle import keras_gradients

        kw = case.kwargs(**overrides)
        d_output = cotangent_for(case, kw) if d_output is None else np.asarray(d_output)
        reference = self.spec.reference
        with np.errstate(all="ignore"):
            in_dtype = dict(named_arrays(reference_backward(reference)(**kw, d_output=d_output)))
        got = self.call_gradients(candidate, case, d_output, expected=in_dtype, **overrides)
        keras = dict(named_arrays(keras_gradients(self.oracle, **kw, d_output=d_output)))
        with np.errstate(all="ignore"):
            truth = dict(named_arrays(float64_gradients(reference, kw, d_output)))
            rng = np.random.default_rng(case.seed)
            names = list(truth)

            def gradients_of(d_output, **call):  # the float64 gradients as a tuple, for the conditioning
                grads = dict(named_arrays(float64_gradients(reference, call, d_output)))
                return tuple(grads[n] for n in names)

            spread = gradient_spread(gradients_of, {**kw, "d_output": d_output}, case.dtype, rng,
                                     tuple(truth[n] for n in names), tuple(in_dtype[n] for n in names))
            spread = dict(zip(names, spread))
        deviant = any(KNOWN_KERAS_DEVIATIONS.get((kw.get(slot), case.dtype.name))
                      for slot in ("activation", "recurrent_activation") if isinstance(kw.get(slot), str))
        # Keras's own check needs the truth of its deviating activation, which the backward
        # pass does not take: it is left out there (Keras's error still widens the budget).
        keras_truth = keras if deviant else truth
        return self.judge_gradients(label, got, keras, truth, keras_truth, spread, case, {**kw, "d_output": d_output})

    def judge_gradients(self, label, got, keras, truth, keras_truth, spread, case, kw) -> dict:
        """Judge each gradient the candidate returned (``got``, named as ``call_gradients``
        names them) against ``truth`` with Keras's gradient and the conditioning ``spread``
        in its budget (dicts by gradient name); raise PropertyFailure naming those over
        budget, else return ``{name: Judged}``. The one place that sees the candidate's
        gradients, Keras's, the truth and the conditioning together (as ``judge_all`` for
        outputs; the report's FACTOR tally extends it)."""
        B, T = (np.shape(kw["inputs"]) if np.ndim(kw["inputs"]) == 3 else (1, *np.shape(kw["inputs"])))[:2]
        m = self.spec.products(case.shape["D"], case.shape["U"]) + B * T
        results, verdicts = {}, []
        for key, g in got.items():
            name, shown = key.split(":")[0], key.split(":")[-1]
            time_axis = (np.ndim(g) - 2) if name == "inputs" else None
            v = tolerance.judge(f"{label}: d {shown}", g, keras[name], truth[name], spread[name], case.dtype, m=m,
                                time_axis=time_axis, whole_time=True, keras_truth=keras_truth[name])
            verdicts.append(v)
            if self.record:
                self.record(self.property, v)
            results[key] = Judged(g, v.budget, truth[name])
        bad = [v for v in verdicts if not v.ok]
        if bad:
            raise PropertyFailure("\n".join(v.summary() for v in bad), verdicts)
        return results

    def relate(self, label: str, a: Judged, b: Judged, *, where=None):
        """a and b must agree within the sum of their budgets (at ``where``)."""
        with np.errstate(all="ignore"):
            err = tolerance.abs_err(a.value, b.value, np.asarray(a.value).dtype)
        allowed = a.budget + b.budget
        bad = err > allowed
        if where is not None:
            bad &= where
        if np.any(bad):
            i = tuple(int(j) for j in np.argwhere(bad)[0])
            raise PropertyFailure(
                f"{label}: differ at {i}: {float(a.value[i])!r} vs {float(b.value[i])!r} "
                f"(|diff| {float(err[i]):.3g} > {float(allowed[i]):.3g}); {int(bad.sum())} elements differ"
            )

    def exactly(self, label: str, values: np.ndarray, expected, where):
        """values must equal expected exactly at ``where`` (e.g. zeros at padded steps)."""
        bad = where & ~np.isclose(values, expected, rtol=0, atol=0, equal_nan=True)
        if np.any(bad):
            i = tuple(int(j) for j in np.argwhere(bad)[0])
            raise PropertyFailure(f"{label}: at {i} got {float(values[i])!r}, expected {float(np.broadcast_to(expected, values.shape)[i])!r}")


def _check_structure(out, kw, case: Case, spec: LayerSpec):
    B, T, D = kw["inputs"].shape if np.ndim(kw["inputs"]) == 3 else (None, *np.shape(kw["inputs"]))
    U = spec.units(kw)
    lead = () if B is None else (B,)
    want_out = lead + ((T, U) if kw["return_sequences"] else (U,))
    if kw["return_state"]:
        names = ("output", *spec.states)
        if not (isinstance(out, (tuple, list)) and len(out) == len(names)):
            raise CandidateError(f"with return_state=True the candidate must return ({', '.join(names)}), "
                                 f"got {type(out).__name__}")
        parts = [("output", out[0], want_out)] + [(n, o, lead + (U,)) for n, o in zip(spec.states, out[1:])]
    else:
        if isinstance(out, (tuple, list)):
            raise CandidateError(f"with return_state=False the candidate must return one array, got a {type(out).__name__} of {len(out)}")
        parts = [("output", out, want_out)]
    result = []
    for name, arr, shape in parts:
        arr = np.asarray(arr)
        if arr.shape != shape:
            raise CandidateError(f"{name} has shape {arr.shape}, expected {shape} for {case.describe()}")
        if arr.dtype != case.dtype:
            raise CandidateError(f"{name} has dtype {arr.dtype}, expected {case.dtype} (the dtype of the inputs)")
        result.append(arr)
    return tuple(result) if len(result) > 1 else result[0]
