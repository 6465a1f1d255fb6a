"""Build the conformance corpus (``rnn_ref.harness.corpus``) from live Keras.

Every property of the catalogue (a layer's and its backward pass's) runs on
rnn_ref's own reference through a ``RecordingContext``: each call the property
makes, judged or not, is judged against Keras and the float64 truth as
``Context.expect`` does it, and kept with its budget. The cases are drawn
small (B <= 3, T <= 12, D and U <= 6 where the property does not pin them:
the smallest shapes catch the mutants of the test suite, and the corpus stays
a few MB), sorted smallest first, and a few long sequences at chaotic gains
are added per layer.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from rnn_ref.harness import corpus
from rnn_ref.harness.backprop import reference_backward
from rnn_ref.harness.cases import FULL, Case, Support
from rnn_ref.harness.context import Context, Judged
from rnn_ref.harness.oracle import versions
from rnn_ref.harness.properties import PROPERTIES, Property, Unsupported, case_of, properties_for
from rnn_ref.models.registry import RECURRENT

#: The shapes the corpus draws where a property does not pin them.
SMALL = dict(B=st.integers(1, 3), T=st.integers(1, 12), D=st.integers(1, 6), U=st.integers(1, 6))
#: The few shapes that separate the seeds' bugs (T >= 2 to carry a state, U >= 2 to transpose).
TINY = dict(B=st.integers(1, 2), T=st.integers(1, 3), D=st.integers(1, 3), U=st.integers(1, 3))
#: Long sequences at chaotic gains, per layer (matches_keras and gradients_match_keras).
LONG = dict(B=st.integers(1, 2), T=st.integers(40, 80), D=st.integers(2, 6), U=st.integers(2, 6),
            gain=st.floats(1.0, 3.0))
#: Examples per property (every_activation_* run 29 calls an example: fewer, and shorter).
EXAMPLES = 4
FEW = {"every_activation_matches_keras": 2, "every_activation_gradients_match_keras": 2}
EVERY_ACTIVATION = dict(B=st.integers(1, 2), T=st.integers(1, 4), D=st.integers(1, 3), U=st.integers(1, 3))
LONG_EXAMPLES = 1
#: What functions written without options handle (the seeds' loops, a textbook BPTT):
#: tanh and a bias only, then also sequences out and one sequence in. Each property
#: also stores PLAIN_EXAMPLES cases drawn inside each, so that such a function is
#: checked offline on every property it can run, as it is live.
PLAIN = (
    Support(activation=("tanh",), use_bias=(True,), mask_pattern=("none",), initial_state=(False,),
            return_sequences=(False,), return_state=(False,), go_backwards=(False,), zero_output_for_mask=(False,),
            unbatched=(False,), recurrent_activation=("sigmoid",), reset_after=(True,)),
    Support(activation=("tanh",), use_bias=(True,), mask_pattern=("none",), initial_state=(False,),
            return_state=(False,), go_backwards=(False,), zero_output_for_mask=(False,),
            recurrent_activation=("sigmoid",), reset_after=(True,)),
)
PLAIN_EXAMPLES = 3


class RecordingContext(Context):
    """A Context that keeps every call it judges (``records``), and judges the calls
    a property makes without judging (``call``, ``call_gradients``) too, so that
    the corpus holds Keras's answer and a budget for each of them."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.records: list = []
        self._judging = False

    def judge_all(self, label, got, keras, truth, keras_truth, spread, case, kw, alternatives=()):
        results = super().judge_all(label, got, keras, truth, keras_truth, spread, case, kw,
                                    alternatives=alternatives)
        parts = ("output", *self.spec.states) if kw["return_state"] else ("output",)
        as_t = lambda o: o if isinstance(o, tuple) else (o,)  # noqa: E731
        self.records.append(dict(label=label, kind="forward", kwargs=kw, parts=parts,
                                 truth=as_t(truth), keras=as_t(keras),
                                 budget=tuple(r.budget for r in as_t(results)),
                                 alternatives=tuple((sw, as_t(t)) for sw, t in alternatives)))
        return results

    def judge_gradients(self, label, got, keras, truth, keras_truth, spread, case, kw):
        results = super().judge_gradients(label, got, keras, truth, keras_truth, spread, case, kw)
        parts = tuple(results)
        self.records.append(dict(label=label, kind="gradients", kwargs=kw, parts=parts,
                                 truth=tuple(truth[p] for p in parts), keras=tuple(keras[p] for p in parts),
                                 budget=tuple(results[p].budget for p in parts)))
        return results

    def expect(self, *args, **kwargs):
        return self._inside(super().expect, *args, **kwargs)

    def expect_gradients(self, *args, **kwargs):
        return self._inside(super().expect_gradients, *args, **kwargs)

    def _inside(self, judged, *args, **kwargs):
        """Run ``judged`` with the plain ``call``s it makes itself."""
        was, self._judging = self._judging, True
        try:
            return judged(*args, **kwargs)
        finally:
            self._judging = was

    def call(self, candidate, case: Case, **overrides):
        if self._judging:
            return super().call(candidate, case, **overrides)
        judged = self.expect(candidate, case, "unjudged call", **overrides)
        return tuple(j.value for j in judged) if isinstance(judged, tuple) else judged.value

    def call_gradients(self, candidate, case: Case, d_output=None, *, expected=None, **overrides):
        if self._judging:
            return super().call_gradients(candidate, case, d_output, expected=expected, **overrides)
        judged = self.expect_gradients(candidate, case, "unjudged call", d_output=d_output, **overrides)
        return {k: j.value for k, j in judged.items()}


def _small(prop: Property, long: bool = False, tiny: bool = False) -> Property:
    """``prop`` drawing the corpus's shapes where it does not pin them."""
    shapes = {**(LONG if long else TINY if tiny else SMALL), **prop.shapes}
    if long:
        shapes.update(LONG)
    if prop.name in FEW:
        shapes.update(EVERY_ACTIVATION)
    return dataclasses.replace(prop, shapes=shapes, anchor=None)


def _size(case: Case) -> int:
    s = case.shape
    return s["B"] * s["T"] * (s["D"] + s["U"])


def _run(prop: Property, ctx: RecordingContext, candidate, n: int, seed: int, support: Support = FULL) -> list:
    """``n`` examples of ``prop`` on ``candidate``, drawn inside ``support``: [(case, records)]."""
    found = []
    strategy = prop.strategy_for(support, spec=ctx.spec)

    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(drawn):
        ctx.records = []
        prop.check(ctx, candidate, drawn)
        found.append((drawn, ctx.records))

    was, ctx.support = ctx.support, support  # every_activation_* loop over ctx.support's activations
    try:
        hypothesis_seed(seed)(run)()
    finally:
        ctx.support = was
    return found


def _entry(layer: str, name: str, kind: str, found: list, out: Path, start_id: int) -> tuple[dict, int]:
    arrays, listed = {}, []
    found = sorted(found, key=lambda fr: _size(case_of(fr[0])))
    for k, (drawn, records) in enumerate(found):
        case = case_of(drawn)
        cid = f"c{k:03d}"  # numbered within its (layer, property): a partial rebuild finds the same ids
        calls = []
        for i, rec in enumerate(records):
            prefix = f"{cid}/{i}/"
            kw = dict(rec["kwargs"])
            names, options = [], {}
            state = kw.pop("initial_state", None)
            for key, value in kw.items():
                if isinstance(value, np.ndarray):
                    arrays[f"{prefix}arg/{key}"] = value
                    names.append(key)
                elif value is None:
                    continue
                else:
                    options[key] = value
            states = [] if state is None else list(state) if isinstance(state, (list, tuple)) else [state]
            for j, s in enumerate(states):
                arrays[f"{prefix}arg/initial_state.{j}"] = np.asarray(s)
            for part, t, kv, b in zip(rec["parts"], rec["truth"], rec["keras"], rec["budget"]):
                arrays[f"{prefix}truth/{part}"] = np.asarray(t, dtype=np.float64)
                arrays[f"{prefix}keras/{part}"] = np.asarray(kv)
                # float32 is enough for a budget: rounded up, it never rejects what the exact one accepts
                b32 = np.asarray(b, dtype=np.float64).astype(np.float32)
                arrays[f"{prefix}budget/{part}"] = np.where(b32 < np.asarray(b), np.nextafter(b32, np.float32(np.inf)), b32)
            alternatives = rec.get("alternatives", ())
            for j, (_, alt) in enumerate(alternatives):
                for part, t in zip(rec["parts"], alt):
                    arrays[f"{prefix}alternative.{j}/{part}"] = np.asarray(t, dtype=np.float64)
            calls.append(dict(label=rec["label"], options=options, arrays=names, initial_states=len(states),
                              state_list=isinstance(state, (list, tuple)), parts=list(rec["parts"]),
                              dtype=case.dtype.name, **({"alternatives": [sw for sw, _ in alternatives]}
                                                        if alternatives else {})))
        listed.append(dict(id=cid, size=_size(case), describe=case.describe(), calls=calls))
    file = f"{layer}/{name}.npz"
    (out / layer).mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / file, **arrays)
    return dict(layer=layer, property=name, kind=kind, doc=PROPERTIES[name].doc, file=file, cases=listed), \
        start_id + len(found)


def build(out: Path, *, layers=None, properties=None, examples: int = EXAMPLES, seed: int = 0,
          progress=print) -> dict:
    """Build the corpus into ``out`` (``layers``, ``properties``: all by default); return the manifest."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entries, next_id, start = [], 0, time.perf_counter()
    for layer, spec in RECURRENT.items():
        if layers and layer not in layers and spec.cli_name not in layers:
            continue
        ctx = RecordingContext(spec=spec)
        for kind, takes, candidate in (("forward", "layer", spec.reference),
                                       ("gradients", "gradients", reference_backward(spec.reference))):
            for name, prop in properties_for(layer, takes).items():
                if properties and name not in properties:
                    continue
                t0 = time.perf_counter()
                n = FEW.get(name, examples)
                found = _run(_small(prop), ctx, candidate, n, seed)
                for i, support in enumerate(PLAIN):  # cases a function without options can run
                    try:
                        found += _run(_small(prop, tiny=True), ctx, candidate, PLAIN_EXAMPLES, seed + 2 + i, support)
                    except Unsupported:
                        pass
                if name in ("matches_keras", "gradients_match_keras"):  # then long, chaotic sequences
                    found += _run(_small(prop, long=True), ctx, candidate, LONG_EXAMPLES, seed + 1)
                entry, next_id = _entry(layer, name, kind, found, out, next_id)
                entries.append(entry)
                progress(f"{layer:<9} {name:<56} {len(found):>3} cases "
                         f"{sum(len(c['calls']) for c in entry['cases']):>4} calls  {time.perf_counter() - t0:5.1f} s")
    files = {e["file"]: corpus.sha256(out / e["file"]) for e in entries}
    manifest = dict(
        schema_version=corpus.SCHEMA_VERSION, versions=versions(),
        command=" ".join(shlex.quote(a) for a in ["python", "-m", "rnn_ref", "corpus", *sys.argv[2:]])
        if sys.argv[1:2] == ["corpus"] else "rnn_ref.harness.corpus_build.build",
        seed=seed, examples=examples, created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        acceptance_rule=corpus.ACCEPTANCE_RULE, files=files, entries=entries,
        seconds=round(time.perf_counter() - start, 1),
    )
    (out / "manifest.json").write_text(json.dumps(manifest, separators=(",", ":")) + "\n")
    return manifest


def recompute(root: Path, out: Path, *, layer: str, properties) -> dict:
    """The stored calls of ``layer``'s ``properties`` in the corpus at ``root``, with Keras's
    results and the float64 truths computed again here (same arguments, same budgets),
    written as a corpus at ``out``: ``corpus.compare(root, out)`` then names what another
    Keras, TensorFlow or rnn_ref changed (the drift test)."""
    from rnn_ref.harness.backprop import float64_gradients, named_arrays
    from rnn_ref.harness.oracle import KerasOracle, keras_gradients

    out = Path(out)
    manifest = corpus.load_manifest(root)
    spec = RECURRENT[layer]
    oracle = KerasOracle(spec)
    entries = [e for e in manifest["entries"] if e["layer"] == layer and e["property"] in properties]
    for entry in entries:
        with np.load(Path(root) / entry["file"]) as data:
            arrays = {k: data[k] for k in data.files}
        for case in corpus.cases(root, layer=layer, properties=[entry["property"]], manifest=manifest):
            for i, call in enumerate(case.calls):
                kw = dict(call.kwargs)
                with np.errstate(all="ignore"):
                    if call.kind == "gradients":
                        d_output = kw.pop("d_output")
                        keras = dict(named_arrays(keras_gradients(oracle, **kw, d_output=d_output)))
                        truth = dict(named_arrays(float64_gradients(spec.reference, kw, d_output)))
                    else:
                        as_t = lambda o: o if isinstance(o, tuple) else (o,)  # noqa: E731
                        keras = dict(zip(call.truth, as_t(oracle(**kw))))
                        up = lambda a: a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a  # noqa: E731
                        kw64 = {k: [up(s) for s in v] if isinstance(v, list) else up(v) for k, v in kw.items()}
                        truth = dict(zip(call.truth, as_t(spec.reference(**kw64))))
                for part in call.truth:
                    arrays[f"{case.id}/{i}/keras/{part}"] = np.asarray(keras[part])
                    arrays[f"{case.id}/{i}/truth/{part}"] = np.asarray(truth[part], dtype=np.float64)
        (out / layer).mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out / entry["file"], **arrays)
    new = dict(manifest, versions=versions(), entries=entries,
               files={e["file"]: corpus.sha256(out / e["file"]) for e in entries})
    (out / "manifest.json").write_text(json.dumps(new, separators=(",", ":")) + "\n")
    return new
