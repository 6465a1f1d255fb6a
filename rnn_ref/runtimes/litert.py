"""``litert``: the model converted by TensorFlow's TFLite converter (or a given ``.tflite``),
run by the LiteRT interpreter (``ai_edge_litert``; TensorFlow's own ``tf.lite.Interpreter``
when that is not installed).

The converter is asked for a dynamic batch first. For a masked RNN it refuses ("Lowering
tensor list ops is failed": the mask's tensor lists need a static element shape); the model
is then wrapped with a fixed batch of ``FIXED_BATCH`` rows (the steps stay free) and
converted again, and the facts say so. Only builtin ops are allowed: with TensorFlow ops
(``SELECT_TF_OPS``) the plain interpreter could not run the result. The interpreter's
input is resized to each call's shape; a fixed dimension of the artifact is respected by
the checks (``facts.batch``).

A stateful layer's states become variable tensors of the flatbuffer, and the interpreter
carries them from call to call (measured on the catalogue's ``stateful`` LSTM, also across
calls of different lengths, which resize the input). ``reset_state`` starts a new
interpreter on the same flatbuffer: its variables start from the model's states when it
was converted (measured: converted after some calls, the first call was 0.19 away from
Keras's from zero states), which ``convert`` zeroes first. The interpreter's own ``reset_all_variables()`` does
not give those (measured: the call after it differed from Keras's call from zero states by
0.024, the difference decaying over the following calls).
"""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np

from rnn_ref._tf import keras_and_tf, quiet_stderr
from rnn_ref.runtimes.base import Declined, Runtime, first_lines, quiet_output
from rnn_ref.runtimes.worker import reset_keras_states

FIXED_BATCH = 2


def _convert(keras, tf, model, batch):
    if batch is not None:
        inputs = [keras.Input(batch_shape=(batch, *i.shape[1:]), dtype=i.dtype, name=input_name(i))
                  for i in model.inputs]
        model = keras.Model(inputs, model(inputs[0] if len(inputs) == 1 else inputs))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    with quiet_output(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return converter.convert()


def convert(model, batch: int | None = None) -> tuple[bytes, int | None, str | None]:
    """``(flatbuffer, fixed batch or None, why the batch is fixed)``; ``Declined`` when no
    conversion works. A stateful model's states are zeroed first: the flatbuffer's variables start from them."""
    keras, tf = keras_and_tf()
    reset_keras_states(model)
    if batch is None:
        try:
            return _convert(keras, tf, model, None), None, None
        except Exception as e:  # noqa: BLE001 - try a fixed batch
            dynamic_error = first_lines(str(e), 1)
        batch = FIXED_BATCH
    else:
        dynamic_error = None
    try:
        return _convert(keras, tf, model, batch), batch, dynamic_error
    except Exception as e:  # noqa: BLE001
        raise Declined(f"the TFLite converter of TensorFlow {tf.__version__} could not convert the model "
                       f"(batch {batch}): {first_lines(str(e))}") from e


def input_name(tensor) -> str:
    """A Keras model input's name (its InputLayer's): the converted signature's name of that input."""
    return tensor._keras_history.operation.name


def input_order(interpreter, inputs: list, names: list) -> list:
    """The interpreter's input details in the order of the Keras model's inputs ``names``.

    ``get_input_details()`` lists the tensors in the flatbuffer's order, which for a model of
    several inputs need not be Keras's (measured: a model taking (x, m, h0) listed h0 first);
    the converted signature names each input after its Keras ``Input``. Kept as it is when
    the names cannot be matched (a given artifact of another model, several signatures)."""
    if len(inputs) < 2:
        return inputs
    try:
        signatures = interpreter.get_signature_list()
        if len(signatures) != 1:
            return inputs
        named = interpreter.get_signature_runner(next(iter(signatures))).get_input_details()  # name -> details
    except (AttributeError, ValueError, RuntimeError):
        return inputs
    by_index = {d["index"]: d for d in inputs}
    ordered = [by_index.get(named[n]["index"]) if n in named else None for n in names]
    return ordered if len(ordered) == len(inputs) and None not in ordered else inputs


def _sequence_inputs(model) -> list:
    """Which of the Keras model's inputs have a time axis: (B, T, D) floats, or (B, T) ids or masks
    (a (B, U) float input is an initial state)."""
    return [len(i.shape) >= 3 or (len(i.shape) == 2 and not str(i.dtype).startswith("float"))
            for i in model.inputs]


def interpreter_class():
    if importlib.util.find_spec("ai_edge_litert") is not None:
        from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415
        import ai_edge_litert  # noqa: PLC0415

        return Interpreter, f"ai_edge_litert {getattr(ai_edge_litert, '__version__', '?')}"
    keras, tf = keras_and_tf()
    return tf.lite.Interpreter, f"tf.lite.Interpreter (TensorFlow {tf.__version__})"


def keras_order(interpreter, outputs: list) -> list:
    """The interpreter's output details in the order of the model's outputs.

    ``get_output_details()`` lists the tensors in the flatbuffer's order, which for a model of
    several outputs need not be Keras's (measured: an LSTM with return_sequences and
    return_state came out as (h, output, c)). The converted signature names them output_0,
    output_1, ... in Keras's order; that order is taken when the model has one signature."""
    try:
        signatures = interpreter.get_signature_list()
    except (AttributeError, ValueError, RuntimeError):
        return outputs
    if len(signatures) != 1:
        return outputs
    named = interpreter.get_signature_runner(next(iter(signatures))).get_output_details()  # name -> details

    def position(name):
        head, _, tail = name.rpartition("_")
        return (int(tail), name) if head and tail.isdigit() else (len(named), name)

    by_index = {d["index"]: d for d in outputs}
    ordered = [by_index.get(named[n]["index"]) for n in sorted(named, key=position)]
    return ordered if len(ordered) == len(outputs) and None not in ordered else outputs


class LiteRT(Runtime):
    name = "litert"

    def __init__(self, model=None, artifact: str | None = None, batch: int | None = None):
        super().__init__()
        Interpreter, which = interpreter_class()
        if artifact is not None:
            content = open(artifact, "rb").read()
            self.facts.notes.append(f"the given artifact {artifact}")
        else:
            content, fixed, why = convert(model, batch)
            if why:
                self.facts.notes.append(f"converted with a fixed batch of {fixed}: a dynamic batch was refused "
                                        f"({why})")
            elif fixed:
                self.facts.notes.append(f"converted with a fixed batch of {fixed}")
            else:
                self.facts.notes.append("converted with a dynamic batch")
        self._content, self._interpreter_class = content, Interpreter
        self._start()
        self.facts.versions["interpreter"] = which
        names = [input_name(i) for i in model.inputs] if model is not None else []
        self.inputs = input_order(self.interpreter, self.interpreter.get_input_details(), names)
        self.outputs = keras_order(self.interpreter, self.interpreter.get_output_details())
        sequences = _sequence_inputs(model) if model is not None else [True] + [False] * (len(self.inputs) - 1)
        signatures = [list(d["shape_signature"]) for d in self.inputs]
        self.facts.batch = next((int(s[0]) for s in signatures if s and s[0] > 0), None)
        self.facts.length = next((int(s[1]) for s, seq in zip(signatures, sequences)
                                  if seq and len(s) > 1 and s[1] > 0), None)

    def _start(self):
        with warnings.catch_warnings(), quiet_stderr():
            warnings.simplefilter("ignore")
            self.interpreter = self._interpreter_class(model_content=self._content)
        self._shapes = None

    def reset_state(self):
        self._start()  # tensor indices are those of the same flatbuffer

    def predict(self, inputs):
        arrays = [np.asarray(x).astype(d["dtype"], copy=False) for d, x in zip(self.inputs, inputs)]
        shapes = [a.shape for a in arrays]
        if shapes != self._shapes:
            for d, a in zip(self.inputs, arrays):
                self.interpreter.resize_tensor_input(d["index"], a.shape)
            self.interpreter.allocate_tensors()
            self._shapes = shapes
        for d, a in zip(self.inputs, arrays):
            self.interpreter.set_tensor(d["index"], a)
        self.interpreter.invoke()
        return [np.array(self.interpreter.get_tensor(d["index"])) for d in self.outputs]
