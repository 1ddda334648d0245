"""Function transforms with JAX's signatures, built on the tape and on dual numbers.

Reverse mode (``grad``, ``value_and_grad``, ``vjp``, ``jacrev``) records the
function on a fresh ``Tape`` and sweeps it backwards.  Forward mode (``jvp``,
``jacfwd``, ``linearize``) pushes ``Dual`` values through it.  ``hessian`` and
``hvp`` are forward-over-reverse.  Every transform starts its own trace, so
they nest in any order.

    >>> import numpy as np, dualgrad as dg
    >>> f = lambda x: np.sum(np.sin(x) * x)
    >>> dg.grad(f)(np.array([0.0, 1.0]))
    array([0.        , 1.38177329])
"""

import functools

import numpy as np

from ..backend.dask import is_dask_array
from ..core.buffers import distinct, gc_paused
from ..core.trace import OBJECTS, Box, unbox
from ..core.tree import LEAF, LEAF_DEF, tree_flatten, tree_map, tree_unflatten
from ..core.validate import FLOAT64, check_differentiable, check_tangent, dtype_of
from ..numpy.objects import lift_out
from ..numpy.preallocated import call as _call  # f(*args) as a transform calls it
from ..rules import SCALARS, device_like, shape_of
from .forward import Dual, JVPTrace
from .reverse import Node, Tape

# ---------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------


def _is_index(a):
    """An int or a numpy integer, not a bool (``argnums=True`` is a mistake, not 1)."""
    return isinstance(a, (int, np.integer)) and not isinstance(a, (bool, np.bool_))


def _argnums(argnums, nargs, fname):
    """``argnums`` checked against a call with ``nargs`` positional arguments, as a tuple
    of non-negative indices.  An int (numpy's too) or a tuple/list of distinct ints.

    >>> _argnums(np.int64(-1), 2, "grad")
    (1,)
    >>> _argnums((0, 0), 2, "grad")
    Traceback (most recent call last):
    ...
    ValueError: grad: argnums=(0, 0) names argument 0 twice; each argument once
    """
    if _is_index(argnums):
        nums = (argnums,)
    elif isinstance(argnums, (tuple, list)):
        nums = tuple(argnums)
    else:
        raise TypeError(f"{fname}: argnums must be an int or a tuple of ints, got "
                        f"{argnums!r} of type {type(argnums).__name__}")
    if not nums:
        raise ValueError(f"{fname}: argnums must name at least one argument, got {argnums!r}")
    for a in nums:
        if not _is_index(a):
            raise TypeError(f"{fname}: argnums must be an int or a tuple of ints, got "
                            f"{argnums!r} (an entry of type {type(a).__name__})")
        if not -nargs <= a < nargs:
            raise ValueError(f"{fname}: argnums={argnums!r} is out of range for a function "
                             f"called with {nargs} positional argument(s)")
    out = tuple(int(a) % nargs for a in nums)
    if len(set(out)) != len(out):
        twice = next(a for a in out if out.count(a) > 1)
        raise ValueError(f"{fname}: argnums={argnums!r} names argument {twice} twice; each "
                         "argument once")
    return out


def _single(argnums):
    return _is_index(argnums)


def _check_outputs(outs, odef, fname, what="the function"):
    """f's output leaves are arrays or numbers: ``None``, a string or any other object is
    a TypeError naming its type (not a numpy error from deep inside the sweep).

    >>> _check_outputs(["loss"], None, "grad")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: grad: the function must return an array, a number or ...; got a str ('loss')
    """
    if not outs:
        got = "None" if odef == tree_flatten(None)[1] else "a pytree with no arrays in it"
        raise TypeError(f"{fname}: {what} must return an array, a number or a pytree of "
                        f"them; got {got}")
    for leaf in outs:
        raw = unbox(leaf)
        c = raw.__class__
        if c is float or c is np.ndarray and raw.dtype.kind in "biufc":
            continue
        if isinstance(raw, (int, float, complex, np.number, np.bool_)):
            continue
        dt = getattr(raw, "dtype", None)  # a device array, or dg.jit's recorded value
        if not isinstance(raw, (str, bytes, np.ndarray)) and isinstance(dt, np.dtype) \
                and dt.kind in "biufc":
            continue
        shown = repr(raw)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        kind = f"an array of dtype {raw.dtype}" if c is np.ndarray else \
            f"a {type(raw).__name__}"
        raise TypeError(f"{fname}: {what} must return an array, a number or a pytree of "
                        f"them; got {kind} ({shown})")


# ---------------------------------------------------------------------------
# reverse mode
# ---------------------------------------------------------------------------

def _lift_outs(out):
    """f's output with object arrays of traced values packed (numpy/objects.lift_out); a
    single traced value or plain array, the common case, as it is."""
    c = out.__class__
    if c is Node or c is Dual or c is float or (c is np.ndarray and out.dtype.kind != "O"):
        return out
    return tree_map(lift_out, out)


def _lower(x, trace):
    """Strip one level: values boxed by ``trace`` become their value."""
    return x.value if isinstance(x, Box) and x._trace is trace else x


def _packed(leaf):
    """``np.array([x, y])`` of traced values (an object array) as one traced array, as
    primitives see it; any other leaf as it is."""
    if leaf.__class__ is np.ndarray and leaf.dtype == object and OBJECTS[0]:
        return OBJECTS[0].pack(leaf)
    return leaf


def _record(f, args, kwargs, nums, has_aux, fname):
    """Run ``f`` with the arguments ``nums`` watched by a fresh tape."""
    tape = Tape(keep_adjoints=False)
    if fname not in ("vjp", "linearize"):  # the others are done with the tape when they
        tape.frozen = []  # return (a pullback, a linear map are not): large arrays are
        # read-only meanwhile, not copied (kept)
    args = list(args)
    inputs = []
    try:
        for i in nums:
            leaves, tdef = tree_flatten(args[i])
            nodes = []
            for leaf in leaves:
                nodes.append(tape.add_input(_packed(leaf), f"{fname}: argument {i}"))
            args[i] = tree_unflatten(tdef, nodes)
            # the inputs as recorded: f may write into its arguments (x[0] = v rebinds x)
            inputs.append((tdef, [(n.index, n.value) for n in nodes]))
        out = _lift_outs(_call(f, args, kwargs))
        aux = None
        if has_aux:
            if not (isinstance(out, (tuple, list)) and len(out) == 2):
                raise TypeError(f"{fname}(has_aux=True): the function must return a pair "
                                "(output, aux)")
            out, aux = out
            aux = tree_map(lambda v: _lower(v, tape), aux)
        outs, odef = tree_flatten(out)
        _check_outputs(outs, odef, fname)
    except BaseException:
        tape.done()  # (a traceback held on to would keep the user's arrays read-only)
        raise
    finally:
        tape.finish()
    return tape, inputs, outs, odef, aux


def _pull(tape, inputs, outs, cts, nb, once=False, paused=False):
    """Cotangents of the watched inputs, one pytree per argument (``once``: the tape is
    swept only this once, so the sweep may drop each entry as soon as it is swept;
    ``paused``: the caller holds ``gc_paused``)."""
    seeds = [(o.index, c) for o, c in zip(outs, cts)
             if o.__class__ is Node and o._trace is tape and c is not None]
    try:
        if not seeds:
            adj = []
        elif paused:
            adj = tape.sweep(seeds, nb, once=once)
        else:
            with gc_paused():
                adj = tape.sweep(seeds, nb, once=once)
    except BaseException:
        tape.done()
        raise
    if once:
        tape.done()  # the user's arrays it held read-only are writable again
    leaves = []
    arrays = False  # any numpy array among them
    for _, nodes in inputs:
        for index, value in nodes:
            c = adj[index] if index < len(adj) else None
            if c is None:
                raw = unbox(value)
                if not nb and device_like(raw) is not None:  # a device or dask array: its
                    c = np.zeros_like(raw, dtype=dtype_of(value))  # zeros where it lives
                else:
                    batch = shape_of(unbox(cts[0]))[:nb] if nb else ()
                    c = np.zeros(batch + shape_of(raw), dtype_of(value))
            cc = c.__class__
            if cc is np.ndarray:
                if c.ndim == 0:
                    c = c[()]  # a number for a number, as for the primal
                else:
                    arrays = True
            elif cc not in SCALARS and isinstance(c, Box) and c._trace.read is not None \
                    and c.value.__class__ is np.ndarray and c.value.ndim == 0:
                c = c[()]  # the same under dg.jit's graph, which records this step
            leaves.append(c)
    if arrays and (len(leaves) > 1 or any(c.__class__ is np.ndarray for c in cts)):
        leaves = distinct(leaves, cts)  # results of their own, apart from each other and
        # the caller's cotangents
    result, k = [], 0
    for tdef, nodes in inputs:
        m = len(nodes)
        result.append(leaves[k] if tdef is LEAF_DEF else tree_unflatten(tdef, leaves[k:k + m]))
        k += m
    return result


def _seed(dtype, raw=1.0):
    """The output cotangent 1 for grad: a number, or a 0-d array of the output's own array
    type when that is not numpy's (a device array stays on its device; under dg.jit the
    recorded value says which)."""
    raw = getattr(raw, "__dualgrad_raw__", raw)  # under dg.jit: the value it recorded
    c = raw.__class__
    if c not in _HOST_SCALARS and not isinstance(raw, np.ndarray) \
            and not c.__module__.startswith("dualgrad") and not is_dask_array(raw):
        return np.ones_like(raw)  # (dask takes a number chunk by chunk: no task of its own)
    return 1.0 if dtype is FLOAT64 else np.ones((), dtype)[()]


_HOST_SCALARS = frozenset((float, int, bool, complex, np.float64, np.float32, np.float16,
                           np.longdouble, np.complex64, np.complex128))


def _check_inputs(args, nums, holomorphic, fname, real_only=False):
    """JAX's input rules: ``holomorphic=True`` needs complex inputs; ``real_only``
    (``jacfwd`` without it) needs real ones."""
    if not (holomorphic or real_only):
        return
    for i in nums:
        for leaf in tree_flatten(args[i])[0]:
            dt = dtype_of(leaf)
            if holomorphic and dt.kind != "c":
                raise TypeError(f"{fname} with holomorphic=True requires inputs with complex "
                                f"dtype, but argument {i} has dtype {dt}")
            if not holomorphic and dt.kind == "c":
                raise TypeError(f"{fname} requires real-valued inputs, but argument {i} has "
                                f"dtype {dt}; for a holomorphic function pass "
                                "holomorphic=True, otherwise use dg.jvp directly")


def _check_output(dtype, holomorphic, fname):
    """JAX's output rules: a real output, or with ``holomorphic=True`` a complex one."""
    if holomorphic:
        if dtype.kind != "c":
            raise TypeError(f"{fname} with holomorphic=True requires outputs with complex "
                            f"dtype, but got {dtype}")
    elif dtype.kind == "c":
        raise TypeError(f"{fname} requires real-valued outputs, but got dtype {dtype}; for a "
                        "holomorphic function pass holomorphic=True, for any other complex "
                        "output use dg.vjp directly (or reduce it to a real number first, "
                        "e.g. with np.abs or np.real)")
    elif dtype.kind != "f":
        raise TypeError(f"{fname} requires a real floating-point output, got dtype {dtype}")


def _grad_seed(out, value, holomorphic):
    """grad's output cotangent 1 for ``value``, the output ``out`` one level down, checked:
    one element, a real floating-point dtype (complex with ``holomorphic``)."""
    shape = None if out is None else shape_of(unbox(value))
    if shape is None or (shape != () and int(np.prod(shape)) != 1):
        got = "a pytree" if out is None else f"shape {shape}"
        raise TypeError(f"grad requires a scalar output, got {got}; use dg.jacrev or "
                        "dg.vjp for non-scalar outputs")
    dtype = dtype_of(value)
    _check_output(dtype, holomorphic, "grad")
    seed = _seed(dtype, unbox(value))
    if shape != () and np.shape(seed) != shape:  # one element, as (1,) or (1, 1)
        seed = np.full(shape, seed, dtype)
    return seed


def value_and_grad(f, argnums=0, has_aux=False, holomorphic=False):
    """A function returning ``(f(*args), df/d args[argnums])`` for scalar-valued ``f``
(or an output with one element: the value keeps its shape, as ``grad``).

    Complex numbers and ``holomorphic``: as ``grad``.

    >>> import numpy as np, dualgrad as dg
    >>> dg.value_and_grad(lambda x: x ** 2)(3.0)
    (9.0, 6.0)
    """
    checked = {}  # number of positional arguments -> argnums checked against it

    @functools.wraps(f)
    def value_and_grad_f(*args, **kwargs):
        with gc_paused():  # record + sweep: a collection between them walks the tape
            nums = checked.get(len(args))
            if nums is None:
                nums = checked[len(args)] = _argnums(argnums, len(args), "grad")
            if holomorphic:
                _check_inputs(args, nums, holomorphic, "grad")
            tape, inputs, outs, odef, aux = _record(f, args, kwargs, nums, has_aux, "grad")
            out = outs[0] if len(outs) == 1 and odef == (LEAF,) else None
            value = _lower(out, tape)
            if value.__class__ is np.float64 and not holomorphic:
                seed = 1.0  # the common loss (what the checks below find for it, said once)
            else:
                seed = _grad_seed(out, value, holomorphic)
            g = _pull(tape, inputs, outs, [seed], 0, once=True, paused=True)
            g = g[0] if _single(argnums) else tuple(g)
            return ((value, aux) if has_aux else value), g
    return value_and_grad_f


def grad(f, argnums=0, has_aux=False, holomorphic=False):
    """The gradient of scalar-valued ``f`` with respect to ``args[argnums]``, by reverse mode.

    >>> import numpy as np, dualgrad as dg
    >>> f = lambda x1, x2: np.log(x1) + x1 * x2 - np.sin(x2)
    >>> [round(float(g), 4) for g in dg.grad(f, argnums=(0, 1))(2.0, 5.0)]
    [5.5, 1.7163]

    Complex numbers follow JAX.  A real input's gradient is real, even through complex
    intermediates.  For a real-valued ``f`` of a complex ``z = x + iy`` the gradient is
    ``df/dx - 1j * df/dy``: the *conjugate* of PyTorch's ``z.grad`` (so gradient descent
    steps ``z - lr * np.conj(g)``).  Here ``f = |z|**2`` gives ``2 * conj(z)``:

    >>> print(dg.grad(lambda z: np.real(z * np.conj(z)))(1.0 + 2.0j))
    (2-4j)

    A complex output needs ``holomorphic=True`` (and complex inputs); then ``grad(f)(z)``
    is the complex derivative ``f'(z)``:

    >>> print(dg.grad(lambda z: z * z, holomorphic=True)(1.0 + 2.0j))
    (2+4j)

    An output with exactly one element (shape ``(1,)``, ``(1, 1)``) counts as a scalar, as
    in HIPS autograd and PyTorch's ``backward()``: the gradient is that element's.  JAX
    refuses it (``jax.grad`` wants shape ``()``); any larger output is refused here too
    (use ``dg.jacrev`` or ``dg.vjp``):

    >>> dg.grad(lambda x: x[:1] * x[1])(np.array([2.0, 3.0]))
    array([3., 2.])
    """
    vg = value_and_grad(f, argnums, has_aux, holomorphic)

    @functools.wraps(f)
    def grad_f(*args, **kwargs):
        (value_aux, g) = vg(*args, **kwargs)
        return (g, value_aux[1]) if has_aux else g
    return grad_f


def vjp(f, *primals, has_aux=False):
    """``(f(*primals), vjp_fn)``; ``vjp_fn(cotangent)`` returns one cotangent per primal.

    >>> import numpy as np, dualgrad as dg
    >>> y, pull = dg.vjp(lambda x: x * 2.0, np.ones(2))
    >>> pull(np.array([1.0, 3.0]))
    (array([2., 6.]),)
    """
    tape, inputs, outs, odef, aux = _record(f, primals, {}, tuple(range(len(primals))),
                                            has_aux, "vjp")
    values = [_lower(o, tape) for o in outs]

    def vjp_fn(cotangent):
        cts, cdef = tree_flatten(cotangent)
        if cdef != odef:
            raise TypeError("vjp_fn: the cotangent must have the same tree structure as the "
                            "output of f")
        for k, (c, v) in enumerate(zip(cts, values)):
            if np.shape(unbox(c)) != np.shape(unbox(v)):
                raise ValueError(f"vjp_fn: cotangent {k} has shape {np.shape(unbox(c))}, but "
                                 f"the output has shape {np.shape(unbox(v))}")
            if dtype_of(c).kind == "c" and dtype_of(v).kind != "c":
                raise TypeError(f"vjp_fn: cotangent {k} is complex ({dtype_of(c)}), but the "
                                f"output is real ({dtype_of(v)}); a real output has a real "
                                "cotangent")
        return tuple(_pull(tape, inputs, outs, cts, 0))

    out = tree_unflatten(odef, values)
    return (out, vjp_fn, aux) if has_aux else (out, vjp_fn)


def _jac_tree(odef, per_out, single):
    return tree_unflatten(odef, [r[0] if single else tuple(r) for r in per_out])


def _row(g, s):
    """An input's gradient ``g`` as the Jacobian's one row for an output of shape ``s``
    (of one element): ``s + g.shape``, an array as the batched sweep gives it."""
    if g.__class__ in SCALARS:
        g = np.asarray(g)
    elif not s and isinstance(g, Box):
        return g
    return np.reshape(g, s + np.shape(unbox(g)))


def jacrev(f, argnums=0, has_aux=False, holomorphic=False):
    """The Jacobian by reverse mode: one sweep with all rows of the identity as cotangents.

    Shape convention: ``out.shape + in.shape``.  Complex numbers as JAX: real outputs (of
    real or complex inputs, the latter by ``grad``'s convention), or with
    ``holomorphic=True`` complex inputs and outputs, giving the complex derivative.

    >>> import numpy as np, dualgrad as dg
    >>> dg.jacrev(lambda x: x ** 2)(np.array([1.0, 2.0]))
    array([[2., 0.],
           [0., 4.]])
    """
    @functools.wraps(f)
    def jacrev_f(*args, **kwargs):
        with gc_paused():  # record + sweep: a collection between them walks the tape
            nums = _argnums(argnums, len(args), "jacrev")
            _check_inputs(args, nums, holomorphic, "jacrev")
            tape, inputs, outs, odef, aux = _record(f, args, kwargs, nums, has_aux, "jacrev")
            values = [_lower(o, tape) for o in outs]
            for v in values:
                _check_output(dtype_of(v), holomorphic, "jacrev")
            shapes = [np.shape(unbox(v)) for v in values]
            sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
            m = sum(sizes)
            dtype = np.result_type(*[dtype_of(v) for v in values], 1.0) if values else float
            if m == 1 and len(values) == 1:  # one output element: grad's sweep (no batch
                s = shapes[0]                 # axis of one row on every cotangent)
                seed = _seed(dtype, unbox(values[0]))
                if s and np.shape(seed) != s:  # (1,) or (1, 1), as grad seeds it
                    seed = np.full(s, seed, dtype)
                grads = _pull(tape, inputs, outs, [seed], 0, once=True, paused=True)
                per_out = [[tree_map(lambda g, s=s: _row(g, s), g_arg) for g_arg in grads]]
                jac = _jac_tree(odef, per_out, _single(argnums))
                return (jac, aux) if has_aux else jac
            eye = np.eye(m, dtype=dtype)
            offs = np.cumsum([0] + sizes)
            cts = [eye[:, a:b].reshape((m,) + s) for a, b, s in zip(offs[:-1], offs[1:], shapes)]
            grads = _pull(tape, inputs, outs, cts, 1, once=True, paused=True)
            per_out = []
            for a, b, s in zip(offs[:-1], offs[1:], shapes):
                per_out.append([tree_map(lambda g, s=s, a=a, b=b: np.reshape(
                    g[a:b], s + np.shape(unbox(g))[1:]), g_arg) for g_arg in grads])
            jac = _jac_tree(odef, per_out, _single(argnums))
            return (jac, aux) if has_aux else jac
    return jacrev_f


# ---------------------------------------------------------------------------
# forward mode
# ---------------------------------------------------------------------------

def _tangent_out(x, trace, batch=()):
    if isinstance(x, Dual) and x._trace is trace:
        return x.tangent
    raw = unbox(x)
    if not batch and device_like(raw) is not None:  # a device or dask array: zeros there
        return np.zeros_like(raw, dtype=np.result_type(dtype_of(x), 1.0))
    z = np.zeros(batch + np.shape(raw), np.result_type(dtype_of(x), 1.0))
    return z[()] if z.ndim == 0 else z


def jvp(f, primals, tangents, has_aux=False):
    """``(f(*primals), J @ tangents)`` by forward mode (dual numbers).

    >>> import numpy as np, dualgrad as dg
    >>> f = lambda x1, x2: np.log(x1) + x1 * x2 - np.sin(x2)
    >>> y, ydot = dg.jvp(f, (2.0, 5.0), (1.0, 0.0))
    >>> round(float(y), 3), float(ydot)
    (11.652, 5.5)
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("jvp: primals and tangents must be tuples (one entry per argument of "
                        f"f), got {type(primals).__name__} and {type(tangents).__name__}")
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    batch = _tangent_batch(primals, tangents)  # vmap(jvp) over tangents: one batched pass
    trace = JVPTrace()
    args = []
    try:
        for i, (p, t) in enumerate(zip(primals, tangents)):
            pl, pdef = tree_flatten(p)
            pl = [_packed(x) for x in pl]
            tl, tdef = tree_flatten(t)
            if pdef != tdef:
                raise TypeError(f"jvp: primals[{i}] and tangents[{i}] have different tree "
                                "structures")
            duals = [Dual._make(x, _seed_tangent(x, tx, f"jvp: tangents[{i}]", batch), trace)
                     for x, tx in zip(pl, tl)]
            args.append(tree_unflatten(pdef, duals))
        out = _lift_outs(_call(f, args, {}))
    finally:
        trace.finish()
    aux = None
    if has_aux:
        out, aux = out
        aux = tree_map(lambda v: _lower(v, trace), aux)
    _check_outputs(*tree_flatten(out), "jvp")
    primal_out = tree_map(lambda v: _lower(v, trace), out)
    if batch is None:
        tangent_out = tree_map(lambda v: _tangent_out(v, trace), out)
    else:
        tangent_out = tree_map(
            lambda v: batch.unstacked(_tangent_out(v, trace, (batch.size,))), out)
    tangent_out = _own(tangent_out, tangents)
    return (primal_out, tangent_out, aux) if has_aux else (primal_out, tangent_out)


def _own(tree, given):
    """``tree`` with arrays of its own, apart from each other and from ``given``'s
    (``jvp`` of ``x + 1`` passes the caller's tangent through)."""
    leaves, tdef = tree_flatten(tree)
    return tree_unflatten(tdef, distinct(leaves, tree_flatten(given)[0]))


def _tangent_batch(primals, tangents):
    """The batching trace (dg.vmap) of the tangents when only tangents are batched by it,
    else None: then ``jvp`` is one forward pass with the batch as tangent directions
    (JAX's batching rule for jvp)."""
    tl = [t for t in tree_flatten(list(tangents))[0] if isinstance(t, Box)]
    trace = tl[0]._trace if tl and hasattr(tl[0]._trace, "stacked") else None
    if trace is None or not all(t._trace is trace for t in tl):
        return None
    for p in tree_flatten(list(primals))[0]:
        while isinstance(p, Box):
            if p._trace is trace:
                return None
            p = p.value
    return trace


def _seed_tangent(x, tx, name, batch):
    """Primal ``x``'s checked tangent; under ``batch``, with the batch as its leading axis."""
    if batch is None:
        return check_tangent(x, tx, name)
    if not (isinstance(tx, Box) and tx._trace is batch):
        tx = check_tangent(x, tx, name)
    return check_tangent(x, batch.stacked(tx, x), name, batch_ok=True)


def jacfwd(f, argnums=0, has_aux=False, holomorphic=False, chunk_size=None):
    """The Jacobian by forward mode: identity columns pushed as one batched tangent.

    ``chunk_size`` caps how many columns go through at once (default: all).
    Shape convention: ``out.shape + in.shape``.  Complex numbers as JAX: real inputs
    (outputs may be complex), or with ``holomorphic=True`` complex inputs and outputs,
    giving the complex derivative.

    >>> import numpy as np, dualgrad as dg
    >>> dg.jacfwd(lambda x: np.cumsum(x))(np.ones(2))
    array([[1., 0.],
           [1., 1.]])
    """
    @functools.wraps(f)
    def jacfwd_f(*args, **kwargs):
        nums = _argnums(argnums, len(args), "jacfwd")
        args = [tree_map(_packed, a) if i in nums else a for i, a in enumerate(args)]
        _check_inputs(args, nums, holomorphic, "jacfwd", real_only=True)
        flat = [tree_flatten(args[i]) for i in nums]
        leaves = [leaf for ls, _ in flat for leaf in ls]
        for leaf in leaves:
            check_differentiable(leaf, "jacfwd: argument")
        shapes = [np.shape(unbox(x)) for x in leaves]
        sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
        n = sum(sizes)
        offs = np.cumsum([0] + sizes)
        step = n if not chunk_size else int(chunk_size)
        chunks, values, aux, odef = [], None, None, None
        for c0 in range(0, max(n, 1), max(step, 1)):
            c1 = min(n, c0 + step)
            trace = JVPTrace()
            new_args = list(args)
            k = 0
            try:
                for (ls, tdef), i in zip(flat, nums):
                    duals = []
                    for x in ls:
                        a, b, s = offs[k], offs[k + 1], shapes[k]
                        t = np.zeros((c1 - c0, b - a), dtype_of(x))
                        lo, hi = max(a, c0), min(b, c1)
                        if lo < hi:
                            t[np.arange(lo - c0, hi - c0), np.arange(lo - a, hi - a)] = 1
                        duals.append(Dual._make(x, t.reshape((c1 - c0,) + s), trace))
                        k += 1
                    new_args[i] = tree_unflatten(tdef, duals)
                out = _lift_outs(_call(f, new_args, kwargs))
            finally:
                trace.finish()
            if has_aux:
                out, aux = out
                aux = tree_map(lambda v, tr=trace: _lower(v, tr), aux)
            outs, odef = tree_flatten(out)
            _check_outputs(outs, odef, "jacfwd")
            values = [_lower(o, trace) for o in outs]
            if holomorphic:
                for v in values:
                    _check_output(dtype_of(v), True, "jacfwd")
            chunks.append([_tangent_out(o, trace, (c1 - c0,)) for o in outs])
        per_out = []
        for j, v in enumerate(values):
            t = chunks[0][j] if len(chunks) == 1 else np.concatenate([c[j] for c in chunks])
            oshape = np.shape(unbox(v))
            blocks = []
            for a, b, s in zip(offs[:-1], offs[1:], shapes):
                tj = np.reshape(t[a:b], s + oshape)  # (in..., out...) -> (out..., in...)
                blocks.append(np.transpose(tj, tuple(range(len(s), len(s) + len(oshape)))
                                           + tuple(range(len(s)))))
            it = iter(blocks)
            per_out.append([tree_unflatten(tdef, [next(it) for _ in ls]) for ls, tdef in flat])
        jac = _jac_tree(odef, per_out, _single(argnums))
        return (jac, aux) if has_aux else jac
    return jacfwd_f


def hessian(f, argnums=0, has_aux=False, holomorphic=False):
    """The Hessian of ``f``, forward-over-reverse: ``jacfwd(jacrev(f))``.

    >>> import numpy as np, dualgrad as dg
    >>> dg.hessian(lambda x: np.sum(x ** 3))(np.array([1.0, 2.0]))
    array([[ 6.,  0.],
           [ 0., 12.]])
    """
    return jacfwd(jacrev(f, argnums, has_aux, holomorphic), argnums, has_aux, holomorphic)


def hvp(f, primals, tangents):
    """``(grad(f)(*primals), H @ tangents)`` forward-over-reverse, without forming H.

    >>> import numpy as np, dualgrad as dg
    >>> g, hv = dg.hvp(lambda x: np.sum(x ** 3), (np.array([1.0, 2.0]),), (np.ones(2),))
    >>> hv
    array([ 6., 12.])
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("hvp: primals and tangents must be tuples (one entry per argument)")
    g = grad(f, argnums=tuple(range(len(primals))))
    out, t = jvp(g, tuple(primals), tuple(tangents))
    return (out[0], t[0]) if len(primals) == 1 else (out, t)


def linearize(f, *primals):
    """``(f(*primals), f_jvp)``: f is evaluated once; ``f_jvp(*tangents)`` replays its
    Wengert list forward with the tangents (no re-evaluation of f).

    >>> import numpy as np, dualgrad as dg
    >>> y, f_jvp = dg.linearize(np.sin, 0.0)
    >>> float(f_jvp(2.0))
    2.0
    """
    tape, inputs, outs, odef, _ = _record(f, primals, {}, tuple(range(len(primals))), False,
                                          "linearize")
    values = [_lower(o, tape) for o in outs]

    def f_jvp(*tangents):
        if len(tangents) != len(primals):
            raise ValueError(f"f_jvp: expected {len(primals)} tangents, got {len(tangents)}")
        seeds = {}
        for k, ((tdef, nodes), t) in enumerate(zip(inputs, tangents)):
            tl, ttdef = tree_flatten(t)
            if ttdef != tdef:
                raise TypeError(f"f_jvp: tangents[{k}] has a different tree structure from "
                                f"primals[{k}]")
            for (index, value), tx in zip(nodes, tl):
                seeds[index] = check_tangent(value, tx, f"f_jvp: tangents[{k}]")
        tans = tape.replay_tangents(seeds)
        outs_t = [tans[o.index] if isinstance(o, Node) and o._trace is tape and
                  tans[o.index] is not None else _tangent_out(v, None)
                  for o, v in zip(outs, values)]
        return _own(tree_unflatten(odef, outs_t), tangents)

    return tree_unflatten(odef, values), f_jvp
