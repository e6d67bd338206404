"""The retargeting measures of one motion on one rig (directions, positions, flips, skate, floor), shared by
tests/test_retarget_rigs.py and scripts/bench_retarget.py."""
import numpy as np

from tests.support.blender import bpy, build_armature, evaluated_joints
from core import footlock, solver  # noqa: E402
from core.skeleton import FOOT_CONTACT_JOINTS, JOINT_INDEX, JOINT_NAMES, PARENTS  # noqa: E402
from momask_blender import keying  # noqa: E402  (after bpy: tests.support.blender skips without it)
from momask_blender.armature_reading import read_rig  # noqa: E402
from momask_blender.rig_builder import build_rig  # noqa: E402
from tests.support.rigs import LIMB_SEGMENTS, angle_between, offsets_of, placed, rest_pose  # noqa: E402

FPS = 20
FLIP_DEG, FLIP_BEYOND_DEG = 30.0, 10.0
# Armatures with the generator's proportions, made from (22, 3) joints of HumanML3D's subject: the built-in rig
# (its bone lengths, the torso averaged left and right) and Mixamo-named ones with exactly that body's bones and
# torso (the fixture's frame 0), in several rest poses and units.
BUILT = {
    "momask (SMPL, T)": lambda shape: build_rig(bpy.context),
    "mixamo T 0.01": lambda shape: build_armature(rest_pose(offsets_of(shape), "T"), scale=0.01),
    "mixamo A": lambda shape: build_armature(rest_pose(offsets_of(shape), "A"), scale=1.0, seed=1),
    "mixamo down, knees 15, x100": lambda shape: build_armature(rest_pose(offsets_of(shape), "down", 15),
                                                                scale=100.0, seed=2),
}


class Keyer:
    """The add-on's keying path for one armature (read, solve, key) and Blender's evaluation of the keys."""

    def __init__(self, ob):
        self.ob = ob
        self.rig = self.solved = self.measured = read_rig(ob)

    def key(self, pose: solver.RigPose, name: str) -> None:
        keying.assign_action(self.ob, keying.write_pose(self.ob, self.rig, pose, name, 1))

    def evaluate(self, pose: solver.RigPose, name: str) -> np.ndarray:
        """(T, 22, 3) world joints (through `measured`'s map) of the pose, keyed and evaluated by Blender."""
        self.key(pose, name)
        return evaluated_joints(self.ob, range(1, len(pose.rotations) + 1), self.measured)


# Segments measured, by group: limbs (each a bone's own direction), the spine's bend and lean (pelvis -> neck, the
# head where no neck is mapped), the shoulder line and the head (neck -> head).
GROUPS = {"limbs": LIMB_SEGMENTS, "spine": [("pelvis", "neck")], "shoulders": [("right_shoulder", "left_shoulder")],
          "head": [("neck", "head")]}


def direction_errors(rig: solver.RigDescription, got: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """Group (GROUPS) -> degrees between the rig's and the motion's segments, all frames, over the segments whose
    ends are both directly mapped joints (the spine to the head where the neck is interpolated)."""
    direct = np.isclose(rig.bone_map.weights.max(axis=1), 1.0)
    errors = {}
    for group, segments in GROUPS.items():
        found = []
        for a, b in segments:
            a, b = JOINT_INDEX[a], JOINT_INDEX[b]
            if group == "spine" and not direct[b]:
                b = JOINT_INDEX["head"]
            if direct[a] and direct[b]:
                found.append(angle_between(got[:, b] - got[:, a], target[:, b] - target[:, a]))
        errors[group] = np.concatenate(found) if found else np.zeros(0)
    return errors


def source_frames(target: np.ndarray, joint: int) -> np.ndarray:
    """(T, 3, 3) the motion's frame at a joint: its segment (to its child, to the torso child at the pelvis and
    chest, from its parent at a chain end) and a second direction that fixes the twist: the left-right pair at
    the pelvis and chest, the next segment (the knee's or elbow's bend) at hips and shoulders, else the parent's
    segment."""
    kids = np.flatnonzero(PARENTS == joint)
    if len(kids) > 1:
        torso = next(k for k in kids if not JOINT_NAMES[k].startswith(("left_", "right_")))
        left = next(k for k in kids if JOINT_NAMES[k].startswith("left_"))
        right = JOINT_INDEX["right_" + JOINT_NAMES[left][5:]]
        segment, second = target[:, torso] - target[:, joint], target[:, left] - target[:, right]
    elif len(kids):
        segment = target[:, kids[0]] - target[:, joint]
        if JOINT_NAMES[joint].endswith(("_hip", "_shoulder")):
            second = target[:, np.flatnonzero(PARENTS == kids[0])[0]] - target[:, kids[0]]
        else:
            second = target[:, joint] - target[:, PARENTS[joint]]
    else:
        segment = target[:, joint] - target[:, PARENTS[joint]]
        second = target[:, PARENTS[joint]] - target[:, PARENTS[PARENTS[joint]]]
    x = solver.unit(segment)
    y = solver.unit(solver.perpendicular(second, x))
    return np.stack([x, y, np.cross(x, y)], axis=-1)


def step_degrees(rotations: np.ndarray) -> np.ndarray:
    """(T - 1,) angle of each frame-to-frame turn of (T, 3, 3) rotations."""
    steps = rotations[1:] @ np.swapaxes(rotations[:-1], -1, -2)
    return np.degrees(np.arccos(np.clip((np.trace(steps, axis1=-2, axis2=-1) - 1) / 2, -1, 1)))


def flips(rig: solver.RigDescription, pose: solver.RigPose, target: np.ndarray) -> int:
    """Frame steps where a mapped bone turns more than FLIP_DEG and FLIP_BEYOND_DEG more than the motion's frame
    at its joint (source_frames) does."""
    turns = solver.world_turns(rig, pose)
    count = 0
    for joint, bone in rig.bone_of.items():
        bone_step, source_step = step_degrees(turns[:, bone]), step_degrees(source_frames(target, joint))
        count += int(((bone_step > FLIP_DEG) & (bone_step > source_step + FLIP_BEYOND_DEG)).sum())
    return count


def to_motion(joints: np.ndarray, placement: np.ndarray) -> np.ndarray:
    """World joints -> the motion's space (HumanML3D axes, metres of motion): the placement undone."""
    back = np.linalg.inv(placement)
    return joints @ back[:3, :3].T + back[:3, 3]


def measure(keyer: Keyer, joints: np.ndarray, contacts: np.ndarray) -> dict:
    """The numbers of one motion on one rig: directions (direction_errors' groups; degrees), position (worst
    directly mapped joint, mm of motion) and flips without foot locking; skate (cm/s of motion over the held
    contact frames)
    without and with locking, held (share of the given contact frames), lowest foot against the rig's floor (mm
    of motion) with locking."""
    options = solver.SolveOptions(placement=solver.default_placement(keyer.solved, joints))
    scale = np.cbrt(np.linalg.det(options.placement[:3, :3]))
    plain = solver.solve(keyer.solved, joints, options)
    target = placed(plain, joints)
    got = keyer.evaluate(plain, "plain")
    directions = direction_errors(keyer.measured, got, target)
    rows = np.isclose(keyer.measured.bone_map.weights.max(axis=1), 1.0)
    locked, held = footlock.solve_locked(keyer.solved, joints, contacts, FPS, options)
    got_locked = keyer.evaluate(locked, "locked")
    feet = [j for j in FOOT_CONTACT_JOINTS if keyer.measured.bone_map.weights[j].any()]
    world = keyer.measured.world_matrix
    rest = solver.rest_joints(keyer.measured) @ world[:3, :3].T + world[:3, 3]
    return dict(**directions, flips=flips(keyer.solved, plain, target),
                position_mm=np.linalg.norm((got - target)[:, rows], axis=-1).max() / scale * 1e3,
                skate_before=footlock.foot_skate(to_motion(got, options.placement), held, FPS),
                skate_after=footlock.foot_skate(to_motion(got_locked, options.placement), held, FPS),
                held=held.sum() / max(contacts.sum(), 1),
                floor_mm=(got_locked[:, feet, 2].min() - rest[feet, 2].min()) / scale * 1e3)
