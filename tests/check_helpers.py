"""Running ``python -m rnn_ref check`` in the test process and reading its output."""

from __future__ import annotations

from rnn_ref.commands import check


def run_check(capsys, *argv):
    """``(exit status, stdout, stderr)`` of ``check.main(argv)``."""
    status = check.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def result_line(out: str, prop: str) -> str:
    """The one-line result of ``prop`` in the checker's output."""
    lines = [ln for ln in out.splitlines() if ln.split()[1:2] == [prop]]
    assert lines, f"no result line for {prop}:\n{out}"
    return lines[0]
