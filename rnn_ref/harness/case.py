"""One case of a SimpleRNN, LSTM or GRU call: ``Case``, and ``make_case`` that builds it.

A ``Case`` holds the arrays and options of one ``simple_rnn`` call. Shapes,
options, dtype, weight scales and the mask pattern are drawn by hypothesis
(``strategies.cases``), so they shrink to a minimal counterexample; the array
values come from a NumPy generator seeded by a drawn integer, with explicit
bounds. Drawing 10^4-10^5 floats one by one would be slow, overflow
hypothesis's buffer for T in the hundreds, and shrinking them element by
element rarely makes a failure easier to read than small shapes do.

This module needs only NumPy; ``cases.py`` (``Support``) and ``strategies.py``
(the hypothesis strategy) build on it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rnn_ref.models.registry import RECURRENT, SIMPLE_RNN

#: The options of a case that go to the layer (mask and initial_state are arrays of the case).
OPTION_NAMES = SIMPLE_RNN.layer_options


#: Gate activations an LSTM or a GRU case draws: those with values in [0, 1],
#: Keras's sigmoid first. Gates in [-1, 1] (tanh, softsign, hard_tanh) are legal
#: in Keras, but they let a GRU's 1 - z reach 2 and make the recurrence
#: expansive whatever the recurrent gain; the budget's FACTOR is not calibrated
#: for that regime yet, so the cases leave them out.
GATE_ACTIVATIONS = ("sigmoid", "hard_sigmoid", "sparse_sigmoid")


def extra_options(layer: str) -> tuple:
    """The options ``layer`` has beyond SimpleRNN's (recurrent_activation, reset_after)."""
    return tuple(o for o in RECURRENT[layer].layer_options if o not in OPTION_NAMES)


def each_state(initial_state, fn):
    """``fn`` applied to the initial state, or to each of several (a tuple), or None."""
    if initial_state is None:
        return None
    if isinstance(initial_state, tuple):
        return tuple(fn(s) for s in initial_state)
    return fn(initial_state)


class Case(NamedTuple):
    """One call of a layer's reference (``simple_rnn`` unless ``layer`` says
    otherwise): arrays in the case's dtype, options as Keras names. The
    shapes below are SimpleRNN's; an LSTM's kernels have 4U columns, a GRU's
    3U, and an LSTM has a tuple of two initial states."""

    inputs: np.ndarray  # (B, T, D)
    kernel: np.ndarray  # (D, U)
    recurrent_kernel: np.ndarray  # (U, U)
    bias: np.ndarray | None  # (U,)
    mask: np.ndarray | None  # (B, T) bool
    initial_state: np.ndarray | tuple | None  # (B, U), or one per state
    activation: str = "tanh"
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False
    zero_output_for_mask: bool = False
    gain: float = 1.0  # spectral radius of recurrent_kernel
    seed: int = 0
    mask_pattern: str = "none"
    layer: str = "SimpleRNN"
    extras: tuple = ()  # (name, value) of the layer's options beyond SimpleRNN's

    @property
    def spec(self):
        return RECURRENT[self.layer]

    @property
    def dtype(self) -> np.dtype:
        return self.inputs.dtype

    @property
    def shape(self) -> dict:
        B, T, D = self.inputs.shape
        return {"B": B, "T": T, "D": D, "U": self.recurrent_kernel.shape[0]}

    def kwargs(self, **overrides) -> dict:
        """Keyword arguments of ``simple_rnn`` for this case."""
        kw = dict(
            inputs=self.inputs, kernel=self.kernel, recurrent_kernel=self.recurrent_kernel,
            bias=self.bias, activation=self.activation, return_sequences=self.return_sequences,
            return_state=self.return_state, go_backwards=self.go_backwards, mask=self.mask,
            initial_state=self.initial_state, zero_output_for_mask=self.zero_output_for_mask,
            **dict(self.extras),
        )
        if isinstance(kw["initial_state"], tuple):
            kw["initial_state"] = list(kw["initial_state"])
        kw.update(overrides)
        return kw

    def astype(self, dtype) -> "Case":
        """The same values in another dtype (float32 values are exact in float64)."""
        cast = lambda a: None if a is None else a.astype(dtype)  # noqa: E731
        return self._replace(
            inputs=cast(self.inputs), kernel=cast(self.kernel),
            recurrent_kernel=cast(self.recurrent_kernel), bias=cast(self.bias),
            initial_state=each_state(self.initial_state, cast),
        )

    def describe(self) -> str:
        s = self.shape
        opts = ([f"layer={self.layer}"] if self.layer != SIMPLE_RNN.name else []) + [
            f"activation={self.activation!r}"] + [f"{k}={v!r}" for k, v in self.extras] + [
            f"{n}=True" for n in OPTION_NAMES[1:] if getattr(self, n)
        ]
        if self.bias is None:
            opts.append("bias=None")
        if self.mask is not None:
            opts.append(f"mask={self.mask_pattern} ({int(self.mask.sum())}/{self.mask.size} steps valid)")
        if self.initial_state is not None:
            opts.append("initial_state=random")
        return (
            f"B={s['B']} T={s['T']} D={s['D']} U={s['U']} dtype={self.dtype.name} "
            f"gain={self.gain:.3g} seed={self.seed}; " + ", ".join(opts)
        )

    def params(self, **changes) -> dict:
        """The arguments of ``make_case`` that rebuild this case (with ``changes``)."""
        return {**self.shape, "dtype": self.dtype.name, "seed": self.seed, "gain": self.gain,
                "activation": self.activation, "use_bias": self.bias is not None,
                "mask_pattern": self.mask_pattern, "initial_state": self.initial_state is not None,
                **{n: getattr(self, n) for n in OPTION_NAMES[1:]},
                **({"layer": self.layer, **dict(self.extras)} if self.layer != SIMPLE_RNN.name else {}), **changes}

    def snippet(self) -> str:
        """Python that rebuilds this case with rnn_ref's generator."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"from rnn_ref.harness.cases import make_case\ncase = make_case({args})\n"


MASK_PATTERNS = ("random", "left_padding", "right_padding", "all_masked_row", "leading_masked")


def _mask(rng: np.random.Generator, B: int, T: int, pattern: str) -> np.ndarray | None:
    if pattern == "none":
        return None
    lengths = rng.integers(0, T + 1, size=B)  # valid steps per row
    steps = np.arange(T)[None, :]  # (1, T)
    if pattern == "random":
        m = rng.random((B, T)) < 0.7
    elif pattern == "left_padding":  # zeros first, as pad_sequences(padding="pre")
        m = steps >= (T - lengths)[:, None]
    elif pattern == "right_padding":  # zeros last, as pad_sequences(padding="post")
        m = steps < lengths[:, None]
    elif pattern == "all_masked_row":
        m = rng.random((B, T)) < 0.7
        m[rng.integers(0, B)] = False
    elif pattern == "leading_masked":  # at least one masked step before the first valid one
        first = rng.integers(1, T + 1, size=B) if T > 1 else np.ones(B, int)
        m = (steps >= first[:, None]) & (rng.random((B, T)) < 0.8)
    else:
        raise ValueError(f"mask_pattern must be one of none, {', '.join(MASK_PATTERNS)}, got {pattern!r}")
    return m


def make_case(
    *, B=2, T=5, D=3, U=4, dtype="float32", seed=0, gain=0.9, activation="tanh", use_bias=True,
    mask_pattern="none", initial_state=False, return_sequences=False, return_state=False,
    go_backwards=False, zero_output_for_mask=False, input_scale=1.0, layer="SimpleRNN", **extras,
) -> Case:
    """Build a case deterministically from its description (used by reproductions).

    Values: inputs ~ U(-input_scale, input_scale); kernel Glorot-uniform,
    as Keras initialises it; recurrent_kernel a random orthogonal matrix times
    ``gain`` (so its spectral radius is ``gain``); bias and initial state
    ~ N(0, 0.5), never all zero.
    """
    spec = RECURRENT[layer]
    unknown = set(extras) - set(extra_options(layer))
    if unknown:
        raise TypeError(f"make_case got options {sorted(unknown)} that {layer} does not have")
    extras = {o: extras.get(o, spec.options[o]) for o in extra_options(layer)}
    shapes = spec.shapes(D, U, extras)
    rng = np.random.default_rng(seed)
    G = spec.gates * U
    limit = np.sqrt(6.0 / (D + G))
    # One orthogonal (U, U) block per gate, drawn first, so that a case rebuilds from its seed.
    recurrent = np.concatenate([orthogonal(rng, U, gain) for _ in range(spec.gates)], axis=1)  # (U, G)
    n_states = len(spec.states)
    case = Case(
        inputs=rng.uniform(-input_scale, input_scale, size=(B, T, D)),
        kernel=rng.uniform(-limit, limit, size=(D, G)),
        recurrent_kernel=recurrent,
        bias=rng.normal(0, 0.5, size=shapes["bias"]) if use_bias else None,
        mask=_mask(rng, B, T, mask_pattern),
        initial_state=(None if not initial_state else rng.normal(0, 0.5, size=(B, U)) if n_states == 1
                       else tuple(rng.normal(0, 0.5, size=(B, U)) for _ in range(n_states))),
        activation=activation,
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        zero_output_for_mask=zero_output_for_mask,
        gain=gain,
        seed=seed,
        mask_pattern=mask_pattern,
        layer=layer,
        extras=tuple(extras.items()),
    )
    return case.astype(dtype)


def orthogonal(rng: np.random.Generator, U: int, gain: float = 1.0) -> np.ndarray:
    """``gain`` times a random orthogonal (U, U) matrix, Haar-distributed and not
    symmetric: a recurrent kernel whose spectral radius is ``gain``."""
    q, r = np.linalg.qr(rng.normal(size=(U, U)))
    return gain * (q * np.sign(np.diag(r)))
