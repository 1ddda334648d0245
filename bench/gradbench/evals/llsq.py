"""llsq: y(x) = ½ Σ_i (s_i − Σ_j x_j t_iʲ)², t_i = −1 + 2i/(n−1), s_i = sign(t_i).

The powers t_iʲ form an n×m Vandermonde matrix (built inside the timed
function, by a cumulative product, as the reference builds them in its loop);
the residual is then one matrix-vector product.  The gradient is reverse mode.
"""

import numpy as np

import dualgrad as dg

from ..protocol import Function
from ._util import array, spread, tolist


def llsq(x, n):
    m = x.shape[0]
    t = -1.0 + np.arange(n) * (2.0 / (n - 1))
    powers = np.ones((n, m))
    if m > 1:  # t_i^j for j = 1..m-1, multiplied up as the reference does
        np.cumprod(np.broadcast_to(t[:, None], (n, m - 1)), axis=1, out=powers[:, 1:])
    r = np.sign(t) - powers @ x
    return 0.5 * (r @ r)


gradient = dg.grad(llsq)


def prepare(input):
    return array(input["x"]), int(input["n"])


FUNCTIONS = {
    "primal": Function(run=spread(llsq), prepare=prepare, output=float),
    "gradient": Function(run=spread(gradient), prepare=prepare, output=tolist),
}


def example(n=9, m=4, seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.random(m).tolist(), "n": n, "min_runs": 1, "min_seconds": 0}
