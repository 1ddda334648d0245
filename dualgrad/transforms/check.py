"""Gradient checking: compare dualgrad's derivatives with finite differences.

The numerical side uses central differences in float64 with one step of
Richardson extrapolation, (4 D(h/2) - D(h)) / 3, whose error is O(h^4): with
h = 1e-3 that is far below the tolerances used here, and far above rounding.

    >>> import numpy as np, dualgrad as dg
    >>> dg.check_grads(lambda x: np.sum(np.tanh(x) ** 2), (np.array([0.3, -1.2]),), order=2)
"""

import numpy as np

from ..core.trace import unbox
from ..core.tree import tree_flatten
from .derivatives import jacfwd, jacrev, jvp, vjp

_FULL_LIMIT = 400  # inputs up to this size get a full numerical Jacobian


def _as_vector_fn(f):
    """f with its (pytree) output flattened into one float64 vector."""
    def g(*args):
        leaves, _ = tree_flatten(f(*args))
        return np.concatenate([np.reshape(leaf, (-1,)) for leaf in leaves]) if leaves \
            else np.zeros(0)
    return g


def _eval64(f, args):
    out = unbox(_as_vector_fn(f)(*args))
    if np.iscomplexobj(out):
        raise TypeError(_NO_COMPLEX)
    return np.asarray(out, dtype=np.float64)


def _is_float(x):
    return np.issubdtype(np.result_type(unbox(x)), np.floating)


_NO_COMPLEX = ("the finite-difference checks take real arguments and outputs only: check a "
               "complex function through its real and imaginary parts, e.g. "
               "lambda x, y: np.stack([np.real(f(x + 1j*y)), np.imag(f(x + 1j*y))])")


def _real_args(args, fname):
    """The arguments' checks shared by every checker: a tuple of real arguments, at least
    one of them floating-point (integer, bool and object arguments are constants, so
    with no float argument there would be nothing to check, and the check would pass)."""
    if not isinstance(args, (tuple, list)):
        raise TypeError(f"{fname}: args must be a tuple of arguments for f, got "
                        f"{type(args).__name__}")
    for i, a in enumerate(args):
        if np.iscomplexobj(unbox(a)):
            raise TypeError(f"{fname}: argument {i} is complex; {_NO_COMPLEX}")
    if not any(_is_float(a) for a in args):
        got = ", ".join(_dtype_name(a) for a in args) or "no arguments"
        raise TypeError(f"{fname}: no argument is floating-point (got {got}), so there is "
                        "nothing to differentiate; pass floats (1.0 rather than 1, or "
                        "x.astype(float))")


def _dtype_name(a):
    try:
        return str(np.result_type(unbox(a)))
    except TypeError:
        return type(a).__name__


_UNSET = object()


def _check_options(fname, atol=None, rtol=None, eps=None, order=_UNSET, modes=_UNSET,
                   trials=_UNSET):
    """The checkers' options: a positive int ``order``/``trials``, ``modes`` drawn from
    'fwd' and 'rev', non-negative tolerances and a positive step; returns ``modes`` as a
    tuple (a single name is accepted for a one-mode check)."""
    for name, v in (("order", order), ("trials", trials)):
        if v is not _UNSET and (not isinstance(v, (int, np.integer)) or isinstance(v, bool)
                              or v < 1):
            raise (ValueError if isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                   else TypeError)(f"{fname}: {name} must be a positive int, got {v!r}")
    for name, v, low in (("atol", atol, 0.0), ("rtol", rtol, 0.0), ("eps", eps, None)):
        if v is None:
            continue
        if not isinstance(v, (int, float, np.integer, np.floating)) or isinstance(v, bool):
            raise TypeError(f"{fname}: {name} must be a number, got {v!r}")
        if not (v >= 0.0 if low is not None else v > 0.0) or not np.isfinite(v):
            raise ValueError(f"{fname}: {name} must be a finite "
                             f"{'non-negative' if low is not None else 'positive'} number, "
                             f"got {v!r}")
    if modes is _UNSET:
        return None
    modes = (modes,) if isinstance(modes, str) else modes
    if not isinstance(modes, (tuple, list, set, frozenset)) or not modes:
        raise TypeError(f"{fname}: modes must be a non-empty tuple of 'fwd' and/or 'rev', got "
                        f"{modes!r}")
    for mode in modes:
        if mode not in ("fwd", "rev"):
            raise ValueError(f"{fname}: modes must contain 'fwd' and/or 'rev', got {mode!r}")
    return tuple(modes)


def numerical_jacobian(f, args, eps=None):
    """Jacobians of ``f`` at ``args`` by Richardson-extrapolated central differences.

    Returns one Jacobian per argument, shaped ``(out.size,) + arg.shape`` (``None`` for a
    non-float argument), always in float64.

    >>> import numpy as np, dualgrad as dg
    >>> J, = dg.numerical_jacobian(lambda x: x ** 2, (np.array([1.0, 3.0]),))
    >>> np.round(J, 6)
    array([[2., 0.],
           [0., 6.]])
    """
    _check_options("numerical_jacobian", eps=eps)
    _real_args(args, "numerical_jacobian")
    args = [np.asarray(a, dtype=np.float64) if _is_float(a) else a for a in args]
    m = _eval64(f, args).size
    out = []
    for i, a in enumerate(args):
        if not _is_float(a):
            out.append(None)
            continue
        flat = np.reshape(a, -1)
        J = np.zeros((m, flat.size))
        for k in range(flat.size):
            h = (1e-3 if eps is None else eps) * max(1.0, abs(flat[k]))
            J[:, k] = _richardson(f, args, i, k, h)
        out.append(J.reshape((m,) + np.shape(a)))
    return out


def _directional(f, args, i, v, h):
    def at(s):
        a = list(args)
        a[i] = args[i] + s * v
        return _eval64(f, a)
    return (at(h) - at(-h)) / (2 * h)


def _richardson(f, args, i, k, h):
    v = np.zeros(np.size(args[i]))
    v[k] = 1.0
    v = v.reshape(np.shape(args[i]))
    return (4 * _directional(f, args, i, v, h / 2) - _directional(f, args, i, v, h)) / 3


def _numeric_directional(f, args, i, v, eps=None):
    """The derivative along ``v`` by Richardson-extrapolated central differences, with
    the step along the unit direction the full Jacobian's step would take per entry: a
    random ``v`` of n entries has norm ~sqrt(n), and stepping h * v unscaled put the
    truncation error of a 500-vector at 0.25% (a right derivative reported wrong)."""
    h = (1e-3 if eps is None else eps) * max(1.0, float(np.max(np.abs(args[i]), initial=0)))
    h /= max(1.0, float(np.sqrt(np.sum(np.abs(v) ** 2))))
    return (4 * _directional(f, args, i, v, h / 2) - _directional(f, args, i, v, h)) / 3


def _compare(analytic, numeric, what, atol, rtol):
    analytic = np.asarray(unbox(analytic), dtype=np.float64).reshape(np.shape(numeric))
    err = np.abs(analytic - numeric)
    bound = atol + rtol * np.abs(numeric)
    if analytic.size and (not np.all(np.isfinite(analytic)) or np.any(err > bound)):
        excess = np.where(np.isfinite(err), err - bound, np.inf)
        worst = np.unravel_index(int(np.argmax(excess)), np.shape(numeric))
        raise AssertionError(
            f"check_grads: {what} is wrong at index {tuple(int(i) for i in worst)}: "
            f"analytic {analytic[worst]!r}, numeric {numeric[worst]!r}, "
            f"error {err[worst]:.3g} (atol {atol:g}, rtol {rtol:g})")


def _tolerances(args, atol, rtol):
    low = any(_is_float(a) and np.result_type(unbox(a)).itemsize < 8 for a in args)
    default = 1e-3 if low else 1e-6
    return (default if atol is None else atol), (default if rtol is None else rtol)


def check_grads(f, args, order=1, modes=("fwd", "rev"), atol=None, rtol=None, eps=None):
    """Check forward and/or reverse derivatives of ``f`` up to ``order`` against finite
    differences; raises ``AssertionError`` naming the argument and worst entry.

    >>> import numpy as np, dualgrad as dg
    >>> dg.check_grads(np.sin, (np.array([0.5, 1.0]),), order=2)

    Integer, bool and object arguments are held constant; with no floating-point
    argument there is nothing to check, and that is an error rather than a pass:

    >>> dg.check_grads(np.sin, (1,))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: check_grads: no argument is floating-point (got int64), so there is ...
    """
    modes = _check_options("check_grads", atol, rtol, eps, order=order, modes=modes)
    _real_args(args, "check_grads")
    atol, rtol = _tolerances(args, atol, rtol)
    args = tuple(args)
    g = _as_vector_fn(f)
    rng = np.random.default_rng(0)
    for i, a in enumerate(args):
        if not _is_float(a):
            continue
        if np.size(a) <= _FULL_LIMIT:
            num = numerical_jacobian(f, args, eps)[i]
            for mode in modes:
                jac = (jacfwd if mode == "fwd" else jacrev)(g, argnums=i)(*args)
                name = "forward" if mode == "fwd" else "reverse"
                _compare(jac, num, f"{name}-mode derivative with respect to argument {i}",
                         atol, rtol)
        else:
            v = rng.standard_normal(np.shape(a))
            num = _numeric_directional(f, [np.asarray(x, np.float64) if _is_float(x) else x
                                           for x in args], i, v, eps)
            if "fwd" in modes:
                tans = tuple(v.astype(np.result_type(x)) if j == i else np.zeros_like(x)
                             for j, x in enumerate(args))
                _compare(jvp(g, args, tans)[1], num,
                         f"forward-mode derivative with respect to argument {i} (direction)",
                         atol, rtol)
            if "rev" in modes:
                u = rng.standard_normal(num.shape)
                ct = vjp(g, *args)[1](u.astype(np.result_type(_eval64(f, args))))[i]
                _compare(np.sum(np.asarray(unbox(ct), np.float64) * v), np.dot(u, num),
                         f"reverse-mode derivative with respect to argument {i} "
                         "(<u, J v> identity)", atol, rtol)
    if order > 1:
        v = [rng.standard_normal(np.shape(a)) if _is_float(a) else None for a in args]
        if "fwd" in modes:
            def f_jvp(*a):
                tans = tuple(np.asarray(vi, np.result_type(unbox(x))) if vi is not None
                             else np.zeros_like(unbox(x)) for x, vi in zip(a, v))
                return jvp(g, a, tans)[1]
            check_grads(f_jvp, args, order - 1, modes, atol, rtol, eps)
        if "rev" in modes:
            u = rng.standard_normal(np.shape(_eval64(f, args)))

            def f_vjp(*a):
                cts = vjp(g, *a)[1](u)
                return [c for c, x in zip(cts, a) if _is_float(x)]
            check_grads(f_vjp, args, order - 1, modes, atol, rtol, eps)


def check_jvp(f, args, jvp_fn=None, atol=None, rtol=None, eps=None, trials=3):
    """Check a forward rule ``jvp_fn(primals, tangents) -> (out, tangent_out)`` (default:
    ``dg.jvp`` of ``f``) against finite differences in random directions.

    >>> import numpy as np, dualgrad as dg
    >>> dg.check_jvp(np.tanh, (np.array([0.1, 2.0]),))
    """
    _check_options("check_jvp", atol, rtol, eps, trials=trials)
    _real_args(args, "check_jvp")
    atol, rtol = _tolerances(args, atol, rtol)
    jvp_fn = jvp_fn or (lambda p, t: jvp(f, p, t))
    rng = np.random.default_rng(1)
    args64 = [np.asarray(a, np.float64) if _is_float(a) else a for a in args]
    for _ in range(trials):
        vs = [rng.standard_normal(np.shape(a)) if _is_float(a) else None for a in args]
        num = sum(_numeric_directional(f, args64, i, v, eps)
                  for i, v in enumerate(vs) if v is not None)
        tans = tuple(np.asarray(v, np.result_type(unbox(a))) if v is not None
                     else np.zeros_like(a) for a, v in zip(args, vs))
        _, t_out = jvp_fn(tuple(args), tans)
        leaves, _ = tree_flatten(t_out)
        t_flat = np.concatenate([np.reshape(unbox(x), -1) for x in leaves])
        _compare(t_flat, num, "the JVP (tangent output in a random direction)", atol, rtol)


def check_vjp(f, args, vjp_fn=None, atol=None, rtol=None, eps=None, trials=3):
    """Check a reverse rule ``vjp_fn(*primals) -> (out, pullback)`` (default: ``dg.vjp``
    of ``f``) with the identity <u, J v> = <J^T u, v>, J v by finite differences.

    >>> import numpy as np, dualgrad as dg
    >>> dg.check_vjp(lambda x: np.cumsum(x ** 2), (np.array([0.1, 2.0]),))
    """
    _check_options("check_vjp", atol, rtol, eps, trials=trials)
    _real_args(args, "check_vjp")
    atol, rtol = _tolerances(args, atol, rtol)
    vjp_fn = vjp_fn or (lambda *p: vjp(f, *p))
    rng = np.random.default_rng(2)
    args64 = [np.asarray(a, np.float64) if _is_float(a) else a for a in args]
    for _ in range(trials):
        out, pull = vjp_fn(*args)
        u = rng.standard_normal(np.shape(unbox(out)))
        cts = pull(np.asarray(u, np.result_type(unbox(out))))
        for i, a in enumerate(args):
            if not _is_float(a):
                continue
            v = rng.standard_normal(np.shape(a))
            num = float(np.dot(u.reshape(-1), _numeric_directional(f, args64, i, v, eps)))
            ana = float(np.sum(np.asarray(unbox(cts[i]), np.float64) * v))
            _compare(np.array([ana]), np.array([num]),
                     f"the VJP with respect to argument {i} (<u, J v> identity)", atol, rtol)
