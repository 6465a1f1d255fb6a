"""Command line: ``python -m rnn_ref COMMAND ...``.

Commands:
  demo     Embedding -> SimpleRNN(100) -> Dense(1) in Keras and rebuilt in NumPy, side by side
  report   sweep every property against Keras and write report/ (report.md, report.json, plots)
  check    check your own SimpleRNN function against Keras, property by property
  bench    time the harness and the NumPy model against compiled Keras
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

COMMANDS = {
    "demo": "rnn_ref.demo",
    "report": "rnn_ref.report",
    "check": "rnn_ref.check",
    "bench": "rnn_ref.bench",
}


#: What each command imports beyond NumPy: the ``harness`` extra.
NEEDS = {
    "demo": ("tensorflow", "keras"),
    "report": ("tensorflow", "keras", "hypothesis", "matplotlib"),
    "check": ("tensorflow", "keras", "hypothesis", "rich"),
    "bench": ("tensorflow", "keras", "threadpoolctl"),
}


def missing(command: str) -> list[str]:
    """The modules ``command`` needs that are not installed."""
    def absent(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is None
        except (ImportError, ValueError):  # a broken or blocked installation counts as absent
            return True

    return [m for m in NEEDS.get(command, ()) if absent(m)]


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"unknown command {command!r}; expected one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    lacking = missing(command)
    if lacking:
        print(f"rnn_ref {command} needs the harness ({', '.join(lacking)} not installed): "
              "pip install 'rnn_ref[harness]', or pip install -e '.[harness]' in a checkout", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
