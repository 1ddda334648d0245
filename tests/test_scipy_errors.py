"""scipy's own function meeting a traced value: the error names the function the user
called and its dualgrad.scipy drop-in, or the dg.custom_vjp route where there is none
(issue 24 item 8); scipy's errors on plain values pass through unchanged."""

import numpy as np
import pytest

import dualgrad as dg

pytest.importorskip("scipy")
import scipy.linalg  # noqa: E402
import scipy.ndimage as nd  # noqa: E402
import scipy.special as sc  # noqa: E402
import scipy.stats as st  # noqa: E402

from dualgrad.scipy import errors  # noqa: E402

M = np.array([0.1, 0.2])
X = np.array([0.3, -0.2])

CASES = [  # (the user's call, the name the message must give)
    (lambda m: sc.logsumexp(m), "scipy.special.logsumexp"),
    (lambda m: st.multivariate_normal.logpdf(X, m, np.eye(2)),
     "scipy.stats.multivariate_normal.logpdf"),
    (lambda m: st.multivariate_normal(m, np.eye(2)).logpdf(X),
     "scipy.stats.multivariate_normal"),
    (lambda m: np.sum(st.norm.logpdf(X, m[0], 1.0)), "scipy.stats.norm.logpdf"),
    (lambda m: np.sum(st.norm(m[0], 1.0).logpdf(X)), "scipy.stats.norm.logpdf"),
    (lambda m: np.sum(nd.gaussian_filter(m, 1.0)), "scipy.ndimage.gaussian_filter"),
]


@pytest.mark.parametrize("transform", ["grad", "jvp", "vmap", "jit_grad"])
@pytest.mark.parametrize("call, name", CASES, ids=[c[1] for c in CASES])
def test_scipy_refusal_names_the_drop_in(call, name, transform):
    run = {"grad": lambda f: dg.grad(f)(M),
           "jvp": lambda f: dg.jvp(f, (M,), (np.ones(2),)),
           "vmap": lambda f: dg.vmap(f)(np.stack([M, M])),
           "jit_grad": lambda f: dg.jit(dg.grad(f))(M)}[transform]
    with pytest.raises(TypeError) as e:
        run(call)
    msg = str(e.value)
    assert msg.startswith(f"dualgrad: {name} cannot see traced values (it failed inside scipy")
    sub, names = name.split(".")[1], name.split(".")[2:]
    if errors._drop_in(sub, names) is not None:
        assert f"use dualgrad.{name} (same signature)" in msg
    else:
        assert "has no drop-in" in msg and "dg.custom_vjp" in msg


def test_the_drop_in_named_works():
    g = dg.grad(lambda m: dg.scipy.special.logsumexp(m))(M)
    np.testing.assert_allclose(g, np.exp(M) / np.exp(M).sum())


def test_scipy_errors_on_plain_values_pass_through():
    def f(m):
        scipy.linalg.cholesky(-np.eye(2))  # plain: scipy's own error, unchanged
        return np.sum(m)
    with pytest.raises(np.linalg.LinAlgError):
        dg.grad(f)(M)
    assert dg.grad(lambda m: np.sum(m) + st.norm.logpdf(0.5))(M).tolist() == [1.0, 1.0]


def test_a_scipy_sparse_product_names_dualgrads_matmul():
    import scipy.sparse as sp
    A = sp.random(5, 4, density=0.5, format="csr", random_state=0)
    for f in (lambda x: np.sum(A @ x), lambda x: np.sum(A.dot(x))):
        with pytest.raises(TypeError, match=r"dualgrad\.scipy\.sparse\.matmul\(A, x\)"):
            dg.grad(f)(np.ones(4))
    from dualgrad.scipy import sparse
    g = dg.grad(lambda x: np.sum(sparse.matmul(A, x)))(np.ones(4))
    np.testing.assert_allclose(g, np.asarray(A.sum(axis=0)).ravel())
