"""Docs are part of the feature: every python block of the README and of the user guide
(docs/guide/*.md, docs/design.md) runs, and every docstring example runs."""

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

# --- the README's and the guide's code blocks -------------------------------------------

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks(path):
    text = path.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start(1)), m.group(1)) for m in BLOCK.finditer(text)]


BLOCKS = [(p, i) for p in PAGES for i in range(len(_blocks(p)))]
_ran = {}  # page -> (namespace, blocks run, the block that raised or None)


def test_readme_and_guide_have_code():
    assert _blocks(ROOT / "README.md"), "the README should show runnable code"
    assert any(_blocks(p) for p in PAGES[1:]), "the guide pages should show runnable code"


def test_readme_is_the_front_door():
    """The README links every page of the guide (docs/guide/*.md, docs/design.md), and
    keeps the Quickstart's two commands, which .ci/run runs verbatim."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\((docs/[^)#\s]+\.md)", text))
    pages = {p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert pages and pages <= linked, f"guide pages the README does not link: {pages - linked}"
    run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for command in ('python3 -m venv .venv && .venv/bin/pip install -q -e ".[test]" && '
                    ".venv/bin/python -m pytest", ".venv/bin/python -m dualgrad"):
        assert command in text and command in run, command


@pytest.mark.parametrize("path,index", BLOCKS,
                         ids=[f"{p.relative_to(ROOT)}:{i + 1}" for p, i in BLOCKS])
def test_python_block_runs(path, index):
    """A page's python blocks run top to bottom in one namespace (as a reader pastes
    them), each its own test: the blocks above it run first, once per page."""
    blocks = _blocks(path)
    namespace, done, failed = _ran.setdefault(path, ({}, 0, None))
    if failed is not None and failed < index:
        pytest.fail(f"block {failed + 1} of {path.name}, above this one, raised")
    for i in range(done, index + 1):
        line, code = blocks[i]  # compiled at its own lines of the file: tracebacks (and
        try:                    # dualgrad, reading a call's source) find them
            exec(compile("\n" * line + code, str(path), "exec"), namespace)
        except BaseException:
            _ran[path] = (namespace, i, i)
            raise
        _ran[path] = (namespace, i + 1, None)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"dualgrad.{name}")
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failures == 0
