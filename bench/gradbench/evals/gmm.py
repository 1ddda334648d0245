"""gmm: log posterior of a Gaussian mixture with a Wishart prior, and its gradient.

Vectorised over points and components: for each component k the lower
triangular Q_k (diagonal exp(q_k), below it l_k filled column by column) is
gathered from one flat parameter vector, Q_k (x_i − μ_k) is a batched matrix
product, and logsumexp runs over components.  The gradient with respect to
alpha, mu, q and l is one reverse sweep.
"""

import functools
import math

import numpy as np

import dualgrad as dg

from ..protocol import Function
from ._util import array, spread


@functools.lru_cache(maxsize=8)
def _q_index(d):
    """(d, d) positions into concat([0], exp(q), l): the layout of Q (row i, column j)."""
    index = np.zeros((d, d), dtype=np.intp)
    index[np.arange(d), np.arange(d)] = 1 + np.arange(d)
    rows, cols = [], []
    for j in range(d):  # l fills the strict lower triangle column by column
        for i in range(j + 1, d):
            rows.append(i)
            cols.append(j)
    index[rows, cols] = 1 + d + np.arange(len(rows))
    return index


def _multigammaln(a, p):
    return 0.25 * p * (p - 1) * math.log(math.pi) + sum(
        math.lgamma(a + 0.5 * (1 - j)) for j in range(1, p + 1))


def log_posterior(alpha, mu, q, l, x, m, gamma):
    n, d = x.shape
    k = alpha.shape[0]
    qdiag = np.exp(q)                                   # (k, d)
    sum_qs = np.sum(q, axis=1)                          # (k,)
    flat = np.concatenate((np.zeros((k, 1)), qdiag, l), axis=1)
    Q = flat[:, _q_index(d)]                            # (k, d, d) lower triangular
    QT = np.swapaxes(Q, 1, 2)
    # rows Q_k (x_i - mu_k) = Q_k x_i - Q_k mu_k: one batched product with the shared
    # data, and a small (k, 1, d) correction (added, so its cotangent is one reduction)
    Qx = x @ QT + (-(mu[:, None, :] @ QT))              # (k, n, d)
    beta = (alpha + sum_qs)[:, None] - 0.5 * np.sum(np.square(Qx), axis=2)   # (k, n)
    slse = np.sum(dg.nn.logsumexp(beta, axis=0))
    const = -n * d * 0.5 * math.log(2 * math.pi)
    likelihood = const + slse - n * dg.nn.logsumexp(alpha)
    nw = d + m + 1
    c = nw * d * (math.log(gamma) - 0.5 * math.log(2)) - _multigammaln(0.5 * nw, d)
    frob = np.sum(qdiag * qdiag) + np.sum(l * l)
    prior = k * c - (0.5 * gamma * gamma * frob - m * np.sum(sum_qs))
    return likelihood + prior


jacobian = dg.grad(log_posterior, argnums=(0, 1, 2, 3))


def prepare(input):
    d, k = int(input["d"]), int(input["k"])
    _q_index(d)
    return (array(input["alpha"]).reshape(k), array(input["mu"]).reshape(k, d),
            array(input["q"]).reshape(k, d), array(input["l"]).reshape(k, d * (d - 1) // 2),
            array(input["x"]).reshape(int(input["n"]), d), int(input["m"]),
            float(input["gamma"]))


def _jacobian_output(g):
    alpha, mu, q, l = (np.asarray(v, dtype=np.float64) for v in g)
    return {"alpha": alpha.tolist(), "mu": mu.tolist(), "q": q.tolist(), "l": l.tolist()}


FUNCTIONS = {
    "objective": Function(run=spread(log_posterior), prepare=prepare, output=float),
    "jacobian": Function(run=spread(jacobian), prepare=prepare, output=_jacobian_output),
}


def example(d=3, k=4, n=10, m=1, gamma=1.3, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "d": d, "k": k, "n": n, "m": m, "gamma": gamma,
        "x": rng.normal(size=(n, d)).tolist(),
        "alpha": rng.normal(size=k).tolist(),
        "mu": rng.uniform(size=(k, d)).tolist(),
        "q": rng.normal(size=(k, d)).tolist(),
        "l": rng.normal(size=(k, d * (d - 1) // 2)).tolist(),
        "min_runs": 1, "min_seconds": 0,
    }
