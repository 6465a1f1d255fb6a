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


def port_checkers(path, model):
    """``make(predict, batch=None)``: the ``model_checks.Checker`` of a ``predict`` callable (a
    port, a runtime mutant) on the saved Keras ``model`` at ``path``, against Keras in this
    process, with the resets a stateful model needs (``check_model.make_checker``)."""
    import rnn_ref
    from rnn_ref.commands.check_model import make_checker
    from rnn_ref.harness.model_checks import signature_of
    from rnn_ref.runtimes import CallableRuntime
    from rnn_ref.runtimes.keras_tf import KerasTF

    np_model = rnn_ref.from_keras(model)
    keras_line = KerasTF(str(path), model)

    def make(predict, batch=None):
        return make_checker(CallableRuntime(predict, "port", batch=batch), keras_line, np_model,
                            signature_of(np_model, batch))

    return make


def run_check_model(capsys, *argv):
    """``(exit status, stdout)`` of ``check-model`` run in the test process."""
    from rnn_ref.commands import check_model

    status = check_model.main([str(a) for a in argv])
    return status, capsys.readouterr().out
