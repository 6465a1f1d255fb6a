"""Hypothesis strategies for SimpleRNN cases.

A ``Case`` holds the arrays and options of one ``simple_rnn`` call. Shapes,
options, dtype, weight scales and the mask pattern are drawn by hypothesis,
so they shrink to a minimal counterexample; the array values come from a
NumPy generator seeded by a drawn integer, with explicit bounds. Drawing
10^4-10^5 floats one by one would be slow, overflow hypothesis's buffer for
T in the hundreds, and shrinking them element by element rarely makes a
failure easier to read than small shapes do.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from hypothesis import strategies as st

from ..activations import ACTIVATIONS, BOUNDED, ELEMENTWISE
from .spec import SIMPLE_RNN

#: The options of a case that go to the layer (mask and initial_state are arrays of the case).
OPTION_NAMES = SIMPLE_RNN.layer_options


class Case(NamedTuple):
    """One ``simple_rnn`` call: arrays in the case's dtype, options as Keras names."""

    inputs: np.ndarray  # (B, T, D)
    kernel: np.ndarray  # (D, U)
    recurrent_kernel: np.ndarray  # (U, U)
    bias: np.ndarray | None  # (U,)
    mask: np.ndarray | None  # (B, T) bool
    initial_state: np.ndarray | None  # (B, U)
    activation: str = "tanh"
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False
    zero_output_for_mask: bool = False
    gain: float = 1.0  # spectral radius of recurrent_kernel
    seed: int = 0
    mask_pattern: str = "none"

    @property
    def dtype(self) -> np.dtype:
        return self.inputs.dtype

    @property
    def shape(self) -> dict:
        B, T, D = self.inputs.shape
        return {"B": B, "T": T, "D": D, "U": self.kernel.shape[1]}

    def kwargs(self, **overrides) -> dict:
        """Keyword arguments of ``simple_rnn`` for this case."""
        kw = dict(
            inputs=self.inputs, kernel=self.kernel, recurrent_kernel=self.recurrent_kernel,
            bias=self.bias, activation=self.activation, return_sequences=self.return_sequences,
            return_state=self.return_state, go_backwards=self.go_backwards, mask=self.mask,
            initial_state=self.initial_state, zero_output_for_mask=self.zero_output_for_mask,
        )
        kw.update(overrides)
        return kw

    def astype(self, dtype) -> "Case":
        """The same values in another dtype (float32 values are exact in float64)."""
        cast = lambda a: None if a is None else a.astype(dtype)  # noqa: E731
        return self._replace(
            inputs=cast(self.inputs), kernel=cast(self.kernel),
            recurrent_kernel=cast(self.recurrent_kernel), bias=cast(self.bias),
            initial_state=cast(self.initial_state),
        )

    def describe(self) -> str:
        s = self.shape
        opts = [f"activation={self.activation!r}"] + [
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
                **{n: getattr(self, n) for n in OPTION_NAMES[1:]}, **changes}

    def snippet(self) -> str:
        """Python that rebuilds this case with rnn_ref's generator."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"from rnn_ref.harness.cases import make_case\ncase = make_case({args})\n"


def features_of(kwargs: dict) -> set:
    """The (dimension, value) pairs one call with ``simple_rnn``'s arguments exercises
    (a mask counts as ``("mask_pattern", "mask")``)."""
    x = np.asarray(kwargs["inputs"])
    return {
        ("activation", kwargs.get("activation", "tanh")),
        ("dtype", x.dtype.name),
        ("use_bias", kwargs.get("bias") is not None),
        ("mask_pattern", "none" if kwargs.get("mask") is None else "mask"),
        ("initial_state", kwargs.get("initial_state") is not None),
        ("unbatched", x.ndim == 2),
        *((k, bool(kwargs.get(k, False))) for k in ("return_sequences", "return_state", "go_backwards",
                                                     "zero_output_for_mask")),
    }



MASK_PATTERNS = ("random", "left_padding", "right_padding", "all_masked_row", "leading_masked")


class Support(NamedTuple):
    """The values of each drawn dimension that an implementation handles.

    Properties draw their cases inside it (``Property.strategy_for``), so a
    function that handles only tanh, float32 and no masks is checked on
    every case of that kind instead of declining most of them. The fields
    are ``cases``'s option arguments, plus ``unbatched`` (one sequence (T, D)
    as input). ``FULL`` is everything ``rnn_ref.simple_rnn`` handles.
    """

    activation: tuple = tuple(ACTIVATIONS)
    dtype: tuple = ("float32", "float64")
    use_bias: tuple = (True, False)
    mask_pattern: tuple = ("none",) + MASK_PATTERNS
    initial_state: tuple = (False, True)
    return_sequences: tuple = (False, True)
    return_state: tuple = (False, True)
    go_backwards: tuple = (False, True)
    zero_output_for_mask: tuple = (False, True)
    unbatched: tuple = (False, True)

    def lacks(self, dimension: str, values) -> list:
        """The ``values`` of ``dimension`` not supported."""
        have = getattr(self, dimension)
        return [v for v in values if v not in have]


FULL = Support()

#: The value of each dimension in Keras's default configuration.
DEFAULTS = dict(activation="tanh", dtype="float32", use_bias=True, mask_pattern="none", initial_state=False,
                return_sequences=False, return_state=False, go_backwards=False, zero_output_for_mask=False,
                unbatched=False)


def feature(dimension: str, value) -> str:
    """A readable name of one value of a dimension: ``bias=None``, ``mask (random)``, ..."""
    if dimension == "activation":
        return f"activation={value!r}"
    if dimension == "dtype":
        return str(value)
    if dimension == "use_bias":
        return "a bias" if value else "bias=None"
    if dimension == "mask_pattern":
        return "no mask" if value == "none" else f"mask ({value})"
    if dimension == "initial_state":
        return "initial_state" if value else "no initial_state"
    if dimension == "unbatched":
        return "one sequence (T, D)" if value else "a batch (B, T, D)"
    return f"{dimension}={value}"


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
    go_backwards=False, zero_output_for_mask=False, input_scale=1.0,
) -> Case:
    """Build a case deterministically from its description (used by reproductions).

    Values: inputs ~ U(-input_scale, input_scale); kernel Glorot-uniform,
    as Keras initialises it; recurrent_kernel a random orthogonal matrix times
    ``gain`` (so its spectral radius is ``gain``); bias and initial state
    ~ N(0, 0.5), never all zero.
    """
    rng = np.random.default_rng(seed)
    limit = np.sqrt(6.0 / (D + U))
    recurrent = orthogonal(rng, U, gain)  # drawn first, so that a case rebuilds from its seed
    case = Case(
        inputs=rng.uniform(-input_scale, input_scale, size=(B, T, D)),
        kernel=rng.uniform(-limit, limit, size=(D, U)),
        recurrent_kernel=recurrent,
        bias=rng.normal(0, 0.5, size=U) if use_bias else None,
        mask=_mask(rng, B, T, mask_pattern),
        initial_state=rng.normal(0, 0.5, size=(B, U)) if initial_state else None,
        activation=activation,
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        zero_output_for_mask=zero_output_for_mask,
        gain=gain,
        seed=seed,
        mask_pattern=mask_pattern,
    )
    return case.astype(dtype)


def orthogonal(rng: np.random.Generator, U: int, gain: float = 1.0) -> np.ndarray:
    """``gain`` times a random orthogonal (U, U) matrix, Haar-distributed and not
    symmetric: a recurrent kernel whose spectral radius is ``gain``."""
    q, r = np.linalg.qr(rng.normal(size=(U, U)))
    return gain * (q * np.sign(np.diag(r)))


@st.composite
def cases(
    draw,
    *,
    B=st.integers(1, 4),
    T=st.one_of(st.integers(1, 12), st.integers(13, 300)),
    D=st.integers(1, 24),
    U=st.integers(1, 24),
    dtype=st.sampled_from(["float32", "float64"]),
    activation=st.sampled_from(ELEMENTWISE),
    gain=st.one_of(st.floats(0.05, 1.0), st.floats(1.0, 3.0)),
    use_bias=st.booleans(),
    mask_pattern=st.just("none"),
    initial_state=st.booleans(),
    return_sequences=st.booleans(),
    return_state=st.booleans(),
    go_backwards=st.booleans(),
    zero_output_for_mask=st.booleans(),
) -> Case:
    """A random SimpleRNN case. Every argument is a strategy, to pin or widen a dimension.

    Defaults: shapes drawn independently (so D != U is common), T short most of
    the time and in the hundreds otherwise, both float dtypes, every
    elementwise activation, recurrent gain (spectral radius) in [0.05, 1]
    half of the time (contracting) and in [1, 3] otherwise, where tanh-like
    recurrences turn chaotic and float32 loses every digit after ~100 steps:
    the condition-aware budget must tell rounding from bugs there too.
    Unbounded activations are kept at gain <= 0.5 so they stay finite.
    """
    act = draw(activation, label="activation")
    g = draw(gain, label="gain")
    if act not in BOUNDED:
        # Unbounded activations can overflow through the recurrence; keep the
        # gain contractive so float32 stays finite over hundreds of steps.
        g = min(g, 0.5)
    return make_case(
        B=draw(B, label="B"), T=draw(T, label="T"), D=draw(D, label="D"), U=draw(U, label="U"),
        dtype=draw(dtype, label="dtype"),
        seed=draw(st.integers(0, 2**32 - 1), label="seed"),
        gain=g, activation=act,
        use_bias=draw(use_bias, label="use_bias"),
        mask_pattern=draw(mask_pattern, label="mask_pattern"),
        initial_state=draw(initial_state, label="initial_state"),
        return_sequences=draw(return_sequences, label="return_sequences"),
        return_state=draw(return_state, label="return_state"),
        go_backwards=draw(go_backwards, label="go_backwards"),
        zero_output_for_mask=draw(zero_output_for_mask, label="zero_output_for_mask"),
    )
