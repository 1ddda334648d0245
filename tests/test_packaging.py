"""The wheel installs ``dualgrad`` with ``dualgrad.kernels`` inside, and nothing named
plain ``kernels`` (``kernels/`` is mapped by setuptools' package-dir)."""

import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    src = out / "src"  # build from a copy: setuptools writes build/ and egg-info in place
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "*.egg-info", "__pycache__", "results", "figures"))
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                          str(out), str(src)], capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        pytest.fail(f"pip wheel failed:\n{res.stdout}\n{res.stderr}")
    (wheel,) = out.glob("dualgrad-*.whl")
    return zipfile.ZipFile(wheel).namelist()


def test_every_source_file_is_in_the_wheel(wheel_names):
    """Each module of the source tree (every layer folder, and kernels/ as
    dualgrad/kernels/) is installed: a folder missing from pyproject's package list fails."""
    sources = [f"dualgrad/{p.relative_to(ROOT / 'dualgrad').as_posix()}"
               for p in (ROOT / "dualgrad").rglob("*.py")]
    sources += [f"dualgrad/kernels/{p.relative_to(ROOT / 'kernels').as_posix()}"
                for p in (ROOT / "kernels").rglob("*.py")]
    assert len(sources) > 40
    missing = sorted(set(sources) - set(wheel_names))
    assert not missing, f"not in the wheel: {missing}"


def test_nothing_else_is_installed(wheel_names):
    tops = {n.split("/")[0] for n in wheel_names}
    assert "kernels" not in tops
    assert {t for t in tops if not t.endswith(".dist-info")} == {"dualgrad"}


def test_installed_package_imports_the_subpackage(tmp_path):
    """From a neutral directory, as a user would: dualgrad.kernels imports, kernels not."""
    env = {"PATH": "/usr/bin:/bin"}
    probe = subprocess.run([sys.executable, "-c", "import dualgrad"], cwd=tmp_path, env=env,
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("dualgrad is not installed in this interpreter (a plain checkout)")
    code = ("import dualgrad.kernels, importlib.util; "
            "assert importlib.util.find_spec('kernels') is None, 'plain kernels installed'")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
