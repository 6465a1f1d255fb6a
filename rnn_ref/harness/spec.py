"""What the harness needs to know about a recurrent layer, in one place.

The oracle, the conditioning, the judge, the properties and ``check`` take a
``LayerSpec`` instead of naming a layer: the reference function, the Keras
layer it mirrors, the names and shapes of its weights, its states, its
options, and how many products one output sums (for the rounding floor).
Adding a layer to the harness means writing its reference (a cell for
``rnn_ref.recurrence``) and one spec here.
"""

from __future__ import annotations

import inspect
import pkgutil
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..recurrence import CALL_OPTIONS
from ..gru import gru
from ..lstm import lstm
from ..simple_rnn import simple_rnn



@dataclass(frozen=True)
class LayerSpec:
    """A recurrent layer as the harness sees it.

    ``weights`` are the reference's weight arguments in the order of the
    Keras layer's ``weights`` (the bias last, absent with ``use_bias=False``);
    ``shapes(D, U, options)`` gives their shapes; ``gates`` is the number of
    blocks of U columns in the kernels; ``states`` names what
    ``return_state=True`` returns after the output; ``products(D, U)`` is the
    length of the dot products behind one output element (the rounding
    floor's ``m``); ``layouts`` are the weight layouts ``check`` accepts.
    """

    name: str
    reference: Callable
    keras_class: str
    weights: tuple
    shapes: Callable[[int, int, dict], dict]
    states: tuple
    products: Callable[[int, int], int]
    layouts: tuple = ("keras",)
    case_strategy: str = ""
    gates: int = 1  # blocks of U columns in the kernels
    gate_names: tuple = ()  # the blocks in Keras's order
    torch_order: tuple = (0,)  # PyTorch's order of the blocks, as indices into Keras's

    @property
    def cli_name(self) -> str:
        """The name ``check --layer`` takes: simple_rnn, lstm, gru."""
        return {"SimpleRNN": "simple_rnn"}.get(self.name, self.name.lower())

    def cases(self, **strategies):
        """The layer's case strategy, with some dimensions drawn from ``strategies``."""
        return pkgutil.resolve_name(self.case_strategy)(**strategies)

    @property
    def options(self) -> dict:
        """The reference's keyword options and their defaults."""
        params = inspect.signature(self.reference).parameters.values()
        return {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY}

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


SIMPLE_RNN = LayerSpec(
    name="SimpleRNN",
    reference=simple_rnn,
    keras_class="SimpleRNN",
    weights=("kernel", "recurrent_kernel", "bias"),
    shapes=lambda D, U, options: {"kernel": (D, U), "recurrent_kernel": (U, U), "bias": (U,)},
    states=("final_state",),
    products=lambda D, U: D + U + 1,  # x_t @ kernel + h @ recurrent_kernel + bias
    layouts=("keras", "textbook", "torch"),
    case_strategy="rnn_ref.harness.strategies:cases",
)

# One step of an LSTM or a GRU: the D + U + 1 products of a gate's pre-activation,
# then a few elementwise roundings (gates, the products with the state, the update).
_GATED_PRODUCTS = 8

LSTM = LayerSpec(
    name="LSTM",
    reference=lstm,
    keras_class="LSTM",
    weights=("kernel", "recurrent_kernel", "bias"),
    shapes=lambda D, U, options: {"kernel": (D, 4 * U), "recurrent_kernel": (U, 4 * U), "bias": (4 * U,)},
    states=("h", "c"),
    products=lambda D, U: D + U + 1 + _GATED_PRODUCTS,
    layouts=("keras", "textbook", "torch"),
    case_strategy="rnn_ref.harness.strategies:cases",
    gates=4,
    gate_names=("i", "f", "c", "o"),  # input, forget, cell candidate, output
    torch_order=(0, 1, 2, 3),  # PyTorch's i, f, g, o: the same blocks
)

GRU = LayerSpec(
    name="GRU",
    reference=gru,
    keras_class="GRU",
    weights=("kernel", "recurrent_kernel", "bias"),
    shapes=lambda D, U, options: {"kernel": (D, 3 * U), "recurrent_kernel": (U, 3 * U),
                                  "bias": (2, 3 * U) if options.get("reset_after", True) else (3 * U,)},
    states=("h",),
    products=lambda D, U: D + U + 1 + _GATED_PRODUCTS,
    layouts=("keras", "textbook", "torch"),
    case_strategy="rnn_ref.harness.strategies:cases",
    gates=3,
    gate_names=("z", "r", "h"),  # update, reset, candidate
    torch_order=(1, 0, 2),  # PyTorch's r, z, n
)

LAYERS = {spec.name: spec for spec in (SIMPLE_RNN, LSTM, GRU)}


def layer_named(name: str) -> LayerSpec:
    """The spec called ``name``: ``SimpleRNN`` or ``simple_rnn``, ``LSTM`` or ``lstm``, ..."""
    for spec in LAYERS.values():
        if name in (spec.name, spec.cli_name) or name.lower().replace("_", "") == spec.name.lower():
            return spec
    raise ValueError(f"layer must be one of {', '.join(s.cli_name for s in LAYERS.values())}, got {name!r}")
