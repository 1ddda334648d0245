"""Every tutorial runs top to bottom as a plain script, and is a valid jupytext notebook.

Each tutorial asserts its own key numbers, so a non-zero exit status is a failure. The
figures go to a temporary directory (``DUALGRAD_TUTORIAL_FIGURES``), not the source tree.
The CNN tutorial is the heavy one (tens of seconds); it is marked ``slow`` but runs by
default, CI included.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

import dualgrad

ROOT = pathlib.Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
FILES = sorted(p.name for p in TUTORIALS.glob("[0-9][0-9]_*.py"))
HEAVY = {"09_cnn_digits.py"}
TIMEOUT = {"09_cnn_digits.py": 600}  # seconds; generous, the CNN aims at well under 60 s


def _env(figures):
    env = dict(os.environ)
    env["MPLBACKEND"] = "Agg"
    env["DUALGRAD_TUTORIAL_FIGURES"] = str(figures)
    # the subprocess imports the same dualgrad as this test process
    package_parent = str(pathlib.Path(dualgrad.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH"))
                                        if p)
    return env


def test_tutorials_are_present():
    assert len(FILES) >= 9, FILES
    assert (TUTORIALS / "README.md").exists()
    listed = (TUTORIALS / "README.md").read_text()
    missing = [name for name in FILES if name not in listed]
    assert not missing, f"tutorials/README.md does not list {missing}"


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in FILES])
def test_tutorial_runs(name, tmp_path):
    """Run top to bottom (cell by cell, as a notebook: docs/run_tutorial.py), leaving the
    outputs in the docs build's cache, which then has nothing left to run."""
    proc = subprocess.run([sys.executable, str(ROOT / "docs" / "run_tutorial.py"), "--cache",
                           name], cwd=TUTORIALS, env=_env(tmp_path),
                          capture_output=True, text=True, timeout=TIMEOUT.get(name, 300))
    assert proc.returncode == 0, (
        f"{name} exited with status {proc.returncode}\n--- stdout (tail) ---\n"
        f"{proc.stdout[-3000:]}\n--- stderr (tail) ---\n{proc.stderr[-5000:]}")
    figures = sorted(p.name for p in tmp_path.glob("*.png"))
    assert figures, f"{name} saved no figure"
    prefix = name[:2]
    assert all(f.startswith(prefix) for f in figures), figures


@pytest.mark.parametrize("name", FILES)
def test_tutorial_is_a_percent_notebook(name):
    text = (TUTORIALS / name).read_text()
    assert "format_name: percent" in text
    markdown = re.findall(r"^# %% \[markdown\]$", text, re.M)
    code = re.findall(r"^# %%$", text, re.M)
    assert len(markdown) >= 3 and len(code) >= 3, (len(markdown), len(code))
    try:
        import jupytext
    except ImportError:  # jupytext is in the `tutorials` extra, not `test`
        return
    nb = jupytext.reads(text, fmt="py:percent")
    kinds = {cell.cell_type for cell in nb.cells}
    assert kinds == {"markdown", "code"}, kinds
