"""Judging a call's results against Keras with the harness's budget, outside a Context.

``Context.expect`` and ``Context.expect_gradients`` judge a candidate on a
harness ``Case``. Tests that build their own cases (their own weights,
options, models) judge rnn_ref's results against live Keras with the same
tolerance model through the two functions here, so that every comparison
with Keras has one budget, that of ``tolerance.judge``:

    budget = FACTOR * max over units and steps <= t of max(Keras error, conditioning) + floor

and Keras itself must stay within ``FACTOR * conditioning + floor`` of the
float64 truth. What a test gives:

* ``reference``: a function of keyword arrays that computes the float64
  truth when its floating arrays are float64 (rnn_ref's layer function, its
  backward pass, or a whole float64 model). ``kwargs`` are the call's
  arguments in the case's dtype; floating arrays, also inside lists and
  tuples (several initial states, a layer's weights), are cast to float64
  for the truth and perturbed for the conditioning; anything else (masks,
  ids, options) is passed as it is.
* ``got``: rnn_ref's result in the case's dtype; ``keras``: Keras's, in the
  same order. For a bug in rnn_ref to show, ``reference`` must be the code
  under test: the truth then carries the bug and Keras disagrees with it
  beyond its conditioning (a float64 case's result IS the truth, so that is
  the whole check there, as in the harness).

The conditioning is ``tolerance.conditioning`` of ``reference`` on those
arguments: how far the float64 result moves when every floating input and
weight is perturbed by PERTURB_ULPS units of roundoff of the dtype, the size
of what one correct rounding does to them, and in a layer's forward pass every
activation's argument and result at every step too (``intermediates``: a gate
rounded to 1 in float32 is one step's rounding that the inputs alone miss). It follows the error of any
correct implementation in expansive and chaotic regimes (an LSTM with
exponential gates, a gain above 1), where a fixed ``ulps * T`` formula is
off by orders of magnitude either way.

A whole model (``from_keras`` of a float64 copy of the Keras model, or a
float64 reference built by hand) is judged the same way, with the model's
float inputs and every weight (Embedding tables, Dense kernels, the
recurrent layers' weights) as the keyword arrays. Why perturbing those
suffices: the float32 model rounds each layer's inputs, weights and
results; rounding a layer's result to float32 is a relative change of at
most u of each element, which the next layer sees as a change of its
inputs of that size, and by backward error analysis one step's rounded
products and activations equal the exact ones on inputs and weights moved
by a few u (relative). Perturbing the model's own inputs and weights by
PERTURB_ULPS u therefore moves the float64 model as far as its float32
rounding does, up to a factor of the order of 1 per layer; FACTOR (16; at
most 14.4 was needed by any single layer, 99% of cases under 1.5) and the
floor, taken with the longest dot product of the model, cover the rest.
Integer ids are exact in both and are not perturbed.

Gradients follow ``Context.expect_gradients``' rules: the conditioning of
the float64 gradients with the cotangents perturbed too, GRADIENT_EXTRA_RUNS
more runs where the first find a gradient ill-conditioned (ILL_CONDITIONED),
no judgement where a gradient has no digits left (LOST) or any gradient left
the dtype's range, the envelope taken over every step (``whole_time``).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from rnn_ref.models.gradients import set_weight, unique_layers
from rnn_ref.models.model import Bidirectional
from rnn_ref.harness import tolerance
from rnn_ref.harness.context import PropertyFailure, forward_truth, gradient_spread


@dataclass
class Judgement:
    """The verdicts of one call's arrays and their worst ratios.

    ``ratio``: the largest of rnn_ref's error / budget and Keras's error / Keras's
    own budget (FACTOR * conditioning + floor) over the arrays; above 1 fails."""

    verdicts: list = field(default_factory=list)
    keras_ratios: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)

    @property
    def ratio(self) -> float:
        own = [v.worst["error"] / v.worst["budget"] if v.worst and v.worst["budget"] > 0 else 0.0
               for v in self.verdicts]
        return max([0.0, *own, *self.keras_ratios])

    def summary(self) -> str:
        return "\n".join(v.summary() for v in self.verdicts if not v.ok)

    def check(self) -> "Judgement":
        """Raise PropertyFailure naming each array over its budget; return self otherwise."""
        __tracebackhide__ = True
        if not self.ok:
            raise PropertyFailure(f"{self.summary()}\n(worst error / budget {self.ratio:.3g})", self.verdicts)
        return self


def as_float64(value):
    """Floating arrays (also inside lists and tuples) as float64; anything else unchanged."""
    if isinstance(value, (list, tuple)):
        return type(value)(as_float64(v) for v in value)
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return value.astype(np.float64)
    return value


def judge_outputs(label: str, reference: Callable, kwargs: dict, got: Sequence, keras: Sequence, dtype, *,
                  m: int, time_axes: Sequence, names: Sequence | None = None, seed: int = 0,
                  keras_truth: Sequence | None = None) -> Judgement:
    """Judge each array a call returned (``got``: rnn_ref's, ``keras``: Keras's, in the
    same order as the tuple ``reference`` returns) against the float64 truth,
    ``reference(**kwargs in float64)``, with ``tolerance.judge``'s budget.

    ``m``: the length of one step's dot products (the floor); ``time_axes``: per array,
    its axis of steps (None for a last output, a state or a model's head without one);
    ``names``: labels of the arrays; ``seed``: the conditioning's perturbations;
    ``keras_truth``: what Keras is held to where it knowingly deviates from the formula
    (KNOWN_KERAS_DEVIATIONS), by default the truth."""
    dtype = np.dtype(dtype)
    kw64 = {k: as_float64(v) for k, v in kwargs.items()}
    with np.errstate(all="ignore"):
        truth, spread, alternatives = forward_truth(reference, kwargs, kw64, dtype, np.random.default_rng(seed))
    truth, spread = _as_tuple(truth), _as_tuple(spread)
    keras_truth = truth if keras_truth is None else tuple(keras_truth)
    others = [tuple((switch, _as_tuple(alt)[i]) for switch, alt in alternatives) for i in range(len(truth))]
    return _judge_arrays(label, names, got, keras, truth, keras_truth, spread, dtype, m, time_axes, whole_time=False,
                         alternatives=others)


def judge_gradients(label: str, gradients: Callable, kwargs: dict, got: dict, keras: dict, dtype, *,
                    m: int, time_axes: dict | None = None, seed: int = 0) -> Judgement:
    """Judge each gradient rnn_ref returned (``got``, a dict by name) against the float64
    truth ``gradients(**kwargs in float64)`` (a dict with the same names: the backward
    pass of the call, the cotangents among ``kwargs`` so that they are perturbed too),
    with ``keras`` (the same names) in its budget, by the rules of
    ``Context.expect_gradients`` (module docstring). ``m``: one step's products plus
    B * T (a weight gradient sums over every row and step); ``time_axes``: the axis of
    steps of a gradient that has one (``inputs``), whose envelope is then its maximum
    over every step of a row."""
    dtype = np.dtype(dtype)
    names = list(got)
    kw64 = {k: as_float64(v) for k, v in kwargs.items()}
    ordered = lambda grads: tuple(grads[n] for n in names)  # noqa: E731

    def as_tuple(**call):
        return ordered(gradients(**call))

    with np.errstate(all="ignore"):
        truth = ordered(gradients(**kw64))
        in_dtype = ordered(gradients(**kwargs))
        spread = gradient_spread(as_tuple, kw64, dtype, np.random.default_rng(seed), truth, in_dtype)
    axes = [(time_axes or {}).get(n) for n in names]
    return _judge_arrays(label, names, [got[n] for n in names], [keras[n] for n in names], truth, truth, spread,
                         dtype, m, axes, whole_time=True)


def model_weights(np_model) -> list:
    """A NumpyModel's weights, in ``keras_model.trainable_weights``' order (a shared layer once)."""
    return [w for layer in unique_layers(np_model.layers) for w in layer.weights().values()]


def recurrent_layers(np_model):
    """Every recurrent layer of a NumpyModel, the two directions of a Bidirectional included."""
    for layer in np_model.layers:
        if isinstance(layer, Bidirectional):
            yield from (layer.forward, layer.backward)
        elif hasattr(layer, "recurrent_kernel"):
            yield layer


def with_weights(np_model, weights, states=None):
    """A copy of the NumpyModel ``np_model`` with ``weights`` (``model_weights``' order) in place
    of its own, every layer computing in their dtype (a float input is cast to it; a layer
    left in float32 would cast its input back and a "float64" model would compute in
    float32), and, given ``states`` (one per state of each stateful layer, in
    ``recurrent_layers``' order; None: zeros), its stateful layers carrying them: the
    float64 model of the module docstring when they are float64."""
    model = copy.deepcopy(np_model)
    slots = [(layer, k) for layer in unique_layers(model.layers) for k in layer.weights()]
    if len(slots) != len(weights):
        raise ValueError(f"the model has {len(slots)} weights, got {len(weights)}")
    for (layer, k), w in zip(slots, weights):
        set_weight(layer, k, w)
    dtype = np.asarray(weights[0]).dtype if len(weights) else None
    if model.input_dtype is not None and np.dtype(model.input_dtype).kind == "f":
        model.input_dtype = dtype
    if dtype is not None and model.inputs:  # a model of several inputs: its float inputs too
        model.inputs = tuple(dataclasses.replace(i, dtype=dtype) if np.dtype(i.dtype).kind == "f" else i
                             for i in model.inputs)
    for layer in unique_layers(model.layers):
        for part in (layer.forward, layer.backward, layer) if isinstance(layer, Bidirectional) else (layer,):
            if hasattr(part, "dtype") and dtype is not None:
                part.dtype = dtype
    if states is not None:
        states = list(states)
        for layer in recurrent_layers(model):
            for k in layer.STATE if layer.stateful else ():
                setattr(layer, k, states.pop(0))
    return model


def flat(result) -> list:
    """The arrays of a (possibly nested) result in a fixed order: tuples and lists in order,
    dicts by sorted key (as ``keras.tree.flatten``)."""
    if isinstance(result, dict):
        return [a for k in sorted(result) for a in flat(result[k])]
    if isinstance(result, (list, tuple)):
        return [a for r in result for a in flat(r)]
    return [np.asarray(result)]


def longest_sum(np_model) -> int:
    """m of the floor: the longest dot product of one step of the model, D + U + 1 of a
    recurrent layer, N + 1 of a Dense layer (1 for a model of lookups only)."""
    sizes = [1]
    for layer in recurrent_layers(np_model):
        sizes.append(layer.kernel.shape[0] + layer.recurrent_kernel.shape[0] + 1)
    for layer in np_model.layers:
        if not hasattr(layer, "recurrent_kernel") and getattr(layer, "kernel", None) is not None:
            sizes.append(np.shape(layer.kernel)[0] + 1)
    return max(sizes)


def carried_states(np_model) -> list:
    """The states each stateful layer carries into the next call (None: zeros), in
    ``recurrent_layers`` order; copies, so that a call does not change them."""
    return [None if getattr(layer, k) is None else np.array(getattr(layer, k))
            for layer in recurrent_layers(np_model) if layer.stateful for k in layer.STATE]


def judge_model_call(label: str, np_model, x, got: Sequence, keras: Sequence, *, states=None,
                     seed: int = 0) -> Judgement:
    """Judge a whole model's arrays for input ``x`` (``got``: the model under test's, ``keras``:
    Keras's, both in ``flat`` order) against the float64 truth: ``np_model`` with its weights,
    float input and carried ``states`` in float64 (``with_weights``), with the conditioning of
    those and the floor of the model's longest dot product (module docstring). The dtype
    judged in is Keras's."""
    keras = [np.asarray(k) for k in keras]

    def reference(weights, x, states):
        return tuple(flat(with_weights(np_model, weights, states)(x)))

    return judge_outputs(label, reference, dict(weights=model_weights(np_model), x=x, states=states),
                         [np.asarray(g) for g in got], keras, keras[0].dtype, m=longest_sum(np_model),
                         time_axes=[1 if k.ndim == 3 else None for k in keras], seed=seed)


def _judge_arrays(label, names, got, keras, truth, keras_truth, spread, dtype, m, time_axes, *, whole_time,
                  alternatives=None):
    got, keras = tuple(got), tuple(keras)
    if not len(got) == len(keras) == len(truth) == len(time_axes):
        raise ValueError(f"{label}: {len(got)} results, {len(keras)} from Keras, {len(truth)} in the truth and "
                         f"{len(time_axes)} time axes; expected as many of each")
    if names is None:
        names = [f"[{i}]" for i in range(len(got))] if len(got) > 1 else [""]
    judged = Judgement()
    alternatives = alternatives or [()] * len(got)
    for name, g, k, t, kt, s, axis, alt in zip(names, got, keras, truth, keras_truth, spread, time_axes, alternatives):
        part = f"{label} {name}".strip()
        v = tolerance.judge(part, g, k, t, s, dtype, m=m, time_axis=axis, keras_truth=kt, whole_time=whole_time,
                            alternatives=alt)
        # Keras against its own budget (FACTOR * conditioning + floor): the same judge with
        # Keras as the candidate and no Keras error of its own.
        kv = tolerance.judge(part, k, kt, kt, s, dtype, m=m, time_axis=axis, whole_time=whole_time,
                             alternatives=alt)
        judged.verdicts.append(v)
        judged.keras_ratios.append(kv.worst["error"] / kv.worst["budget"] if kv.worst and kv.worst["budget"] > 0
                                   else 0.0)
    return judged


def _as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)
