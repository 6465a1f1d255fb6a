"""The layer registry (``rnn_ref.models.registry``) agrees with the classes and functions it names.

Everything above the registry reads a layer's facts from its ``LayerSpec`` and keeps no table
of its own, so a spec that disagrees with its own NumPy layer, vjp or Keras class would go
unnoticed wherever nothing else happens to compare them. ``disagreements`` lists every such
disagreement; the suite requires none, and the last tests show it names a spec that swaps
the reference, the weights, the gate order or the vjp.
"""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

import rnn_ref
from rnn_ref.models import registry
from rnn_ref.models.registry import RECURRENT, SPECS, LayerSpec


def _params(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


def disagreements(spec: LayerSpec) -> list[str]:
    """What in ``spec`` contradicts the function, vjp and NumPy layer it names (NumPy only)."""
    found = []
    cls = spec.numpy_layer
    if cls.__name__ != spec.name:
        found.append(f"numpy_layer is {cls.__name__}, the spec is {spec.name}")
    function = getattr(cls, "FUNCTION", None)
    if function is not None and function is not spec.reference:
        found.append(f"{cls.__name__}.FUNCTION is {function.__name__}, the spec's reference {spec.reference.__name__}")
    if cls.WEIGHTS and tuple(cls.WEIGHTS) != tuple(spec.weights):
        found.append(f"{cls.__name__}.WEIGHTS {cls.WEIGHTS} != the spec's weights {spec.weights}")
    reference, vjp = _params(spec.reference), _params(spec.vjp)
    if spec is not registry.BIDIRECTIONAL and reference != vjp:
        found.append(f"the vjp takes ({', '.join(vjp)}), the reference ({', '.join(reference)})")
    if spec.name in RECURRENT:
        if len(spec.states) != len(cls.STATE):
            found.append(f"states {spec.states} but {cls.__name__}.STATE {cls.STATE}")
        if spec.weights != tuple(reference[1:1 + len(spec.weights)]):
            found.append(f"weights {spec.weights} are not the reference's arguments after inputs, in order")
        D, U = 3, 5
        shapes = spec.shapes(D, U, {})
        if shapes["kernel"] != (D, spec.gates * U) or shapes["recurrent_kernel"] != (U, spec.gates * U):
            found.append(f"kernel shapes {shapes} do not hold {spec.gates} gate blocks of U columns")
        if sorted(spec.torch_order) != list(range(spec.gates)):
            found.append(f"torch_order {spec.torch_order} is not an order of the {spec.gates} gate blocks")
        if spec.gates > 1 and len(spec.gate_names) != spec.gates:
            found.append(f"{len(spec.gate_names)} gate names for {spec.gates} gates")
    return found


@pytest.mark.parametrize("name", list(SPECS))
def test_each_spec_agrees_with_what_it_names(name):
    assert disagreements(SPECS[name]) == []


def test_vjp_dispatches_through_the_registry():
    rng = np.random.default_rng(7)
    B, T, D, U = 2, 4, 3, 5  # D != U
    x = rng.standard_normal((B, T, D))
    for spec in RECURRENT.values():
        shapes = spec.shapes(D, U, {})
        weights = [0.5 * rng.standard_normal(shapes[w]) for w in spec.weights]
        out, back = rnn_ref.vjp(spec.reference, x, *weights)
        direct, direct_back = spec.vjp(x, *weights)
        np.testing.assert_array_equal(out, direct)
        d = rng.standard_normal(out.shape)
        for got, want in zip(back(d), direct_back(d)):
            np.testing.assert_array_equal(got, want)


@pytest.mark.keras
def test_the_keras_class_has_the_weights_the_spec_says():
    """Each recurrent spec's Keras class, built with D != U, holds the spec's weights in its order."""
    from rnn_ref._tf import keras_and_tf

    keras, _ = keras_and_tf()
    D, U = 3, 5
    for spec in RECURRENT.values():
        layer = getattr(keras.layers, spec.keras_class)(U)
        layer.build((None, 4, D))
        shapes = spec.shapes(D, U, {})
        assert [tuple(w.shape) for w in layer.weights] == [shapes[w] for w in spec.weights], spec.name
        assert [w.path.rsplit("/", 1)[-1] for w in layer.weights] == list(spec.weights), spec.name


# -- the check catches a spec that disagrees ------------------------------------------------


@pytest.mark.parametrize("spec, names", [
    (dataclasses.replace(registry.LSTM, reference=rnn_ref.gru), "FUNCTION"),
    (dataclasses.replace(registry.GRU, weights=("recurrent_kernel", "kernel", "bias")), "WEIGHTS"),
    (dataclasses.replace(registry.GRU, torch_order=(1, 1, 2)), "torch_order"),
    (dataclasses.replace(registry.LSTM, gates=3), "gate blocks"),
    (dataclasses.replace(registry.SIMPLE_RNN, vjp=registry.DENSE.vjp), "the vjp takes"),
    (dataclasses.replace(registry.LSTM, states=("h",)), "STATE"),
], ids=["wrong reference", "weights swapped", "torch order not a permutation", "gate count",
        "another layer's vjp", "a state missing"])
def test_the_check_names_a_spec_that_disagrees(spec, names):
    found = disagreements(spec)
    assert any(names in f for f in found), found
