"""Vectorised numpy quaternion helpers, (w, x, y, z), any leading batch shape.

qmul/qinv/qrot/qbetween keep HumanML3D's formulas (its features are defined through them); conversions to and
from matrices use scipy, whose matrix -> quaternion conversion is Shepperd's method. Pure numpy; no torch.
"""
import numpy as np
from scipy.spatial.transform import Rotation


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
    return Rotation.from_quat(q, scalar_first=True).as_matrix()


def matrix_to_cont6d(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 6): first column then second column (Zhou et al.'s continuous 6D)."""
    return np.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1)


def quat_to_cont6d(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions -> (..., 6) continuous 6D."""
    return matrix_to_cont6d(quat_to_matrix(q))


def quat_from_matrix(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions by Shepperd's method (sign not canonical:
    pass a time series through hemisphere_continuity)."""
    return Rotation.from_matrix(m).as_quat(scalar_first=True)


def hemisphere_continuity(quats: np.ndarray, axis: int = 0) -> np.ndarray:
    """Flip signs along `axis` (time) so consecutive quaternions lie in the same hemisphere (q and -q are the
    same rotation, but interpolation, filtering and learning need a continuous sequence)."""
    q = np.moveaxis(np.asarray(quats, dtype=np.float64), axis, 0)
    flips = np.cumprod(np.where((q[1:] * q[:-1]).sum(-1) < 0, -1.0, 1.0), axis=0)
    out = q.copy()
    out[1:] *= flips[..., None]
    return np.moveaxis(out, 0, axis)
