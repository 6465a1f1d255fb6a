"""``onnx``: the model converted by tf2onnx (or a given ``.onnx``) run by ONNX Runtime.

The Keras model is traced as a ``tf.function`` with the input signature of the
model (batch and steps left free) and converted with ``tf2onnx.convert.from_function``;
a conversion that raises is a ``Declined`` runtime, with the converter's message.
``--artifact model.onnx`` skips the conversion. Inputs are cast to the dtype the graph
declares (a Keras ``Input`` without a dtype is float32 even when it feeds an Embedding);
dimensions the graph fixes are the runtime's fixed batch and length.

A stateful layer's states are variables of the Keras model, and the converted graph holds
no state: measured on the catalogue's ``stateful`` LSTM (tf2onnx 1.17, ONNX Runtime 1.32),
the first call matches Keras's from zero states and a second call on the same input returns
what the first did (to the bit), where Keras continues from the first call's states
(0.0073 apart). Every call starts from the states the Keras model had when it was converted
(measured: converted after some calls, the first call was 0.17 away from Keras's from zero
states), so ``convert`` zeroes them first. ``reset_state`` has nothing to zero; the check of
chunked calls then fails, as it should: the artifact does not compute what Keras computes.
"""

from __future__ import annotations

import importlib.util
import logging

import numpy as np

from rnn_ref._tf import keras_and_tf
from rnn_ref.runtimes.base import Declined, Runtime, first_lines, quiet_output
from rnn_ref.runtimes.worker import reset_keras_states

OPSET = 17
ORT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int32)": np.int32,
             "tensor(int64)": np.int64, "tensor(float16)": np.float16, "tensor(bool)": np.bool_}


def convert(model) -> bytes:
    """The ONNX bytes of a Keras model, through tf2onnx; ``Declined`` with its message when it fails.
    A stateful model's states are zeroed first (the graph starts every call from them)."""
    if importlib.util.find_spec("tf2onnx") is None:
        raise Declined("the onnx runtime converts with tf2onnx, which is not installed; pip install -e '.[runtimes]'")
    keras, tf = keras_and_tf()
    import tf2onnx  # noqa: PLC0415

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    reset_keras_states(model)
    spec = [tf.TensorSpec(i.shape, i.dtype, name=f"input_{k}") for k, i in enumerate(model.inputs)]

    @tf.function(input_signature=spec)
    def call(*xs):
        return model(xs[0] if len(xs) == 1 else list(xs), training=False)

    try:
        with quiet_output():
            proto, _ = tf2onnx.convert.from_function(call, input_signature=spec, opset=OPSET)
    except Exception as e:  # noqa: BLE001 - any converter failure declines the runtime
        raise Declined(f"tf2onnx {tf2onnx.__version__} could not convert the model: "
                       f"{type(e).__name__}: {first_lines(str(e))}") from e
    return proto.SerializeToString()


class OnnxRuntime(Runtime):
    name = "onnx"

    def __init__(self, model=None, artifact: str | None = None):
        super().__init__()
        if importlib.util.find_spec("onnxruntime") is None:
            raise Declined("the onnx runtime needs onnxruntime, which is not installed; pip install -e '.[runtimes]'")
        import onnxruntime as ort  # noqa: PLC0415

        if artifact is not None:
            source = str(artifact)
            self.facts.notes.append(f"the given artifact {artifact}")
        else:
            source = convert(model)
            import tf2onnx  # noqa: PLC0415

            self.facts.versions["tf2onnx"] = tf2onnx.__version__
            self.facts.notes.append(f"converted by tf2onnx (opset {OPSET}) from a tf.function with the model's "
                                    "input signature")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001
            raise Declined(f"ONNX Runtime could not load the graph: {first_lines(str(e))}") from e
        self.facts.versions["onnxruntime"] = ort.__version__
        self.inputs = self.session.get_inputs()
        if all(i.name.startswith("input_") and i.name[6:].isdigit() for i in self.inputs):
            self.inputs.sort(key=lambda i: int(i.name[6:]))  # a converted graph's: input_k is Keras's input k
        shape = self.inputs[0].shape
        fixed = [d if isinstance(d, int) and d > 0 else None for d in shape]
        self.facts.batch = fixed[0] if fixed else None
        self.facts.length = fixed[1] if len(fixed) > 1 else None

    def reset_state(self):
        """Nothing to zero: the graph holds no state (module docstring)."""

    def predict(self, inputs):
        feed = {i.name: np.asarray(x).astype(ORT_TYPES.get(i.type, np.float32), copy=False)
                for i, x in zip(self.inputs, inputs)}
        return [np.asarray(o) for o in self.session.run(None, feed)]
