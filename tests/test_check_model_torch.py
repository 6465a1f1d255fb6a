"""check-model's ``torch`` runtime: Keras 3 with KERAS_BACKEND=torch in a worker process.

torch is an optional extra (``pip install -e '.[torch]'``, not installed by ``make``); without
it this module is skipped. The worker starts on a small masked model
``Embedding(20, 4, mask_zero=True) -> GRU(3) -> Dense(2)`` (random weights, non-zero biases),
passes a padding property, and is stopped by ``close()``.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from rnn_ref.commands.check_model import make_checker  # noqa: E402
from rnn_ref.harness.model_checks import run_model_property, signature_of  # noqa: E402

pytestmark = pytest.mark.keras


def test_the_torch_worker_passes_and_stops(tmp_path):
    import rnn_ref
    from rnn_ref._tf import keras_and_tf
    from rnn_ref.runtimes import open_runtime
    from rnn_ref.runtimes.keras_tf import KerasTF

    keras, _ = keras_and_tf()
    keras.utils.set_random_seed(7)
    inp = keras.Input((None,), dtype="int32")
    x = keras.layers.GRU(3)(keras.layers.Embedding(20, 4, mask_zero=True)(inp))
    model = keras.Model(inp, keras.layers.Dense(2)(x))
    rng = np.random.default_rng(7)
    for w in model.weights:  # biases too: zero biases hide bias bugs
        w.assign(rng.uniform(-0.6, 0.6, w.shape).astype("float32"))
    path = tmp_path / "gru.keras"
    model.save(path)

    np_model = rnn_ref.from_keras(model)
    runtime = open_runtime("torch", str(path), model=model)
    try:
        assert runtime.facts.versions.get("torch", "").startswith("2."), runtime.facts.versions
        process = runtime._process
        assert process.poll() is None, "the torch worker is not running"
        checker = make_checker(runtime, KerasTF(str(path), model), np_model, signature_of(np_model, None))
        r = run_model_property("right_padding_matches_keras", checker, max_examples=3)
        assert r.status == "pass", r.message
    finally:
        runtime.close()
    assert process.poll() is not None, "the torch worker still runs after close()"
