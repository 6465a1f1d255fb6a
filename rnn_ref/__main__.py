"""Command line: ``python -m rnn_ref COMMAND ...``.

Commands:
  demo     Embedding -> SimpleRNN(100) -> Dense(1) in Keras and rebuilt in NumPy, side by side
  report   sweep every property against Keras and write report/ (report.md, report.json, plots)
  check    check your own SimpleRNN function against Keras, property by property
  bench    time the harness and the NumPy model against compiled Keras
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "demo": "rnn_ref.demo",
    "report": "rnn_ref.report",
    "check": "rnn_ref.check",
    "bench": "rnn_ref.bench",
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"unknown command {command!r}; expected one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
