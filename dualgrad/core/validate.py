"""Argument checks shared by every mode: dtypes, tangents, cotangents.

The leaf of the package's import graph (it needs only ``core.unbox``): the tape, dual
numbers, the transforms and the trace tables all validate what users hand them here,
so each message is written once.

    >>> check_differentiable(np.arange(3), "x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: x has dtype int64, but derivatives need floating-point (real or complex) ...
"""

import dataclasses

import numpy as np

from .trace import unbox

FLOAT64 = np.dtype(np.float64)


def dtype_of(x):
    """The dtype of a value, traced or not (a Python float is float64)."""
    x = unbox(x)
    if x.__class__ is float:
        return FLOAT64
    return x.dtype if isinstance(x, (np.ndarray, np.generic)) else np.result_type(x)


def check_not_a_dataclass(x, name):
    """A leaf that is a dataclass instance was not registered as a pytree: say how to."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        raise TypeError(f"{name} is a dataclass ({type(x).__name__}) that is not a pytree: "
                        "register it with dg.tree.register_dataclass(cls) (or as a "
                        "decorator), or make it frozen (frozen dataclasses are pytrees)")


def check_differentiable(x, name):
    c = x.__class__
    if c is float or c is np.ndarray and x.dtype.kind in "fc":
        return
    check_not_a_dataclass(x, name)
    dt = dtype_of(x)
    if dt.kind not in "fc":
        raise TypeError(f"{name} has dtype {dt}, but derivatives need floating-point (real "
                        "or complex) inputs (pass 1.0 rather than 1, or x.astype(float)); "
                        "integer and boolean arrays cannot be differentiated")


def check_tangent(primal, tangent, name, batch_ok=False):
    """Validate a tangent against its primal; Python numbers are cast to the primal's dtype."""
    pdt = dtype_of(primal)
    if pdt.kind not in "fc":
        raise TypeError(f"{name}: a tangent was given for an input of dtype {pdt}; only "
                        "floating-point (real or complex) inputs have tangents")
    ps, ts = np.shape(unbox(primal)), np.shape(unbox(tangent))
    if ts != ps and not (batch_ok and len(ts) == len(ps) + 1 and ts[1:] == ps):
        extra = " or (k,) + that shape for k directions" if batch_ok else ""
        raise ValueError(f"{name} has shape {ts}, but its primal has shape {ps}; expected "
                         f"the same shape{extra}")
    raw = unbox(tangent)
    if isinstance(raw, (int, float, complex)) and not isinstance(raw, bool):
        if isinstance(raw, complex) and pdt.kind != "c":
            raise TypeError(f"{name} is complex, but its primal has dtype {pdt}; a real "
                            "input has a real tangent")
        return np.asarray(raw, pdt)[()]
    tdt = dtype_of(tangent)
    if tdt != pdt:
        raise TypeError(f"{name} has dtype {tdt}, but its primal has dtype {pdt}; expected "
                        "the same dtype")
    return tangent


def seed_cotangent(value, ct, name):
    if ct is None:
        if np.shape(unbox(value)) != ():
            raise TypeError(f"the output has shape {np.shape(unbox(value))}; backward() without "
                            f"{name} needs a scalar output (pass {name}, or use dg.vjp)")
        if dtype_of(value).kind == "c":
            raise TypeError(f"the output is complex ({dtype_of(value)}); backward() without "
                            f"{name} needs a real output (pass {name}, e.g. 1.0 + 0j)")
        return np.ones((), dtype_of(value))[()]
    if np.shape(unbox(ct)) != np.shape(unbox(value)):
        raise ValueError(f"{name} has shape {np.shape(unbox(ct))}, but the output has shape "
                         f"{np.shape(unbox(value))}")
    return ct
