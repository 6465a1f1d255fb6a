"""The report's figures (matplotlib, PNG): error against sequence length and
against spectral radius (one file per layer), ulp histograms, and error
against budget."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from rnn_ref.harness import tolerance
from rnn_ref.models.registry import SIMPLE_RNN
from rnn_ref.commands.report.dedicated import ULP_EDGES, histogram
from rnn_ref.commands.report.sweeps import label

#: The plots of a report: name -> file name in the output directory. The
#: first four are drawn per layer: ``error_vs_length (LSTM)`` is
#: error_vs_length_lstm.png (SimpleRNN keeps the names below).
PLOTS = {
    "error_vs_length": "error_vs_length.png",
    "error_vs_spectral_radius": "error_vs_spectral_radius.png",
    "gradient_error_vs_length": "gradient_error_vs_length.png",
    "gradient_error_vs_spectral_radius": "gradient_error_vs_spectral_radius.png",
    "ulp_histograms": "ulp_histograms.png",
    "budget_vs_error": "budget_vs_error.png",
}

COLORS = {"keras": "black", "rnn_ref": "tab:blue", "float64_inside": "tab:green",
          "fused_product": "tab:orange", "per_sample_textbook": "tab:red",
          "rnn_ref (LSTM)": "tab:purple", "rnn_ref (GRU)": "tab:brown"}
PER_LAYER = ("error_vs_length", "error_vs_spectral_radius", "gradient_error_vs_length",
             "gradient_error_vs_spectral_radius")

#: The sweep of ``sweeps.by_layer[layer]`` each per-layer plot draws.
PLOT_SWEEP = {"error_vs_length": "length", "error_vs_spectral_radius": "spectral_radius",
              "gradient_error_vs_length": "gradient_length",
              "gradient_error_vs_spectral_radius": "gradient_spectral_radius"}


def plot_files(layers) -> dict:
    """Plot name -> file name of a report on ``layers``: PLOTS, with the
    per-layer plots once per layer (labelled as the property rows are)."""
    out = {}
    for key, fname in PLOTS.items():
        if key not in PER_LAYER:
            out[key] = fname
            continue
        for layer in layers:
            suffix = "" if layer == SIMPLE_RNN.name else f"_{layer.lower()}"
            out[label(key, layer)] = fname.replace(".png", f"{suffix}.png")
    return out


def _log_y(ax) -> None:
    """A log y axis with major ticks only: errors span 20 decades here, and the
    minor ticks of every decade cost most of the drawing time."""
    from matplotlib.ticker import NullLocator

    ax.set_yscale("log")
    ax.yaxis.set_minor_locator(NullLocator())


def write_plots(out: Path, dedicated: dict, points: list) -> dict:
    """Draw every plot of ``plot_files`` into the directory ``out``, from the
    dedicated sweeps ``{layer: {"length", "spectral_radius"}}`` and the
    property sweep's ``points``; return plot name -> file name."""
    files = plot_files(list(dedicated))
    for layer, d in dedicated.items():
        plot_length(d["length"], out / files[label("error_vs_length", layer)])
        plot_radius(d["spectral_radius"], out / files[label("error_vs_spectral_radius", layer)])
        plot_gradient_length(d["gradient_length"], out / files[label("gradient_error_vs_length", layer)])
        plot_gradient_radius(d["gradient_spectral_radius"],
                             out / files[label("gradient_error_vs_spectral_radius", layer)])
    plot_ulp_histograms(dedicated, points, out / files["ulp_histograms"])
    plot_budget(points, out / files["budget_vs_error"])
    return files


def _arr(values) -> np.ndarray:
    """A list of report.json numbers ("inf" and "nan" included) as a float64 array."""
    return np.array([float(v) for v in values], dtype=np.float64)


def _pos(a: np.ndarray, lo: float) -> np.ndarray:
    """Values for a log axis: zeros are drawn at ``lo``."""
    return np.where(a > 0, a, lo)


def plot_length(length: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    regimes = list(length["regimes"])
    fig, axes = plt.subplots(len(regimes), 2, figsize=(11, 4 * len(regimes)), squeeze=False)
    t = np.array(length["t"])
    for r, regime in enumerate(regimes):
        reg = length["regimes"][regime]
        for c, dtype in enumerate(("float32", "float64")):
            ax = axes[r][c]
            d = reg["by_dtype"][dtype]
            lo = tolerance.roundoff(dtype) * 1e-2
            for n, e in d["max_error"].items():
                ax.plot(t, _pos(_arr(e), lo), "o-", ms=3, color=COLORS.get(n), label=n,
                        lw=2.2 if n == "keras" else 1.2, alpha=0.9)
            ax.plot(t, _pos(_arr(d["conditioning"]), lo), "--", color="gray", label="conditioning s")
            ax.plot(t, _pos(_arr(d["budget"]), lo), ":", color="purple", lw=2, label="budget (rnn_ref)")
            ax.set_xscale("log")
            _log_y(ax)
            ax.set_xlabel("sequence length T (error of the output at step T)")
            ax.set_ylabel("max |result - truth|")
            ax.set_title(f"{dtype}, {regime} (gain {reg['gain']:g}, lambda_1 {d['lyapunov']:+.3f})", fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{length.get('layer', 'SimpleRNN')}: error against sequence length (tanh, B={length['B']} "
                 f"D={length['D']} U={length['U']}, max over {length['seeds']} seeds)")
    _save(fig, path)


def plot_radius(radius: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    g = np.array(radius["gain"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for c, dtype in enumerate(("float32", "float64")):
        ax = axes[c]
        d = radius["by_dtype"][dtype]
        lo = tolerance.roundoff(dtype) * 1e-2
        for n, e in d["max_error"].items():
            ax.plot(g, _pos(_arr(e), lo), "o-", ms=3, color=COLORS.get(n), label=n, lw=2.2 if n == "keras" else 1.2)
        ax.plot(g, _pos(_arr(d["conditioning"]), lo), "--", color="gray", label="conditioning s")
        ax.plot(g, _pos(_arr(d["budget_at_worst"]), lo), ":", color="purple", lw=2, label="budget at worst element")
        _log_y(ax)
        ax.set_xlabel("spectral radius of recurrent_kernel (gain)")
        ax.set_ylabel(f"max |result - truth| over T={radius['T']}")
        ax.set_title(dtype)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    ax = axes[2]
    for dtype, style in (("float32", "o-"), ("float64", "s--")):
        ax.plot(g, _arr(radius["by_dtype"][dtype]["lyapunov"]), style, ms=3, label=dtype)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("spectral radius of recurrent_kernel (gain)")
    ax.set_ylabel("largest Lyapunov exponent (per step)")
    ax.set_title("chaos: lambda_1 > 0")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle(f"{radius.get('layer', 'SimpleRNN')}: error against spectral radius (tanh, T={radius['T']}, "
                 f"max over {radius['seeds']} seeds)")
    _save(fig, path)


#: Line styles of the gradient plots: d inputs solid, d kernel dashed.
GRADIENT_STYLES = {"inputs": "o-", "kernel": "s--"}


def _gradient_panel(ax, x, d: dict, dtype: str) -> None:
    """Keras's and rnn_ref's relative error of each swept gradient, its conditioning and
    the budget at rnn_ref's worst element, against ``x``."""
    lo = tolerance.roundoff(dtype) * 1e-2
    for key, e in d["max_error"].items():
        who, name = key.split(": d ")
        ax.plot(x, _pos(_arr(e), lo), GRADIENT_STYLES.get(name, "o-"), ms=3, color=COLORS.get(who),
                label=f"{who}: d {name}", lw=2.2 if who == "keras" else 1.2, alpha=0.9)
    for key, c in d["conditioning"].items():
        ax.plot(x, _pos(_arr(c), lo), ":" if key == "d inputs" else "-.", color="gray", label=f"conditioning {key}")
    for key, b in d["budget"].items():
        ax.plot(x, _pos(_arr(b), lo), ":" if key == "d inputs" else "-.", color="purple", lw=1.5,
                label=f"budget {key} (rnn_ref's worst element)")
    _log_y(ax)
    ax.grid(True, which="both", alpha=0.3)


def plot_gradient_length(length: dict, path: Path) -> None:
    """Relative error of d inputs and d kernel of a length-T sequence against T, per regime and dtype."""
    import matplotlib.pyplot as plt

    regimes = list(length["regimes"])
    fig, axes = plt.subplots(len(regimes), 2, figsize=(11, 4 * len(regimes)), squeeze=False)
    t = np.array(length["t"])
    for r, regime in enumerate(regimes):
        reg = length["regimes"][regime]
        for c, dtype in enumerate(("float32", "float64")):
            ax = axes[r][c]
            _gradient_panel(ax, t, reg["by_dtype"][dtype], dtype)
            ax.set_xscale("log")
            ax.set_xlabel("sequence length T (every gradient of a length-T sequence)")
            ax.set_ylabel("max |gradient - truth| / max |truth|")
            ax.set_title(f"{dtype}, {regime} (gain {reg['gain']:g})", fontsize=10)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{length.get('layer', 'SimpleRNN')}: gradient error against sequence length (tanh, "
                 f"B={length['B']} D={length['D']} U={length['U']}, max over {length['seeds']} seeds)")
    _save(fig, path)


def plot_gradient_radius(radius: dict, path: Path) -> None:
    """Relative error of d inputs and d kernel of a length-T sequence against the recurrent gain, per dtype."""
    import matplotlib.pyplot as plt

    g = np.array(radius["gain"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for c, dtype in enumerate(("float32", "float64")):
        ax = axes[c]
        _gradient_panel(ax, g, radius["by_dtype"][dtype], dtype)
        ax.set_xlabel("spectral radius of recurrent_kernel (gain)")
        ax.set_ylabel(f"max |gradient - truth| / max |truth|, T={radius['T']}")
        ax.set_title(dtype)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{radius.get('layer', 'SimpleRNN')}: gradient error against spectral radius (tanh, "
                 f"T={radius['T']}, max over {radius['seeds']} seeds)")
    _save(fig, path)


def plot_ulp_histograms(dedicated: dict, points: list, path: Path, primary: str = "rnn_ref") -> None:
    """One row per layer (every output element of its well-conditioned length
    sweep), then one for the property sweep (the max ulps of each judged result)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(dedicated) + 1, 2, figsize=(13, 4 * (len(dedicated) + 1)), squeeze=False)
    for r, (layer, d) in enumerate(dedicated.items()):
        h = d["length"]["ulp_histogram"]
        for c, dtype in enumerate(("float32", "float64")):
            per = {n: np.array(v, dtype=float) for n, v in h["counts"].get(dtype, {}).items()}
            _bars(axes[r][c], per, "fraction of elements",
                  f"{layer}, {dtype}: every output element, {h['regime']} tanh sweep (ulps from the truth)")
    for c, dtype in enumerate(("float32", "float64")):
        rows = [p for p in points if p[1] == dtype]
        # Keras's figure once per call: from the rows of each layer's primary implementation
        series = {"keras": [p[5] for p in rows if p[0] == primary or p[0].startswith(f"{primary} (")]}
        for p in rows:
            series.setdefault(p[0], []).append(p[4])
        per = {n: np.array(histogram(np.array(v, dtype=float)), dtype=float) for n, v in series.items()}
        _bars(axes[-1][c], per, "fraction of judged results",
              f"{dtype}: max ulps of each judged result, property sweep (every layer)")
    _save(fig, path)


def _bars(ax, counts: dict, ylabel: str, title: str) -> None:
    """Grouped bars of the fraction of each series in each ulp bin."""
    width = 0.8 / max(1, len(counts))
    for k, (n, c) in enumerate(counts.items()):
        x = np.arange(len(c)) + (k - (len(counts) - 1) / 2) * width
        ax.bar(x, c / max(1.0, c.sum()), width=width, color=COLORS.get(n), label=n)
    ax.set_xticks(np.arange(len(ULP_EDGES) - 1))
    ax.set_xticklabels(_bin_labels(), rotation=45, fontsize=7)
    if any(c.sum() > 0 for c in counts.values()):
        _log_y(ax)
        ax.legend(fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("ulps from the truth")
    ax.set_title(title, fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)


def _bin_labels() -> list[str]:
    """Labels of the histogram bins [lo, hi); below 0.5 ulp is correctly rounded."""
    lab = lambda x: f"{x:g}" if x < 2**16 else f"2^{int(math.log2(x))}"  # noqa: E731
    e = ULP_EDGES
    return [f"[{lab(lo)}, {lab(hi)})" for lo, hi in zip(e[:-2], e[1:-1])] + [f">= {lab(e[-2])}"]


def plot_budget(points: list, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    for c, dtype in enumerate(("float32", "float64")):
        ax = axes[c]
        rows = [p for p in points if p[1] == dtype and math.isfinite(p[3]) and p[3] > 0]
        if rows:
            lo = min(p[3] for p in rows) * 1e-3
            names = list(dict.fromkeys(p[0] for p in rows))
            for n in names:
                b = np.array([p[3] for p in rows if p[0] == n])
                e = np.array([p[2] for p in rows if p[0] == n])
                e = np.where(np.isfinite(e), e, b.max() * 10)
                ax.scatter(b, np.maximum(e, lo), s=8, alpha=0.5, color=COLORS.get(n), label=n)
            hi = max(max(p[3] for p in rows), max(p[2] for p in rows if math.isfinite(p[2])))
            ax.plot([lo, hi], [lo, hi], "k-", lw=1, label="error = budget")
            ax.plot([lo, hi], [lo / tolerance.FACTOR, hi / tolerance.FACTOR], "k:", lw=1,
                    label=f"error = budget / FACTOR ({tolerance.FACTOR:g})")
            ax.set_xscale("log")
            _log_y(ax)
            ax.legend(fontsize=8)
        ax.set_xlabel("budget at the element closest to its budget")
        ax.set_ylabel("|result - truth| there (zeros drawn at the bottom)")
        ax.set_title(f"{dtype}: every judged result of the property sweep (fails above the line)", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    _save(fig, path)


def _save(fig, path: Path) -> None:
    """Lay out, write and close a figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
