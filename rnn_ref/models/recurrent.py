"""The recurrent NumPy layers of a rebuilt model: SimpleRNN, LSTM, GRU and Bidirectional.

Letters: B batch, T time steps, D input features, U units, G the gate blocks
of a layer (1 for SimpleRNN, 4 for LSTM, 3 for GRU).

Each layer holds its weights in Keras's layout and calls its reference
function (``rnn_ref.simple_rnn``, ``lstm``, ``gru``; ``rnn_ref.bidirectional``
for the wrapper). Its ``OPTIONS`` are the keyword options of that function
(Keras's names and defaults) without the per-call arrays ``mask`` and
``initial_state``, plus ``stateful`` and ``mask_in``.

Masks travel as in Keras: a recurrent layer consumes the mask and passes it
on only with ``return_sequences`` (unchanged, even with ``go_backwards``:
Keras does not reverse it). A layer rebuilt from Keras also knows whether
Keras feeds it a mask (``mask_in``) and checks its own propagation against
that at every call.

A stateful layer starts each call from the previous call's final states
(its ``STATE`` arrays; None means zeros) and ``reset_state()`` zeroes them,
keeping their batch size, as Keras does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnn_ref.layers._checks import shape as check_shape
from rnn_ref.layers.bidirectional import MERGE_MODES, bidirectional
from rnn_ref.layers.gru import OPTIONS as gru_options
from rnn_ref.layers.gru import gru
from rnn_ref.models.base import Layer
from rnn_ref.layers.lstm import OPTIONS as lstm_options
from rnn_ref.layers.lstm import lstm
from rnn_ref.layers.recurrence import CALL_OPTIONS
from rnn_ref.layers.simple_rnn import OPTIONS as simple_rnn_options
from rnn_ref.layers.simple_rnn import simple_rnn

#: Options of a recurrent layer in a model that its reference function does not take.
MODEL_OPTIONS = {"stateful": False, "mask_in": None}


def layer_options(function_options):
    """A recurrent layer's ``OPTIONS``: its function's keyword options without the
    per-call arrays (``mask``, ``initial_state``), then ``MODEL_OPTIONS``."""
    return {**{k: v for k, v in function_options.items() if k not in CALL_OPTIONS}, **MODEL_OPTIONS}


def check_mask_in(layer, mask):
    """Refuse a mask where Keras feeds none, or none where Keras feeds one."""
    if layer.mask_in is not None and layer.mask_in != (mask is not None):
        given = "a mask" if mask is not None else "no mask"
        raise RuntimeError(
            f"layer {layer.name!r} ({type(layer).__name__}) received {given}, but Keras "
            f"{'feeds it a mask' if layer.mask_in else 'feeds it none'}: the mask propagation "
            "of this model does not match the Keras graph"
        )


def _sequence_input(layer, x):
    """x as a (B, T, D) array of the layer's compute dtype, as Keras casts it."""
    x = np.asarray(x).astype(layer.dtype, copy=False)
    if x.ndim != 3:
        # In a model the batch axis is always there (Keras refuses (T, D) too).
        raise ValueError(
            f"layer {layer.name!r} ({type(layer).__name__}) expects inputs of shape (B, T, D), got {x.shape}"
        )
    return x


@dataclass(repr=False)
class Recurrent(Layer):
    """What SimpleRNN, LSTM and GRU share: (B, T, D) -> (B, U), or (B, T, U) with
    ``return_sequences``; with ``return_state``, ``(output, *states)``, each state (B, U).

    kernel : (D, G U); recurrent_kernel : (U, G U); bias : (G U,) or None
        (``use_bias=False``), GRU's (2, 3U) with ``reset_after``.
    stateful : start each call from the states left by the previous one.
    mask_in : whether Keras feeds this layer a mask (read from the Keras
        graph); None skips the check. ``unroll``, ``implementation``,
        ``use_cudnn`` and the dropouts are not kept: Keras gives the same
        numbers at inference either way (apart from the case ``from_keras``
        warns about).
    """

    FUNCTION = None  # the reference function, a staticmethod
    GATES = 1
    WEIGHTS = ("kernel", "recurrent_kernel", "bias")
    NEEDS_SEQUENCE = True

    name: str
    kernel: np.ndarray  # (D, G U)
    recurrent_kernel: np.ndarray  # (U, G U)
    bias: np.ndarray | None  # (G U,), a GRU's (2, 3U) with reset_after
    activation: str = "tanh"
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False
    zero_output_for_mask: bool = False
    stateful: bool = False
    dtype: np.dtype = np.dtype("float32")
    mask_in: bool | None = None

    def __call__(self, x, mask=None, initial_state=None):
        """``initial_state`` [(B, U), ...] (a model input fed to this layer) overrides the stored states."""
        check_mask_in(self, mask)
        x = _sequence_input(self, x)  # (B, T, D)
        if initial_state is not None:
            initial_state = [np.asarray(s).astype(self.dtype, copy=False) for s in initial_state]  # (B, U) each
        output, *states = self.FUNCTION(
            x, self.kernel, self.recurrent_kernel, self.bias,
            mask=mask, initial_state=self.initial_state(x.shape[0]) if initial_state is None else initial_state,
            **{**self.call_options(), "return_state": True},
        )  # (B, U) or (B, T, U); (B, U) each
        if self.stateful:
            self.set_states(states)
        return (output, *states) if self.return_state else output

    def call_options(self):
        """The options of the reference function, as this layer sets them."""
        return {k: getattr(self, k) for k in self.OPTIONS if k not in MODEL_OPTIONS}

    def initial_state(self, batch):
        """The stored states, [(B, U), ...], for a stateful layer that has them; else None."""
        states = [getattr(self, k) for k in self.STATE]
        if not self.stateful or any(s is None for s in states):
            return None
        if states[0].shape[0] != batch:
            raise ValueError(
                f"layer {self.name!r} is stateful with batch size {states[0].shape[0]}, "
                f"got a batch of {batch}; call reset_state() first to change it"
            )
        return states

    def set_states(self, states):
        for k, s in zip(self.STATE, states):
            setattr(self, k, s)

    def reset_state(self):
        """Zero the stored states (keeps their batch size, as Keras does)."""
        for k in self.STATE:
            if getattr(self, k) is not None:
                setattr(self, k, np.zeros_like(getattr(self, k)))

    def compute_mask(self, x, mask):
        return mask if self.return_sequences else None  # (B, T) or None, never reversed

    def output_count(self):
        return 1 + len(self.STATE) if self.return_state else 1

    def options(self):
        return super().options() + (["masked"] if self.mask_in else [])

    def bias_shape(self, U):
        """The bias shape and its letters for U units."""
        return (self.GATES * U,), ("U" if self.GATES == 1 else f"{self.GATES}U")

    def check_input(self, features, sequence):
        G, rk = self.GATES, self.recurrent_kernel
        if rk.ndim != 2 or rk.shape[0] == 0 or rk.shape[1] != G * rk.shape[0]:
            what = "a square (U, U) array" if G == 1 else f"a (U, {G}U) array, {G} gate blocks"
            raise ValueError(f"recurrent_kernel must be {what}, got shape {rk.shape}")
        U = rk.shape[0]
        check_shape("kernel", self.kernel, "D, U" if G == 1 else f"D, {G}U", (features, G * U))
        if self.bias is not None:
            expected, letters = self.bias_shape(U)
            check_shape("bias", self.bias, letters, expected)
        given = [k for k in self.STATE if getattr(self, k) is not None]
        if given and len(given) != len(self.STATE):
            raise ValueError(f"has the state {', '.join(given)} but not {', '.join(set(self.STATE) - set(given))}")
        for k in given:
            check_shape(k, getattr(self, k), "B, U", (None, U))
        return U, self.return_sequences

    def __repr__(self):
        D, GU = self.kernel.shape
        args = [f"D={D}", f"U={GU // self.GATES}"]
        args += [f"{k}={getattr(self, k)!r}" for k, default in self.OPTIONS.items() if isinstance(default, str)]
        args += [f"{k}={not default}" for k, default in self.OPTIONS.items()
                 if isinstance(default, bool) and bool(getattr(self, k)) != default]
        if self.bias is None:
            args.append("use_bias=False")
        return f"{type(self).__name__}({self.name!r}, {', '.join(args)})"


@dataclass(repr=False)
class SimpleRNN(Recurrent):
    """Keras ``SimpleRNN`` (see ``Recurrent``).

    kernel : (D, U); recurrent_kernel : (U, U); bias : (U,) or None
    state : (B, U), the state a stateful layer carries (None means zeros)
    """

    FUNCTION = staticmethod(simple_rnn)
    OPTIONS = layer_options(simple_rnn_options)
    OPTIONAL = ("bias", "state")
    STATE = ("state",)

    state: np.ndarray | None = None  # (B, U), only used when stateful


@dataclass(repr=False)
class LSTM(Recurrent):
    """Keras ``LSTM`` (see ``Recurrent``), gate blocks i, f, c, o.

    kernel : (D, 4U); recurrent_kernel : (U, 4U); bias : (4U,) or None
    state_h, state_c : (B, U), the states h and c a stateful layer carries
    """

    FUNCTION = staticmethod(lstm)
    GATES = 4
    OPTIONS = layer_options(lstm_options)
    OPTIONAL = ("bias", "state_h", "state_c")
    STATE = ("state_h", "state_c")

    recurrent_activation: str = "sigmoid"
    state_h: np.ndarray | None = None  # (B, U)
    state_c: np.ndarray | None = None  # (B, U)


@dataclass(repr=False)
class GRU(Recurrent):
    """Keras ``GRU`` (see ``Recurrent``), gate blocks z, r, h.

    kernel : (D, 3U); recurrent_kernel : (U, 3U)
    bias : (2, 3U) with ``reset_after`` (row 0 input, row 1 recurrent), else (3U,); or None
    state : (B, U), the state a stateful layer carries
    """

    FUNCTION = staticmethod(gru)
    GATES = 3
    OPTIONS = layer_options(gru_options)
    OPTIONAL = ("bias", "state")
    STATE = ("state",)

    recurrent_activation: str = "sigmoid"
    reset_after: bool = True
    state: np.ndarray | None = None  # (B, U)

    def bias_shape(self, U):
        return ((2, 3 * U), "2, 3U") if self.reset_after else ((3 * U,), "3U")


@dataclass(repr=False)
class Bidirectional(Layer):
    """Keras ``Bidirectional`` around a SimpleRNN, LSTM or GRU: (B, T, D) -> (B, [T,] 2U)
    with merge_mode "concat", (B, [T,] U) with "sum", "mul", "ave", the pair
    ``(forward, backward)`` with None; with ``return_state`` the forward states
    then the backward ones follow, flat (Keras's order).

    forward, backward : the wrapped layers, of one class with the same options
        and weight shapes, each with its own weights (Keras's weight order is
        the forward layer's, then the backward one's). The wrapper sets their
        ``go_backwards`` (False, True), ``zero_output_for_mask`` (forced to
        ``return_sequences``, as Keras does) and ``mask_in`` (None: the wrapper
        checks the mask itself).
    return_sequences, return_state, stateful : those of the wrapped layers.
    """

    OPTIONS = {"merge_mode": MERGE_MODES, "mask_in": None}
    WRAPS = (SimpleRNN, LSTM, GRU)
    DIRECTIONS = ("forward", "backward")
    #: Options of the wrapped layers that the wrapper sets itself.
    SET_BY_WRAPPER = ("go_backwards", "zero_output_for_mask", "mask_in")
    NEEDS_SEQUENCE = True

    name: str
    forward: Recurrent
    backward: Recurrent
    merge_mode: str | None = "concat"
    dtype: np.dtype = np.dtype("float32")
    mask_in: bool | None = None

    def __post_init__(self):
        where = f"layer {self.name!r} (Bidirectional)"
        f, b = self.forward, self.backward
        if type(f) not in self.WRAPS or type(b) is not type(f):
            raise ValueError(
                f"{where} wraps a SimpleRNN, LSTM or GRU, the same class in both directions; "
                f"got {type(f).__name__} and {type(b).__name__}"
            )
        if self.merge_mode not in MERGE_MODES:
            raise ValueError(f"{where}: merge_mode must be one of {MERGE_MODES}, got {self.merge_mode!r}")
        mirrored = [(k, getattr(f, k), getattr(b, k)) for k in self.wrapped_options(type(f))]
        mirrored += [(f"the shape of {w}", np.shape(getattr(f, w)), np.shape(getattr(b, w))) for w in f.WEIGHTS]
        for what, one, other in mirrored:
            if one != other:
                raise ValueError(
                    f"{where}: its layers differ in {what} ({one!r} and {other!r}); rnn_ref supports a "
                    "backward layer that mirrors the forward one, as Keras builds it"
                )
        if np.dtype(f.dtype) != np.dtype(self.dtype) or np.dtype(b.dtype) != np.dtype(self.dtype):
            raise ValueError(f"{where} computes in {np.dtype(self.dtype)}, its layers in {np.dtype(f.dtype)} "
                             f"and {np.dtype(b.dtype)}; rnn_ref supports one dtype for the three")
        for layer, backwards in ((f, False), (b, True)):
            layer.go_backwards = backwards
            layer.zero_output_for_mask = layer.return_sequences
            layer.mask_in = None

    @classmethod
    def wrapped_options(cls, layer_class):
        """The options of a wrapped layer of class ``layer_class`` that the wrapper does not set."""
        return [k for k in layer_class.OPTIONS if k not in cls.SET_BY_WRAPPER]

    @property
    def return_sequences(self):
        return self.forward.return_sequences

    @property
    def return_state(self):
        return self.forward.return_state

    @property
    def stateful(self):
        return self.forward.stateful

    def __call__(self, x, mask=None, initial_state=None):
        """``initial_state`` [(B, U), ...], the forward states then the backward ones (model inputs
        fed to this layer), overrides the stored states."""
        check_mask_in(self, mask)
        x = _sequence_input(self, x)  # (B, T, D)
        f, b = self.forward, self.backward
        if initial_state is not None:
            initial_state = [np.asarray(s).astype(self.dtype, copy=False) for s in initial_state]  # (B, U) each
        else:
            states_f, states_b = f.initial_state(x.shape[0]), b.initial_state(x.shape[0])
            initial_state = None if states_f is None or states_b is None else [*states_f, *states_b]
        options = {k: v for k, v in f.call_options().items() if k not in self.SET_BY_WRAPPER}
        result = bidirectional(
            f.FUNCTION, x, (f.kernel, f.recurrent_kernel, f.bias), (b.kernel, b.recurrent_kernel, b.bias),
            merge_mode=self.merge_mode, mask=mask, initial_state=initial_state,
            **{**options, "return_state": True},
        )  # (output, *states) or (y, y_rev, *states)
        n = 1 if self.merge_mode is not None else 2
        outputs, states = result[:n], result[n:]  # (B, [T,] 2U or U) ...; (B, U) each
        if self.stateful:
            f.set_states(states[:len(f.STATE)])
            b.set_states(states[len(f.STATE):])
        if self.return_state:
            return (*outputs, *states)
        return outputs[0] if n == 1 else tuple(outputs)

    def reset_state(self):
        """Zero the stored states of both directions."""
        self.forward.reset_state()
        self.backward.reset_state()

    def compute_mask(self, x, mask):
        return mask if self.return_sequences else None  # (B, T) or None

    def output_count(self):
        n = 1 if self.merge_mode is not None else 2
        return n + 2 * len(self.forward.STATE) if self.return_state else n

    def weights(self):
        return {f"{d}_{k}": v for d in self.DIRECTIONS for k, v in getattr(self, d).weights().items()}

    def arrays(self):
        return {f"{d}_{k}": v for d in self.DIRECTIONS for k, v in getattr(self, d).arrays().items()}

    def array_names(self):
        return tuple(f"{d}_{k}" for d in self.DIRECTIONS for k in getattr(self, d).array_names())

    def options(self):
        inner = [w for w in self.forward.options() if w not in self.SET_BY_WRAPPER]
        masked = ["masked"] if self.mask_in else []
        return [type(self.forward).__name__, f"merge_mode={self.merge_mode}", *inner, *masked]

    def check_input(self, features, sequence):
        U, sequence_out = self.forward.check_input(features, sequence)
        self.backward.check_input(features, sequence)
        return (2 * U if self.merge_mode == "concat" else U), sequence_out

    def __repr__(self):
        return f"Bidirectional({self.name!r}, {self.forward!r}, merge_mode={self.merge_mode!r})"
