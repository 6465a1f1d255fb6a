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
