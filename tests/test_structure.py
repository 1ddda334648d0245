"""The package's structure: layers as folders, imports run downward only.

Each module imports only modules below it, at module level, so the import graph has no
cycle and every module can be imported on its own.  (A lazy import inside a function
would hide a cycle; the only ones allowed are where an optional dependency demands it,
and their line says so: ``# optional: <why>``.)
"""

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dualgrad"


def _modules():
    mods = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        mods[".".join(["dualgrad", *parts])] = path
    return mods


MODULES = _modules()


def _own_imports(path, module):
    """(allowed where it is?, imported dualgrad module) for each import of the package's
    own: at module level, or inside a function with a comment saying which optional
    dependency keeps it there (``# optional: ...`` on its line)."""
    text = path.read_text()
    lines = text.splitlines()
    tree = ast.parse(text)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    top = set(map(id, tree.body))
    out = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [target] + [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        ok = id(node) in top or "# optional:" in lines[node.lineno - 1]
        for name in names:
            if name in MODULES and name != module:
                out.append((ok, name))
    return out


def test_no_function_level_imports_of_the_package():
    lazy = [(m, target) for m, path in MODULES.items()
            for at_top, target in _own_imports(path, m) if not at_top]
    assert not lazy, f"imports inside functions (move them to module level): {lazy}"


def test_import_graph_has_no_cycle():
    graph = {m: {t for _, t in _own_imports(p, m)} for m, p in MODULES.items()}
    graph = {m: {t for t in ts if not m.startswith(t + ".") and t != "dualgrad"}
             for m, ts in graph.items()}  # a submodule may import its own package's names
    state = {}

    def visit(m, path):
        if state.get(m) == "done":
            return
        if state.get(m) == "open":
            cycle = path[path.index(m):] + [m]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        state[m] = "open"
        for t in sorted(graph[m]):
            visit(t, path + [m])
        state[m] = "done"

    for m in graph:
        visit(m, [])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_module_imports_alone(module):
    res = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr


# -- the layers as folders ---------------------------------------------------------------
# Each folder of dualgrad/ is a layer and imports only the layers before it in LAYERS
# (README, "How it is built").  kernels/ is installed as dualgrad.kernels and imports
# nothing of dualgrad; the top-level modules (__init__, __main__, scipy_special) sit above all.

LAYERS = ("kernels", "core", "backend", "rules", "numpy", "compiler", "transforms", "scipy",
          "teach")
TOP = len(LAYERS)


def _layer(module):
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS and (PACKAGE / parts[1]).is_dir():
        return LAYERS.index(parts[1])
    if len(parts) > 1 and parts[1] == "kernels":
        return 0
    return TOP  # dualgrad/__init__.py and the other top-level modules


def test_every_module_is_in_a_layer_folder():
    loose = sorted(m for m, p in MODULES.items() if _layer(m) == TOP
                   and p.name not in ("__init__.py", "__main__.py", "scipy_special.py"))
    assert not loose, f"modules outside the layer folders: {loose}"
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"} \
        == set(LAYERS) - {"kernels"}


def test_layers_import_only_the_layers_below():
    up = [(m, t) for m, path in MODULES.items() for _, t in _own_imports(path, m)
          if t != "dualgrad" and _layer(t) > _layer(m)]
    assert not up, "imports of a higher layer (move the code, or the import): " + ", ".join(
        f"{m} -> {t}" for m, t in up)


def _imported_private_names(path, module):
    """(folder of the importer, imported module, name) for each private name (``_x``, not
    dunder) this module takes from another module of the package, by ``from m import _x``
    or as ``alias._x`` where ``alias`` is an imported module."""
    text = path.read_text()
    tree = ast.parse(text)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    aliases, out = {}, []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package.split(".")
            target = ".".join(base[:len(base) - (node.level - 1)]
                              + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if not target.startswith("dualgrad"):
            continue
        for a in node.names:
            if f"{target}.{a.name}" in MODULES:
                aliases[a.asname or a.name] = f"{target}.{a.name}"
            elif a.name.startswith("_") and not a.name.startswith("__"):
                out.append((target, a.name))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in aliases and node.attr.startswith("_") \
                and not node.attr.startswith("__"):
            out.append((aliases[node.value.id], node.attr))
    return out


def _folder(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else module


def test_no_private_name_crosses_a_folder():
    crossing = sorted({f"{m} uses {t}.{name}" for m, p in MODULES.items()
                       for t, name in _imported_private_names(p, m)
                       if _folder(t) != _folder(m)})
    assert not crossing, "private names used from another folder (make them public, or " \
        "move the code): " + "; ".join(crossing)


def test_no_module_is_too_long():
    """~700 lines at most, unless the module is one idea and its docstring says so."""
    long = [f"{m} ({n} lines)" for m, p in MODULES.items()
            if (n := len(p.read_text().splitlines())) > 720
            and "one idea" not in (ast.get_docstring(ast.parse(p.read_text())) or "")]
    assert not long, f"split these by concept: {long}"
