"""Run a SimpleRNN, LSTM or GRU forward pass against rnn_ref's stored corpus, with NumPy and json only.

A runner for the corpus format of docs/corpus.md, written without rnn_ref, as
one would port it to C, Rust or JavaScript. It reads manifest.json, loads each
forward call of one layer from its .npz file, calls your function with the
call's arguments (Keras's names and layout), and applies the acceptance rule:
|result - truth| <= budget elementwise; where the truth rounded to the case's
dtype is not finite, only the same value; an infinite budget accepts anything;
where the call stores alternatives (a Keras result that depends on the platform),
a result accepted against one of them passes too.

    python examples/corpus_runner.py my_module:my_simple_rnn [--layer SimpleRNN] [--corpus DIR]

Your function is called as ``f(inputs, kernel, recurrent_kernel, bias, **options)``
with every option stored for the call (activation, return_sequences, mask,
initial_state, ...); a call that raises NotImplementedError is skipped.
Exit status 0 when every call it ran is accepted, 1 otherwise.
"""

import argparse
import importlib
import json
import sys
from pathlib import Path

import numpy as np

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent / "rnn_ref" / "corpus_data"


def accepted(result, truth, budget, dtype):
    """The acceptance rule of docs/corpus.md, elementwise."""
    result = np.asarray(result, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        rounded = truth.astype(dtype).astype(np.float64)
        error = np.abs(result - truth)
    finite = np.isfinite(rounded)
    same = (result == rounded) | (np.isnan(result) & np.isnan(rounded))
    overflow = np.isinf(result) & (np.abs(np.where(np.isfinite(truth), truth, 0.0)) + budget >= np.finfo(dtype).max)
    ok = np.where(finite, (np.isfinite(result) & (error <= budget)) | overflow, same)
    return ok | np.isinf(budget)


def calls(root, layer):
    """Each forward call of ``layer``: (property, case id, label, kwargs, {part: (truths, budget)}),
    the truths being the truth and the call's alternatives."""
    manifest = json.loads((root / "manifest.json").read_text())
    for entry in manifest["entries"]:
        if entry["layer"] != layer or entry["kind"] != "forward":
            continue
        with np.load(root / entry["file"]) as data:
            for case in entry["cases"]:
                for i, call in enumerate(case["calls"]):
                    prefix = f"{case['id']}/{i}/"
                    kwargs = dict(call["options"])
                    for name in call["arrays"]:
                        kwargs[name] = data[prefix + "arg/" + name]
                    states = [data[f"{prefix}arg/initial_state.{j}"] for j in range(call["initial_states"])]
                    if states:
                        kwargs["initial_state"] = states if call["state_list"] else states[0]
                    others = range(len(call.get("alternatives", [])))
                    expected = {p: ([data[prefix + "truth/" + p]] + [data[f"{prefix}alternative.{j}/{p}"] for j in others],
                                    data[prefix + "budget/" + p].astype(np.float64))
                                for p in call["parts"]}
                    yield entry["property"], case["id"], call["label"], kwargs, expected


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("target", help="module:function, called like rnn_ref.simple_rnn")
    p.add_argument("--layer", default="SimpleRNN", choices=["SimpleRNN", "LSTM", "GRU"])
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = p.parse_args()
    module, _, name = args.target.partition(":")
    sys.path.insert(0, ".")
    fn = getattr(importlib.import_module(module), name)
    ran = failed = skipped = 0
    for prop, case_id, label, kwargs, expected in calls(args.corpus, args.layer):
        dtype = np.asarray(kwargs["inputs"]).dtype
        try:
            with np.errstate(all="ignore"):
                out = fn(**kwargs)
        except NotImplementedError:
            skipped += 1
            continue
        ran += 1
        results = out if isinstance(out, (tuple, list)) else (out,)
        for part, result in zip(expected, results):
            truths, budget = expected[part]
            if np.shape(result) != truths[0].shape or not any(
                    accepted(result, truth, budget, dtype).all() for truth in truths):
                failed += 1
                print(f"FAIL {prop} {case_id} {label}: {part}")
                break
    print(f"{args.layer}: {ran} calls run, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
