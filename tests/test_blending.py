"""Seam fades (core.blending): the result starts and ends on the motions it continues, at their velocity."""
import numpy as np

from core.blending import carried_on, ease, fade


def test_ease_is_flat_at_both_ends():
    x = np.linspace(0, 1, 1001)
    assert ease(np.array([-1.0, 0.0, 0.5, 1.0, 2.0])).tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    slope = np.gradient(ease(x), x)
    assert abs(slope[0]) < 1e-6 and abs(slope[-1]) < 1e-6 and (np.diff(ease(x)) >= 0).all()


def test_fade_keeps_the_velocity_of_the_motions_it_continues():
    t = np.arange(40, dtype=float)[:, None]
    before, after, new = 0.02 * t, 1.0 - 0.03 * t, np.sin(t / 3)  # different speeds everywhere
    out = fade(new, before, after, 10)
    first, last = out[1] - out[0], out[-1] - out[-2]
    assert abs(first - 0.02) < 0.05 * abs(new[1] - new[0] - 0.02)  # steps near the seams: the old motion's
    assert abs(last + 0.03) < 0.05 * abs(new[-1] - new[-2] + 0.03)
    np.testing.assert_allclose(out[11:-11], new[11:-11], atol=1e-12)  # the new motion between the fades
    np.testing.assert_array_equal(fade(new, before, after, 0), new)


def test_clips_are_carried_into_a_gap_at_their_velocities():
    before = np.array([[0.0], [1.0], [3.0]])
    after = np.array([[10.0], [10.5]])
    lead_in, lead_out = carried_on(before, after, 3)
    assert lead_in[:, 0].tolist() == [5.0, 7.0, 9.0] and lead_out[:, 0].tolist() == [8.5, 9.0, 9.5]
