"""The command line: ``python -m dualgrad`` prints the literature's trace tables and
the gradient three ways; bad input is a one-line error with a non-zero exit status."""

import os
import subprocess
import sys

import pytest

from dualgrad.teach.cli import main


def run(*args, cwd=None):
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    return subprocess.run([sys.executable, "-m", "dualgrad", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120)


def test_default_is_baydin_table_2_and_3():
    res = run()
    assert res.returncode == 0, res.stderr
    out = res.stdout
    # primal trace in Baydin et al.'s order, with the tangent column for x1
    for line in ("v−1 = x1", "v0  = x2", "v1  = ln v−1", "v2  = v−1 × v0", "v3  = sin v0",
                 "v4  = v1 + v2", "v5  = v4 − v3"):
        assert line in out, line
    assert "ẋ1 = 1, ẋ2 = 0" in out
    rows = [ln for ln in out.splitlines() if ln.startswith("y ")]
    assert rows and "ẏ   = 5.5" in rows[0] and "1.716" in rows[0]
    assert "x̄1 = v̄−1 = 5.5" in out and "x̄2 = v̄0 = 1.716" in out
    assert "df/dx1  5.5                 5.5                 5.5" in out
    assert "agree" in out and "DISAGREE" not in out


def test_any_expression_and_names(tmp_path):
    dot = tmp_path / "g.dot"
    res = run("alpha*exp(-beta**2) + atan2(alpha, beta)", "--at", "alpha=1.5", "beta=-0.5",
              "--dot", str(dot), "--ascii")
    assert res.returncode == 0, res.stderr
    assert res.stdout.isascii()
    assert "bar_alpha" in res.stdout and "dalpha = 1, dbeta = 0" in res.stdout
    text = dot.read_text()
    assert text.startswith("digraph") and "->" in text


def test_injection_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    res = run(f"__import__('os').system('touch {marker}')", "--at", "x=1")
    assert res.returncode == 2
    assert not marker.exists()
    assert res.stderr.startswith("dualgrad: error:") and res.stderr.count("\n") == 1
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("args, fragment", [
    (["foo(x)", "--at", "x=1"], "unknown function 'foo'"),
    (["x*y", "--at", "x=1"], "no value for y"),
    (["log(x)", "--at", "x=-1"], "outside the domain of log"),
    (["sqrt(x)", "--at", "x=-4"], "outside the domain"),
    (["x +", "--at", "x=1"], "cannot parse"),
    (["x", "--at", "x=abc"], "must be a number"),
    (["x", "--at", "x=1", "z=2"], "z does not appear"),
    (["x.real", "--at", "x=1"], "attribute access"),
    (["lambda: 1"], "lambda"),
    (["x", "--at", "x"], "NAME=VALUE"),
    (["3 + 4"], "no variables"),
    # Python floats raise where numpy gives inf: the same one-line error, not a traceback
    (["x**x", "--at", "x=1000"], "x**x overflows (infinite) at x = 1000"),
    (["x**y", "--at", "x=10", "y=400"], "overflows"),
    (["x/y", "--at", "x=1", "y=0"], "x/y divides by zero at x = 1, y = 0"),
    (["x**x", "--at", "x=143"], "derivative of x**x is not finite"),
    (["x**x", "--at", "x=1000", "--optimise"], "overflows"),
])
def test_bad_input_is_one_line(args, fragment, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("dualgrad: error:") and fragment in err, err
    assert err.count("\n") == 1


def test_console_output_ascii_fallback(capsys):
    assert main(["x*x", "--at", "x=3", "--ascii"]) == 0
    out = capsys.readouterr().out
    assert "bar_x = bar_v0 = 6" in out and out.isascii()


def test_overflow_exits_2_as_a_process():
    """The issue's case end to end: exit status 2 (bad input), not 1 (a disagreement)."""
    res = run("x**x", "--at", "x=1000")
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("dualgrad: error:") and res.stderr.count("\n") == 1
    assert "Traceback" not in res.stderr and "OverflowError" not in res.stderr
    res = run("x**x", "--at", "x=143")  # finite, its derivative not: no numpy warning lines
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr


def test_arithmetic_errors_in_words():
    from dualgrad.teach.cli import _arithmetic
    assert _arithmetic(OverflowError(34, "Numerical result out of range")) == \
        "overflow (Numerical result out of range)"
    assert _arithmetic(ZeroDivisionError("float division by zero")) == \
        "division by zero (float division by zero)"
    assert _arithmetic(FloatingPointError()) == "FloatingPointError"
