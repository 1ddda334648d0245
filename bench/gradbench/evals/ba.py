"""ba: bundle adjustment reprojection errors and their sparse Jacobian (ADBench).

The input is one camera, one point, one weight and one feature, replicated
n, m and p times; observation i pairs camera i mod n with point i mod m.
Nothing exploits the replication: every observation is computed.

The objective is vectorised over the p observations.  Error i depends only on
observation i's camera (11), point (3) and weight (1), so the Jacobian is
block sparse.  It is computed by reverse mode with respect to the
per-observation copies of the parameters: one recording and three sweeps,
seeded with the first error component of every observation, then the
second, then every weight error (Jacobian compression by rows).  The
blocks then go into the CSR layout of ADBench's BASparseMat.
"""

import numpy as np

import dualgrad as dg

from ..protocol import Function
from ._util import array

NCAM = 11
_ROLL1 = np.array([1, 2, 0])
_ROLL2 = np.array([2, 0, 1])


def _cross(a, b):
    return a[:, _ROLL1] * b[:, _ROLL2] - a[:, _ROLL2] * b[:, _ROLL1]


def rodrigues_rotate(rot, X):
    """Rotate the rows of X by the angle-axis rows of rot."""
    sqtheta = np.sum(rot * rot, axis=1, keepdims=True)
    zero = sqtheta == 0  # plain numpy: sqtheta is a traced value only at the top level
    safe = np.where(zero, 1.0, sqtheta)
    theta = np.sqrt(safe)
    costheta, sintheta = np.cos(theta), np.sin(theta)
    w = rot / theta
    tmp = np.sum(w * X, axis=1, keepdims=True) * (1.0 - costheta)
    general = X * costheta + _cross(w, X) * sintheta + w * tmp
    if not np.any(zero):
        return general
    return np.where(zero, X + _cross(rot, X), general)


def reproj_error(cams, X, w, feats):
    """(p, 2) weighted reprojection errors of the per-observation cameras and points."""
    Xcam = rodrigues_rotate(cams[:, 0:3], X - cams[:, 3:6])
    proj = Xcam[:, 0:2] / Xcam[:, 2:3]
    rsq = np.sum(proj * proj, axis=1, keepdims=True)
    distortion = 1.0 + cams[:, 9:10] * rsq + cams[:, 10:11] * (rsq * rsq)
    proj = (proj * distortion) * cams[:, 6:7] + cams[:, 7:9]
    return w[:, None] * (proj - feats)


def w_error(w):
    return 1.0 - w * w


def errors(cams, X, w, feats):
    return reproj_error(cams, X, w, feats), w_error(w)


class Problem:
    """The replicated inputs and the observation index pairs."""

    def __init__(self, input):
        n, m, p = int(input["n"]), int(input["m"]), int(input["p"])
        self.n, self.m, self.p = n, m, p
        self.cams = np.tile(array(input["cam"]), (n, 1))
        self.X = np.tile(array(input["x"]), (m, 1))
        self.w = np.full(p, float(input["w"]))
        self.feats = np.tile(array(input["feat"]), (p, 1))
        i = np.arange(p)
        self.obs = np.stack((i % n, i % m), axis=1)


def objective(pb):
    return errors(pb.cams[pb.obs[:, 0]], pb.X[pb.obs[:, 1]], pb.w, pb.feats)


def jacobian(pb):
    """CSR (rows, cols, vals) of the (3p) × (11n + 3m + p) Jacobian."""
    n, m, p = pb.n, pb.m, pb.p
    cam_idx, pt_idx = pb.obs[:, 0], pb.obs[:, 1]
    (err, werr), pull = dg.vjp(lambda c, x, w: errors(c, x, w, pb.feats),
                               pb.cams[cam_idx], pb.X[pt_idx], pb.w)
    vals = np.empty((p, 2, NCAM + 4))
    for k in range(2):
        seed = np.zeros((p, 2))
        seed[:, k] = 1.0
        dcam, dX, dw = pull((seed, np.zeros(p)))
        vals[:, k, :NCAM] = dcam
        vals[:, k, NCAM:NCAM + 3] = dX
        vals[:, k, NCAM + 3] = dw
    _, _, dw_w = pull((np.zeros((p, 2)), np.ones(p)))
    cols = np.empty((p, 2, NCAM + 4), dtype=np.int64)
    cols[:, :, :NCAM] = (NCAM * cam_idx)[:, None, None] + np.arange(NCAM)
    cols[:, :, NCAM:NCAM + 3] = (NCAM * n + 3 * pt_idx)[:, None, None] + np.arange(3)
    cols[:, :, NCAM + 3] = (NCAM * n + 3 * m + np.arange(p))[:, None]
    nnz_reproj = 2 * p * (NCAM + 4)
    rows = np.concatenate((np.arange(0, nnz_reproj + 1, NCAM + 4),
                           nnz_reproj + np.arange(1, p + 1)))
    cols = np.concatenate((cols.ravel(), NCAM * n + 3 * m + np.arange(p)))
    vals = np.concatenate((vals.ravel(), np.asarray(dw_w, dtype=np.float64)))
    return rows, cols, vals


def _objective_output(out):
    err, werr = (np.asarray(v, dtype=np.float64) for v in out)
    return {"reproj_error": {"elements": err[0].tolist(), "repeated": int(err.shape[0])},
            "w_err": {"element": float(werr[0]), "repeated": int(werr.shape[0])}}


def _jacobian_output(csr):
    def head_and_last(a):
        return list(a[:30]) + [a[-1]]
    rows, cols, vals = csr
    return {"rows": [int(v) for v in head_and_last(rows)],
            "cols": [int(v) for v in head_and_last(cols)],
            "vals": [float(v) for v in head_and_last(vals)]}


FUNCTIONS = {
    "objective": Function(run=objective, prepare=Problem, output=_objective_output),
    "jacobian": Function(run=jacobian, prepare=Problem, output=_jacobian_output),
}


def example(n=3, m=5, p=11):
    return {"n": n, "m": m, "p": p,
            "cam": [-0.758453, -1.109613, -0.845551, 34.556073, 39.676747, 53.881673,
                    419.194514, 5.864426, -8.518870, 0.087812, 0.002739],
            "x": [7.203245, 0.001144, 3.023326], "w": 0.417022,
            "feat": [271.760969, 834.209256], "min_runs": 1, "min_seconds": 0}
