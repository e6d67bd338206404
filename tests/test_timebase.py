"""Frame-rate conversion shared by data preparation, the worker side and Blender (core.timebase)."""
import numpy as np
import pytest

from core.timebase import SceneRange, resample, resampled_count, to_model_frames, to_scene_frames


def test_counts_cover_the_same_duration():
    assert resampled_count(31, 20, 30) == 21 and resampled_count(196, 24) == 235 and resampled_count(1, 60) == 1
    assert len(resample(np.zeros((196, 22, 3)), 24)) == resampled_count(196, 24)


def test_one_frame_and_bad_rates():
    np.testing.assert_array_equal(resample(np.ones((1, 4)), 24), np.ones((1, 4)))
    with pytest.raises(ValueError, match="frame rates must be positive"):
        resample(np.zeros((5, 3)), 0)


@pytest.mark.parametrize("first, last, origin, fps, expected", [
    (10, 20, 1, 20, (9, 20)),  # at the model's rate: the same frames, the last one included
    (10, 20, 1, 24, (8, 16)),  # 9 * 20/24 = 7.5 -> 8; 19 * 20/24 = 15.8 -> 15, included
    (7, 13, 1, 24, (5, 11)),  # 6 and 12 scene frames are exactly 5 and 10 model frames: both inside
    (31, 1501, 1, 30000 / 1001, (21, 1002)),  # 29.97 fps: 30 frames are 20.02 model frames, 1500 are 1001
    (4, 4, 1, 60, (1, 2)),  # one 60 fps frame holds no model frame's time: the next one stands for it
])
def test_a_scene_range_covers_the_model_frames_whose_times_fall_inside_it(first, last, origin, fps, expected):
    assert SceneRange(first, last).model_range(origin, fps) == expected


def test_a_gap_of_scene_frames_in_model_frames_and_back():
    gap = SceneRange(11, 20)  # 10 frames at 24 fps between keyed frames 10 and 21: 11 frame steps, 9.17 at 20 fps
    assert str(gap) == "11-20" and gap.frames == 10
    assert gap.model_frames_inside(24) == 8
    rate = gap.fill_rate(8)  # 9 model steps spread over the 11 scene steps
    assert rate == pytest.approx(20 * 11 / 9)
    assert to_scene_frames(to_model_frames(11, 24), 24) == pytest.approx(11)
    assert SceneRange(5, 5).model_frames_inside(60) == 1
