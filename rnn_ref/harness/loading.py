"""A user's function from a target string: ``path/to/file.py:function`` or ``package.module:function``.

Loading runs the user's module (that is what checking it means); whatever it raises
on import is reported as a ``LoadError`` naming the file and the exception, and a
misspelt function name gets the closest name the module defines.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import pkgutil
import sys
from pathlib import Path

from rnn_ref.harness.guard import describe_exception


class LoadError(Exception):
    """The target cannot be loaded, or is not a callable."""


def load_function(target: str):
    """The callable named by ``path/to/file.py:function`` or ``package.module:function``
    (``function`` may be dotted, e.g. ``Class.method``)."""
    where, sep, attr = target.rpartition(":")
    if not sep or not where or not attr:
        raise LoadError(f"{target!r} does not name a function: expected PATH.py:FUNCTION or package.module:FUNCTION")
    if where.endswith(".py") or os.sep in where or "/" in where:
        module, origin = _load_file(where), where
    else:
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = pkgutil.resolve_name(where)
        except BaseException as e:  # noqa: BLE001  (a broken module is reported, not raised)
            if isinstance(e, KeyboardInterrupt):
                raise
            raise LoadError(f"cannot import module {where}: {_exc_line(e)}") from e
        origin = f"module {where}"
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            defined = sorted(n for n, v in vars(module).items()
                             if callable(v) and not n.startswith("_") and getattr(v, "__module__", None) == module.__name__)
            hint = f" (it defines: {', '.join(defined)})" if defined else ""
            close = difflib.get_close_matches(attr, defined, n=1)
            if close:
                hint = f"; did you mean {close[0]!r}?" + hint
            raise LoadError(f"{origin} has no function {attr!r}{hint}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise LoadError(f"{origin}:{attr} is a {type(obj).__name__}, not a function")
    return obj


def _load_file(path: str):
    p = Path(path)
    if not p.is_file():
        raise LoadError(f"no such file: {path}")
    name = "_rnn_ref_candidate_" + "".join(c if c.isalnum() else "_" for c in p.stem)
    spec = importlib.util.spec_from_file_location(name, p)
    if spec is None or spec.loader is None:
        raise LoadError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    folder = str(p.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # so that the file can import its neighbours
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as e:  # noqa: BLE001
        sys.modules.pop(name, None)
        if isinstance(e, KeyboardInterrupt):
            raise
        raise LoadError(f"cannot import {path}: {_exc_line(e)}") from e
    return module


def _exc_line(e: BaseException) -> str:
    if isinstance(e, SyntaxError):
        return f"SyntaxError: {e.msg} ({e.filename}, line {e.lineno})"
    return describe_exception(e)
