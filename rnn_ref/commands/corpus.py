"""``python -m rnn_ref corpus build|verify``: the conformance corpus (``rnn_ref.harness.corpus``).

    corpus build [--out DIR] [--examples N] [--seed S] [--layers simple_rnn,lstm,gru]
        run every property on rnn_ref against live Keras and store each judged call
        (needs the harness: TensorFlow, Keras, hypothesis); the default DIR is the
        corpus shipped inside the package, rebuilt only on purpose.
    corpus verify [--dir DIR]
        NumPy only: the files match the manifest's sha256, and rnn_ref's own layers
        and backward passes meet every stored budget.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    from rnn_ref.harness.corpus import SHIPPED

    p = argparse.ArgumentParser(prog="python -m rnn_ref corpus", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="action", required=True)
    b = sub.add_parser("build", help="store Keras's answers (needs TensorFlow, Keras, hypothesis)")
    b.add_argument("--out", type=Path, default=SHIPPED, help=f"where to write it (default {SHIPPED})")
    b.add_argument("--examples", type=int, default=None, help="examples per property (default 4)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--layers", default=None, help="comma-separated: simple_rnn, lstm, gru (default all)")
    v = sub.add_parser("verify", help="check the files and rnn_ref against the corpus (NumPy only)")
    v.add_argument("--dir", type=Path, default=SHIPPED, help=f"the corpus (default {SHIPPED})")
    args = p.parse_args(argv)
    if args.action == "build":
        return _build(args)
    return _verify(args.dir)


def _build(args) -> int:
    try:
        from rnn_ref.harness import corpus_build
    except ImportError as e:
        print(f"error: corpus build needs the harness ({e.name} not installed): pip install 'rnn_ref[harness]'",
              file=sys.stderr)
        return 2
    layers = [s.strip() for s in args.layers.split(",")] if args.layers else None
    manifest = corpus_build.build(args.out, layers=layers, examples=args.examples or corpus_build.EXAMPLES,
                                  seed=args.seed)
    size = sum(f.stat().st_size for f in Path(args.out).rglob("*") if f.is_file())
    n = sum(len(e["cases"]) for e in manifest["entries"])
    print(f"wrote {args.out}: {n} cases, {len(manifest['files'])} files, {size / 1e6:.2f} MB in "
          f"{manifest['seconds']:.0f} s (Keras {manifest['versions']['keras']}, TensorFlow "
          f"{manifest['versions']['tensorflow']})")
    return 0


def _verify(root: Path) -> int:
    from rnn_ref.harness.corpus import CorpusError, cases, check_files, judge_call, load_manifest
    from rnn_ref.harness.backprop import reference_backward
    from rnn_ref.models.registry import RECURRENT

    start = time.perf_counter()
    try:
        manifest = load_manifest(root)
    except CorpusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    bad_files = check_files(root, manifest)
    for line in bad_files:
        print(f"FAIL {line}")
    failures, calls = [], 0
    for case in cases(root, manifest=manifest):
        reference = RECURRENT[case.layer].reference
        fn = reference_backward(reference) if case.kind == "gradients" else reference
        for call in case.calls:
            calls += 1
            problem = judge_call(fn, call)
            if problem:
                failures.append(f"{case.layer} {case.property} {case.id} ({case.describe}): {problem}")
    for line in failures[:20]:
        print(f"FAIL {line}")
    v = manifest["versions"]
    print(f"{'ok' if not (bad_files or failures) else 'FAILED'}: {len(manifest['files'])} files, {calls} calls of "
          f"rnn_ref checked against the corpus of Keras {v['keras']} (TensorFlow {v['tensorflow']}, NumPy "
          f"{v['numpy']}), {len(failures)} over budget, in {time.perf_counter() - start:.1f} s")
    return 1 if bad_files or failures else 0


if __name__ == "__main__":
    sys.exit(main())
