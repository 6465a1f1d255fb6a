"""Anyone's SimpleRNN, LSTM, GRU or Bidirectional function, callable like the layer's reference.

``Adapted(fn, layout)`` reads ``fn``'s signature. The arrays go in by
position, converted to the layout (``keras``, ``textbook`` or ``torch``);
options ``fn`` does not take are left out when they have their default value
and declined (NotImplementedError) otherwise; ``fn`` gets writable
C-contiguous copies, and a change it makes to them in place is reported.
``AdaptedBidirectional`` does the same for a Keras ``Bidirectional``.

``candidate.py`` loads and probes these (and ``backward_candidate.py``'s
``AdaptedGradients``, a backward pass adapted, which builds on this module);
it exports the names defined here.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np

from rnn_ref.harness.cases import bidirectional_kwargs, make_case
from rnn_ref.harness.context import CandidateError
from rnn_ref.models.registry import SIMPLE_RNN, LayerSpec

#: Keras's SimpleRNN option names and defaults (an adapter takes its layer's own).
OPTIONS = SIMPLE_RNN.options

LAYOUT_NAMES = ("keras", "textbook", "torch")


def layout_arrays(layout: str, spec: LayerSpec = SIMPLE_RNN) -> tuple:
    """Each positional array of ``layout`` for ``spec``'s layer, as shown to users:
    ``("inputs (B, T, D)", "W (4U, D)", ...)``."""
    g = "U" if spec.gates == 1 else f"{spec.gates}U"
    bias = "(2, 3U) or (3U,)" if spec.name == "GRU" else f"({g},)"
    if layout == "keras":
        return ("inputs (B, T, D)", f"kernel (D, {g})", f"recurrent_kernel (U, {g})", f"bias {bias}")
    if layout == "textbook":
        return ("inputs (B, T, D)", f"W ({g}, D)", f"U_rec ({g}, U)", f"b {bias}")
    if layout == "torch":
        return ("inputs (B, T, D)", f"weight_ih ({g}, D)", f"weight_hh ({g}, U)", f"bias_ih ({g},)", f"bias_hh ({g},)")
    raise ValueError(f"layout must be one of {', '.join(LAYOUT_NAMES)}, got {layout!r}")


def gate_orders(layout: str, spec: LayerSpec) -> str:
    """The order of the gate blocks in ``layout`` ("" for a SimpleRNN)."""
    if not spec.gate_names:
        return ""
    if layout == "torch":
        return ", ".join({"LSTM": "i f g o", "GRU": "r z n"}[spec.name].split())
    return ", ".join(spec.gate_names)


#: Each layout's positional arrays for a SimpleRNN, as shown to users.
LAYOUTS = {layout: layout_arrays(layout) for layout in LAYOUT_NAMES}


class AdaptError(Exception):
    """The function's signature cannot take the layout's arrays."""


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


def torch_blocks(a: np.ndarray, spec: LayerSpec, axis: int = 0) -> np.ndarray:
    """``a``'s gate blocks (``spec.gates`` along ``axis``) put in PyTorch's order."""
    if spec.gates == 1 or tuple(spec.torch_order) == tuple(range(spec.gates)):
        return a
    blocks = np.split(np.asarray(a), spec.gates, axis=axis)
    return np.concatenate([blocks[i] for i in spec.torch_order], axis=axis)


def to_layout(layout: str, kernel, recurrent_kernel, bias, spec: LayerSpec = SIMPLE_RNN) -> list:
    """The weight arrays after ``inputs``, in ``layout``'s order and orientation.

    ``textbook`` transposes the kernels (``W @ x``), gates stacked in Keras's
    order. ``torch`` also puts the gates in PyTorch's order and gives two
    biases: a GRU's two rows of ``reset_after=True`` are ``bias_ih`` and
    ``bias_hh``; any other bias is split unevenly between them.
    """
    if layout == "keras":
        return [kernel, recurrent_kernel, bias]
    k, r = np.asarray(kernel).T, np.asarray(recurrent_kernel).T  # (G, D), (G, U)
    if layout == "textbook":
        return [k, r, bias]
    if layout == "torch":
        k, r = torch_blocks(k, spec), torch_blocks(r, spec)
        if bias is None:
            return [k, r, None, None]
        b = np.asarray(bias)
        if b.ndim == 2:  # a GRU's input and recurrent biases
            return [k, r, torch_blocks(b[0], spec), torch_blocks(b[1], spec)]
        return [k, r, *split_bias(torch_blocks(b, spec))]
    raise ValueError(f"layout must be one of {', '.join(LAYOUT_NAMES)}, got {layout!r}")


@dataclass
class Signature:
    """What a function's signature accepts."""

    names: list  # the positional parameters that take arrays (all of them with *args: None)
    options: frozenset  # the Keras options it takes by keyword
    text: str

    @classmethod
    def of(cls, fn, options: dict = OPTIONS) -> "Signature":
        name = getattr(fn, "__name__", "candidate")
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):  # a builtin without a signature: assume it takes everything
            return cls(None, frozenset(options), f"{name}(...)")
        params = list(sig.parameters.values())
        kinds = {p.kind for p in params}
        positional = [p.name for p in params
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in options]
        keywords = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        options = frozenset(options) if inspect.Parameter.VAR_KEYWORD in kinds else frozenset(options) & keywords
        names = None if inspect.Parameter.VAR_POSITIONAL in kinds else positional
        return cls(names, options, f"{name}{sig}")


class Adapted:
    """``fn`` callable like ``spec``'s reference, ``rnn_ref.simple_rnn`` by default
    (see the module docstring).

    With ``one_row_at_a_time`` a batch is passed one sequence (T, D) at a
    time and the results stacked, for functions written for one sequence.
    With ``sequence_output`` the function, which takes no ``return_sequences``,
    returns every step's output, and its last step is the output for
    ``return_sequences=False``. With ``round_output`` a result in a wider
    dtype than the inputs (float64 for float32) is rounded to the inputs' dtype.
    """

    def __init__(self, fn, layout: str = "keras", *, one_row_at_a_time: bool = False,
                 spec: LayerSpec = SIMPLE_RNN):
        if layout not in LAYOUT_NAMES:
            raise ValueError(f"layout must be one of {', '.join(LAYOUT_NAMES)}, got {layout!r}")
        self.fn, self.layout, self.one_row_at_a_time, self.spec = fn, layout, one_row_at_a_time, spec
        self.options = spec.options
        self.sequence_output = self.round_output = self.first_of_several = self.nested_states = False
        self.signature = sig = Signature.of(fn, self.options)
        self.__name__ = getattr(fn, "__name__", "candidate")
        self.__wrapped__ = fn
        arrays = layout_arrays(layout, spec)
        want = len(arrays)
        have = want if sig.names is None else len(sig.names)
        if have < want - (2 if layout == "torch" else 1):
            raise AdaptError(
                f"{sig.text} takes {have} positional arrays; layout {layout} ({spec.name}) passes "
                f"{', '.join(arrays[:-1])}[, {arrays[-1]}]")
        self.has_bias = have >= want
        self.names = list(sig.names or [a.split()[0] for a in arrays])[:want if self.has_bias else want - (2 if layout == "torch" else 1)]

    def accepts(self, option: str) -> bool:
        return option in self.signature.options

    def kwargs_of(self, case, **overrides) -> dict:
        """The keyword arguments the catalogue calls this candidate with on ``case``."""
        return case.kwargs(**overrides)

    def __call__(self, inputs, kernel, recurrent_kernel, bias=None, **options):
        if self.layout == "torch" and options.get("reset_after") is False:
            raise NotImplementedError("the torch layout is a GRU with reset_after=True (PyTorch's n gate)")
        opts = {}
        for name, value in options.items():
            if name not in self.options:
                raise TypeError(f"unknown option {name!r}")
            if self.accepts(name):
                opts[name] = value
            elif not is_default(name, value, self.options) and not (name == "return_sequences" and self.sequence_output):
                raise NotImplementedError(f"{self.__name__}() has no parameter {name!r}")
        if bias is not None and not self.has_bias:
            raise NotImplementedError(f"{self.__name__}() takes no bias")
        weights = to_layout(self.layout, kernel, recurrent_kernel, bias, self.spec)[:len(self.names) - 1]
        if self.one_row_at_a_time and np.ndim(inputs) == 3:
            out = self._rows(inputs, weights, opts)
        else:
            out = self._once(inputs, weights, opts)
        return self._adjusted(out, np.asarray(inputs).dtype, options.get("return_sequences", False))

    def _adjusted(self, out, dtype, return_sequences):
        """The output as the catalogue expects it, after the adaptations the probe chose."""
        if isinstance(out, (tuple, list)) and any(isinstance(o, (tuple, list)) for o in out):
            # PyTorch's nesting, (output, (h, c)): read flat, as Keras returns it
            out = tuple(a for o in out for a in (o if isinstance(o, (tuple, list)) else (o,)))
            self.nested_states = True
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
            row = {k: (_row(v, b) if k in ("mask", "initial_state") else v) for k, v in opts.items()}
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
        if self.nested_states:
            out.append("it returns its states nested, (output, (h, c)): read flat, (output, h, c)")
        if self.first_of_several:
            out.append("it returns several arrays and takes no return_state: the first is its output")
        if self.sequence_output:
            out.append("it returns every step's output: the last step is its output without return_sequences")
        if self.round_output:
            out.append("it returns a wider dtype than its inputs: results are rounded to the inputs' dtype "
                       "before they are judged")
        return out

    def adapt_to(self, out, case) -> None:
        """Adapt to what the default call on ``case`` returned (see ``_adapt_output``)."""
        _adapt_output(self, out, case)

    def call_text(self) -> str:
        """How the function is called, for messages: ``rnn(x, W, U, b)``."""
        opts = [k for k in self.options if self.accepts(k)]
        return f"{self.__name__}({', '.join([*self.names, *(f'{k}=...' for k in opts)])})"


#: Options of the wrapped layer that Bidirectional sets itself.
BIDIRECTIONAL_FIXED = ("go_backwards", "zero_output_for_mask")


class AdaptedBidirectional(Adapted):
    """``fn``, a Keras ``Bidirectional`` around ``spec``'s layer, callable like
    ``rnn_ref.bidirectional`` with the layer bound:
    ``(inputs, forward, backward, merge_mode=..., **options)``, each direction's
    weights a tuple in Keras's layout.

    ``fn`` takes them as three positional arrays (inputs and the two tuples,
    converted to ``layout``) or flat: the forward layer's arrays, then the
    backward layer's (``x, W_f, U_f, b_f, W_b, U_b, b_b`` in the textbook
    layout; without the biases when it takes fewer). Its options are the
    layer's but go_backwards and zero_output_for_mask, plus ``merge_mode``.
    """

    def __init__(self, fn, layout: str = "keras", *, spec: LayerSpec = SIMPLE_RNN):
        if layout not in LAYOUT_NAMES:
            raise ValueError(f"layout must be one of {', '.join(LAYOUT_NAMES)}, got {layout!r}")
        self.fn, self.layout, self.spec, self.one_row_at_a_time = fn, layout, spec, False
        self.options = {"merge_mode": "concat",
                        **{k: v for k, v in spec.options.items() if k not in BIDIRECTIONAL_FIXED}}
        self.sequence_output = self.round_output = self.first_of_several = self.nested_states = False
        self.signature = sig = Signature.of(fn, self.options)
        self.__name__ = getattr(fn, "__name__", "candidate")
        self.__wrapped__ = fn
        per = layout_arrays(layout, spec)[1:]  # one direction's arrays
        without_bias = len(per) - (2 if layout == "torch" else 1)
        have = None if sig.names is None else len(sig.names)
        self.grouped = have in (None, 3)
        if self.grouped:
            self.has_bias, self.per_direction = True, len(per)
            self.names = list(sig.names or ["inputs", "forward", "backward"])
        elif have >= 1 + 2 * without_bias:
            self.has_bias = have >= 1 + 2 * len(per)
            self.per_direction = len(per) if self.has_bias else without_bias
            self.names = list(sig.names[:1 + 2 * self.per_direction])
        else:
            arrays = ", ".join(a.split()[0] for a in per)
            raise AdaptError(
                f"{sig.text} takes {have} positional arrays; a Bidirectional {spec.name} in layout {layout} takes "
                f"inputs, forward, backward (tuples of {arrays}) or inputs, then each direction's {arrays}")

    def kwargs_of(self, case, **overrides) -> dict:
        """A Bidirectional call on ``case``: the backward weights are the case rebuilt
        from the next seed; overrides of ``inputs`` and ``merge_mode`` go to the call,
        the others rebuild the case (``bias=None``: no biases)."""
        inputs, merge_mode = overrides.pop("inputs", None), overrides.pop("merge_mode", "concat")
        if "bias" in overrides:
            overrides["use_bias"] = overrides.pop("bias") is not None
        case = make_case(**case.params(**overrides))
        kw = bidirectional_kwargs(case, make_case(**case.params(seed=case.seed + 1)), merge_mode)
        if inputs is not None:
            kw["inputs"] = inputs
        return kw

    def __call__(self, inputs, forward, backward, merge_mode="concat", **options):
        opts = {}
        for name, value in {"merge_mode": merge_mode, **options}.items():
            if name not in self.options:
                raise TypeError(f"unknown option {name!r}")
            if self.accepts(name):
                opts[name] = value
            elif not is_default(name, value, self.options):
                raise NotImplementedError(f"{self.__name__}() has no parameter {name!r}")
        biased = [w[2] is not None for w in (forward, backward) if len(w) > 2]
        if any(biased) and not self.has_bias:
            raise NotImplementedError(f"{self.__name__}() takes no bias")
        if self.layout == "torch" and options.get("reset_after") is False:
            raise NotImplementedError("the torch layout is a GRU with reset_after=True (PyTorch's n gate)")
        fwd, bwd = (to_layout(self.layout, *(list(w) + [None])[:3], self.spec) for w in (forward, backward))
        if self.grouped:
            arrays = [inputs, tuple(fwd), tuple(bwd)]
        else:
            arrays = [inputs, *fwd[:self.per_direction], *bwd[:self.per_direction]]
        copy = lambda a: None if a is None else np.array(a, order="C")  # noqa: E731
        passed = [tuple(copy(a) for a in v) if isinstance(v, tuple) else copy(v) for v in arrays]
        extra = {k: ([copy(a) for a in v] if isinstance(v, list) else copy(v) if isinstance(v, np.ndarray) else v)
                 for k, v in opts.items()}
        out = self.fn(*passed, **extra)
        flat = lambda vs: [a for v in vs for a in (v if isinstance(v, (tuple, list)) else (v,))]  # noqa: E731
        for name, was, now in zip(["inputs", *[f"weight {i}" for i in range(99)]], flat(arrays), flat(passed)):
            if was is not None and not np.array_equal(np.asarray(was), now, equal_nan=True):
                raise CandidateError(f"the candidate modified its argument {name!r} in place")
        if self.round_output:
            dtype = np.asarray(inputs).dtype
            out = (tuple(np.asarray(o).astype(dtype) for o in out) if isinstance(out, (tuple, list))
                   else np.asarray(out).astype(dtype))
        return out

    def adaptations(self) -> list[str]:
        return [f"a Bidirectional {self.spec.name}"] + super().adaptations()

    def call_text(self) -> str:
        opts = [k for k in self.options if self.accepts(k)]
        return f"{self.__name__}({', '.join([*self.names, *(f'{k}=...' for k in opts)])})"


def _row(value, b: int):
    """Row ``b`` of a mask or an initial state (or of each of several states)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return type(value)(v[b] for v in value)
    return value[b]


def is_default(name: str, value, options: dict = OPTIONS) -> bool:
    default = options[name]
    return value is None if default is None else (not isinstance(value, np.ndarray) and value == default)


def _adapt_output(candidate: Adapted, out, case) -> None:
    """Look at the default call's result: a function without ``return_state`` that
    returns several arrays (``return hs, h``), one without ``return_sequences`` that
    returns every step's output, or one that computes in float64 for float32 inputs,
    is adapted (and says so), not failed on every property for that alone."""
    first = np.asarray(out[0] if isinstance(out, (tuple, list)) else out)
    if first.dtype.kind == "f" and first.dtype.itemsize > case.dtype.itemsize:
        candidate.round_output = True
    if isinstance(candidate, AdaptedBidirectional):
        return  # its outputs are Keras's Bidirectional's: nothing else to read differently
    several = isinstance(out, (tuple, list)) and len(out) > 1
    if several and not candidate.accepts("return_state"):
        candidate.first_of_several = True
    first = np.asarray(out[0] if isinstance(out, (tuple, list)) else out)
    B, T, U = case.shape["B"], case.shape["T"], case.shape["U"]
    if first.shape == (B, T, U) and not candidate.accepts("return_sequences"):
        candidate.sequence_output = True


#: The shape of the tiny cases a candidate is first called on (``candidate.probe``).
PROBE_SHAPE = dict(B=2, T=3, D=2, U=3)  # D != U, so that a transposed kernel cannot fit
