"""``python -m rnn_ref check --training``: a learner's training step of the textbook softmax RNN.

* the reference it judges against, ``rnn_ref.training.softmax_rnn.reference_training``,
  equals Keras's ``fit`` of SimpleRNN(return_sequences) -> Dense(softmax) with
  sparse_categorical_crossentropy, within the training budget (``harness.training_judge``),
  for each optimizer, float32 and float64, random asymmetric weights and non-zero biases;
* the example examples/train_softmax_rnn_adagrad.py passes (exit 0), in both layouts;
* each mutant of rnn_ref/implementations/training_mutants.py fails (exit 1) with the
  smallest case hypothesis shrinks to, and the error / budget it prints;
* a target that cannot be loaded or called exits 2, saying why.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from rnn_ref._tf import keras_floatx
from rnn_ref.commands import check_training
from rnn_ref.harness.training_judge import judge_training, worst_ratio
from rnn_ref.harness.training_properties import NAMES, softmax_cases
from rnn_ref.training import optimizers as O
from rnn_ref.training.softmax_rnn import reference_training

EXAMPLE = "examples/train_softmax_rnn_adagrad.py:step"
ADAGRAD = ["--optimizer", "adagrad", "--learning-rate", "0.1", "--clipvalue", "5"]


def run(capsys, *argv):
    status = check_training.main([*argv])
    out = capsys.readouterr()
    return status, out.out + out.err


def test_the_example_passes(capsys):
    status, out = run(capsys, EXAMPLE, *ADAGRAD, "--max-examples", "15")
    assert status == 0, out
    assert re.findall(r"^pass\s+(\w+)", out, re.M) == ["one_step", "several_steps", "large_gradients"], out


def test_dispatch_from_check(capsys):
    from rnn_ref.commands import check
    status = check.main(["--training", EXAMPLE, *ADAGRAD, "--max-examples", "3", "--property", "one_step"])
    assert status == 0, capsys.readouterr().out


#: mutant -> (the property that must fail, the smallest case it must shrink to: a substring)
MUTANTS = {
    "adagrad_eps_outside_sqrt": ("one_step", "N=1 steps, B=1, T=1, D=1, H=1, K=2, float64"),
    "adagrad_accumulator_from_0": ("one_step", "N=1 steps, B=1, T=1, D=1, H=1, K=2, float32"),
    "adagrad_clip_after_update": ("large_gradients", "N=1 steps, B=1, T=1, D=1, H=1, K=2, float32, input scale 100"),
    "adagrad_summed_gradients": ("one_step", "N=1 steps, B=1, T=2, D=1, H=1, K=2, float32"),
}


@pytest.mark.parametrize("mutant", list(MUTANTS))
def test_mutant_fails_with_a_minimal_case(capsys, mutant):
    prop, smallest = MUTANTS[mutant]
    status, out = run(capsys, f"rnn_ref.implementations.training_mutants:{mutant}", *ADAGRAD,
                      "--property", prop, "--max-examples", "25")
    assert status == 1, out
    assert re.search(rf"^FAIL\s+{prop}", out, re.M), out
    assert f"smallest failing case: {smallest}" in out, out
    ratio = float(re.search(r"error / budget ([0-9.e+]+)", out).group(1))
    assert ratio > 100, out  # far beyond what another platform's rounding could close


def test_the_correct_mutant_module_step_passes(capsys):
    status, out = run(capsys, "rnn_ref.implementations.training_mutants:adagrad_step", *ADAGRAD, "--max-examples", "10")
    assert status == 0, out


def keras_layout_step(params, x, y, state):
    """A Keras-layout learner: rnn_ref's own train_step with Adam(0.01, amsgrad)."""
    from rnn_ref.training.fit import train_step
    from rnn_ref.training.softmax_rnn import model
    opt = O.Adam(learning_rate=0.01, amsgrad=True)
    opt.floatx = str(params[0].dtype)  # as the check's reference: a float64 fit under set_floatx("float64")
    m = model(params)
    _, state["s"] = train_step(m, x, y, "sparse_categorical_crossentropy", opt, state.get("s"))
    return [w for layer in m.layers for w in layer.weights().values()]


def test_keras_layout_and_another_optimizer(capsys):
    status, out = run(capsys, f"{__file__}:keras_layout_step", "--layout", "keras", "--optimizer", "adam",
                      "--learning-rate", "0.01", "--amsgrad", "--max-examples", "10")
    assert status == 0, out
    status, out = run(capsys, f"{__file__}:keras_layout_step", "--layout", "keras", "--optimizer", "adam",
                      "--learning-rate", "0.01", "--max-examples", "10", "--property", "several_steps")
    assert status == 1 and "smallest failing case" in out, out  # the check's settings lack amsgrad


def no_state(params, x, y):
    raise TypeError("this step needs a state")


@pytest.mark.parametrize("target, extra, message", [
    ("examples/nowhere.py:step", [], "error:"),
    (f"{__file__}:no_state", [], "cannot be called as a training step on a tiny case"),
    (EXAMPLE, ["--layout", "keras"], "cannot be called as a training step"),
])
def test_unusable_targets_exit_2(capsys, target, extra, message):
    status, out = run(capsys, target, *ADAGRAD, *extra)
    assert status == 2 and message in out, out


def test_settings_the_optimizer_refuses_exit_2(capsys):
    status, out = run(capsys, EXAMPLE, "--optimizer", "adagrad", "--clipvalue", "5", "--clipnorm", "1")
    assert status == 2 and "only one of clipnorm, clipvalue and global_clipnorm" in out, out


# -- the reference equals Keras's fit --------------------------------------------------------

keras = pytest.importorskip("keras")

FIT_OPTIMIZERS = [("Adagrad", dict(learning_rate=0.1, clipvalue=5.0)),
                  ("SGD", dict(learning_rate=0.1, momentum=0.9, nesterov=True, clipnorm=0.5)),
                  ("Adam", dict(learning_rate=0.02, amsgrad=True, global_clipnorm=0.5)),
                  ("AdamW", dict(learning_rate=0.02, weight_decay=0.1, clipvalue=0.05)),
                  ("RMSprop", dict(learning_rate=0.01, centered=True, momentum=0.5))]


@pytest.mark.keras
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name, kwargs", FIT_OPTIMIZERS, ids=[n for n, _ in FIT_OPTIMIZERS])
def test_the_reference_equals_keras_fit(name, kwargs, dtype):
    from hypothesis import find
    case = find(softmax_cases(steps=(3, 3), scales=(30.0,)),  # large inputs: the clipping acts
                lambda c: c.dtype == dtype and c.xs.shape[1] == 3 and c.xs.shape[2] > 1 and c.params[0].shape[0] > 1
                and c.params[1].shape[0] > 2)
    N, B, T, D = case.xs.shape
    H, K = case.params[1].shape[0], case.params[4].shape[0]
    with keras_floatx(dtype):  # floatx and the global dtype policy, restored after
        m = keras.Sequential([keras.Input((T, D), dtype=dtype), keras.layers.SimpleRNN(H, return_sequences=True, dtype=dtype),
                              keras.layers.Dense(K, activation="softmax", dtype=dtype)])
        m.set_weights(case.params)
        m.compile(optimizer=getattr(keras.optimizers, name)(**kwargs), loss="sparse_categorical_crossentropy",
                  run_eagerly=True)
        m.fit(case.xs.reshape(N * B, T, D), case.ys.reshape(N * B, T), batch_size=B, epochs=1, shuffle=False, verbose=0)
        keras_weights = [w.numpy() for w in m.trainable_weights]

    def optimizer(dt):
        opt = getattr(O, name)(**kwargs)
        opt.floatx = dtype
        return opt if dt == "same" else opt.exact_twin(dtype)

    def run(p, data):
        return reference_training(p, data[0], data[1], optimizer("same"))

    def exact(p, data):
        return reference_training(p, data[0], data[1], optimizer("exact"))

    ours = run(case.params, [case.xs, case.ys])
    verdicts, truth, _ = judge_training("reference", NAMES, ours, keras_weights, run, exact, case.params,
                                        [case.xs, case.ys], steps=N)
    assert all(v.ok for v in verdicts), "\n".join(v.summary() for v in verdicts if not v.ok)
    assert worst_ratio(verdicts) <= 1
    assert max(float(np.max(np.abs(t - p))) for t, p in zip(truth, case.params)) > 1e-3  # it trained
