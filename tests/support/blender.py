"""The extension loaded in bpy 5.0.1 as Blender loads a development repository, and what the Blender tests share:
fixtures for the add-on, its preferences, an empty scene and a tiny model the worker serves; a rig added, a
generation run, the scene's state recorded, a panel drawn into a recording layout, keys compared, rigs built or
imported, joints evaluated."""
import os
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
import addon_utils  # noqa: E402  (comes with bpy)

from core.checkpoint import model_config, save_model_dir  # noqa: E402
from core.features import ROOT_LIN_VEL, ROOT_ROT_VEL, joints_to_features  # noqa: E402
from core.skeleton import JOINT_NAMES, PARENTS  # noqa: E402
from core.solver import HUMANML3D_TO_BLENDER  # noqa: E402
from tests.conftest import shared_path  # noqa: E402
from tests.support.rigs import MIXAMO  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEV_REPO = "momask_dev"  # the development repository the source tree is loaded from
ADDON = f"bl_ext.{DEV_REPO}.momask_blender"


def addon_module(name: str):
    """A module of the loaded extension's Blender side (momask_blender/<name>.py)."""
    return sys.modules[f"{ADDON}.momask_blender.{name}"]


def addon_core(name: str):
    """A module of core/ as the loaded extension has it: its own copy, loaded under the extension's package (the
    tests' `core` is another), so its classes (an exception to catch) are not the tests' ones."""
    return sys.modules[f"{ADDON}.core.{name}"]


@pytest.fixture(scope="session")
def extension(tmp_path_factory):
    """The source tree enabled as Blender enables a development repository: a repository folder whose child
    named after the manifest id links to the repository root. User resources in a temporary folder."""
    os.environ["BLENDER_USER_RESOURCES"] = str(tmp_path_factory.mktemp("blender_user"))
    repo_dir = tmp_path_factory.mktemp("extensions")
    (repo_dir / "momask_blender").symlink_to(REPO, target_is_directory=True)
    bpy.context.preferences.extensions.repos.new(name=DEV_REPO, module=DEV_REPO, custom_directory=str(repo_dir),
                                                 source="USER")
    errors = []
    addon_utils.enable(ADDON, default_set=True, handle_error=errors.append)
    assert not errors and ADDON in bpy.context.preferences.addons, errors
    yield ADDON
    addon_utils.disable(ADDON, default_set=True)


@pytest.fixture
def prefs(extension):
    """The add-on's preferences, restored afterwards."""
    prefs = bpy.context.preferences.addons[extension].preferences
    saved = (prefs.worker_python, prefs.worker_command, [d.path for d in prefs.model_dirs], prefs.model)
    yield prefs
    prefs.worker_python, prefs.worker_command = saved[:2]
    prefs.model_dirs.clear()
    for path in saved[2]:
        prefs.model_dirs.add().path = path
    prefs.model = saved[3]


@pytest.fixture
def scene(extension):
    bpy.ops.wm.read_homefile(use_empty=True)
    return bpy.context.scene


def add_rig(location=(0.0, 0.0, 0.0)):
    bpy.context.scene.cursor.location = location
    assert bpy.ops.momask.add_rig() == {"FINISHED"}
    return bpy.context.active_object


def keyed_armature(ob):
    """Give `ob` an action of its own (one key on the pelvis): the user's work a generation must keep."""
    bone = ob.pose.bones["pelvis"]
    bone.location = (0.0, 0.0, 0.1)
    bone.keyframe_insert("location", frame=1)
    return ob.animation_data.action


def snapshot() -> dict:
    """Everything a refused request must leave as it was: data-blocks, assigned actions and slots, keys, pose
    values, candidate lists."""
    state = {kind: sorted(item.name for item in getattr(bpy.data, kind))
             for kind in ("actions", "objects", "armatures", "meshes", "collections", "texts")}
    state["keys"] = {a.name: [(c.data_path, c.array_index, len(c.keyframe_points))
                              for layer in a.layers for strip in layer.strips
                              for bag in strip.channelbags for c in bag.fcurves] for a in bpy.data.actions}
    for ob in bpy.data.objects:
        animation = ob.animation_data
        state[ob.name] = {
            "action": (animation.action.name if animation and animation.action else None,
                       animation.action_slot.identifier if animation and animation.action_slot else None),
            "candidates": [c.action.name if c.action else None for c in ob.momask_candidates],
            "index": ob.momask_candidate_index,
            "pose": [tuple(np.round(np.array(b.matrix_basis), 6).ravel()) for b in ob.pose.bones] if ob.pose else [],
        }
    return state


def generate(**params):
    """bpy.ops.momask.generate under EXEC; a refusal comes back as the RuntimeError Blender raises."""
    return bpy.ops.momask.generate("EXEC_DEFAULT", **params)


class RecordingLayout:
    """Stands in for a UILayout: records every call; sub-layouts record into the same list."""

    def __init__(self, calls=None):
        self.calls = [] if calls is None else calls

    def __getattr__(self, name):
        def record(*args, **kwargs):
            if name == "operator":
                result = types.SimpleNamespace()
            elif name in ("row", "column", "box", "split", "column_flow", "grid_flow"):
                result = RecordingLayout(self.calls)
            else:
                result = None
            self.calls.append((name, args, kwargs, result))
            return result
        return record

    def props(self):
        return {(type(args[0]).__name__, args[1]) for name, args, _, _ in self.calls if name == "prop"}

    def operators(self):
        return {args[0]: result for name, args, _, result in self.calls if name == "operator"}

    def texts(self):
        return " | ".join(str(kw.get("text", "")) for name, _, kw, _ in self.calls)


def stub_armature():
    """An armature 'Stub' without legs or arms (Hips, Spine, Head), active in the current scene."""
    armature = bpy.data.armatures.new("Stub")
    ob = bpy.data.objects.new("Stub", armature)
    bpy.context.scene.collection.objects.link(ob)
    bpy.context.view_layer.objects.active = ob
    bpy.ops.object.mode_set(mode="EDIT")
    parent = None
    for name, z in (("Hips", 1.0), ("Spine", 1.2), ("Head", 1.6)):
        bone = armature.edit_bones.new(name)
        bone.head, bone.tail, bone.parent = (0, 0, z), (0, 0, z + 0.1), parent
        parent = bone
    bpy.ops.object.mode_set(mode="OBJECT")
    return ob


MINILM_DIM = 384
# Spread of the free root channels (per 20 fps frame): turns of a few degrees and steps of a few centimetres.
ROOT_SPREAD = ((ROOT_ROT_VEL, 0.1), (ROOT_LIN_VEL, 0.02))


@pytest.fixture(scope="session")
def rigid_model(extension, tmp_path_factory):
    """A tiny random model whose every frame is the built-in rig's rest pose, moved rigidly."""
    torch = pytest.importorskip("torch")
    from core.models import MoMaskModels, build_model
    from tests.support.tiny_models import Q, TINY, V
    rest = addon_module("rig_builder").rest_joints() @ HUMANML3D_TO_BLENDER  # Blender -> HumanML3D frame
    features = joints_to_features(np.repeat(rest[None], 3, axis=0))
    mean, std = features[0].astype(np.float32), np.full(features.shape[1], 1e-7, dtype=np.float32)
    for channels, spread in ROOT_SPREAD:
        std[channels] = spread
    torch.manual_seed(0)
    rvq = build_model("rvq", dict(nb_code=V, code_dim=16, width=32, depth=2, num_quantizers=Q))
    for layer in rvq.quantizer.layers:
        layer.codebook.normal_()
    hparams = dict(TINY, cond_dim=MINILM_DIM)
    models = MoMaskModels(rvq, build_model("mask", hparams), build_model("residual", dict(hparams, num_quantizers=Q)),
                          build_model("length", dict(cond_dim=MINILM_DIM, hidden=32)), mean, std,
                          model_config("minilm", MINILM_DIM, "tiny random test model")).eval()
    return save_model_dir(models, tmp_path_factory.mktemp("models") / "rigid")


@pytest.fixture
def model_prefs(prefs, rigid_model):
    """Preferences pointing at the rigid test model and the set-up's Python (auto-detected)."""
    prefs.worker_python, prefs.worker_command = "", ""
    prefs.model_dirs.clear()
    prefs.model_dirs.add().path = str(rigid_model)
    prefs.model = str(rigid_model)
    return prefs


def evaluated_joints(ob, frames, rig=None) -> np.ndarray:
    """(F, 22, 3) world-space joints as Blender evaluates each frame: the heads of the bones named after the
    joints, or through the bone map of `rig`."""
    names = [b.name for b in ob.pose.bones]
    if rig is None:
        weights = np.eye(len(names))[[names.index(name) for name in JOINT_NAMES]]
    else:
        weights = rig.bone_map.weights[:, [rig.names.index(name) for name in names]]
    heads = np.zeros((len(names), 3), dtype=np.float32)
    out = []
    for frame in frames:
        bpy.context.scene.frame_set(frame)
        ob.pose.bones.foreach_get("head", heads.ravel())
        world = np.array(ob.matrix_world)
        out.append(weights @ (heads @ world[:3, :3].T + world[:3, 3]))
    return np.array(out)


def run_modal(op, limit=30.0):
    """Timer ticks until the modal operator ends -> its last return value."""
    deadline = time.monotonic() + limit
    timer = types.SimpleNamespace(type="TIMER", value="NOTHING")
    while time.monotonic() < deadline:
        state = bpy.types.MOMASK_OT_generate.modal(op, bpy.context, timer)
        if state != {"RUNNING_MODAL"}:
            return state
        time.sleep(0.01)
    raise AssertionError("the modal generation did not end")


KEY_PROPERTIES = ("co", "handle_left", "handle_right", "interpolation", "handle_left_type", "handle_right_type",
                  "easing", "type")


def channelbag(action):
    return action.layers[0].strips[0].channelbags[0]


def all_keys(action) -> dict:
    """Every key of every curve: (data path, index) -> {property: array}."""
    keys = {}
    for curve in channelbag(action).fcurves:
        points = curve.keyframe_points
        values = {}
        for name in KEY_PROPERTIES:
            width = 2 if name in ("co", "handle_left", "handle_right") else 1
            values[name] = np.empty((len(points), width), dtype=np.float32 if width == 2 else np.int32)
            points.foreach_get(name, values[name].ravel())
        keys[(curve.data_path, curve.array_index)] = values
    return keys


def assert_outside_unchanged(before: dict, after: dict, ranges):
    """Keys outside the ranges are the same, property for property, bit for bit, on every curve of before."""
    for curve, old in before.items():
        new = after[curve]
        outside = [np.all([(k["co"][:, 0] < f0) | (k["co"][:, 0] > f1) for f0, f1 in ranges], axis=0)
                   for k in (old, new)]
        for name in KEY_PROPERTIES:
            np.testing.assert_array_equal(old[name][outside[0]], new[name][outside[1]], err_msg=f"{curve} {name}")


def velocity_changes(joints: np.ndarray) -> np.ndarray:
    """Per frame t (from 1), the largest change of joint velocity |(x[t+1] - x[t]) - (x[t] - x[t-1])|."""
    return np.linalg.norm(np.diff(joints, n=2, axis=0), axis=-1).max(axis=-1)


def assert_smooth_seams(joints, source, seams, first_frame=1):
    """The velocity jump at each seam (its first frame after a join) is no larger than the 99th percentile of the
    source's frame-to-frame velocity changes. The source goes on over the seam as before, so the jump the edit
    makes is the velocity change of the difference, at the frame before the seam and at the seam."""
    bound = np.percentile(velocity_changes(source), 99)
    jumps = velocity_changes(joints - source)
    for seam in seams:
        at = seam - first_frame - 1
        assert jumps[at - 1:at + 1].max() <= bound, (seam, jumps[at - 1:at + 1], bound)


def build_armature(joints: np.ndarray, scale=0.01, seed=0):
    """A Mixamo-named armature made with edit bones at (22, 3) rest joints (HumanML3D frame, metres): an FBX-like
    object (scale 0.01, rotated X +90 deg, bones in centimetres, y up inside), tails towards the first child or
    along the parent, random rolls."""
    rng = np.random.default_rng(seed)
    armature = bpy.data.armatures.new("Mixamo")
    ob = bpy.data.objects.new("Mixamo", armature)
    bpy.context.scene.collection.objects.link(ob)
    ob.scale = (scale,) * 3
    ob.rotation_euler = (np.pi / 2, 0.0, 0.0)
    bpy.context.view_layer.objects.active = ob
    bpy.ops.object.mode_set(mode="EDIT")
    inner = joints / scale  # X +90 deg is HUMANML3D_TO_BLENDER: inside the object the body is y up, as in FBX
    edit = {}
    for j, name in enumerate(MIXAMO):
        bone = armature.edit_bones.new(name)
        children = np.flatnonzero(PARENTS == j)
        direction = (inner[children[0]] - inner[j] if len(children)
                     else inner[j] - inner[PARENTS[j]])
        bone.head, bone.tail = inner[j], inner[j] + direction / np.linalg.norm(direction) * 5.0
        bone.roll = rng.uniform(-np.pi, np.pi)
        if j:
            bone.parent = edit[MIXAMO[PARENTS[j]]]
        edit[name] = bone
    bpy.ops.object.mode_set(mode="OBJECT")
    return ob


# name: file, importer, the way the rig faces in world space (rigs/README.md)
RIGS = {
    "ue5": ("ue5_quaternius_ubc_superhero_male.fbx", "fbx", (0, 1, 0)),
    "quaternius_modular": ("quaternius_modular_men_casual.glb", "gltf", (0, -1, 0)),
    "quaternius_2019_ik": ("quaternius_2019_male_casual_ikrig.blend", "blend", (0, -1, 0)),
    "cesiumman": ("apose_khronos_cesiumman.glb", "gltf", (0, -1, 0)),
    "cmu_bvh": ("bvh_cmu_12_01_walk_mobu.bvh", "bvh", (0, -1, 0)),
    "zup_bvh": ("bvh_zup_nomixamoprefix.bvh", "bvh_zup", (0, 1, 0)),
    "smpl22_bvh": ("bvh_smpl22_humanml3d_momask_template.bvh", "bvh", (0, -1, 0)),
}


def import_rig(name):
    """The rig's armature object, IK constraints muted (the Quaternius 2019 legs' IK would override keys)."""
    path = str(shared_path("rigs", RIGS[name][0]))
    {"fbx": lambda: bpy.ops.import_scene.fbx(filepath=path),
     "gltf": lambda: bpy.ops.import_scene.gltf(filepath=path),
     "blend": lambda: bpy.ops.wm.open_mainfile(filepath=path),
     "bvh": lambda: bpy.ops.import_anim.bvh(filepath=path),
     "bvh_zup": lambda: bpy.ops.import_anim.bvh(filepath=path, axis_up="Z", axis_forward="Y")}[RIGS[name][1]]()
    ob = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    for bone in ob.pose.bones:
        for constraint in bone.constraints:
            constraint.mute = True
    return ob
