"""The inputs check-model draws for a whole model: its signature, one drawn example, the strategy.

``signature_of(np_model)`` reads what the model takes from the NumPy model ``from_keras`` built:

* token ids (B, T) for a model that starts with an ``Embedding``: ids in [1, V) at valid
  steps, id 0 at padded ones (with ``mask_zero=True`` that padding is masked; without it,
  0 is an ordinary token);
* floats (B, T, D) in [-1, 1) for a model that starts with ``Masking``: its padded steps
  hold ``mask_value`` in every feature, so the padding patterns apply to floats too, and
  a quarter of the valid steps hold it in one feature (a step is masked only when all are);
* floats (B, T, D) for a model that starts with a recurrent layer: nothing to pad;
* for a model of several inputs, each other input a recurrent layer takes (``Feed``):
  an initial state (B, U), floats in [-1, 1), or an explicit boolean mask (B, T), which
  is the drawn padding pattern (True at valid steps), so a float model with a mask input
  is padded through it.

An ``Example`` is B rows of T steps, a padding pattern (none, right, left, random, or a
fully padded row among right-padded ones), its valid steps and the seed of the values;
``Example.inputs(sig)`` is one array for a model of one input, else the list of the
model's inputs in its order. ``rows(x, r)`` and ``steps(x, a, b)`` cut either kind.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnn_ref.harness.judging import recurrent_layers
from rnn_ref.models.feedforward import Embedding, Masking

MAX_BATCH = 4
MAX_STEPS = 40
LONG_STEPS = 250
PADDINGS = ("none", "right", "left", "random", "full")


@dataclass(frozen=True)
class Extra:
    """A model input other than the data: ``kind`` "state" (B, ``units``), "mask" (B, T), or
    "unused" (no layer reads it; Keras still wants it: zeros of its ``shape`` without the
    batch, None steps being T, and its ``dtype``)."""

    index: int
    name: str
    kind: str
    units: int | None = None
    shape: tuple = ()
    dtype: str = "float32"


@dataclass(frozen=True)
class Signature:
    """What the model takes: ``ids`` (B, T) with a vocabulary, or ``floats`` (B, T, D)
    (``mask_value``: padded with it, for a model that starts with Masking); for a model of
    several inputs, the data's position among them and the ``extras``."""

    kind: str
    vocabulary: int | None = None
    features: int | None = None
    mask_zero: bool = False
    batch: int | None = None      # fixed by the runtime or the model's states, else None
    length: int | None = None
    stateful: tuple = ()          # the names of the model's stateful layers
    mask_value: float | None = None
    data_input: int = 0
    extras: tuple = ()            # Extra, one per other model input

    @property
    def paddable(self) -> bool:
        """Whether padding means something for this model: ids, a Masking layer or a mask input."""
        return self.kind == "ids" or self.mask_value is not None or any(e.kind == "mask" for e in self.extras)

    def describe(self) -> str:
        if self.kind == "ids":
            what = (f"token ids (B, T) in [0, {self.vocabulary}), "
                    + ("0 masked (mask_zero)" if self.mask_zero else "no mask: 0 is a token"))
        else:
            what = f"floats (B, T, {self.features})" + (
                f", padded steps all {self.mask_value} (Masking)" if self.mask_value is not None else "")
        fixed = [f"batch fixed at {self.batch}" if self.batch else "", f"length fixed at {self.length}"
                 if self.length else ""]
        for e in self.extras:
            fixed.append(f"input {e.name!r}: " + {
                "state": f"an initial state (B, {e.units}), floats in [-1, 1)",
                "mask": "a boolean mask (B, T), the padding",
            }.get(e.kind, "read by no layer, zeros"))
        if self.stateful:
            fixed.append(f"stateful layer(s) {', '.join(self.stateful)}: states zeroed before each call, "
                         "carried across the calls of stateful_chunks_match_keras")
        return "; ".join([what, *[f for f in fixed if f]])


def stateful_layers(np_model) -> list:
    """The model's stateful recurrent layers (a Bidirectional's directions included)."""
    return [layer for layer in recurrent_layers(np_model) if getattr(layer, "stateful", False)]


def zero_states(np_model) -> None:
    """Zero the states every stateful layer of ``np_model`` carries (keeping their batch)."""
    for layer in stateful_layers(np_model):
        layer.reset_state()


def _units(layer) -> int:
    inner = getattr(layer, "forward", layer)
    return int(np.shape(inner.recurrent_kernel)[0])


def _extras(np_model) -> tuple:
    """The ``Extra`` of each model input a layer takes besides the data."""
    extras = {}
    for layer, feed in zip(np_model.layers, np_model.feeds or ()):
        if feed is None:
            continue
        for k in feed.initial_state:
            extras[k] = Extra(k, np_model.inputs[k].name, "state", _units(layer))
        if feed.mask is not None:
            extras[feed.mask] = Extra(feed.mask, np_model.inputs[feed.mask].name, "mask")
    for k, spec in enumerate(np_model.inputs):
        if k != np_model.data_input and k not in extras:
            extras[k] = Extra(k, spec.name, "unused", shape=tuple(spec.shape[1:]), dtype=np.dtype(spec.dtype).name)
    return tuple(extras[k] for k in sorted(extras))


def signature_of(np_model, batch=None, length=None) -> Signature:
    """The model's input signature; a stateful model's batch is that of its states."""
    stateful = stateful_layers(np_model)
    names = tuple(dict.fromkeys(layer.name for layer in stateful))
    states = [getattr(layer, layer.STATE[0]) for layer in stateful]
    if batch is None and states and states[0] is not None:
        batch = int(np.shape(states[0])[0])
    several = dict(data_input=np_model.data_input, extras=_extras(np_model)) if np_model.inputs else {}
    first = np_model.layers[0]
    if isinstance(first, Embedding):
        return Signature("ids", vocabulary=int(np.shape(first.embeddings)[0]), mask_zero=bool(first.mask_zero),
                         batch=batch, length=length, stateful=names, **several)
    mask_value = None
    if isinstance(first, Masking):
        mask_value, first = float(first.mask_value), np_model.layers[1]
    kernel = getattr(first, "kernel", None)
    if kernel is None:
        kernel = first.forward.kernel
    return Signature("floats", features=int(np.shape(kernel)[0]), batch=batch, length=length, stateful=names,
                     mask_value=mask_value, **several)


def rows(x, r):
    """Rows ``r`` (a slice or an index array) of one input array or of each of a list of inputs."""
    return [a[r] for a in x] if isinstance(x, list) else x[r]


def steps(x, a: int, b: int, sig: Signature):
    """Steps a..b-1 of the data and of a mask input (states are not sequences)."""
    if not isinstance(x, list):
        return x[:, a:b]
    masks = {e.index for e in sig.extras if e.kind == "mask"}
    return [arr[:, a:b] if k == sig.data_input or k in masks else arr for k, arr in enumerate(x)]


@dataclass(frozen=True)
class Example:
    """One drawn input: ``B`` rows of ``T`` steps, the padding pattern, its valid steps
    ``valid`` (B, T) and the seed of the values."""

    B: int
    T: int
    padding: str
    valid: tuple
    seed: int

    def inputs(self, sig: Signature):
        """The data (B, T) or (B, T, D) for a model of one input, else the list of its inputs."""
        rng = np.random.default_rng(self.seed)
        valid = np.array(self.valid, dtype=bool).reshape(self.B, self.T)
        if sig.kind == "ids":
            x = rng.integers(1, sig.vocabulary, size=(self.B, self.T)).astype(np.int32)  # (B, T)
            x = np.where(valid, x, 0).astype(np.int32)
        else:
            x = rng.uniform(-1, 1, size=(self.B, self.T, sig.features)).astype(np.float32)  # (B, T, D)
            if sig.mask_value is not None:
                x[~valid] = np.float32(sig.mask_value)  # a Masking layer masks these steps
                if sig.features > 1:  # ... and not a valid step with only some features equal to it
                    some = valid & (rng.random((self.B, self.T)) < 0.25)  # (B, T)
                    x[some, rng.integers(0, sig.features)] = np.float32(sig.mask_value)
        if not sig.extras:
            return x
        arrays = {sig.data_input: x}
        for e in sig.extras:
            if e.kind == "state":
                arrays[e.index] = rng.uniform(-1, 1, size=(self.B, e.units)).astype(np.float32)  # (B, U)
            elif e.kind == "mask":
                arrays[e.index] = valid.copy()  # (B, T) bool
            else:  # read by no layer
                arrays[e.index] = np.zeros((self.B, *(self.T if d is None else d for d in e.shape)), e.dtype)
        return [arrays[k] for k in range(len(arrays))]

    def describe(self) -> str:
        valid = np.array(self.valid, dtype=bool).reshape(self.B, self.T)
        s = f"B={self.B} T={self.T} padding={self.padding} seed={self.seed}"
        if self.padding != "none":
            s += "; valid steps per row: " + ", ".join(
                "".join("1" if v else "0" for v in row) if self.T <= 40 else f"{int(row.sum())} of {self.T}"
                for row in valid)
        return s


def examples(sig: Signature, *, padding: str | tuple = PADDINGS, steps=None, rows=None, min_rows: int = 1):
    """The hypothesis strategy of ``Example``s inside ``sig`` (its fixed batch and length win)."""
    from hypothesis import strategies as st  # noqa: PLC0415

    paddings = (padding,) if isinstance(padding, str) else padding
    if not sig.paddable:
        paddings = ("none",)
    rows = st.just(sig.batch) if sig.batch else (rows if rows is not None else st.integers(min_rows, MAX_BATCH))
    steps = st.just(sig.length) if sig.length else (steps if steps is not None else st.integers(1, MAX_STEPS))

    @st.composite
    def draw(draw):
        B, T = draw(rows), draw(steps)
        kind = draw(st.sampled_from(paddings))
        if kind == "none":
            valid = np.ones((B, T), bool)
        elif kind in ("right", "left"):
            lengths = draw(st.lists(st.integers(1, T), min_size=B, max_size=B))
            valid = np.arange(T)[None] < np.array(lengths)[:, None]  # (B, T)
            valid = valid if kind == "right" else valid[:, ::-1]
        elif kind == "random":
            valid = np.array(draw(st.lists(st.booleans(), min_size=B * T, max_size=B * T))).reshape(B, T)
        else:  # full: one row all padding, the others right padded
            lengths = draw(st.lists(st.integers(1, T), min_size=B, max_size=B))
            valid = np.arange(T)[None] < np.array(lengths)[:, None]
            valid[draw(st.integers(0, B - 1))] = False
        seed = draw(st.integers(0, 2**16))
        return Example(B, T, kind, tuple(bool(v) for v in valid.ravel()), seed)

    return draw()
