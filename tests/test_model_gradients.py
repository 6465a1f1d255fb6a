"""``rnn_ref.models.gradients``: whole-model gradients and one SGD step, against live Keras.

Every model gets random weights (``set_weights``): kernels and embeddings
random normal with no entry near zero, biases non-zero, each recurrent
kernel's gate blocks ``GAIN`` times a random orthogonal matrix (so the
backward recurrence does not expand errors). Keras's gradients are
``tf.GradientTape`` on ``mean(keras.losses.<loss>(y, model(x)))``, the
function form (the ``Loss`` classes and ``compile`` give the same numbers in
float32, measured, see rnn_ref/models/gradients.py), compared per array of
``model.trainable_weights``.

Tolerance (``judged``): the harness's budget, through
``rnn_ref.harness.judging.judge_gradients``. The truth is the same NumPy model
with its weights in float64 (``judging.with_weights``: every weight, a float
input, the targets and sample weights cast up; integer ids as they are); the
conditioning is how far its gradients move when all of those are perturbed by
``tolerance.PERTURB_ULPS`` units of roundoff, which is what the float32
model's rounding does to each layer's inputs and weights (the derivation is in
rnn_ref/harness/judging.py); a gradient array fails where its error exceeds
``FACTOR * max(Keras's error, conditioning)`` (envelope over each row of the
weight) plus a floor with m = W + 9 + B T (W the widest sum in the model, a
layer's input features plus its gate width), and Keras fails the case beyond
``FACTOR * conditioning + floor``. It replaces a fixed ``4 (B + W + 9) (R T +
L) u max|Keras|``, which assumed every recurrence non-expanding. One SGD step
(``train_step``) is compared weight by weight within ``2 lr budget + 2 u
max|w|``: ours and Keras's gradients each within the budget of the truth,
plus the rounding of ``w - lr g``. Measured worst errors / budget (printed by
``test_report_worst_errors``, -s) are 0.0024 to 0.033 (0 for the saturated sigmoid
head, whose gradients are exact).

Loss values (``judged_loss``), ours against Keras's (tape, Loss class or
``train_on_batch``), are judged the same way through ``judging.judge_outputs``: the
truth is the float64 loss of the float64 model (``value_and_gradients`` of
``with_weights``), the conditioning perturbs its weights, float inputs, targets and
sample weights, and the floor's m is the model's longest dot product
(``model_judging.longest_sum``) plus the number of terms the loss averages (the
output's elements). A loss on a given output (``judged_loss_alone``: the losses alone,
and the clipped formula on predict's output) has that loss in float64 as the truth at
Keras's clip bounds as float32 has them (1e-7 and 1 - 2^-23: float64's own 1 - 1e-7
would move -log(1 - p) at p = 1 by 0.18), perturbs the targets but not the output (the
exact array both are given: a clipped p moved by a few u would cross the bound) and
takes m = the output's elements, the terms of a sum of non-negative losses. The state a
stateful model carries after its second batch is judged against the float64 model run
from zeros through both batches (m = D + U + 1). These replace ``rel = 1e-5`` and
``1e-6``, ``atol = 1e-6`` and ``64 u max(1, |value|)``; measured worst errors / budget
0.0008 to 0.085. Kept exact: the loss of 120 at logits +-120 (2 * 60 is exact, e^-120
is below u 120 in float64 and below float32's range, the mean of 120 and 120 is 120),
``== 120.0`` in both dtypes.

A Bidirectional (Embedding -> Bidirectional(LSTM or GRU) -> Dense(sigmoid)) is
judged the same way; both directions' errors reach the embedding's gradient,
the sum of their input gradients, and so does their conditioning.

Mutants (the loss gradient not divided by the batch size; the sigmoid + BCE
shortcut with the wrong sign, y - sigmoid(z); masked-loss weights and the wrong
state's cotangent), patched into rnn_ref and so into the float64 truth too,
must be rejected by the same judge, by a factor above 100 (measured 4.9e3 to 1.8e5);
so must the loss value summed over the batch (4.3e5), averaged with the mask ignored
(1.8e4), or, alone, with the mean over the classes forgotten (5.2e5).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

import rnn_ref  # noqa: E402
from rnn_ref.models import gradients  # noqa: E402
from rnn_ref.models.gradients import LOSSES, model_gradients  # noqa: E402
from rnn_ref.harness.judging import judge_gradients, judge_outputs, model_weights, with_weights  # noqa: E402
from model_judging import judge_call, longest_sum  # noqa: E402

pytestmark = pytest.mark.keras

GAIN = 0.8
V, T, B = 11, 7, 6
WORST: dict = {}


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def nonzero(rng, shape, scale=0.5):
    v = scale * rng.standard_normal(shape)
    v[np.abs(v) < 0.05] = 0.3
    return v


def orthogonal_blocks(rng, U, G):
    """(U, G U): G blocks, each GAIN times a random orthogonal (U, U) matrix."""
    return np.concatenate([GAIN * np.linalg.qr(rng.standard_normal((U, U)))[0] for _ in range(G)], axis=1)


def randomize(model, rng):
    """Random weights with non-zero biases (module docstring); returns the model."""
    new = []
    for w in model.trainable_weights:
        shape, name = tuple(w.shape), w.name
        if name == "recurrent_kernel":
            v = orthogonal_blocks(rng, shape[0], shape[1] // shape[0])
        else:
            v = nonzero(rng, shape)
        new.append(v.astype(w.dtype))
    model.set_weights(new)
    return model


def keras_grads(model, loss, x, y):
    """(loss, [gradients]) of mean(keras.losses.<loss>(y, model(x))) by tf.GradientTape (zeros
    for a weight the loss does not reach, where the tape gives None)."""
    fn = keras.losses.get(loss)
    with tf.GradientTape() as tape:
        value = tf.reduce_mean(fn(y, model(x)))
    grads = tape.gradient(value, model.trainable_weights)
    return float(value), [np.zeros(w.shape, w.dtype) if g is None else tf.convert_to_tensor(g).numpy()
                          for g, w in zip(grads, model.trainable_weights)]


def judged(np_model, x, y, loss, ours, theirs, *, W, sample_weight=None, seed=0, terms=B * T):
    """Our gradients ``ours`` (of ``np_model``, as it was before the call) against Keras's
    ``theirs`` with the harness's budget (module docstring); ``terms``: the rows and steps a
    weight gradient sums over. Checks count, shapes and dtypes on the way. Returns the
    ``Judgement`` without raising."""
    __tracebackhide__ = True
    assert len(ours) == len(theirs), f"{len(ours)} gradients, Keras has {len(theirs)}"
    for i, (a, e) in enumerate(zip(ours, theirs)):
        assert a.shape == e.shape and a.dtype == e.dtype, f"weight {i}: got {a.shape} {a.dtype}, Keras {e.shape} {e.dtype}"

    def float64_gradients(weights, x, y, sample_weight):
        grads = model_gradients(with_weights(np_model, weights), x, y, loss, sample_weight)
        return {f"weight {i}": g for i, g in enumerate(grads)}

    kwargs = dict(weights=model_weights(np_model), x=np.asarray(x), y=np.asarray(y),
                  sample_weight=None if sample_weight is None else np.asarray(sample_weight))
    name = lambda grads: {f"weight {i}": g for i, g in enumerate(grads)}  # noqa: E731
    return judge_gradients("model gradients", float64_gradients, kwargs, name(ours), name(theirs), theirs[0].dtype,
                           m=W + 9 + terms, seed=seed)


def assert_close(np_model, x, y, loss, ours, theirs, *, case, **options):
    """``judged`` must pass; records its worst error / budget under ``case``; returns it."""
    __tracebackhide__ = True
    judgement = judged(np_model, x, y, loss, ours, theirs, **options)
    key = (case, str(theirs[0].dtype))
    WORST[key] = max(WORST.get(key, 0.0), judgement.ratio)
    return judgement.check()


def judged_loss(np_model, x, y, loss, ours, theirs, *, sample_weight=None, seed=0):
    """Our loss value ``ours`` (of ``np_model``, as it was before the call) against Keras's
    ``theirs`` with the harness's budget (module docstring): the truth is the float64 loss of
    the float64 model, m the model's longest dot product plus the number of terms the loss
    averages (the output's elements). Returns the ``Judgement`` without raising."""

    def float64_loss(weights, x, y, sample_weight):
        value, _ = gradients.value_and_gradients(with_weights(np_model, weights), x, y, loss, sample_weight)
        return np.asarray(value, weights[0].dtype)

    weights = model_weights(np_model)
    dtype = weights[0].dtype
    kwargs = dict(weights=weights, x=np.asarray(x), y=np.asarray(y),
                  sample_weight=None if sample_weight is None else np.asarray(sample_weight))
    terms = np.size(copy.deepcopy(np_model)(np.asarray(x)))
    return judge_outputs("loss value", float64_loss, kwargs, [np.asarray(ours, dtype)], [np.asarray(theirs, dtype)],
                         dtype, m=longest_sum(np_model) + terms, time_axes=[None], seed=seed)


def assert_loss_close(np_model, x, y, loss, ours, theirs, *, case, **options):
    """``judged_loss`` must pass; records its worst error / budget under ``case``; returns it."""
    __tracebackhide__ = True
    judgement = judged_loss(np_model, x, y, loss, ours, theirs, **options)
    key = (f"{case} loss value", str(model_weights(np_model)[0].dtype))
    WORST[key] = max(WORST.get(key, 0.0), judgement.ratio)
    return judgement.check()


def _clip_at_float32_bounds(p):
    """``gradients._clip`` at Keras's bounds as float32 has them (1e-7 and 1 - 1e-7 rounded
    to float32, 1 - 2^-23) in any dtype: in float32 the same clip, in float64 the truth of
    what the float32 formula computes. At float64's own bounds, p = 1 clips to 1 - 1e-7
    instead of 1 - 2^-23, and -log(1 - p) moves by 0.18."""
    eps = np.float32(gradients.EPSILON)
    lo, hi = np.asarray(eps, p.dtype), np.asarray(np.float32(1) - eps, p.dtype)
    return np.clip(p, lo, hi), (p >= lo) & (p <= hi)


def judged_loss_alone(label, loss, y, p, theirs, ours, *, from_logits=False):
    """A loss of ``gradients`` on the output ``p`` itself against Keras's with the harness's
    budget: ``theirs`` and ``ours`` are (value,) or (value, gradient with respect to p). The
    truth is the same loss in float64 (``_clip_at_float32_bounds``) on the same p and the
    targets y in float64; p is the exact array both are given (no rounding made it), so the
    conditioning perturbs the targets only (p's dtype reaches the loss through an empty
    array), and the loss's own roundings are the floor's, m = p.size terms, all >= 0.
    Returns the ``Judgement`` without raising."""

    def fn(y, like):
        value, gradient = LOSSES[loss](y, p.astype(like.dtype), from_logits=from_logits)
        return (np.asarray(value, like.dtype), gradient)[:len(theirs)]

    dtype = p.dtype
    theirs = tuple(np.asarray(a, dtype) for a in theirs)
    ours = tuple(np.asarray(a, dtype) for a in ours)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gradients, "_clip", _clip_at_float32_bounds)
        return judge_call(label, fn, dict(y=np.asarray(y), like=np.empty(0, dtype)), theirs, dtype, m=p.size,
                          got=ours)


def assert_rejected(judgement, what):
    """A mutant's gradients or loss value must fail the judge by far; records the closest call under ``what``."""
    __tracebackhide__ = True
    with pytest.raises(AssertionError, match=r"exceed the budget|Keras disagrees with the float64 reference"):
        judgement.check()
    assert judgement.ratio > 100, f"the mutant is only {judgement.ratio:.3g} x the budget"
    WORST[(f"mutant: {what}", "")] = min(WORST.get((f"mutant: {what}", ""), np.inf), judgement.ratio)


def padded_ids(rng, batch=B, steps=T, left=True):
    """(batch, steps) ids in [1, V), each row padded with 0 on the left (or right) to a random length >= 1."""
    ids = rng.integers(1, V, size=(batch, steps))
    for b, n in enumerate(rng.integers(1, steps + 1, size=batch)):
        if left:
            ids[b, : steps - n] = 0
        else:
            ids[b, n:] = 0
    if left:
        ids[0, : steps - 2] = 0  # a short row: two real tokens
    return ids


def rnn_bce_model(dtype="float32"):
    return keras.Sequential([
        keras.Input((T,), dtype="int32"),
        keras.layers.Embedding(V, 8, mask_zero=True, dtype=dtype),
        keras.layers.SimpleRNN(6, dtype=dtype),
        keras.layers.Dense(1, activation="sigmoid", dtype=dtype),
    ])


def lstm_gru_model(dtype="float32", mask_zero=True):
    return keras.Sequential([
        keras.Input((T,), dtype="int32"),
        keras.layers.Embedding(V, 8, mask_zero=mask_zero, dtype=dtype),
        keras.layers.LSTM(5, return_sequences=True, dtype=dtype),
        keras.layers.GRU(4, dtype=dtype),
        keras.layers.Dense(3, activation="softmax", dtype=dtype),
    ])


def bidirectional_model(dtype="float32", inner="lstm", merge_mode="concat"):
    """Embedding(mask_zero) -> Bidirectional(LSTM(5) or GRU(4)), the mask consumed -> Dense(1, sigmoid)."""
    rnn = keras.layers.LSTM(5, dtype=dtype) if inner == "lstm" else keras.layers.GRU(4, dtype=dtype)
    return keras.Sequential([
        keras.Input((T,), dtype="int32"),
        keras.layers.Embedding(V, 8, mask_zero=True, dtype=dtype),
        keras.layers.Bidirectional(rnn, merge_mode=merge_mode, dtype=dtype),
        keras.layers.Dense(1, activation="sigmoid", dtype=dtype),
    ])


#: W, the widest sum of each model (a layer's input features plus its gate width), for the floor.
RNN_DIMS = dict(W=8 + 6)
LSTM_GRU_DIMS = dict(W=8 + 20)
BIDIRECTIONAL_DIMS = dict(W=8 + 20)


def targets(rng, loss, k, dtype=np.float32):
    if loss == "binary_crossentropy":
        return rng.integers(0, 2, size=(B, k)).astype(dtype)
    labels = rng.integers(0, k, size=B)
    if loss == "sparse_categorical_crossentropy":
        return labels
    if loss == "categorical_crossentropy":
        return np.eye(k, dtype=dtype)[labels]
    return nonzero(rng, (B, k)).astype(dtype)  # mse


# ---------------------------------------------------------------------------
# Losses alone
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("loss", ["binary_crossentropy", "categorical_crossentropy",
                                  "sparse_categorical_crossentropy", "mse"])
def test_loss_value_and_gradient_match_keras_including_saturated_outputs(loss, from_logits):
    """On a plain tensor (no ``_keras_logits``): Keras clips probabilities at 1e-7 (gradient 0 there)."""
    rng = np.random.default_rng(1)
    K = 4
    if from_logits:
        p = nonzero(rng, (B, K), scale=3.0)
        p[0, 0], p[1, 1] = 120.0, -120.0  # saturated logits
    else:
        p = rng.uniform(0.05, 0.95, size=(B, K))
        p[0, :2], p[1, 2], p[2, 0] = [0.0, 1.0], 1e-9, 1 - 1e-9  # at and beyond the clipping
    p = p.astype(np.float32)
    y = targets(rng, loss, K)
    kw = {} if loss == "mse" else {"from_logits": from_logits}
    pt = tf.constant(p)
    with tf.GradientTape() as tape:
        tape.watch(pt)
        value = tf.reduce_mean(keras.losses.get(loss)(y, pt, **kw))
    expected = tape.gradient(value, pt).numpy()
    ours = LOSSES[loss](y, p, from_logits=from_logits)
    assert ours.gradient.shape == p.shape and ours.gradient.dtype == p.dtype
    judgement = judged_loss_alone(f"{loss} (from_logits={from_logits})", loss, y, p, (float(value), expected),
                                  ours, from_logits=from_logits)
    key = (f"{loss} alone" + (" from logits" if from_logits else ""), "float32")
    WORST[key] = max(WORST.get(key, 0.0), judgement.ratio)
    judgement.check()


def test_saturated_sigmoid_head_is_computed_from_logits_as_keras_does():
    """Dense(1, "sigmoid") with logits +-120: Keras's loss is 60 from the logits (the clipped formula
    would give about 16 and a zero gradient); model_gradients follows the logits."""
    m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    m.set_weights([np.array([[60.0], [0.0]], np.float32), np.zeros(1, np.float32)])
    x = np.array([[2.0, 0.0], [-2.0, 0.0]], np.float32)
    y = np.array([[0.0], [1.0]], np.float32)
    value, expected = keras_grads(m, "binary_crossentropy", x, y)
    np_model = rnn_ref.from_keras(m)
    ours_value, ours = gradients.value_and_gradients(np_model, x, y, "binary_crossentropy")
    # exact in float32: the logits are 2 * 60 = +-120, each sample's loss is 120 + log1p(e^-120),
    # e^-120 ~ 8e-53 is below float32's range (0), and the mean of 120 and 120 is 120
    assert value == 120.0 and ours_value == 120.0
    assert_close(np_model, x, y, "binary_crossentropy", ours, expected, case="saturated sigmoid head", W=2 + 1,
                 terms=2)
    p = np_model(x)  # what predict() returns: no logits attached, so Keras clips
    clipped = float(tf.reduce_mean(keras.losses.binary_crossentropy(y, tf.constant(p))))
    judgement = judged_loss_alone("clipped bce", "binary_crossentropy", y, p, (clipped,),
                                  (LOSSES["binary_crossentropy"](y, p).value,))
    WORST[("clipped bce on predict's output", "float32")] = judgement.ratio
    judgement.check()
    assert clipped < 20  # -log(float32(1e-7)-ish): far from the 120 Keras trains on


def test_float64_model_loss_class_casts_to_float32_and_loses_the_logits():
    """A Keras quirk, pinned: the Loss classes (and so compile + train_on_batch) cast y_pred to floatx
    (float32), a new tensor without ``_keras_logits``, so a float64 sigmoid head gets the CLIPPED
    float32 formula (16.03, gradient 0) while the function form on the same model gives 120 from the
    logits. model_gradients follows the function form (the logits)."""
    m = keras.Sequential([keras.Input((2,), dtype="float64"),
                          keras.layers.Dense(1, activation="sigmoid", dtype="float64")])
    m.set_weights([np.array([[60.0], [0.0]]), np.zeros(1)])
    x, y = np.array([[2.0, 0.0], [-2.0, 0.0]]), np.array([[0.0], [1.0]])
    with tf.GradientTape() as tape:
        value = keras.losses.BinaryCrossentropy()(y, m(x))
    assert [np.abs(g.numpy()).max() for g in tape.gradient(value, m.trainable_weights)] == [0.0, 0.0]
    np_model = rnn_ref.from_keras(m)
    y32, p32 = y.astype(np.float32), np_model(x).astype(np.float32)
    clipped = LOSSES["binary_crossentropy"](y32, p32).value
    judgement = judged_loss_alone("Loss class on a float64 model", "binary_crossentropy", y32, p32, (float(value),),
                                  (clipped,))
    WORST[("Loss class on a float64 sigmoid head", "float32")] = judgement.ratio
    judgement.check()
    # exact in float64: logits +-120, 120 + log1p(e^-120) rounds to 120 (e^-120 ~ 8e-53 < u 120)
    assert gradients.value_and_gradients(np_model, x, y, "binary_crossentropy")[0] == 120.0


# ---------------------------------------------------------------------------
# Models against tf.GradientTape
# ---------------------------------------------------------------------------


def test_masked_simple_rnn_sigmoid_bce_matches_tape_on_left_padded_ids():
    rng = np.random.default_rng(2)
    m = randomize(rnn_bce_model(), rng)
    x, y = padded_ids(rng), targets(rng, "binary_crossentropy", 1)
    value, expected = keras_grads(m, "binary_crossentropy", x, y)
    np_model = rnn_ref.from_keras(m)
    ours = np_model.gradients(x, y, "binary_crossentropy")
    assert [g.shape for g in ours] == [tuple(w.shape) for w in m.trainable_weights]
    assert_close(np_model, x, y, "binary_crossentropy", ours, expected, case="embedding-simple_rnn-sigmoid bce",
                 **RNN_DIMS)
    assert_loss_close(np_model, x, y, "binary_crossentropy",
                      gradients.value_and_gradients(np_model, x, y, "binary_crossentropy")[0], value,
                      case="embedding-simple_rnn-sigmoid bce")


@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", "categorical_crossentropy"])
def test_lstm_gru_softmax_crossentropy_matches_tape(loss):
    rng = np.random.default_rng(3)
    m = randomize(lstm_gru_model(), rng)
    x, y = padded_ids(rng, left=False), targets(rng, loss, 3)
    value, expected = keras_grads(m, loss, x, y)
    ours_value, ours = gradients.value_and_gradients(rnn_ref.from_keras(m), x, y, loss)
    assert_loss_close(rnn_ref.from_keras(m), x, y, loss, ours_value, value, case=f"lstm-gru-softmax {loss}")
    assert_close(rnn_ref.from_keras(m), x, y, loss, ours, expected, case=f"lstm-gru-softmax {loss}", **LSTM_GRU_DIMS)


@pytest.mark.parametrize("inner, merge_mode", [("lstm", "concat"), ("gru", "mul")])
def test_masked_bidirectional_sigmoid_bce_matches_tape_on_left_padded_ids(inner, merge_mode):
    """Embedding(mask_zero) -> Bidirectional (mask consumed: return_sequences=False) -> Dense(sigmoid)."""
    rng = np.random.default_rng(8)
    m = randomize(bidirectional_model(inner=inner, merge_mode=merge_mode), rng)
    x, y = padded_ids(rng), targets(rng, "binary_crossentropy", 1)
    value, expected = keras_grads(m, "binary_crossentropy", x, y)
    ours_value, ours = gradients.value_and_gradients(rnn_ref.from_keras(m), x, y, "binary_crossentropy")
    assert [g.shape for g in ours] == [tuple(w.shape) for w in m.trainable_weights]
    case = f"embedding-bidirectional({inner}, {merge_mode}) bce"
    assert_loss_close(rnn_ref.from_keras(m), x, y, "binary_crossentropy", ours_value, value, case=case)
    assert_close(rnn_ref.from_keras(m), x, y, "binary_crossentropy", ours, expected, case=case, **BIDIRECTIONAL_DIMS)


def test_dense_regression_head_with_mse_matches_tape():
    """Float inputs (B, T, D) -> GRU(5, reset_after=False) -> Dense(2) linear, mse."""
    rng = np.random.default_rng(4)
    m = randomize(keras.Sequential([
        keras.Input((T, 3)), keras.layers.GRU(5, reset_after=False), keras.layers.Dense(2)]), rng)
    x, y = nonzero(rng, (B, T, 3)).astype(np.float32), targets(rng, "mse", 2)
    _, expected = keras_grads(m, "mse", x, y)
    ours = model_gradients(rnn_ref.from_keras(m), x, y, "mse")
    assert_close(rnn_ref.from_keras(m), x, y, "mse", ours, expected, case="gru-dense mse", W=3 + 15)


def test_float64_model_matches_tape_at_float64_budget():
    """dtype="float64" layers: the function-form loss keeps float64 (the Loss classes would cast to floatx)."""
    rng = np.random.default_rng(5)
    m = randomize(lstm_gru_model(dtype="float64"), rng)
    x, y = padded_ids(rng), targets(rng, "categorical_crossentropy", 3, dtype=np.float64)
    _, expected = keras_grads(m, "categorical_crossentropy", x, y)
    assert expected[0].dtype == np.float64
    ours = model_gradients(rnn_ref.from_keras(m), x, y, "categorical_crossentropy")
    assert_close(rnn_ref.from_keras(m), x, y, "categorical_crossentropy", ours, expected,
                 case="lstm-gru-softmax cce float64", **LSTM_GRU_DIMS)


def test_stateful_model_is_truncated_bptt_from_the_previous_batch_state():
    """Second batch of a stateful SimpleRNN: the state left by the first is a constant in both."""
    rng = np.random.default_rng(6)
    m = randomize(keras.Sequential([
        keras.Input(batch_shape=(B, T, 3)), keras.layers.SimpleRNN(4, stateful=True), keras.layers.Dense(1)]), rng)
    np_model = rnn_ref.from_keras(m)
    x1, x2 = (nonzero(rng, (B, T, 3)).astype(np.float32) for _ in range(2))
    y = targets(rng, "mse", 1)
    m(x1)
    np_model(x1)
    _, expected = keras_grads(m, "mse", x2, y)
    before = copy.deepcopy(np_model)  # with the first batch's state, for the judge's float64 runs
    ours = model_gradients(np_model, x2, y, "mse")
    assert_close(before, x2, y, "mse", ours, expected, case="stateful simple_rnn mse", W=3 + 4)

    def state_after_two_batches(weights, x1, x2):  # the float64 model, from zeros through both batches
        model = with_weights(np_model, weights, states=[None])
        model(x1)
        model(x2)
        return model.layers[0].state

    judgement = judge_outputs("state after the second batch", state_after_two_batches,
                              dict(weights=model_weights(np_model), x1=x1, x2=x2), [np_model.layers[0].state],
                              [m.layers[0].states[0].numpy()], np.float32, m=3 + 4 + 1, time_axes=[None])
    WORST[("stateful simple_rnn state", "float32")] = judgement.ratio
    judgement.check()


# ---------------------------------------------------------------------------
# train_step against train_on_batch
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("build, loss, dims", [
    (rnn_bce_model, "binary_crossentropy", RNN_DIMS),
    (lstm_gru_model, "sparse_categorical_crossentropy", LSTM_GRU_DIMS),
    (bidirectional_model, "binary_crossentropy", BIDIRECTIONAL_DIMS),
])
def test_train_step_equals_one_train_on_batch_with_sgd(build, loss, dims):
    rng = np.random.default_rng(7)
    lr = 0.5
    m = randomize(build(), rng)
    x, y = padded_ids(rng), targets(rng, loss, m.layers[-1].units)
    np_model = rnn_ref.from_keras(m)
    _, grads = keras_grads(m, loss, x, y)
    # the gradients' budgets (the harness's), for the step: |ours - Keras| <= 2 budget (each within its
    # budget of the truth), times lr, plus the rounding of w - lr g
    judgement = assert_close(np_model, x, y, loss, np_model.gradients(x, y, loss), grads, case=f"{loss} before the step",
                             **dims)
    before = [w.copy() for w in m.get_weights()]
    np_before = copy.deepcopy(np_model)
    m.compile(optimizer=keras.optimizers.SGD(lr), loss=loss)
    keras_value = float(m.train_on_batch(x, y))
    ours_value = np_model.train_step(x, y, loss, lr)
    assert_loss_close(np_before, x, y, loss, ours_value, keras_value, case=f"{loss} train_step")
    ours_after = [w for layer in np_model.layers for w in layer.weights().values()]
    for a, e, w0, v in zip(ours_after, m.get_weights(), before, judgement.verdicts):
        assert not np.array_equal(e, w0), "the Keras step changed nothing"
        tol = 2 * lr * v.budget + 2 * 2.0 ** -24 * np.abs(w0).max()
        worst = np.unravel_index(np.argmax(np.abs(a - e) - tol), a.shape)
        assert np.all(np.abs(a - e) <= tol), (f"weights after one step differ by {np.abs(a - e)[worst]:.3g} > "
                                              f"{tol[worst]:.3g} at {worst}")


# ---------------------------------------------------------------------------
# Mutants and refusals
# ---------------------------------------------------------------------------


def _not_divided_by_batch(loss_fn):
    def mutant(y_true, y_pred, from_logits=False, weights=None):
        value, grad = loss_fn(y_true, y_pred, from_logits=from_logits, weights=weights)
        return gradients.LossValue(value, grad * np.shape(y_pred)[0])
    return mutant


def _wrong_sign_bce_shortcut(y_true, y_pred, from_logits=False, weights=None):
    value, grad = gradients.binary_crossentropy(y_true, y_pred, from_logits=from_logits, weights=weights)
    return gradients.LossValue(value, -grad)  # (y - sigmoid(z)) / (K n)


@pytest.mark.parametrize("mutant", ["not divided by batch", "wrong-sign bce shortcut"])
def test_mutant_loss_gradients_are_rejected(monkeypatch, mutant):
    rng = np.random.default_rng(2)
    m = randomize(rnn_bce_model(), rng)
    x, y = padded_ids(rng), targets(rng, "binary_crossentropy", 1)
    _, expected = keras_grads(m, "binary_crossentropy", x, y)
    fn = (_not_divided_by_batch(gradients.binary_crossentropy) if mutant == "not divided by batch"
          else _wrong_sign_bce_shortcut)
    monkeypatch.setitem(gradients.LOSSES, "binary_crossentropy", fn)
    monkeypatch.setattr(gradients, "CROSSENTROPIES", (*gradients.CROSSENTROPIES, fn))
    ours = model_gradients(rnn_ref.from_keras(m), x, y, "binary_crossentropy")
    # the mutant loss in the float64 truth too, as a bug would be
    assert_rejected(judged(rnn_ref.from_keras(m), x, y, "binary_crossentropy", ours, expected, **RNN_DIMS), mutant)


REDUCED, REAL_BCE = gradients._reduced, gradients.binary_crossentropy  # before any patch


def _summed_over_the_batch(per, d_per, weights):  # the mean over the batch forgotten in the value
    value, grad = REDUCED(per, d_per, weights)
    return gradients.LossValue(value * per.shape[0], grad)


def _mean_over_classes_forgotten(y_true, y_pred, from_logits=False, weights=None):
    value, grad = REAL_BCE(y_true, y_pred, from_logits=from_logits, weights=weights)
    return gradients.LossValue(value * np.shape(y_pred)[-1], grad)


@pytest.mark.parametrize("mutant", ["summed over the batch", "mask ignored in the loss", "mean over classes forgotten"])
def test_mutant_loss_values_are_rejected(monkeypatch, mutant):
    """The loss value's judge, with a mutant in rnn_ref and so in the float64 truth too."""
    rng = np.random.default_rng(2)
    if mutant == "mean over classes forgotten":  # the loss alone, on the logits of the first test
        p, y = nonzero(rng, (B, 4), scale=3.0).astype(np.float32), targets(rng, "binary_crossentropy", 4)
        value = float(tf.reduce_mean(keras.losses.binary_crossentropy(y, tf.constant(p), from_logits=True)))
        monkeypatch.setitem(gradients.LOSSES, "binary_crossentropy", _mean_over_classes_forgotten)
        ours = gradients.LOSSES["binary_crossentropy"](y, p, from_logits=True).value
        assert_rejected(judged_loss_alone(mutant, "binary_crossentropy", y, p, (value,), (ours,), from_logits=True),
                        f"loss value, {mutant}")
        return
    if mutant == "summed over the batch":
        m = randomize(rnn_bce_model(), rng)
        x, y, sw = padded_ids(rng), targets(rng, "binary_crossentropy", 1), None
        value, _ = keras_grads(m, "binary_crossentropy", x, y)
        monkeypatch.setattr(gradients, "_reduced", _summed_over_the_batch)
    else:
        m = randomize(tagger_model("binary_crossentropy"), rng)
        x, y = padded_ids(rng, left=False), step_targets(rng, "binary_crossentropy")
        sw = rng.uniform(0.5, 2.0, size=(B, T)).astype(np.float32)
        value, _ = keras_class_grads(m, "binary_crossentropy", x, y, sw)
        real = gradients.loss_weights
        monkeypatch.setattr(gradients, "loss_weights", lambda shape, mask=None, sample_weight=None, dtype=np.float32:
                            real(shape, None, sample_weight, dtype))
    ours, _ = gradients.value_and_gradients(rnn_ref.from_keras(m), x, y, "binary_crossentropy", sw)
    assert_rejected(judged_loss(rnn_ref.from_keras(m), x, y, "binary_crossentropy", ours, value, sample_weight=sw),
                    f"loss value, {mutant}")


# ---------------------------------------------------------------------------
# The last layer's states (return_state) or a Bidirectional's two outputs as the model output
# ---------------------------------------------------------------------------


def one_array_model(inner, k, return_sequences=False, merge_mode=False):
    """Embedding(mask_zero) -> LSTM(5) or GRU(5) with return_state (inside a Bidirectional when
    ``merge_mode`` is not False), and the functional model outputs its k-th array."""
    rnn = getattr(keras.layers, inner)(5, return_state=True, return_sequences=return_sequences)
    if merge_mode is not False:
        rnn = keras.layers.Bidirectional(rnn, merge_mode=merge_mode)
    inp = keras.Input((T,), dtype="int32")
    outs = rnn(keras.layers.Embedding(V, 8, mask_zero=True)(inp))
    return keras.Model(inp, outs[k])


@pytest.mark.parametrize("inner, k, return_sequences, merge_mode, one_direction", [
    ("LSTM", 1, False, False, False), ("LSTM", 2, True, False, False), ("GRU", 1, True, False, False),
    ("LSTM", 0, False, False, False), ("GRU", 1, False, None, True), ("GRU", 3, True, None, True),
    ("LSTM", 4, False, "concat", True),
], ids=["lstm h", "lstm c (sequences)", "gru state (sequences)", "lstm output", "bidirectional backward output",
        "bidirectional backward state", "bidirectional backward h"])
def test_a_state_or_one_of_two_outputs_as_the_model_output_matches_tape(inner, k, return_sequences, merge_mode,
                                                                         one_direction):
    """Model(inp, state): the loss reaches the weights through that array alone; the weights it
    does not reach (the other direction's) get zeros, where the tape gives None."""
    rng = np.random.default_rng(12)
    m = randomize(one_array_model(inner, k, return_sequences, merge_mode), rng)
    x = padded_ids(rng)
    y = nonzero(rng, (B, *m.output.shape[1:])).astype(np.float32)
    value, expected = keras_grads(m, "mse", x, y)
    assert any(not g.any() for g in expected) == one_direction
    ours_value, ours = gradients.value_and_gradients(rnn_ref.from_keras(m), x, y, "mse")
    assert_loss_close(rnn_ref.from_keras(m), x, y, "mse", ours_value, value, case=f"{inner} array {k} as the output")
    assert_close(rnn_ref.from_keras(m), x, y, "mse", ours, expected, case=f"{inner} array {k} as the output",
                 W=8 + 20)


def test_the_wrong_state_given_the_cotangent_is_rejected(monkeypatch):
    """A bug: the cotangent of h given to c (the next array)."""
    rng = np.random.default_rng(12)
    m = randomize(one_array_model("LSTM", 1), rng)
    x, y = padded_ids(rng), nonzero(rng, (B, 5)).astype(np.float32)
    _, expected = keras_grads(m, "mse", x, y)
    real = gradients._picked
    monkeypatch.setattr(gradients, "_picked", lambda backward, k, n: real(backward, (k + 1) % n, n))
    ours = model_gradients(rnn_ref.from_keras(m), x, y, "mse")
    assert_rejected(judged(rnn_ref.from_keras(m), x, y, "mse", ours, expected, W=8 + 20), "the wrong state's cotangent")


def test_several_outputs_are_refused_by_name():
    inp = keras.Input((T, 3))
    h, state = keras.layers.SimpleRNN(2, return_state=True)(inp)
    two = keras.Model(inp, [h, state])
    with pytest.raises(NotImplementedError, match="one output"):
        model_gradients(rnn_ref.from_keras(two), np.zeros((2, T, 3), np.float32), np.zeros((2, 2)), "mse")
    pair = keras.Sequential([keras.Input((T, 3)),
                             keras.layers.Bidirectional(keras.layers.SimpleRNN(2), merge_mode=None)])
    with pytest.raises(NotImplementedError, match=r"one output, the model selects \(0, 1\)"):
        model_gradients(rnn_ref.from_keras(pair), np.zeros((2, T, 3), np.float32), np.zeros((2, 2)), "mse")


# ---------------------------------------------------------------------------
# A masked sequence output, and sample weights: Keras's Loss classes and train_on_batch
# ---------------------------------------------------------------------------

#: The Loss classes, which weight the loss by the output's mask (the function form does not).
LOSS_CLASSES = {"binary_crossentropy": "BinaryCrossentropy", "mse": "MeanSquaredError",
                "categorical_crossentropy": "CategoricalCrossentropy",
                "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy"}
#: Embedding(8) -> LSTM(5, return_sequences) -> Dense(K) per step: one recurrent layer, W = 8 + 20.
TAGGER_DIMS = dict(W=8 + 20)
TAGGER_HEADS = {"binary_crossentropy": (2, "sigmoid"), "sparse_categorical_crossentropy": (3, "softmax"),
                "categorical_crossentropy": (3, "softmax"), "mse": (2, None)}


def tagger_model(loss):
    """Embedding(mask_zero) -> LSTM(5, return_sequences) -> Dense per step: the output carries the mask."""
    K, activation = TAGGER_HEADS[loss]
    return keras.Sequential([
        keras.Input((T,), dtype="int32"),
        keras.layers.Embedding(V, 8, mask_zero=True),
        keras.layers.LSTM(5, return_sequences=True),
        keras.layers.Dense(K, activation=activation),
    ])


def step_targets(rng, loss):
    """(B, T, K) targets (labels (B, T) for the sparse loss)."""
    K, _ = TAGGER_HEADS[loss]
    if loss == "sparse_categorical_crossentropy":
        return rng.integers(0, K, size=(B, T))
    if loss == "categorical_crossentropy":
        return np.eye(K, dtype=np.float32)[rng.integers(0, K, size=(B, T))]
    if loss == "binary_crossentropy":
        return rng.integers(0, 2, size=(B, T, K)).astype(np.float32)
    return nonzero(rng, (B, T, K)).astype(np.float32)


def keras_class_grads(model, loss, x, y, sample_weight=None):
    """(loss, [gradients]) of keras.losses.<Class>()(y, model(x), sample_weight) by tf.GradientTape."""
    fn = getattr(keras.losses, LOSS_CLASSES[loss])()
    with tf.GradientTape() as tape:
        value = fn(y, model(x), sample_weight=sample_weight)
    return float(value), [tf.convert_to_tensor(g).numpy() for g in tape.gradient(value, model.trainable_weights)]


@pytest.mark.parametrize("weighted", [False, True], ids=["mask", "mask and sample_weight"])
@pytest.mark.parametrize("loss", list(TAGGER_HEADS))
def test_masked_sequence_output_is_averaged_over_valid_steps_as_the_loss_classes_do(loss, weighted):
    """The output carries the padding mask: Keras's Loss classes (and compile) average over
    the valid steps, times any per-step sample_weight; the padded steps get no gradient."""
    rng = np.random.default_rng(9)
    m = randomize(tagger_model(loss), rng)
    x, y = padded_ids(rng, left=False), step_targets(rng, loss)
    sw = rng.uniform(0.5, 2.0, size=(B, T)).astype(np.float32) if weighted else None
    value, expected = keras_class_grads(m, loss, x, y, sw)
    plain, _ = keras_grads(m, loss, x, y)
    assert abs(plain - value) > 1e-4, "the mask changes nothing on this batch: the test proves nothing"
    ours_value, ours = gradients.value_and_gradients(rnn_ref.from_keras(m), x, y, loss, sw)
    case = f"masked tagger {loss}" + (" weighted" if weighted else "")
    assert_loss_close(rnn_ref.from_keras(m), x, y, loss, ours_value, value, sample_weight=sw, case=case)
    assert_close(rnn_ref.from_keras(m), x, y, loss, ours, expected, sample_weight=sw, case=case, **TAGGER_DIMS)


@pytest.mark.parametrize("loss", ["binary_crossentropy", "sparse_categorical_crossentropy"])
def test_train_step_on_a_masked_sequence_output_equals_train_on_batch(loss):
    rng = np.random.default_rng(10)
    lr = 0.5
    m = randomize(tagger_model(loss), rng)
    x, y = padded_ids(rng), step_targets(rng, loss)
    sw = rng.uniform(0.5, 2.0, size=(B, T)).astype(np.float32)
    np_model = rnn_ref.from_keras(m)
    _, grads = keras_class_grads(m, loss, x, y, sw)
    judgement = assert_close(np_model, x, y, loss, np_model.gradients(x, y, loss, sw), grads, sample_weight=sw,
                             case=f"masked tagger {loss} before the step", **TAGGER_DIMS)  # budgets for the step
    before = m.get_weights()
    np_before = copy.deepcopy(np_model)
    m.compile(optimizer=keras.optimizers.SGD(lr), loss=loss)
    keras_value = float(m.train_on_batch(x, y, sample_weight=sw))
    assert_loss_close(np_before, x, y, loss, np_model.train_step(x, y, loss, lr, sample_weight=sw), keras_value,
                      sample_weight=sw, case=f"masked tagger {loss} train_step")
    ours_after = [w for layer in np_model.layers for w in layer.weights().values()]
    for a, e, w0, v in zip(ours_after, m.get_weights(), before, judgement.verdicts):
        tol = 2 * lr * v.budget + 2 * 2.0 ** -24 * np.abs(w0).max()
        worst = np.unravel_index(np.argmax(np.abs(a - e) - tol), a.shape)
        assert np.all(np.abs(a - e) <= tol), (f"weights after one step differ by {np.abs(a - e)[worst]:.3g} > "
                                              f"{tol[worst]:.3g} at {worst}")


def test_sample_weight_per_sample_matches_train_on_batch():
    """A (B,) sample_weight on a (B, 1) sigmoid output (per-sample losses (B,))."""
    rng = np.random.default_rng(11)
    m = randomize(rnn_bce_model(), rng)
    x, y = padded_ids(rng), targets(rng, "binary_crossentropy", 1)
    sw = rng.uniform(0.5, 2.0, size=B).astype(np.float32)
    value, expected = keras_class_grads(m, "binary_crossentropy", x, y, sw)
    ours_value, ours = gradients.value_and_gradients(rnn_ref.from_keras(m), x, y, "binary_crossentropy", sw)
    assert_loss_close(rnn_ref.from_keras(m), x, y, "binary_crossentropy", ours_value, value, sample_weight=sw,
                      case="embedding-simple_rnn-sigmoid bce weighted")
    assert_close(rnn_ref.from_keras(m), x, y, "binary_crossentropy", ours, expected, sample_weight=sw,
                 case="embedding-simple_rnn-sigmoid bce weighted", **RNN_DIMS)


def test_loss_weights_edges_and_errors():
    mask = np.array([[True, True, False], [False, False, False]])
    np.testing.assert_array_equal(gradients.loss_weights((2, 3), mask), [[3, 3, 0], [0, 0, 0]])  # n / valid
    assert not gradients.loss_weights((2, 3), np.zeros((2, 3), bool)).any()  # nothing valid: loss 0, as Keras
    assert gradients.loss_weights((2, 3)) is None
    np.testing.assert_array_equal(gradients.loss_weights((2,), sample_weight=[[2.0], [3.0]]), [2, 3])
    with pytest.raises(ValueError, match=r"sample_weight must have the shape of the per-sample losses \(2, 3\)"):
        gradients.loss_weights((2, 3), mask, sample_weight=[1.0, 2.0])  # Keras does not broadcast (B,) over T


@pytest.mark.parametrize("mutant", ["mask ignored in the loss", "divided by all steps", "sample weights normalised"])
def test_masked_loss_mutants_are_rejected(monkeypatch, mutant):
    rng = np.random.default_rng(9)
    loss = "binary_crossentropy"
    m = randomize(tagger_model(loss), rng)
    x, y = padded_ids(rng, left=False), step_targets(rng, loss)
    sw = rng.uniform(0.5, 2.0, size=(B, T)).astype(np.float32)
    _, expected = keras_class_grads(m, loss, x, y, sw)
    real = gradients.loss_weights
    if mutant == "mask ignored in the loss":
        monkeypatch.setattr(gradients, "loss_weights", lambda shape, mask=None, sample_weight=None, dtype=np.float32:
                            real(shape, None, sample_weight, dtype))
    elif mutant == "divided by all steps":  # padded steps weigh 0, valid ones 1 instead of n / valid
        monkeypatch.setattr(gradients, "loss_weights", lambda shape, mask=None, sample_weight=None, dtype=np.float32:
                            np.asarray(mask, dtype) * np.asarray(sample_weight, dtype))
    else:  # "mean_with_sample_weight": divided by the sum of the weights instead of n
        monkeypatch.setattr(gradients, "loss_weights", lambda shape, mask=None, sample_weight=None, dtype=np.float32:
                            real(shape, mask, sample_weight, dtype) * (np.prod(shape) / np.sum(sample_weight)))
    ours = model_gradients(rnn_ref.from_keras(m), x, y, loss, sw)
    assert_rejected(judged(rnn_ref.from_keras(m), x, y, loss, ours, expected, sample_weight=sw, **TAGGER_DIMS),
                    mutant)


def test_report_worst_errors():
    """Prints the worst error / budget per case (run with -s)."""
    for (case, dtype), ratio in sorted(WORST.items()):
        print(f"{case:45s} {dtype:8s} worst error / budget = {ratio:.3g}")
