"""The conformance corpus: Keras's answers, stored, for checking without TensorFlow.

``python -m rnn_ref corpus build`` (rnn_ref/harness/corpus_build.py, with
TensorFlow and hypothesis) runs every property of the catalogue on rnn_ref's
own layers against live Keras and keeps every call it judged: the arguments,
Keras's result, the float64 truth and the budget of each element. This module
reads it back with NumPy alone: ``verify`` checks the files and rnn_ref against
it, and ``check_offline`` judges anyone's function on it, property by
property, with the stored budgets.

Layout (docs/corpus.md specifies it for runners in other languages)::

    manifest.json        schema_version, versions, command, seed, the acceptance rule,
                         files (name -> sha256), and per (layer, property) its cases
    <layer>/<property>.npz
        <case>/<call>/arg/<name>        the call's arrays: inputs, kernel, recurrent_kernel,
                                        bias, mask, initial_state.<i>, d_output
        <case>/<call>/truth/<part>      float64 truth of each result
        <case>/<call>/keras/<part>      Keras's result, in the case's dtype
        <case>/<call>/budget/<part>     float64 budget of each element
        <case>/<call>/alternative.<j>/<part>
                                        only where Keras's result depends on the platform
                                        (the call's "alternatives" in the manifest name the
                                        switch of each): the truth on that platform

A result passes when ``|result - truth| <= budget`` elementwise; where the
truth is not finite (rounded to the case's dtype), only the same value passes
(NaN with NaN, +inf with +inf); where the budget is infinite, anything passes.
A call with alternatives passes when the whole result passes against the
truth or against one of them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 1

#: The corpus shipped with the package.
SHIPPED = Path(__file__).resolve().parents[1] / "corpus_data"

ACCEPTANCE_RULE = ("|result - truth| <= budget elementwise; where the truth rounded to the case's dtype is "
                   "not finite, only the same value (NaN with NaN, +inf with +inf); an infinite budget "
                   "accepts anything; a call with alternatives (a platform-dependent Keras result) accepts a "
                   "result that passes against the truth or against one alternative, the whole result")


class CorpusError(Exception):
    """The corpus is missing, unreadable, or does not match its manifest."""


@dataclass
class Call:
    """One judged call: keyword arguments in Keras's layout, and per result its truth,
    Keras's value and budget."""

    label: str
    kind: str  # "forward" or "gradients"
    kwargs: dict
    truth: dict
    keras: dict
    budget: dict
    #: switch -> {part: truth} where Keras's result depends on the platform (docs/errors.md)
    alternatives: dict = field(default_factory=dict)


@dataclass
class StoredCase:
    """A property's case: the calls it made, with its size and what it exercises."""

    id: str
    layer: str
    property: str
    kind: str
    size: int
    describe: str
    calls: list = field(default_factory=list)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_manifest(root: Path = SHIPPED) -> dict:
    path = Path(root) / "manifest.json"
    if not path.is_file():
        raise CorpusError(f"no corpus at {root}: {path.name} is missing (python -m rnn_ref corpus build --out {root})")
    manifest = json.loads(path.read_text())
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise CorpusError(f"{path}: schema_version {manifest.get('schema_version')!r}, this rnn_ref reads "
                          f"{SCHEMA_VERSION}")
    return manifest


def check_files(root: Path = SHIPPED, manifest: dict | None = None) -> list[str]:
    """The files whose sha256 differs from the manifest's (or that are missing)."""
    manifest = manifest or load_manifest(root)
    bad = []
    for name, digest in manifest["files"].items():
        path = Path(root) / name
        if not path.is_file():
            bad.append(f"{name}: missing")
        elif sha256(path) != digest:
            bad.append(f"{name}: sha256 differs from the manifest")
    return bad


def cases(root: Path = SHIPPED, *, layer: str | None = None, kind: str | None = None,
          properties=None, manifest: dict | None = None) -> list[StoredCase]:
    """The stored cases (with their calls loaded), smallest first within each property."""
    manifest = manifest or load_manifest(root)
    out = []
    for entry in manifest["entries"]:
        if (layer and entry["layer"] != layer) or (kind and entry["kind"] != kind) or (
                properties and entry["property"] not in properties):
            continue
        with np.load(Path(root) / entry["file"], allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        for c in entry["cases"]:
            stored = StoredCase(c["id"], entry["layer"], entry["property"], entry["kind"], c["size"], c["describe"])
            for i, call in enumerate(c["calls"]):
                prefix = f"{c['id']}/{i}/"
                stored.calls.append(Call(call["label"], entry["kind"], _kwargs(arrays, prefix, call),
                                         *({p: arrays[f"{prefix}{slot}/{p}"] for p in call["parts"]}
                                           for slot in ("truth", "keras", "budget")),
                                         {switch: {p: arrays[f"{prefix}alternative.{j}/{p}"] for p in call["parts"]}
                                          for j, switch in enumerate(call.get("alternatives", ()))}))
            out.append(stored)
    return out


def _kwargs(arrays: dict, prefix: str, call: dict) -> dict:
    kw = dict(call["options"])
    for name in call["arrays"]:
        kw[name] = arrays[f"{prefix}arg/{name}"]
    states = [arrays[f"{prefix}arg/initial_state.{i}"] for i in range(call.get("initial_states", 0))]
    if states:
        kw["initial_state"] = states if call.get("state_list") else states[0]
    elif "initial_state" not in kw:
        kw["initial_state"] = None
    for name in ("bias", "mask"):
        kw.setdefault(name, None)
    return kw


def accepts(result, truth, budget, dtype) -> np.ndarray:
    """The acceptance rule, elementwise (``ACCEPTANCE_RULE``)."""
    result = np.asarray(result, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        t_d = truth.astype(dtype).astype(np.float64)
        err = np.abs(result - truth)
    nonfinite = ~np.isfinite(t_d)
    same = (result == t_d) | (np.isnan(result) & np.isnan(t_d))
    finite_ok = np.isfinite(result) & (err <= budget)
    # overflow to +-inf is correct rounding where the truth plus the budget reaches the dtype's largest value
    big = float(np.finfo(dtype).max)
    overflow_ok = np.isinf(result) & (np.abs(np.where(np.isfinite(truth), truth, 0.0)) + budget >= big)
    return np.where(np.isinf(budget), True, np.where(nonfinite, same, finite_ok | overflow_ok))


# -- judging a function on the corpus ---------------------------------------------------

def _as_parts(out, call: Call) -> dict:
    """A forward result as ``{part: array}`` (output, then the states with return_state)."""
    parts = list(call.truth)
    if len(parts) == 1:
        if isinstance(out, (tuple, list)):
            raise ValueError(f"with return_state=False the function must return one array, got {len(out)}")
        return {parts[0]: out}
    if not isinstance(out, (tuple, list)) or len(out) != len(parts):
        raise ValueError(f"with return_state=True the function must return ({', '.join(parts)})")
    return dict(zip(parts, out))


def judge_call(candidate, call: Call) -> str | None:
    """Run ``candidate`` (an adapted function: ``harness.candidate.Adapted`` or
    ``harness.backward_candidate.AdaptedGradients``) on ``call``; None when every
    result is accepted, else what is wrong. NotImplementedError propagates (declined)."""
    kw = {k: ([np.array(s) for s in v] if isinstance(v, list) else np.array(v) if isinstance(v, np.ndarray) else v)
          for k, v in call.kwargs.items()}
    dtype = np.asarray(call.kwargs["inputs"]).dtype
    with np.errstate(all="ignore"):
        out = candidate(**kw)
    if call.kind == "gradients":
        got = {}
        for key, value in out.items():
            if isinstance(value, (list, tuple)):
                got.update({f"{key}[{i}]": v for i, v in enumerate(value)})
            elif value is not None:
                got[key] = value
    else:
        got = _as_parts(out, call)
    for key, value in got.items():
        name, shown = key.split(":")[0], key.split(":")[-1]
        if name not in call.truth:
            return f"{call.label}: it returned {shown}, which this call has no result for ({', '.join(call.truth)})"
        truth, budget = call.truth[name], call.budget[name].astype(np.float64)
        value = np.asarray(value)
        if value.shape != truth.shape:
            return f"{call.label}: {shown} has shape {value.shape}, expected {truth.shape}"
        if value.dtype != dtype:
            return f"{call.label}: {shown} has dtype {value.dtype}, expected {dtype}"
        ok = accepts(value, truth, budget, dtype)
        for alternative in call.alternatives.values():
            if ok.all():
                break
            ok = accepts(value, alternative[name], budget, dtype)
        if not ok.all():
            with np.errstate(all="ignore"):
                excess = np.where(ok, -np.inf, np.abs(value.astype(np.float64) - truth) / np.maximum(budget, 1e-300))
            i = np.unravel_index(int(np.argmax(np.where(np.isnan(excess), np.inf, excess))), truth.shape)
            keras = call.keras[name]
            return (f"{call.label}: {'d ' if call.kind == 'gradients' else ''}{shown}: {int((~ok).sum())} of {ok.size} "
                    f"elements exceed the stored budget\n  worst element {tuple(int(j) for j in i)}: candidate "
                    f"{float(value[i])!r}, Keras {float(keras[i])!r}, float64 truth {float(truth[i])!r}; budget "
                    f"{float(budget[i]):.3g}")
    if not got:
        return f"{call.label}: it returned nothing to judge"
    return None


def run_offline(candidate, layer: str, kind: str = "forward", names=None, *, root: Path = SHIPPED, target=None,
                layout: str = "keras", on_property=None) -> list:
    """Every stored property of ``layer`` (``kind`` forward or gradients) judged on
    ``candidate``: a ``harness.result.PropertyResult`` each, the smallest failing case
    shown with a script that reloads it from the corpus."""
    import time

    from rnn_ref.harness.guard import CandidateRaised, CaseTimeout, describe_exception, guarded
    from rnn_ref.harness.result import PropertyResult

    from rnn_ref.harness.cases import FULL, within

    manifest = load_manifest(root)
    wanted = [e["property"] for e in manifest["entries"] if e["layer"] == layer and e["kind"] == kind]
    support = getattr(candidate, "support", FULL)  # what the probe found it handles
    results = []
    fn = guarded(candidate)
    for name in names or wanted:
        start = time.perf_counter()
        stored = cases(root, layer=layer, kind=kind, properties=[name], manifest=manifest)
        # the cases inside what the function handles, as the live check draws them
        stored = [c for c in stored if all(within(call.kwargs, support) for call in c.calls)]
        r = PropertyResult(name, "unsupported")
        why_declined = {}
        for case in stored:
            r.examples += 1
            try:
                problem = next((p for p in (judge_call(fn, c) for c in case.calls) if p), None)
            except NotImplementedError as e:
                r.declined += 1
                why = str(e).strip() or "NotImplementedError"
                why_declined[why] = why_declined.get(why, 0) + 1
                continue
            except (CandidateRaised, CaseTimeout, ValueError, AssertionError) as e:
                problem = describe_exception(e) if not isinstance(e, CandidateRaised) else str(e)
            if problem:
                r.failed += 1
                if r.status != "FAIL":  # the first failure is the smallest: cases are stored smallest first
                    r.status, r.message, r.case = "FAIL", problem, case.describe
                    r.reproduction = offline_reproduction(case, root, target, layout, kind)
        if r.status != "FAIL":
            if r.checked > 0:
                r.status = "pass"
            r.message = "; ".join(sorted(why_declined, key=why_declined.get, reverse=True))
            if not r.checked:
                r.message = (f"every stored case declined: {r.message}" if r.message else
                             "no stored case within what the function handles")
        r.seconds = time.perf_counter() - start
        results.append(r)
        if on_property:
            on_property(r)
    return results


def offline_reproduction(case: StoredCase, root: Path, target, layout: str, kind: str) -> str:
    """A script that reloads ``case`` from the corpus and judges the function on it."""
    root_arg = "" if Path(root) == SHIPPED else f", root={str(root)!r}"
    layer = {"SimpleRNN": "simple_rnn"}.get(case.layer, case.layer.lower())
    load = (f"candidate = load_candidate({target!r}, layout={layout!r}, layer={layer!r}"
            + (", gradients=True" if kind == "gradients" else "") + ")  # run from the directory the check ran in")
    return "\n".join([
        "from rnn_ref.harness.corpus import cases, judge_call",
        "from rnn_ref.harness.candidate import load_candidate",
        f"(case,) = [c for c in cases(layer={case.layer!r}, properties=[{case.property!r}]{root_arg}) "
        f"if c.id == {case.id!r}]",
        f"print(case.describe)  # {case.property}",
        load if target else "candidate = your_function  # adapted: rnn_ref.harness.candidate.Adapted(fn, layout)",
        "for call in case.calls:",
        "    print(call.label, {k: getattr(v, 'shape', v) for k, v in call.kwargs.items()})",
        "    print(judge_call(candidate, call) or 'accepted')",
    ]) + "\n"


def compare(old: Path, new: Path, *, layer: str | None = None, properties=None) -> list[str]:
    """Named differences between two corpora (``old``'s cases looked up in ``new``):
    a case or its arguments that differ, a truth that moved (rnn_ref changed), or
    Keras's result beyond the stored budget (another Keras, or another machine's)."""
    a, b = load_manifest(old), load_manifest(new)
    out = []
    if a["versions"] != b["versions"]:
        out.append(f"versions: {a['versions']} -> {b['versions']}")
    new_cases = {(c.layer, c.property, c.id): c for c in cases(new, layer=layer, properties=properties, manifest=b)}
    for c in cases(old, layer=layer, properties=properties, manifest=a):
        where = f"{c.layer} {c.property} {c.id} ({c.describe})"
        d = new_cases.get((c.layer, c.property, c.id))
        if d is None or d.describe != c.describe or len(d.calls) != len(c.calls):
            out.append(f"{where}: not in the new corpus as drawn" + (f" (there: {d.describe})" if d else ""))
            continue
        for i, (x, y) in enumerate(zip(c.calls, d.calls)):
            args = [k for k in x.kwargs if isinstance(x.kwargs[k], np.ndarray)
                    and not np.array_equal(x.kwargs[k], y.kwargs.get(k), equal_nan=True)]
            if args:
                out.append(f"{where} call {i} ({x.label}): arguments differ: {', '.join(args)}")
                continue
            for part in x.truth:
                if part not in y.truth:
                    out.append(f"{where} call {i} ({x.label}): no {part} in the new corpus")
                    continue
                with np.errstate(invalid="ignore"):
                    if not np.allclose(x.truth[part], y.truth[part], rtol=1e-12, atol=0, equal_nan=True):
                        out.append(f"{where} call {i} ({x.label}): the float64 truth of {part} moved (rnn_ref changed)")
                dtype = np.asarray(x.kwargs["inputs"]).dtype
                with np.errstate(invalid="ignore", over="ignore"):
                    moved = ~accepts(y.keras[part], np.asarray(x.keras[part], np.float64), x.budget[part], dtype)
                if moved.any():
                    j = tuple(int(v) for v in np.argwhere(moved)[0])
                    out.append(f"{where} call {i} ({x.label}): Keras's result differs in {part} beyond the budget at "
                               f"{j}: {float(x.keras[part][j])!r} -> {float(y.keras[part][j])!r} "
                               f"({int(moved.sum())} of {moved.size} elements)")
    return out
