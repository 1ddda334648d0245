"""Errors that point at the drop-in: scipy's own function met a traced value.

scipy's Python-level functions (``scipy.stats.norm.logpdf``, ``scipy.special.logsumexp``,
``scipy.stats.multivariate_normal.logpdf``) start with ``np.asarray(x, dtype=float)`` or
call numpy's C loops on what they got, so a traced value fails deep inside scipy with an
error about scipy's code ("ufunc 'isnan' not supported", a plain-array write in scipy's
source).  When such an error leaves a transformed function, ``scipy_refusal`` (a hint
``numpy/inplace.refusal`` asks) finds the scipy function the user called (the outermost
scipy frame of the traceback that was given a traced value) and says what to use::

    scipy.stats.multivariate_normal.logpdf cannot see traced values (it failed inside
    scipy: ...); use dualgrad.scipy.stats.multivariate_normal.logpdf (same signature)

or, where ``dualgrad.scipy`` has no drop-in, the ``dg.custom_vjp`` route.
"""

import importlib

import numpy as np

from ..core.trace import Box
from ..numpy.inplace import HINTS

_SUFFIXES = ("_gen", "_frozen")
_SPARSE_PRODUCTS = frozenset(("__matmul__", "__rmatmul__", "__mul__", "__rmul__", "dot",
                              "_matmul_dispatch", "_mul_dispatch", "_rmatmul_dispatch"))


def _has_box(x, depth=0):
    """Whether ``x`` is traced, holds a traced value, or is numpy's object array of traced
    entries (what ``np.asarray`` of a traced value gives)."""
    if isinstance(x, Box):
        return True
    if x.__class__ is np.ndarray:
        return x.dtype == object and any(isinstance(e, Box) for e in x.flat[:64])
    if depth < 2 and isinstance(x, (list, tuple)):
        return any(_has_box(e, depth + 1) for e in x)
    if depth < 2 and isinstance(x, dict):
        return any(_has_box(e, depth + 1) for e in x.values())
    return False


def _public(frame):
    """(``stats``, ``("multivariate_normal", "logpdf")``) for the scipy function running in
    ``frame``, as the user named it."""
    module = frame.f_globals.get("__name__", "")
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "scipy":
        return None
    sub = parts[1]
    code = frame.f_code
    name = code.co_name
    owner = frame.f_locals.get("self")
    if owner is not None and not isinstance(owner, type):
        dist = getattr(owner, "dist", None)  # a frozen distribution: norm(0, 1).logpdf
        cls = type(dist if dist is not None and type(owner).__name__.startswith("rv_")
                   else owner).__name__
        for suffix in _SUFFIXES:
            if cls.endswith(suffix):
                cls = cls[:-len(suffix)]
        return sub, (cls,) if name == "__call__" else (cls, name)
    return sub, (name,)


def _drop_in(sub, names):
    try:
        obj = importlib.import_module(f"{__package__}.{sub}")
    except ImportError:
        return None
    for n in names:
        obj = getattr(obj, n, None)
        if obj is None:
            return None
    return obj


def scipy_refusal(exc):
    """A TypeError naming the dualgrad.scipy drop-in for the scipy function that failed on
    a traced value, or None when ``exc`` did not come from one."""
    if str(exc).startswith("dualgrad: scipy."):  # said already (a nested transform)
        return None
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        module = frame.f_globals.get("__name__", "")
        if module.startswith("scipy.") and not module.startswith("scipy._lib") \
                and any(_has_box(v) for v in frame.f_locals.values()):
            break
        tb = tb.tb_next
    else:
        return None
    found = _public(tb.tb_frame)
    if found is None:
        return None
    sub, names = found
    name = f"scipy.{sub}.{'.'.join(names)}"
    if sub == "sparse" and names[-1] in _SPARSE_PRODUCTS:  # A @ x, A.dot(x), x @ A
        return TypeError(
            f"dualgrad: {name} (a scipy.sparse matrix times an array) cannot see traced "
            f"values; use dualgrad.scipy.sparse.matmul(A, x) (or x @ A as matmul(x, A)), "
            "or build A with dualgrad.scipy.sparse.csr_matrix / from_pattern, whose @ "
            "differentiates, also in A's data")
    first = (str(exc).splitlines() or [type(exc).__name__])[0]
    first = first if len(first) <= 120 else first[:117] + "..."
    said = f"dualgrad: {name} cannot see traced values (it failed inside scipy: " \
           f"{type(exc).__name__}: {first})"
    if _drop_in(sub, names) is not None:
        return TypeError(f"{said}; use dualgrad.{name} (same signature): "
                         f"from dualgrad.scipy import {sub}")
    return TypeError(
        f"{said}; dualgrad.scipy has no drop-in for it: give the function that calls it a "
        "rule, e.g. f = dg.custom_vjp(f); f.defvjp(fwd, bwd) with bwd computing the "
        "cotangents on plain values (or dg.custom_jvp), or dg.stop_gradient its inputs "
        "if no derivative through it is wanted")


HINTS.append(scipy_refusal)
