"""The training section of the report: the FACTOR a fit against Keras's ``model.fit`` needs.

A small sweep of fits of the demo-style model Embedding(12, 4, mask_zero) -> SimpleRNN(5)
-> Dense(1, sigmoid) (random asymmetric weights, non-zero biases, padded batches that repeat
tokens; 2 epochs of 7 samples in batches of 3, so 6 steps with a partial last batch):
each optimizer (SGD with Nesterov momentum, Adam with AMSGrad, AdamW, RMSprop centered
with momentum, Adagrad) with each clipping mode (none, clipnorm, clipvalue,
global_clipnorm), plus one chaotic run (SGD with momentum 0.9 at learning rate 2.0 for 4
epochs). Keras runs ``fit`` eagerly (``run_eagerly=True``, ``shuffle=False``); rnn_ref's
``fit`` and Keras's weights and losses are judged by ``training_judge.judge_fit`` (float64
truth, the spread of reruns from weights moved 2 ulps, ``tolerance.FACTOR`` times the
envelope plus a floor). Each case records the worst error / budget of rnn_ref and of
Keras, and the FACTOR each needed (ratio x FACTOR: for a passing element an upper bound of
(error - floor) / envelope). A fit with a slip shows in Keras's ratio, ``keras_ratio``: its
float64 twin has the slip too, so Keras lands outside FACTOR x spread around that truth,
while rnn_ref's own budget grows with Keras's error (the verdict then fails as "Keras
disagrees"); ``case_ratio``, the larger of the two, is what the catalogue's ``"fit"``
property holds to 1.

Sizes (``SIZES``): ``quick`` 2 fits, ``default`` the 20 float32 fits and the chaotic run,
``full`` the same in float64 too. It runs in the report's own process, after the Dask
sweeps (``cli.run_report``).
"""

from __future__ import annotations

import time

import numpy as np

from rnn_ref._tf import keras_floatx
from rnn_ref.harness import tolerance
from rnn_ref.harness.cases import orthogonal
from rnn_ref.harness.judging import with_weights
from rnn_ref.harness.training_judge import FitRuns, judge_fit
from rnn_ref.training import optimizers as O
from rnn_ref.training.fit import fit, trainable_weights

V, T, B, BATCH, EPOCHS = 12, 6, 7, 3, 2  # V small: tokens repeat within a batch
GAIN = 0.9  # norm of the recurrent kernel: each step contracts (the chaotic run's learning rate does not)

OPTIMIZERS = {
    "SGD nesterov": ("SGD", dict(learning_rate=0.1, momentum=0.9, nesterov=True)),
    "Adam amsgrad": ("Adam", dict(learning_rate=0.02, amsgrad=True)),
    "AdamW": ("AdamW", dict(learning_rate=0.02, weight_decay=0.1)),
    "RMSprop centered momentum": ("RMSprop", dict(learning_rate=0.01, centered=True, momentum=0.5)),
    "Adagrad": ("Adagrad", dict(learning_rate=0.1)),
}
#: Thresholds below the gradients' sizes (0.01 to 0.3 here), so that each one acts.
CLIPS = {"none": {}, "clipnorm": {"clipnorm": 0.05}, "clipvalue": {"clipvalue": 0.01},
         "global_clipnorm": {"global_clipnorm": 0.05}}


class Case(dict):
    """One fit: ``label``, ``optimizer`` (a key of OPTIMIZERS or "SGD momentum"), ``name`` and
    ``kwargs`` of the optimizer class, ``clip``, ``dtype``, ``epochs``, ``data_seed``, ``model_seed``."""


def grid(dtypes=("float32",)) -> list:
    """Every optimizer with every clipping mode in each dtype, then the chaotic run."""
    cases = [Case(label=f"{opt}, {clip}, {dtype}", optimizer=opt, name=OPTIMIZERS[opt][0],
                  kwargs={**OPTIMIZERS[opt][1], **CLIPS[clip]}, clip=clip, dtype=dtype, epochs=EPOCHS,
                  data_seed=0, model_seed=1)
             for dtype in dtypes for opt in OPTIMIZERS for clip in CLIPS]
    cases.append(Case(label="chaotic: SGD momentum 0.9, lr 2.0, 4 epochs, float32", optimizer="SGD momentum",
                      name="SGD", kwargs=dict(learning_rate=2.0, momentum=0.9), clip="none", dtype="float32",
                      epochs=4, data_seed=2, model_seed=3))
    return cases


def sized(size: str) -> list:
    """The cases of a report size: "quick", "default" or "full"."""
    if size == "quick":
        by = {c["label"]: c for c in grid()}
        return [by["Adam amsgrad, clipnorm, float32"], by["SGD nesterov, none, float32"]]
    return grid(("float32", "float64") if size == "full" else ("float32",))


SIZES = {"quick": 2, "default": len(grid()), "full": len(grid(("float32", "float64")))}


# -- the model, the data, Keras's fit ------------------------------------------------------

def random_weight(name: str, shape: tuple, rng) -> np.ndarray:
    """A random weight for a Keras variable called ``name``: asymmetric, biases non-zero."""
    if name == "recurrent_kernel":  # (U, G U): G blocks, each GAIN times a non-symmetric orthogonal matrix
        U = shape[0]
        return np.concatenate([orthogonal(rng, U, GAIN) for _ in range(shape[1] // U)], axis=1)
    if name == "kernel":  # (D, G U), or a Dense's (N, K): pre-activations of order 1
        return rng.standard_normal(shape) / np.sqrt(shape[0])
    if name == "bias":
        w = 0.5 * rng.standard_normal(shape)
        w[np.abs(w) < 0.05] = 0.3  # non-zero, so a dropped bias shows
        return w
    if name == "embeddings":  # (V, E)
        return rng.standard_normal(shape)
    raise ValueError(f"no random rule for weight {name!r}")


def build(keras, dtype: str, seed: int):
    """Embedding(V, 4, mask_zero) -> SimpleRNN(5) -> Dense(1, sigmoid), random weights from ``seed``."""
    inp = keras.Input((T,), dtype="int32")
    h = keras.layers.Embedding(V, 4, mask_zero=True, dtype=dtype)(inp)
    h = keras.layers.SimpleRNN(5, dtype=dtype)(h)
    model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid", dtype=dtype)(h))
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([random_weight(v.name, tuple(v.shape), rng).astype(v.dtype) for v in layer.weights])
    return model


def data(seed: int):
    """(ids, labels): B padded rows of T token ids in [1, V) (row 0 left-padded, row 1
    right-padded, the others either way or not), 0/1 labels as float64."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, V, size=(B, T))
    for b in range(B):
        n_pad = int(rng.integers(1, T - 1))
        style = ("left", "right")[b] if b < 2 else rng.choice(["left", "right", "none"])
        if style == "left":
            ids[b, :n_pad] = 0
        elif style == "right":
            ids[b, T - n_pad:] = 0
    return ids, rng.integers(0, 2, (B, 1)).astype(np.float64)


def keras_fit(keras, model, case: Case, x, y):
    """Keras's weights and per-epoch losses after ``model.fit(shuffle=False)``, run eagerly."""
    dtype = case["dtype"]
    with keras_floatx(dtype):
        model.compile(optimizer=getattr(keras.optimizers, case["name"])(**case["kwargs"]),
                      loss="binary_crossentropy", run_eagerly=True)
        history = model.fit(x, y.astype(dtype), epochs=case["epochs"], batch_size=BATCH, shuffle=False, verbose=0)
    return [v.numpy() for v in model.trainable_weights], history.history["loss"]


def fit_runs(np_model, case: Case, x, y, keras_weights, keras_losses) -> FitRuns:
    """rnn_ref's fit of ``np_model`` (a copy per run) and its float64 twin, beside Keras's result.
    The optimizer class is looked up in ``rnn_ref.training.optimizers`` at each run."""
    params = trainable_weights(np_model)
    dtype = params[0].dtype

    def optimizer():
        opt = getattr(O, case["name"])(**case["kwargs"])
        opt.floatx = str(dtype)  # Keras ran under set_floatx(dtype)
        return opt

    def make_run(make_optimizer):
        def run(p, d):
            model = with_weights(np_model, p)
            losses = fit(model, x, d[0], "binary_crossentropy", make_optimizer(), epochs=case["epochs"],
                         batch_size=BATCH)
            return [*trainable_weights(model), np.asarray(losses)]
        return run

    return FitRuns(make_run(optimizer), make_run(lambda: optimizer().exact_twin(dtype)), params,
                   [y.astype(dtype), None], keras_weights, keras_losses, len(x), BATCH, case["epochs"],
                   case["label"])


def run_case(keras, case: Case) -> dict:
    """One fit of Keras and of rnn_ref, judged: the row of the training section."""
    import rnn_ref

    t0 = time.perf_counter()
    x, y = data(case["data_seed"])
    with keras_floatx(case["dtype"]):
        model = build(keras, case["dtype"], case["model_seed"])
    np_model = rnn_ref.from_keras(model)
    kw, kl = keras_fit(keras, model, case, x, y)
    j = judge_fit(fit_runs(np_model, case, x, y, kw, kl))
    budget = max(v.worst["budget"] for v in j.verdicts if v.worst) if any(v.worst for v in j.verdicts) else 0.0
    moved = max(float(np.max(np.abs(t - np.asarray(p, np.float64))))
                for t, p in zip(j.truth, trainable_weights(np_model)))
    return {"case": case["label"], "optimizer": case["optimizer"], "clip": case["clip"], "dtype": case["dtype"],
            "epochs": case["epochs"], "steps": case["epochs"] * -(-B // BATCH),
            "ratio": float(j.ratio), "keras_ratio": float(j.keras_ratio),
            "case_ratio": float(max(j.ratio, j.keras_ratio)),  # what the catalogue's "fit" property holds to 1
            "needed_factor": float(j.ratio) * tolerance.FACTOR,
            "keras_needed_factor": float(j.keras_ratio) * tolerance.FACTOR,
            "passed": bool(all(v.ok for v in j.verdicts)), "keras_passed": bool(all(v.ok for v in j.keras)),
            "largest_budget": float(budget), "moved": moved,
            "seconds": round(time.perf_counter() - t0, 2)}


def summarize(rows: list, seconds: float) -> dict:
    """The ``training`` block of report.json: the rows and their maxima."""
    worst = max(rows, key=lambda r: r["ratio"], default=None)
    needed = max((r["needed_factor"] for r in rows), default=0.0)
    keras_needed = max((r["keras_needed_factor"] for r in rows), default=0.0)
    largest = max(needed, keras_needed)
    return {"fits": len(rows), "FACTOR": tolerance.FACTOR, "seconds": round(seconds, 2),
            "max_ratio": worst["ratio"] if worst else 0.0, "closest": worst["case"] if worst else "",
            "keras_max_ratio": max((r["keras_ratio"] for r in rows), default=0.0),
            "max_case_ratio": max((r["case_ratio"] for r in rows), default=0.0),
            "needed_factor_max": needed, "keras_needed_factor_max": keras_needed,
            "margin": tolerance.FACTOR / largest if largest > 0 else None,
            "failed": sum(not r["passed"] for r in rows), "keras_failed": sum(not r["keras_passed"] for r in rows),
            "rows": rows}


def sweep_training(size: str = "default", cases: list | None = None) -> dict:
    """Run the training sweep of ``size`` (or ``cases``) in this process; the ``training`` block."""
    import keras

    start = time.perf_counter()
    rows = [run_case(keras, c) for c in (sized(size) if cases is None else cases)]
    return summarize(rows, time.perf_counter() - start)


def summary_line(training: dict) -> str:
    """The line the report prints: the largest FACTOR needed, Keras's, and the margin."""
    if not training or not training.get("rows"):
        return "training: no fits run."
    m = training["margin"]
    return (f"training: {training['fits']} fits, needed FACTOR max {training['needed_factor_max']:.3g} "
            f"(Keras max {training['keras_needed_factor_max']:.3g}); "
            + (f"FACTOR {training['FACTOR']:g} is {m:.3g}x the largest." if m is not None
               else "every error was under the floor."))


def training_section(training: dict | None) -> str:
    """The "Training budget" table of report.md (a file without ``training`` renders a note)."""
    if not training or not training.get("rows"):
        return "No training sweep in this report."
    m = training["margin"]
    lines = [f"{training['fits']} fits in {training['seconds']:.1f} s, {training['failed']} failed (Keras "
             f"{training['keras_failed']}): rnn_ref's largest err/budget {training['max_ratio']:.3g} "
             f"({training['closest']}), Keras's {training['keras_max_ratio']:.3g}; needed FACTOR max "
             f"{training['needed_factor_max']:.3g} (Keras {training['keras_needed_factor_max']:.3g}), "
             + (f"FACTOR {training['FACTOR']:g} is {m:.3g}x the largest." if m is not None
                else "every error under the floor."),
             "",
             "| case | steps | rnn_ref err/budget | rnn_ref needed FACTOR | Keras err/budget | Keras needed FACTOR "
             "| largest budget | weights moved | s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in training["rows"]:
        flag = "" if r["passed"] and r["keras_passed"] else " **failed**"
        lines.append(f"| {r['case']}{flag} | {r['steps']} | {r['ratio']:.3g} | {r['needed_factor']:.3g} "
                     f"| {r['keras_ratio']:.3g} | {r['keras_needed_factor']:.3g} | {r['largest_budget']:.3g} "
                     f"| {r['moved']:.3g} | {r['seconds']:.1f} |")
    return "\n".join(lines)
