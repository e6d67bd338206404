"""Stick-figure previews: frames written, left/right told apart, contacts drawn, bad input refused clearly."""
import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image, ImageSequence

from core.cli import main
from core.render import CONTACT_COLOUR, LEFT_COLOUR, RIGHT_COLOUR, render_file, render_joints
from core.features import forward_kinematics
from core.skeleton import FOOT_CONTACT_JOINTS, JOINT_INDEX, NUM_JOINTS, TARGET_OFFSETS


def rest_pose() -> np.ndarray:
    """The target skeleton standing on y = 0, arms down, facing +z."""
    identity = np.tile([1.0, 0.0, 0.0, 0.0], (1, NUM_JOINTS, 1))
    pose = forward_kinematics(identity, np.zeros((1, 3)), TARGET_OFFSETS)[0]
    pose[:, 1] -= pose[list(FOOT_CONTACT_JOINTS), 1].min()
    return pose


def walking_motion(frames: int = 10) -> np.ndarray:
    """Rest pose travelling along +z while the left foot swings forward and up."""
    joints = np.repeat(rest_pose()[None], frames, axis=0)
    joints[..., 2] += 0.04 * np.arange(frames)[:, None]
    swing = np.sin(np.linspace(0, np.pi, frames))[:, None]
    left_foot = [JOINT_INDEX["left_ankle"], JOINT_INDEX["left_foot"]]
    joints[:, left_foot, 2] += 0.4 * swing
    joints[:, left_foot, 1] += 0.3 * swing
    return joints


def gif_frames(path) -> list[np.ndarray]:
    with Image.open(path) as gif:
        return [np.asarray(frame.convert("RGB"), dtype=np.int32) for frame in ImageSequence.Iterator(gif)]


def colour_mask(frame: np.ndarray, colour: str, tolerance: float = 60) -> np.ndarray:
    target = np.array(to_rgb(colour)) * 255
    return np.linalg.norm(frame - target, axis=-1) < tolerance


def test_gif_has_one_frame_per_pose_and_the_figure_moves(tmp_path):
    out = render_joints(walking_motion(10), tmp_path / "walk.gif", fps=20)
    frames = gif_frames(out)
    assert len(frames) == 10
    assert frames[0].shape == (480, 480, 3)
    first, middle = colour_mask(frames[0], LEFT_COLOUR), colour_mask(frames[5], LEFT_COLOUR)
    assert first.sum() > 200 and middle.sum() > 200
    assert (first ^ middle).sum() > 100  # the swinging left leg is drawn somewhere else


def test_left_and_right_limbs_have_distinct_colours_on_the_correct_sides(tmp_path):
    frame = gif_frames(render_joints(rest_pose()[None], tmp_path / "rest.gif"))[0]
    left, right = colour_mask(frame, LEFT_COLOUR), colour_mask(frame, RIGHT_COLOUR)
    assert left.sum() > 200 and right.sum() > 200
    assert not (left & right).any()
    # The body faces the camera, so its left limbs are drawn to the viewer's right (a y/z swap would mirror it).
    assert np.nonzero(left)[1].mean() > np.nonzero(right)[1].mean() + 10


def test_foot_contacts_are_drawn_only_where_the_foot_touches(tmp_path):
    joints = walking_motion(2)
    contacts = np.array([[1, 1, 1, 1], [0, 0, 0, 0]])
    frames = gif_frames(render_joints(joints, tmp_path / "contacts.gif", contacts=contacts))
    assert colour_mask(frames[0], CONTACT_COLOUR).sum() > 30
    assert colour_mask(frames[1], CONTACT_COLOUR).sum() == 0


def test_fixture_joints_file_renders_every_frame(fixture_dir, tmp_path):
    joints = np.load(fixture_dir / "000000_joints.npy")
    frames = gif_frames(render_file(fixture_dir / "000000_joints.npy", tmp_path / "kick.gif"))
    assert len(frames) == len(joints)
    assert any(not np.array_equal(colour_mask(frames[0], LEFT_COLOUR), colour_mask(f, LEFT_COLOUR))
               for f in frames[1:])


def test_features_file_is_recovered_to_joints_with_contacts(fixture_dir, tmp_path):
    features = np.load(fixture_dir / "000000_vecs.npy")
    frames = gif_frames(render_file(fixture_dir / "000000_vecs.npy", tmp_path / "kick.gif"))
    assert len(frames) == len(features)
    assert sum(colour_mask(f, CONTACT_COLOUR).sum() > 0 for f in frames) > len(frames) // 2  # mostly standing


def test_npz_prompt_becomes_the_title(tmp_path):
    joints = walking_motion(2)
    np.savez(tmp_path / "with.npz", joints=joints, prompt=np.array("a person walks forward"))
    np.savez(tmp_path / "without.npz", joints=joints)
    titled = gif_frames(render_file(tmp_path / "with.npz", tmp_path / "with.gif"))[0]
    plain = gif_frames(render_file(tmp_path / "without.npz", tmp_path / "without.gif"))[0]
    ink = lambda frame: (frame[:30].sum(axis=-1) < 300).sum()  # dark pixels in the top band
    assert ink(titled) > 50 and ink(plain) == 0


@pytest.mark.parametrize("joints, message", [
    (np.zeros((5, 21, 3)), r"\(T, 22, 3\), got \(5, 21, 3\)"),
    (np.zeros((0, 22, 3)), r"got \(0, 22, 3\)"),
    (np.full((3, 22, 3), np.nan), "not finite in frame 0"),
])
def test_bad_joints_are_refused(tmp_path, joints, message):
    with pytest.raises(ValueError, match=message):
        render_joints(joints, tmp_path / "bad.gif")


def test_contacts_of_the_wrong_shape_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"foot contacts must be \(4, 4\) for 4 frames .*got \(4, 2\)"):
        render_joints(walking_motion(4), tmp_path / "bad.gif", contacts=np.ones((4, 2)))


def test_files_of_the_wrong_shape_or_kind_name_the_file(tmp_path):
    np.save(tmp_path / "wrong.npy", np.zeros((5, 100)))
    with pytest.raises(ValueError, match=r"wrong\.npy.*got shape \(5, 100\)"):
        render_file(tmp_path / "wrong.npy", tmp_path / "out.gif")
    np.savez(tmp_path / "nojoints.npz", positions=np.zeros((5, 22, 3)))
    with pytest.raises(ValueError, match=r"nojoints\.npz: no 'joints' array \(it holds: positions\)"):
        render_file(tmp_path / "nojoints.npz", tmp_path / "out.gif")
    (tmp_path / "motion.bvh").write_text("HIERARCHY")
    with pytest.raises(ValueError, match=r"motion\.bvh: unknown motion format '\.bvh'"):
        render_file(tmp_path / "motion.bvh", tmp_path / "out.gif")


def test_unknown_output_extension_is_refused_before_rendering(tmp_path):
    with pytest.raises(ValueError, match=r"unknown output format '\.png'; use \.gif or \.mp4"):
        render_joints(walking_motion(2), tmp_path / "out.png")
    assert not (tmp_path / "out.png").exists()


def test_mp4_without_ffmpeg_suggests_gif(tmp_path, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(ValueError, match=r"needs ffmpeg.*write a \.gif instead"):
        render_joints(walking_motion(2), tmp_path / "out.mp4")


def test_cli_reports_bad_output_as_a_one_line_error(tmp_path, capsys):
    np.save(tmp_path / "walk.npy", walking_motion(2))
    assert main(["render", str(tmp_path / "walk.npy"), str(tmp_path / "walk.avi")]) == 2
    assert "walk.avi: expected a .gif or .mp4 file" in capsys.readouterr().err
