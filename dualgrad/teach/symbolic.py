"""sympy as referee: scalar expressions differentiated by dualgrad and by sympy, compared.

* ``from_sympy(expr, variables)`` turns a sympy expression into a numpy function by
  walking its tree (no ``lambdify``, no strings).
* ``symcheck(expr, at)`` differentiates by forward mode (``dg.jvp``), reverse mode
  (``dg.grad``) and sympy (``sympy.diff``), and raises ``AssertionError`` if they
  disagree; ``order=2`` also compares Hessians.  ``expr`` is a sympy expression, or text
  read by ``expression.parse`` (a whitelist, never ``eval``).

    >>> import dualgrad as dg
    >>> report = dg.symcheck("log(x1) + x1*x2 - sin(x2)", at={"x1": 2.0, "x2": 5.0})
    >>> report.reverse
    (5.5, 1.7163378145367738)
    >>> report.ok
    True
"""

import math
from dataclasses import dataclass, field

import numpy as np

from ..core.trace import unbox
from ..transforms.derivatives import grad, hessian, jacfwd, jacrev, jvp, value_and_grad
from .expression import (
    CONSTANTS,
    FUNCTIONS,
    DomainError,
    Expression,
    ExpressionError,
    UnknownNameError,
    _sympy,
    parse,
)

__all__ = ["CONSTANTS", "FUNCTIONS", "DomainError", "Expression", "ExpressionError",
           "SymReport", "UnknownNameError", "from_sympy", "parse", "symcheck"]

# ---------------------------------------------------------------------------
# sympy expression -> numpy function
# ---------------------------------------------------------------------------

def _sympy_table():
    sympy = _sympy()
    return {
        sympy.exp: np.exp, sympy.log: np.log, sympy.sin: np.sin, sympy.cos: np.cos,
        sympy.tan: np.tan, sympy.asin: np.arcsin, sympy.acos: np.arccos,
        sympy.atan: np.arctan, sympy.sinh: np.sinh, sympy.cosh: np.cosh,
        sympy.tanh: np.tanh, sympy.asinh: np.arcsinh, sympy.acosh: np.arccosh,
        sympy.atanh: np.arctanh, sympy.Abs: np.abs, sympy.atan2: np.arctan2,
        sympy.Max: np.maximum, sympy.Min: np.minimum,
        sympy.sec: lambda a: 1.0 / np.cos(a), sympy.csc: lambda a: 1.0 / np.sin(a),
        sympy.cot: lambda a: 1.0 / np.tan(a),
    }


def from_sympy(expr, variables):
    """A numpy function of ``variables`` (sympy symbols or their names) computing ``expr``,
    built by walking the sympy tree; dualgrad can differentiate it.

    >>> import sympy, dualgrad as dg
    >>> from dualgrad.teach.symbolic import from_sympy
    >>> x, y = sympy.symbols("x y")
    >>> f = from_sympy(sympy.log(x) + x * y - sympy.sin(y), [x, y])
    >>> dg.grad(f)(2.0, 5.0)
    np.float64(5.5)
    """
    sympy = _sympy()
    if not isinstance(expr, sympy.Basic):
        raise TypeError(f"from_sympy: expected a sympy expression, got {type(expr).__name__}")
    names = [v.name if isinstance(v, sympy.Symbol) else str(v) for v in variables]
    by_name = {s.name: s for s in expr.free_symbols}
    missing = sorted(set(by_name) - set(names))
    if missing:
        raise ValueError(f"from_sympy: the expression uses {', '.join(missing)}, which "
                         f"{'is' if len(missing) == 1 else 'are'} not among the variables "
                         f"{names}")
    table = _sympy_table()
    steps = []   # (expr, kind, payload, argument exprs)
    done = set()
    for sub in sympy.postorder_traversal(expr):
        if sub in done:
            continue
        done.add(sub)
        if isinstance(sub, sympy.Symbol):
            steps.append((sub, "var", names.index(sub.name), ()))
        elif not sub.free_symbols:
            v = complex(sub.evalf(30)) if sub.is_number else None
            if v is None or v.imag != 0 or not math.isfinite(v.real):
                raise ValueError(f"from_sympy: the constant {sub} is not a finite real number")
            steps.append((sub, "const", np.float64(v.real), ()))
        elif isinstance(sub, sympy.Add):
            steps.append((sub, "fold", np.add, sub.args))
        elif isinstance(sub, sympy.Mul):
            steps.append((sub, "fold", np.multiply, sub.args))
        elif isinstance(sub, sympy.Pow):
            base, ex = sub.args
            if ex == sympy.Rational(1, 2):
                steps.append((sub, "call", np.sqrt, (base,)))
            elif ex == -1:
                steps.append((sub, "call", lambda a: 1.0 / a, (base,)))
            elif ex == 2:
                steps.append((sub, "call", np.square, (base,)))
            else:
                steps.append((sub, "call", np.power, (base, ex)))
        elif sub.func in table:
            steps.append((sub, "fold" if sub.func in (sympy.Max, sympy.Min) else "call",
                          table[sub.func], sub.args))
        elif isinstance(sub, sympy.Tuple) or not isinstance(sub, sympy.Expr):
            continue
        else:
            raise TypeError(f"from_sympy: no numpy counterpart in dualgrad for the sympy "
                            f"function {sub.func.__name__} (in {sub})")

    def f(*xs):
        if len(xs) != len(names):
            raise TypeError(f"expected {len(names)} argument(s) {names}, got {len(xs)}")
        vals = {}
        with np.errstate(all="ignore"):
            for sub, kind, payload, args in steps:
                if kind == "var":
                    vals[sub] = xs[payload]
                elif kind == "const":
                    vals[sub] = payload
                elif kind == "fold":
                    acc = vals[args[0]]
                    for a in args[1:]:
                        acc = payload(acc, vals[a])
                    vals[sub] = acc
                else:
                    vals[sub] = payload(*[vals[a] for a in args])
        return vals[expr]

    f.__name__ = "from_sympy"
    f.__doc__ = f"numpy function of {names} computing {expr}"
    return f


# ---------------------------------------------------------------------------
# the referee
# ---------------------------------------------------------------------------

def sympy_value(expr, subs, what="the expression"):
    """Evaluate a sympy expression at ``subs`` with 30 digits; a real float or
    ``DomainError``."""
    v = expr.evalf(30, subs=subs)
    try:
        c = complex(v)
    except (TypeError, ValueError):
        raise DomainError(f"sympy: {what} is {v} at the point (outside the domain?)") from None
    if not (math.isfinite(c.real) and math.isfinite(c.imag)) or \
            abs(c.imag) > 1e-12 * (1.0 + abs(c.real)):
        raise DomainError(f"sympy: {what} is {v} at the point, not a finite real number "
                          "(outside the domain?)")
    return c.real


def _fnum(x):
    return repr(float(x))


@dataclass
class SymReport:
    """What ``symcheck`` compared: dualgrad's forward and reverse derivatives next to
    sympy's, at one point.  ``ok`` says whether all agree within ``atol + rtol*|sympy|``.

    Hessians (``order=2``) are computed three ways: ``hessian`` (forward-over-reverse,
    ``dg.hessian``), ``rev_rev`` (``dg.jacrev(dg.grad)``) and ``fwd_fwd``
    (``dg.jacfwd(dg.jacfwd)``).
    """

    expr: str
    variables: tuple
    point: tuple
    value_forward: float
    value_reverse: float
    value_sympy: float
    forward: tuple
    reverse: tuple
    sympy: tuple
    rtol: float
    atol: float
    hessian: np.ndarray = None
    rev_rev: np.ndarray = None
    fwd_fwd: np.ndarray = None
    hessian_sympy: np.ndarray = None
    worst: tuple = field(default=(0.0, None))  # (error / allowed, description)

    @property
    def ok(self):
        return self.worst[0] <= 1.0

    def __bool__(self):
        return self.ok

    def __str__(self):
        at = ", ".join(f"{n} = {v:g}" for n, v in zip(self.variables, self.point))
        rows = [("f", self.value_forward, self.value_reverse, self.value_sympy)]
        rows += [(f"df/d{n}", a, b, c) for n, a, b, c in
                 zip(self.variables, self.forward, self.reverse, self.sympy)]
        head = ("", "forward mode", "reverse mode", "sympy")
        lines = [f"symcheck: f = {self.expr}  at {at}"]
        lines += _columns([head] + [(r[0],) + tuple(_fnum(x) for x in r[1:]) for r in rows])
        if self.hessian_sympy is not None:
            n = len(self.variables)
            head = ("", "fwd-over-rev", "rev-over-rev", "fwd-over-fwd", "sympy")
            rows = [(f"d2f/d{self.variables[i]}d{self.variables[j]}",
                     _fnum(self.hessian[i, j]), _fnum(self.rev_rev[i, j]),
                     _fnum(self.fwd_fwd[i, j]), _fnum(self.hessian_sympy[i, j]))
                    for i in range(n) for j in range(n)]
            lines += [""] + _columns([head] + rows)
        ratio, where = self.worst
        tol = f"atol {self.atol:g}, rtol {self.rtol:g}"
        if self.ok:
            lines.append(f"forward mode, reverse mode and sympy agree ({tol})")
        else:
            lines.append(f"DISAGREE: {where} ({tol})")
        return "\n".join(lines)


def _columns(rows):
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def _as_expression(expr, names):
    """(numpy function, sympy expression, sympy symbols, text) for text or sympy input."""
    sympy = _sympy()
    if isinstance(expr, Expression):
        return expr, expr.to_sympy(), expr.symbols(), expr.text
    if isinstance(expr, str):
        e = parse(expr, variables=names)
        return e, e.to_sympy(), e.symbols(), e.text
    if isinstance(expr, sympy.Basic):
        syms = tuple(sympy.Symbol(n, real=True) for n in names)
        real = {s: sympy.Symbol(s.name, real=True) for s in expr.free_symbols}
        expr_r = expr.xreplace(real)
        return from_sympy(expr_r, syms), expr_r, syms, str(expr)
    raise TypeError(f"symcheck: expected expression text or a sympy expression, got "
                    f"{type(expr).__name__}")


def compare(expr, at, order=1, rtol=1e-9, atol=1e-12):
    """Like ``symcheck`` but returns the report without raising on disagreement."""
    sympy = _sympy()
    items = list(at.items()) if isinstance(at, dict) else list(at)
    names = [k.name if isinstance(k, sympy.Symbol) else str(k) for k, _ in items]
    if len(set(names)) != len(names):
        raise ValueError(f"symcheck: a variable is given twice in at={names}")
    point = tuple(float(v) for _, v in items)
    for n, v in zip(names, point):
        if not math.isfinite(v):
            raise ValueError(f"symcheck: {n} = {v} is not a finite number")
    f, sexpr, syms, text = _as_expression(expr, names)
    n = len(names)
    xs = tuple(np.float64(v) for v in point)
    subs = {s: sympy.Float(v, 30) for s, v in zip(syms, point)}

    def finite(x, what):
        x = np.asarray(unbox(x), dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise DomainError(f"{what} of {text} is not finite at "
                              + ", ".join(f"{k} = {v:g}" for k, v in zip(names, point))
                              + " (outside the domain where it is differentiable?)")
        return x

    fwd, value_fwd = [], float(finite(f(*xs), "the value"))  # names a bad subexpression
    value_sym = sympy_value(sexpr, subs)
    for k in range(n):
        tan = tuple(np.float64(1.0 if j == k else 0.0) for j in range(n))
        y, t = jvp(f, xs, tan)
        value_fwd = float(finite(y, "the value"))
        fwd.append(float(finite(t, "the forward-mode derivative")))
    if n:
        value_rev, g = value_and_grad(f, argnums=tuple(range(n)))(*xs)
        rev = [float(finite(gi, "the reverse-mode derivative")) for gi in g]
        value_rev = float(value_rev)
    else:
        value_rev, rev = float(f()), []
    d1 = [sympy.diff(sexpr, s) for s in syms]
    sym = [sympy_value(d, subs, f"d/d{nm}") for d, nm in zip(d1, names)]
    report = SymReport(text, tuple(names), point, value_fwd, value_rev, value_sym,
                       tuple(fwd), tuple(rev), tuple(sym), rtol, atol)
    checks = [("the value", value_fwd, value_sym, "forward"),
              ("the value", value_rev, value_sym, "reverse")]
    for nm, a, b, c in zip(names, fwd, rev, sym):
        checks += [(f"df/d{nm}", a, c, "forward mode"), (f"df/d{nm}", b, c, "reverse mode")]
    if order >= 2 and n:
        def fv(x):
            return f(*[x[i] for i in range(n)])
        x0 = np.array(point, dtype=np.float64)
        report.hessian = finite(hessian(fv)(x0), "the Hessian (fwd-over-rev)")
        report.rev_rev = finite(jacrev(grad(fv))(x0), "the Hessian (rev-over-rev)")
        report.fwd_fwd = finite(jacfwd(jacfwd(fv))(x0), "the Hessian (fwd-over-fwd)")
        H = np.array([[sympy_value(sympy.diff(d1[i], syms[j]), subs,
                                   f"d2/d{names[i]}d{names[j]}") for j in range(n)]
                      for i in range(n)])
        report.hessian_sympy = H
        for i in range(n):
            for j in range(n):
                what = f"d2f/d{names[i]}d{names[j]}"
                checks += [(what, report.hessian[i, j], H[i, j], "fwd-over-rev"),
                           (what, report.rev_rev[i, j], H[i, j], "rev-over-rev"),
                           (what, report.fwd_fwd[i, j], H[i, j], "fwd-over-fwd")]
    elif order > 2:
        raise ValueError("symcheck: order must be 1 or 2")
    worst = (0.0, None)
    for what, a, b, mode in checks:
        ratio = abs(float(a) - float(b)) / (atol + rtol * abs(float(b)))
        if ratio > worst[0]:
            worst = (ratio, f"{what}: {mode} {float(a)!r}, sympy {float(b)!r}, "
                            f"error {abs(float(a) - float(b)):.3g}")
    report.worst = worst
    return report


def symcheck(expr, at, order=1, rtol=1e-9, atol=1e-12):
    """Differentiate ``expr`` at the point ``at`` by forward mode, reverse mode and
    sympy; return a ``SymReport`` (print it to see the values side by side), or raise
    ``AssertionError`` if they disagree by more than ``atol + rtol*|sympy value|``.

    ``expr``: expression text (parsed safely, see ``parse``) or a sympy expression.
    ``at``: ``{name: value}`` for every variable, in argument order.  ``order=2`` also
    compares the Hessian by ``dg.hessian``, ``dg.jacrev(dg.grad)`` and
    ``dg.jacfwd(dg.jacfwd)`` with sympy's second derivatives.  A point outside the
    domain raises ``DomainError``.

    >>> import dualgrad as dg
    >>> print(dg.symcheck("log(x1) + x1*x2 - sin(x2)", at={"x1": 2.0, "x2": 5.0}))
    symcheck: f = log(x1) + x1*x2 - sin(x2)  at x1 = 2, x2 = 5
            forward mode        reverse mode        sympy
    f       11.652071455223084  11.652071455223084  11.652071455223084
    df/dx1  5.5                 5.5                 5.5
    df/dx2  1.7163378145367738  1.7163378145367738  1.7163378145367738
    forward mode, reverse mode and sympy agree (atol 1e-12, rtol 1e-09)
    >>> dg.symcheck("sqrt(x) * y", at={"x": 4.0, "y": -1.0}, order=2).hessian_sympy
    array([[0.03125, 0.25   ],
           [0.25   , 0.     ]])
    """
    report = compare(expr, at, order, rtol, atol)
    if not report.ok:
        raise AssertionError("symcheck: dualgrad and sympy disagree\n" + str(report))
    return report
