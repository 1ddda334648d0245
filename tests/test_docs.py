"""Docs are part of the feature: the README's code and every docstring example run."""

import doctest
import importlib
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dualgrad"
MODULES = sorted(  # every public module, and the subpackages (backend) by their __init__
    ".".join(p.relative_to(PACKAGE).parent.parts) if p.name == "__init__.py"
    else ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
    for p in PACKAGE.rglob("*.py")
    if (p.name == "__init__.py" and p.parent != PACKAGE) or not p.stem.startswith("_"))


def test_readme_python_blocks_run():
    path = ROOT / "README.md"
    text = path.read_text()
    blocks = list(re.finditer(r"```python\n(.*?)```", text, re.S))
    assert blocks, "the README should show runnable code"
    namespace = {}
    for m in blocks:  # compiled at its own lines of README.md: tracebacks (and dualgrad,
        line = text.count("\n", 0, m.start(1))  # reading a call's source) find them
        exec(compile("\n" * line + m.group(1), str(path), "exec"), namespace)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"dualgrad.{name}")
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failures == 0
