"""Gradients over dask arrays (issue 25): lazy graphs, chunk by chunk, on a LocalCluster.

The data ``X``, ``y`` are dask arrays in row chunks; the parameters are numpy.  Every
transform builds a dask graph and computes nothing (a scheduler that raises is active
while it runs); one ``dask.compute`` gives numpy's values.
"""

import numpy as np
import pytest

import dualgrad as dg

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("dask.distributed")

pytestmark = pytest.mark.dask

N, D, CHUNK = 600, 4, 100


def _raise(*args, **kwargs):
    raise AssertionError("a dask graph was computed while tracing")


def no_compute():
    """``with no_compute():`` any compute (bool(), np.asarray, .compute()) fails the test."""
    return dask.config.set(scheduler=_raise)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                                       dashboard_address=None, processes=False)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def data():
    r = np.random.default_rng(0)
    Xn = r.standard_normal((N, D))
    yn = (r.random(N) < 1 / (1 + np.exp(-Xn @ np.array([1.0, -2.0, 0.5, 0.0])))).astype(float)
    X = da.from_array(Xn, chunks=(CHUNK, D))
    y = da.from_array(yn, chunks=CHUNK)
    return Xn, yn, X, y


def logreg(w, X, y):
    z = X @ w
    return np.sum(np.logaddexp(0.0, z) - y * z) / X.shape[0]


# ---------------------------------------------------------------------------
# No silent zero: dask's own API wrapping a traced value

SWALLOWS = {
    "X.dot(w)": lambda w, X: X.dot(w).sum(),
    "da.tensordot": lambda w, X: da.tensordot(X, w, 1).sum(),
    "da.from_array": lambda w, X: (X @ da.from_array(w)).sum(),
}


@pytest.mark.parametrize("name", sorted(SWALLOWS))
def test_dask_api_swallowing_a_traced_value_raises(data, name):
    X = data[2]
    with pytest.raises(TypeError, match=r"X @ w or np.dot\(X, w\)"):
        dg.grad(SWALLOWS[name])(np.ones(D), X)


@pytest.mark.parametrize("form", ["X @ w", "np.dot(X, w)"])
def test_the_named_fixes_differentiate(data, form):
    Xn, _, X, _ = data
    f = {"X @ w": lambda w, X: (X @ w).sum(), "np.dot(X, w)": lambda w, X: np.dot(X, w).sum()}
    g = dg.grad(f[form])(np.ones(D), X)
    np.testing.assert_allclose(np.asarray(g), Xn.sum(0), rtol=1e-12)
