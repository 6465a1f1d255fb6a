"""The backward pass as the harness sees it: cotangents, the float64 truth, rnn_ref's own.

A backward-pass candidate is called like the layer's reference with one
more keyword, the cotangent of the output::

    grads = candidate(inputs, kernel, recurrent_kernel, bias, d_output=d_output, **options)

and returns the gradients of ``sum(output * d_output)`` as a dict named like
the reference's arguments (``inputs``, ``kernel``, ``recurrent_kernel``,
``bias``, ``initial_state``), in Keras's layout; ``gradients_candidate``
adapts a user's function (textbook or torch layout, a tuple or a dict of its
own names) to that contract. The output's cotangent is drawn from the case's
seed, so every run of a case, the candidate's, Keras's and the truth's, sees
the same one. ``return_state`` is not part of the contract: the cotangents of
the final states are those of the output's last step without a mask, and the
properties keep it False.
"""

from __future__ import annotations

import numpy as np

from rnn_ref.models.registry import vjp
from rnn_ref.harness.cases import Case

#: The gradients a backward pass returns, in the reference's argument order.
GRADIENT_NAMES = ("inputs", "kernel", "recurrent_kernel", "bias", "initial_state")

#: Offset of the cotangent's random stream from the case's seed (the case's own
#: arrays use the seed itself).
COTANGENT_STREAM = 104_729


def output_shape(kw: dict, units: int) -> tuple:
    """The shape of the layer's output for the call ``kw``: ([B,] [T,] U)."""
    x = np.shape(kw["inputs"])
    lead = x[:-1] if kw.get("return_sequences") else x[:-2]
    return (*lead, units)


def cotangent_for(case: Case, kw: dict | None = None) -> np.ndarray:
    """The cotangent of the output of ``case`` called with ``kw`` (default: the case's
    own keyword arguments): standard normal in the case's dtype, from the case's seed."""
    kw = case.kwargs() if kw is None else kw
    shape = output_shape(kw, case.spec.units(kw))
    rng = np.random.default_rng(case.seed + COTANGENT_STREAM)
    full = rng.standard_normal((case.shape["B"], case.shape["T"], shape[-1]))  # drawn at full size ...
    if kw.get("return_sequences"):
        d = full[:, :shape[-2]] if len(shape) == 3 else full[0, :shape[-2]]
    else:
        d = full[:, -1] if len(shape) == 2 else full[0, -1]  # ... so that a row, or one sequence, is a slice of it
    return d.astype(case.dtype)


def reference_backward(reference):
    """The reference layer's backward pass (``rnn_ref.vjp``) with the candidate contract:
    ``f(inputs, kernel, recurrent_kernel, bias=None, *, d_output, **options)`` returning
    a dict of the gradients (no ``bias`` without one, ``initial_state`` only when given)."""

    def backward(inputs, kernel, recurrent_kernel, bias=None, *, d_output, **options):
        if options.get("return_state"):
            raise NotImplementedError("a backward pass takes the output's cotangent only (return_state=False)")
        _, back = vjp(reference, inputs, kernel, recurrent_kernel, bias, **options)
        grads = back(d_output)._asdict()
        return {k: v for k, v in grads.items() if v is not None}

    backward.__name__ = f"{reference.__name__}_backward"
    backward.__qualname__ = backward.__name__
    return backward


def float64_gradients(reference, kw: dict, d_output) -> dict:
    """The truth: the reference's backward pass on the call ``kw`` in float64."""
    up = lambda a: a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a  # noqa: E731
    kw64 = {k: [up(s) for s in v] if isinstance(v, (list, tuple)) else up(v) for k, v in kw.items()}
    return reference_backward(reference)(**kw64, d_output=np.asarray(d_output, dtype=np.float64))


def named_arrays(grads: dict) -> list:
    """``[(name, array)]`` of a gradient dict, several initial states one by one
    (``initial_state[0]``, ``initial_state[1]``)."""
    out = []
    for name in GRADIENT_NAMES:
        value = grads.get(name)
        if isinstance(value, (list, tuple)):
            out += [(f"{name}[{i}]", v) for i, v in enumerate(value)]
        elif value is not None:
            out.append((name, value))
    return out
