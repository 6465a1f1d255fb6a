"""Anyone's backward pass (BPTT), made checkable by the gradient properties.

``check --gradients`` takes a function

    fn(inputs, W, U, b, d_output, **options)  ->  gradients

that runs the layer forward on its arrays and back from ``d_output``, the
cotangent of the layer's output, and returns the gradients of
``sum(output * d_output)``. ``AdaptedGradients`` calls it the way
``Adapted`` calls a forward pass (the arrays by position in the layout
``keras``, ``textbook`` or ``torch``, the options it takes by keyword) and
reads what it returns into the contract of ``backprop``: a dict of the
gradients in Keras's layout.

What it may return:

* a dict, named like its own parameters or like Keras's arguments, with or
  without a ``d``/``d_`` prefix (``{"dW": ..., "dU": ..., "db": ...}``,
  ``{"kernel": ...}``); ``h0``, ``initial_state`` for the initial state;
* a tuple in argument order: ``(dW, dU[, db])``, or with the inputs'
  gradient first, ``(dx, dW, dU[, db])``, then the initial state's when one
  is given; the inputs' gradient is recognised by its shape.

In the textbook layout the kernels' gradients are ``dW (G, D)`` and ``dU (G,
U)``; in the torch layout ``bias_ih`` and ``bias_hh`` each get the full bias
gradient (both are judged), and a GRU's two rows are theirs.

The cotangent: a function with a ``return_sequences`` option gets ``d_output``
shaped like the output of the call ((B, U), or (B, T, U) with
``return_sequences=True``). A function without one is tried both ways on its
first call, and the convention whose gradients are nearest the float64
reference's is kept: a textbook BPTT usually takes one cotangent per step
(B, T, U); for ``return_sequences=False`` it then gets zeros except at the
last step, which is what the last output's cotangent is.
"""

from __future__ import annotations

import inspect

import numpy as np

from rnn_ref.harness.adapter import LAYOUT_NAMES, AdaptError, Adapted, Signature, is_default, layout_arrays, to_layout
from rnn_ref.harness.backprop import cotangent_for, float64_gradients, named_arrays
from rnn_ref.harness.context import CandidateError
from rnn_ref.models.registry import SIMPLE_RNN, LayerSpec

#: Names people give the initial state's gradient.
INITIAL_STATE_NAMES = ("initial_state", "h0", "h_0", "hprev", "h_prev", "state", "states", "h_init")


def keras_blocks(a: np.ndarray, spec: LayerSpec, axis: int = 0) -> np.ndarray:
    """The inverse of ``adapter.torch_blocks``: gate blocks in PyTorch's order put back in Keras's."""
    if spec.gates == 1:
        return a
    blocks = np.split(np.asarray(a), spec.gates, axis=axis)
    order = list(spec.torch_order)
    return np.concatenate([blocks[order.index(j)] for j in range(spec.gates)], axis=axis)


class AdaptedGradients(Adapted):
    """``fn``, a backward pass, callable as ``backprop`` expects:
    ``(inputs, kernel, recurrent_kernel, bias=None, *, d_output, **options)`` returning
    ``{name: gradient}`` in Keras's layout (see the module docstring)."""

    def __init__(self, fn, layout: str = "keras", *, spec: LayerSpec = SIMPLE_RNN):
        if layout not in LAYOUT_NAMES:
            raise ValueError(f"layout must be one of {', '.join(LAYOUT_NAMES)}, got {layout!r}")
        self.fn, self.layout, self.spec, self.one_row_at_a_time = fn, layout, spec, False
        self.options = {k: v for k, v in spec.options.items() if k != "return_state"}
        self.sequence_output = self.round_output = self.first_of_several = self.nested_states = False
        self.signature = sig = Signature.of(fn, self.options)
        self.__name__ = getattr(fn, "__name__", "candidate")
        self.__wrapped__ = fn
        arrays = layout_arrays(layout, spec)
        want, fewest = len(arrays), len(arrays) - (2 if layout == "torch" else 1)
        self.d_keyword = _keyword_cotangent(fn)  # d_output taken by keyword only
        if sig.names is None:
            self.has_bias, self.names, self.d_name = True, [a.split()[0] for a in arrays], "d_output"
        elif self.d_keyword:
            have = len(sig.names)
            if have < fewest:
                raise AdaptError(f"{sig.text} takes {have} positional arrays; a backward pass in layout {layout} "
                                 f"({spec.name}) takes {', '.join(arrays[:-1])}[, {arrays[-1]}]")
            self.has_bias = have >= want
            self.names = list(sig.names[:want if self.has_bias else fewest])
            self.d_name = self.d_keyword
        else:
            have = len(sig.names) - 1  # the last of them is d_output
            if have < fewest:
                raise AdaptError(
                    f"{sig.text} takes {len(sig.names)} positional arrays; a backward pass in layout {layout} "
                    f"({spec.name}) takes {', '.join(arrays[:-1])}[, {arrays[-1]}], then d_output")
            self.has_bias = have >= want
            self.names = list(sig.names[:want if self.has_bias else fewest])
            self.d_name = sig.names[len(self.names)]
        # whether d_output is one cotangent per step: decided on the first call without the option
        self.sequence_cotangent = False if self.accepts("return_sequences") else None

    def kwargs_of(self, case, **overrides) -> dict:
        """The catalogue's call on ``case``: its keyword arguments and the output's cotangent."""
        kw = case.kwargs(**overrides)
        kw.pop("return_state", None)
        return {**kw, "d_output": cotangent_for(case, kw)}

    def __call__(self, inputs, kernel, recurrent_kernel, bias=None, *, d_output, **options):
        if options.pop("return_state", False):
            raise NotImplementedError("a backward pass takes the output's cotangent only (return_state=False)")
        call = dict(inputs=inputs, kernel=kernel, recurrent_kernel=recurrent_kernel, bias=bias, **options)
        if self.sequence_cotangent is None:
            self.sequence_cotangent = self._per_step_is_nearer(call, d_output)
            if self.sequence_cotangent is None:  # neither convention runs on this call: decide on a later one
                try:
                    self.sequence_cotangent = False
                    return self._to_keras(self._gradients(call, d_output), call)  # raises what it raises
                finally:
                    self.sequence_cotangent = None
        return self._to_keras(self._gradients(call, d_output), call)

    # -- calling ----------------------------------------------------------------------
    def _gradients(self, call: dict, d_output) -> dict:
        """What ``fn`` returns for ``call``, read into ``{Keras name: gradient}`` in the
        layout's orientation; one row at a time when it takes one sequence (the rows'
        weight gradients summed, their inputs' and states' gradients stacked)."""
        inputs = call["inputs"]
        if self.one_row_at_a_time and np.ndim(inputs) == 3:
            rows = []
            for b in range(np.shape(inputs)[0]):
                row = {k: (_row(v, b) if k in ("inputs", "mask", "initial_state") else v) for k, v in call.items()}
                rows.append(self._gradients(row, np.asarray(d_output)[b]))
            return _combine_rows(rows)
        options = {k: v for k, v in call.items() if k not in ("inputs", "kernel", "recurrent_kernel", "bias")}
        if self.sequence_cotangent:
            if not options.pop("return_sequences", False):
                d_output = _at_last_step(d_output, np.shape(inputs))
        return self._read(self._once_with(inputs, call["kernel"], call["recurrent_kernel"], call["bias"], d_output,
                                          options), call)

    def _once_with(self, inputs, kernel, recurrent_kernel, bias, d_output, options):
        if bias is not None and not self.has_bias:
            raise NotImplementedError(f"{self.__name__}() takes no bias")
        for name, value in options.items():
            if name not in self.options:
                raise TypeError(f"unknown option {name!r}")
            if not self.accepts(name) and not is_default(name, value, self.options):
                raise NotImplementedError(f"{self.__name__}() has no parameter {name!r}")
        if self.layout == "torch" and options.get("reset_after") is False:
            raise NotImplementedError("the torch layout is a GRU with reset_after=True (PyTorch's n gate)")
        weights = to_layout(self.layout, kernel, recurrent_kernel, bias, self.spec)[:len(self.names) - 1]
        copy = lambda a: None if a is None else np.array(a, order="C")  # noqa: E731
        sources = [inputs, *weights, d_output]
        passed = [copy(a) for a in sources]
        kwargs = {k: ([copy(s) for s in v] if isinstance(v, (list, tuple)) else copy(v) if isinstance(v, np.ndarray)
                      else v) for k, v in options.items() if self.accepts(k)}
        if self.d_keyword:
            kwargs[self.d_keyword] = passed.pop()
            out = self.fn(*passed, **kwargs)
            passed.append(kwargs[self.d_keyword])
        else:
            out = self.fn(*passed, **kwargs)
        for name, was, now in zip([*self.names, self.d_name], sources, passed):
            if was is not None and not np.array_equal(np.asarray(was), now, equal_nan=True):
                raise CandidateError(f"the candidate modified its argument {name!r} in place")
        return out

    def _per_step_is_nearer(self, call: dict, d_output) -> bool:
        """For a function without return_sequences: whether it reads d_output as one
        cotangent per step (B, T, U), decided by which of the two conventions gives
        gradients nearer the float64 reference's on this call."""
        errors = {}
        for per_step in (False, True):
            self.sequence_cotangent = per_step
            try:
                with np.errstate(all="ignore"):
                    got = _flat(self._to_keras(self._gradients(call, d_output), call))
                    truth = dict(named_arrays(float64_gradients(self.spec.reference, call, d_output)))
                    errors[per_step] = max(float(np.max(np.abs(np.asarray(v, np.float64) - truth[k.split(":")[0]])))
                                           for k, v in got.items())
            except Exception:  # noqa: BLE001  (the convention it does not take, or a result it cannot give)
                continue
        self.sequence_cotangent = None
        if not errors:
            return None  # neither runs
        return min(errors, key=lambda k: (not np.isfinite(errors[k]), errors[k]))

    # -- reading the result -------------------------------------------------------------
    def _read(self, out, call: dict) -> dict:
        """``out`` as ``{Keras name: gradient}`` (several initial states as a list)."""
        names = self._layout_names()
        if isinstance(out, dict):
            got = self._from_dict(out, names)
        elif isinstance(out, (tuple, list)):
            got = self._from_tuple(list(out), names, call)
        else:
            raise CandidateError(f"a backward pass returns its gradients as a dict or a tuple, got "
                                 f"{type(out).__name__}")
        dtype = np.asarray(call["inputs"]).dtype
        wider = [np.asarray(v) for v in _flat(got).values()]
        if any(a.dtype.kind == "f" and a.dtype.itemsize > dtype.itemsize for a in wider):
            self.round_output = True
            got = {k: [np.asarray(s).astype(dtype) for s in v] if isinstance(v, (list, tuple))
                   else np.asarray(v).astype(dtype) for k, v in got.items()}
        return got

    def _layout_names(self) -> list:
        """``[(the function's name, Keras's name)]`` of its positional arrays, in order."""
        keras = ["inputs", "kernel", "recurrent_kernel", "bias"] + (["bias:bias_hh"] if self.layout == "torch" else [])
        return list(zip(self.names, keras))

    def _from_dict(self, out: dict, names: list) -> dict:
        lookup = {n: "initial_state" for n in INITIAL_STATE_NAMES}
        for own, keras in names:
            lookup[keras.split(":")[-1]] = keras
            lookup[own.lower()] = keras
        got = {}
        for key, value in out.items():
            k = str(key).lower()
            name = lookup.get(k) or (lookup.get(k[2:]) if k.startswith("d_") else None) or (
                lookup.get(k[1:]) if k.startswith("d") else None)
            if name is None:
                known = ", ".join(f"d{own}" for own, _ in names)
                raise CandidateError(f"the candidate returned a gradient named {key!r}; expected names like "
                                     f"{known} (or Keras's: inputs, kernel, recurrent_kernel, bias, initial_state)")
            if value is not None:
                got[name] = value
        return got

    def _from_tuple(self, out: list, names: list, call: dict) -> dict:
        """A tuple in argument order: [d inputs,] the weights' gradients [, d initial_state].
        Of the readings whose length fits, the first whose shapes all fit is taken (then
        the first that fits by length: the shape is reported when it is judged)."""
        own = dict((keras, name) for name, keras in names)
        layout_arrays_ = to_layout(self.layout, call["kernel"], call["recurrent_kernel"], call["bias"], self.spec)
        shapes = {"inputs": np.shape(call["inputs"])}
        shapes.update({keras: np.shape(a) for (_, keras), a in zip(names[1:], layout_arrays_) if a is not None})
        state = call.get("initial_state")
        if state is not None:
            shapes["initial_state"] = [np.shape(s) for s in state] if isinstance(state, (list, tuple)) else np.shape(state)
        weights = [keras for _, keras in names[1:]]
        given = [w for w in weights if w in shapes]
        tail = ["initial_state"] if state is not None else []
        readings = [["inputs", *given, *tail], [*given, *tail], ["inputs", *weights, *tail], [*weights, *tail]]
        # without an initial state given, a last slot for its gradient holds None (or is absent)
        readings += [r[:-1] for r in readings] if tail else [[*r, "initial_state"] for r in readings]
        fits = [r for r in readings if len(r) == len(out)]

        def shaped(reading):
            return all(v is None or k not in shapes or (
                [np.shape(x) for x in v] if isinstance(v, (list, tuple)) else np.shape(v)) == shapes[k]
                for k, v in zip(reading, out))

        chosen = next((r for r in fits if shaped(r)), fits[0] if fits else None)
        if chosen is None:
            expected = ", ".join("d" + own.get(k, k) for k in ["inputs", *given, *tail])
            raise CandidateError(f"the candidate returned {len(out)} gradients; expected them in argument order: "
                                 f"{expected} (d{own['inputs']} optional)")
        return {k: v for k, v in zip(chosen, out) if v is not None and k in shapes}

    def _to_keras(self, got: dict, call: dict) -> dict:
        """Gradients in the layout's orientation and gate order, put back in Keras's."""
        if self.layout == "keras":
            return got
        own = {keras: name for name, keras in self._layout_names()}
        out = dict(got)
        for name in ("kernel", "recurrent_kernel"):
            if name in got:
                g = np.asarray(got[name])
                if g.ndim != 2:
                    raise CandidateError(f"the gradient of {own[name]} must be 2-D like {own[name]}, got shape {g.shape}")
                out[name] = (keras_blocks(g, self.spec) if self.layout == "torch" else g).T
        if self.layout == "torch":
            for name in ("bias", "bias:bias_hh"):
                if name in got:
                    out[name] = keras_blocks(np.asarray(got[name]), self.spec)
            if np.ndim(call.get("bias")) == 2 and "bias" in out:  # a GRU's two bias rows are bias_ih and bias_hh
                hh = out.pop("bias:bias_hh", None)
                if hh is None:
                    raise CandidateError(f"the candidate returned no gradient of {own['bias:bias_hh']}")
                out["bias"] = np.stack([np.asarray(out["bias"]), np.asarray(hh)])  # (2, 3U)
        return out

    def adapt_to(self, out, case) -> None:
        """Nothing to adapt after the probe's first call: ``_read`` reads the result itself."""

    def adaptations(self) -> list[str]:
        out = ["a backward pass"]
        if self.sequence_cotangent and not self.accepts("return_sequences"):
            out.append(f"it reads {self.d_name} as one cotangent per step (B, T, U): for the last output's "
                       "gradient it gets zeros except at the last step")
        if self.one_row_at_a_time:
            out.append("one sequence at a time (weight gradients summed over the rows)")
        if self.round_output:
            out.append("it returns a wider dtype than its inputs: gradients are rounded to the inputs' dtype "
                       "before they are judged")
        return out

    def call_text(self) -> str:
        opts = [k for k in self.options if self.accepts(k)]
        return f"{self.__name__}({', '.join([*self.names, self.d_name, *(f'{k}=...' for k in opts)])})"


#: Names of the output's cotangent that a function may take by keyword only.
COTANGENT_NAMES = ("d_output", "d_out", "dout", "dy", "dh", "grad_output", "upstream")


def _keyword_cotangent(fn) -> str | None:
    """The name of ``fn``'s keyword-only parameter for the cotangent, if it has one."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    return next((p.name for p in params if p.kind == p.KEYWORD_ONLY and p.name.lower() in COTANGENT_NAMES), None)


def _at_last_step(d_output, input_shape) -> np.ndarray:
    """A cotangent of the last output (B, U) as one per step (B, T, U), zero but at the last step."""
    d = np.asarray(d_output)
    T = input_shape[-2]
    full = np.zeros((*d.shape[:-1], T, d.shape[-1]), dtype=d.dtype)
    full[..., -1, :] = d
    return full


def _row(value, b):
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return type(value)(v[b] for v in value)
    return value[b]


def _flat(got: dict) -> dict:
    out = {}
    for k, v in got.items():
        if isinstance(v, (list, tuple)):
            out.update({f"{k}[{i}]": s for i, s in enumerate(v)})
        else:
            out[k] = v
    return out


def _combine_rows(rows: list) -> dict:
    """Per-row gradients (dicts) of a batch: weights' summed, inputs' and states' stacked."""
    keys = set(rows[0])
    if any(set(r) != keys for r in rows):
        raise CandidateError("the candidate returned different gradients for different rows")
    out = {}
    for k in rows[0]:
        if k == "inputs" or k.startswith("initial_state"):
            if isinstance(rows[0][k], list):
                out[k] = [np.stack([np.asarray(r[k][i]) for r in rows]) for i in range(len(rows[0][k]))]
            else:
                out[k] = np.stack([np.asarray(r[k]) for r in rows])
        else:
            total = np.asarray(rows[0][k]).copy()
            for r in rows[1:]:
                total = total + np.asarray(r[k])
            out[k] = total
    return out
