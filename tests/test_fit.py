"""``rnn_ref.training.fit`` against Keras's ``model.fit(shuffle=False)``.

Two models, both with ``Embedding(mask_zero=True)`` and padded batches, random asymmetric
weights (``random_models.randomize``: input width != units, non-zero biases):

  (a) the demo's Embedding(V, 4) -> SimpleRNN(5) -> Dense(1, sigmoid)
  (b) Embedding(V, 4) -> Bidirectional(LSTM(3, return_sequences)) -> GRU(5) -> Dense(1, sigmoid)

Each optimizer (SGD with Nesterov momentum, Adam with AMSGrad, AdamW, RMSprop centered
with momentum, Adagrad) meets each clipping mode (none, clipnorm, clipvalue,
global_clipnorm) once over the four (model, dtype) pairs, float32 and float64 (Keras's
float64 through ``keras.config.set_floatx``, restored afterwards): 2 epochs of 7 samples in
batches of 3, so 6 steps with a partial last batch. Keras runs ``fit`` eagerly
(``run_eagerly=True``: the same arithmetic, without tracing a graph per optimizer; one case
runs the compiled graph).

The weights after training and the per-epoch losses are judged with
``rnn_ref.harness.training_judge``: the truth is the same NumPy training in float64
(``optimizer.exact_twin``), the spread three reruns of the float32 (float64) NumPy
training from weights moved by 2 ulps, the budget ``tolerance.FACTOR`` times the envelope
of Keras's error and the spread plus a floor. ``fit`` and Keras must both be within it.

Keras's TensorFlow backend hands an Embedding's gradient to the optimizer as IndexedSlices,
one row per token occurrence, and Adam, RMSprop and Adagrad square each occurrence before
the rows are summed (``ops.square`` on IndexedSlices), clipping clips each: ``fit`` does the
same (``rnn_ref.training.rows``), and the batches here repeat tokens (V = 12);
``test_repeated_tokens_are_where_keras_squares_each_occurrence`` shows that the summed
gradient would not do.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from rnn_ref.harness.judging import with_weights
from rnn_ref.harness.training_judge import judge_training, worst_ratio
from rnn_ref.training import optimizers as O
from rnn_ref.training.fit import fit, trainable_weights
from random_models import randomize, token_batch

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.keras

V, T, B, BATCH, EPOCHS = 12, 6, 7, 3, 2  # V small: tokens repeat within a batch


@contextlib.contextmanager
def floatx(dtype):
    old = keras.config.floatx()
    keras.config.set_floatx(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(old)


def build(kind, dtype, seed=1):
    inp = keras.Input((T,), dtype="int32")
    h = keras.layers.Embedding(V, 4, mask_zero=True, dtype=dtype)(inp)
    if kind == "a":
        h = keras.layers.SimpleRNN(5, dtype=dtype)(h)
    else:
        lstm = keras.layers.LSTM(3, return_sequences=True, dtype=dtype)
        h = keras.layers.Bidirectional(lstm, dtype=dtype)(h)
        h = keras.layers.GRU(5, dtype=dtype)(h)
    model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid", dtype=dtype)(h))
    randomize(model, seed)
    return model


def data(seed=0):
    rng = np.random.default_rng(seed)
    ids = token_batch(rng, B, T, V)
    assert any(len(set(row[row > 0].tolist())) < np.sum(row > 0) for row in (ids[i:i + BATCH] for i in range(0, B, BATCH))), \
        "no token repeats in a batch: the case would not show the occurrences' squares"
    return ids, rng.integers(0, 2, (B, 1)).astype(np.float64)


OPTIMIZERS = {
    "SGD nesterov": ("SGD", dict(learning_rate=0.1, momentum=0.9, nesterov=True)),
    "Adam amsgrad": ("Adam", dict(learning_rate=0.02, amsgrad=True)),
    "AdamW": ("AdamW", dict(learning_rate=0.02, weight_decay=0.1)),
    "RMSprop centered momentum": ("RMSprop", dict(learning_rate=0.01, centered=True, momentum=0.5)),
    "Adagrad": ("Adagrad", dict(learning_rate=0.1)),
}
#: Thresholds below the gradients' sizes (0.01 to 0.3 here), so that each one acts.
CLIPS = [{}, {"clipnorm": 0.05}, {"clipvalue": 0.01}, {"global_clipnorm": 0.05}]
PAIRS = [("a", "float32"), ("a", "float64"), ("b", "float32"), ("b", "float64")]
CASES = [(kind, dtype, opt, CLIPS[(i + j) % len(CLIPS)])
         for j, (kind, dtype) in enumerate(PAIRS) for i, opt in enumerate(OPTIMIZERS)]


def keras_fit(model, name, kwargs, x, y, dtype, *, epochs=EPOCHS, batch_size=BATCH, eager=True,
              sample_weight=None):
    with floatx(dtype):
        model.compile(optimizer=getattr(keras.optimizers, name)(**kwargs), loss="binary_crossentropy",
                      run_eagerly=eager)
        history = model.fit(x, y.astype(dtype), epochs=epochs, batch_size=batch_size, shuffle=False, verbose=0,
                            sample_weight=sample_weight)
    return [v.numpy() for v in model.trainable_weights], history.history["loss"]


def judged(np_model, name, kwargs, x, y, *, keras_weights, keras_losses, epochs=EPOCHS, batch_size=BATCH,
           sample_weight=None, label="fit"):
    """Verdicts of our fit (and Keras's) on the weights and losses, and the truth and spread."""
    params = trainable_weights(np_model)
    dtype = params[0].dtype

    def make_run(optimizer):
        def run(p, d):
            model = with_weights(np_model, p)
            losses = fit(model, x, d[0], "binary_crossentropy", optimizer(), epochs=epochs,
                         batch_size=batch_size, sample_weight=d[1])
            return [*trainable_weights(model), np.asarray(losses)]
        return run

    def optimizer():
        opt = getattr(O, name)(**kwargs)
        opt.floatx = str(dtype)  # Keras ran under set_floatx(dtype)
        return opt

    run = make_run(optimizer)
    exact = make_run(lambda: optimizer().exact_twin(dtype))
    d = [y.astype(dtype), None if sample_weight is None else np.asarray(sample_weight, dtype)]
    ours = run(params, d)
    names = [*(f"w{i} {p.shape}" for i, p in enumerate(params)), "epoch losses"]
    steps = epochs * -(-len(x) // batch_size)
    verdicts, truth, spread = judge_training(label, names, ours, [*keras_weights, np.asarray(keras_losses)],
                                             run, exact, params, d, steps)
    return verdicts, ours, truth, spread


def assert_ok(verdicts):
    bad = [v for v in verdicts if not v.ok]
    assert not bad, "\n".join(v.summary() for v in bad)


@pytest.mark.parametrize("kind, dtype, opt, clip", CASES,
                         ids=[f"{k}-{d}-{o}-{next(iter(c), 'noclip')}" for k, d, o, c in CASES])
def test_fit_equals_keras_fit(kind, dtype, opt, clip):
    name, kwargs = OPTIMIZERS[opt]
    kwargs = {**kwargs, **clip}
    x, y = data()
    with floatx(dtype):
        model = build(kind, dtype)
    import rnn_ref
    np_model = rnn_ref.from_keras(model)
    kw, kl = keras_fit(model, name, kwargs, x, y, dtype)
    verdicts, ours, truth, _ = judged(np_model, name, kwargs, x, y, keras_weights=kw, keras_losses=kl)
    assert_ok(verdicts)
    moved = max(float(np.max(np.abs(t - p))) for t, p in zip(truth, trainable_weights(np_model)))
    assert moved > 1e-3, f"the training hardly moved the weights ({moved:.3g}): the case shows nothing"


def test_fit_in_place_graph_mode_and_sample_weight():
    """The compiled graph (run_eagerly=False), per-sample weights, and fit training the
    model it is given in place, its history Keras's."""
    import rnn_ref
    x, y = data(1)
    sw = np.linspace(0.5, 2.0, B)
    model = build("a", "float32", seed=2)
    np_model = rnn_ref.from_keras(model)
    kwargs = dict(learning_rate=0.02, clipnorm=0.05)
    kw, kl = keras_fit(model, "Adam", kwargs, x, y, "float32", eager=False, sample_weight=sw)
    verdicts, ours, _, _ = judged(np_model, "Adam", kwargs, x, y, keras_weights=kw, keras_losses=kl,
                                  sample_weight=sw)
    assert_ok(verdicts)
    losses = fit(np_model, x, y.astype(np.float32), "binary_crossentropy", O.Adam(**kwargs), epochs=EPOCHS,
                 batch_size=BATCH, sample_weight=sw)
    assert all(np.array_equal(a, b) for a, b in zip(trainable_weights(np_model), ours[:-1]))
    assert np.array_equal(losses, ours[-1])


def test_the_budget_grows_with_a_chaotic_training():
    """A gentle run and a run at 40 times the learning rate for 4 times the steps: the
    spread of the second is larger by orders of magnitude, Keras's error too, and Keras
    still passes; the budget follows the training instead of raising a false alarm."""
    import rnn_ref
    x, y = data(2)
    budgets = {}
    for label, lr, epochs in [("gentle", 0.05, 1), ("chaotic", 2.0, 4)]:
        model = build("a", "float32", seed=3)
        np_model = rnn_ref.from_keras(model)
        kwargs = dict(learning_rate=lr, momentum=0.9)
        kw, kl = keras_fit(model, "SGD", kwargs, x, y, "float32", epochs=epochs)
        verdicts, _, _, spread = judged(np_model, "SGD", kwargs, x, y, keras_weights=kw, keras_losses=kl,
                                        epochs=epochs, label=label)
        assert_ok(verdicts)
        budgets[label] = (max(float(np.max(s)) for s in spread[:-1]), max(v.worst["budget"] for v in verdicts))
    (s0, b0), (s1, b1) = budgets["gentle"], budgets["chaotic"]
    assert s1 > 100 * s0 and b1 > 100 * b0, budgets


def test_repeated_tokens_are_where_keras_squares_each_occurrence(monkeypatch):
    """A token three times in a batch: Keras's Adam moves its embedding row with the sum of
    the occurrences' squares in v. fit passes; fit given the summed gradient fails, and
    SGD, linear in the gradient, cannot tell the two apart."""
    import rnn_ref
    import importlib
    fit_module = importlib.import_module("rnn_ref.training.fit")  # the module (rnn_ref.training.fit is the function)
    x, y = data(3)
    x[1, -2:] = x[0, -1]
    x[1, :2] = x[0, -1]
    dense = lambda m, *a: (lambda v, g: (v, [np.asarray(w).astype(p.dtype) for w, p in  # noqa: E731
                                             zip(g, trainable_weights(m))]))(*fit_module.value_and_gradients(m, *a))
    for name, summed_ok in [("SGD", True), ("Adam", False)]:
        for summed in (False, True):
            model = build("a", "float32", seed=4)
            np_model = rnn_ref.from_keras(model)
            kwargs = dict(learning_rate=0.05)
            kw, kl = keras_fit(model, name, kwargs, x, y, "float32", epochs=1)
            with monkeypatch.context() as patch:
                if summed:
                    patch.setattr(fit_module, "gradients", dense)
                verdicts, _, _, _ = judged(np_model, name, kwargs, x, y, keras_weights=kw, keras_losses=kl,
                                           epochs=1)
            expect = summed_ok if summed else True
            assert all(v.ok for v in verdicts) == expect, (name, summed, [v.summary() for v in verdicts if not v.ok])


def test_epoch_loss_is_the_batch_losses_weighed_by_their_sizes():
    import rnn_ref
    from rnn_ref.models.gradients import value_and_gradients
    x, y = data(4)
    np_model = rnn_ref.from_keras(build("a", "float64"))
    frozen = O.SGD(learning_rate=0.0)  # the weights stay
    (loss,) = fit(np_model, x, y, "binary_crossentropy", frozen, epochs=1, batch_size=BATCH)
    parts = [(value_and_gradients(np_model, x[i:i + BATCH], y[i:i + BATCH], "binary_crossentropy")[0],
              len(x[i:i + BATCH])) for i in range(0, B, BATCH)]
    assert [n for _, n in parts] == [3, 3, 1]
    total = 0.0
    for v, n in parts:  # the same sum in the same order
        total = total + v * n
    assert loss == total / B


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=0), "batch_size must be a positive int, got 0"),
    (dict(epochs=-1), "epochs must be a non-negative int, got -1"),
    (dict(sample_weight=np.ones(3)), r"sample_weight must have one row per sample \(7\), got 3"),
])
def test_fit_refuses_what_keras_refuses(kwargs, message):
    import rnn_ref
    x, y = data()
    np_model = rnn_ref.from_keras(build("a", "float32"))
    with pytest.raises(ValueError, match=message):
        fit(np_model, x, y, "binary_crossentropy", O.SGD(), **kwargs)


def test_train_step_carries_the_state_as_fit_does():
    """train_step(np_model, x, y, loss, optimizer, state) over the batches is fit's epoch."""
    import rnn_ref
    from rnn_ref.training.fit import train_step
    x, y = data(5)
    a = rnn_ref.from_keras(build("b", "float32", seed=5))
    b = rnn_ref.from_keras(build("b", "float32", seed=5))
    fit(a, x, y, "binary_crossentropy", O.RMSprop(learning_rate=0.01, momentum=0.5), epochs=1, batch_size=BATCH)
    state, opt = None, O.RMSprop(learning_rate=0.01, momentum=0.5)
    for i in range(0, B, BATCH):
        _, state = train_step(b, x[i:i + BATCH], y[i:i + BATCH], "binary_crossentropy", opt, state)
    assert state.iterations == 3
    assert all(np.array_equal(p, q) for p, q in zip(trainable_weights(a), trainable_weights(b)))
