"""report.md: the report for people, rendered from the report.json contents
into ``template.md`` (string.Template placeholders; the tables are built here)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from string import Template

from rnn_ref.harness import tolerance
from rnn_ref.harness.tally import fmt
from rnn_ref.commands.report.plots import PLOT_SWEEP
from rnn_ref.commands.report.sweeps import split_label
from rnn_ref.commands.report.training import training_section

#: One caption per plot of ``plots.PLOTS`` (the per-layer plots share theirs).
CAPTIONS = {
    "error_vs_length": "Error of the output at step T against T (log grid, one return_sequences run of "
                       "length {T}). Well-conditioned: errors stay at a few ulps. Chaotic: every "
                       "implementation's error grows like exp(lambda_1 T) with the conditioning, and "
                       "the budget follows.",
    "error_vs_spectral_radius": "Largest error over T = {T} steps against the spectral radius of "
                                "recurrent_kernel, with the largest Lyapunov exponent of the trajectory: "
                                "errors leave the roundoff level where lambda_1 turns positive.",
    "gradient_error_vs_length": "Error of the gradients (d inputs solid, d kernel dashed) of a length-T sequence "
                                "against T (one backward pass per T, up to {T}), relative to the largest "
                                "|gradient|: rnn_ref's backward pass and Keras's GradientTape against the "
                                "extended-precision truth, with the conditioning of the float64 gradients and "
                                "the budget of the gradient check at rnn_ref's worst element. A gradient's "
                                "error grows backwards through the steps: chaotic, it follows the conditioning "
                                "up to O(1).",
    "gradient_error_vs_spectral_radius": "Error of the gradients of a length-{T} sequence against the spectral "
                                         "radius of recurrent_kernel (relative to the largest |gradient|), with "
                                         "their conditioning and budget: they leave the roundoff level with the "
                                         "outputs' errors, where lambda_1 nears 0.",
    "ulp_histograms": "Top rows, one per layer: every output element of its well-conditioned tanh sweep, in "
                      "ulps from the truth. Bottom: the largest ulp distance of every judged result of the "
                      "property sweep.",
    "budget_vs_error": "Each judged result of the property sweep at its element closest to the budget: "
                       "error against budget. Points under the solid line pass; points under the dotted "
                       "line would pass with FACTOR = 1.",
}

OVERFLOWED = (
    "{total} results of {primary} overflowed ({everyone} over all implementations): the truth (the float64 "
    "reference rounded to the case's dtype) or Keras's result holds +-inf or NaN. Unbounded activations do this: "
    "an `exponential` recurrence passes float32's largest value (3.4e38) within a few dozen steps and float64's "
    "(1.8e308) soon after, and NaN follows (inf - inf, 0 * inf). Such a result is still judged element by element "
    "(an inf agrees only with the same inf, the finite elements keep their budget) and counted in verdicts, "
    "failed and err/budget. Its max abs, max rel and max ulps are left out of the max columns: they mix "
    "infinite errors with the finite elements next to the overflow, whose values are so large that a "
    "relative error of 1e-13 is an absolute error of 1e120, and ulps past the dtype's range are "
    "undefined. The max columns show the results that stayed in range; the **overflowed** column counts "
    "the others. The other implementations see the same truth and Keras, so they overflow on the same "
    "results."
)


def template() -> Template:
    """The text of report.md with its placeholders (``rnn_ref/commands/report/template.md``)."""
    return Template(resources.files(__package__).joinpath("template.md").read_text(encoding="utf-8"))


def write_markdown(path: Path, data: dict) -> None:
    """Write report.md to ``path`` from ``data``, the contents of a report.json
    (older files, with SimpleRNN's sweeps only and no ``factor``, render too)."""
    s, env, summ = data["settings"], data["environment"], data["summary"]
    dedicated = layer_sweeps(data["sweeps"])
    layers = s.get("layers") or list(dedicated)
    text = template().substitute(
        created=data["created"], max_examples=s["max_examples"], seed=s["seed"], quick=", quick" if s["quick"] else "",
        layers=", ".join(layers), keras=env["keras"], tensorflow=env["tensorflow"], numpy=env["numpy"],
        python=env["python"], longdouble_bits=env["longdouble_mantissa_bits"],
        wide_gain=f"{s['wide_gain'][1]:g}", budget_rule=budget_rule_block(data["budget_rule"]),
        examples=summ["examples"], verdicts=summ["verdicts"], overflowed=summ.get("overflowed", 0),
        failed_examples=summ["failed_examples"], summary_table=summary_table(summ),
        factor=factor_section(data.get("factor"), data["budget_rule"].get("FACTOR", tolerance.FACTOR)),
        factor_gradients=factor_section(data.get("factor_gradients"),
                                        data["budget_rule"].get("FACTOR", tolerance.FACTOR), GRADIENT_PARTS),
        overflowed_results=overflowed_section(data),
        training=training_section(data.get("training")),
        plots=plots_section(data["plots"], dedicated),
        dedicated=dedicated_section(dedicated),
        properties="\n\n".join(property_section(prop, p) for prop, p in data["properties"].items()),
        environment="\n".join(f"| {k} | {v} |" for k, v in env.items()),
        seconds=", ".join(f"{k} {v:.1f}" for k, v in data["seconds"].items()),
    )
    path.write_text(text + "\n")


def layer_sweeps(sweeps: dict) -> dict:
    """{layer: {"length", "spectral_radius"}} of a report.json's ``sweeps``
    (a file without ``by_layer`` has SimpleRNN's only)."""
    if sweeps.get("by_layer"):
        return sweeps["by_layer"]
    return {sweeps["length"].get("layer", "SimpleRNN"): {"length": sweeps["length"],
                                                         "spectral_radius": sweeps["spectral_radius"]}}


def plots_section(plots: dict, dedicated: dict) -> str:
    """Each plot with its caption, the per-layer ones under their layer."""
    blocks = []
    for key, fname in plots.items():
        base, layer = split_label(key)
        sweep = dedicated.get(layer, {}).get(PLOT_SWEEP.get(base, "spectral_radius"), {})
        caption = CAPTIONS.get(base, "").format(T=sweep.get("T", "T"))
        title = base.replace("_", " ") + (f" ({layer})" if key != base else "")
        blocks.append(f"### {title}\n\n![{key}]({fname})\n\n{caption}")
    return "\n\n".join(blocks)


def dedicated_section(dedicated: dict) -> str:
    """Per layer: its length table and its spectral radius table."""
    blocks = []
    for layer, d in dedicated.items():
        length, radius = d["length"], d["spectral_radius"]
        blocks += [
            f"#### {layer}",
            f"Length sweep (tanh{GATES.get(layer, '')}, T up to {length['T']}, max over {length['seeds']} seeds): "
            "the largest error, and the first step where it exceeds 1e-2 (lambda_1 predicts about "
            "ln(1e-2 / u) / lambda_1).",
            length_table(length),
            f"Spectral radius sweep (tanh{GATES.get(layer, '')}, T = {radius['T']}, max over {radius['seeds']} "
            "seeds): largest error of Keras and rnn_ref, the conditioning, and the budget where rnn_ref's error "
            "is largest.",
            radius_table(radius),
        ]
        g_length, g_radius = d.get("gradient_length"), d.get("gradient_spectral_radius")
        if g_length:
            blocks += [
                f"Gradients against T (tanh{GATES.get(layer, '')}, one backward pass of a length-T sequence per T "
                f"and seed, max over {g_length['seeds']} seeds): error of d inputs and d kernel relative to the "
                "largest |gradient|, of Keras (GradientTape) and rnn_ref's backward pass against the "
                "extended-precision truth, their conditioning, and the FACTOR rnn_ref needed and Keras needed "
                "against the conditioning alone (float64 truth, every gradient).",
                gradient_table([((regime, f"gain {reg['gain']:g}"), str(t), dtype, d_, i)
                                for regime, reg in g_length["regimes"].items()
                                for dtype, d_ in reg["by_dtype"].items() for i, t in enumerate(g_length["t"])],
                               "T"),
            ]
        if g_radius:
            blocks += [
                f"Gradients against the spectral radius (T = {g_radius['T']}, max over {g_radius['seeds']} seeds), "
                "the same figures.",
                gradient_table([(None, f"{g:g}", dtype, d_, i) for dtype, d_ in g_radius["by_dtype"].items()
                                for i, g in enumerate(g_radius["gain"])], "gain"),
            ]
    return "\n\n".join(blocks)


def gradient_table(points: list, axis: str) -> str:
    """One row per (regime, grid point, dtype) of a gradient sweep: Keras's and rnn_ref's
    relative error and the conditioning of d inputs and d kernel, and the needed FACTORs.
    ``points``: (regime label or None, grid value, dtype, by_dtype entry, index), in table order."""
    regimes = any(p[0] for p in points)
    head = (["regime"] if regimes else []) + [axis, "dtype", "Keras d inputs", "rnn_ref d inputs", "cond. d inputs",
                                               "Keras d kernel", "rnn_ref d kernel", "cond. d kernel",
                                               "needed FACTOR rnn_ref", "needed FACTOR Keras"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * (1 + regimes) + "---|" + "---:|" * (len(head) - 2 - regimes)]
    for regime, x, dtype, d, i in points:
        e, c, f = d["max_error"], d["conditioning"], d["needed_factor"]
        get = lambda a, k: fmt(a[k][i]) if k in a else "-"  # noqa: E731
        cells = ([f"{regime[0]} ({regime[1]})"] if regimes else []) + [
            x, dtype, get(e, "keras: d inputs"), get(e, "rnn_ref: d inputs"), get(c, "d inputs"),
            get(e, "keras: d kernel"), get(e, "rnn_ref: d kernel"), get(c, "d kernel"), get(f, "rnn_ref"),
            get(f, "keras")]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


#: The parts of the property sweep factor_section names, per group.
FORWARD_PARTS = (("properties", "the properties, at widened gains"), ("chaotic_weights", "chaotic_weights"))
GRADIENT_PARTS = (("gradients", "the gradient properties, at widened gains"),
                  ("chaotic_gradients", "chaotic_gradients"))


def factor_section(factor: dict | None, factor_value: float, parts_named=FORWARD_PARTS) -> str:
    """The needed FACTOR per layer: a few lines per layer (the whole sweep and
    each part of it, ``parts_named``), then the table per layer, who, part and dtype."""
    if not factor:
        return "This file records no per-layer FACTOR figures of this group (none were run, or the file was " \
               "written before they were measured)."
    lines = []
    for layer, per in factor.items():
        whole = [(who, "", dtype, c) for who, d in per.items() for dtype, c in d["by_dtype"].items()]
        parts = [(who, sweep, dtype, c) for who, d in per.items() for sweep, by in d.get("by_sweep", {}).items()
                 for dtype, c in by.items()]
        worst = max((float(c["max_needed_factor"]) for *_, c in whole), default=0.0)
        lines.append(f"- **{layer}**: " + (f"FACTOR = {factor_value:g} is {factor_value / worst:.3g} times the "
                                           "largest FACTOR needed" if worst > 0 else
                                           "no result needed any FACTOR (every error under the floor)"))
        lines.append(f"  - the whole sweep: {_largest_needed(whole)}")
        for sweep, title in parts_named:
            cells = [x for x in parts if x[1] == sweep]
            if cells:
                lines.append(f"  - {title}: {_largest_needed(cells)}")
    rows = ["| layer | who | sweep | dtype | judged results | max needed FACTOR | 99th percentile | median | "
            "max err/budget | closest case |", "|---|---|---|---|---:|---:|---:|---:|---:|---|"]
    for layer, per in factor.items():
        for who, d in per.items():
            for sweep, by in d.get("by_sweep", {"-": d["by_dtype"]}).items():
                for dtype, c in by.items():
                    rows.append(f"| {layer} | {'Keras (vs conditioning)' if who == 'keras' else who} | {sweep} | "
                                f"{dtype} | {c['verdicts']} | {fmt(c['max_needed_factor'])} | "
                                f"{fmt(c['p99_needed_factor'])} | {fmt(c['median_needed_factor'])} | "
                                f"{fmt(c['max_budget_ratio'])} | {c['closest'] or '-'} |")
    return "\n".join(lines) + "\n\n" + "\n".join(rows)


def _largest_needed(cells: list) -> str:
    """The largest needed FACTOR and the largest 99th percentile (over the
    dtypes) of the implementations and of Keras among ``cells``, a list of
    (who, sweep, dtype, stats)."""
    def part(keras: bool) -> str:
        mine = [(who, sweep, dtype, c) for who, sweep, dtype, c in cells if (who == "keras") == keras]
        if not mine:
            return ""
        top, who, sweep, dtype = max((float(c["max_needed_factor"]), who, sweep, dtype)
                                     for who, sweep, dtype, c in mine)
        p99 = max(float(c["p99_needed_factor"]) for *_, c in mine)
        left = sum(c.get("overflowed_left_out", 0) for *_, c in mine)
        where = ", ".join(x for x in ((who if not keras else ""), dtype) if x) if top > 0 else ""
        return (f"{fmt(top)}" + (f" ({where})" if where else "") + f", 99th percentile {fmt(p99)}"
                + (f", {left} overflowed result{'s' if left > 1 else ''} left out" if left else ""))

    impl, keras = part(False), part(True)
    return "; ".join(x for x in (f"correct implementations at most {impl}" if impl else "",
                                 f"Keras against the conditioning alone at most {keras}" if keras else "") if x)


#: What the dedicated sweeps run besides tanh, per layer.
GATES = {"LSTM": ", sigmoid gates", "GRU": ", sigmoid gates, reset_after=True"}


def budget_rule_block(rule: dict) -> str:
    """The rule as report.json words it (one clause a line), then its constants."""
    first, *rest = rule["rule"].split("; ")
    constants = ", ".join(f"{k} = {rule[k]:g}" for k in ("FACTOR", "FLOOR_ULPS", "PERTURB_ULPS", "PERTURB_RUNS")
                          if k in rule)
    return "\n".join([first, *(f"  {clause}" for clause in rest), f"  {constants}"])


def summary_table(summ: dict) -> str:
    """One row per layer and implementation (per implementation only in files without ``by_layer``)."""
    rows = ["| layer | implementation | cases | judged results | failed examples | max err/budget | needed FACTOR "
            "| closest case |", "|---|---|---:|---:|---:|---:|---:|---|"]
    by_layer = summ.get("by_layer") or {"-": {"examples": summ["examples"],
                                              "implementations": summ["by_implementation"]}}
    for layer, e in by_layer.items():
        for n, d in e["implementations"].items():
            rows.append(f"| {layer} | {n} | {e['examples']} | {d['verdicts']} | {d['failed_examples']} | "
                        f"{fmt(d['max_budget_ratio'])} | {fmt(d['needed_factor'])} | {d['closest'] or '-'} |")
    return "\n".join(rows)


def overflowed_section(data: dict) -> str:
    """The body of "Overflowed results": what they are, where they were met."""
    primary = data.get("primary", "rnn_ref")
    rows = []
    for prop, p in data["properties"].items():
        for dtype, e in p["by_dtype"].items():
            d = e["implementations"].get(primary, {})
            n, nk = d.get("overflowed", 0), e["keras"].get("overflowed", 0)
            if n or nk:
                rows.append((prop, dtype, n, d.get("verdicts", 0), d.get("overflowed_case", "")))
    if not rows:
        return "No result overflowed: the truth and Keras stayed finite in every judged result."
    total = sum(r[2] for r in rows)
    everyone = data.get("summary", {}).get("overflowed", total)
    lines = [OVERFLOWED.format(total=total, primary=primary, everyone=everyone), "",
             f"| property | dtype | overflowed ({primary}) | of verdicts | first case; result |",
             "|---|---|---:|---:|---|"]
    lines += [f"| {prop} | {dtype} | {n} | {v} | {case or '-'} |" for prop, dtype, n, v, case in rows]
    return "\n".join(lines)


def _largest(values) -> float:
    """The largest of a list of report.json numbers ("inf" and "nan" included)."""
    return max(float(v) for v in values)


def length_table(length: dict) -> str:
    """Per regime and dtype: the largest error of each implementation, with the first step above 1e-2."""
    first = next(iter(next(iter(length["regimes"].values()))["by_dtype"].values()))
    names = list(first["max_error"])
    rows = ["| regime | dtype | lambda_1 | " + " | ".join(names) + " | conditioning | budget |",
            "|---|---|---:|" + "---:|" * (len(names) + 2)]
    for regime, reg in length["regimes"].items():
        for dtype, d in reg["by_dtype"].items():
            fa = d["first_step_above_1e-2"]

            def cell(n, e):
                return fmt(_largest(e)) + (f" (t={fa[n]})" if fa.get(n) else "")

            rows.append(f"| {regime} (gain {reg['gain']:g}) | {dtype} | {d['lyapunov']:+.3f} | "
                        + " | ".join(cell(n, d["max_error"][n]) for n in names)
                        + f" | {cell('conditioning', d['conditioning'])} | {fmt(_largest(d['budget']))} |")
    return "\n".join(rows)


def radius_table(radius: dict) -> str:
    """Per gain: the largest error of Keras and rnn_ref, the conditioning and the budget, both dtypes."""
    rows = ["| gain | lambda_1 | " + " | ".join(
                f"{dt} {c}" for dt in ("float32", "float64") for c in ("Keras", "rnn_ref", "conditioning", "budget"))
            + " |",
            "|---:|---:|" + "---:|" * 8]
    for i, g in enumerate(radius["gain"]):
        cells = []
        for dt in ("float32", "float64"):
            d = radius["by_dtype"][dt]
            cells += [fmt(d["max_error"]["keras"][i]), fmt(d["max_error"].get("rnn_ref", ["-"] * (i + 1))[i]),
                      fmt(d["conditioning"][i]), fmt(d["budget_at_worst"][i])]
        rows.append(f"| {g:g} | {float(radius['by_dtype']['float32']['lyapunov'][i]):+.3f} | "
                    + " | ".join(cells) + " |")
    return "\n".join(rows)


def _maxima(d: dict) -> str:
    """The max abs, max rel and max ulps cells of a tally: "-" when every verdict overflowed."""
    if d["verdicts"] and d.get("overflowed", 0) >= d["verdicts"]:
        return "- | - | -"
    return " | ".join(fmt(d[f]) for f in ("max_abs", "max_rel", "max_ulps"))


def property_section(prop: str, p: dict) -> str:
    """One property: its doc, a row for Keras and each implementation per dtype, and its failures."""
    rows = ["| dtype | examples | who | verdicts | failed | overflowed | max abs | max rel | max ulps | err/budget "
            "| needed FACTOR |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    fails = []
    for dtype, e in p["by_dtype"].items():
        k = e["keras"]
        rows.append(f"| {dtype} | {e['examples'] if e['examples'] is not None else '-'} | Keras | {k['verdicts']} | "
                    f"- | {k.get('overflowed', 0)} | {_maxima(k)} | - | - |")
        for n, d in e["implementations"].items():
            rows.append(f"| | | {n} | {d['verdicts']} | {d['failed_examples']} | {d.get('overflowed', 0)} | "
                        f"{_maxima(d)} | {fmt(d['max_budget_ratio'])} | {fmt(d['needed_factor'])} |")
        fails += [(dtype, f) for f in e["failures"]]
    blocks = [f"### {prop}", p["doc"], "\n".join(rows)]
    if fails:
        blocks.append("Failures:")
        for dtype, f in fails:
            msg = f["message"].strip().replace("\n", "\n    ")
            blocks.append(f"- {dtype}, {f['implementation']}: `{f['case']}`\n\n    {msg}")
    return "\n\n".join(blocks)
