"""The report's training section (``rnn_ref.commands.report.training``): the quick sweep
runs and passes, and a fit with a slip makes its tally show an error / budget above 1."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest

from rnn_ref.commands.report import training
from rnn_ref.training import optimizers as O

pytest.importorskip("keras")
pytestmark = pytest.mark.keras

#: The least error / budget a mutant must reach (measured, Keras against the mutant's truth: 2.2e4 for Adam's epsilon
#: inside the square root, 2.5e4 for the last partial batch dropped; rounding moves them by units).
LEAST_RATIO = 1e3


@pytest.fixture(scope="module")
def quick():
    return training.sweep_training("quick")


def test_the_quick_training_sweep_is_within_budget(quick):
    assert quick["fits"] == training.SIZES["quick"] == 2
    assert [r["optimizer"] for r in quick["rows"]] == ["Adam amsgrad", "SGD nesterov"]
    for r in quick["rows"]:
        assert r["passed"] and r["keras_passed"], r
        assert 0 < r["ratio"] <= 1 and 0 < r["keras_ratio"] <= 1 and r["case_ratio"] <= 1, r
        assert r["needed_factor"] == pytest.approx(r["ratio"] * training.tolerance.FACTOR)
        assert r["moved"] > 1e-3, "the training hardly moved the weights: the case shows nothing"
    assert quick["failed"] == quick["keras_failed"] == 0
    assert quick["margin"] >= 1
    assert quick["max_ratio"] == max(r["ratio"] for r in quick["rows"])
    json.dumps(quick, allow_nan=False)  # report.json takes it as it is
    line = training.summary_line(quick)
    assert line.startswith("training: 2 fits, needed FACTOR max ") and "(Keras max " in line
    assert f"FACTOR {training.tolerance.FACTOR:g} is " in line
    table = training.training_section(quick)
    assert table.count("\n| Adam amsgrad, clipnorm, float32 |") == 1 and "**failed**" not in table


def test_the_sizes_hold_what_the_report_says():
    default, full = training.sized("default"), training.sized("full")
    assert len(default) == training.SIZES["default"] == 21  # 5 optimizers x 4 clippings + the chaotic run
    assert {c["dtype"] for c in full} == {"float32", "float64"} and len(full) == 41
    assert {c["clip"] for c in default} == set(training.CLIPS)
    assert sum(c["label"].startswith("chaotic") for c in default) == 1


class EpsilonInsideTheRoot(O.Adam):
    """Adam dividing by sqrt(v + eps) instead of sqrt(v) + eps."""

    def update(self, g, p, slots, c, t):
        m = slots["momentum"] + (g - slots["momentum"]) * c["1-beta_1"]
        v = slots["velocity"] + (O.square(g) - slots["velocity"]) * c["1-beta_2"]
        new = {"momentum": m, "velocity": v}
        if self.amsgrad:
            v = new["velocity_hat"] = np.maximum(slots["velocity_hat"], v)
        return p - (m * self.alpha(c, t, p.dtype)) / np.sqrt(v + c["epsilon"]), new


def _dropping_the_last_partial_batch(patch):
    module = importlib.import_module("rnn_ref.training.fit")  # the module, not the function
    cut = module.batches
    patch.setattr(module, "batches", lambda n, b: [s for s in cut(n, b) if s.stop - s.start == b])


MUTANTS = {"Adam's epsilon inside the square root": lambda patch: patch.setattr(O, "Adam", EpsilonInsideTheRoot),
           "the last partial batch dropped": _dropping_the_last_partial_batch}


@pytest.mark.parametrize("mutant", list(MUTANTS))
def test_a_mutant_fit_shows_in_the_tally(monkeypatch, quick, mutant):
    adam = [c for c in training.sized("quick") if c["optimizer"] == "Adam amsgrad"]
    with monkeypatch.context() as patch:
        MUTANTS[mutant](patch)
        tally = training.sweep_training(cases=adam)
    (row,) = tally["rows"]
    assert not row["passed"] and not row["keras_passed"] and tally["failed"] == tally["keras_failed"] == 1
    # the mutant's float64 twin has the slip too: Keras lands far outside the budget around it
    assert tally["max_case_ratio"] == row["case_ratio"] == row["keras_ratio"] > LEAST_RATIO, (mutant, row)
    assert tally["keras_needed_factor_max"] > LEAST_RATIO * training.tolerance.FACTOR
    assert tally["margin"] < 1 / LEAST_RATIO
    assert "**failed**" in training.training_section(tally)
