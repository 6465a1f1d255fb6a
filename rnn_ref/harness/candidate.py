"""Anyone's SimpleRNN function, made checkable by the property catalogue.

The catalogue calls a candidate the way it calls ``rnn_ref.simple_rnn``:
keyword arrays in Keras's layout, every option by keyword. Functions people
write look otherwise: ``def rnn(x, W, U, b)`` with the textbook layout, no
options, one sequence at a time. Two steps bridge the gap:

* ``Adapted(fn, layout)`` reads ``fn``'s signature. The arrays go in by
  position, converted to the layout (``keras``, ``textbook`` or ``torch``);
  options ``fn`` does not take are left out when they have their default
  value and declined (NotImplementedError) otherwise; ``fn`` gets writable
  C-contiguous copies, and a change it makes to them in place is reported.
* ``probe(candidate)`` calls it on tiny cases, one feature at a time (each
  activation, float64, ``bias=None``, each option, each mask pattern, one
  sequence), and returns the ``Support`` the properties then draw inside.
  A feature is declined when the call raises (NotImplementedError or
  anything else): a correct function that does not handle ``bias=None`` is
  not a wrong one. Every property then checks its full example count on
  what the function handles.
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import os
import pkgutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..activations import ACTIVATIONS
from .cases import DEFAULTS, MASK_PATTERNS, Support, feature, make_case
from .context import CandidateError
from .spec import SIMPLE_RNN
from .guard import CandidateRaised, CaseTimeout, describe_exception, guarded

#: Keras's option names and defaults: the keywords a candidate may take.
OPTIONS = SIMPLE_RNN.options

#: Each layout's positional arrays, as shown to users.
LAYOUTS = {
    "keras": ("inputs (B, T, D)", "kernel (D, U)", "recurrent_kernel (U, U)", "bias (U,)"),
    "textbook": ("inputs (B, T, D)", "W (U, D)", "U_rec (U, U)", "b (U,)"),
    "torch": ("inputs (B, T, D)", "weight_ih (U, D)", "weight_hh (U, U)", "bias_ih (U,)", "bias_hh (U,)"),
}


class LoadError(Exception):
    """The target cannot be loaded, or is not a callable."""


class AdaptError(Exception):
    """The function's signature cannot take the layout's arrays."""


# -- loading ---------------------------------------------------------------------

def load_function(target: str):
    """The callable named by ``path/to/file.py:function`` or ``package.module:function``
    (``function`` may be dotted, e.g. ``Class.method``)."""
    where, sep, attr = target.rpartition(":")
    if not sep or not where or not attr:
        raise LoadError(f"{target!r} does not name a function: expected PATH.py:FUNCTION or package.module:FUNCTION")
    if where.endswith(".py") or os.sep in where or "/" in where:
        module, origin = _load_file(where), where
    else:
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = pkgutil.resolve_name(where)
        except BaseException as e:  # noqa: BLE001  (a broken module is reported, not raised)
            if isinstance(e, KeyboardInterrupt):
                raise
            raise LoadError(f"cannot import module {where}: {_exc_line(e)}") from e
        origin = f"module {where}"
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            defined = sorted(n for n, v in vars(module).items()
                             if callable(v) and not n.startswith("_") and getattr(v, "__module__", None) == module.__name__)
            hint = f" (it defines: {', '.join(defined)})" if defined else ""
            close = difflib.get_close_matches(attr, defined, n=1)
            if close:
                hint = f"; did you mean {close[0]!r}?" + hint
            raise LoadError(f"{origin} has no function {attr!r}{hint}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise LoadError(f"{origin}:{attr} is a {type(obj).__name__}, not a function")
    return obj


def _load_file(path: str):
    p = Path(path)
    if not p.is_file():
        raise LoadError(f"no such file: {path}")
    name = "_rnn_ref_candidate_" + "".join(c if c.isalnum() else "_" for c in p.stem)
    spec = importlib.util.spec_from_file_location(name, p)
    if spec is None or spec.loader is None:
        raise LoadError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    folder = str(p.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # so that the file can import its neighbours
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as e:  # noqa: BLE001
        sys.modules.pop(name, None)
        if isinstance(e, KeyboardInterrupt):
            raise
        raise LoadError(f"cannot import {path}: {_exc_line(e)}") from e
    return module


def _exc_line(e: BaseException) -> str:
    if isinstance(e, SyntaxError):
        return f"SyntaxError: {e.msg} ({e.filename}, line {e.lineno})"
    return describe_exception(e)


# -- layouts ---------------------------------------------------------------------

def split_bias(bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keras's one bias as PyTorch's two, split unevenly (so that a function
    using only one of them is caught): ``bias_ih + bias_hh == bias`` up to one
    rounding."""
    b = np.asarray(bias, dtype=np.float64)
    signs = np.where(np.arange(b.size) % 2 == 0, 1.0, -1.0).reshape(b.shape)
    ih = (0.375 * b + 0.25 * signs).astype(bias.dtype)
    hh = (b - ih).astype(bias.dtype)
    return ih, hh


def to_layout(layout: str, kernel, recurrent_kernel, bias) -> list:
    """The weight arrays after ``inputs``, in ``layout``'s order and orientation."""
    if layout == "keras":
        return [kernel, recurrent_kernel, bias]
    k, r = np.asarray(kernel).T, np.asarray(recurrent_kernel).T  # (U, D), (U, U)
    if layout == "textbook":
        return [k, r, bias]
    if layout == "torch":
        return [k, r, *((None, None) if bias is None else split_bias(np.asarray(bias)))]
    raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")


@dataclass
class Signature:
    """What a function's signature accepts."""

    names: list  # the positional parameters that take arrays (all of them with *args: None)
    options: frozenset  # the Keras options it takes by keyword
    text: str

    @classmethod
    def of(cls, fn) -> "Signature":
        name = getattr(fn, "__name__", "candidate")
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):  # a builtin without a signature: assume it takes everything
            return cls(None, frozenset(OPTIONS), f"{name}(...)")
        params = list(sig.parameters.values())
        kinds = {p.kind for p in params}
        positional = [p.name for p in params
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in OPTIONS]
        keywords = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        options = frozenset(OPTIONS) if inspect.Parameter.VAR_KEYWORD in kinds else frozenset(OPTIONS) & keywords
        names = None if inspect.Parameter.VAR_POSITIONAL in kinds else positional
        return cls(names, options, f"{name}{sig}")


class Adapted:
    """``fn`` callable like ``rnn_ref.simple_rnn`` (see the module docstring).

    With ``one_row_at_a_time`` a batch is passed one sequence (T, D) at a
    time and the results stacked, for functions written for one sequence.
    With ``sequence_output`` the function, which takes no ``return_sequences``,
    returns every step's output, and its last step is the output for
    ``return_sequences=False``. With ``round_output`` a result in a wider
    dtype than the inputs (float64 for float32) is rounded to the inputs' dtype.
    """

    def __init__(self, fn, layout: str = "keras", *, one_row_at_a_time: bool = False):
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        self.fn, self.layout, self.one_row_at_a_time = fn, layout, one_row_at_a_time
        self.sequence_output = self.round_output = self.first_of_several = False
        self.signature = sig = Signature.of(fn)
        self.__name__ = getattr(fn, "__name__", "candidate")
        self.__wrapped__ = fn
        want = len(LAYOUTS[layout])
        have = want if sig.names is None else len(sig.names)
        if have < want - (2 if layout == "torch" else 1):
            raise AdaptError(
                f"{sig.text} takes {have} positional arrays; layout {layout} passes "
                f"{', '.join(LAYOUTS[layout][:-1])}[, {LAYOUTS[layout][-1]}]")
        self.has_bias = have >= want
        self.names = list(sig.names or [a.split()[0] for a in LAYOUTS[layout]])[:want if self.has_bias else want - (2 if layout == "torch" else 1)]

    def accepts(self, option: str) -> bool:
        return option in self.signature.options

    def __call__(self, inputs, kernel, recurrent_kernel, bias=None, **options):
        opts = {}
        for name, value in options.items():
            if name not in OPTIONS:
                raise TypeError(f"unknown option {name!r}")
            if self.accepts(name):
                opts[name] = value
            elif not _is_default(name, value) and not (name == "return_sequences" and self.sequence_output):
                raise NotImplementedError(f"{self.__name__}() has no parameter {name!r}")
        if bias is not None and not self.has_bias:
            raise NotImplementedError(f"{self.__name__}() takes no bias")
        weights = to_layout(self.layout, kernel, recurrent_kernel, bias)[:len(self.names) - 1]
        if self.one_row_at_a_time and np.ndim(inputs) == 3:
            out = self._rows(inputs, weights, opts)
        else:
            out = self._once(inputs, weights, opts)
        return self._adjusted(out, np.asarray(inputs).dtype, options.get("return_sequences", False))

    def _adjusted(self, out, dtype, return_sequences):
        """The output as the catalogue expects it, after the adaptations the probe chose."""
        if self.first_of_several and isinstance(out, (tuple, list)) and out:
            out = out[0]  # it returns (output, more...) and takes no return_state
        if not (self.sequence_output or self.round_output):
            return out
        parts = list(out) if isinstance(out, (tuple, list)) else [out]
        if self.sequence_output and not return_sequences:
            parts[0] = np.asarray(parts[0])[..., -1, :]  # the last step's output
        if self.round_output:
            parts = [np.asarray(p).astype(dtype) for p in parts]
        return tuple(parts) if isinstance(out, (tuple, list)) else parts[0]

    def _once(self, inputs, weights, opts):
        sources = {n: a for n, a in zip(self.names, [inputs, *weights])}
        sources.update({k: v for k, v in opts.items() if isinstance(v, np.ndarray)})
        passed = {k: np.array(v, order="C") for k, v in sources.items() if v is not None}
        args = [passed.get(n) for n in self.names]
        kwargs = {k: passed.get(k, v) for k, v in opts.items()}
        out = self.fn(*args, **kwargs)
        for k, v in passed.items():
            if not np.array_equal(v, sources[k], equal_nan=True):
                raise CandidateError(f"the candidate modified its argument {k!r} in place")
        return out

    def _rows(self, inputs, weights, opts):
        rows = []
        for b in range(np.shape(inputs)[0]):
            row = {k: (v[b] if k in ("mask", "initial_state") and v is not None else v) for k, v in opts.items()}
            rows.append(self._once(inputs[b], weights, row))
        parts = [tuple(r) if isinstance(r, (tuple, list)) else (r,) for r in rows]
        if len({len(p) for p in parts}) > 1:
            raise CandidateError("the candidate returned a different number of arrays for different rows")
        try:
            stacked = tuple(np.stack([np.asarray(p[i]) for p in parts]) for i in range(len(parts[0])))
        except ValueError as e:
            raise CandidateError(f"the candidate returned arrays of different shapes for different rows: {e}") from None
        return stacked if isinstance(rows[0], (tuple, list)) else stacked[0]

    def adaptations(self) -> list[str]:
        """How the function is called and read, beyond passing the arrays."""
        out = []
        if self.one_row_at_a_time:
            out.append("one sequence at a time")
        if self.first_of_several:
            out.append("it returns several arrays and takes no return_state: the first is its output")
        if self.sequence_output:
            out.append("it returns every step's output: the last step is its output without return_sequences")
        if self.round_output:
            out.append("it returns a wider dtype than its inputs: results are rounded to the inputs' dtype "
                       "before they are judged")
        return out

    def call_text(self) -> str:
        """How the function is called, for messages: ``rnn(x, W, U, b)``."""
        opts = [k for k in OPTIONS if self.accepts(k)]
        return f"{self.__name__}({', '.join([*self.names, *(f'{k}=...' for k in opts)])})"


def _is_default(name: str, value) -> bool:
    default = OPTIONS[name]
    return value is None if default is None else (not isinstance(value, np.ndarray) and value == default)


# -- probing ---------------------------------------------------------------------

@dataclass
class Probe:
    """What a candidate handles, found on tiny cases."""

    support: Support
    declined: dict = field(default_factory=dict)  # feature -> why ("NotImplementedError: ...")
    problem: str | None = None  # why the default configuration cannot be run (nothing can be checked)
    hint: str = ""  # e.g. "did you mean --layout textbook?"

    def declined_lines(self) -> list[str]:
        """The declined features, those with the same reason on one line."""
        by_reason: dict[str, list[str]] = {}
        for feat, why in self.declined.items():
            by_reason.setdefault(why, []).append(feat)
        lines = []
        for why, feats in by_reason.items():
            acts = [f.split("=", 1)[1].strip("'") for f in feats if f.startswith("activation=")]
            if len(acts) > 4:
                feats = [f for f in feats if not f.startswith("activation=")]
                feats.insert(0, f"{len(acts)} activations ({', '.join(acts[:3])}, ...)")
            masks = [f for f in feats if f.startswith("mask (")]
            if len(masks) == len(MASK_PATTERNS):
                feats = [f for f in feats if f not in masks] + [f"masks (all {len(masks)} patterns)"]
            lines.append(f"{', '.join(feats)}: {why}")
        return lines


PROBE_SHAPE = dict(B=2, T=3, D=2, U=3)  # D != U, so that a transposed kernel cannot fit


def probe(candidate: Adapted, timeout: float | None = None) -> Probe:
    """Call ``candidate`` on tiny cases, one feature at a time; see the module docstring."""
    fn = guarded(candidate, timeout)
    base = make_case(**PROBE_SHAPE, dtype="float32", seed=0, use_bias=candidate.has_bias)

    def attempt(case, **overrides) -> str | None:
        try:
            with np.errstate(all="ignore"):
                outputs.append(fn(**case.kwargs(**overrides)))
        except NotImplementedError as e:
            return f"NotImplementedError: {e}" if str(e) else "NotImplementedError"
        except CandidateRaised as e:
            return str(e).replace("the candidate raised ", "", 1)
        except CaseTimeout:
            return f"it did not return within {timeout:g} s"
        except CandidateError:
            return None  # it ran, and misbehaved: the properties report that, it is no reason to decline
        return None

    declined, outputs = {}, []
    why = attempt(base)
    if why is not None and not candidate.one_row_at_a_time:
        if attempt(base, inputs=base.inputs[0]) is None:
            candidate.one_row_at_a_time = True  # written for one sequence: give it one row at a time
            declined[feature("unbatched", False)] = f"{why}; rows are passed one at a time"
            why = attempt(base)
    if why is not None:
        return Probe(Support(), declined, problem=why, hint=_layout_hint(candidate, timeout))
    _adapt_output(candidate, outputs[-1], base)

    ok = {dim: [value] for dim, value in DEFAULTS.items()}

    def check(dim, value, case=base, **overrides):
        reason = attempt(case, **overrides)
        if reason is None:
            ok[dim].append(value)
        else:
            declined[feature(dim, value)] = reason

    check("dtype", "float64", base.astype("float64"))
    if candidate.has_bias:
        check("use_bias", False, bias=None)
    else:
        ok["use_bias"] = [False]
        declined[feature("use_bias", True)] = f"{candidate.__name__}() takes no bias"
    for name in ACTIVATIONS:
        if name != DEFAULTS["activation"]:
            check("activation", name, activation=name)
    for option in ("return_sequences", "return_state", "go_backwards"):
        check(option, True, **{option: True})
    check("initial_state", True, make_case(**PROBE_SHAPE, seed=0, use_bias=candidate.has_bias, initial_state=True))
    for pattern in MASK_PATTERNS:
        check("mask_pattern", pattern, make_case(**PROBE_SHAPE, seed=0, use_bias=candidate.has_bias,
                                                   mask_pattern=pattern))
    masked = "random" if "random" in ok["mask_pattern"] else "none"
    check("zero_output_for_mask", True, make_case(**PROBE_SHAPE, seed=0, use_bias=candidate.has_bias,
                                                  mask_pattern=masked, zero_output_for_mask=True))
    check("unbatched", True, inputs=base.inputs[0])
    ordered = {dim: tuple(v for v in getattr(Support(), dim) if v in ok[dim]) for dim in ok}
    return Probe(Support(**ordered), declined)


def _adapt_output(candidate: Adapted, out, case) -> None:
    """Look at the default call's result: a function without ``return_state`` that
    returns several arrays (``return hs, h``), one without ``return_sequences`` that
    returns every step's output, or one that computes in float64 for float32 inputs,
    is adapted (and says so), not failed on every property for that alone."""
    several = isinstance(out, (tuple, list)) and len(out) > 1
    if several and not candidate.accepts("return_state"):
        candidate.first_of_several = True
    first = np.asarray(out[0] if isinstance(out, (tuple, list)) else out)
    B, T, U = case.shape["B"], case.shape["T"], case.shape["U"]
    if first.shape == (B, T, U) and not candidate.accepts("return_sequences"):
        candidate.sequence_output = True
    if first.dtype.kind == "f" and first.dtype.itemsize > case.dtype.itemsize:
        candidate.round_output = True


def _layout_hint(candidate: Adapted, timeout) -> str:
    """"did you mean --layout X?" when another layout's first call runs."""
    for other in LAYOUTS:
        if other == candidate.layout:
            continue
        try:
            alt = Adapted(candidate.fn, other)
        except AdaptError:
            continue
        case = make_case(**PROBE_SHAPE, dtype="float32", seed=0, use_bias=alt.has_bias)
        for inputs in (case.inputs, case.inputs[0]):
            try:
                guarded(alt, timeout)(**case.kwargs(inputs=inputs))
            except (Exception, CaseTimeout):  # noqa: BLE001
                continue
            return f"did you mean --layout {other}?"
    return ""


def load_candidate(target: str, layout: str = "keras", *, timeout: float | None = None) -> Adapted:
    """The function named by ``target``, adapted to ``layout`` and probed:
    ``candidate.support`` is what the properties may draw, ``candidate.probe``
    the whole result (raises LoadError or AdaptError)."""
    candidate = Adapted(load_function(target), layout)
    found = probe(candidate, timeout)
    candidate.probe, candidate.support = found, found.support
    return candidate


# -- what was checked ------------------------------------------------------------------

def coverage(seen: set) -> tuple[str, str]:
    """``(checked, not checked)``: what the calls in ``seen`` (``cases.features_of``) covered."""
    has = lambda dim, v: (dim, v) in seen  # noqa: E731
    acts = [a for a in ACTIVATIONS if has("activation", a)]
    dtypes = [d for d in ("float32", "float64") if has("dtype", d)]
    checked = [", ".join(acts) if len(acts) <= 6 else f"{len(acts)} of {len(ACTIVATIONS)} activations"] if acts else []
    checked += [", ".join(dtypes)] if dtypes else []
    missing = ["other activations"] if 0 < len(acts) < len(ACTIVATIONS) else []
    missing += [d for d in ("float32", "float64") if d not in dtypes]
    for label, dim, value in (("bias", "use_bias", True), ("bias=None", "use_bias", False),
                              ("masks", "mask_pattern", "mask"), ("initial_state", "initial_state", True),
                              ("return_sequences", "return_sequences", True), ("return_state", "return_state", True),
                              ("go_backwards", "go_backwards", True),
                              ("zero_output_for_mask", "zero_output_for_mask", True),
                              ("one sequence (T, D)", "unbatched", True)):
        (checked if has(dim, value) else missing).append(label)
    return "; ".join(checked), ", ".join(f"no {m}" for m in missing)
