"""Frame-rate conversion shared by data preparation, the worker side and Blender (core.timebase)."""
import numpy as np
import pytest

from core.timebase import resample, resampled_count


def test_counts_cover_the_same_duration():
    assert resampled_count(31, 20, 30) == 21 and resampled_count(196, 24) == 235 and resampled_count(1, 60) == 1
    assert len(resample(np.zeros((196, 22, 3)), 24)) == resampled_count(196, 24)


def test_one_frame_and_bad_rates():
    np.testing.assert_array_equal(resample(np.ones((1, 4)), 24), np.ones((1, 4)))
    with pytest.raises(ValueError, match="frame rates must be positive"):
        resample(np.zeros((5, 3)), 0)
