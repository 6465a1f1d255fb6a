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

The weights after training and the per-epoch losses are judged by the training
catalogue's ``fit_equals_keras`` property (``TRAINING_PROPERTIES``, kind ``"fit"``, with
``rnn_ref.harness.training_judge.judge_fit``): the truth is the same NumPy training in
float64 (``optimizer.exact_twin``), the spread three reruns of the float32 (float64) NumPy
training from weights moved by 2 ulps, the budget ``tolerance.FACTOR`` times the envelope
of Keras's error and the spread plus a floor. ``fit`` and Keras must both be within it.
The property fails on a fit that sums the Embedding's gradient rows before Adam squares
them, drops the last partial batch, or sums the batch's loss instead of averaging it: the
slip is in the float64 twin too, so Keras's weights land far outside the budget around it.

Keras's TensorFlow backend hands an Embedding's gradient to the optimizer as IndexedSlices,
one row per token occurrence, and Adam, RMSprop and Adagrad square each occurrence before
the rows are summed (``ops.square`` on IndexedSlices), clipping clips each: ``fit`` does the
same (``rnn_ref.training.rows``), and the batches here repeat tokens (V = 12);
``test_repeated_tokens_are_where_keras_squares_each_occurrence`` shows that the summed
gradient would not do.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnn_ref._tf import keras_floatx
from rnn_ref.commands.report import training as report_training
from rnn_ref.harness.judging import with_weights
from rnn_ref.harness.training_judge import FitRuns
from rnn_ref.harness.training_properties import TRAINING_PROPERTIES, TrainingFailure
from rnn_ref.training import optimizers as O
from rnn_ref.training.fit import fit, trainable_weights
from random_models import randomize, token_batch

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.keras

V, T, B, BATCH, EPOCHS = 12, 6, 7, 3, 2  # V small: tokens repeat within a batch


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


#: The optimizers and clipping thresholds the report's training section sweeps, one definition.
OPTIMIZERS = report_training.OPTIMIZERS
CLIPS = list(report_training.CLIPS.values())
PAIRS = [("a", "float32"), ("a", "float64"), ("b", "float32"), ("b", "float64")]
CASES = [(kind, dtype, opt, CLIPS[(i + j) % len(CLIPS)])
         for j, (kind, dtype) in enumerate(PAIRS) for i, opt in enumerate(OPTIMIZERS)]


def keras_fit(model, name, kwargs, x, y, dtype, *, epochs=EPOCHS, batch_size=BATCH, eager=True,
              sample_weight=None):
    with keras_floatx(dtype):
        model.compile(optimizer=getattr(keras.optimizers, name)(**kwargs), loss="binary_crossentropy",
                      run_eagerly=eager)
        history = model.fit(x, y.astype(dtype), epochs=epochs, batch_size=batch_size, shuffle=False, verbose=0,
                            sample_weight=sample_weight)
    return [v.numpy() for v in model.trainable_weights], history.history["loss"]


FIT_EQUALS_KERAS = TRAINING_PROPERTIES["fit_equals_keras"]


def fit_runs(np_model, name, kwargs, x, y, *, keras_weights, keras_losses, epochs=EPOCHS, batch_size=BATCH,
             sample_weight=None, label="fit") -> FitRuns:
    """Our fit of ``np_model`` (a copy per run) and its float64 twin, beside Keras's result."""
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

    d = [y.astype(dtype), None if sample_weight is None else np.asarray(sample_weight, dtype)]
    return FitRuns(make_run(optimizer), make_run(lambda: optimizer().exact_twin(dtype)), params, d,
                   keras_weights, keras_losses, len(x), batch_size, epochs, label)


def judged(np_model, name, kwargs, x, y, **kw):
    """The catalogue's fit property on our fit and Keras's: raises ``TrainingFailure`` (an
    AssertionError) unless both are within the budget; the ``FitJudgement`` (verdicts, our
    weights and losses, the truth and the spread) otherwise."""
    return FIT_EQUALS_KERAS.check(fit_runs(np_model, name, kwargs, x, y, **kw))


@pytest.mark.parametrize("kind, dtype, opt, clip", CASES,
                         ids=[f"{k}-{d}-{o}-{next(iter(c), 'noclip')}" for k, d, o, c in CASES])
def test_fit_equals_keras_fit(kind, dtype, opt, clip):
    name, kwargs = OPTIMIZERS[opt]
    kwargs = {**kwargs, **clip}
    x, y = data()
    with keras_floatx(dtype):
        model = build(kind, dtype)
    import rnn_ref
    np_model = rnn_ref.from_keras(model)
    kw, kl = keras_fit(model, name, kwargs, x, y, dtype)
    judgement = judged(np_model, name, kwargs, x, y, keras_weights=kw, keras_losses=kl)
    assert judgement.ratio <= 1 and judgement.keras_ratio <= 1
    moved = max(float(np.max(np.abs(t - p))) for t, p in zip(judgement.truth, trainable_weights(np_model)))
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
    ours = judged(np_model, "Adam", kwargs, x, y, keras_weights=kw, keras_losses=kl, sample_weight=sw).ours
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
        judgement = judged(np_model, "SGD", kwargs, x, y, keras_weights=kw, keras_losses=kl, epochs=epochs,
                           label=label)
        budgets[label] = (max(float(np.max(s)) for s in judgement.spread[:-1]),
                          max(v.worst["budget"] for v in judgement.verdicts))
    (s0, b0), (s1, b1) = budgets["gentle"], budgets["chaotic"]
    assert s1 > 100 * s0 and b1 > 100 * b0, budgets


#: The least error / budget a mutant must reach. Measured (float32, model (a), Keras's weights
#: against the mutant's float64 twin): summed Embedding rows under Adam 1.1e4, the last
#: partial batch dropped 6.8e4, the loss summed over the batch 1.5e5. A platform's rounding
#: moves a ratio by a few units, not by a factor of 10.
LEAST_RATIO = 1e3


def fit_module():
    import importlib
    return importlib.import_module("rnn_ref.training.fit")  # the module (rnn_ref.training.fit is the function)


def summed_rows(module):
    """``gradients`` giving the Embedding's summed (dense) gradient, one row per token."""
    return lambda m, *a: (lambda v, g: (v, [np.asarray(w).astype(p.dtype) for w, p in  # noqa: E731
                                            zip(g, trainable_weights(m))]))(*module.value_and_gradients(m, *a))


def test_repeated_tokens_are_where_keras_squares_each_occurrence(monkeypatch):
    """A token three times in a batch: Keras's Adam moves its embedding row with the sum of
    the occurrences' squares in v. fit passes; fit given the summed gradient fails the
    catalogue's property, far beyond its budget, and SGD, linear in the gradient, cannot tell
    the two apart."""
    import rnn_ref
    module = fit_module()
    x, y = data(3)
    x[1, -2:] = x[0, -1]
    x[1, :2] = x[0, -1]
    for name, summed_ok in [("SGD", True), ("Adam", False)]:
        for summed in (False, True):
            model = build("a", "float32", seed=4)
            np_model = rnn_ref.from_keras(model)
            kwargs = dict(learning_rate=0.05)
            kw, kl = keras_fit(model, name, kwargs, x, y, "float32", epochs=1)
            with monkeypatch.context() as patch:
                if summed:
                    patch.setattr(module, "gradients", summed_rows(module))
                if summed and not summed_ok:
                    with pytest.raises(TrainingFailure) as failure:
                        judged(np_model, name, kwargs, x, y, keras_weights=kw, keras_losses=kl, epochs=1)
                    assert failure.value.ratio > LEAST_RATIO, (name, str(failure.value))
                else:
                    judgement = judged(np_model, name, kwargs, x, y, keras_weights=kw, keras_losses=kl, epochs=1)
                    assert judgement.ratio <= 1 and judgement.keras_ratio <= 1, (name, summed)


def dropping_the_last_partial_batch(module):
    """Batches of ``batch_size`` only: the 7th sample never trains (Keras keeps a partial batch)."""
    cut = module.batches
    return "batches", lambda n, b: [s for s in cut(n, b) if s.stop - s.start == b]


def summing_the_loss(module):
    """The batch's loss (and so its gradients) summed over the samples instead of averaged."""
    value_and_gradients = module.value_and_gradients

    def summed(model, x, *a, **kw):
        value, grads = value_and_gradients(model, x, *a, **kw)
        return value * len(x), [np.asarray(g) * len(x) for g in grads]
    return "value_and_gradients", summed


FIT_MUTANTS = {"last partial batch dropped": dropping_the_last_partial_batch,
               "loss summed over the batch": summing_the_loss}


@pytest.mark.parametrize("mutant", list(FIT_MUTANTS))
def test_the_fit_property_fails_on_a_mutant_fit(monkeypatch, mutant):
    """A fit with a plausible slip fails the catalogue's property, its error / budget far
    above 1, where the correct fit of the same case passes."""
    import rnn_ref
    make = FIT_MUTANTS[mutant]
    x, y = data(6)
    model = build("a", "float32", seed=6)
    np_model = rnn_ref.from_keras(model)
    kwargs = dict(learning_rate=0.05, momentum=0.9)
    kw, kl = keras_fit(model, "SGD", kwargs, x, y, "float32")
    judgement = judged(np_model, "SGD", kwargs, x, y, keras_weights=kw, keras_losses=kl)
    assert judgement.ratio <= 1 and judgement.keras_ratio <= 1
    with monkeypatch.context() as patch:
        patch.setattr(fit_module(), *make(fit_module()))
        with pytest.raises(TrainingFailure) as failure:
            judged(np_model, "SGD", kwargs, x, y, keras_weights=kw, keras_losses=kl, label=mutant)
    assert failure.value.ratio > LEAST_RATIO, str(failure.value)


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
