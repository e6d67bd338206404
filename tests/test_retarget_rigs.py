"""Retargeting numbers in Blender on every rig of ../shared/rigs and on armatures built with
the generator's proportions, for two real motions: the CMU walk converted by core.mocap and HumanML3D's kick,
each with the contacts HumanML3D's features give (what the model's contact channels learn). Keys are written
as the add-on writes them and Blender evaluates them; the limbs point where the motion's segments do, and so do
the pelvis -> neck direction and the shoulder line; the rigs with the generator's proportions land on its joints, locked feet do not skate nor sink, no bone flips.
Then the options end to end through the operator: foot locking (on by default, switchable) and the travel on a
root bone. scripts/bench_retarget.py runs the same measures (tests/support/retarget.py) over generated motions
and a Rigify rig."""
import numpy as np
import pytest

from tests.support.blender import (RIGS, addon_module, bpy, evaluated_joints, extension, generate,  # noqa: F401
                                   import_rig, model_prefs, prefs, rigid_model, scene)
from core import footlock, solver, timebase  # noqa: E402
from core.features import foot_contacts  # noqa: E402
from core.mocap import bvh_to_smpl_joints  # noqa: E402
from core.skeleton import FOOT_CONTACT_JOINTS  # noqa: E402
from momask_blender import keying  # noqa: E402  (after bpy: tests.support.blender skips without it)
from momask_blender.armature_reading import read_rig  # noqa: E402
from tests.conftest import shared_path  # noqa: E402
from tests.support.retarget import BUILT, FPS, Keyer, measure, to_motion  # noqa: E402
from tests.support.rigs import with_contacts  # noqa: E402

EXACT_SHAPE = ("mixamo T 0.01", "mixamo A", "mixamo down, knees 15, x100")


@pytest.fixture(scope="module")
def motions() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    fixture = shared_path("fixtures", "humanml3d")
    walk, _ = bvh_to_smpl_joints(shared_path("rigs", RIGS["cmu_bvh"][0]), fps=FPS)
    return {"cmu walk": with_contacts(walk),
            "fixture kick": (np.load(fixture / "000000_joints.npy").astype(np.float64),
                             foot_contacts(np.load(fixture / "000000_vecs.npy")) > 0.5)}


@pytest.fixture(autouse=True)
def empty_scene():
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = FPS, 1.0


@pytest.mark.shared
@pytest.mark.parametrize("name", [*RIGS, *BUILT])
def test_rig_follows_real_motion_with_planted_feet(motions, name):
    ob = BUILT[name](motions["fixture kick"][0][0]) if name in BUILT else import_rig(name)
    keyer = Keyer(ob)
    for motion, (joints, contacts) in motions.items():
        result = measure(keyer, joints, contacts)
        where = f"{name}, {motion}"
        for group in ("limbs", "spine"):  # the torso follows too
            assert np.median(result[group]) < 1.0 and np.percentile(result[group], 99) < 5.0, (where, group)
        if motion == "fixture kick" and name != "zup_bvh":  # the shoulder line nearly (not where the collars start
            line = result["shoulders"]  # at one point, nor on the CMU walk, whose collars are interpolated)
            assert np.median(line) < 1.5 and np.percentile(line, 99) < 5.0, where
        assert result["flips"] == 0, where
        if name in EXACT_SHAPE and motion == "fixture kick":  # the generator's own skeleton: every joint lands
            assert result["position_mm"] < 1.0, where
        assert result["held"] > 0.5, where
        assert result["skate_after"] < 2.0 and result["skate_after"] < result["skate_before"] / 2, where
        assert result["floor_mm"] > -5.0, where


@pytest.mark.shared
def test_keys_at_the_scenes_rate_lock_feet_by_the_models_contacts(motions):
    """At 30 fps the 20 fps contacts are resampled with the joints: the planted feet stand still there too."""
    joints, contacts = motions["cmu walk"]
    keyer = Keyer(BUILT["mixamo A"](motions["fixture kick"][0][0]))
    options = solver.SolveOptions()
    free, locked = (keying.solve_at_fps(keyer.solved, joints, 30, options, foot_lock=lock, contacts=contacts)
                    for lock in (False, True))
    frames, at_30 = timebase.resample(joints, 30), timebase.resample(contacts.astype(float), 30) > 0.5
    same, held = footlock.solve_locked(keyer.solved, frames, at_30, 30,
                                      solver.SolveOptions(placement=locked.placement))
    np.testing.assert_array_equal(locked.rotations, same.rotations)
    assert len(locked.rotations) == len(frames) and held.sum() > 0.5 * at_30.sum()
    free, locked = (to_motion(solver.mapped_joint_positions(keyer.solved, pose), pose.placement)
                    for pose in (free, locked))
    assert footlock.foot_skate(locked, held, 30) < 0.1 and footlock.foot_skate(free, held, 30) > 2.0
    with pytest.raises(ValueError, match=rf"foot contacts must be \({len(joints)}, 4\)"):
        keying.solve_at_fps(keyer.solved, joints, 30, options, foot_lock=True, contacts=contacts[1:])


@pytest.mark.shared
def test_generate_locks_feet_by_default_and_can_travel_on_the_root_bone(scene, model_prefs):
    """The operator end to end on the UE5 rig (a `root` bone above `pelvis`) with a worker and the rigid test
    model, whose body glides without a step: locked (the default), its feet stand still in most frames; unlocked,
    they glide along. Travel on the root bone: `root` carries the horizontal motion along the ground."""
    ob = import_rig("ue5")
    bpy.context.view_layer.objects.active = ob
    rig = read_rig(ob)
    frames = range(1, 41)
    feet = list(FOOT_CONTACT_JOINTS)

    def still(joints) -> float:
        """Share of the foot joints' frame steps slower than 1 cm/s horizontally."""
        speed = np.linalg.norm(np.diff(joints[:, feet, :2], axis=0), axis=-1) * scene.render.fps
        return (speed < 0.01).mean()

    assert generate(prompt="a person glides", seconds=2.0, seed=3, start_frame=1) == {"FINISHED"}
    locked = evaluated_joints(ob, frames, rig)
    assert generate(prompt="a person glides", seconds=2.0, seed=3, start_frame=1, foot_lock=False,
                    travel_on="ROOT") == {"FINISHED"}
    free = evaluated_joints(ob, frames, rig)
    assert still(locked) > 0.4 and still(free) == 0
    assert 'pose.bones["root"].location' in {c.data_path for c in
                                             ob.animation_data.action.layers[0].strips[0].channelbags[0].fcurves}
    root = []
    for frame in frames:
        scene.frame_set(frame)
        root.append(np.array(ob.matrix_world) @ np.append(ob.pose.bones["root"].head, 1.0))
    root = np.array(root)[:, :3]
    np.testing.assert_allclose(root[:, 2], root[0, 2], atol=1e-5)
    np.testing.assert_allclose(root[:, :2] - root[0, :2], free[:, 0, :2] - free[0, 0, :2], atol=1e-4)
    assert np.linalg.norm(free[-1, 0, :2] - free[0, 0, :2]) > 0.05


def test_travel_on_a_root_bone_the_rig_lacks_is_refused(scene, model_prefs):
    ob = addon_module("rig_builder").build_rig(bpy.context)
    with pytest.raises(RuntimeError, match="pelvis bone 'pelvis' has no bone above it"):
        generate(prompt="a person walks", seconds=2.0, travel_on="ROOT")
    assert ob.animation_data is None
