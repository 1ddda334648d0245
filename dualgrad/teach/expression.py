"""Scalar expressions as text, read safely: what ``python -m dualgrad`` and ``dg.symcheck``
differentiate.

``parse(text)`` reads an expression such as ``"log(x1) + x1*x2 - sin(x2)"`` with Python's
``ast`` (never ``eval``, never ``sympify``), checked against a whitelist of operators
(``+ - * / **``, unary ``-``/``+``), numbers, the constants ``pi`` and ``e``, the
functions in ``FUNCTIONS`` and the variable names.  The result is an ``Expression``: a
DAG of operations (equal subexpressions are one node) that is a numpy function dualgrad
can differentiate, and that also builds the matching sympy expression from the same tree.

    >>> import dualgrad as dg
    >>> from dualgrad.teach.expression import parse
    >>> f = parse("log(x1) + x1*x2 - sin(x2)")
    >>> dg.grad(f, argnums=(0, 1))(2.0, 5.0)
    (np.float64(5.5), np.float64(1.7163378145367738))
"""

import ast
import math

import numpy as np

from ..core.trace import unbox

__all__ = ["CONSTANTS", "FUNCTIONS", "DomainError", "Expression", "ExpressionError",
           "UnknownNameError", "parse"]

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
    dualgrad.teach.expression.ExpressionError: attribute access (.system) is not allowed ...
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
