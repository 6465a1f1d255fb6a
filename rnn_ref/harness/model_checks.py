"""Whole-model properties of a runtime's ``predict``, judged against Keras and the float64 truth.

A model moved to another runtime (another Keras backend, ONNX Runtime, LiteRT, a port)
computes what Keras computes if, on every input the model accepts, its outputs lie within
the harness budget of the float64 truth. The truth is ``rnn_ref.from_keras(model)`` with
its weights and input in float64 (``judging.judge_model_call``); the budget is FACTOR times
the larger of Keras-TF's own error on that input and the input's conditioning, plus the
rounding floor of the model's longest dot product (``tolerance``), so a correct runtime
that rounds differently passes and a long or chaotic input gets the room it needs.

The inputs follow the model's input signature (``model_inputs.signature_of``): token ids
padded with 0 for a model that starts with an ``Embedding``, floats padded with
``mask_value`` for one that starts with ``Masking``, plain floats otherwise; and for a
model of several inputs, initial states drawn in [-1, 1) and an explicit mask input that
carries the padding pattern. Padding is on the right, the left, at random steps, or a
whole row.

Batch and length stay within what the runtime accepts (``Facts.batch``, ``Facts.length``).
A model with a stateful layer takes the batch its states were built with, and every call
of these properties starts from zero states: the runtime and Keras are reset before each
call (``Checker.run``, ``Checker.keras``) and the truth starts from zeros. What a stateful
model carries from call to call is ``stateful_checks``'s property, registered in
``STATEFUL_PROPERTIES`` and run only on such models (``properties_for``).
The properties (``MODEL_PROPERTIES``, each once, as the layer catalogue of
``catalogue.py``) are checked by hypothesis, which shrinks a failure to the smallest
input (rows, steps, padding) that still fails. Every property is shown to fail on a
plausible runtime bug in ``rnn_ref/implementations/runtime_mutants.py``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from rnn_ref.harness.context import PropertyFailure
from rnn_ref.harness.judging import Judgement, judge_model_call
from rnn_ref.harness.model_inputs import (LONG_STEPS, Example, Signature, examples, rows,  # noqa: F401
                                          signature_of, zero_states)  # signature_of: for the commands


@dataclass
class Checker:
    """What every property needs: the runtime's ``predict``, Keras-TF's, the NumPy model
    the truth is built from and the model's signature.

    For a stateful model (``sig.stateful``) also the runtime's ``reset`` and Keras's
    ``keras_reset`` (each zeroes the model's states; ``reset`` None: the runtime cannot,
    ``no_reset`` says why, and no property runs); ``run`` and ``keras`` reset before each
    call unless told ``fresh=False``, and the truth's model holds zero states."""

    predict: Callable
    keras_predict: Callable
    np_model: object
    sig: Signature
    calls: int = 0
    reset: Callable | None = None
    keras_reset: Callable | None = None
    no_reset: str = "the runtime has no reset_state"

    def __post_init__(self):
        if self.sig.stateful:  # the truth of a call from zero states, whatever states the model was saved with
            self.np_model = copy.deepcopy(self.np_model)
            zero_states(self.np_model)

    def _guarded(self, what: str, fn, *args):
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 - the runtime's fault, reported as a failure
            raise PropertyFailure(f"the runtime raised {type(e).__name__}{what}: "
                                  f"{str(e).splitlines()[0][:300] if str(e) else ''}") from e

    def run(self, x, *, fresh: bool = True) -> list:
        """The runtime's arrays for ``x``; a stateful model's states zeroed first when ``fresh``."""
        if self.sig.stateful and fresh:
            self._guarded(" resetting the states", self.reset)
        self.calls += 1
        out = self._guarded("", self.predict, x if isinstance(x, list) else [x])
        return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]

    def keras(self, x, *, fresh: bool = True) -> list:
        """Keras-TF's arrays for ``x``; a stateful model's states zeroed first when ``fresh``."""
        if self.sig.stateful and fresh:
            self.keras_reset()
        return [np.asarray(k) for k in self.keras_predict(x if isinstance(x, list) else [x])]

    def conform(self, label: str, got: list, keras: list) -> list:
        """``got`` with Keras's number of arrays and shapes (else a failure), floats in Keras's dtype."""
        if len(got) != len(keras):
            raise PropertyFailure(f"{label}: the runtime returned {len(got)} arrays, Keras {len(keras)}")
        for i, (g, k) in enumerate(zip(got, keras)):
            if g.shape != k.shape:
                raise PropertyFailure(f"{label}: output {i} has shape {g.shape}, Keras gives {k.shape}")
        return [g.astype(k.dtype) if g.dtype != k.dtype and g.dtype.kind == "f" else g for g, k in zip(got, keras)]

    def judge(self, label: str, x, got: list) -> Judgement:
        """``got`` (the runtime's arrays for ``x``) against Keras-TF and the float64 truth."""
        keras = self.keras(x)
        return judge_model_call(label, self.np_model, x, self.conform(label, got, keras), keras).check()


@dataclass
class ModelProperty:
    name: str
    doc: str
    check: Callable          # (checker, example) -> None, raises PropertyFailure
    strategy: Callable       # (signature) -> strategy
    needs: Callable = lambda sig: None  # (signature) -> why it cannot run, or None


MODEL_PROPERTIES: dict[str, ModelProperty] = {}
#: Properties of stateful models only (``stateful_checks`` registers them).
STATEFUL_PROPERTIES: dict[str, ModelProperty] = {}


def model_prop(name: str, strategy, needs=lambda sig: None, registry: dict | None = None):
    def register(fn):
        into = MODEL_PROPERTIES if registry is None else registry
        into[name] = ModelProperty(name, " ".join((fn.__doc__ or "").split()), fn, strategy, needs)
        return fn

    return register


def model_property(name: str) -> ModelProperty:
    """The property ``name``, of either registry (KeyError if none)."""
    return MODEL_PROPERTIES[name] if name in MODEL_PROPERTIES else STATEFUL_PROPERTIES[name]


def known_properties() -> list[str]:
    return [*MODEL_PROPERTIES, *STATEFUL_PROPERTIES]


def properties_for(sig: Signature) -> list[str]:
    """The properties a model of signature ``sig`` is checked with: every model's, and a
    stateful model's own."""
    return [*MODEL_PROPERTIES, *(STATEFUL_PROPERTIES if sig.stateful else ())]


def _needs_ids(sig):
    return None if sig.paddable else ("needs padding: token ids, a Masking layer or a mask input (the model "
                                      "takes floats with no mask: nothing to pad)")


def _plain(c: Checker, ex: Example):
    x = ex.inputs(c.sig)
    c.judge("outputs", x, c.run(x))


def _padded(padding):
    return lambda sig: examples(sig, padding=padding)


model_prop("unpadded_matches_keras", _padded("none"))(_plain)
MODEL_PROPERTIES["unpadded_matches_keras"].doc = "Any batch and length, no padding: outputs match Keras."


@model_prop("right_padding_matches_keras", _padded("right"), _needs_ids)
def _right(c, ex):
    """Rows padded with 0 after their tokens (post-padding): outputs match Keras."""
    _plain(c, ex)


@model_prop("left_padding_matches_keras", _padded("left"), _needs_ids)
def _left(c, ex):
    """Rows padded with 0 before their tokens (pre-padding, keras.utils.pad_sequences' default)."""
    _plain(c, ex)


@model_prop("random_padding_matches_keras", _padded("random"), _needs_ids)
def _random(c, ex):
    """Zeros at random steps (a mask with holes): outputs match Keras."""
    _plain(c, ex)


@model_prop("fully_padded_rows_match_keras", _padded("full"), _needs_ids)
def _full(c, ex):
    """A row of padding only (every step masked) among padded rows: outputs match Keras."""
    _plain(c, ex)


def _single_step(sig):
    from hypothesis import strategies as st  # noqa: PLC0415

    return examples(sig, padding=("none", "right", "random"), steps=st.just(1))


@model_prop("single_step_matches_keras", _single_step,
            lambda sig: f"needs T=1 (the runtime takes only T={sig.length})" if sig.length not in (None, 1) else None)
def _single(c, ex):
    """T=1, padded or not: outputs match Keras."""
    _plain(c, ex)


def _long(sig):
    from hypothesis import strategies as st  # noqa: PLC0415

    return examples(sig, padding=("none", "right", "left"), steps=st.just(LONG_STEPS), rows=st.integers(1, 2))


@model_prop("long_sequence_matches_keras", _long,
            lambda sig: f"needs T={LONG_STEPS} (the runtime takes only T={sig.length})"
            if sig.length not in (None, LONG_STEPS) else None)
def _long_check(c, ex):
    """T=250 (the seed question's length), padded or not: outputs match Keras."""
    _plain(c, ex)


def _two_rows(sig):
    return examples(sig, padding=("none", "right", "left", "random"), min_rows=2)


@model_prop("batch_rows_are_independent", _two_rows,
            lambda sig: "needs a batch of 2 or more rows" if sig.batch == 1 else None)
def _independent(c, ex):
    """Row 0's outputs do not change when the other rows change: both calls' row 0 matches
    Keras on row 0 alone."""
    x = ex.inputs(c.sig)
    other = Example(ex.B, ex.T, ex.padding, ex.valid[::-1], ex.seed + 1).inputs(c.sig)
    for a, b in zip(other if isinstance(other, list) else [other], x if isinstance(x, list) else [x]):
        a[0] = b[0]  # row 0 of every input kept
    for label, batch in (("row 0 of the batch", x), ("row 0 with the other rows changed", other)):
        if c.sig.stateful:  # a batch of one cannot run; row 0 is judged within both whole batches
            c.judge(label.replace("row 0", "the batch"), batch, c.run(batch))
            continue
        got = [g[:1] for g in c.run(batch)]
        c.judge(label, rows(batch, slice(0, 1)), got)


@model_prop("batch_of_one_equals_its_row", _two_rows,
            lambda sig: f"needs a batch of one (the runtime takes only batches of {sig.batch})" if sig.batch else None)
def _one(c, ex):
    """Each row run alone (a batch of one) matches Keras on that row."""
    x = ex.inputs(c.sig)
    for i in range(ex.B):
        row = rows(x, slice(i, i + 1))
        c.judge(f"row {i} alone", row, c.run(row))


# ---- running a property with hypothesis -------------------------------------------------


@dataclass
class ModelResult:
    name: str
    status: str                 # pass, FAIL, unsupported
    checked: int = 0
    failed: int = 0
    seconds: float = 0.0
    message: str = ""
    example: Example | None = None
    inputs: np.ndarray | None = None
    shapes: set = field(default_factory=set)


def run_model_property(name: str, checker: Checker, *, max_examples: int = 10, seed: int = 0,
                       shrink_seconds: float = 30.0) -> ModelResult:
    """Check one property with hypothesis; a failure comes back shrunk, with its input."""
    from hypothesis import HealthCheck, Phase, given, settings  # noqa: PLC0415
    from hypothesis import seed as seeded  # noqa: PLC0415

    prop = model_property(name)
    why = prop.needs(checker.sig) or (checker.no_reset if checker.sig.stateful and checker.reset is None else None)
    if why:
        return ModelResult(name, "unsupported", message=why)
    result = ModelResult(name, "pass")
    start = time.perf_counter()
    state = {"fail_start": None}

    class _Stop(BaseException):
        pass

    @seeded(seed)
    @settings(max_examples=max_examples, derandomize=False, database=None, deadline=None, print_blob=False,
              report_multiple_bugs=False, suppress_health_check=list(HealthCheck),
              phases=[Phase.explicit, Phase.generate, Phase.shrink])
    @given(prop.strategy(checker.sig))
    def test(ex):
        if state["fail_start"] is not None and time.perf_counter() - state["fail_start"] > shrink_seconds:
            raise _Stop
        result.checked += 1
        try:
            prop.check(checker, ex)
        except PropertyFailure as e:
            result.failed += 1
            state["fail_start"] = state["fail_start"] or time.perf_counter()
            size = (ex.B * ex.T, ex.T, ex.B)
            if result.example is None or size <= (result.example.B * result.example.T, result.example.T,
                                                   result.example.B):
                result.example, result.message = ex, str(e)
            raise
        result.shapes.add((ex.B, ex.T, ex.padding))

    try:
        test()
    except (PropertyFailure, _Stop):
        pass
    except Exception as e:  # noqa: BLE001 - hypothesis's own errors (flaky failures) are failures too
        if result.example is None:
            result.status, result.message = "error", f"{type(e).__name__}: {e}"
    if result.example is not None:
        result.status = "FAIL"
        result.inputs = result.example.inputs(checker.sig)
    result.seconds = time.perf_counter() - start
    return result


def reproduction(result: ModelResult, model_path: str, runtime: str) -> str:
    """A script that reruns the minimal input on the runtime and on Keras."""
    x = result.inputs
    arrays = x if isinstance(x, list) else [x]
    if sum(a.size for a in arrays) <= 400:
        literals = [f"np.array({a.tolist()!r}, dtype=np.{a.dtype})" for a in arrays]
        literal = literals[0] if not isinstance(x, list) else "[" + ",\n     ".join(literals) + "]"
    else:
        ex = result.example
        literal = (f"Example({ex.B}, {ex.T}, {ex.padding!r}, {ex.valid!r}, {ex.seed}).inputs(signature_of(rnn_ref.from_keras(model)))")
    splits = list(getattr(result.example, "splits", ()))
    if splits:  # a stateful model called in chunks, from zero states
        return f'''import numpy as np
import keras
import rnn_ref
from rnn_ref.harness.model_checks import Example, signature_of
from rnn_ref.runtimes import open_runtime
from rnn_ref.runtimes.worker import reset_keras_states

model = keras.saving.load_model({str(model_path)!r}, compile=False)
x = {literal}   # {result.example.describe()}
reset_keras_states(model)
with open_runtime({runtime!r}, {str(model_path)!r}, model=model) as rt:   # or your predict(inputs)
    rt.reset_state()
    got = [rt.predict([part])[0] for part in np.split(x, {splits!r}, axis=1)]
reset_keras_states(model)
for i, part in enumerate(np.split(x, {splits!r}, axis=1)):
    want = np.asarray(model.predict_on_batch(part))
    print("chunk", i + 1, "max |runtime - keras|", np.abs(got[i] - want).max())
'''
    return f'''import numpy as np
import keras
import rnn_ref
from rnn_ref.harness.model_checks import Example, signature_of
from rnn_ref.runtimes import open_runtime

model = keras.saving.load_model({str(model_path)!r}, compile=False)
x = {literal}   # {result.example.describe()}
with open_runtime({runtime!r}, {str(model_path)!r}, model=model) as rt:   # or your predict(inputs)
    got = rt.predict({"x" if isinstance(x, list) else "[x]"})
want = model.predict_on_batch(x)
truth = rnn_ref.from_keras(model)  # the float32 NumPy model; the judge uses its float64 copy
print("runtime", got[0].ravel()[:8])
print("keras  ", np.asarray(want).ravel()[:8])
print("max |runtime - keras|", np.abs(got[0] - want).max())
'''
