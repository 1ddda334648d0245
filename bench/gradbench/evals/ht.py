"""ht: ADBench hand tracking residuals and their dense Jacobian (forward mode).

The pose (26 angles) drives 22 bones: each bone's Euler rotation is applied
to its base relative transform, absolute transforms follow the parent tree
(one batched matrix product per tree level), vertices are skinned by the
bone weights and moved by the global angle-axis rotation, scale and
translation.  Residuals are data points minus model points (``simple``), or
minus barycentric points of the corresponding triangles with coordinates
``us`` (``complicated``).

The Jacobian (3·points rows, few columns) is computed by forward mode: the 26
pose directions go through the model together as one batched tangent.  In the
complicated case residual i depends on its own u_i only, so two more
directions, a shift of every u_i's first (second) coordinate at once, give
the two ``us`` columns that the output format stores.
"""

import numpy as np

import dualgrad as dg

from ..protocol import Function
from ._util import array


def _stack3x3(entries):
    """(…, 3, 3) from nine (…) arrays in row-major order."""
    return np.stack(entries, axis=-1).reshape(np.shape(entries[0]) + (3, 3))


def euler_to_rotation(xzy):
    """R = Rz·Ry·Rx for rows of Euler angles stored (x, z, y), as ADBench."""
    c, s = np.cos(xzy), np.sin(xzy)
    cx, cz, cy = c[:, 0], c[:, 1], c[:, 2]
    sx, sz, sy = s[:, 0], s[:, 1], s[:, 2]
    zero, one = np.zeros_like(cx), np.ones_like(cx)
    Rx = _stack3x3([one, zero, zero, zero, cx, -sx, zero, sx, cx])
    Ry = _stack3x3([cy, zero, sy, zero, one, zero, -sy, zero, cy])
    Rz = _stack3x3([cz, -sz, zero, sz, cz, zero, zero, zero, one])
    return (Rz @ Ry) @ Rx


def angle_axis_to_rotation(aa):
    n = np.sqrt(np.sum(aa * aa))
    if n < 1e-4:
        return np.eye(3)
    x, y, z = aa[0] / n, aa[1] / n, aa[2] / n
    s, c = np.sin(n), np.cos(n)
    return _stack3x3([x * x + (1 - x * x) * c, x * y * (1 - c) - z * s, x * z * (1 - c) + y * s,
                      x * y * (1 - c) + z * s, y * y + (1 - y * y) * c, y * z * (1 - c) - x * s,
                      x * z * (1 - c) - y * s, z * y * (1 - c) + x * s, z * z + (1 - z * z) * c])


class Model:
    """The hand model, data and the constant index tables."""

    def __init__(self, input):
        data = input["data"]
        model = data["model"]
        self.theta = array(input["theta"])
        self.us = array(input["us"]).reshape(-1, 2)
        self.parents = np.asarray(model["parents"], dtype=np.intp)
        self.base_relatives = array(model["base_relatives"])            # (nb, 4, 4)
        self.inverse_base_absolutes = array(model["inverse_base_absolutes"])
        self.base_positions = array(model["base_positions"])            # (nv, 4)
        self.weights = array(model["weights"])                          # (nv, nb)
        self.triangles = np.asarray(model["triangles"], dtype=np.intp).reshape(-1, 3)
        self.mirror = np.array([-1.0, 1.0, 1.0]) if model["is_mirrored"] else None
        self.correspondences = np.asarray(data["correspondences"], dtype=np.intp)
        self.points = array(data["points"]).reshape(-1, 3)
        nb = len(self.parents)
        self.pose_index = _pose_index(nb, len(self.theta))
        # bones grouped by depth in the tree; parents come before their children
        depth = np.zeros(nb, dtype=int)
        for i, p in enumerate(self.parents):
            depth[i] = 0 if p < 0 else depth[p] + 1
        self.levels = [np.flatnonzero(depth == d) for d in range(depth.max() + 1)]
        order = np.concatenate(self.levels)
        self.unorder = np.argsort(order)           # level order -> bone order
        position = np.empty(nb, dtype=np.intp)
        position[order] = np.arange(nb)
        self.level_parents = [None] + [position[self.parents[lv]] for lv in self.levels[1:]]
        self.level_start = np.cumsum([0] + [len(lv) for lv in self.levels])
        if len(self.us):
            self.verts = self.triangles[self.correspondences]              # (N, 3)


def _pose_index(nb, ntheta):
    """(nb + 3, 3) positions into concat([0], theta, [1]) giving ADBench's pose parameters."""
    zero, one = 0, ntheta + 1
    index = np.full((nb + 3, 3), zero, dtype=np.intp)
    index[0] = 1 + np.arange(3)        # global rotation
    index[1] = one                     # global scale
    index[2] = 4 + np.arange(3)        # global translation
    i_theta, row = 6, 5
    for _finger in range(5):
        for i in range(1, 4):
            index[row, 0] = 1 + i_theta
            i_theta += 1
            if i == 1:
                index[row, 1] = 1 + i_theta
                i_theta += 1
            row += 1
        row += 1
    return index


def vertex_positions(theta, md):
    pose = np.concatenate((np.zeros(1), theta, np.ones(1)))[md.pose_index]   # (nb + 3, 3)
    R = euler_to_rotation(pose[3:])                                           # (nb, 3, 3)
    base = md.base_relatives
    relatives = np.concatenate((base[:, :, :3] @ R, base[:, :, 3:]), axis=2)  # base · [R 0; 0 1]
    absolute = relatives[md.levels[0]]
    for lv, par in zip(md.levels[1:], md.level_parents[1:]):
        absolute = np.concatenate((absolute, absolute[par] @ relatives[lv]), axis=0)
    absolutes = absolute[md.unorder]
    transforms = (absolutes @ md.inverse_base_absolutes)[:, :3, :]            # (nb, 3, 4)
    nb = transforms.shape[0]
    # Σ_b w[v, b] (T_b · p_v): blend the transforms per vertex, then apply them
    blended = (md.weights @ transforms.reshape(nb, 12)).reshape(-1, 3, 4)   # (nv, 3, 4)
    positions = np.sum(blended * md.base_positions[:, None, :], axis=2)      # (nv, 3)
    if md.mirror is not None:
        positions = positions * md.mirror
    Rg = angle_axis_to_rotation(pose[0]) * pose[1]                           # scale columns
    return positions @ Rg.T + pose[2]


def residuals(theta, md, us=None):
    V = vertex_positions(theta, md)
    if us is None:
        model_points = V[md.correspondences]
    else:
        u0, u1 = us[:, 0:1], us[:, 1:2]
        model_points = (u0 * V[md.verts[:, 0]] + u1 * V[md.verts[:, 1]]
                        + (1.0 - u0 - u1) * V[md.verts[:, 2]])
    return md.points - model_points


def objective(md):
    return residuals(md.theta, md, md.us if len(md.us) else None)


def jacobian(md):
    """(3N, 26) for simple; (3N, 2 + 26) for complicated, the two us columns first."""
    rows = 3 * len(md.correspondences)
    if not len(md.us):
        return dg.jacfwd(lambda th: residuals(th, md))(md.theta).reshape(rows, -1)
    J_theta, J_shift = dg.jacfwd(lambda th, shift: residuals(th, md, md.us + shift),
                                 argnums=(0, 1))(md.theta, np.zeros(2))
    return np.concatenate((J_shift.reshape(rows, 2), J_theta.reshape(rows, -1)), axis=1)


FUNCTIONS = {
    "objective": Function(run=objective, prepare=Model,
                          output=lambda e: np.asarray(e, dtype=np.float64).ravel().tolist()),
    "jacobian": Function(run=jacobian, prepare=Model,
                         output=lambda J: np.asarray(J, dtype=np.float64).tolist()),
}


def example(complicated=True, n_points=5, seed=0):
    """A small synthetic hand: 22 bones in ADBench's tree, 12 vertices, 8 triangles."""
    rng = np.random.default_rng(seed)
    parents = [-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19, 0]
    nb, nv = len(parents), 12

    def rigid():
        a = rng.normal(size=3) * 0.5
        T = np.eye(4)
        T[:3, :3] = angle_axis_to_rotation(a)
        T[:3, 3] = rng.normal(size=3)
        return T

    weights = rng.random((nv, nb)) * (rng.random((nv, nb)) < 0.2)
    weights[:, 0] += 0.1
    weights /= weights.sum(axis=1, keepdims=True)
    triangles = rng.integers(0, nv, size=(8, 3))
    out = {
        "theta": (rng.normal(size=26) * 0.3).tolist(),
        "data": {
            "model": {
                "bone_count": nb, "bone_names": [f"b{i}" for i in range(nb)],
                "parents": parents,
                "base_relatives": [rigid().tolist() for _ in range(nb)],
                "inverse_base_absolutes": [rigid().tolist() for _ in range(nb)],
                "base_positions": np.hstack((rng.normal(size=(nv, 3)),
                                             np.ones((nv, 1)))).tolist(),
                "weights": weights.tolist(),
                "triangles": triangles.tolist(),
                "is_mirrored": False,
            },
            "correspondences": rng.integers(0, 8 if complicated else nv,
                                            size=n_points).tolist(),
            "points": rng.normal(size=(n_points, 3)).tolist(),
        },
        "us": rng.random((n_points, 2)).tolist() if complicated else [],
        "min_runs": 1, "min_seconds": 0,
    }
    return out
