"""The package's imports point one way: no module of rnn_ref imports, directly or through
others, a module that imports it back, and no import inside a function hides such a circle.

``import_graph`` reads every module of the package with ``ast`` (no module is imported, so
TensorFlow and hypothesis stay out) and takes every ``import`` and ``from ... import`` it
finds, at the top or inside a function, relative ones resolved against the module's package.
``from package import name`` counts as importing ``package.name`` when that is a module of
the package, and as importing ``package`` (its ``__init__``) otherwise. A package's
``__init__`` re-exporting its modules is the one kind of edge left out: the package is
their namespace, not a layer above or below them (``rnn_ref/__init__.py`` gathers the public
API from every layer).

``circles`` returns the strongly connected components of more than one module (Tarjan's
algorithm), each a circle of imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rnn_ref

ROOT = Path(rnn_ref.__file__).resolve().parent


def module_names(root: Path = ROOT, package: str = "rnn_ref") -> dict[str, Path]:
    """Every module of the package under ``root``: dotted name -> file."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join([package, *parts])] = path
    return names


def imports_of(name: str, path: Path, modules) -> set[str]:
    """The package's modules that module ``name`` (its file ``path``) imports, anywhere in it."""
    is_package = path.name == "__init__.py"
    here = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import rnn_ref.harness.x.y` -> the deepest module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    if is_package:  # a package's __init__ gathering its own modules is its namespace, not a layer
        found = {t for t in found if not t.startswith(name + ".")}
    return found


def import_graph(root: Path = ROOT, package: str = "rnn_ref") -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    modules = module_names(root, package)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_no_import_circle_in_the_package():
    found = circles(import_graph())
    assert not found, "import circles (each a set of modules that import one another):\n" + "\n".join(
        "  " + " <-> ".join(c) for c in found)


# -- the checker catches what it must -------------------------------------------------------


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for rel, text in {"__init__.py": "", **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.mark.parametrize("files, expected", [
    # a circle through a top-level import and one hidden inside a function
    ({"low.py": "def f():\n    from .high import g\n    return g\n", "high.py": "from .low import f\n"},
     [["pkg.high", "pkg.low"]]),
    # three modules round, with `from package import module` and an absolute import
    ({"a.py": "from . import b\n", "b.py": "import pkg.c\n", "c.py": "from pkg.a import x\n"},
     [["pkg.a", "pkg.b", "pkg.c"]]),
    # a subpackage's module importing its parent's module, which imports it back (two dots)
    ({"sub/__init__.py": "", "sub/m.py": "from ..top import t\n", "top.py": "from .sub.m import n\n"},
     [["pkg.sub.m", "pkg.top"]]),
    # one way only: no circle
    ({"low.py": "X = 1\n", "high.py": "from .low import X\n\ndef f():\n    from . import low\n"}, []),
    # the package's __init__ re-exporting its modules is no circle
    ({"__init__.py": "from .low import X\n", "low.py": "import pkg\nX = 1\n"}, []),
])
def test_the_checker_finds_circles_hidden_or_not(tmp_path, files, expected):
    assert circles(import_graph(_package(tmp_path, files), "pkg")) == expected


# -- the folders are the layers, and the imports point down ---------------------------------

#: The subpackages (and top-level modules) of rnn_ref, lowest first: a module may import from
#: its own folder and from folders of a lower rank only. ``_tf`` loads Keras and imports
#: nothing of rnn_ref; ``rnn_ref`` itself (``__init__``) gathers the public API from the
#: reference, the backward pass and the models, for the layers above to use.
RANKS = {
    "_tf": 0,
    "layers": 1,        # the reference: pure functions, cells, the time loop
    "backward": 2,      # their vjps
    "models": 3,        # NumPy layers and models, the layer registry, files, model gradients
    "rnn_ref": 4,       # the public API
    "training": 5,      # optimizers and fit, on the models
    "implementations": 5,  # mutants and correct ports, the harness's subjects
    "harness": 5,       # cases, oracle, tolerance, properties, candidate adaptation
    "runtimes": 5,      # a saved model run elsewhere (other backends, ONNX Runtime, LiteRT) as predict(inputs)
    "commands": 6,      # the command line
    "__main__": 7,
}


def folder_of(module: str) -> str:
    """``rnn_ref.models.npz`` -> ``models``; ``rnn_ref`` -> ``rnn_ref``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def upward_imports(graph: dict[str, set[str]], ranks: dict[str, int] = RANKS) -> list[tuple[str, str]]:
    """Every import of a module by a module of a lower folder (or of a folder with no rank)."""
    found = []
    for module, targets in graph.items():
        for target in targets:
            a, b = folder_of(module), folder_of(target)
            if a != b and (a not in ranks or b not in ranks or ranks[b] >= ranks[a]):
                found.append((module, target))
    return sorted(found)


def test_the_folders_are_layers_and_imports_point_down():
    found = upward_imports(import_graph())
    assert not found, "imports that do not point down (RANKS in this file):\n" + "\n".join(
        f"  {a} -> {b}" for a, b in found)


@pytest.mark.parametrize("files, expected", [
    # the reference reaching up into the models, inside a function
    ({"layers/__init__.py": "", "layers/cell.py": "def f():\n    from pkg.models import m\n",
      "models/__init__.py": "", "models/m.py": "from pkg.layers import cell\n"},
     [("pkg.layers.cell", "pkg.models.m")]),
    # two folders of the same rank importing each other's modules
    ({"harness/__init__.py": "", "harness/h.py": "from pkg.implementations.i import x\n",
      "implementations/__init__.py": "", "implementations/i.py": "x = 1\n"},
     [("pkg.harness.h", "pkg.implementations.i")]),
    # a new folder nobody ranked
    ({"extra/__init__.py": "", "extra/e.py": "from pkg.layers import cell\n",
      "layers/__init__.py": "", "layers/cell.py": "x = 1\n"},
     [("pkg.extra.e", "pkg.layers.cell")]),
    # downward only: nothing to report
    ({"layers/__init__.py": "", "layers/cell.py": "x = 1\n",
      "models/__init__.py": "", "models/m.py": "from pkg.layers.cell import x\n"}, []),
])
def test_the_layer_checker_finds_upward_imports(tmp_path, files, expected):
    assert upward_imports(import_graph(_package(tmp_path, files), "pkg")) == expected


# -- no module past a reader's patience -----------------------------------------------------

#: The most lines a module of the package may have.
MAX_LINES = 500


def long_modules(root: Path = ROOT, limit: int = MAX_LINES) -> list[tuple[str, int]]:
    """The modules under ``root`` with more than ``limit`` lines, with their counts."""
    counts = ((str(p.relative_to(root)), len(p.read_text().splitlines())) for p in sorted(root.rglob("*.py")))
    return [(name, n) for name, n in counts if n > limit]


def test_no_module_over_500_lines():
    assert long_modules() == [], f"split these by what they do (at most {MAX_LINES} lines each)"


def test_the_size_check_finds_a_long_module(tmp_path):
    root = _package(tmp_path, {"short.py": "x = 1\n" * MAX_LINES, "sub/long.py": "x = 1\n" * (MAX_LINES + 1)})
    assert long_modules(root) == [("sub/long.py", MAX_LINES + 1)]
