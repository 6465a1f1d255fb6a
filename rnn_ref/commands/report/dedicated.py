"""The dedicated sweeps of the report, per layer (tanh; an LSTM's and a GRU's
gates sigmoid): error against sequence length and against the recurrent
spectral radius, against an extended-precision truth (np.longdouble), with the
largest Lyapunov exponent of each trajectory."""

from __future__ import annotations

import math
import time

import numpy as np

from rnn_ref.harness import tolerance
from rnn_ref.harness.cases import Case, make_case
from rnn_ref.models.registry import RECURRENT, SIMPLE_RNN
from rnn_ref.harness.tally import json_number
from rnn_ref.commands.report.sweeps import CHAOS, implementations

#: Bin edges of the ulp histograms: 0, then powers of 2 (the last bin is open).
ULP_EDGES = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 2.0**16, 2.0**24, math.inf)


def _cast(kw: dict, dtype) -> dict:
    """The float arrays of ``kw`` cast to ``dtype``."""
    return {k: v.astype(dtype) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
            for k, v in kw.items()}


def reference_hi(kw: dict, spec=SIMPLE_RNN) -> np.ndarray:
    """The layer's reference on the arguments ``kw`` in extended precision (np.longdouble)."""
    return spec.reference(**_cast(kw, np.longdouble))


def lyapunov(seq: np.ndarray, recurrent_kernel: np.ndarray, *, transient: int = 20, seed: int = 0) -> float:
    """Largest Lyapunov exponent of a tanh SimpleRNN trajectory ``seq`` (B, T, U):
    the mean log growth of a tangent vector through J_t = diag(1 - h_t^2) R^T,
    after ``transient`` steps, averaged over the batch rows."""
    B, T, U = seq.shape
    if T <= transient + 1:
        transient = 0
    R = np.asarray(recurrent_kernel, dtype=np.float64)
    v = np.random.default_rng(seed).standard_normal((B, U))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    logs = []
    for t in range(T):
        v = (v @ R) * (1 - np.asarray(seq[:, t], dtype=np.float64) ** 2)
        n = np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-300)
        v /= n
        if t >= transient:
            logs.append(np.log(n[:, 0]))
    return float(np.mean(logs)) if logs else 0.0


def lyapunov_steps(spec, kw64: dict, *, transient: int = 20, seed: int = 0, eps: float = 1e-7) -> float:
    """Largest Lyapunov exponent of any layer's trajectory on ``kw64`` (float64,
    no mask): the mean log growth of a tangent vector of all the states (an
    LSTM's h and c), pushed one step at a time through the float64 reference by
    a finite difference of size ``eps`` (the perturbed states ride in the same
    call, as extra batch rows) and renormalised, after ``transient`` steps.
    On SimpleRNN it agrees with ``lyapunov`` to 4 digits while the recurrence
    contracts."""
    x = np.asarray(kw64["inputs"], dtype=np.float64)
    B, T, _ = x.shape
    if T <= transient + 1:
        transient = 0
    U, n = spec.units(kw64), len(spec.states)
    step = {**kw64, "mask": None, "go_backwards": False, "return_sequences": False, "return_state": True}
    states = [np.zeros((B, U)) for _ in range(n)]
    v = np.random.default_rng(seed).standard_normal((B, n * U))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    logs = []
    for t in range(T):
        both = [np.concatenate([s, s + eps * v[:, k * U:(k + 1) * U]]) for k, s in enumerate(states)]  # (2B, U)
        _, *new = spec.reference(**{**step, "inputs": np.concatenate([x[:, t:t + 1]] * 2),
                                    "initial_state": both[0] if n == 1 else both})
        states = [s[:B] for s in new]
        d = np.concatenate([(s[B:] - s[:B]) / eps for s in new], axis=1)  # (B, nU)
        norm = np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-300)
        v = d / norm
        if t >= transient:
            logs.append(np.log(norm[:, 0]))
    return float(np.mean(logs)) if logs else 0.0


def _one_run(oracle, impls, case: Case) -> dict:
    """Errors per step of Keras and each implementation on one tanh case with
    return_sequences=True: elementwise |result - extended-precision truth|,
    the harness's conditioning and budget, and the ulps of each result."""
    spec = case.spec
    kw = case.kwargs(return_sequences=True)
    dtype = case.dtype
    with np.errstate(all="ignore"):
        truth_hi = reference_hi(kw, spec)
        kw64 = _cast(kw, np.float64)
        truth64 = spec.reference(**kw64)
        spread = tolerance.conditioning(spec.reference, kw64, dtype, rng=np.random.default_rng(case.seed))
        results = {"keras": oracle(**kw)}
        for name, f in impls.items():
            results[name] = f(**kw)
        errors = {n: np.abs(r.astype(np.longdouble) - truth_hi).astype(np.float64) for n, r in results.items()}
        ulps = {n: tolerance.ulps(r, truth_hi.astype(np.float64), dtype) for n, r in results.items()}
        m = spec.products(case.shape["D"], case.shape["U"])
        v = tolerance.judge("sweep", results[next(iter(impls))], results["keras"], truth64, spread, dtype,
                            m=m, time_axis=1)
        lyap = (lyapunov(truth64, kw64["recurrent_kernel"], seed=case.seed) if spec is SIMPLE_RNN
                else lyapunov_steps(spec, kw64, seed=case.seed))
    return {"errors": errors, "ulps": ulps, "spread": spread, "budget": np.asarray(v.budget), "lyapunov": lyap}


def _per_step(a: np.ndarray) -> np.ndarray:
    """Max over batch rows and units: (B, T, U) -> (T,)."""
    return np.max(a, axis=(0, 2))


def sweep_length(oracle, impls, *, layer=SIMPLE_RNN.name, T=512, seeds=4, gains=None, B=4, D=8, U=32,
                 on_run=None) -> dict:
    """Error at step t (= error of a length-t sequence's last output) for t = 1..T,
    on ``layer`` (tanh; an LSTM's and a GRU's gates sigmoid), at a
    well-conditioned gain (0.5) and the layer's chaotic one (CHAOS)."""
    gains = gains or (("well-conditioned", 0.5), ("chaotic", CHAOS[layer]["chaotic"]))
    grid = np.unique(np.round(np.geomspace(1, T, 28)).astype(int))
    out = {"layer": layer, "T": int(T), "seeds": int(seeds), "B": B, "D": D, "U": U, "activation": "tanh",
           "t": grid.tolist(), "regimes": {}}
    hist = {}
    for regime, gain in gains:
        reg = out["regimes"].setdefault(regime, {"gain": gain, "by_dtype": {}})
        for dtype in ("float32", "float64"):
            acc: dict = {}
            lyap = []
            for s in range(seeds):
                case = make_case(B=B, T=T, D=D, U=U, dtype=dtype, seed=1000 + s, gain=gain, activation="tanh",
                                 layer=layer)
                r = _one_run(oracle, impls, case)
                for n, e in r["errors"].items():
                    acc[n] = np.maximum(acc.get(n, 0), _per_step(e))
                acc["conditioning"] = np.maximum(acc.get("conditioning", 0), _per_step(r["spread"]))
                acc["budget"] = np.maximum(acc.get("budget", 0), _per_step(r["budget"]))
                lyap.append(r["lyapunov"])
                if regime == gains[0][0]:
                    for n, u in r["ulps"].items():
                        hist.setdefault(dtype, {}).setdefault(n, []).append(u.ravel())
                if on_run:
                    on_run()
            reg["by_dtype"][dtype] = {
                "lyapunov": float(np.mean(lyap)),
                "first_step_above_1e-2": {n: _first_above(a, 1e-2) for n, a in acc.items() if n != "budget"},
                "max_error": {n: [json_number(float(x)) for x in a[grid - 1]] for n, a in acc.items()
                              if n not in ("conditioning", "budget")},
                "conditioning": [json_number(float(x)) for x in acc["conditioning"][grid - 1]],
                "budget": [json_number(float(x)) for x in acc["budget"][grid - 1]],
            }
    ulp_hist = {}
    for dtype, per in hist.items():
        ulp_hist[dtype] = {n: histogram(np.concatenate(v)) for n, v in per.items()}
    out["ulp_histogram"] = {"regime": gains[0][0], "edges": list(ULP_EDGES), "counts": ulp_hist}
    return out


def _first_above(a: np.ndarray, level: float):
    """The first step t (1-based) where ``a`` exceeds ``level``, or None."""
    i = np.flatnonzero(np.asarray(a) > level)
    return int(i[0]) + 1 if i.size else None


def histogram(values: np.ndarray) -> list[int]:
    """Counts of ``values`` (ulps) in the bins of ULP_EDGES."""
    counts, _ = np.histogram(np.minimum(values, 1e300), bins=np.array(ULP_EDGES[:-1] + (1e301,)))
    return counts.astype(int).tolist()


def radius_grid(layer: str = SIMPLE_RNN.name, n: int = 18) -> np.ndarray:
    """The default gains of the spectral radius sweep: 0.1 to the layer's CHAOS["radius"]."""
    return np.round(np.linspace(0.1, CHAOS[layer]["radius"], n), 3)


def sweep_radius(oracle, impls, *, layer=SIMPLE_RNN.name, gains=None, T=200, seeds=3, B=4, D=8, U=32,
                 on_run=None) -> dict:
    """Largest error over a length-T sequence of ``layer`` against the recurrent spectral radius."""
    gains = radius_grid(layer) if gains is None else np.asarray(gains)
    out = {"layer": layer, "T": int(T), "seeds": int(seeds), "B": B, "D": D, "U": U, "activation": "tanh",
           "gain": [float(g) for g in gains], "by_dtype": {}}
    for dtype in ("float32", "float64"):
        rows: dict = {}
        for g in gains:
            acc: dict = {}
            lyap = []
            for s in range(seeds):
                case = make_case(B=B, T=T, D=D, U=U, dtype=dtype, seed=2000 + s, gain=float(g), activation="tanh",
                                 layer=layer)
                r = _one_run(oracle, impls, case)
                for n, e in r["errors"].items():
                    acc[n] = max(acc.get(n, 0.0), float(e.max()))
                acc["conditioning"] = max(acc.get("conditioning", 0.0), float(r["spread"].max()))
                acc["budget_at_worst"] = acc.get("budget_at_worst", 0.0)
                # the budget where the primary implementation's error is largest
                e0 = r["errors"][next(iter(impls))]
                i = np.unravel_index(int(np.argmax(e0)), e0.shape)
                acc["budget_at_worst"] = max(acc["budget_at_worst"], float(r["budget"][i]))
                lyap.append(r["lyapunov"])
                if on_run:
                    on_run()
            acc["lyapunov"] = float(np.mean(lyap))
            for n, x in acc.items():
                rows.setdefault(n, []).append(json_number(x))
        out["by_dtype"][dtype] = {
            "max_error": {n: v for n, v in rows.items() if n not in ("conditioning", "budget_at_worst", "lyapunov")},
            "conditioning": rows["conditioning"], "budget_at_worst": rows["budget_at_worst"],
            "lyapunov": rows["lyapunov"],
        }
    return out


def sweep_layers(layers, *, length_kw=None, radius_kw=None, gradient_length_kw=None, gradient_radius_kw=None,
                 on_length=None, on_radius=None, on_gradient=None) -> tuple[dict, dict]:
    """The dedicated sweeps of every layer of ``layers``, each with its
    implementations and its own KerasOracle: {layer: {"length", "spectral_radius",
    "gradient_length", "gradient_spectral_radius"}} (the last two on rnn_ref's backward
    pass and Keras's GradientTape) and the seconds each sweep took, summed over the layers."""
    from rnn_ref.harness.backprop import reference_backward
    from rnn_ref.harness.oracle import KerasOracle

    out = {}
    seconds = {"length_sweep": 0.0, "radius_sweep": 0.0, "gradient_length_sweep": 0.0, "gradient_radius_sweep": 0.0}
    for layer in layers:
        oracle, impls = KerasOracle(RECURRENT[layer]), implementations(layer)
        backward = reference_backward(RECURRENT[layer].reference)
        t0 = time.perf_counter()
        length = sweep_length(oracle, impls, layer=layer, on_run=on_length, **(length_kw or {}))
        t1 = time.perf_counter()
        radius = sweep_radius(oracle, impls, layer=layer, on_run=on_radius,
                              **_radius_kw(layer, radius_kw or {}))
        t2 = time.perf_counter()
        g_length = sweep_gradient_length(oracle, backward, layer=layer, on_run=on_gradient,
                                         **(gradient_length_kw or {}))
        t3 = time.perf_counter()
        g_radius = sweep_gradient_radius(oracle, backward, layer=layer, on_run=on_gradient,
                                         **_radius_kw(layer, gradient_radius_kw or {}))
        seconds["length_sweep"] += t1 - t0
        seconds["radius_sweep"] += t2 - t1
        seconds["gradient_length_sweep"] += t3 - t2
        seconds["gradient_radius_sweep"] += time.perf_counter() - t3
        out[layer] = {"length": length, "spectral_radius": radius, "gradient_length": g_length,
                      "gradient_spectral_radius": g_radius}
    return out, seconds


def gradient_runs(layers, gradient_length_kw=None, gradient_radius_kw=None) -> int:
    """The number of backward passes the gradient sweeps of ``layers`` run (for a progress bar)."""
    lk, rk = dict(gradient_length_kw or {}), dict(gradient_radius_kw or {})
    grid = np.unique(np.round(np.geomspace(1, lk.get("T", 128), lk.get("points", 8))).astype(int))
    n_gains = len(rk.get("gain_fractions", rk.get("gains", range(12))))
    per = 2 * 2 * len(grid) * lk.get("seeds", 2) + 2 * n_gains * rk.get("seeds", 2)
    return len(layers) * per


def _radius_kw(layer: str, kw: dict) -> dict:
    """``kw`` with ``gains`` given as fractions of the layer's radius top (``gain_fractions``) resolved."""
    kw = dict(kw)
    fractions = kw.pop("gain_fractions", None)
    if fractions is not None:
        kw["gains"] = radius_gains(layer, fractions)
    return kw


def radius_gains(layer: str, fractions) -> list[float]:
    """The gains at ``fractions`` of the layer's radius top (CHAOS[layer]["radius"])."""
    return [round(f * CHAOS[layer]["radius"], 3) for f in fractions]


# -- the gradient sweeps ----------------------------------------------------------------------

#: The gradients the gradient sweeps follow: d inputs (its error grows backwards through
#: the steps) and d kernel (a sum over every row and step).
SWEPT_GRADIENTS = ("inputs", "kernel")


def _gradient_run(oracle, backward, case: Case) -> dict:
    """One tanh case with return_sequences=True and the case's cotangent: per gradient of
    SWEPT_GRADIENTS, the largest error of Keras's GradientTape and of rnn_ref's backward
    pass against the extended-precision truth (np.longdouble), the harness's conditioning
    (how far the float64 gradients move under perturbations of PERTURB_ULPS u, as
    ``Context.expect_gradients`` measures it) and the budget of ``Context.judge_gradients``
    at rnn_ref's worst element, each relative to the largest |truth| of that gradient
    (elementwise relative errors mean nothing where a gradient element is near 0); and the
    FACTOR rnn_ref needed and Keras needed against the conditioning alone (float64 truth,
    as the property sweep's tally measures them)."""
    from rnn_ref.harness.backprop import cotangent_for, float64_gradients, named_arrays, reference_backward
    from rnn_ref.harness.oracle import keras_gradients
    from rnn_ref.harness.tally import needed_factor
    from rnn_ref.commands.report.factor import keras_gradient_verdicts

    spec, dtype = case.spec, case.dtype
    kw = case.kwargs(return_sequences=True)
    d = cotangent_for(case, kw)
    with np.errstate(all="ignore"):
        hi = reference_backward(spec.reference)(**_cast(kw, np.longdouble), d_output=d.astype(np.longdouble))
        truth_hi = {n: np.asarray(a, dtype=np.longdouble) for n, a in named_arrays(hi)}
        truth = dict(named_arrays(float64_gradients(spec.reference, kw, d)))
        names = list(truth)

        def gradients_of(d_output, **call):
            grads = dict(named_arrays(float64_gradients(spec.reference, call, d_output)))
            return tuple(grads[n] for n in names)

        spread = tolerance.conditioning(gradients_of, {**kw, "d_output": d}, dtype, rng=np.random.default_rng(case.seed))
        spread = dict(zip(names, spread if isinstance(spread, tuple) else (spread,)))
        results = {"keras": dict(named_arrays(keras_gradients(oracle, **kw, d_output=d))),
                   "rnn_ref": dict(named_arrays(backward(**kw, d_output=d)))}
    B, T = np.shape(kw["inputs"])[:2]
    m = spec.products(case.shape["D"], case.shape["U"]) + B * T
    out: dict = {"errors": {}, "conditioning": {}, "budget": {}, "needed_factor": {"rnn_ref": 0.0, "keras": 0.0}}
    got = {n: results["rnn_ref"][n] for n in names}
    keras_v = keras_gradient_verdicts(spec, "sweep", got, results["keras"], truth, truth, spread, case, kw)
    for name, kv in zip(names, keras_v):
        time_axis = 1 if name == "inputs" else None
        with np.errstate(all="ignore"):
            v = tolerance.judge(f"sweep: d {name}", got[name], results["keras"][name], truth[name], spread[name],
                                dtype, m=m, time_axis=time_axis, whole_time=True)
        for who, verdict in (("rnn_ref", v), ("keras", kv)):
            if verdict.worst and verdict.worst.get("budget", 0) > 0:
                out["needed_factor"][who] = max(out["needed_factor"][who], needed_factor(verdict.worst))
        if name not in SWEPT_GRADIENTS:
            continue
        with np.errstate(all="ignore"):
            scale = float(np.max(np.abs(truth_hi[name]).astype(np.float64), initial=0.0)) or 1.0
            errors = {who: np.abs(r[name].astype(np.longdouble) - truth_hi[name]).astype(np.float64)
                      for who, r in results.items()}
        for who, e in errors.items():
            out["errors"].setdefault(who, {})[name] = float(np.max(np.where(np.isnan(e), np.inf, e), initial=0)) / scale
        out["conditioning"][name] = float(np.max(spread[name], initial=0)) / scale
        e0 = errors["rnn_ref"]
        i = np.unravel_index(int(np.argmax(np.where(np.isnan(e0), np.inf, e0))), e0.shape)
        out["budget"][name] = float(np.asarray(v.budget)[i]) / scale
    return out


def _gradient_acc(acc: dict, r: dict) -> None:
    """Fold one ``_gradient_run`` into ``acc`` (the largest of every figure)."""
    for who, per in r["errors"].items():
        for name, x in per.items():
            key = f"{who}: d {name}"
            acc.setdefault("max_error", {})[key] = max(acc.get("max_error", {}).get(key, 0.0), x)
    for part in ("conditioning", "budget"):
        for name, x in r[part].items():
            acc.setdefault(part, {})[f"d {name}"] = max(acc.get(part, {}).get(f"d {name}", 0.0), x)
    for who, x in r["needed_factor"].items():
        acc.setdefault("needed_factor", {})[who] = max(acc.get("needed_factor", {}).get(who, 0.0), x)


def _gradient_rows(rows: dict, acc: dict) -> None:
    """Append one grid point's ``acc`` to the per-grid lists of ``rows``."""
    for part in ("max_error", "conditioning", "budget", "needed_factor"):
        for key, x in acc.get(part, {}).items():
            rows.setdefault(part, {}).setdefault(key, []).append(json_number(x))


def sweep_gradient_length(oracle, backward, *, layer=SIMPLE_RNN.name, T=128, points=8, seeds=2, gains=None, B=4,
                          D=8, U=32, on_run=None) -> dict:
    """Error of the gradients of a length-T sequence against T (a log grid of ``points``
    lengths up to ``T``, one backward pass each: a gradient's error depends on every step),
    on ``layer`` (tanh; an LSTM's and a GRU's gates sigmoid) at the gains of the forward
    length sweep: well-conditioned (0.5) and the layer's chaotic one (CHAOS)."""
    gains = gains or (("well-conditioned", 0.5), ("chaotic", CHAOS[layer]["chaotic"]))
    grid = np.unique(np.round(np.geomspace(1, T, points)).astype(int))
    out = {"layer": layer, "T": int(T), "seeds": int(seeds), "B": B, "D": D, "U": U, "activation": "tanh",
           "gradients": list(SWEPT_GRADIENTS), "t": grid.tolist(), "regimes": {}}
    for regime, gain in gains:
        reg = out["regimes"].setdefault(regime, {"gain": gain, "by_dtype": {}})
        for dtype in ("float32", "float64"):
            rows: dict = {}
            for t in grid:
                acc: dict = {}
                for s in range(seeds):
                    case = make_case(B=B, T=int(t), D=D, U=U, dtype=dtype, seed=3000 + s, gain=gain,
                                     activation="tanh", layer=layer)
                    _gradient_acc(acc, _gradient_run(oracle, backward, case))
                    if on_run:
                        on_run()
                _gradient_rows(rows, acc)
            reg["by_dtype"][dtype] = rows
    return out


def sweep_gradient_radius(oracle, backward, *, layer=SIMPLE_RNN.name, gains=None, T=100, seeds=2, B=4, D=8, U=32,
                          on_run=None) -> dict:
    """Error of the gradients of a length-T sequence of ``layer`` against the recurrent spectral radius."""
    gains = radius_grid(layer, 12) if gains is None else np.asarray(gains)
    out = {"layer": layer, "T": int(T), "seeds": int(seeds), "B": B, "D": D, "U": U, "activation": "tanh",
           "gradients": list(SWEPT_GRADIENTS), "gain": [float(g) for g in gains], "by_dtype": {}}
    for dtype in ("float32", "float64"):
        rows: dict = {}
        for g in gains:
            acc: dict = {}
            for s in range(seeds):
                case = make_case(B=B, T=T, D=D, U=U, dtype=dtype, seed=4000 + s, gain=float(g), activation="tanh",
                                 layer=layer)
                _gradient_acc(acc, _gradient_run(oracle, backward, case))
                if on_run:
                    on_run()
            _gradient_rows(rows, acc)
        out["by_dtype"][dtype] = rows
    return out
