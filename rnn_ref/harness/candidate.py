"""Anyone's SimpleRNN, LSTM or GRU function, made checkable by the property catalogue.

The catalogue calls a candidate the way it calls the layer's reference
(``rnn_ref.simple_rnn``, ``lstm``, ``gru``): keyword arrays in Keras's
layout, every option by keyword. Functions people
write look otherwise: ``def rnn(x, W, U, b)`` with the textbook layout, no
options, one sequence at a time. Two steps bridge the gap:

* ``Adapted(fn, layout)`` (``adapter.py``) calls ``fn`` with the arrays
  by position, in the layout (``keras``, ``textbook`` or ``torch``), and the
  options it takes by keyword; ``AdaptedBidirectional`` a Bidirectional
  function, ``backward_candidate.AdaptedGradients`` a backward pass.
* ``probe(candidate)`` (``probing.py``) calls it on tiny cases, one feature
  at a time, and returns the ``Support`` the properties then draw inside.
  Every property then checks its full example count on what the function
  handles.

``load_candidate`` does both for a target string (``loading.py`` finds the
function). This module gathers the names of the four for ``check`` and the tests.
"""

from __future__ import annotations

from rnn_ref.harness.adapter import (BIDIRECTIONAL_FIXED, LAYOUT_NAMES, LAYOUTS, OPTIONS, PROBE_SHAPE, AdaptError,
                                     Adapted, AdaptedBidirectional, Signature, gate_orders, is_default, layout_arrays,
                                     split_bias, to_layout, torch_blocks)
from rnn_ref.harness.backward_candidate import AdaptedGradients
from rnn_ref.harness.loading import LoadError, load_function
from rnn_ref.harness.probing import Probe, coverage, probe, wrapped_layer
from rnn_ref.models.registry import SIMPLE_RNN, layer_named

__all__ = ["BIDIRECTIONAL_FIXED", "LAYOUT_NAMES", "LAYOUTS", "OPTIONS", "PROBE_SHAPE", "AdaptError", "Adapted",
           "AdaptedBidirectional", "AdaptedGradients", "LoadError", "Probe", "Signature", "coverage", "gate_orders",
           "is_default", "layout_arrays", "load_candidate", "load_function", "probe", "split_bias", "to_layout",
           "torch_blocks", "wrapped_layer"]


def load_candidate(target: str, layout: str = "keras", *, layer: str = "simple_rnn", wrap: str | None = None,
                   timeout: float | None = None, gradients: bool = False) -> Adapted:
    """The function named by ``target``, adapted to ``layout`` for ``layer``
    (simple_rnn, lstm, gru, or bidirectional around ``wrap``: found by
    ``wrapped_layer`` when None; with ``gradients`` a backward pass, see
    ``backward_candidate``) and probed: ``candidate.support`` is what the
    properties may draw, ``candidate.probe`` the whole result (raises
    LoadError or AdaptError)."""
    fn = load_function(target)
    if gradients:
        candidate = AdaptedGradients(fn, layout, spec=layer_named(layer))
    elif layer == "bidirectional":
        spec = layer_named(wrap) if wrap else wrapped_layer(fn, layout, timeout) or SIMPLE_RNN
        candidate = AdaptedBidirectional(fn, layout, spec=spec)
    else:
        candidate = Adapted(fn, layout, spec=layer_named(layer))
    found = probe(candidate, timeout)
    candidate.probe, candidate.support = found, found.support
    return candidate
