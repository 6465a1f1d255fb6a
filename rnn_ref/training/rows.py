"""A gradient given row by row, as Keras's TensorFlow backend gives an Embedding's.

``tf.GradientTape`` differentiates ``Embedding`` (a gather) into ``tf.IndexedSlices``: one
row of values per token occurrence in the batch, duplicates NOT summed. Keras's optimizers
take it as it is (measured, Keras 3.15.1, TensorFlow backend), so every elementwise op
applied to it acts on each occurrence before the rows meet the dense slots:

* ``ops.square(g)`` (Adam's and RMSprop's velocity, Adagrad's accumulator) squares each
  occurrence: a row gets sum_i g_i^2, not (sum_i g_i)^2;
* ``clipvalue`` (``tf.clip_by_value``) clips each occurrence, then the rows are summed;
* ``clipnorm`` (``tf.clip_by_norm``) takes the norm over the occurrences' values and
  scales them; ``global_clipnorm`` takes the norm the same way (``ops.sum(ops.square(g))``),
  but its scaling (a tensor times IndexedSlices) sums the rows into a dense gradient, which
  the update then squares as it is;
* everything linear (SGD, momentum, Adam's first moment) sees the summed rows.

``Rows`` is that gradient; ``summed`` turns it into the dense gradient that the updates
use, carrying the per-occurrence squares (``square``) for the ops that square.

Letters: n occurrences, S the variable's shape (V, E), R = S[1:] a row's shape.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Rows(NamedTuple):
    """A gradient as ``tf.IndexedSlices``: ``values[i]`` (R) adds to row ``indices[i]``."""

    indices: np.ndarray  # (n,) ints in [0, S[0])
    values: np.ndarray  # (n, *R)
    shape: tuple  # S

    @property
    def dtype(self):
        return self.values.dtype


class Summed(np.ndarray):
    """A dense gradient (S) that also knows Keras's ``square`` of it (``squares``, S)."""

    squares = None

    def __array_finalize__(self, obj):
        self.squares = None  # a result computed from it is an ordinary gradient


def summed(g: Rows) -> Summed:
    """The rows summed into a dense gradient, with the sum of the occurrences' squares."""
    dense = np.zeros(g.shape, g.dtype)
    squares = np.zeros(g.shape, g.dtype)
    np.add.at(dense, g.indices, g.values)
    np.add.at(squares, g.indices, g.values * g.values)
    out = dense.view(Summed)
    out.squares = squares
    return out


def square(g):
    """``ops.square(g)`` as the update sees it: per occurrence for a gradient given in rows."""
    squares = getattr(g, "squares", None)
    return g * g if squares is None else squares


def values(g):
    """What an elementwise op on ``g`` acts on: the occurrences' values, or the array."""
    return g.values if isinstance(g, Rows) else g


def with_values(g, new):
    """``g`` with its values (or itself) replaced by ``new``."""
    return g._replace(values=new) if isinstance(g, Rows) else new
