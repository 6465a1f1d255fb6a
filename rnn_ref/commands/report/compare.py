"""``python -m rnn_ref report compare OLD.json NEW.json``: two tolerance-table
files of the same kind (two report.json, or two ``pytest --tolerance-report``
files) compared figure by figure. Exit status 1 when a gated figure got worse
by more than the threshold, 2 when the files cannot be compared; a warning
when their cases were not drawn alike. The threshold is described in
docs/report.md."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from rnn_ref.harness import tolerance
from rnn_ref.harness.tally import SCHEMA_VERSION, fmt
from rnn_ref.commands.report.results import report_run

#: What a JSON file of the tolerance table is (its "kind" field), and how to
#: name it in messages. ``report compare`` compares two files of the same kind.
KINDS = {
    "report": "a report.json of `python -m rnn_ref report`",
    "pytest": "a tolerance table of `pytest --tolerance-report`",
}
#: Figures kept per implementation; ``compare`` looks at all of them.
FIGURES = ("max_abs", "max_rel", "max_ulps", "max_budget_ratio")
#: Default ``compare`` threshold: a figure is worse when new > THRESHOLD * old
#: (4 = two bits) and new - old is above the figure's floor (``change_floor``).
THRESHOLD = 4.0
#: Figures that can make ``compare`` fail. max_abs and max_rel are listed
#: when they move but do not gate: max_abs scales with the outputs
#: (unbounded activations reach 1e30), and max_rel repeats max_ulps without
#: the dtype's grid. Failure counts are worse as soon as they grow.
GATED = ("max_ulps", "max_budget_ratio", "failed", "failed_examples")
#: Counts compared as soon as they move; of them only GATED ones fail a comparison.
COUNTS = ("failed", "failed_examples", "overflowed")


def change_floor(figure: str, dtype: str) -> float:
    """Changes smaller than this never count as worse (or better), whatever the ratio."""
    u = tolerance.roundoff(dtype) if dtype in ("float32", "float64") else tolerance.roundoff("float32")
    return {"max_ulps": 2.0, "max_abs": 2 * u, "max_rel": 2 * u, "max_budget_ratio": 0.05}.get(figure, 0.0)


def figures(data: dict) -> dict:
    """(property, dtype, who, figure) -> value for every figure of a tolerance-table file."""
    rows = {}
    for prop, p in data.get("properties", {}).items():
        for dtype, e in p["by_dtype"].items():
            for f in ("max_abs", "max_rel", "max_ulps"):
                rows[(prop, dtype, "keras", f)] = float(e["keras"][f])
            if "overflowed" in e["keras"]:
                rows[(prop, dtype, "keras", "overflowed")] = float(e["keras"]["overflowed"])
            for n, d in e["implementations"].items():
                for f in FIGURES:
                    rows[(prop, dtype, n, f)] = float(d[f])
                for f in ("failed", "failed_examples"):
                    rows[(prop, dtype, n, f)] = float(d.get(f, 0))
                if "overflowed" in d:  # files written before overflowed results were counted apart lack it
                    rows[(prop, dtype, n, "overflowed")] = float(d["overflowed"])
    return rows


def compare(old: dict, new: dict, threshold: float = THRESHOLD) -> list[dict]:
    """Every figure present in both reports, with its status: "worse" or
    "better" (a GATED figure beyond the threshold), "changed" (max_abs or
    max_rel beyond the threshold, or the overflowed count, for information)
    or "same". A figure is beyond the threshold when new > threshold * old
    (or the reverse) and the difference is above its floor; counts as soon
    as they move."""
    a, b = figures(old), figures(new)
    rows = []
    for key in [k for k in b if k in a]:
        prop, dtype, who, fig = key
        o, n = a[key], b[key]
        with np.errstate(all="ignore"):
            ratio = n / o if o > 0 else (math.inf if n > 0 else 1.0)
        if fig in COUNTS:
            up, down = n > o, n < o
        elif math.isnan(o) or math.isnan(n):
            up, down = not (math.isnan(o) and math.isnan(n)), False
        else:
            floor = change_floor(fig, dtype)
            up = n != o and n > threshold * o and n - o > floor
            down = n != o and o > threshold * n and o - n > floor
        if fig in GATED:
            status = "worse" if up else ("better" if down else "same")
        else:
            status = "changed" if up or down else "same"
        rows.append(dict(property=prop, dtype=dtype, who=who, figure=fig, old=o, new=n, ratio=ratio, status=status))
    return rows


def missing(old: dict, new: dict) -> tuple[list, list]:
    """The (property, dtype, who) cells only in ``old``, and those only in ``new``."""
    a, b = set(figures(old)), set(figures(new))
    cells = lambda s: sorted({(k[0], k[1], k[2]) for k in s})  # noqa: E731
    return cells(a - b), cells(b - a)


def file_kind(data: dict) -> str | None:
    """What a tolerance-table file is: its "kind" field, or for files written
    before that field existed, what its structure says (a report.json has
    settings, sweeps and a summary; a pytest file has the implementation
    "candidate" and none of those). None when neither fits."""
    if "kind" in data:
        return data["kind"]
    if any(k in data for k in ("settings", "sweeps", "summary")):
        return "report"
    if data.get("primary") == "candidate" and "properties" in data:
        return "pytest"
    return None


def run_of(data: dict) -> dict | None:
    """The seed and hypothesis profile a file's cases were drawn with:
    {seed, hypothesis_profile, hypothesis_settings}, taken from the file's own
    fields, or from its settings for a report.json written before they were
    recorded; None when the file does not say."""
    if "hypothesis_profile" in data:
        return {k: data.get(k) for k in ("seed", "hypothesis_profile", "hypothesis_settings")}
    if file_kind(data) == "report" and "settings" in data:
        return report_run(data["settings"])
    return None


def like_for_like(old: dict, new: dict, old_name: str = "OLD", new_name: str = "NEW") -> str | None:
    """A warning when two files' cases were not drawn alike (another seed,
    profile or example count, unseeded random draws, or a file that does not
    say), or None when they were."""
    a, b = run_of(old), run_of(new)
    unknown = [n for n, r in ((old_name, a), (new_name, b)) if r is None]
    if unknown:
        return (f"{' and '.join(unknown)} {'does' if len(unknown) == 1 else 'do'} not record the seed and "
                "hypothesis profile of its run (written before they were recorded): the figures may come "
                "from different cases")
    diffs = []
    for key, label in (("seed", "seed"), ("hypothesis_profile", "hypothesis profile")):
        if a[key] != b[key]:
            diffs.append(f"{label} {a[key]!r} -> {b[key]!r}")
    sa, sb = a.get("hypothesis_settings") or {}, b.get("hypothesis_settings") or {}
    for k in sorted(set(sa) | set(sb)):
        if sa.get(k) != sb.get(k):
            diffs.append(f"{k} {sa.get(k)!r} -> {sb.get(k)!r}")
    if diffs:
        return (f"{old_name} and {new_name} were drawn differently ({', '.join(diffs)}): the figures come "
                "from different cases and are not like for like")
    if a["seed"] is None and not sa.get("derandomize"):
        return (f"{old_name} and {new_name} come from unseeded runs (hypothesis profile "
                f"{a['hypothesis_profile']!r} is not derandomized and no --hypothesis-seed was given): "
                "the figures come from different cases and are not like for like")
    return None


def load(path: Path) -> tuple[dict | None, str]:
    """The JSON object in ``path``, or None and what was wrong with it."""
    expected = f"expected {KINDS['report']} or {KINDS['pytest']}"
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        return None, f"cannot read {path}: {e.strerror or e}"
    except ValueError as e:
        return None, f"{path} is not JSON ({e}); {expected}"
    if not isinstance(data, dict):
        return None, f"{path} holds a JSON {type(data).__name__}, not an object; {expected}"
    return data, ""


def check_comparable(old: dict, new: dict, old_name: str = "OLD", new_name: str = "NEW") -> str | None:
    """Why ``old`` and ``new`` cannot be compared (one line), or None when they can:
    both must be of a known kind, the same one, and of SCHEMA_VERSION."""
    kinds = {}
    for name, d in ((old_name, old), (new_name, new)):
        k = file_kind(d)
        if k is None:
            return (f"cannot tell what {name} is: it has no \"kind\" field, and neither the settings of a "
                    f"report.json nor the \"candidate\" implementation of a pytest file; expected "
                    f"{KINDS['report']} or {KINDS['pytest']}")
        if k not in KINDS:
            return f"{name} has kind {k!r}, expected one of {', '.join(map(repr, KINDS))}"
        kinds[name] = k
    if kinds[old_name] != kinds[new_name]:
        return (f"cannot compare {old_name} (kind {kinds[old_name]!r}: {KINDS[kinds[old_name]]}) with {new_name} "
                f"(kind {kinds[new_name]!r}: {KINDS[kinds[new_name]]}): their figures come from different "
                f"runs and implementations; compare two files of the same kind")
    for name, d in ((old_name, old), (new_name, new)):
        if d.get("schema_version") != SCHEMA_VERSION:
            return f"{name} has schema_version {d.get('schema_version')!r}, expected {SCHEMA_VERSION}"
    return None


def run_compare(old_path: Path, new_path: Path, threshold: float = THRESHOLD, show_all: bool = False) -> int:
    """Print the comparison of two files; the exit status (0 no figure worse, 1 worse, 2 not comparable)."""
    (old, why_old), (new, why_new) = load(old_path), load(new_path)
    if old is None or new is None:
        print(why_old or why_new, file=sys.stderr)
        return 2
    why = check_comparable(old, new, str(old_path), str(new_path))
    if why:
        print(why, file=sys.stderr)
        return 2
    warning = like_for_like(old, new, str(old_path), str(new_path))
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    rows = compare(old, new, threshold)
    from rich.console import Console
    from rich.table import Table

    console = Console() if sys.stdout.isatty() else Console(width=160)
    notes = []
    for key in ("settings", "environment", "budget_rule"):
        o, n = old.get(key, {}), new.get(key, {})
        for k in sorted(set(o) | set(n)):
            if o.get(k) != n.get(k) and k not in ("rule",):
                notes.append(f"{key}.{k}: {o.get(k)!r} -> {n.get(k)!r}")
    if notes:
        console.print("[bold]Differences in settings or environment[/bold] (figures are comparable only "
                      "for the same settings):")
        for s in notes:
            console.print(f"  {s}")
    gone, added = missing(old, new)
    if gone:
        console.print(f"only in OLD: {', '.join('/'.join(c) for c in gone)}")
    if added:
        console.print(f"only in NEW: {', '.join('/'.join(c) for c in added)}")
    shown = [r for r in rows if show_all or r["status"] != "same" or r["old"] != r["new"]]
    table = Table(title=f"{old_path} -> {new_path} (threshold {threshold:g})")
    for col in ("property", "dtype", "who", "figure", "old", "new", "new/old", "status"):
        table.add_column(col, justify="right" if col in ("old", "new", "new/old") else "left")
    style = {"worse": "bold red", "better": "green", "changed": "yellow", "same": ""}
    for r in shown:
        table.add_row(r["property"], r["dtype"], r["who"], r["figure"], fmt(r["old"]), fmt(r["new"]),
                      fmt(r["ratio"]), f"[{style[r['status']]}]{r['status']}[/]" if style[r["status"]] else r["status"])
    if shown:
        console.print(table)
    worse = [r for r in rows if r["status"] == "worse"]
    better = [r for r in rows if r["status"] == "better"]
    changed = [r for r in rows if r["status"] == "changed"]
    console.print(f"{len(rows)} figures compared: {len(worse)} worse, {len(better)} better, {len(changed)} "
                  f"changed (max_abs/max_rel beyond the threshold, overflowed counts; not gating), "
                  f"{len(rows) - len(worse) - len(better) - len(changed)} within it.")
    return 1 if worse else 0
