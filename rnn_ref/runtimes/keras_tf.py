"""``keras``: the model in this process's Keras on TensorFlow, the line every other runtime is
measured against (a check of it is a check of the checker)."""

from __future__ import annotations

import numpy as np

from rnn_ref._tf import keras_and_tf
from rnn_ref.runtimes.base import Runtime
from rnn_ref.runtimes.worker import reset_keras_states


class KerasTF(Runtime):
    name = "keras"

    def __init__(self, model_path: str, model=None):
        super().__init__()
        keras, tf = keras_and_tf()
        self.model = model if model is not None else keras.saving.load_model(model_path, safe_mode=True,
                                                                             compile=False)
        self.facts.versions = {"keras": keras.__version__, "tensorflow": tf.__version__}
        self.facts.notes.append("Keras on TensorFlow in this process")

    def predict(self, inputs):
        out = self.model.predict_on_batch(inputs[0] if len(inputs) == 1 else list(inputs))
        return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]

    def reset_state(self):
        reset_keras_states(self.model)
