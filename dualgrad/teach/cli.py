"""``python -m dualgrad``: how autodiff works, on any scalar expression.

    python -m dualgrad                                   # Baydin et al.'s example
    python -m dualgrad "log(x1) + x1*x2 - sin(x2)" --at x1=2 x2=5
    python -m dualgrad "x*exp(-y**2)" --at x=1 y=0.5 --dot graph.dot
    python -m dualgrad --optimise                        # + dg.jit's graph, raw and optimised

prints the Wengert list as the evaluation-trace tables of the literature (the primal
trace with one tangent column per input direction, then the adjoint trace), and the
gradient by forward mode, reverse mode and sympy side by side.  The expression is parsed
with ``ast`` against a whitelist (``dualgrad.teach.expression.parse``), never ``eval``-ed.
Bad input (a malformed expression, or a point outside its domain or where it overflows) is
a one-line error and exit status 2; a disagreement is exit status 1.
"""

import argparse
import math
import sys

import numpy as np

from ..compiler.api import jit
from ..transforms.derivatives import grad
from ..transforms.reverse import Tape
from . import symbolic
from .tracetable import adjoint_trace, evaluation_trace, to_ascii, to_dot

DEFAULT_EXPR = "log(x1) + x1*x2 - sin(x2)"
DEFAULT_AT = ("x1=2", "x2=5")


class UsageError(Exception):
    """Bad input on the command line: reported in one line, exit status 2."""


def parse_point(items, variables):
    """``["x1=2", "x2=5"]`` -> ``{"x1": 2.0, "x2": 5.0}`` in ``variables`` order.

    >>> parse_point(["b=1", "a=-0.5"], ("a", "b"))
    {'a': -0.5, 'b': 1.0}
    """
    given = {}
    for item in items:
        name, eq, text = item.partition("=")
        name = name.strip()
        if not eq or not name:
            raise UsageError(f"--at: expected NAME=VALUE, got {item!r}")
        if name in given:
            raise UsageError(f"--at: {name} is given twice")
        try:
            value = float(text)
        except ValueError:
            raise UsageError(f"--at: the value of {name} must be a number, got {text!r}") \
                from None
        if not math.isfinite(value):
            raise UsageError(f"--at: the value of {name} must be finite, got {text!r}")
        given[name] = value
    missing = [v for v in variables if v not in given]
    if missing:
        raise UsageError(f"--at: no value for {', '.join(missing)} "
                         f"(give one as {missing[0]}=VALUE)")
    extra = [n for n in given if n not in variables]
    if extra:
        raise UsageError(f"--at: {', '.join(extra)} does not appear in the expression "
                         f"(its variables: {', '.join(variables) or 'none'})")
    return {v: given[v] for v in variables}


def beside(left, right, gap=4):
    """Two blocks of text side by side."""
    a, b = left.splitlines(), right.splitlines()
    width = max((len(x) for x in a), default=0)
    n = max(len(a), len(b))
    a, b = a + [""] * (n - len(a)), b + [""] * (n - len(b))
    return "\n".join((x.ljust(width + gap) + y).rstrip() for x, y in zip(a, b))


def optimised(expr, point):
    """The gradient's graph (forward pass and reverse sweep, as dg.jit records it) before
    and after the optimiser's passes, side by side, with what each pass removed."""
    g = grad(lambda *xs: expr(*xs, check=False), argnums=tuple(range(len(point))))
    lo = jit(g).lower(*point.values())
    left = f"raw graph of the gradient ({len(lo.before)} ops)\n{lo.before}"
    right = f"optimised ({len(lo.after)} ops)\n{lo.after}"
    return beside(left, right) + "\n\n" + lo.summary_text()


def _arithmetic(err):
    """An ArithmeticError in words: its message, or its kind when it has none."""
    what = {ZeroDivisionError: "division by zero", OverflowError: "overflow"}.get(
        type(err), type(err).__name__)
    detail = err.args[-1] if err.args else ""
    return f"{what} ({detail})" if detail and str(detail) != what else what


def report(text, at_items, digits=3, dot=None, optimise=False):
    """The full report for ``text`` at ``at_items`` as a string; the second value says
    whether forward mode, reverse mode and sympy agree."""
    try:
        expr = symbolic.parse(text)
    except symbolic.ExpressionError as err:
        raise UsageError(f"cannot use the expression: {err}") from None
    if not expr.variables:
        raise UsageError(f"the expression {text!r} has no variables to differentiate by")
    point = parse_point(at_items, expr.variables)
    try:
        with np.errstate(all="ignore"):  # a non-finite value is reported below, in one line
            with Tape() as tape:
                xs = [tape.watch(v, name) for name, v in point.items()]
                y = expr(*xs)
            tape.gradient(y, xs)
            check = symbolic.compare(expr, point)
    except symbolic.DomainError as err:
        raise UsageError(str(err)) from None
    except ArithmeticError as err:  # a Python float overflowing in a derivative rule
        raise UsageError(f"{text} cannot be differentiated at "
                         f"{', '.join(at_items)}: {_arithmetic(err)}") from None
    parts = [f"f({', '.join(expr.variables)}) = {expr}",
             "at " + ", ".join(f"{k} = {v:g}" for k, v in point.items()), "",
             evaluation_trace(tape, y, digits=digits), "",
             adjoint_trace(tape, y, digits=digits), "", str(check)]
    if optimise:
        try:
            parts += ["", optimised(expr, point)]
        except ArithmeticError as err:
            raise UsageError(f"--optimise: the gradient's graph cannot be recorded at "
                             f"{', '.join(at_items)}: {_arithmetic(err)}") from None
    if dot is not None:
        try:
            with open(dot, "w", encoding="utf-8") as fh:
                fh.write(to_dot(tape, y, digits=digits, title=str(expr)))
        except OSError as err:
            raise UsageError(f"--dot: cannot write {dot!r}: {err.strerror}") from None
        parts.append(f"graph written to {dot} (render: dot -Tpng {dot} -o graph.png)")
    return "\n".join(parts), check.ok


def main(argv=None):
    """Entry point of ``python -m dualgrad`` and the ``dualgrad`` console script."""
    ap = argparse.ArgumentParser(
        prog="python -m dualgrad",
        description="Evaluation traces (primal, tangent, adjoint) and the gradient of a "
                    "scalar expression by forward mode, reverse mode and sympy.")
    ap.add_argument("expr", nargs="?", default=None,
                    help=f"the expression (default: {DEFAULT_EXPR!r} at x1=2 x2=5); "
                         f"functions: {', '.join(sorted(symbolic.FUNCTIONS))}")
    ap.add_argument("--at", nargs="+", default=None, metavar="NAME=VALUE",
                    help="the point: one NAME=VALUE per variable")
    ap.add_argument("--dot", metavar="FILE", help="also write the graph in Graphviz DOT")
    ap.add_argument("--digits", type=int, default=3, help="decimals in the tables")
    ap.add_argument("--optimise", "--optimize", action="store_true",
                    help="also print the gradient's graph as dg.jit records it, beside the "
                         "graph its optimiser leaves (CSE, folding, exact simplification)")
    ap.add_argument("--ascii", action="store_true",
                    help="plain ASCII (x-dot as dx, v-bar as bar_v)")
    args = ap.parse_args(argv)
    text = DEFAULT_EXPR if args.expr is None else args.expr
    at = args.at if args.at is not None else (DEFAULT_AT if args.expr is None else ())
    try:
        if not 0 <= args.digits <= 17:
            raise UsageError(f"--digits must be between 0 and 17, got {args.digits}")
        out, ok = report(text, at, digits=args.digits, dot=args.dot, optimise=args.optimise)
    except UsageError as err:
        print(f"dualgrad: error: {err}", file=sys.stderr)
        return 2
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    if args.ascii or "utf" not in encoding.lower():
        out = to_ascii(out)
    print(out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
