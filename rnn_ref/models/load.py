"""Models from files: a saved ``.keras`` model, or an ``.npz`` of weights and a config.

    >>> np_model = rnn_ref.load("model.keras")   # or "model.npz"
    >>> rnn_ref.save_npz(keras_model, "model.npz")  # or a NumpyModel

Loading never runs code from the file. The file type is recognised from
the content, not the name, and each is read by its own module:

* ``.keras`` (``rnn_ref.models.keras_file``): ``config.json`` is checked first, and
  a ``Lambda`` layer or any custom object (a class or function that is not
  part of Keras) is refused; then Keras loads it in safe mode and
  ``rnn_ref.from_keras`` converts it, refusing layers it does not support.
* ``.npz`` (``rnn_ref.npz``, which documents the format): read with
  ``allow_pickle=False``, so a pickled object array is refused.

Keras is imported only when a ``.keras`` file is read.
"""

from __future__ import annotations

import os
import zipfile

from rnn_ref.models.keras_file import load_keras
from rnn_ref.models.npz import load_npz, save_npz

__all__ = ["load", "save_npz"]


def load(path):
    """Load a model saved as ``.keras`` (Keras, safe mode) or ``.npz`` (``save_npz``) as a NumpyModel.

    Raises FileNotFoundError for a missing file, ValueError for a file that is
    neither format, holds code (a Lambda layer, a custom object, a pickle),
    or describes a model rnn_ref does not support, naming what and why.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"\x89HDF"):
        raise ValueError(
            f"{path}: a legacy HDF5 (.h5) Keras file; rnn_ref reads only the safe .keras format "
            "(load it in Keras and save it with model.save('model.keras')) or an .npz"
        )
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: neither a .keras model nor an .npz of weights (not a zip archive)")
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
    if "config.json" in names:
        return load_keras(path)
    if "config.npy" in names:
        return load_npz(path)
    if names and all(n.endswith(".npy") for n in names):
        raise ValueError(
            f"{path}: an .npz without a 'config' array; an rnn_ref .npz holds its layer list as JSON "
            "in 'config' (see rnn_ref.npz for the format)"
        )
    raise ValueError(
        f"{path}: a zip archive with neither config.json (a .keras model) nor a 'config' array "
        f"(an rnn_ref .npz); it holds {sorted(names)[:10]}"
    )
