"""Where Keras (TensorFlow backend) departs from its own formulas or options.

Each test pins a measured behaviour of the installed Keras/TensorFlow. When an
upgrade fixes one, its test fails and the deviation can be dropped from
``rnn_ref.harness.properties.KNOWN_KERAS_DEVIATIONS`` and from the docs.
"""

import math

import numpy as np
import pytest

import rnn_ref
from rnn_ref.harness.cases import make_case
from rnn_ref.harness.oracle import KerasOracle
from rnn_ref.harness.context import KNOWN_KERAS_DEVIATIONS, Context

pytestmark = [pytest.mark.keras, pytest.mark.platform]

X = np.linspace(-6.0, 6.0, 1201)


def _keras_activation(name, x):
    import keras

    return np.asarray(keras.activations.get(name)(keras.ops.convert_to_tensor(x)))


def test_float64_gelu_uses_a_float32_rounded_constant():
    """tf.nn.gelu(approximate=False) in float64 multiplies by 1/sqrt(2) rounded to
    float32, so it is off the exact erf form by up to 5.0e-9 (1e7 ulps)."""
    exact = np.array([0.5 * v * math.erfc(-v / math.sqrt(2)) for v in X])
    got = _keras_activation("gelu", X)
    assert np.max(np.abs(got - exact)) > 1e-9  # the deviation is there...
    model = KNOWN_KERAS_DEVIATIONS[("gelu", "float64")](X)
    np.testing.assert_allclose(got, model, rtol=0, atol=4 * np.finfo(np.float64).eps)  # ...and explained


def test_float64_leaky_relu_uses_a_float32_rounded_slope():
    """leaky_relu's 0.2 slope is rounded to float32 in float64 (relative error 1.5e-8)."""
    got = _keras_activation("leaky_relu", X)
    neg = X < 0
    assert np.max(np.abs(got[neg] - 0.2 * X[neg]) / np.abs(X[neg])) > 1e-9
    np.testing.assert_array_equal(got, KNOWN_KERAS_DEVIATIONS[("leaky_relu", "float64")](X))


def test_reference_follows_the_exact_formulas():
    """rnn_ref keeps the exact formulas (the deviations are Keras's, not ours)."""
    exact = np.array([0.5 * v * math.erfc(-v / math.sqrt(2)) for v in X])
    np.testing.assert_allclose(rnn_ref.layers.activations.gelu(X), exact, rtol=4e-16, atol=1e-300)
    np.testing.assert_array_equal(rnn_ref.layers.activations.leaky_relu(X), np.where(X >= 0, X, 0.2 * X))


def test_unrolled_go_backwards_zeroes_the_wrong_steps():
    """unroll=True with go_backwards, zero_output_for_mask and a mask zeroes outputs by
    the mask in input order while the outputs are in processing order
    (upstream keras-team/keras#17596). The reference follows unroll=False."""
    oracle = KerasOracle()
    case = make_case(B=2, T=4, D=3, U=5, seed=7, go_backwards=True, zero_output_for_mask=True,
                     return_sequences=True)
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=bool)
    kw = case.kwargs(mask=mask)
    rolled = oracle(**kw, unroll=False)
    unrolled = oracle(**kw, unroll=True)
    Context(oracle).expect(rnn_ref.simple_rnn, case, mask=mask)  # the reference is unroll=False's, in budget
    processing_mask = mask[:, ::-1]
    # unroll=False: zeros exactly at the padded steps in processing order.
    np.testing.assert_array_equal(rolled[~processing_mask], 0.0)
    assert np.all(np.abs(rolled[processing_mask]).max(axis=-1) > 0)
    # unroll=True: zeros follow the input-order mask instead, so they differ.
    assert not np.allclose(unrolled, rolled)
    np.testing.assert_array_equal(unrolled[~mask], 0.0)


def test_a_recurrent_call_with_initial_state_gets_no_propagated_mask():
    """Keras fills a layer's ``mask`` in from its input only when the call has one tensor
    argument: ``SimpleRNN(...)(Masking()(x), initial_state=h0)`` runs unmasked, in a
    functional model and called directly (``rnn_ref.models.model`` follows it; the next
    layer still receives the Masking mask)."""
    import keras

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, 5, 3)).astype(np.float32)
    x[0, :2] = 0.0
    x[1, 3:] = 0.0
    h0 = rng.uniform(-1, 1, (2, 4)).astype(np.float32)
    layer = keras.layers.SimpleRNN(4, return_sequences=True)
    layer.build((None, None, 3))
    layer.set_weights([rng.normal(0, 0.6, w.shape).astype(np.float32) for w in layer.get_weights()])  # bias too
    assert np.all(layer.get_weights()[-1] != 0)
    masked_input = keras.layers.Masking()(x)
    direct = np.asarray(layer(masked_input, initial_state=h0))
    unmasked = np.asarray(layer(np.asarray(masked_input), initial_state=h0))
    masked = np.asarray(layer(masked_input, mask=np.any(x != 0, axis=-1), initial_state=h0))
    np.testing.assert_array_equal(direct, unmasked)
    assert np.abs(direct - masked).max() > 0.1

    inp, state = keras.Input((None, 3)), keras.Input((4,))
    model = keras.Model([inp, state], layer(keras.layers.Masking()(inp), initial_state=state))
    predicted = model.predict([x, h0], verbose=0)
    # predict runs a graph (oneDNN's kernels may round differently from the eager call): it is the
    # unmasked computation when it lies far closer to it than to the masked one
    assert np.abs(predicted - unmasked).max() < 1e-3 * np.abs(predicted - masked).max()
    assert "mask" not in layer._inbound_nodes[-1].arguments.kwargs


_FLOATX_SCENARIOS = '''
import contextlib, json
import keras
from rnn_ref._tf import keras_floatx

@contextlib.contextmanager
def floatx_only(dtype):  # restores floatx, not the global dtype policy (the mutant)
    old = keras.config.floatx()
    keras.config.set_floatx(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(old)

result = {}
for name, block in (("floatx_only", floatx_only), ("keras_floatx", keras_floatx)):
    keras.utils.clear_session()  # as in a fresh process: no global dtype policy yet
    with block("float64"):
        inside = keras.layers.Dense(2).dtype_policy.name
    result[name] = (inside, keras.config.floatx(), keras.layers.Dense(2).dtype_policy.name)
print(json.dumps(result))
'''


def _floatx_scenarios():
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _FLOATX_SCENARIOS], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_restoring_floatx_leaves_the_global_dtype_policy_behind():
    """Keras makes its global dtype policy from floatx the first time a layer asks for one and
    keeps it: after a float64 block that built the process's first layer, floatx is back at
    float32 but every new layer is float64. ``rnn_ref._tf.keras_floatx`` restores both."""
    got = _floatx_scenarios()
    assert got["floatx_only"] == ["float64", "float32", "float64"]  # Keras's behaviour, pinned
    assert got["keras_floatx"] == ["float64", "float32", "float32"]  # layers after the block: float32
