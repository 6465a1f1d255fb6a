"""Every layer's facts, in one place: ``LayerSpec`` and the registry of the seven layers.

A spec names, for one Keras layer class:

* its reference function (``rnn_ref.layers``) and that function's vjp (``rnn_ref.backward``);
* the Keras class and the NumPy layer class of a rebuilt model (``rnn_ref.models``);
* its weights in the order of Keras's ``layer.get_weights()``, their shapes,
  its states, its gate blocks (Keras's order, and PyTorch's as indices into it)
  and the weight layouts ``check`` accepts.

The modules above read it instead of keeping tables of their own:
``rnn_ref.vjp`` (below) dispatches through it, ``from_keras`` and ``.npz``
find the NumPy class of a Keras class name in ``SPECS``, and the harness
(``check --layer``, the case strategies, the oracle, the judge) takes the
``LayerSpec`` of a recurrent layer from ``RECURRENT``. Adding a layer means
one spec here (docs/architecture.md, "How to add a layer").

Letters: B batch, T time steps, D input features, U units; N, K for Dense;
V vocabulary, E embedding size.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from rnn_ref.backward.bidirectional import bidirectional_vjp
from rnn_ref.backward.feedforward import dense_vjp, embedding_vjp, masking_vjp
from rnn_ref.backward.gru import gru_vjp
from rnn_ref.backward.lstm import lstm_vjp
from rnn_ref.backward.simple_rnn import simple_rnn_vjp
from rnn_ref.layers.bidirectional import bidirectional
from rnn_ref.layers.dense import dense
from rnn_ref.layers.embedding import embedding
from rnn_ref.layers.gru import gru
from rnn_ref.layers.lstm import lstm
from rnn_ref.layers.masking import masking
from rnn_ref.layers.recurrence import CALL_OPTIONS
from rnn_ref.layers.simple_rnn import simple_rnn
from rnn_ref.models import feedforward, recurrent

__all__ = ["LayerSpec", "SPECS", "RECURRENT", "SIMPLE_RNN", "LSTM", "GRU", "BIDIRECTIONAL", "DENSE",
           "EMBEDDING", "MASKING", "layer_named", "spec_of", "vjp"]


@dataclass(frozen=True)
class LayerSpec:
    """One layer: what the reference, the backward pass, the models and the harness need to know.

    name : Keras's class name, which is also the NumPy layer's and the ``.npz`` ``class``.
    reference, vjp : the pure function and its vector-Jacobian product.
    numpy_layer : the NumPy layer class of a rebuilt model.
    weights : the reference's weight arguments in the order of the Keras layer's
        ``weights`` (the bias last, absent with ``use_bias=False``).
    shapes(D, U, options) : their shapes (recurrent layers).
    states : what ``return_state=True`` returns after the output, by name (the
        harness's and the corpus's part names).
    products(D, U) : the length of the dot products behind one output element
        (the rounding floor's ``m``), None for a layer the harness does not sweep.
    layouts : the weight layouts ``check`` accepts.
    gates : blocks of U columns in the kernels; gate_names the blocks in Keras's
        order; torch_order PyTorch's order of the blocks, as indices into Keras's.
    """

    name: str
    reference: Callable
    vjp: Callable
    numpy_layer: type
    weights: tuple
    shapes: Optional[Callable[[int, int, dict], dict]] = None
    states: tuple = ()
    products: Optional[Callable[[int, int], int]] = None
    layouts: tuple = ("keras",)
    gates: int = 1
    gate_names: tuple = ()
    torch_order: tuple = (0,)

    @property
    def keras_class(self) -> str:
        """The Keras layer class's name (``keras.layers.<name>``)."""
        return self.name

    @property
    def cli_name(self) -> str:
        """The name ``check --layer`` takes: simple_rnn, lstm, gru."""
        return self.reference.__name__

    @property
    def options(self) -> dict:
        """The reference's keyword options and their defaults."""
        return dict(_keyword_options(self.reference))

    @property
    def layer_options(self) -> tuple:
        """Options that go to the Keras layer's constructor (the others go to its call)."""
        return tuple(o for o in self.options if o not in CALL_OPTIONS)

    def units(self, kwargs: dict) -> int:
        """U of a call's arguments."""
        return int(np.shape(kwargs[self.weights[1]])[0])

    def weight_values(self, kwargs: dict) -> list:
        """The weights of a call, in the Keras layer's order (no bias when it is None)."""
        return [kwargs[w] for w in self.weights if kwargs.get(w) is not None]

    def keras_kwargs(self, kwargs: dict) -> dict:
        """The Keras constructor's arguments for a call of the reference."""
        return {**{o: kwargs.get(o, d) for o, d in self.options.items() if o in self.layer_options},
                "use_bias": kwargs.get("bias") is not None}


# One step of an LSTM or a GRU: the D + U + 1 products of a gate's pre-activation,
# then a few elementwise roundings (gates, the products with the state, the update).
_GATED_PRODUCTS = 8
_RECURRENT_WEIGHTS = ("kernel", "recurrent_kernel", "bias")
_LAYOUTS = ("keras", "textbook", "torch")

SIMPLE_RNN = LayerSpec(
    name="SimpleRNN",
    reference=simple_rnn,
    vjp=simple_rnn_vjp,
    numpy_layer=recurrent.SimpleRNN,
    weights=_RECURRENT_WEIGHTS,
    shapes=lambda D, U, options: {"kernel": (D, U), "recurrent_kernel": (U, U), "bias": (U,)},
    states=("final_state",),
    products=lambda D, U: D + U + 1,  # x_t @ kernel + h @ recurrent_kernel + bias
    layouts=_LAYOUTS,
)

LSTM = LayerSpec(
    name="LSTM",
    reference=lstm,
    vjp=lstm_vjp,
    numpy_layer=recurrent.LSTM,
    weights=_RECURRENT_WEIGHTS,
    shapes=lambda D, U, options: {"kernel": (D, 4 * U), "recurrent_kernel": (U, 4 * U), "bias": (4 * U,)},
    states=("h", "c"),
    products=lambda D, U: D + U + 1 + _GATED_PRODUCTS,
    layouts=_LAYOUTS,
    gates=4,
    gate_names=("i", "f", "c", "o"),  # input, forget, cell candidate, output
    torch_order=(0, 1, 2, 3),  # PyTorch's i, f, g, o: the same blocks
)

GRU = LayerSpec(
    name="GRU",
    reference=gru,
    vjp=gru_vjp,
    numpy_layer=recurrent.GRU,
    weights=_RECURRENT_WEIGHTS,
    shapes=lambda D, U, options: {"kernel": (D, 3 * U), "recurrent_kernel": (U, 3 * U),
                                  "bias": (2, 3 * U) if options.get("reset_after", True) else (3 * U,)},
    states=("h",),
    products=lambda D, U: D + U + 1 + _GATED_PRODUCTS,
    layouts=_LAYOUTS,
    gates=3,
    gate_names=("z", "r", "h"),  # update, reset, candidate
    torch_order=(1, 0, 2),  # PyTorch's r, z, n
)

#: The recurrent layers, by name: what Bidirectional wraps, ``check --layer`` takes and the harness sweeps.
RECURRENT = {spec.name: spec for spec in (SIMPLE_RNN, LSTM, GRU)}


def _bidirectional_vjp(layer, *args, **options):
    """Bidirectional's vjp, given the wrapped layer's vjp from the registry."""
    wrapped = next((s for s in RECURRENT.values() if s.reference is layer), None)
    return bidirectional_vjp(layer, *args, layer_vjp=wrapped and wrapped.vjp, **options)


BIDIRECTIONAL = LayerSpec(
    name="Bidirectional",
    reference=bidirectional,
    vjp=_bidirectional_vjp,
    numpy_layer=recurrent.Bidirectional,
    weights=("forward", "backward"),  # each the wrapped layer's (kernel, recurrent_kernel[, bias])
)

DENSE = LayerSpec(name="Dense", reference=dense, vjp=dense_vjp, numpy_layer=feedforward.Dense,
                  weights=("kernel", "bias"))

EMBEDDING = LayerSpec(name="Embedding", reference=embedding, vjp=embedding_vjp, numpy_layer=feedforward.Embedding,
                      weights=("embeddings",))

MASKING = LayerSpec(name="Masking", reference=masking, vjp=masking_vjp, numpy_layer=feedforward.Masking,
                    weights=())

#: Every layer a rebuilt model may hold, by Keras class name.
SPECS = {spec.name: spec for spec in (EMBEDDING, SIMPLE_RNN, DENSE, LSTM, GRU, BIDIRECTIONAL, MASKING)}


def layer_named(name: str) -> LayerSpec:
    """The recurrent layer called ``name``: ``SimpleRNN`` or ``simple_rnn``, ``LSTM`` or ``lstm``, ..."""
    for spec in RECURRENT.values():
        if name in (spec.name, spec.cli_name) or name.lower().replace("_", "") == spec.name.lower():
            return spec
    raise ValueError(f"layer must be one of {', '.join(s.cli_name for s in RECURRENT.values())}, got {name!r}")


def spec_of(fn) -> Optional[LayerSpec]:
    """The spec whose reference function is ``fn``, or None."""
    return next((s for s in SPECS.values() if s.reference is fn), None)


def vjp(fn, *args, **options):
    """``(fn(*args, **options), backward)``: the output and its vector-Jacobian product.

    fn : ``rnn_ref.simple_rnn``, ``lstm``, ``gru``, ``dense``, ``embedding``, ``masking`` or ``bidirectional``
    backward(d_output) or, with ``return_state``, backward(d_output, *d_states)
        d_output shaped like the output, each final state's cotangent (B, U)
        (an LSTM's d_h, d_c; a Bidirectional's forward states, then backward
        ones; with merge_mode None d_output is the pair (d_y, d_y_rev)); None
        means zeros. Returns ``SimpleRNNGrads``, ``LSTMGrads``, ``GRUGrads``,
        ``DenseGrads``, ``EmbeddingGrads``, ``MaskingGrads`` or ``BidirectionalGrads``: the
        gradients of ``sum(output * d_output) [+ sum(state * d_state) ...]``.
    """
    spec = spec_of(fn)
    if spec is None:
        name = getattr(fn, "__name__", repr(fn))
        *others, last = ("rnn_ref." + s.reference.__name__ for s in (*RECURRENT.values(), DENSE, EMBEDDING, MASKING,
                                                                 BIDIRECTIONAL))
        raise TypeError(f"vjp supports {', '.join(others)} and {last}, got {name}")
    inspect.signature(fn).bind(*args, **options)  # a wrong call is refused in fn's own terms
    return spec.vjp(*args, **options)


@functools.lru_cache(maxsize=None)
def _keyword_options(fn) -> tuple:
    """``fn``'s keyword-only parameters and their defaults, as pairs (read once per function:
    the harness asks for them at every example)."""
    return tuple((p.name, p.default) for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY)
