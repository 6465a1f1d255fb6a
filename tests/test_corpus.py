"""The conformance corpus: offline checks reject what the live check rejects.

The shipped corpus (rnn_ref/corpus_data, ``python -m rnn_ref corpus build``)
holds Keras's answers, the float64 truths and the budgets of every property's
calls. Here: its files match the manifest and rnn_ref meets every budget
(``corpus verify``); every mutant the live check rejects (tests/test_catches_bugs.py,
tests/test_check_gradients.py) is rejected offline on the same property; the
correct functions pass; the standalone runner (numpy and json only) gives the
same verdicts; and, with TensorFlow installed, a rebuilt sample equals the
shipped one, so a different Keras shows up as named differences.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnn_ref.harness import corpus
from rnn_ref.implementations import mutants, variants
from rnn_ref.harness.backward_candidate import AdaptedGradients
from rnn_ref.harness.candidate import Adapted, probe
from rnn_ref.models.registry import RECURRENT

from check_helpers import result_line, run_check
from test_catches_bugs import EXPECTED, GATED
from test_check_gradients import EXPECTED as GRADIENT_EXPECTED

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / "examples" / "corpus_runner.py"


def offline(fn, layer="SimpleRNN", prop=None, layout="keras", gradients=False):
    spec = RECURRENT[layer]
    candidate = (AdaptedGradients if gradients else Adapted)(fn, layout, spec=spec)
    found = probe(candidate)
    assert found.problem is None, found.problem
    candidate.support = found.support
    results = corpus.run_offline(candidate, layer, "gradients" if gradients else "forward",
                                 [prop] if prop else None)
    return {r.name: r for r in results}


def test_shipped_corpus_matches_its_manifest_and_rnn_ref_meets_every_budget(capsys):
    from rnn_ref.commands import corpus as corpus_command

    assert corpus.check_files() == []
    manifest = corpus.load_manifest()
    assert manifest["schema_version"] == corpus.SCHEMA_VERSION
    assert {"keras", "tensorflow", "numpy"} <= set(manifest["versions"])
    size = sum(f.stat().st_size for f in corpus.SHIPPED.rglob("*") if f.is_file())
    assert size <= 5e6, f"the corpus is {size / 1e6:.2f} MB"
    assert corpus_command.main(["verify"]) == 0
    assert "0 over budget" in capsys.readouterr().out
    # every layer, both kinds, every property of the live catalogue but Bidirectional functions'
    kinds = {(e["layer"], e["kind"]) for e in manifest["entries"]}
    assert kinds == {(layer, kind) for layer in RECURRENT for kind in ("forward", "gradients")}


def test_verify_catches_a_tampered_file(tmp_path):
    import shutil

    copy = tmp_path / "corpus"
    shutil.copytree(corpus.SHIPPED, copy)
    entry = corpus.load_manifest(copy)["entries"][0]
    with np.load(copy / entry["file"]) as data:
        arrays = {k: data[k] for k in data.files}
    key = next(k for k in arrays if "/truth/" in k)
    arrays[key] = arrays[key] + 1.0  # a truth off by one
    np.savez_compressed(copy / entry["file"], **arrays)
    assert corpus.check_files(copy) == [f"{entry['file']}: sha256 differs from the manifest"]


@pytest.mark.parametrize("layer, mutant, prop", [("SimpleRNN", *e) for e in EXPECTED] + GATED)
def test_mutants_rejected_live_are_rejected_offline(layer, mutant, prop):
    r = offline(mutants.MUTANTS[mutant], layer, prop)[prop]
    assert r.status == "FAIL", f"{mutant} passed {prop} offline on {r.checked} stored cases"


@pytest.mark.parametrize("bug", list(mutants.SEED_STYLE))
@pytest.mark.parametrize("style", [0, 1])
def test_seed_style_bugs_are_rejected_offline(bug, style):
    r = offline(mutants.SEED_STYLE[bug][style], layout="textbook", prop="matches_keras")["matches_keras"]
    sizes = {k: int(v) for k, v in (kv.split("=") for kv in r.case.split(";")[0].split()[:4])}
    assert r.status == "FAIL" and sizes["B"] <= 2 and sizes["T"] <= 3 and sizes["U"] <= 3, (r.status, r.case)


@pytest.mark.parametrize("bug, prop, layer", [(b, p, lay) for b, p, layers in GRADIENT_EXPECTED for lay in layers])
def test_backward_mutants_rejected_live_are_rejected_offline(bug, prop, layer):
    spec = next(s for s in RECURRENT.values() if s.cli_name == layer)
    fn = mutants.GRADIENT_MUTANTS[bug][spec.reference.__name__]
    r = offline(fn, spec.name, prop, gradients=True)[prop]
    assert r.status == "FAIL", f"{fn.__name__} passed {prop} offline on {r.checked} stored cases"


@pytest.mark.parametrize("name", list(variants.SEED_STYLE))
def test_correct_seed_style_functions_pass_offline(name):
    results = offline(variants.SEED_STYLE[name], layout="textbook")
    assert {r.status for r in results.values()} <= {"pass", "unsupported"}, {
        n: r.message for n, r in results.items() if r.status not in ("pass", "unsupported")}
    assert results["matches_keras"].status == "pass" and results["matches_keras"].checked >= 2


def test_the_textbook_examples_offline_from_the_command_line(capsys):
    example = ROOT / "examples" / "check_bptt_textbook.py"
    status, out, _ = run_check(capsys, f"{example}:rnn_backward", "--gradients", "--layout", "textbook", "--offline")
    assert status == 0 and "offline (--offline)" in out.splitlines()[0]
    assert result_line(out, "gradients_match_keras").startswith("pass")
    for bug in ("derivative_at_pre_activation", "gradient_not_carried", "clipped_like_min_char_rnn"):
        status, out, _ = run_check(capsys, f"{example}:{bug}", "--gradients", "--layout", "textbook", "--offline")
        assert status == 1, out
        assert "from rnn_ref.harness.corpus import cases, judge_call" in out  # the reproduction reloads the stored case
    status, out, _ = run_check(capsys, f"{ROOT / 'examples' / 'check_textbook_correct.py'}:rnn_forward",
                               "--layout", "textbook", "--offline")
    assert status == 0 and "17 pass of 17 properties" in out


def test_standalone_runner_gives_the_same_verdicts():
    def run(target):
        return subprocess.run([sys.executable, str(RUNNER), target, "--layer", "SimpleRNN"],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)

    ok = run("rnn_ref:simple_rnn")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "0 failed" in ok.stdout
    bad = run("rnn_ref.implementations.mutants:missing_activation")
    assert bad.returncode == 1 and "FAIL" in bad.stdout, bad.stdout + bad.stderr
    # the runner imports neither rnn_ref's corpus module nor anything but numpy and json to judge
    source = RUNNER.read_text()
    assert "import rnn_ref" not in source and "from rnn_ref" not in source


@pytest.mark.keras
def test_a_rebuilt_sample_equals_the_shipped_corpus(tmp_path):
    from rnn_ref.harness import corpus_build

    shipped = corpus.load_manifest()
    names = ["matches_keras", "mask_matches_keras", "gradients_match_keras"]
    rebuilt = corpus_build.recompute(corpus.SHIPPED, tmp_path, layer="GRU", properties=names)
    differences = corpus.compare(corpus.SHIPPED, tmp_path, layer="GRU", properties=names)
    assert rebuilt["versions"] == shipped["versions"], "the corpus was built with another Keras: rebuild it"
    assert differences == [], "\n".join(differences[:10])


def test_compare_names_a_different_keras_result(tmp_path):
    import shutil

    copy = tmp_path / "corpus"
    shutil.copytree(corpus.SHIPPED, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    entry = next(e for e in manifest["entries"] if e["layer"] == "GRU" and e["property"] == "matches_keras")
    with np.load(copy / entry["file"]) as data:
        arrays = {k: data[k] for k in data.files}
    key = next(k for k in arrays if "/keras/" in k)
    arrays[key] = arrays[key] * 1.5  # "another Keras"
    np.savez_compressed(copy / entry["file"], **arrays)
    differences = corpus.compare(corpus.SHIPPED, copy, layer="GRU", properties=["matches_keras"])
    assert len(differences) == 1 and "Keras's result differs" in differences[0] and key.split("/")[0] in differences[0]
