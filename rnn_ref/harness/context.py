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

from . import tolerance
from .cases import FULL, Case, Support
from .oracle import KerasOracle
from .spec import SIMPLE_RNN, LayerSpec


def _tf_float64_gelu(x):
    """GELU as TensorFlow 2.21 computes it in float64: its constant 1/sqrt(2) is
    rounded to float32 first (tf.nn.gelu casts a Python float through a float32
    tensor), so exact-GELU results are off by up to 5.0e-9
    (tests/test_keras_quirks.py pins this)."""
    from ..activations import erfc

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
            truth = reference(**kw64)
            # Keras's own version of an activation that deviates from the formula, in every slot
            deviants = {slot: KNOWN_KERAS_DEVIATIONS.get((kw[slot], case.dtype.name))
                        for slot in ("activation", "recurrent_activation") if isinstance(kw.get(slot), str)}
            deviants = {slot: fn for slot, fn in deviants.items() if fn is not None}
            keras_truth = reference(**{**kw64, **deviants}) if deviants else truth
            rng = np.random.default_rng(case.seed)
            spread = tolerance.conditioning(reference, kw64, case.dtype, rng=rng)
            spread = self.internal_overflow(reference(**kw), truth, spread, case.dtype)
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

    def judge_all(self, label, got, keras, truth, keras_truth, spread, case, kw):
        """Judge each returned array (``got``) against ``truth`` with Keras's result and
        the conditioning ``spread`` in its budget; raise PropertyFailure naming the
        arrays over budget, else return them as Judged. ``expect`` calls it once per
        call of the candidate: the one place that sees the candidate's result, Keras's,
        the truth and the conditioning together (the report's FACTOR tally extends it)."""
        parts = ("output", *self.spec.states) if kw["return_state"] else ("output",)
        as_t = lambda o: o if isinstance(o, tuple) else (o,)  # noqa: E731
        results, verdicts = [], []
        batched = np.ndim(kw["inputs"]) == 3
        m = self.spec.products(case.shape["D"], case.shape["U"])
        for name, g, k, t, kt, s in zip(parts, as_t(got), as_t(keras), as_t(truth), as_t(keras_truth), as_t(spread)):
            seq = name == "output" and kw["return_sequences"]
            time_axis = (1 if batched else 0) if seq else None
            part = (name if label == "output" else f"{label}, {name}") if len(parts) > 1 else label
            v = tolerance.judge(part, g, k, t, s,
                                case.dtype, m=m, time_axis=time_axis, keras_truth=kt)
            verdicts.append(v)
            if self.record:
                self.record(self.property, v)
            results.append(Judged(np.asarray(g), v.budget))
        bad = [v for v in verdicts if not v.ok]
        if bad:
            raise PropertyFailure("\n".join(v.summary() for v in bad), verdicts)
        return tuple(results) if len(results) > 1 else results[0]

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
