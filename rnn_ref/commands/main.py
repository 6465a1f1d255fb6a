"""Command line: ``python -m rnn_ref COMMAND ...`` (``python -m rnn_ref COMMAND --help`` for each)."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from typing import NamedTuple


class Command(NamedTuple):
    module: str
    help: str
    needs: tuple  # what it imports beyond NumPy: the ``harness`` extra


COMMANDS = {
    "demo": Command("rnn_ref.commands.demo", "Embedding -> SimpleRNN(100) -> Dense(1), then Embedding -> "
                    "Bidirectional(LSTM) -> GRU -> Dense(1), in Keras and rebuilt in NumPy, side by side",
                    ("tensorflow", "keras")),
    "report": Command("rnn_ref.commands.report", "sweep every property against Keras and write report/ (report.md, "
                      "report.json, plots); 'report compare OLD NEW' compares two runs",
                      ("tensorflow", "keras", "hypothesis", "matplotlib")),
    # check runs live with the harness installed, on the stored corpus without it (it decides itself)
    "check": Command("rnn_ref.commands.check", "check your own SimpleRNN, LSTM, GRU or Bidirectional function against Keras, "
                     "property by property (offline, on the stored corpus, without TensorFlow)", ()),
    "corpus": Command("rnn_ref.commands.corpus", "corpus build: store Keras's answers for offline checks "
                      "(needs the harness); corpus verify: check the stored corpus and rnn_ref against it", ()),
    "check-model": Command("rnn_ref.commands.check_model", "check a saved Keras model on another runtime (Keras's JAX "
                           "or NumPy backend, ONNX Runtime, LiteRT, your predict function) against Keras and the "
                           "float64 truth", ("tensorflow", "keras", "hypothesis")),
    "conformance": Command("rnn_ref.commands.conformance", "every catalogue model on every runtime: conformance.md, a table model x runtime", ("tensorflow", "keras", "hypothesis")),
    "bench": Command("rnn_ref.commands.bench", "time the harness and the NumPy model against compiled Keras",
                     ("tensorflow", "keras", "threadpoolctl")),
}


def missing(command: str) -> list[str]:
    """The modules ``command`` needs that are not installed."""
    def absent(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is None
        except (ImportError, ValueError):  # a broken or blocked installation counts as absent
            return True

    return [m for m in COMMANDS[command].needs if absent(m)]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rnn_ref",
                                description="A NumPy reference of Keras's SimpleRNN, LSTM, GRU and Bidirectional, checked against live Keras.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        # Each command parses its own arguments (and its own --help).
        sub.add_parser(name, help=command.help, add_help=False)
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, rest = parser().parse_known_args(argv[:1])
    rest += argv[1:]
    lacking = missing(args.command)
    if lacking:
        print(f"rnn_ref {args.command} needs the harness ({', '.join(lacking)} not installed): "
              "pip install 'rnn_ref[harness]', or pip install -e '.[harness]' in a checkout", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[args.command].module)
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
