"""The primitive table, as a package: one row per primitive, by family.

A row (``defprim``, ``defunary``, ``defbinary`` in ``table``) names a function on raw
arrays and its derivative rules: the JVP (forward mode), the VJP (reverse mode), the
batching rule (``dg.vmap``), the dtype rule and the scalar form the compiler fuses.  Every
derivative dualgrad knows is written once, in a row here:

- ``table``: how a row is declared, the registry (``TABLE``, ``UFUNCS``) and the helpers
  the families share (shapes, broadcasting, batching);
- ``elementwise``: arithmetic, numpy's ufuncs, ``where``/``clip``, ``astype``, complex parts;
- ``structure``: ``reshape``, ``transpose``, ``broadcast_to``, ``flip``, ``concatenate``;
- ``indexing``: ``getitem``, ``scatter_add``, ``gather``, ``scatter``, ``index_set``,
  ``scatter_set`` (and ``set_at``/``add_at``, which pick the form for an index);
- ``reductions``: ``sum``, ``max``, ``min``, ``prod``, ``cumsum``, ``cumprod``;
- ``einsum``; ``linalg``: ``matmul``, ``solve``, ``inv``, ``det``, ``cholesky`` and the
  decompositions; ``nn``: ``softmax``, ``logsumexp``, ``conv2d``; ``fft``;
- ``special``: scipy.special's rows, imported by ``dualgrad.scipy`` (scipy is optional).

Importing this package registers every row (but ``special``'s) and gives each by name:
``from dualgrad import rules as P; P.multiply(x, y)``.  The families import each other
downward in the order above; a rule that needs a row of a later family finds it here
(``P.sum_``) when it runs, so the names below are bound before ``linalg``, ``nn`` and
``fft``, which use ``P`` when they are imported.

May import: ``core`` and ``backend`` (never the numpy surface, the compiler or the
transforms above).
"""

# ruff: noqa: F401  (every name below is re-exported)

from ..core.trace import unbox  # the raw value under a traced one (rules use it throughout)
from .einsum import einsum
from .elementwise import (
    absolute,
    add,
    arccos,
    arccosh,
    arcsin,
    arcsinh,
    arctan,
    arctan2,
    arctanh,
    astype,
    cbrt,
    clip,
    complex_one,
    conjugate,
    cos,
    cosh,
    deg2rad,
    divide,
    divide_or_zero,
    exp,
    exp2,
    expm1,
    fabs,
    fit_cotangent,
    fmax,
    fmin,
    fmod,
    hypot,
    imag,
    log,
    log1p,
    log2,
    log10,
    log_share,
    logaddexp,
    logaddexp2,
    maximum,
    minimum,
    multiply,
    negative,
    positive,
    power,
    rad2deg,
    real,
    real_for,
    reciprocal,
    remainder,
    sin,
    sinh,
    sqrt,
    square,
    subtract,
    tan,
    tanh,
    where,
)
from .indexing import (
    BASIC_KEYS,
    Slot,
    add_at,
    basic_index,
    gather,
    getitem,
    index_set,
    scatter,
    scatter_add,
    scatter_set,
    set_at,
)
from .reductions import amax, amin, cumprod, cumsum, expand_back, expand_dims, prod, sum_
from .structure import broadcast_to, concatenate, flip, reshape, transpose
from .table import (
    CHECKED,
    REALS,
    SCALARS,
    TABLE,
    UFUNCS,
    align_batched,
    align_tangent,
    arg_dtype,
    batch_all,
    batch_shape,
    batch_size,
    batch_trailing,
    bfront,
    broadcast_tangent,
    complex_dtype,
    defbinary,
    defprim,
    defunary,
    device_like,
    float_dtype,
    float_mask,
    float_result,
    is_complex,
    may_any,
    ndim_of,
    no_lazy_form,
    normalize_axes,
    param_dtype,
    promote,
    real_dtype,
    reference_derivative,
    scaled_first,
    shape_of,
    times_local,
    ufunc_dtype,
    ufunc_form,
    unbroadcast,
    vjp_of,
)

# isort: split
# the families written with P (the names above), imported after them
from . import table as table  # (dg.rules.table: the registry and shared helpers)
from .fft import fft_, ifft_, irfft_, rfft_
from .linalg import (
    EIG,
    EIGH,
    ORTHC,
    PINV,
    QR,
    SVD,
    cholesky,
    det,
    eye_like,
    inv,
    logabsdet,
    matmul,
    mT,
    packed_row,
    packed_rows,
    qr_parts,
    raw_array,
    real_only_matrix,
    solve,
    svd_parts,
)
from .nn import Geometry, conv2d_p, kernel_or_rule, log_softmax_p, logsumexp_p, softmax_p
