"""What a failure comes with: a script that reproduces it, and the comparison
of the candidate, Keras and the float64 truth on its case."""

from __future__ import annotations

import numpy as np

from rnn_ref.harness import tolerance
from rnn_ref.harness.guard import describe_exception
from rnn_ref.harness.properties import PROPERTIES, case_of
from rnn_ref.models.registry import SIMPLE_RNN, LayerSpec


def option_overrides(case, last_kwargs, error) -> dict | None:
    """Options of the candidate's last call that differ from the case's own, when
    that call is the one judged (a failure with verdicts); None when that call had
    weights other than the case's (a Bidirectional's backward layer), which
    options alone cannot rebuild."""
    if case is None or not last_kwargs or not getattr(error, "verdicts", None):
        return {}
    own = case.kwargs()
    for w in case.spec.weights:
        if w in last_kwargs and not (last_kwargs[w] is own[w] or (
                last_kwargs[w] is not None and own[w] is not None and np.array_equal(last_kwargs[w], own[w]))):
            return None
    return {k: last_kwargs[k] for k in case.spec.layer_options
            if k in last_kwargs and isinstance(last_kwargs[k], (str, bool)) and last_kwargs[k] != own[k]}


#: A reproduction prints the case's arrays when they hold at most this many numbers.
SMALL_CASE = 64


def reproduction(name: str, case, *, target: str | None = None, layout: str = "keras",
                  overrides: dict | None = None) -> str:
    """A script that rebuilds the case (``case``: a Case, or what the property
    drew) and runs the candidate, Keras and the float64 reference on it, then
    the property itself. With ``target`` it imports the candidate from there."""
    if case is None:
        return ""
    drawn = case
    case = case_of(drawn)
    wrapper = PROPERTIES[name].takes == "bidirectional"  # a Bidirectional function
    backward = PROPERTIES[name].takes == "gradients"  # a backward pass
    lines = [case.snippet().rstrip("\n")]
    arg = "case"
    if drawn is not case:
        extras = ", ".join(repr(_plain(x)) for x in drawn[1:])
        lines.append(f"drawn = (case, {extras})  # the case and what the property drew with it")
        arg = "drawn"
    arrays = {k: v for k, v in case.kwargs().items() if isinstance(v, np.ndarray)}
    if sum(v.size for v in arrays.values()) <= SMALL_CASE:
        lines += ["import numpy as np",
                  "with np.printoptions(precision=9, suppress=False):",
                  "    for name, value in case.kwargs().items():",
                  "        if isinstance(value, np.ndarray):",
                  "            print(f'{name} = {value!r}')"]
    if sum(v.size for v in arrays.values()) <= SMALL_CASE and backward:
        lines += ["from rnn_ref.harness.backprop import cotangent_for",
                  "print('d_output =', repr(cotangent_for(case)))  # the output's cotangent the property passes"]
    if target is None:
        load = (f"candidate = your_function  # the function under test, called like "
                f"rnn_ref.{case.spec.reference.__name__}" + (" with d_output=..." if backward else ""))
        support = ""
    else:
        layout_arg = "" if layout == "keras" else f", layout={layout!r}"
        layer_arg = "" if case.spec is SIMPLE_RNN else f", layer={case.spec.cli_name!r}"
        if wrapper:
            layer_arg = f", layer='bidirectional', wrap={case.spec.cli_name!r}"
        if backward:
            layer_arg += ", gradients=True"
        load = (f"candidate = load_candidate({target!r}{layout_arg}{layer_arg})  # run from the directory the "
                "check ran in; it probes what the function handles")
        support = "support=candidate.support"
    if case.spec is not SIMPLE_RNN:
        support = ", ".join(filter(None, [support, "spec=case.spec"]))
    opts = "".join(f", {k}={v!r}" for k, v in (overrides or {}).items())
    lines += [
        *(["from rnn_ref.harness.candidate import load_candidate"] if target is not None else []),
        "from rnn_ref.harness.context import Context",
        "from rnn_ref.harness.properties import PROPERTIES",
        "from rnn_ref.harness.reproduction import compare",
        load,
        *([] if wrapper or backward or overrides is None else
          [f"compare(candidate, case{opts})  # candidate vs Keras vs float64 truth, worst element"]),
        "try:",
        f"    PROPERTIES[{name!r}].check(Context({support}), candidate, {arg})",
        f"    print({name + ' holds on this case'!r})",
        "except AssertionError as failure:",
        f"    print({name + ' fails:'!r}, failure)",
    ]
    return "\n".join(lines) + "\n"


def _plain(x):
    """Drawn extras as plain Python (lists of ints) for the reproduction."""
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (list, tuple)):
        return type(x)(_plain(v) for v in x)
    if isinstance(x, np.generic):
        return x.item()
    return x


def compare(candidate, case, *, oracle=None, spec: LayerSpec | None = None, file=None, **overrides) -> str:
    """Run ``candidate``, Keras and the float64 reference on ``case`` (with option
    overrides); print and return, for each returned array, the element where the
    candidate is furthest from the truth. ``spec``: the case's layer by default."""
    from rnn_ref.harness.oracle import KerasOracle

    spec = spec or case.spec
    kw = case.kwargs(**overrides)
    head = f"{case.describe()}" + "".join(f"; {k}={v!r}" for k, v in overrides.items())
    lines = [head]
    try:
        with np.errstate(all="ignore"):
            got = candidate(**kw)
    except Exception as e:  # noqa: BLE001
        lines.append(f"  the candidate raised {describe_exception(e)}")
        got = None
    if got is not None:
        keras = (oracle or KerasOracle(spec))(**kw)
        with np.errstate(all="ignore"):
            truth = spec.reference(**case.astype("float64").kwargs(**overrides))
        parts = ("output", *spec.states) if kw["return_state"] else ("output",)
        as_t = lambda o: tuple(o) if isinstance(o, (tuple, list)) else (o,)  # noqa: E731
        if len(as_t(got)) != len(parts):
            lines.append(f"  the candidate returned {len(as_t(got))} arrays, expected {len(parts)} ({', '.join(parts)})")
        for part, g, k, t in zip(parts, as_t(got), as_t(keras), as_t(truth)):
            g = np.asarray(g)
            if g.shape != t.shape or g.dtype != case.dtype:
                lines.append(f"  {part}: candidate {g.dtype}{g.shape}, expected {case.dtype}{t.shape}")
                continue
            err = tolerance.abs_err(g, t, case.dtype)  # non-finite values agree only with the same
            i = tuple(int(j) for j in np.unravel_index(int(np.argmax(err)), err.shape)) if err.size else ()
            lines.append(
                f"  {part}{list(i)}: candidate {float(g[i])!r}, Keras {float(k[i])!r}, "
                f"float64 truth {float(t[i])!r}; max |candidate - truth| = {float(err[i]):.3g}"
            )
    text = "\n".join(lines)
    print(text, file=file)
    return text
