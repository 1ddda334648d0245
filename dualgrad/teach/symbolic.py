"""sympy as referee: scalar expressions differentiated by dualgrad and by sympy, compared.

Three pieces:

* ``parse(text)`` reads an expression such as ``"log(x1) + x1*x2 - sin(x2)"`` safely:
  Python's ``ast`` (never ``eval``, never ``sympify``) checked against a whitelist of
  operators (``+ - * / **``, unary ``-``/``+``), numbers, the constants ``pi`` and ``e``,
  the functions in ``FUNCTIONS`` and the variable names.  The result is an
  ``Expression``: a DAG of operations (equal subexpressions are one node) that is a
  numpy function dualgrad can differentiate, and that also builds the matching sympy
  expression from the same tree.
* ``from_sympy(expr, variables)`` turns a sympy expression into a numpy function by
  walking its tree (no ``lambdify``, no strings).
* ``symcheck(expr, at)`` differentiates by forward mode (``dg.jvp``), reverse mode
  (``dg.grad``) and sympy (``sympy.diff``), and raises ``AssertionError`` if they
  disagree; ``order=2`` also compares Hessians.

    >>> import dualgrad as dg
    >>> report = dg.symcheck("log(x1) + x1*x2 - sin(x2)", at={"x1": 2.0, "x2": 5.0})
    >>> report.reverse
    (5.5, 1.7163378145367738)
    >>> report.ok
    True
"""

import ast
import math
from dataclasses import dataclass, field

import numpy as np

from ..core.trace import unbox
from ..transforms.derivatives import grad, hessian, jacfwd, jacrev, jvp, value_and_grad

__all__ = ["CONSTANTS", "FUNCTIONS", "DomainError", "Expression", "ExpressionError",
           "SymReport", "UnknownNameError", "from_sympy", "parse", "symcheck"]

MAX_LENGTH = 10_000  # characters of expression text
_BIG_EXPONENT = 1000  # constant ** constant beyond this is given to sympy as a float


class ExpressionError(ValueError):
    """The expression text is not an expression dualgrad accepts."""


class UnknownNameError(ExpressionError):
    """A name in the expression is neither a variable, a function nor a constant."""

    def __init__(self, message, name):
        super().__init__(message)
        self.name = name


class DomainError(ValueError):
    """The expression (or its derivative) is not finite at the point: outside the domain."""


# ---------------------------------------------------------------------------
# the whitelist: name -> (numpy function, sympy builder, number of arguments)
# ---------------------------------------------------------------------------

def _sympy():
    import sympy
    return sympy


def _s(name):
    return lambda *a: getattr(_sympy(), name)(*a)


FUNCTIONS = {
    "log": (np.log, _s("log"), 1),
    "ln": (np.log, _s("log"), 1),
    "log2": (np.log2, lambda a: _sympy().log(a, 2), 1),
    "log10": (np.log10, lambda a: _sympy().log(a, 10), 1),
    "log1p": (np.log1p, lambda a: _sympy().log(1 + a), 1),
    "exp": (np.exp, _s("exp"), 1),
    "exp2": (np.exp2, lambda a: 2 ** a, 1),
    "expm1": (np.expm1, lambda a: _sympy().exp(a) - 1, 1),
    "sqrt": (np.sqrt, _s("sqrt"), 1),
    "cbrt": (np.cbrt, lambda a: _sympy().real_root(a, 3), 1),
    "square": (np.square, lambda a: a ** 2, 1),
    "abs": (np.abs, _s("Abs"), 1),
    "sin": (np.sin, _s("sin"), 1),
    "cos": (np.cos, _s("cos"), 1),
    "tan": (np.tan, _s("tan"), 1),
    "asin": (np.arcsin, _s("asin"), 1),
    "acos": (np.arccos, _s("acos"), 1),
    "atan": (np.arctan, _s("atan"), 1),
    "arcsin": (np.arcsin, _s("asin"), 1),
    "arccos": (np.arccos, _s("acos"), 1),
    "arctan": (np.arctan, _s("atan"), 1),
    "sinh": (np.sinh, _s("sinh"), 1),
    "cosh": (np.cosh, _s("cosh"), 1),
    "tanh": (np.tanh, _s("tanh"), 1),
    "asinh": (np.arcsinh, _s("asinh"), 1),
    "acosh": (np.arccosh, _s("acosh"), 1),
    "atanh": (np.arctanh, _s("atanh"), 1),
    "arcsinh": (np.arcsinh, _s("asinh"), 1),
    "arccosh": (np.arccosh, _s("acosh"), 1),
    "arctanh": (np.arctanh, _s("atanh"), 1),
    "atan2": (np.arctan2, _s("atan2"), 2),
    "arctan2": (np.arctan2, _s("atan2"), 2),
    "hypot": (np.hypot, lambda a, b: _sympy().sqrt(a ** 2 + b ** 2), 2),
    "pow": (np.power, lambda a, b: a ** b, 2),
}

CONSTANTS = {"pi": (math.pi, lambda: _sympy().pi), "e": (math.e, lambda: _sympy().E)}

# operators: name -> (numpy function, sympy builder, text, precedence)
_OPERATORS = {
    "add": (np.add, lambda a, b: a + b, "+", 1),
    "sub": (np.subtract, lambda a, b: a - b, "-", 1),
    "mul": (np.multiply, lambda a, b: a * b, "*", 2),
    "div": (np.true_divide, lambda a, b: a / b, "/", 2),
    "neg": (np.negative, lambda a: -a, "-", 3),
    "pow": (np.power, lambda a, b: a ** b, "**", 4),
}
_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow"}
_HINTS = {ast.BitXor: "use ** for powers, not ^", ast.FloorDiv: "// is not differentiable",
          ast.Mod: "% is not differentiable", ast.MatMult: "@ needs arrays; use *"}


# ---------------------------------------------------------------------------
# the expression DAG
# ---------------------------------------------------------------------------

class Term:
    """One node of an expression DAG.

    ``op`` is ``"var"`` (``name`` is the variable), ``"num"`` (``literal`` is the number
    as written), ``"const"`` (``name`` is ``pi`` or ``e``), an operator (``add``, ``sub``,
    ``mul``, ``div``, ``pow``, ``neg``) or a function name.  ``height`` is 0 for
    variables and constants and 1 + the largest height of the arguments otherwise;
    ``value`` is the float value of a term without variables (``None`` otherwise).
    """

    __slots__ = ("op", "args", "name", "literal", "value", "height", "serial")

    def __init__(self, op, args=(), name=None, literal=None, value=None, serial=0):
        self.op, self.args, self.name, self.literal = op, tuple(args), name, literal
        self.value = value
        self.serial = serial
        self.height = 0 if not self.args or value is not None else \
            1 + max(a.height for a in self.args)

    @property
    def is_constant(self):
        return self.value is not None

    def __repr__(self):
        return f"Term({self})"

    def __str__(self):
        return _text(self)


def _precedence(t):
    if t.op in _OPERATORS:
        return _OPERATORS[t.op][3]
    return 5  # atoms and calls


def _text(t):
    """The term as expression text, with the parentheses its structure needs."""
    if t.op in ("var", "const"):
        return t.name
    if t.op == "num":
        return repr(t.literal)
    if t.op == "neg":
        a = t.args[0]
        return f"-({a})" if _precedence(a) < 3 else f"-{a}"
    if t.op in _OPERATORS:
        sym, prec = _OPERATORS[t.op][2], _OPERATORS[t.op][3]
        a, b = t.args
        right_assoc = t.op == "pow"
        ta = f"({a})" if _precedence(a) < prec + right_assoc else str(a)
        tb = f"({b})" if _precedence(b) < prec + (not right_assoc) else str(b)
        return f"{ta} {sym} {tb}" if prec == 1 else f"{ta}{sym}{tb}"
    return f"{t.op}({', '.join(str(a) for a in t.args)})"


def _fold(op, vals):
    """Float value of an operation on constants (numpy semantics: nan/inf, no exceptions)."""
    fn = _OPERATORS[op][0] if op in _OPERATORS else FUNCTIONS[op][0]
    with np.errstate(all="ignore"):
        return np.float64(fn(*[np.float64(v) for v in vals]))


class Expression:
    """A parsed scalar expression: a numpy function of its variables, differentiable by
    dualgrad, evaluated in *level order* (all operations of height 1 left to right, then
    height 2, ...), as in the evaluation traces of Baydin et al. (2018).

    >>> import dualgrad as dg
    >>> from dualgrad.teach.symbolic import parse
    >>> f = parse("log(x1) + x1*x2 - sin(x2)")
    >>> f.variables
    ('x1', 'x2')
    >>> [str(t) for t in f.operations]
    ['log(x1)', 'x1*x2', 'sin(x2)', 'log(x1) + x1*x2', 'log(x1) + x1*x2 - sin(x2)']
    >>> float(dg.grad(f, argnums=(0, 1))(2.0, 5.0)[0])
    5.5
    >>> f.to_sympy()
    x1*x2 + log(x1) - sin(x2)
    """

    def __init__(self, root, terms, variables, text=None):
        self.root = root
        self.terms = terms  # every term, children before parents (creation order)
        self.variables = tuple(variables)
        self.text = text if text is not None else str(root)
        ops = [t for t in terms if not t.is_constant and t.op not in ("var",)]
        self.operations = sorted(ops, key=lambda t: (t.height, t.serial))
        self._sympy = None

    def __str__(self):
        return self.text

    def __repr__(self):
        return f"Expression({self.text!r}, variables={self.variables!r})"

    # -- numeric evaluation ------------------------------------------------------------
    def __call__(self, *values, check=True):
        """Evaluate at ``values`` (one per variable, in ``self.variables`` order).

        With ``check``, a non-finite intermediate value raises ``DomainError`` naming
        the subexpression, e.g. ``log(x)`` at ``x = -1``.
        """
        if len(values) != len(self.variables):
            raise TypeError(f"the expression {self.text!r} takes {len(self.variables)} "
                            f"argument(s) {self.variables}, got {len(values)}")
        return self.evaluate(dict(zip(self.variables, values)), check=check)

    def evaluate(self, env, check=True):
        """Evaluate with ``env`` mapping variable names to values (numbers, arrays or
        traced values); operations run in level order."""
        vals = {}
        for t in self.terms:
            if t.op == "var":
                vals[t] = env[t.name]
            elif t.is_constant:
                vals[t] = t.value
        with np.errstate(all="ignore"):
            for t in self.operations:
                fn = _OPERATORS[t.op][0] if t.op in _OPERATORS else FUNCTIONS[t.op][0]
                try:
                    v = fn(*[vals[a] for a in t.args])
                except ArithmeticError as err:  # Python floats: 1000.0 ** 1000.0, 1.0 / 0.0
                    if not check:
                        raise
                    raise DomainError(self._arithmetic_message(t, err, env)) from None
                if check:
                    raw = unbox(v)
                    if not np.all(np.isfinite(raw)):
                        raise DomainError(self._domain_message(t, raw, env))
                vals[t] = v
        return vals[self.root]

    def _arithmetic_message(self, t, err, env):
        """``_domain_message`` for an error Python's float arithmetic raised, where numpy
        would have given inf or nan."""
        if isinstance(err, ZeroDivisionError):
            point = ", ".join(f"{k} = {_short(unbox(v))}" for k, v in env.items())
            return f"{t} divides by zero at {point}: the point is outside the domain of division"
        return self._domain_message(t, np.inf, env)

    def _domain_message(self, t, raw, env):
        point = ", ".join(f"{k} = {_short(unbox(v))}" for k, v in env.items())
        what = "nan" if np.any(np.isnan(raw)) else "infinite"
        fname = {"div": "division", "pow": "**"}.get(t.op, t.op)
        return (f"{t} is {what} at {point}: the point is outside the domain of {fname}"
                if what == "nan" or t.op in ("div", "log", "log2", "log10", "log1p",
                                             "atanh", "arctanh")
                else f"{t} overflows ({what}) at {point}")

    # -- sympy ---------------------------------------------------------------------------
    def symbols(self):
        """The sympy symbols of the variables (real), in ``self.variables`` order."""
        sympy = _sympy()
        return tuple(sympy.Symbol(v, real=True) for v in self.variables)

    def to_sympy(self):
        """The same expression built in sympy from the same tree (never from text)."""
        if self._sympy is None:
            sympy = _sympy()
            syms = dict(zip(self.variables, self.symbols()))
            out = {}
            for t in self.terms:
                if t.op == "var":
                    out[t] = syms[t.name]
                elif t.op == "num":
                    out[t] = (sympy.Integer(t.literal) if isinstance(t.literal, int)
                              else sympy.Float(t.literal, 30))
                elif t.op == "const":
                    out[t] = CONSTANTS[t.name][1]()
                elif (t.op == "pow" and t.is_constant
                      and not abs(t.args[1].value) <= _BIG_EXPONENT):
                    out[t] = sympy.Float(float(t.value), 30)  # never 10**(10**7) exactly
                else:
                    build = _OPERATORS[t.op][1] if t.op in _OPERATORS else FUNCTIONS[t.op][1]
                    out[t] = build(*[out[a] for a in t.args])
            self._sympy = out[self.root]
        return self._sympy


def _short(x):
    x = float(x) if np.ndim(x) == 0 else x
    return f"{x:g}" if isinstance(x, float) else repr(x)


class _Builder:
    """Turns a checked ``ast`` tree into terms, sharing equal subexpressions."""

    def __init__(self, variables):
        self.variables = variables  # None: any other name is a variable
        self.table = {}
        self.terms = []
        self.seen_vars = []

    def make(self, key, op, args=(), **kw):
        t = self.table.get(key)
        if t is None:
            value = None
            if op == "num":
                value = np.float64(kw["literal"])
            elif op == "const":
                value = np.float64(CONSTANTS[kw["name"]][0])
            elif op != "var" and all(a.is_constant for a in args):
                value = _fold(op, [a.value for a in args])
                if not np.isfinite(value):
                    text = _text(Term(op, args))
                    raise ExpressionError(f"the constant {text} is not a finite number "
                                          f"({value})")
            t = Term(op, args, serial=len(self.terms), value=value, **kw)
            self.table[key] = t
            self.terms.append(t)
        return t

    def build(self, node):
        if isinstance(node, ast.Expression):
            return self.build(node.body)
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                kind = "a string" if isinstance(v, (str, bytes)) else repr(v)
                raise ExpressionError(f"{kind} is not allowed in an expression; only numbers")
            try:
                f = float(v)
            except OverflowError:
                raise ExpressionError(f"the number {str(v)[:20]}... is too large") from None
            if not math.isfinite(f):
                raise ExpressionError(f"the number {v!r} is not finite")
            return self.make(("num", type(v), v), "num", literal=v)
        if isinstance(node, ast.Name):
            name = node.id
            if name in CONSTANTS and (self.variables is None or name not in self.variables):
                return self.make(("const", name), "const", name=name)
            if name in FUNCTIONS:
                raise ExpressionError(f"{name!r} is a function; call it as {name}(...)")
            if self.variables is not None and name not in self.variables:
                raise UnknownNameError(f"unknown name {name!r}: not a variable with a value, "
                                       "a known function or a constant (pi, e)", name)
            if name not in self.seen_vars:
                self.seen_vars.append(name)
            return self.make(("var", name), "var", name=name)
        if isinstance(node, ast.BinOp):
            op = _BINOPS.get(type(node.op))
            if op is None:
                hint = _HINTS.get(type(node.op), "")
                raise ExpressionError(f"the operator {type(node.op).__name__} is not allowed"
                                      + (f" ({hint})" if hint else "")
                                      + "; use + - * / ** and unary -")
            a, b = self.build(node.left), self.build(node.right)
            return self.make((op, a, b), op, (a, b))
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.UAdd):
                return self.build(node.operand)
            if not isinstance(node.op, ast.USub):
                raise ExpressionError(f"the operator {type(node.op).__name__} is not allowed; "
                                      "use + - * / ** and unary -")
            a = self.build(node.operand)
            return self.make(("neg", a), "neg", (a,))
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                what = ("attribute access (." + node.func.attr + ")"
                        if isinstance(node.func, ast.Attribute) else "this kind of call")
                raise ExpressionError(f"{what} is not allowed in an expression; call one of "
                                      "the known functions by name, e.g. sin(x)")
            name = node.func.id
            if name not in FUNCTIONS:
                if self.variables is not None and name in self.variables:
                    raise ExpressionError(f"{name!r} is a variable, not a function")
                raise ExpressionError(f"unknown function {name!r}; known functions: "
                                      + ", ".join(sorted(FUNCTIONS)))
            if node.keywords:
                raise ExpressionError(f"{name}(): keyword arguments are not allowed")
            if any(isinstance(a, ast.Starred) for a in node.args):
                raise ExpressionError(f"{name}(): *arguments are not allowed")
            arity = FUNCTIONS[name][2]
            if len(node.args) != arity:
                raise ExpressionError(f"{name}() takes {arity} argument(s), got "
                                      f"{len(node.args)}")
            args = tuple(self.build(a) for a in node.args)
            return self.make((name,) + args, name, args)
        raise ExpressionError(f"{_describe_node(node)} is not allowed in an expression; only "
                              "numbers, variables, + - * / **, and calls of known functions")


def _describe_node(node):
    kinds = {ast.Attribute: "attribute access", ast.Subscript: "indexing",
             ast.Lambda: "a lambda", ast.Compare: "a comparison", ast.BoolOp: "and/or",
             ast.IfExp: "if/else", ast.List: "a list", ast.Tuple: "a tuple",
             ast.Dict: "a dict", ast.Set: "a set", ast.JoinedStr: "an f-string",
             ast.NamedExpr: "an assignment (:=)", ast.Starred: "*unpacking",
             ast.ListComp: "a comprehension", ast.GeneratorExp: "a generator",
             ast.Await: "await", ast.Slice: "a slice"}
    return kinds.get(type(node), type(node).__name__)


def parse(text, variables=None):
    """Parse expression text safely into an ``Expression`` (never ``eval``/``sympify``).

    ``variables``: the allowed variable names, in argument order; any other name is an
    error (``UnknownNameError``).  ``None`` accepts every name that is not a function or
    a constant, ordered by first appearance.

    >>> from dualgrad.teach.symbolic import parse
    >>> parse("x**2 / y", variables=["y", "x"])(2.0, 3.0)
    np.float64(4.5)
    >>> parse("__import__('os').system('echo hi')")
    Traceback (most recent call last):
    ...
    dualgrad.teach.symbolic.ExpressionError: attribute access (.system) is not allowed ...
    """
    if not isinstance(text, str):
        raise TypeError(f"parse: expected expression text (str), got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"the expression is too long ({len(text)} characters; at most "
                              f"{MAX_LENGTH})")
    if not text.strip():
        raise ExpressionError("the expression is empty")
    if variables is not None:
        variables = list(variables)
        for v in variables:
            if not isinstance(v, str) or not v.isidentifier():
                raise ExpressionError(f"{v!r} is not a valid variable name")
            if v in FUNCTIONS:
                raise ExpressionError(f"{v!r} is a function name; it cannot be a variable")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        where = f" at column {err.offset}" if err.offset else ""
        raise ExpressionError(f"cannot parse the expression: {err.msg}{where}") from None
    except (ValueError, RecursionError, MemoryError) as err:
        raise ExpressionError(f"cannot parse the expression: {err}") from None
    b = _Builder(variables)
    try:
        root = b.build(tree)
    except RecursionError:
        raise ExpressionError("the expression is nested too deeply") from None
    names = variables if variables is not None else b.seen_vars
    return Expression(root, b.terms, names, text=text.strip())


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
