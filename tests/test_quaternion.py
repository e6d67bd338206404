"""The quaternion helpers against scipy's rotations and against their defining properties."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from core.quaternion import (hemisphere_continuity, matrix_to_cont6d, qbetween, qinv, qmul, qrot,
                             quat_from_matrix, quat_to_cont6d, quat_to_matrix)

RNG = np.random.default_rng(0)


def random_quats(*shape, seed=1):
    return Rotation.random(int(np.prod(shape)), random_state=seed).as_quat(scalar_first=True).reshape(shape + (4,))


def test_qmul_qrot_qinv_agree_with_scipy():
    q, r = random_quats(5, 3), random_quats(5, 3, seed=2)
    v = RNG.normal(size=(5, 3, 3))
    sq, sr = (Rotation.from_quat(x.reshape(-1, 4), scalar_first=True) for x in (q, r))
    np.testing.assert_allclose(qrot(q, v).reshape(-1, 3), sq.apply(v.reshape(-1, 3)), atol=1e-12)
    # q * r applies r first
    np.testing.assert_allclose(qrot(qmul(q, r), v).reshape(-1, 3), (sq * sr).apply(v.reshape(-1, 3)), atol=1e-12)
    np.testing.assert_allclose(qrot(qinv(q), qrot(q, v)), v, atol=1e-12)


def test_qbetween_rotates_u_onto_v_including_parallel_and_antiparallel():
    u = RNG.normal(size=(50, 3))
    v = RNG.normal(size=(50, 3))
    v[:10] = -u[:10] * 2.5        # antiparallel
    v[10:20] = u[10:20] * 0.3     # parallel
    v[20] = (0.0, 0.0, -1.0)      # antiparallel along an axis
    u[20] = (0.0, 0.0, 1.0)
    q = qbetween(u, v)
    assert np.isfinite(q).all()
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-12)
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(qrot(q, unit(u)), unit(v), atol=1e-12)
    np.testing.assert_allclose(q[10:20], np.tile([1.0, 0, 0, 0], (10, 1)), atol=1e-12)
    # shortest arc: the rotation angle equals the angle between u and v
    angle = np.arccos(np.clip((unit(u) * unit(v)).sum(-1), -1, 1))
    np.testing.assert_allclose(2 * np.arccos(np.clip(np.abs(q[:, 0]), 0, 1)), angle, atol=1e-6)


def test_matrix_conversions_and_cont6d():
    q = random_quats(4, 6)
    m = quat_to_matrix(q)
    assert m.shape == (4, 6, 3, 3)
    np.testing.assert_allclose(m.reshape(-1, 3, 3), Rotation.from_quat(q.reshape(-1, 4), scalar_first=True)
                               .as_matrix(), atol=1e-12)
    back = quat_from_matrix(m)
    # same rotation, sign free
    np.testing.assert_allclose(np.abs((back * q).sum(-1)), 1.0, atol=1e-12)
    six = quat_to_cont6d(q)
    np.testing.assert_allclose(six, matrix_to_cont6d(m))
    np.testing.assert_allclose(six[..., :3], m[..., :, 0])
    np.testing.assert_allclose(six[..., 3:], m[..., :, 1])


def test_hemisphere_continuity_removes_sign_flips_along_time():
    # A smooth rotation about a tilted axis, with random signs thrown in along the time axis (axis 1 here).
    angles = np.linspace(0, 3 * np.pi, 40)
    axis = np.array([0.3, 0.9, -0.2]) / np.linalg.norm([0.3, 0.9, -0.2])
    smooth = np.concatenate([np.cos(angles / 2)[:, None], np.sin(angles / 2)[:, None] * axis], axis=-1)
    smooth = np.stack([smooth, smooth[::-1]])
    signs = RNG.choice([-1.0, 1.0], size=(2, 40, 1))
    fixed = hemisphere_continuity(smooth * signs, axis=1)
    np.testing.assert_allclose(fixed, smooth * signs[:, :1], atol=1e-12)
    # matrices -> quaternions -> continuity: a continuous sequence from Shepperd's per-frame choices
    fixed = hemisphere_continuity(quat_from_matrix(quat_to_matrix(smooth[0])))
    assert (np.sum(fixed[1:] * fixed[:-1], axis=-1) > 0).all()
    np.testing.assert_allclose(np.abs(fixed[0] @ smooth[0, 0]), 1.0, atol=1e-12)


def test_quat_from_matrix_rejects_reflections():
    with pytest.raises(ValueError, match="determinant"):
        quat_from_matrix(np.diag([-1.0, 1.0, 1.0]))
