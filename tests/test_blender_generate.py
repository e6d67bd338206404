"""bpy.ops.momask.generate end to end with a real worker (`python -m core.worker` from the set-up's .venv) and
a tiny random model with the real MiniLM text encoder.

Random weights decode noise, and a rig is rigid: so the model's normalisation pins every frame's body to the
built-in rig's rest shape (ric and root height with a negligible spread) and leaves the root free to travel
and turn. Its motions are then rigid bodies moving at random, which a rig can follow exactly: the evaluated
bone heads must land on the generated joints within 1 mm, frame by frame, at 24 and 30 fps."""
import os
import signal
import time
import types

import numpy as np
import pytest

from tests.support.blender import (add_rig, addon_module, bpy, build_armature, evaluated_joints,  # noqa: F401
                                   extension, generate, keyed_armature, model_prefs, prefs, rigid_model, run_modal,
                                   scene, snapshot)

torch = pytest.importorskip("torch")

from core.solver import HUMANML3D_TO_BLENDER, default_placement  # noqa: E402
from tests.support.rigs import offsets_of, rest_pose  # noqa: E402


def worker():
    """The session's worker client."""
    return addon_module("jobs")._client


def expected_joints(model_dir, prompt, seconds, seed) -> np.ndarray:
    """The same request again from the warm worker: its motion is a function of the request and seed."""
    job = worker().request("generate", model=str(model_dir), prompts=[prompt], lengths=[round(seconds * 20)],
                           candidates=1, seed=seed, steps=10, cond_scale=4.0)
    return job.wait(timeout=60)["motions"][0][0]["joints"].astype(np.float64)


def at_frame_times(joints: np.ndarray, fps: float) -> np.ndarray:
    """(T, 22, 3) at 20 fps -> the frames of a scene at fps, linearly interpolated (np.interp per channel)."""
    count = int((len(joints) - 1) * fps / 20 + 1e-6) + 1
    times, source = np.arange(count) * 20 / fps, np.arange(len(joints))
    flat = joints.reshape(len(joints), -1)
    return np.stack([np.interp(times, source, channel) for channel in flat.T], axis=-1).reshape(count, 22, 3)


@pytest.mark.parametrize("fps", [24, 30])
def test_generated_motion_lands_on_the_rig_within_a_millimetre(scene, model_prefs, rigid_model, fps):
    scene.render.fps = fps
    ob = add_rig((0.5, -1.0, 0.0))
    # foot locking (on by default) re-bends legs to planted feet: off, the solve alone lands on the joints
    result = generate(prompt="a person walks in a circle", seconds=3.0, seed=11, start_frame=5, foot_lock=False)
    assert result == {"FINISHED"}
    action = ob.animation_data.action
    assert action.name == "a person walks in a circle (seed 11)" and len(action.slots) == 1
    assert ob.animation_data.action_slot == action.slots[0]
    joints = expected_joints(rigid_model, "a person walks in a circle", 3.0, seed=11)
    rig = addon_module("armature_reading").read_rig(ob)
    placement = default_placement(rig, joints)
    target = at_frame_times(joints, fps) @ placement[:3, :3].T + placement[:3, 3]
    curve = action.layers[0].strips[0].channelbags[0].fcurves[0]
    assert (curve.keyframe_points[0].co[0], len(curve.keyframe_points)) == (5, len(target))
    got = evaluated_joints(ob, range(5, 5 + len(target)))
    assert np.linalg.norm(got - target, axis=-1).max() < 1e-3
    assert np.ptp(target[:, 0, :2], axis=0).max() > 0.05  # the root did travel


def test_any_rig_with_a_complete_mapping_in_any_rotation_mode(scene, model_prefs, rigid_model):
    """A Mixamo-named armature as FBX brings it (object scaled 0.01 and turned, bones in centimetres, random
    rolls, A-pose, bent knees), half its bones in Euler or axis-angle mode: keyed in their own modes, it lands
    on the joints too."""
    rest = addon_module("rig_builder").rest_joints() @ HUMANML3D_TO_BLENDER
    ob = build_armature(rest_pose(offsets_of(rest), "A", 10))
    modes = {bone.name: mode for bone, mode in
             zip(ob.pose.bones, ["YXZ", "QUATERNION", "AXIS_ANGLE", "QUATERNION"] * 6)}
    for bone in ob.pose.bones:
        bone.rotation_mode = modes[bone.name]
    assert generate(prompt="a person turns around", seconds=2.0, seed=4, foot_lock=False) == {"FINISHED"}
    channels = {c.data_path.split('"')[1]: c.data_path.rsplit(".", 1)[1]
                for c in ob.animation_data.action.layers[0].strips[0].channelbags[0].fcurves
                if not c.data_path.endswith("location")}
    paths = {"YXZ": "rotation_euler", "QUATERNION": "rotation_quaternion", "AXIS_ANGLE": "rotation_axis_angle"}
    assert channels == {name: paths[mode] for name, mode in modes.items()}
    joints = expected_joints(rigid_model, "a person turns around", 2.0, seed=4)
    rig = addon_module("armature_reading").read_rig(ob)
    placement = default_placement(rig, joints)
    target = at_frame_times(joints, 24) @ placement[:3, :3].T + placement[:3, 3]
    got = evaluated_joints(ob, range(1, 1 + len(target)), rig)
    assert np.linalg.norm(got - target, axis=-1).max() < 1e-3


def test_candidates_are_actions_the_list_switches_between(scene, model_prefs):
    ob = add_rig()
    own = keyed_armature(ob)
    assert generate(prompt="a person dances", seconds=2.0, seed=3, candidates=3, in_place=True) == {"FINISHED"}
    names = [f"a person dances (seed {2 + k}, {k} of 3)" for k in (1, 2, 3)]  # candidate k: seed 3 + k - 1
    assert [c.action.name for c in ob.momask_candidates] == [own.name] + names
    assert ob.momask_candidate_index == 1 and ob.animation_data.action.name == names[0]
    assert own.users >= 1 and own.name in bpy.data.actions  # the user's action is kept
    poses = {}
    for index, name in enumerate([own.name] + names):
        ob.momask_candidate_index = index
        assert ob.animation_data.action.name == name and ob.animation_data.action_slot is not None
        poses[name] = evaluated_joints(ob, [20])[0]
    for a, b in zip([own.name] + names, names):
        assert np.abs(poses[a] - poses[b]).max() > 1e-3  # different motions
    pelvis = evaluated_joints(ob, range(1, 41))[:, 0]
    travel = pelvis[:, :2] - pelvis[0, :2]
    assert np.abs(travel).max() < 1e-4  # in place: no horizontal travel


def test_automatic_duration_and_one_undo_step(scene, model_prefs):
    ob = add_rig()
    own = keyed_armature(ob)
    bpy.ops.ed.undo_push(message="before generating")
    before = snapshot()
    assert bpy.ops.momask.generate("EXEC_DEFAULT", True, prompt="a person jumps", seconds=0.0, seed=5,
                                   candidates=2) == {"FINISHED"}
    assert len(bpy.data.actions) == 3 and bpy.context.active_object.animation_data.action.name != own.name
    bpy.ops.ed.undo()
    assert snapshot() == before


def test_modal_steps_show_progress_and_key_at_the_end(scene, model_prefs):
    ob = add_rig()
    operators, jobs = addon_module("operators"), addon_module("jobs")
    settings = jobs.Settings("a person waves", 2.0, 1, 1, 4.0, 10, 1, False)
    reports = []
    op = types.SimpleNamespace(_generation=jobs.Generation(bpy.context, settings).start(), _timer=None,
                               report=lambda kind, text: reports.append((kind, text)))
    wm = bpy.context.window_manager
    states, seen = [], []
    timer = types.SimpleNamespace(type="TIMER", value="NOTHING")
    for _ in range(600):
        states.append(bpy.types.MOMASK_OT_generate.modal(op, bpy.context, timer))
        seen.append((wm.momask_progress, wm.momask_status))
        if states[-1] != {"RUNNING_MODAL"}:
            break
        assert not bpy.data.actions  # nothing is written while the job runs
        time.sleep(0.02)
    assert states[-1] == {"FINISHED"} and states[:-1] == [{"RUNNING_MODAL"}] * (len(states) - 1)
    assert any(status for _, status in seen[:-1]) and seen[-1] == (0.0, "")
    assert ob.animation_data.action.name == "a person waves (seed 1)"
    assert reports and reports[-1][0] == {"INFO"}
    other = types.SimpleNamespace(type="MOUSEMOVE", value="NOTHING")
    assert bpy.types.MOMASK_OT_generate.modal(op, bpy.context, other) == {"PASS_THROUGH"}


def start_modal(settings_args, reports):
    jobs = addon_module("jobs")
    generation = jobs.Generation(bpy.context, jobs.Settings(*settings_args)).start()
    return types.SimpleNamespace(_generation=generation, _timer=None,
                                 report=lambda kind, text: reports.append((kind, text)))


def start_long_generation():
    """A keyed rig, the scene's snapshot, and a long modal generation started on it (2,000 steps)."""
    keyed_armature(add_rig())
    before, reports = snapshot(), []
    return start_modal(("a person runs", 9.8, 2, 1, 4.0, 2000, 1, False), reports), before, reports


def test_escape_cancels_halfway_and_changes_nothing(scene, model_prefs):
    op, before, reports = start_long_generation()
    deadline = time.monotonic() + 30
    while op._generation.job.progress == 0 and time.monotonic() < deadline:
        op._generation.poll()
        time.sleep(0.005)
    assert 0 < op._generation.job.progress < 0.5
    escape = types.SimpleNamespace(type="ESC", value="PRESS")
    assert bpy.types.MOMASK_OT_generate.modal(op, bpy.context, escape) == {"RUNNING_MODAL"}
    assert run_modal(op) == {"CANCELLED"}
    assert reports == [({"WARNING"}, "Generation cancelled; nothing was changed")]
    assert snapshot() == before


def test_killed_worker_is_a_message_and_the_next_request_restarts_it(scene, model_prefs):
    op, before, reports = start_long_generation()
    deadline = time.monotonic() + 30
    while worker().ready is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(worker().ready["pid"], signal.SIGKILL)
    assert run_modal(op) == {"CANCELLED"}
    ((kind, message),) = reports
    assert kind == {"ERROR"} and "MoMask worker: the MoMask worker stopped unexpectedly" in message
    assert "killed by signal 9" in message
    assert snapshot() == before
    assert generate(prompt="a person runs", seconds=1.0, seed=2) == {"FINISHED"}


def test_corrupt_model_is_a_message(scene, model_prefs, tmp_path):
    add_rig()
    (tmp_path / "config.json").write_text("{ not json")
    model_prefs.model_dirs[0].path = model_prefs.model = str(tmp_path)
    before = snapshot()
    with pytest.raises(RuntimeError, match=r"MoMask worker: .*config.json: not valid JSON"):
        generate(prompt="a person walks", seconds=2.0)
    assert snapshot() == before


def test_python_without_the_packages_says_what_to_run(scene, model_prefs):
    add_rig()
    before = snapshot()
    model_prefs.worker_command = f"{os.sys.executable} -S -m core.worker"  # no site-packages: no numpy, no torch
    with pytest.raises(RuntimeError, match=r"stopped unexpectedly.*No module named.*: click Install Worker in the "
                                           r"add-on's preferences"):
        generate(prompt="a person walks", seconds=2.0)
    assert snapshot() == before
