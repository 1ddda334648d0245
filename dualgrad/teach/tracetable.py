"""The Wengert list as the evaluation-trace table of the literature.

Inputs are numbered v_{1-n} ... v_0 and operations v_1, v_2, ... as in
Baydin et al. (2018), Table 2.  Beside the primal trace go tangent traces
(one column per input direction, replayed forward through the list) and,
after a reverse sweep, the adjoint trace.
"""

import math
import re
import unicodedata

import numpy as np

from ..core.trace import unbox
from ..core.validate import seed_cotangent
from ..transforms.reverse import Node, Tape, accumulate, cotangent

_SYMBOLS = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/", "power": "^",
            "matmul": "@"}
_NAMES = {"log": "ln", "negative": "-"}


def labels(tape):
    """Entry index -> 'v-1', 'v0', 'v1', ... (inputs first, numbered up to 0)."""
    n_in = sum(1 for e in tape.entries if e.prim is None)
    out, k_in, k_op = {}, 1 - n_in, 1
    for i, e in enumerate(tape.entries):
        if e.prim is None:
            out[i], k_in = f"v{k_in}", k_in + 1
        else:
            out[i], k_op = f"v{k_op}", k_op + 1
    return out


def fmt(x):
    x = unbox(x)
    if np.ndim(x) == 0:
        return f"{complex(x):.4f}" if np.iscomplexobj(x) else f"{float(x):.4f}"
    return f"array{tuple(np.shape(x))}"


def describe(tape, i, names):
    e = tape.entries[i]
    prim, vals, kw, parents = e.prim, e.args, e.kw, e.parents
    if prim is None:
        return tape.names.get(i, "input")
    args = [fmt(v) for v in vals]
    for argnum, j in parents:
        args[argnum] = names[j]
    sym = _SYMBOLS.get(prim.name)
    if sym and len(args) == 2:
        return f"{args[0]} {sym} {args[1]}"
    name = _NAMES.get(prim.name, prim.name)
    if len(args) == 1 and not kw:
        return f"{name} {args[0]}"
    extra = [f"{k}={v}" for k, v in kw.items()] if kw else []
    return f"{name}({', '.join(args + extra)})"


def replay_tangents(tape, seeds):
    """Push tangents forward through the list; ``seeds`` maps input entries to tangents
    (``Tape.replay_tangents``, as ``dg.linearize`` uses it)."""
    return tape.replay_tangents(seeds)


def format_tape(tape, tangent_columns=None):
    """The primal trace (with optional tangent columns) and, if swept, the adjoint trace.

    ``tangent_columns`` is a list of ``(title, tangents)`` with one tangent per entry
    (``None`` for zero), e.g. from ``replay_tangents``.
    """
    names = labels(tape)
    rows = [(names[i], describe(tape, i, names), fmt(e.ans)) for i, e in enumerate(tape.entries)]
    cols = tangent_columns or []
    w0 = max([len(r[0]) for r in rows] + [1])
    w1 = max([len(r[1]) for r in rows] + [9])
    w2 = max([len(r[2]) for r in rows] + [5])
    head = f"{'':{w0}}   {'operation':{w1}}   {'value':>{w2}}"
    for title, _ in cols:
        head += f"   {title:>12}"
    lines = ["Forward primal trace" + (" and tangent trace" if cols else ""), head,
             "-" * len(head)]
    for i, (v, op, val) in enumerate(rows):
        line = f"{v:{w0}} = {op:{w1}} = {val:>{w2}}"
        for _, tans in cols:
            t = tans[i] if i < len(tans) else None
            line += f"   {fmt(0.0 if t is None else t):>12}"
        lines.append(line)
    if tape.adjoints is not None:
        lines += ["", "Reverse adjoint trace", "-" * 24]
        for i in range(len(tape.adjoints) - 1, -1, -1):
            a = tape.adjoints[i]
            lines.append(f"adj({names[i]}) = {fmt(0.0 if a is None else a)}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# the tables as printed in the literature (Baydin et al. 2018, Tables 2 and 3)
# ---------------------------------------------------------------------------

MINUS, TIMES, PARTIAL = "\u2212", "\u00d7", "\u2202"
_DOT, _BAR = "\u0307", "\u0304"
_INFIX = {"add": "+", "subtract": MINUS, "multiply": TIMES, "divide": "/", "matmul": "@"}
_PREFIX = {"log": "ln", "negative": MINUS, "absolute": "abs", "arcsin": "asin",
           "arccos": "acos", "arctan": "atan", "arcsinh": "asinh", "arccosh": "acosh",
           "arctanh": "atanh"}


def pretty_label(label):
    """'v-1' -> 'v\u22121' (Unicode minus, as in print)."""
    return label.replace("-", MINUS)


def number(x, digits=3):
    """A value as the literature prints it: ``digits`` decimals, trailing zeros dropped,
    Unicode minus; very large or small magnitudes in scientific notation.

    >>> from dualgrad.teach.tracetable import number
    >>> [number(v) for v in (2.0, 10.693147, -0.958924, 5.5, 1e-5, -0.0)]
    ['2', '10.693', '\u22120.959', '5.5', '1e\u221205', '0']
    """
    x = unbox(x)
    if np.ndim(x) != 0:
        return f"array{tuple(np.shape(x))}"
    x = float(x)
    if not math.isfinite(x):
        s = "nan" if math.isnan(x) else ("-inf" if x < 0 else "inf")
    elif x == 0:
        s = "0"
    elif abs(x) >= 1e6 or abs(x) < 0.5 * 10.0 ** -digits:
        mant, _, ex = f"{x:.{max(digits - 1, 0)}e}".partition("e")
        if "." in mant:
            mant = mant.rstrip("0").rstrip(".")
        s = f"{mant}e{ex}"
    else:
        s = f"{x:.{digits}f}"
        if "." in s:
            s = s.rstrip("0").rstrip(".")
        if s == "-0":
            s = "0"
    return s.replace("-", MINUS)


def _accent(name, mark):
    """The mark over the first character: 'x1' -> 'x\u03071', 'alpha' -> 'a\u0307lpha'."""
    return unicodedata.normalize("NFC", name[:1] + mark + name[1:])


def dotted(name):
    """The tangent of ``name``: 'x1' -> 'x\u03071' (a dot over the letter)."""
    return _accent(name, _DOT)


def barred(name):
    """The adjoint of ``name``: 'v5' -> 'v\u03045' (a bar over the letter)."""
    return _accent(name, _BAR)


def width(s):
    """Display width: combining marks take no column."""
    return sum(1 for ch in unicodedata.normalize("NFD", s) if not unicodedata.combining(ch))


def _ljust(s, w):
    return s + " " * max(w - width(s), 0)


def to_ascii(text):
    """Plain-ASCII version of a literature table (for terminals without Unicode)."""
    text = unicodedata.normalize("NFD", text)
    text = re.sub(r"(\w)" + _DOT, r"d\1", text)
    text = re.sub(r"(\w)" + _BAR, r"bar_\1", text)
    for a, b in ((MINUS, "-"), (TIMES, "*"), (PARTIAL, "d"), ("\u00b2", "^2"),
                 ("\u221a", "sqrt")):
        text = text.replace(a, b)
    return text.encode("ascii", "replace").decode("ascii")


def _operands(tape, i, names, digits):
    e = tape.entries[i]
    args = []
    for v in e.args:
        s = number(v, digits)
        args.append(f"({s})" if s.startswith(MINUS) else s)
    for argnum, j in e.parents:
        args[argnum] = pretty_label(names[j])
    return args


def _rule_arguments(tape, i, names):
    """Entry ``i``'s arguments for its rule, then its result's name: a traced argument
    as its name (a ``Formula``), a constant as its value (a rule may branch on it)."""
    e = tape.entries[i]
    args = list(e.args)
    for argnum, j in e.parents:
        args[argnum] = Formula(names[j])
    return args + [names[i]]


def describe_pretty(tape, i, names, digits=3):
    """Entry ``i`` as in the literature: 'ln v\u22121', 'v\u22121 \u00d7 v0', 'sin v0'."""
    prim, kw = tape.entries[i].prim, tape.entries[i].kw
    if prim is None:
        return tape.names.get(i, "input")
    args = _operands(tape, i, names, digits)
    sym = _INFIX.get(prim.name)
    if sym and len(args) == 2 and not kw:
        return f"{args[0]} {sym} {args[1]}"
    if prim.name == "power" and len(args) == 2:
        return f"{args[0]}^{args[1]}"
    name = _PREFIX.get(prim.name, prim.name)
    if len(args) == 1 and not kw:
        return f"{name}{args[0]}" if name == MINUS else f"{name} {args[0]}"
    extra = [f"{k}={v}" for k, v in kw.items()] if kw else []
    return f"{name}({', '.join(args + extra)})"


def _inputs(tape):
    return [i for i, e in enumerate(tape.entries) if e.prim is None]


def _output_index(tape, output):
    if isinstance(output, Node) and output._trace is tape:
        return output.index
    return None


def evaluation_trace(tape, output, directions=None, digits=3):
    """The forward primal trace with one tangent column per direction, as in Baydin et al.
    (2018), Table 2.  ``directions``: ``None`` for one unit direction per watched input
    (\u1e8b1 = 1, \u1e8b2 = 0, then \u1e8b1 = 0, \u1e8b2 = 1, ...), or a list of
    ``(title, {input entry index: tangent})``.  Tangents come from ``replay_tangents``.

    >>> import numpy as np, dualgrad as dg
    >>> from dualgrad.teach.tracetable import evaluation_trace, to_ascii
    >>> with dg.Tape() as tape:
    ...     x = tape.watch(2.0, "x")
    ...     y = x * np.sin(x)
    >>> print(to_ascii(evaluation_trace(tape, y)))
    Forward primal trace    Forward tangent trace
                            dx = 1
    v0 = x       = 2        dv0 = 1
    v1 = sin v0  = 0.909    dv1 = -0.416
    v2 = v0 * v1 = 1.819    dv2 = 0.077
    y  = v2      = 1.819    dy  = 0.077
    """
    names = labels(tape)
    ins = _inputs(tape)
    if directions is None:
        directions = []
        for k in ins:
            title = ", ".join(f"{dotted(tape.names.get(j, pretty_label(names[j])))} = "
                              f"{1 if j == k else 0}" for j in ins)
            directions.append((title, {k: np.ones_like(tape.entries[k].ans)[()]}))
    columns = [(title, replay_tangents(tape, seeds)) for title, seeds in directions]
    out = _output_index(tape, output)
    rows = []
    for i, e in enumerate(tape.entries):
        lab = pretty_label(names[i])
        cells = []
        for _, tans in columns:
            t = tans[i] if i < len(tans) else None
            cells.append((dotted(lab), number(0.0 if t is None else t, digits)))
        rows.append((lab, describe_pretty(tape, i, names, digits), number(e.ans, digits), cells))
    if out is not None:
        cells = [("\u1e8f", number(0.0 if tans[out] is None else tans[out], digits))
                 for _, tans in columns]
        rows.append(("y", pretty_label(names[out]), number(tape.entries[out].ans, digits),
                     cells))
    else:
        rows.append(("y", number(output, digits), number(output, digits),
                     [("\u1e8f", "0") for _ in columns]))
    w0 = max(width(r[0]) for r in rows)
    w1 = max(width(r[1]) for r in rows)
    w2 = max(width(r[2]) for r in rows)
    wl = [max(width(r[3][c][0]) for r in rows) for c in range(len(columns))]
    cellw = [max([width(r[3][c][0]) + 3 + width(r[3][c][1]) for r in rows]
                 + [width(columns[c][0])]) for c in range(len(columns))]
    left = w0 + 3 + w1 + 3 + w2
    gap = " " * 4
    lines = []
    if columns:
        lines.append(_ljust("Forward primal trace", left) + gap + "Forward tangent trace")
        lines.append(" " * left + gap + "   ".join(
            _ljust(t, w) for (t, _), w in zip(columns, cellw)).rstrip())
    else:
        lines.append("Forward primal trace")
    for lab, op, val, cells in rows:
        line = f"{_ljust(lab, w0)} = {_ljust(op, w1)} = {_ljust(val, w2)}"
        if cells:
            line += gap + "   ".join(_ljust(f"{_ljust(n, wl[c])} = {v}", cellw[c])
                                     for c, (n, v) in enumerate(cells))
        lines.append(line.rstrip())
    return "\n".join(lines)


class Formula:
    """A derivative rule written out: the row's own VJP run on names instead of numbers.

    ``adjoint_trace`` calls the rule the sweep ran (``prim.vjp[argnum]``, from ``rules/``)
    with the adjoint, the result and the arguments as ``Formula`` values, so the table
    prints that rule and no second copy of it.  A rule that does more than arithmetic and
    the elementwise functions below (a reduction, an index, a keyword) raises TypeError,
    and the line then shows the value alone.  A guard that asks whether a name equals a
    number (``x == 0``) is answered False: the text is the rule where the guard is off.

    >>> import numpy as np
    >>> from dualgrad.teach.tracetable import Formula
    >>> g, x = Formula("g"), Formula("x")
    >>> print(g * np.cos(x), g / (2.0 * x), -(g * x ** 2))
    g \u00d7 cos x g / (2 \u00d7 x) \u2212(g \u00d7 x\u00b2)
    """

    __slots__ = ("text", "rank", "over")
    __array_priority__ = 10_000.0  # numpy scalars and arrays defer to it

    def __init__(self, text, rank=9, over=None):
        self.text, self.rank = text, rank  # rank: 9 a name, 7 a power, 6 unary, 5 x /, 4 + -
        self.over = over  # for ``1 / d``: ``d``, so that ``g x (1 / d)`` reads ``g / d``

    def __str__(self):
        return self.text

    __repr__ = __str__

    @staticmethod
    def of(x):
        if isinstance(x, Formula):
            return x
        if isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool):
            s = number(x) if float(x).is_integer() else f"{x:.7g}".replace("-", MINUS)
            return Formula(s, 6 if s.startswith(MINUS) else 9)
        raise TypeError(f"no formula for {type(x).__name__}")

    def _in(self, rank, strict=False):
        return f"({self.text})" if self.rank < rank or (strict and self.rank == rank) \
            else self.text

    @classmethod
    def infix(cls, a, sym, b, rank):
        a, b = cls.of(a), cls.of(b)
        if sym == TIMES and b.over is not None:  # g x (1 / d) -> g / d
            return cls.infix(a, "/", b.over, 5)
        right_strict = sym in (MINUS, "/")
        return cls(f"{a._in(rank)} {sym} {b._in(rank, right_strict)}", rank)

    def __add__(self, o):
        return Formula.infix(self, "+", o, 4)

    def __radd__(self, o):
        return Formula.infix(o, "+", self, 4)

    def __sub__(self, o):
        return Formula.infix(self, MINUS, o, 4)

    def __rsub__(self, o):
        return Formula.infix(o, MINUS, self, 4)

    def __mul__(self, o):
        return Formula.infix(self, TIMES, o, 5)

    def __rmul__(self, o):
        return Formula.infix(o, TIMES, self, 5)

    def __truediv__(self, o):
        return Formula.infix(self, "/", o, 5)

    def __rtruediv__(self, o):
        f = Formula.infix(o, "/", self, 5)
        if f.text.startswith("1 / "):
            f.over = self
        return f

    def __pow__(self, o):
        o = Formula.of(o)
        if o.text == "2":
            return Formula(f"{self._in(8)}\u00b2", 7)
        return Formula(f"{self._in(8)}^{o._in(8)}", 7)

    def __neg__(self):
        return Formula(f"{MINUS}{self._in(6, True)}", 6)

    def __pos__(self):
        return self

    def __eq__(self, o):
        return False

    __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __eq__
    __hash__ = object.__hash__

    def __bool__(self):
        raise TypeError("a formula has no truth value")

    _FUNCTIONS = {"log": "ln", "arcsin": "asin", "arccos": "acos", "arctan": "atan",
                  "arcsinh": "asinh", "arccosh": "acosh", "arctanh": "atanh",
                  "absolute": "abs"}
    _NAMED = frozenset({"sin", "cos", "tan", "exp", "exp2", "expm1", "log", "log2",
                        "log10", "log1p", "sinh", "cosh", "tanh", "arcsin", "arccos",
                        "arctan", "arcsinh", "arccosh", "arctanh", "absolute"})

    def __array_ufunc__(self, ufunc, method, *inputs, **kw):
        if method != "__call__" or kw:
            return NotImplemented
        name = ufunc.__name__
        if len(inputs) == 2:
            a, b = inputs
            ops = {"add": "__add__", "subtract": "__sub__", "multiply": "__mul__",
                   "divide": "__truediv__", "true_divide": "__truediv__", "power": "__pow__"}
            if name not in ops:
                return NotImplemented
            if isinstance(a, Formula):
                return getattr(a, ops[name])(b)
            return getattr(Formula.of(a), ops[name])(b)
        (a,) = inputs
        if name == "negative":
            return -a
        if name == "square":
            return a ** 2
        if name == "reciprocal":
            return 1.0 / a
        if name == "sqrt":
            return Formula(f"\u221a{a._in(8)}", 8)
        if name in self._NAMED:
            return Formula(f"{self._FUNCTIONS.get(name, name)} {a._in(8)}", 8)
        return NotImplemented


def _contribution(e, argnum, args, g):
    """The text of ``v\u0304i \u2202vi/\u2202vj``: the row's VJP rule for argument
    ``argnum`` run on ``Formula`` names; None where the rule is more than a formula."""
    rules = e.prim.vjp
    rule = rules[argnum] if rules is not None else None
    if rule is None or e.kw:
        return None
    try:
        with np.errstate(all="ignore"):
            out = rule(Formula(g), Formula(args[-1]), *args[:-1])
    except (TypeError, ValueError, AttributeError, IndexError, KeyError):
        return None
    return out.text if isinstance(out, Formula) else None


def adjoint_trace(tape, output, digits=3):
    """The reverse adjoint trace as in Baydin et al. (2018), Table 3: the adjoints of the
    tape's last sweep (``tape.gradient(output, ...)`` with ``keep_adjoints=True``; swept
    here if the tape has none), one line per contribution in the order the sweep adds
    them, ending with the input adjoints \u0078\u0304k.

    >>> import numpy as np, dualgrad as dg
    >>> from dualgrad.teach.tracetable import adjoint_trace, to_ascii
    >>> with dg.Tape() as tape:
    ...     x = tape.watch(2.0, "x")
    ...     y = x * np.sin(x)
    >>> g = tape.gradient(y, x)
    >>> print(to_ascii(adjoint_trace(tape, y)))
    Reverse adjoint trace
    bar_v2 = bar_y = 1
    bar_v0 = bar_v2 dv2/dv0 = bar_v2 * v1 = 0.909
    bar_v1 = bar_v2 dv2/dv1 = bar_v2 * v0 = 2
    bar_v0 = bar_v0 + bar_v1 dv1/dv0 = bar_v0 + bar_v1 * cos v0 = 0.077
    bar_x = bar_v0 = 0.077
    """
    names = {i: pretty_label(v) for i, v in labels(tape).items()}
    out = _output_index(tape, output)
    lines = ["Reverse adjoint trace"]
    if out is None:
        lines.append(f"{barred('y')} = 1 (the output does not depend on the inputs)")
        adj = []
    else:
        adj = tape.adjoints
        if adj is None or out >= len(adj) or adj[out] is None:
            adj = tape.sweep([(out, seed_cotangent(tape.entries[out].ans, None, "seed"))])
        lines.append(f"{barred(names[out])} = {barred('y')} = {number(adj[out], digits)}")
        running = [None] * len(tape.entries)
        for i in range(out, -1, -1):
            e = tape.entries[i]
            g = adj[i] if i < len(adj) else None
            if e.prim is None or g is None:
                continue
            args = _rule_arguments(tape, i, names)
            gi = barred(names[i])
            for argnum, j in e.parents:
                c = cotangent(e, argnum, g, 0, True)  # the sweep's own step
                gj = barred(names[j])
                acc = running[j] is not None
                accumulate(running, j, c)
                lhs = f"{gj} + " if acc else ""
                line = f"{gj} = {lhs}{gi} {PARTIAL}{names[i]}/{PARTIAL}{names[j]}"
                formula = _contribution(e, argnum, args, gi)
                if formula is not None:
                    line += f" = {lhs}({formula})" if lhs and formula.startswith(MINUS) \
                        else f" = {lhs}{formula}"
                lines.append(f"{line} = {number(running[j], digits)}")
    for j in _inputs(tape):
        a = adj[j] if j < len(adj) and adj[j] is not None else 0.0
        name = tape.names.get(j, names[j])
        lines.append(f"{barred(name)} = {barred(names[j])} = {number(a, digits)}")
    return "\n".join(lines)


def to_dot(tape, output=None, digits=3, title=None):
    """The tape as a Graphviz DOT graph: one node per entry (label, operation, value and,
    after a sweep, adjoint), one edge per argument read.

    >>> import numpy as np, dualgrad as dg
    >>> from dualgrad.teach.tracetable import to_dot
    >>> with dg.Tape() as tape:
    ...     x = tape.watch(2.0, "x")
    ...     y = np.sin(x)
    >>> print(to_dot(tape, y), end="")
    digraph wengert {
      rankdir=LR;
      node [shape=box, fontname="Helvetica"];
      n0 [label="v0 = x\\n= 2", shape=ellipse];
      n1 [label="v1 = sin v0\\n= 0.909", peripheries=2];
      n0 -> n1;
    }
    """
    def q(s):
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    names = labels(tape)
    out = _output_index(tape, output)
    adj = tape.adjoints or []
    lines = ["digraph wengert {", "  rankdir=LR;",
             '  node [shape=box, fontname="Helvetica"];']
    if title:
        lines.append(f"  label={q(title)}; labelloc=t;")
    for i, e in enumerate(tape.entries):
        lab = pretty_label(names[i])
        text = f"{lab} = {describe_pretty(tape, i, names, digits)}\n= {number(e.ans, digits)}"
        if i < len(adj) and adj[i] is not None:
            text += f"\n{barred(lab)} = {number(adj[i], digits)}"
        attrs = [f"label={q(text)}"]
        if e.prim is None:
            attrs.append("shape=ellipse")
        if i == out:
            attrs.append("peripheries=2")
        lines.append(f"  n{i} [{', '.join(attrs)}];")
    for i, e in enumerate(tape.entries):
        for _, j in e.parents:
            lines.append(f"  n{j} -> n{i};")
    lines.append("}")
    return "\n".join(lines) + "\n"


Tape.__str__ = format_tape  # print(tape): the evaluation trace as a table
