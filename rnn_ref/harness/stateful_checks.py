"""Stateful models: chunked calls equal one call.

A stateful recurrent layer (``stateful=True``, a fixed batch) starts each call from the
states the previous call left, and ``reset_state()`` zeroes them; feeding a long sequence
in chunks is what such a model is for. ``stateful_chunks_match_keras`` draws a (B, T)
input (B the model's batch; ids padded or not, or floats), splits it at 1 to 3 drawn
steps, resets the runtime and calls it on chunk 1, chunk 2, ... in order, and judges each
chunk's outputs against

* the float64 truth of that chunk: a fresh float64 copy of the NumPy model, its states
  zeroed, called on the chunks up to this one in order (``judge_chunk_call``); the
  conditioning perturbs every chunk's floats and every weight, so it covers what rounding
  in the earlier chunks does to the carried states;
* Keras-TF, reset and fed the same chunks, as the yardstick of the budget.

Then, where it is what Keras does, the chunked calls equal one call: the chunks' sequence
outputs joined along the steps (a final output or a state: the last chunk's) are judged
against the truth and Keras of one call on the whole sequence. Measured on the catalogue's
``stateful`` model (Keras 3.15.1): without padding the last chunk's output equals one call's
exactly; with a row whose last chunk is all padding it does not (that call returns the
output of no valid step, not the carried one), nor across a masked step at a chunk's start
(a masked step repeats the previous output of the same call). So the join is checked
without padding, and only when every recurrent layer is stateful and runs forwards (a
layer that is not stateful, or goes backwards, restarts in each chunk).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnn_ref.harness.judging import (Judgement, flat, judge_model_call, judge_outputs, longest_sum, model_weights,
                                     recurrent_layers, with_weights)
from rnn_ref.harness.model_checks import STATEFUL_PROPERTIES, model_prop
from rnn_ref.harness.model_inputs import MAX_STEPS, Example, examples, zero_states

MAX_CHUNKS = 4


@dataclass(frozen=True)
class ChunkedExample(Example):
    """An ``Example`` called in chunks: ``splits``, the steps where a new call starts."""

    splits: tuple = ()

    def chunks(self, x) -> list:
        return np.split(x, list(self.splits), axis=1)  # each (B, T_k, ...)

    def describe(self) -> str:
        bounds = [0, *self.splits, self.T]
        spans = ", ".join(f"{a}..{b - 1}" for a, b in zip(bounds, bounds[1:]))
        return f"{super().describe()}; called in {len(bounds) - 1} chunks, steps {spans}"


def chunked_examples(sig):
    from hypothesis import strategies as st  # noqa: PLC0415

    base = examples(sig, padding=("none", "right", "random"), steps=st.integers(2, MAX_STEPS))

    @st.composite
    def draw(draw):
        ex = draw(base)
        n = draw(st.integers(1, min(MAX_CHUNKS - 1, ex.T - 1)))
        splits = sorted(draw(st.sets(st.integers(1, ex.T - 1), min_size=n, max_size=n)))
        return ChunkedExample(ex.B, ex.T, ex.padding, ex.valid, ex.seed, tuple(splits))

    return draw()


def _needs_stateful(sig):
    if not sig.stateful:
        return "needs a stateful layer (the model carries nothing from call to call)"
    if sig.extras:
        return "needs a model of one input (chunks of a model with state or mask inputs are not drawn)"
    if sig.length:
        return f"needs calls of several lengths (the runtime takes only T={sig.length})"
    return None


def judge_chunk_call(label: str, np_model, chunks: list, got, keras, *, seed: int = 0) -> Judgement:
    """Judge a stateful model's arrays for the last of ``chunks`` (the runtime's ``got`` and
    Keras's ``keras``, both called on the chunks in order from zero states) against the
    float64 truth: ``np_model`` in float64, its states zeroed, called on every chunk in
    order, with the conditioning of every chunk's floats and every weight."""
    keras = [np.asarray(k) for k in keras]

    def reference(weights, chunks):
        model = with_weights(np_model, weights)
        zero_states(model)
        for part in chunks[:-1]:
            model(part)
        return tuple(flat(model(chunks[-1])))

    return judge_outputs(label, reference, dict(weights=model_weights(np_model), chunks=list(chunks)),
                         [np.asarray(g) for g in got], keras, keras[0].dtype, m=longest_sum(np_model),
                         time_axes=[1 if k.ndim == 3 else None for k in keras], seed=seed)


def joins(np_model) -> bool:
    """Whether chunked calls of the model equal one call: every recurrent layer stateful and forwards."""
    layers = list(recurrent_layers(np_model))
    return bool(layers) and all(layer.stateful and not layer.go_backwards for layer in layers)


@model_prop("stateful_chunks_match_keras", chunked_examples, _needs_stateful, registry=STATEFUL_PROPERTIES)
def _chunks_match(c, ex):
    """A stateful model called on a sequence in chunks after a reset carries its states from
    chunk to chunk: each chunk's outputs match Keras fed the same chunks and the float64
    truth from the states the earlier chunks left; unpadded, the chunks joined equal one call."""
    x = ex.inputs(c.sig)
    parts = ex.chunks(x)
    got = [c.run(part, fresh=i == 0) for i, part in enumerate(parts)]
    keras = [c.keras(part, fresh=i == 0) for i, part in enumerate(parts)]
    bounds = [0, *ex.splits, ex.T]
    for i, part in enumerate(parts):
        label = f"chunk {i + 1} of {len(parts)} (steps {bounds[i]}..{bounds[i + 1] - 1})"
        judge_chunk_call(label, c.np_model, parts[:i + 1], c.conform(label, got[i], keras[i]), keras[i]).check()
    if ex.padding == "none" and joins(c.np_model):
        whole = c.keras(x)
        joined = [np.concatenate([g[k] for g in got], axis=1) if w.ndim == 3 else got[-1][k]
                  for k, w in enumerate(whole)]
        label = "the chunks joined, against one call on the whole sequence"
        judge_model_call(label, c.np_model, x, c.conform(label, joined, whole), whole).check()
