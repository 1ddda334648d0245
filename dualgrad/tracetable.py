"""The Wengert list as the evaluation-trace table of the literature.

Inputs are numbered v_{1-n} ... v_0 and operations v_1, v_2, ... as in
Baydin et al. (2018), Table 2.  Beside the primal trace go tangent traces
(one column per input direction, replayed forward through the list) and,
after a reverse sweep, the adjoint trace.
"""

import numpy as np

from .core import unbox
from .forward import push_tangents

_SYMBOLS = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/", "power": "^",
            "matmul": "@"}
_NAMES = {"log": "ln", "negative": "-"}


def labels(tape):
    """Entry index -> 'v-1', 'v0', 'v1', ... (inputs first, numbered up to 0)."""
    n_in = sum(1 for e in tape.entries if e[0] is None)
    out, k_in, k_op = {}, 1 - n_in, 1
    for i, e in enumerate(tape.entries):
        if e[0] is None:
            out[i], k_in = f"v{k_in}", k_in + 1
        else:
            out[i], k_op = f"v{k_op}", k_op + 1
    return out


def fmt(x):
    x = unbox(x)
    if np.ndim(x) == 0:
        return f"{float(x):.4f}"
    return f"array{tuple(np.shape(x))}"


def describe(tape, i, names):
    prim, vals, kw, parents, _ = tape.entries[i]
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
    """Push tangents forward through the list; ``seeds`` maps input entries to tangents."""
    tans = [None] * len(tape.entries)
    for i, t in seeds.items():
        tans[i] = t
    for i, (prim, vals, kw, parents, ans) in enumerate(tape.entries):
        if prim is None:
            continue
        ts = [None] * len(vals)
        for argnum, j in parents:
            ts[argnum] = tans[j]
        if any(t is not None for t in ts):
            tans[i] = push_tangents(prim, ts, ans, vals, kw)
    return tans


def format_tape(tape, tangent_columns=None):
    """The primal trace (with optional tangent columns) and, if swept, the adjoint trace.

    ``tangent_columns`` is a list of ``(title, tangents)`` with one tangent per entry
    (``None`` for zero), e.g. from ``replay_tangents``.
    """
    names = labels(tape)
    rows = [(names[i], describe(tape, i, names), fmt(e[4])) for i, e in enumerate(tape.entries)]
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
