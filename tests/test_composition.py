"""Composed clips: a locomotion's body with an arm action's arms, turned into the body's facing."""
import numpy as np

from core.dataset.composition import ARM_JOINTS, compose_arms, composed_captions
from core.skeleton import JOINT_INDEX, PARENTS, TARGET_OFFSETS


def _pose() -> np.ndarray:
    joints = np.zeros((22, 3))
    for j in range(1, 22):
        joints[j] = joints[PARENTS[j]] + TARGET_OFFSETS[j]
    return joints


def _turned(joints: np.ndarray, angle: float) -> np.ndarray:
    """Joints turned about +y by `angle` (x' = x cos + z sin, z' = -x sin + z cos)."""
    c, s = np.cos(angle), np.sin(angle)
    rotation = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return joints @ rotation.T


def test_arms_follow_the_body_and_the_rest_is_the_body():
    frames = 30
    body = np.stack([_turned(_pose(), 0.02 * t) + [0, 0, 0.05 * t] for t in range(frames)])  # walks and turns
    arm_pose = _pose()
    wrist, shoulder = JOINT_INDEX["right_wrist"], JOINT_INDEX["right_shoulder"]
    arm_pose[wrist] = arm_pose[shoulder] + [0, 0.5, 0]  # right hand raised
    arms = np.stack([_turned(arm_pose, 1.0)] * (frames + 10))  # facing elsewhere, longer
    out = compose_arms(body, arms, ("right",))
    assert out.shape == (frames, 22, 3)
    others = [j for j in range(22) if j not in ARM_JOINTS["right"]]
    np.testing.assert_array_equal(out[:, others], body[:, others])
    spine = JOINT_INDEX["spine3"]
    expected = np.stack([_turned(arm_pose[list(ARM_JOINTS["right"])] - arm_pose[spine], 0.02 * t)
                         for t in range(frames)]) + body[:, [spine]]
    np.testing.assert_allclose(out[:, list(ARM_JOINTS["right"])], expected, atol=1e-9)
    assert (out[:, wrist, 1] > out[:, shoulder, 1] + 0.49).all()


def test_a_short_arm_clip_plays_forward_and_back_over_the_whole_body_clip():
    frames, arm_frames = 25, 6
    body = np.stack([_pose() + [0, 0, 0.05 * t] for t in range(frames)])
    wrist, shoulder = JOINT_INDEX["right_wrist"], JOINT_INDEX["right_shoulder"]
    arms = np.stack([_pose()] * arm_frames)
    arms[:, wrist, 1] += 0.1 * np.arange(arm_frames)  # the hand rises 0.1 m a frame
    out = compose_arms(body, arms, ("right",))
    assert out.shape == (frames, 22, 3)  # the body's whole walk, not the arm clip's 6 frames
    np.testing.assert_array_equal(out[:, 0], body[:, 0])
    height = np.round((out[:, wrist, 1] - out[:, shoulder, 1]) - (arms[0, wrist, 1] - arms[0, shoulder, 1]), 6)
    np.testing.assert_allclose(height[:12], [0, .1, .2, .3, .4, .5, .4, .3, .2, .1, 0, .1], atol=1e-9)
    assert np.abs(np.diff(height)).max() <= 0.1 + 1e-9  # no jump where the clip turns round


def test_composed_captions_say_both_actions_and_the_side():
    captions = composed_captions("walk", "wave-right-hand", 12, np.random.default_rng(0))
    assert len(set(captions)) == 12
    assert all("right" in c and "left" not in c for c in captions)
    assert all(any(w in c for w in ("walk", "stroll", "step", "march", "wander", "move")) for c in captions)
