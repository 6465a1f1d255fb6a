"""The Keras oracle's built layers, shared by the oracles of a process.

Sharing is safe only if every call copies its own weights into the shared layer
and the cache stays bounded; a private oracle (the benchmark's) builds its own.
"""

import numpy as np
import pytest

from rnn_ref.harness.cases import make_case
from rnn_ref.harness import oracle as oracle_module
from rnn_ref.harness.context import Context, PropertyFailure
from rnn_ref.harness.oracle import KerasOracle, LayerCache
from rnn_ref.models.registry import RECURRENT


def test_the_least_recently_used_layer_is_dropped_beyond_the_limit():
    cache = LayerCache(limit=2)
    cache["a"], cache["b"] = 1, 2
    assert cache.get("a") == 1  # "a" is now the most recent
    cache["c"] = 3
    assert list(cache) == ["a", "c"]
    unbounded = LayerCache()
    for i in range(5000):
        unbounded[i] = i
    assert len(unbounded) == 5000


@pytest.mark.keras
@pytest.mark.parametrize("layer", ["SimpleRNN", "LSTM"])
def test_a_second_oracle_reuses_the_layer_with_its_own_weights(layer, monkeypatch):
    """Two oracles, two cases of one configuration (D=3, U=5, float64) with different
    weights: the second builds nothing and still computes with its own weights. In
    float64 at T=4 with |weights| < 1 Keras and the reference differ by a few ulps
    of O(1) values (about 1e-15), judged with the harness's budget (Context.expect),
    while the first case's weights left in the layer are off by O(0.1): the mutant
    that skips the copy is rejected."""
    spec = RECURRENT[layer]
    first, second = (make_case(B=2, T=4, D=3, U=5, dtype="float64", seed=s, layer=layer,
                               return_sequences=True) for s in (11, 12))
    a, b = KerasOracle(spec), KerasOracle(spec)
    a(**first.kwargs())
    before = a.builds
    got = b(**second.kwargs())
    assert b.builds == 0 and a.builds == before
    Context(b, spec=spec).expect(spec.reference, second)  # Keras within its conditioning of the float64 truth
    assert np.max(np.abs(spec.reference(**first.kwargs()) - got)) > 1e-2  # the weights do differ

    # the mutant: a reused layer that keeps the first case's weights is rejected
    a(**first.kwargs())  # the shared layer holds the first case's weights again
    monkeypatch.setattr(oracle_module, "_assign", lambda layer, values, dtype: None)
    with pytest.raises(PropertyFailure, match="Keras disagrees"):
        Context(KerasOracle(spec), spec=spec).expect(spec.reference, second)
    monkeypatch.undo()

    private = KerasOracle(spec, private=True)
    private(**second.kwargs())
    assert private.builds == 1
