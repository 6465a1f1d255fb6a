"""A whole NumPy model's forward pass (or any NumPy function) judged against Keras with
the harness's budget, for the model, loading, demo and worked-example tests.

``judge_model`` is ``rnn_ref.harness.judging.judge_outputs`` applied to a model: the
truth is the same NumPy model with its weights, float input and carried states in
float64 (``judging.with_weights``), the conditioning perturbs each of those by
``tolerance.PERTURB_ULPS`` units of roundoff (judging.py derives why that follows the
float32 model's rounding, layer by layer), and the floor takes the longest dot product
of the model (``longest_sum``). The model under test is the reference, so a conversion
bug is in the truth too and shows as Keras disagreeing with it beyond its conditioning;
a float64 model's result is the truth itself, so there the check is Keras's.

The truth of a stateful model's call starts from the states the model under test carries
into it (``judging.with_weights``' ``states``), so that it continues from the same point as
the candidate and the rounding of the carried states is part of the conditioning.

``judge_call`` judges a plain function (a formula, an example's hand-written code) the
same way: ``fn`` in float64 is the truth, ``fn`` in the case's dtype the candidate
unless another result (``got``) is given.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnn_ref.harness.judging import (Judgement, carried_states, flat, judge_model_call, judge_outputs,  # noqa: F401
                                     longest_sum, model_weights, recurrent_layers, with_weights)

#: What a rejected comparison says: the candidate over its budget, or (where the candidate
#: is the truth: a float64 result, or a bug carried into the float64 reference) Keras off it.
REJECTED = r"exceed the budget|Keras disagrees with the float64 reference"


def assert_structure(actual, expected, what=""):
    """Same nesting (tuple, list, dict), shapes and dtypes as Keras's result."""
    __tracebackhide__ = True
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), (
            f"{what}: got {actual!r:.80}, Keras gives a dict with keys {sorted(expected)}")
        for k in expected:
            assert_structure(actual[k], expected[k], f"{what}[{k!r}]")
    elif isinstance(expected, (list, tuple)):
        assert type(actual) is type(expected) and len(actual) == len(expected), (
            f"{what}: got {type(actual).__name__} of "
            f"{len(actual) if isinstance(actual, (list, tuple)) else '-'}, "
            f"Keras gives {type(expected).__name__} of {len(expected)}")
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_structure(a, e, f"{what}[{i}]")
    else:
        assert isinstance(actual, np.ndarray), f"{what}: got {type(actual).__name__}, expected an array"
        assert actual.shape == expected.shape and actual.dtype == expected.dtype, (
            f"{what}: got {actual.shape} {actual.dtype}, Keras {expected.shape} {expected.dtype}")


def judge_model(label, np_model, x, keras_result, *, got=None, seed=0) -> Judgement:
    """Run ``np_model`` on ``x`` (or take its result ``got``, computed from the states it
    carries now) and judge it against Keras's ``keras_result`` with the harness's budget
    (module docstring): the structure first, then every returned array. Returns the
    ``Judgement`` without raising, the model's result as its ``got``."""
    __tracebackhide__ = True
    if np_model.inputs:  # several inputs: each cast to its dtype, as Keras casts them
        x = [a.astype(i.dtype) if a.dtype.kind == "f" and np.dtype(i.dtype).kind == "f" else a
             for a, i in zip(np_model.take_inputs(x), np_model.inputs)]
    else:
        x = np.asarray(x)
    if not np_model.inputs and x.dtype.kind == "f" and np_model.input_dtype is not None \
            and np.dtype(np_model.input_dtype).kind == "f":
        x = x.astype(np_model.input_dtype)  # what the model computes on, as Keras casts it
    states = carried_states(np_model)
    if got is None:
        got = np_model(x)
    assert_structure(got, keras_result, label)

    judgement = judge_model_call(label, np_model, x, flat(got), flat(keras_result), states=states, seed=seed)
    judgement.got = got
    return judgement


def judge_call(label, fn, kwargs, keras_result, dtype, *, m, time_axes=None, got=None, seed=0) -> Judgement:
    """Judge ``got`` (by default ``fn(**kwargs)``, in the case's ``dtype``) against Keras's
    ``keras_result`` (an array or a tuple of them, in ``fn``'s order) with the truth
    ``fn(**kwargs in float64)`` and the conditioning of ``fn`` (``judging.judge_outputs``).
    ``m``: one step's dot products (the floor); ``time_axes``: per array, its axis of steps
    (default none)."""
    keras_arrays = keras_result if isinstance(keras_result, tuple) else (keras_result,)
    got = fn(**kwargs) if got is None else got
    got = got if isinstance(got, tuple) else (got,)
    for i, (g, k) in enumerate(zip(got, keras_arrays)):
        assert np.shape(g) == np.shape(k) and np.asarray(g).dtype == np.asarray(k).dtype, (
            f"{label} [{i}]: got {np.shape(g)} {np.asarray(g).dtype}, Keras {np.shape(k)} {np.asarray(k).dtype}")

    def reference(**call):
        out = fn(**call)
        return out if isinstance(out, tuple) else (out,)

    return judge_outputs(label, reference, kwargs, [np.asarray(g) for g in got],
                         [np.asarray(k) for k in keras_arrays], dtype, m=m,
                         time_axes=time_axes or [None] * len(got), seed=seed)


def record(worst: dict, key, judgement: Judgement) -> Judgement:
    """Keep the largest error / budget seen under ``key`` (printed by a module's report test)."""
    worst[key] = max(worst.get(key, 0.0), judgement.ratio)
    return judgement


def assert_rejected(judgement: Judgement, what: str, worst: dict | None = None) -> float:
    """A mutant's result must fail the judge; returns (and records) its error / budget."""
    __tracebackhide__ = True
    with pytest.raises(AssertionError, match=REJECTED):
        judgement.check()
    if worst is not None:
        key = f"mutant {what}"
        worst[key] = min(worst.get(key, np.inf), judgement.ratio)  # the closest call
    return judgement.ratio


def print_worst(worst: dict):
    """Print the worst error / budget of each case and the smallest of each mutant (run with -s)."""
    for key, ratio in sorted(worst.items(), key=lambda kv: str(kv[0])):
        print(f"{str(key):60s} error / budget = {ratio:.3g}")
