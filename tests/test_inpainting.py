"""Inpainting and in-betweening. Splicing is checked on constructed motions whose answer is known; the
model side with tiny random models (their output is noise, so: frames, tokens, windows, errors)."""
import numpy as np
import pytest
import torch

from scipy.spatial.transform import Rotation

from core.blending import ease
from core.features import (RIC, ROOT_Y, forward_kinematics, inverse_kinematics, joints_to_features,
                           recover_from_ric)
from core.footlock import lock_feet
from core.inpainting import (BLEND_FRAMES, MAX_RANGE_FRAMES, facing_yaw, inbetween, inpaint, lock_feet_in_ranges,
                             seam_velocity_ratio, splice_range)
from core.quaternion import qmul, qrot
from core.sampling import GenerationCancelled
from core.skeleton import PARENTS, RAW_OFFSETS
from tests.support import rigs
from tests.support.motions import synthetic_motion
from tests.support.tiny_models import Q, HashEncoder, models, single_thread  # noqa: F401 (fixtures)


def turn(angle):
    """Quaternions turning about +y by `angle` (scalar or per frame)."""
    return Rotation.from_euler("y", np.ravel(angle)[:, None]).as_quat(scalar_first=True).reshape(np.shape(angle) + (4,))


def moved(joints, yaw=2.1, shift=(1.5, 0.2, -3.0)):
    """The same motion turned about +y and shifted: how the model's output is placed relative to a source."""
    return qrot(turn(yaw), joints) + np.array(shift)


def inside_mask(length, ranges):
    mask = np.zeros(length, dtype=bool)
    for a, b in ranges:
        mask[a:b] = True
    return mask


@pytest.mark.parametrize("start, stop", [(30, 50), (0, 20), (100, 120), (0, 120), (40, 41)])
def test_a_moved_copy_of_the_source_splices_back_to_the_source(start, stop):
    source = synthetic_motion(120)
    np.testing.assert_allclose(splice_range(source, moved(source), start, stop), source[start:stop], atol=1e-9)


def test_drift_in_heading_and_position_is_carried_off_over_the_range():
    source, (start, stop) = synthetic_motion(120), (30, 70)
    anchor, t = source[start - 1, 0], np.arange(120)
    w = np.clip((t - (start - 1)) / (stop - (start - 1)), 0, 1)
    w = ease(w)[:, None, None]  # the correction's own easing: it cancels exactly
    # the decoded motion turns 0.9 rad and walks 0.6 m off the source's path over the range
    drifted = qrot(turn(0.9 * w[..., 0]), source - anchor + w * np.array([0.4, 0.0, -0.45])) + anchor
    assert np.linalg.norm(drifted[stop, 0] - source[stop, 0]) > 0.5
    spliced = splice_range(source, moved(drifted), start, stop)
    np.testing.assert_allclose(spliced, source[start:stop], atol=1e-9)
    np.testing.assert_allclose(facing_yaw(spliced[-1]), facing_yaw(source[stop - 1]), atol=1e-9)


def reposed(joints, bones, angle):
    """The motion with these bones turned by `angle` about their own x axis: the same skeleton, root and
    heading (hips and shoulders stay), a different pose."""
    local = inverse_kinematics(joints, np.broadcast_to(turn(0.0), (len(joints), 4)))
    local[:, bones] = qmul(local[:, bones], Rotation.from_euler("x", angle).as_quat(scalar_first=True))
    lengths = np.linalg.norm(joints[0] - joints[0, np.maximum(PARENTS, 0)], axis=-1)
    return forward_kinematics(local, joints[:, 0], RAW_OFFSETS * lengths[:, None])


def test_ranges_fade_in_from_the_source_and_seams_stay_as_smooth_as_the_clip():
    source, (start, stop) = synthetic_motion(120), (30, 70)
    other = reposed(source, [4, 5, 15, 18, 19], 0.25)  # knees, head and elbows bent a little differently
    gap = np.linalg.norm(other - source, axis=-1).max(axis=-1)
    assert gap.min() > 0.05 and np.abs(other[:, [0, 1, 2, 16, 17]] - source[:, [0, 1, 2, 16, 17]]).max() < 1e-9
    out = source.copy()
    out[start:stop] = splice_range(source, moved(other), start, stop)
    # away from the seams the generated motion is kept as it is, placed on the source's root path
    middle = slice(start + BLEND_FRAMES, stop - BLEND_FRAMES)
    np.testing.assert_allclose(out[middle], other[middle], atol=1e-9)
    # the steps into and out of the range are the source's own steps within 1 mm: its velocity runs on
    for a, b in ((start - 1, start), (stop - 1, stop)):
        assert np.linalg.norm((out[b] - out[a]) - (source[b] - source[a]), axis=-1).max() < 0.001
    assert (seam_velocity_ratio(out, [start, stop]) <= 1).all()
    hard = source.copy()
    hard[start:stop] = splice_range(source, moved(other), start, stop, blend_frames=0)
    assert (seam_velocity_ratio(hard, [start, stop]) > 1).all()  # the same splice without easing is a jump


def test_generated_joints_take_the_source_skeleton():
    source, other = synthetic_motion(120, seed=0), synthetic_motion(120, seed=3)  # different bone lengths
    spliced = splice_range(source, other, 40, 80)[BLEND_FRAMES:-BLEND_FRAMES]

    def bones(j):
        return np.linalg.norm(j[:, 1:] - j[:, PARENTS[1:]], axis=-1)
    assert np.abs(bones(other)[0] - bones(source)[0]).max() > 0.01
    np.testing.assert_allclose(bones(spliced), np.broadcast_to(bones(source)[0], bones(spliced).shape), atol=1e-9)


def test_seam_ratio_flags_a_jump_and_not_the_clip_itself():
    motion = synthetic_motion(120)
    assert (seam_velocity_ratio(motion, [20, 60, 100]) <= 1).all()
    jumped = motion.copy()
    jumped[60:] += np.array([0.0, 0.0, 0.08])  # the whole body skips 8 cm forward at frame 60
    ratio = seam_velocity_ratio(jumped, [20, 60])
    assert ratio[0] <= 1 < ratio[1]
    with pytest.raises(ValueError, match="seams must lie in 2..118"):
        seam_velocity_ratio(motion, [119])


def source_tokens(models, features):
    normalised = (features - models.mean) / models.std
    with torch.inference_mode():
        return models.rvq.encode(torch.as_tensor(normalised, dtype=torch.float32)[None])[0].numpy()


def test_joints_source_keeps_outside_frames_and_all_tokens_outside_the_ranges(models):
    source = synthetic_motion(60, seed=2).astype(np.float32)
    ranges = [(5, 13), (30, 41)]
    out = inpaint(models, HashEncoder(), source, ranges, "a person waves", candidates=2, seed=0)
    inside = inside_mask(60, ranges)
    expected_ids = source_tokens(models, joints_to_features(np.concatenate([source, source[-1:]])))
    for motion in out:
        assert motion.length == 60 and motion.joints.shape == (60, 22, 3) and motion.joints.dtype == np.float32
        assert np.array_equal(motion.joints[~inside], source[~inside])
        assert np.abs(motion.joints[inside] - source[inside]).max() > 0.05  # really regenerated
        assert motion.features.shape == (60, 263) and motion.contacts.shape == (60, 4)
        np.testing.assert_allclose(motion.features, joints_to_features(
            np.concatenate([motion.joints, motion.joints[-1:]]).astype(np.float64)), atol=1e-5)
        [window] = motion.windows
        assert (window.start, window.stop, window.ranges) == (0, 60, ranges)
        # tokens overlapping [5, 13) are 1..3 (frames 4..15), overlapping [30, 41) are 7..10 (frames 28..43)
        assert np.flatnonzero(window.editable).tolist() == [1, 2, 3, 7, 8, 9, 10]
        kept = ~window.editable
        assert window.tokens.shape == (15, Q)
        assert np.array_equal(window.tokens[kept], expected_ids[kept])  # base and residual layers
    assert not np.array_equal(out[0].windows[0].tokens, out[1].windows[0].tokens)


def test_features_source_keeps_its_rows_and_puts_the_edit_on_its_floor(models):
    features = joints_to_features(synthetic_motion(51, seed=4)).astype(np.float32)  # 50 rows, 13 tokens
    features[:, ROOT_Y] += 0.3  # a source whose floor is not at height 0
    features[:, RIC.start + 1: RIC.stop: 3] += 0.3
    ranges = [(0, 3), (21, 22), (47, 50)]
    [motion] = inpaint(models, HashEncoder(), features, ranges, "a person jumps", seed=1)
    inside = inside_mask(50, ranges)
    assert np.array_equal(motion.features[~inside], features[~inside])
    assert np.array_equal(motion.joints[~inside], recover_from_ric(features).astype(np.float32)[~inside])
    assert not np.allclose(motion.features[inside], features[inside])
    np.testing.assert_allclose(motion.features[inside, 3], motion.joints[inside, 0, 1], atol=1e-4)
    assert np.flatnonzero(motion.windows[0].editable).tolist() == [0, 5, 11, 12]
    expected_ids = source_tokens(models, np.concatenate([features, features[-1:].repeat(2, 0)]))
    kept = ~motion.windows[0].editable
    assert np.array_equal(motion.windows[0].tokens[kept], expected_ids[kept])


def test_long_source_is_edited_in_windows_around_its_ranges(models):
    source = synthetic_motion(300, seed=5).astype(np.float32)
    ranges = [(10, 30), (250, 271)]
    [motion] = inpaint(models, HashEncoder(), source, ranges, "a person kicks", seed=0)
    inside = inside_mask(300, ranges)
    assert np.array_equal(motion.joints[~inside], source[~inside])
    assert [(w.start, w.stop, w.ranges) for w in motion.windows] == [(0, 196, [ranges[0]]), (104, 300, [ranges[1]])]
    assert np.flatnonzero(motion.windows[1].editable).tolist() == list(range(36, 42))  # frames 248..271
    together = inpaint(models, HashEncoder(), source, [(100, 140), (150, 200)], "walk", seed=0)[0].windows
    assert [(w.start, w.stop) for w in together] == [(52, 248)]  # one window holds both, 16+ frames around


def test_touching_ranges_merge_and_a_whole_short_motion_can_be_regenerated(models):
    source = synthetic_motion(40, seed=6).astype(np.float32)
    [motion] = inpaint(models, HashEncoder(), source, [(10, 20), (0, 10)], "turn", seed=0)
    assert motion.windows[0].ranges == [(0, 20)] and np.array_equal(motion.joints[20:], source[20:])
    [whole] = inpaint(models, HashEncoder(), source, (0, 40), "turn", seed=0)
    assert whole.windows[0].editable.all()
    np.testing.assert_allclose(whole.joints[0, 0], source[0, 0], atol=1e-5)  # placed where the source starts


def test_seed_reproduces(models):
    source = synthetic_motion(40, seed=7).astype(np.float32)
    a, b, c = (inpaint(models, HashEncoder(), source, (8, 24), "sit", seed=s)[0] for s in (3, 3, 4))
    assert np.array_equal(a.joints, b.joints) and np.array_equal(a.features, b.features)
    assert not np.array_equal(a.joints, c.joints)


def test_candidate_k_is_the_single_request_with_seed_plus_k(models):
    """Across windows too: a long source edited in two windows, three candidates against three single requests."""
    source = synthetic_motion(300, seed=9).astype(np.float32)
    ranges = [(10, 30), (250, 271)]
    together = inpaint(models, HashEncoder(), source, ranges, "a person kicks", candidates=3, seed=4)
    for k, motion in enumerate(together):
        [alone] = inpaint(models, HashEncoder(), source, ranges, "a person kicks", seed=4 + k)
        for w, window in enumerate(motion.windows):
            np.testing.assert_array_equal(window.tokens, alone.windows[w].tokens)
        np.testing.assert_allclose(motion.joints, alone.joints, atol=1e-5)
    assert not np.array_equal(together[0].joints, together[1].joints)


def test_foot_locking_an_edit_leaves_every_frame_outside_its_ranges_bit_for_bit(models):
    """Locking the whole edit would move knees and feet of kept frames (a pin holds the middle of a contact that
    runs across a range's edge); locked in the ranges and faded at their edges, the kept frames stay the source's."""
    pose = rigs.with_contacts(rigs.synthetic_motion(41))[0][0]  # one foot on the floor
    source = (pose + np.arange(120)[:, None, None] * [0.01, 0.0, 0.0]).astype(np.float32)  # skating at 0.2 m/s
    ranges = [(30, 50), (80, 100)]
    [motion] = inpaint(models, HashEncoder(), source, ranges, "walk", seed=0)
    locked = lock_feet_in_ranges(motion, source)
    inside = inside_mask(len(source), ranges)
    assert locked.joints.dtype == np.float32 and locked.windows == motion.windows
    assert np.array_equal(locked.joints[~inside], source[~inside])
    assert np.abs(lock_feet(motion.joints, motion.contacts)[~inside] - source[~inside]).max() > 0.01
    assert np.abs(locked.joints[inside] - motion.joints[inside]).max() > 0.01  # the ranges were locked
    np.testing.assert_allclose(locked.features, joints_to_features(
        np.concatenate([locked.joints, locked.joints[-1:]]).astype(np.float64)), atol=1e-5)
    np.testing.assert_array_equal(locked.contacts, locked.features[:, -4:] > 0.5)


def test_an_empty_prompt_is_unconditional(models, monkeypatch):
    conds, original = [], models.mask.logits
    monkeypatch.setattr(models.mask, "logits", lambda *a, **k: conds.append(k["cond"].clone()) or original(*a, **k))
    source = synthetic_motion(40, seed=8).astype(np.float32)
    inpaint(models, HashEncoder(), source, (8, 24), "  ", candidates=2, seed=0, steps=3)
    assert len(conds) == 3 and all(c.shape == (2, 8) and not c.any() for c in conds)  # no guidance batch
    conds.clear()
    inpaint(models, HashEncoder(), source, (8, 24), "sit down", seed=0, steps=3)
    assert conds[0].shape == (2, 8) and conds[0][0].any() and not conds[0][1].any()  # guided: cond + zeros


def test_progress_and_cancel(models):
    source, calls = synthetic_motion(40, seed=9).astype(np.float32), []
    inpaint(models, HashEncoder(), source, (8, 24), "run", seed=0, steps=4, progress=lambda s, t: calls.append((s, t)))
    assert calls == [(s, 4 + Q - 1) for s in range(1, 4 + Q)]
    calls.clear()
    with pytest.raises(GenerationCancelled, match="after step 2"):
        inpaint(models, HashEncoder(), source, (8, 24), "run", steps=4, progress=lambda s, t: calls.append(s),
                cancel=lambda: len(calls) >= 2)
    assert calls == [1, 2]


def test_inbetween_fills_the_gap_and_keeps_both_sides(models):
    motion = synthetic_motion(90, seed=10).astype(np.float32)
    before, after = motion[:40], motion[50:]
    [filled] = inbetween(models, HashEncoder(), before, after, 10, seed=0)
    assert filled.length == 90 and filled.windows[0].ranges == [(40, 50)]
    assert np.array_equal(filled.joints[:40], before) and np.array_equal(filled.joints[50:], after)
    with pytest.raises(ValueError, match="gap_frames must be a whole number"):
        inbetween(models, HashEncoder(), before, after, 0)
    with pytest.raises(ValueError, match="`after` must be joints"):
        inbetween(models, HashEncoder(), before, after[:, :21], 10)


@pytest.mark.parametrize("ranges, message", [
    ([], "no frame range"),
    ([(5, 5)], r"range 0 \[5, 5\) is empty"),
    ([(-1, 5)], r"outside the motion's frames \[0, 60\)"),
    ([(0, 10), (50, 61)], r"range 1 \[50, 61\) is outside"),
    ([(0, 10), (5, 15)], r"\[0, 10\) and \[5, 15\) overlap"),
    ([(0, 2.5)], "range 0 must be a pair of frame numbers"),
    ((5.0, 13.0), "range 0 must be a pair of frame numbers"),
    (None, "no frame range"),
])
def test_bad_ranges(models, ranges, message):
    with pytest.raises(ValueError, match=message):
        inpaint(models, HashEncoder(), synthetic_motion(60).astype(np.float32), ranges, "walk")


def test_a_range_longer_than_a_window_allows_is_refused_in_a_long_motion(models):
    source = synthetic_motion(250).astype(np.float32)
    with pytest.raises(ValueError, match=f"at most {MAX_RANGE_FRAMES}"):
        inpaint(models, HashEncoder(), source, (20, 20 + MAX_RANGE_FRAMES + 1), "walk")
    with pytest.raises(ValueError, match=r"\[0, 200\) has 200 frames \(touching"):
        inpaint(models, HashEncoder(), source, [(0, 100), (100, 200)], "walk")


@pytest.mark.parametrize("source, prompt, message", [
    (np.zeros((30, 22, 2)), "walk", r"features \(T, 263\) or joints \(T, 22, 3\)"),
    (np.zeros((5, 263)), "walk", "5 frames; at least 8"),
    (np.full((30, 263), np.nan), "walk", "NaN"),
    (None, None, "prompt 0 must be a string"),
])
def test_bad_sources_and_prompts(models, source, prompt, message):
    source = synthetic_motion(30).astype(np.float32) if source is None else source
    with pytest.raises(ValueError, match=message):
        inpaint(models, HashEncoder(), source, (0, 4), prompt)


def test_blend_frames_must_be_a_count(models):
    with pytest.raises(ValueError, match="blend_frames must be a whole number"):
        inpaint(models, HashEncoder(), synthetic_motion(30).astype(np.float32), (0, 4), "walk", blend_frames=-1)
