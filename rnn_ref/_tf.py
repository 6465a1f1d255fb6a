"""Import Keras (TensorFlow backend) quietly.

TensorFlow's C++ side prints start-up notices to file descriptor 2 before
its log level applies (the oneDNN notice, CPU feature lines); they would
bury the output of the demo, the report and the checker. The notices are
silenced while TensorFlow loads and runs its first operation; warnings and
errors after that are printed as usual.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

_loaded = None


@contextmanager
def quiet_stderr():
    """Send what is written to file descriptor 2 to /dev/null for the duration."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. under some runners)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def keras_and_tf():
    """``(keras, tensorflow)``, imported once with the start-up notices silenced."""
    global _loaded
    if _loaded is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        with quiet_stderr():
            import keras  # noqa: PLC0415
            import tensorflow as tf  # noqa: PLC0415

            tf.get_logger().setLevel("ERROR")
            tf.constant(0.0) + 1.0  # the first kernel prints the oneDNN notice
        _loaded = (keras, tf)
    return _loaded


@contextmanager
def keras_floatx(dtype: str):
    """Keras's ``floatx`` and global dtype policy set to ``dtype`` inside the block, both as
    they were after it.

    Restoring ``floatx`` alone is not enough: Keras makes its global dtype policy from
    ``floatx`` the first time a layer asks for it and keeps it, so a float64 block that is a
    process's first to build a layer leaves every later layer float64, with ``floatx`` back at
    float32 (Keras 3.15.1: tests/test_keras_quirks.py)."""
    keras, _ = keras_and_tf()
    old, old_policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(old)
        keras.config.set_dtype_policy(old_policy)
