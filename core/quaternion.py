"""Vectorised numpy quaternion helpers, (w, x, y, z), any leading batch shape.

qmul/qinv/qrot/qbetween keep HumanML3D's formulas (its features are defined through them). Pure numpy (no
scipy, no torch): the retargeting solver runs inside Blender, which ships numpy only.
"""
import numpy as np


def qmul(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Hamilton product q * r (apply r first, then q)."""
    w1, x1, y1, z1 = np.moveaxis(q, -1, 0)
    w2, x2, y2, z2 = np.moveaxis(r, -1, 0)
    return np.stack([
        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
    ], axis=-1)


def qinv(q: np.ndarray) -> np.ndarray:
    """Inverse of a unit quaternion (its conjugate)."""
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def qrot(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate 3-vectors v by unit quaternions q (broadcast over leading dims)."""
    qvec = q[..., 1:]
    uv = np.cross(qvec, v)
    return v + 2.0 * (q[..., :1] * uv + np.cross(qvec, uv))


def qbetween(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Shortest-arc unit quaternion rotating direction u onto direction v.

    Antiparallel pairs have no unique shortest arc; they get a half turn about an axis perpendicular to u.
    """
    u, v = np.broadcast_arrays(np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64))
    w = np.sqrt((u * u).sum(-1) * (v * v).sum(-1)) + (u * v).sum(-1)
    q = np.concatenate([w[..., None], np.cross(u, v)], axis=-1)
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    opposite = norm[..., 0] <= 1e-12 * np.maximum(1.0, np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
    if opposite.any():
        uo = u[opposite]
        helper = np.eye(3)[np.argmin(np.abs(uo), axis=-1)]  # the axis least aligned with u
        axis = np.cross(uo, helper)
        q[opposite] = np.concatenate([np.zeros((len(uo), 1)), axis], axis=-1)
        norm[opposite] = np.linalg.norm(axis, axis=-1, keepdims=True)
    return q / norm


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions -> (..., 3, 3) rotation matrices (q need not be normalised)."""
    q = np.asarray(q, dtype=np.float64)
    w, x, y, z = np.moveaxis(q / np.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
    return np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                     2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                     2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1
                    ).reshape(q.shape[:-1] + (3, 3))


def matrix_to_cont6d(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 6): first column then second column (Zhou et al.'s continuous 6D)."""
    return np.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1)


def quat_to_cont6d(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions -> (..., 6) continuous 6D."""
    return matrix_to_cont6d(quat_to_matrix(q))


def quat_from_matrix(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions with w >= 0, by Shepperd's method: each from
    the largest of its four squared components, so no division by a vanishing one. A time series still wants
    hemisphere_continuity (w >= 0 per frame is not continuous through half turns)."""
    m = np.asarray(m, dtype=np.float64)
    if (np.linalg.det(m) <= 0).any():
        raise ValueError("not a rotation matrix: determinant <= 0 (a reflection or a degenerate matrix)")
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    candidates = np.stack([
        np.stack([1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01], -1),
        np.stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], -1),
        np.stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], -1),
        np.stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], -1),
    ], -2)
    pick = np.argmax(np.stack([m00 + m11 + m22, m00, m11, m22], -1), axis=-1)
    q = np.take_along_axis(candidates, pick[..., None, None], axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def hemisphere_continuity(quats: np.ndarray, axis: int = 0) -> np.ndarray:
    """Flip signs along `axis` (time) so consecutive quaternions lie in the same hemisphere (q and -q are the
    same rotation, but interpolation, filtering and learning need a continuous sequence)."""
    q = np.moveaxis(np.asarray(quats, dtype=np.float64), axis, 0)
    flips = np.cumprod(np.where((q[1:] * q[:-1]).sum(-1) < 0, -1.0, 1.0), axis=0)
    out = q.copy()
    out[1:] *= flips[..., None]
    return np.moveaxis(out, 0, axis)
