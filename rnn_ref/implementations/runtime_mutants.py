"""Runtime-level bugs, one each: ``predict(inputs) -> outputs`` callables built from
``rnn_ref.from_keras(model)`` with one thing wrong, as converters and runtimes have got it
wrong (as tf2onnx's, ONNX Runtime's and TFLite's users report). ``check-model`` must fail
each with a minimal input; ``correct`` (the model itself) must pass.

    RUNTIME_MUTANTS[name](keras_model) -> predict

* ``gru_bias_twice``: every GRU's bias added twice (TFLite's fused GRU, one bias per
  fully connected op);
* ``masked_lstm_outputs_zeros``: an LSTM outputs zeros at the steps its mask skips, where
  Keras repeats the previous output (ONNX Runtime's ``sequence_lens``);
* ``left_padding_as_right``: the mask taken as sequence lengths, as if every row were
  padded on the right (tf2onnx's rewrite to ``sequence_lens``);
* ``bidirectional_backward_not_flipped``: a Bidirectional with ``return_sequences`` whose
  backward outputs stay in processing order;
* ``forgets_carried_state``: a stateful model whose every call starts from zero states
  (the states not carried from call to call, as in a graph converted without them);
* ``INPUT_MUTANTS``: a model's initial-state inputs ignored, its mask input ignored, the
  initial state output at leading masked steps (Keras's JAX and NumPy backends, with a
  mask and an initial state), and a Masking that masks a step when any one feature
  equals ``mask_value``.

Each ``predict`` has the ``reset_state`` of its model (a stateful model's checks zero the
states before each call).

``double_onnx_initializer`` edits a real artifact on disk: one initializer of an ``.onnx``
file doubled with the ``onnx`` package.
"""

from __future__ import annotations

import copy

import numpy as np

from rnn_ref.layers.bidirectional import bidirectional
from rnn_ref.models.feedforward import Embedding, Masking
from rnn_ref.models.keras_graph import from_keras
from rnn_ref.models.model import Feed
from rnn_ref.models.recurrent import GRU, LSTM, Bidirectional


def _predict(np_model, *, forget: bool = False):
    def predict(inputs):
        if forget:
            np_model.reset_state()
        out = np_model(list(inputs) if np_model.inputs else inputs[0])
        return list(out) if isinstance(out, (list, tuple)) else [out]

    predict.reset_state = np_model.reset_state
    return predict


def _layers(np_model, cls):
    for layer in np_model.layers:
        parts = (layer.forward, layer.backward) if isinstance(layer, Bidirectional) else (layer,)
        yield from (p for p in parts if isinstance(p, cls))


def correct(keras_model):
    return _predict(from_keras(keras_model))


def gru_bias_twice(keras_model):
    m = copy.deepcopy(from_keras(keras_model))
    for layer in _layers(m, GRU):
        layer.bias = 2 * layer.bias
    return _predict(m)


def masked_lstm_outputs_zeros(keras_model):
    m = copy.deepcopy(from_keras(keras_model))
    for layer in m.layers:
        if isinstance(layer, LSTM):
            layer.zero_output_for_mask = True
    return _predict(m)


class _LengthsMask:
    """An Embedding whose mask is ``step < number of non-zero ids`` (post-padding assumed)."""

    def __init__(self, layer):
        self.layer = layer

    def __call__(self, x, mask=None):
        return self.layer(x, mask)

    def compute_mask(self, ids, mask=None):
        ids = np.asarray(ids)
        lengths = np.count_nonzero(ids, axis=1)  # (B,)
        return np.arange(ids.shape[1])[None] < lengths[:, None]  # (B, T)


def left_padding_as_right(keras_model):
    m = copy.deepcopy(from_keras(keras_model))
    m.layers = [_LengthsMask(l) if isinstance(l, Embedding) and l.mask_zero else l for l in m.layers]
    return _predict(m)


class _Unflipped:
    """A Bidirectional that leaves its backward outputs in processing order."""

    MERGE = {"concat": lambda a, b: np.concatenate([a, b], axis=-1), "sum": np.add, "mul": np.multiply,
             "ave": lambda a, b: (a + b) / 2}

    def __init__(self, layer):
        self.layer = layer

    def __call__(self, x, mask=None):
        f, b = self.layer.forward, self.layer.backward
        options = {k: v for k, v in f.call_options().items() if k not in Bidirectional.SET_BY_WRAPPER}
        y, y_rev = bidirectional(f.FUNCTION, np.asarray(x, f.dtype), (f.kernel, f.recurrent_kernel, f.bias),
                                 (b.kernel, b.recurrent_kernel, b.bias), merge_mode=None, mask=mask,
                                 **options)  # (B, T, U) each, y_rev in input order
        return self.MERGE[self.layer.merge_mode](y, y_rev[:, ::-1])

    def compute_mask(self, x, mask):
        return self.layer.compute_mask(x, mask)


def bidirectional_backward_not_flipped(keras_model):
    m = copy.deepcopy(from_keras(keras_model))
    m.layers = [_Unflipped(l) if isinstance(l, Bidirectional) and l.return_sequences else l for l in m.layers]
    return _predict(m)


def forgets_carried_state(keras_model):
    return _predict(copy.deepcopy(from_keras(keras_model)), forget=True)


RUNTIME_MUTANTS = {
    "gru_bias_twice": gru_bias_twice,
    "masked_lstm_outputs_zeros": masked_lstm_outputs_zeros,
    "left_padding_as_right": left_padding_as_right,
    "bidirectional_backward_not_flipped": bidirectional_backward_not_flipped,
}

#: Bugs only a stateful model shows (conformance's ``mutant:NAME`` takes these too).
STATEFUL_MUTANTS = {
    "forgets_carried_state": forgets_carried_state,
}


def ignores_initial_state(keras_model):
    """Model inputs fed as ``initial_state`` ignored: every layer starts from zero states."""
    m = copy.deepcopy(from_keras(keras_model))
    states = {k for f in m.feeds if f is not None for k in f.initial_state}
    correct_predict = _predict(m)

    def predict(inputs):
        return correct_predict([np.zeros_like(a) if k in states else a for k, a in enumerate(inputs)])

    predict.reset_state = correct_predict.reset_state
    return predict


def ignores_mask_input(keras_model):
    """A mask given as a model input ignored (the layer runs unmasked)."""
    m = copy.deepcopy(from_keras(keras_model))
    m.feeds = tuple(f if f is None else Feed(f.initial_state, None) for f in m.feeds)
    for layer in m.layers:
        if hasattr(layer, "mask_in"):
            layer.mask_in = None
    return _predict(m)


class _StateAtLeadingSteps:
    """A recurrent layer that outputs its initial state (not zeros) at the masked steps before
    a row's first valid step, as Keras's JAX and NumPy backends do."""

    def __init__(self, layer):
        self.layer = layer

    def __getattr__(self, name):
        return getattr(self.layer, name)

    def __call__(self, x, mask=None, initial_state=None):
        result = self.layer(x, mask, initial_state=initial_state)
        if mask is None or initial_state is None:
            return result
        y = result[0] if isinstance(result, tuple) else result
        h0 = np.asarray(initial_state[0], dtype=y.dtype)  # (B, U)
        before_first = np.cumsum(np.asarray(mask, bool), axis=1) == 0  # (B, T): no valid step yet
        if y.ndim == 3:
            y = np.where(before_first[..., None], h0[:, None], y)  # (B, T, U)
        else:
            y = np.where(before_first.all(axis=1)[:, None], h0, y)  # (B, U): a fully masked row
        return (y, *result[1:]) if isinstance(result, tuple) else y


def initial_state_at_leading_masked_steps(keras_model):
    m = copy.deepcopy(from_keras(keras_model))
    m.layers = [_StateAtLeadingSteps(l) if f is not None and f.initial_state else l
                for l, f in zip(m.layers, m.feeds or [None] * len(m.layers))]
    return _predict(m)


class _AnyFeatureMasking(Masking):
    """Masking that masks a step when any feature equals mask_value (all(x != v) for any(x != v))."""

    def __call__(self, x, mask=None):
        x = np.asarray(x, dtype=self.dtype)
        return np.where(self.compute_mask(x)[..., None], x, np.zeros((), x.dtype))  # (B, T, D)

    def compute_mask(self, x, mask=None):
        return np.all(np.asarray(x, dtype=self.dtype) != self.mask_value, axis=-1)  # (B, T)


def masking_any_feature(keras_model):
    m = copy.deepcopy(from_keras(keras_model))
    m.layers = [_AnyFeatureMasking(l.name, l.mask_value, l.dtype) if isinstance(l, Masking) else l
                for l in m.layers]
    return _predict(m)


#: Bugs of models with state or mask inputs and of Masking (conformance's ``states``,
#: ``mask_input`` and ``masking`` models).
INPUT_MUTANTS = {
    "ignores_initial_state": ignores_initial_state,
    "ignores_mask_input": ignores_mask_input,
    "initial_state_at_leading_masked_steps": initial_state_at_leading_masked_steps,
    "masking_any_feature": masking_any_feature,
}


def double_onnx_initializer(source, target, name: str | None = None) -> str:
    """Write ``source`` (an .onnx file) to ``target`` with one floating initializer doubled:
    ``name``, or the largest one (an embedding table or a kernel). Returns its name."""
    import onnx  # noqa: PLC0415
    from onnx import numpy_helper  # noqa: PLC0415

    graph = onnx.load(str(source))
    floats = [t for t in graph.graph.initializer if numpy_helper.to_array(t).dtype.kind == "f"]
    if not floats:
        raise ValueError(f"{source} has no floating initializer")
    chosen = next((t for t in floats if t.name == name), None) if name else max(
        floats, key=lambda t: numpy_helper.to_array(t).size)
    if chosen is None:
        raise ValueError(f"{source} has no initializer {name!r}; floating ones: {[t.name for t in floats]}")
    chosen.CopyFrom(numpy_helper.from_array(2 * numpy_helper.to_array(chosen), chosen.name))
    onnx.save(graph, str(target))
    return chosen.name
