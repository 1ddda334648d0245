"""The primitive table: how a row is declared, the registry, and the helpers every
family of rows shares.

One row per primitive, in the family modules of this package (``elementwise``,
``structure``, ``indexing``, ``reductions``, ``einsum``, ``linalg``, ``nn``, ``fft``;
``special`` with scipy).  Rules are written with primitives (``multiply``, ``cos``,
``sum_``...), never with raw numpy, so the derivative of a derivative is just another
traced computation: that is all ``grad(grad(f))`` needs.

Elementwise rows give *local derivatives*: ``defunary(np.sin, lambda ans, x: cos(x))``
means d sin(x)/dx = cos(x); the JVP multiplies it by the tangent, the VJP by
the cotangent, and broadcasting is undone in one place (``unbroadcast``).
Structural rows give their rules in full.

Batching convention: a tangent or cotangent may carry extra *leading* axes
(k directions at once, for ``jacfwd``/``jacrev``).  A rule finds how many with
``ndim(t) - ndim(x)``; parameters that name axes are stored as negative
numbers, so the same call works with or without the extra axes.

``domain`` says where the generated tests sample inputs: ``"real"``,
``"positive"``, ``"unit"`` (|x| < 1), ``"above1"`` (x > 1), ``"nonzero"``.

The families import this module, so the helpers here that call rows (``unbroadcast``
calls ``sum_``) find them as ``P.sum_``: the package, looked up when the helper runs.
"""

import operator

import numpy as np

from .. import backend
from .. import rules as P  # the rows, by name, when a helper runs (see above)
from ..core.trace import Box, Primitive, unbox

TABLE = {}   # name -> Primitive
UFUNCS = {}  # numpy ufunc -> Primitive (the elementwise rows)
# rows whose rules check their arguments before computing (``real_only``): a path that
# computes a row's forms itself (transforms/steps.py) leaves these to their rules
CHECKED = set()
SCALARS = frozenset((float, int, bool, np.float64, np.float32, complex))  # shape ()
REALS = frozenset((float, int, bool, np.float64, np.float32))  # never complex: no dtype test


def defprim(name, impl, jvp=None, vjp=None, ufunc=None, real_only=None, scalar=None,
            dtype=None, forms=None, **opts):
    """Register a primitive.  ``real_only`` (a reason) makes its rules refuse complex
    values with a TypeError naming it; ``scalar`` is its scalar form (``Primitive``; a
    numpy ufunc row gets ``ufunc_form(ufunc)``); ``dtype`` is its dtype rule (below: a
    numpy ufunc row gets ``ufunc_dtype(ufunc)``, any other ``promote``); ``forms`` are an
    elementwise row's VJP, one form per argument (``vjp_of``), given instead of ``vjp``;
    the other options are ``Primitive``'s."""
    if forms is not None:
        if vjp is not None:
            raise TypeError(f"defprim({name!r}): give forms= or vjp=, not both (the VJP "
                            "rules are built from the forms)")
        vjp = vjp_of(forms)
    if real_only is not None:
        jvp, vjp = _real_only(name, jvp, real_only), _real_only(name, vjp, real_only)
    if scalar is None and ufunc is not None:
        scalar = ufunc_form(ufunc)
    if dtype is None:
        dtype = ufunc_dtype(ufunc) if isinstance(ufunc, np.ufunc) else promote
    prim = Primitive(name, impl, jvp, vjp, ufunc=ufunc, scalar=scalar, dtype=dtype,
                     forms=forms, **opts)
    TABLE[name] = prim
    if real_only is not None:
        CHECKED.add(prim)
    if ufunc is not None:
        UFUNCS[ufunc] = prim
    return prim


def _identity(t, ans, *args, **kw):
    return t


def vjp_of(forms):
    """The VJP rules of an elementwise row, from one form per argument: ``"id"`` (the
    cotangent g itself), ``"neg"`` (-g), ``("mul", f)`` (g * f(ans, *args), f a local
    derivative, or a pair ``(c, v)`` for c * v with c a power of two: ``times_local``) or
    ``("div", f)`` (g / f(ans, *args)).  Written with rows, so they
    differentiate again; the first-order sweep (transforms/reverse.py) runs the same
    forms in place, so each derivative is written once, in its row's forms.

    >>> from dualgrad import rules
    >>> (mul_x, mul_y), _ = rules.TABLE["multiply"].forms
    >>> mul_x, mul_y[0]
    (('mul', <function <lambda> at ...>), 'mul')
    """
    rules = []
    for form in forms:
        if form == "id":
            rules.append(_identity)
        elif form == "neg":  # host values: one class test more (see _dask_fill)
            rules.append(lambda g, ans, *args: P.negative(g) if g.__class__ in _HOST
                         else _negated(g))
        elif isinstance(form, tuple) and len(form) == 2 and callable(form[1]) \
                and form[0] == "mul":
            rules.append(lambda g, ans, *args, f=form[1]: times_local(g, f(ans, *args)))
        elif isinstance(form, tuple) and len(form) == 2 and callable(form[1]) \
                and form[0] == "div":
            rules.append(lambda g, ans, *args, f=form[1]: P.divide(g, f(ans, *args)))
        else:
            raise ValueError(f"forms: expected 'id', 'neg', ('mul', f) or ('div', f) for "
                             f"each argument, got {form!r}")
    return tuple(rules)


_HOST = SCALARS | {np.ndarray}  # a cotangent of these classes holds no dask fill


def _dask_fill(g):
    """The number a raw dask cotangent holds everywhere (a reduction's seed broadcast back,
    ``backend.dask.full``), else None.  ``-g`` and ``g * d`` are then written with the
    number, so the broadcast array is read by no task: dask fuses an array that two
    operations of a chunk read into neither (it nests a subgraph in the chunk's task,
    about 0.1 ms a chunk), and ``-g`` would be a pass of its own."""
    if isinstance(g, Box) or not backend.dask.is_dask_array(g):
        return None
    return backend.dask.fill_of(g)


def scaled_first(g, v):
    """For ``g * (c * v)``, c a power of two (a local derivative given as the pair
    ``(c, v)``): whether ``(g * c) * v`` is the cheaper order, the same bits (scaling by a
    power of two is exact, short of overflow): where v is a Dual of raw arrays and g raw
    (eager forward over reverse: one pass over the tangents instead of two), or g is the
    smaller raw array."""
    if isinstance(v, Box):  # a Dual of raw arrays, g raw: eager forward over reverse
        return not isinstance(g, Box) and v.value.__class__ is np.ndarray \
            and getattr(v, "tangent", None).__class__ is np.ndarray
    if isinstance(g, Box):
        return False  # (a graph being recorded keeps the rules' order: its fusion is tuned
    return np.size(g) < np.size(v)  # to it, dg.jit's Hessian 15 us against 25)


def times_local(g, d):
    """``g`` times the local derivative ``d`` of a ("mul", f) form (vjp_of) or a JVP rule:
    ``d`` a value, or a pair ``(c, v)`` standing for c * v, c a power of two, multiplied in
    the cheaper order (``scaled_first``)."""
    if d.__class__ is tuple:
        c, v = d
        if g.__class__ in _HOST and scaled_first(g, v):
            return P.multiply(P.multiply(g, c), v)
        d = P.multiply(v, c)
    return P.multiply(g, d) if g.__class__ in _HOST else _times(g, d)


def _negated(g):
    v = _dask_fill(g)
    return P.negative(g) if v is None else backend.dask.full(shape_of(g), -v, g.dtype, g)


def _times(g, d):
    v = _dask_fill(g)
    if v is None or not backend.dask.is_dask_array(device_like(d) if isinstance(d, Box)
                                                    else d) or shape_of(d) != shape_of(g):
        return P.multiply(g, d)
    # a traced d too (dg.jit's recording, a second derivative): d times the number, so
    # a recorded graph holds no broadcast constant either
    return P.multiply(d, np.asarray(v, g.dtype)[()])  # g * d's dtype: g's is not weak


_OPERATORS = {np.add: "({} + {})", np.subtract: "({} - {})", np.multiply: "({} * {})",
              np.true_divide: "({} / {})", np.negative: "(-{})", np.positive: "(+{})"}


def ufunc_form(ufunc):
    """The scalar form of a numpy ufunc row: the operator (``(x + y)``) or the ufunc on
    scalars (``np.sin(x)``), which numba compiles and plain Python runs.  None for a
    gufunc (matmul) or a ufunc outside numpy's namespace (scipy.special's)."""
    if not isinstance(ufunc, np.ufunc) or ufunc.signature is not None \
            or getattr(np, ufunc.__name__, None) is not ufunc:
        return None
    form = _OPERATORS.get(ufunc)
    if form is not None:
        return form.format
    return lambda *args: f"np.{ufunc.__name__}({', '.join(args)})"


def _fused(fused, name):
    """A row's fused value-and-derivative kernel: ``fused=True`` takes the backend's row of
    the same name, a string names another (``absolute`` -> ``"abs"``)."""
    if not fused:
        return None
    return backend.fused_unary(name if fused is True else fused)


def reference_derivative(name):
    """The local derivative ``deriv(ans, x)`` of the backend's unary row ``name``
    (``backend/reference.py``'s ``UNARY``: f'(x) from x and y = f(x)), the one formula the
    row, its fused numpy and numba kernels and its CUDA twin all compute.  It is written
    with numpy functions and operators, so it runs on raw arrays, on numba scalars and on
    traced values (then as rows, and differentiates again).

    >>> import numpy as np
    >>> from dualgrad import rules
    >>> y = np.tanh(0.5)
    >>> bool(np.isclose(rules.reference_derivative("tanh")(y, 0.5), 1 - y * y, rtol=1e-15))
    True
    """
    _, df = backend.reference.row(name)

    def deriv(ans, x):
        if x.__class__ is float:  # numpy's float: 1 / 0.0 is inf (and a warning), not an error
            x = np.float64(x)
        return df(x, ans)
    return deriv


def defunary(ufunc, deriv=None, domain="real", smooth=True, impl=None, name=None, fused=False,
             real_only=None, vector=None, dtype=None):
    """An elementwise primitive from its local derivative ``deriv(ans, x)``.

    ``fused``: the backend has a kernel computing f(x) and f'(x) in one pass (ReverseDiff's
    ForwardOptimize); where it wins on this machine, recording keeps f'(x) on the tape and
    the first-order reverse step is one multiply.  Higher orders use ``deriv``, which a
    fused row leaves out: it is then the kernel's own (``reference_derivative``).
    """
    name = name or ufunc.__name__
    if deriv is None:
        if not fused:
            raise TypeError(f"defunary({name!r}): give deriv, the local derivative "
                            "(only a fused row takes its kernel's)")
        deriv = reference_derivative(name if fused is True else fused)
    return defprim(name, impl or ufunc,
                   jvp=(lambda t, ans, x: P.multiply(t, deriv(ans, x)),),
                   forms=(("mul", deriv),), ufunc=ufunc, fused=_fused(fused, name),
                   domain=domain, smooth=smooth, real_only=real_only, vector=vector,
                   dtype=dtype)


def defbinary(ufunc, dx, dy, domain="real", smooth=True, impl=None, name=None,
              real_only=None, dtype=None):
    """A broadcasting elementwise primitive from its two local partials."""
    return defprim(name or ufunc.__name__, impl or ufunc,
                   jvp=(lambda t, ans, x, y: times_local(t, dx(ans, x, y)),
                        lambda t, ans, x, y: times_local(t, dy(ans, x, y))),
                   forms=(("mul", dx), ("mul", dy)), ufunc=ufunc, bcast=True, domain=domain,
                   smooth=smooth, real_only=real_only, dtype=dtype)


def is_complex(x):
    """True for a complex value (traced or raw, array or scalar)."""
    c = x.__class__
    if c is np.ndarray:
        return x.dtype.kind == "c"
    if c in REALS:
        return False
    while isinstance(x, Box):
        x = x.value
    if x.__class__ is complex:
        return True
    dt = getattr(x, "dtype", None)
    return dt is not None and dt.kind == "c"


def _real_only(name, rules, why):
    """``rules`` guarded: a complex argument or result raises TypeError naming the row."""
    def guard(rule):
        if rule is None:
            return None

        def checked(t, ans, *args, **kw):
            if is_complex(ans) or any(is_complex(a) for a in args):
                raise TypeError(f"dualgrad has no derivative rule for {name!r} of complex "
                                f"values ({why})")
            return rule(t, ans, *args, **kw)
        return checked
    if rules is None:
        return None
    return guard(rules) if callable(rules) else tuple(guard(r) for r in rules)


# ---------------------------------------------------------------------------
# shape helpers used by the rules (raw shape arithmetic, no derivatives)
# ---------------------------------------------------------------------------

def shape_of(x):
    """The shape of a value, raw or traced (numbers, arrays, boxes, nested lists)."""
    c = x.__class__
    if c is np.ndarray:
        return x.shape
    if c in SCALARS:
        return ()
    s = getattr(x, "shape", None)
    return np.shape(x) if s is None else s


def ndim_of(x):
    return x.ndim if x.__class__ is np.ndarray else len(shape_of(x))


def unbroadcast(c, shape, nb):
    """Sum cotangent ``c`` (with ``nb`` leading batch axes) back to ``shape``."""
    cs = shape_of(c)
    target = cs[:nb] + tuple(shape)
    if cs == target:
        return c
    extra = len(cs) - len(target)
    if extra < 0:
        return P.broadcast_to(c, target)
    axes = tuple(range(nb, nb + extra)) + tuple(
        nb + extra + i for i, s in enumerate(shape) if s == 1 and cs[nb + extra + i] != 1)
    if axes:
        c = P.sum_(c, axis=tuple(a - len(cs) for a in axes), keepdims=True)
    return P.reshape(c, target) if shape_of(c) != target else c


def align_tangent(t, x, ans):
    """Give a batched tangent of ``x`` the rank of ``ans`` so broadcasting lines up."""
    nx, na = ndim_of(x), ndim_of(ans)
    if nx >= na:
        return t
    nb = ndim_of(t) - nx
    if nb == 0:
        return t
    s = shape_of(t)
    return P.reshape(t, s[:nb] + (1,) * (na - nx) + s[nb:])


def broadcast_tangent(t, ans):
    """Broadcast a tangent to (batch axes) + ans.shape if a zero partner left it short."""
    st, sa = shape_of(t), shape_of(ans)
    if len(st) < len(sa):
        return P.broadcast_to(t, sa)
    nb = len(st) - len(sa)
    if st[nb:] != sa:
        return P.broadcast_to(t, st[:nb] + sa)
    return t


def normalize_axes(axis, nd, name="axis"):
    """numpy's axis argument as a tuple of negative axes (None: all axes), the form the
    rows take (negative axes still name the same axes under leading batch axes)."""
    if axis is None:
        return tuple(range(-nd, 0))
    if not isinstance(axis, (tuple, list)):
        axis = (axis,)
    out = []
    for a in axis:
        a = operator.index(a)
        if not -nd <= a < nd:
            raise np.exceptions.AxisError(f"{name}={a} is out of bounds for an array of "
                                          f"dimension {nd}")
        out.append(a - nd if a >= 0 else a)
    return tuple(out)


def batch_shape(t, x):
    """The leading batch shape of tangent/cotangent ``t`` over primal ``x``."""
    return shape_of(t)[:ndim_of(t) - ndim_of(x)]


def float_dtype(x):
    """The floating dtype a derivative of ``x`` has: x's own for a float array, float64
    for Python numbers and integers.  (A Python ``1.0`` is a *weak* float under NumPy 2's
    promotion rules, so float16/32/64 and longdouble arrays keep their dtype.)"""
    return np.result_type(unbox(x), 1.0)


def device_like(x):
    """The raw array under ``x`` when it is not numpy's (a CuPy array, or any array with
    ``__array_namespace__`` or ``__cuda_array_interface__``), else None.  Rules pass it
    as ``like=`` to numpy's constructors (NEP 35), so a constant mask or identity is
    made where x lives; ``like=None`` is numpy's own path, reached by one class test.

    >>> device_like(np.ones(2)) is None and device_like(2.0) is None
    True
    """
    while isinstance(x, Box):
        x = x.value
    c = x.__class__
    if c is np.ndarray or c in SCALARS:
        return None
    x = getattr(x, "__dualgrad_raw__", x)  # dg.jit's view of a recorded value: the value
    return x if backend.is_foreign_array(x) else None


def no_lazy_form(x, rule, why):
    """A NotImplementedError naming ``rule`` when ``x`` is a dask array: a rule that would
    read x's values has no lazy form on dask, and dualgrad never computes one silently."""
    if x.__class__ is not np.ndarray and backend.dask.is_dask_array(device_like(x)):
        raise backend.dask.refuse(rule, why)


def may_any(mask):
    """``np.any(mask)`` for a host mask; True for a device mask, whose answer would be a
    copy to the host: the caller then takes its branch-free ``where`` path, which gives
    the same values (it only skips work when nothing is masked)."""
    if mask.__class__ is not np.ndarray and device_like(mask) is not None:
        return True
    return bool(np.any(mask))


def float_mask(cond, like):
    """A float 0/1 array from a boolean condition (constant: no derivative).  Conditions
    are comparisons of the rule's arguments themselves (``x > y``, not of their raw
    values): under ``dg.jit`` a comparison is a graph node and the mask follows new
    values, where reading the raw values would guard on them (a retrace per new input)."""
    if isinstance(cond, Box):  # dg.jit's graph or dg.vmap's batch: the mask is traced too
        return P.astype(cond, dtype=float_dtype(like))
    c = unbox(cond)
    if isinstance(c, Box):  # a batch (dg.vmap): one condition per example
        return P.astype(c, dtype=float_dtype(like))
    if c.__class__ is not np.ndarray and device_like(c) is not None:
        return c.astype(float_dtype(like))  # on the device: no host copy
    return np.asarray(c, dtype=float_dtype(like))


# ---------------------------------------------------------------------------
# dtype rules (as JAX's ``unop``/``binop`` dtype rules): ``dtype(*args, **params)`` gives
# the dtype of a row's result from its arguments alone, ``prim.dtype_of(x, y)``.  The
# arguments are arrays or anything with a ``dtype``; a Python number is weakly typed, as
# numpy's promotion treats it (float32 times 2.0 is float32).  Other positional
# arguments (an index, a shape) do not take part.
# ---------------------------------------------------------------------------

_WEAK = frozenset((bool, int, float, complex))


def _typed(args):
    """The arguments that take part in promotion: dtypes, and Python numbers as they are."""
    for a in args:
        if a.__class__ in _WEAK:
            yield a
        else:
            d = getattr(a, "dtype", None)
            if d is not None:
                yield d


def promote(*args, **params):
    """numpy's result dtype for the arguments (``np.result_type``): the default rule.

    >>> promote(np.ones(2, np.float32), 2.0), promote(np.ones(2, np.float32), 2j)
    (dtype('float32'), dtype('complex64'))
    """
    return np.result_type(*_typed(args))


def ufunc_dtype(ufunc):
    """The rule of a row computing the numpy ufunc ``ufunc``: numpy's own loop selection
    (an integer ``sqrt`` is float64, ``absolute`` of a complex value is real)."""
    def rule(*args, **params):
        ins = tuple(_loop_type(a) for a in _typed(args))
        return ufunc.resolve_dtypes(ins + (None,) * ufunc.nout)[ufunc.nin]
    return rule


def _loop_type(a):
    """What ``ufunc.resolve_dtypes`` takes: a dtype, or a Python number's type (weak)."""
    if a.__class__ is bool:
        return np.dtype(bool)
    return a.__class__ if a.__class__ in _WEAK else a


def arg_dtype(i=0):
    """The rule "argument ``i``'s dtype": a gather, a copy or an update of it keeps it
    (a Python number: its float dtype, as ``float_dtype``)."""
    def rule(*args, **params):
        d = getattr(args[i], "dtype", None)
        return np.dtype(d) if d is not None else float_dtype(args[i])
    return rule


def param_dtype(name):
    """The rule "the dtype named by parameter ``name``" (``astype(x, dtype=...)``)."""
    return lambda *args, **params: np.dtype(params[name])


def real_dtype(*args, **params):
    """The real dtype of the promoted arguments: complex64 -> float32, float32 stays
    (``real``, ``imag``, ``abs`` of a complex value, ``irfft``, ``logabsdet``)."""
    return np.empty(0, promote(*args)).real.dtype


def complex_dtype(*args, **params):
    """The complex dtype of the promoted arguments: float32 -> complex64, float64 ->
    complex128 (``fft``, ``rfft``, ``eig``, whose results are complex for real input)."""
    return np.result_type(promote(*args), np.complex64)


def float_result(*args, **params):
    """numpy's result dtype, at least floating: float32 stays, an integer is float64
    (scipy.special's rows, computed by ``rules/special._keep_dtype``)."""
    return np.result_type(*_typed(args), 1.0)


_raw = unbox


# ---------------------------------------------------------------------------
# batching rules (dg.vmap, vmap.py)
#
# ``batch(args, dims, **kw)`` gets the arguments one level down with their batch axis
# (an int, or None for an argument without one) and returns ``(ans, out_dim)``.  Most
# rules move the batch axis to the front and call the primitive again: the rows name
# axes by negative numbers, so the same ``axis`` still means the same axes.  Elementwise
# rows need no rule of their own: ``align_batched`` is theirs (vmap.py applies it).
# ---------------------------------------------------------------------------

def bfront(x, d):
    """``x`` with its batch axis ``d`` moved to the front (``None``: as it is)."""
    if not d:
        return x
    n = ndim_of(x)
    return P.transpose(x, axes=(d,) + tuple(i for i in range(n) if i != d))


def batch_size(args, dims):
    return next(shape_of(a)[d] for a, d in zip(args, dims) if d is not None)


def align_batched(args, dims):
    """Batched arguments with the batch axis in front and ranks padded (size-1 axes after
    it) so numpy's broadcasting lines the rest up; unbatched ones as they are."""
    nd = max(ndim_of(a) - (d is not None) for a, d in zip(args, dims))
    out = []
    for a, d in zip(args, dims):
        if d is not None:
            a = bfront(a, d)
            s = shape_of(a)
            if len(s) - 1 < nd:
                a = P.reshape(a, s[:1] + (1,) * (nd - len(s) + 1) + s[1:])
        out.append(a)
    return out


def batch_all(args, dims):
    """Every argument with a batch axis in front, the unbatched ones broadcast to it."""
    n = batch_size(args, dims)
    return [bfront(a, d) if d is not None else P.broadcast_to(a, shape=(n,) + shape_of(a))
            for a, d in zip(args, dims)]


def _shift_axes(kw):
    """Non-negative ``axis`` parameters moved past the new leading batch axis."""
    a = kw.get("axis")
    if a is None or (a.__class__ is int and a < 0):
        return kw
    if isinstance(a, tuple):
        a = tuple(i + 1 if i >= 0 else i for i in a)
    else:
        a = a + 1 if a >= 0 else a
    return dict(kw, axis=a)


def batch_trailing(name, n=1):
    """The rule of a row acting on trailing axes of its arguments (reductions, flip,
    concatenate, stacked linear algebra, softmax...): batch axes in front, re-apply.

    >>> import numpy as np, dualgrad as dg
    >>> dg.vmap(lambda x: np.sum(x, axis=0), in_axes=1)(np.ones((2, 3))).tolist()
    [2.0, 2.0, 2.0]
    """
    def rule(args, dims, **kw):
        k = len(args) if n is None else n  # the array arguments; then parameters
        return TABLE[name](*batch_all(args[:k], dims[:k]), *args[k:], **_shift_axes(kw)), 0
    return rule
