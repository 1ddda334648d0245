"""The package's structure: imports run downward only.

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
