"""Files the tests write: a mocap archive laid out like Bandai-Namco's with its BVH clips, and VRM/glTF rigs."""
import io
import json
import struct
import tarfile
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from core.bvh import write_bvh

BANDAI_JOINTS = [  # name, parent, offset (cm): a Bandai-style skeleton in T-pose, y up, facing +z, +x left
    ("joint_Root", -1, (0, 0, 0)), ("Hips", 0, (0, 95, 0)), ("Spine", 1, (0, 10, 0)), ("Chest", 2, (0, 15, 0)),
    ("Neck", 3, (0, 22, 0)), ("Head", 4, (0, 10, 0)),
    ("Shoulder_L", 3, (4, 18, 0)), ("UpperArm_L", 6, (12, 0, 0)), ("LowerArm_L", 7, (27, 0, 0)),
    ("Hand_L", 8, (25, 0, 0)),
    ("Shoulder_R", 3, (-4, 18, 0)), ("UpperArm_R", 10, (-12, 0, 0)), ("LowerArm_R", 11, (-27, 0, 0)),
    ("Hand_R", 12, (-25, 0, 0)),
    ("UpperLeg_L", 1, (9, -6, 0)), ("LowerLeg_L", 14, (0, -42, 0)), ("Foot_L", 15, (0, -41, 0)),
    ("Toes_L", 16, (0, -6, 12)),
    ("UpperLeg_R", 1, (-9, -6, 0)), ("LowerLeg_R", 18, (0, -42, 0)), ("Foot_R", 19, (0, -41, 0)),
    ("Toes_R", 20, (0, -6, 12)),
]


def bandai_bvh(path: Path, frames: int, speed: float, wave: str | None = None) -> str:
    """A 30 fps Bandai-style clip: walking forward at `speed` cm/frame, arms down, one arm waving if asked."""
    t = np.arange(frames) / 30.0
    phase = np.sin(2 * np.pi * 1.0 * t)
    euler = np.zeros((frames, len(BANDAI_JOINTS), 3))  # intrinsic ZYX degrees
    index = {name: j for j, (name, _, _) in enumerate(BANDAI_JOINTS)}
    euler[:, index["UpperLeg_L"], 2], euler[:, index["UpperLeg_R"], 2] = 25 * phase, -25 * phase
    euler[:, index["LowerLeg_L"], 2], euler[:, index["LowerLeg_R"], 2] = 20 * (1 + phase), 20 * (1 - phase)
    euler[:, index["UpperArm_L"], 0], euler[:, index["UpperArm_R"], 0] = -75, 75
    if wave:
        arm = index[f"UpperArm_{wave}"]
        euler[:, arm, 0] = (60 + 20 * np.sin(2 * np.pi * 2 * t)) * (1 if wave == "L" else -1)
    rotations = Rotation.from_euler("ZYX", euler.reshape(-1, 3), degrees=True).as_matrix()
    root = np.stack([np.zeros(frames), np.zeros(frames), speed * np.arange(frames)], axis=1)
    write_bvh(path, [j[0] for j in BANDAI_JOINTS], [j[1] for j in BANDAI_JOINTS],
              np.array([j[2] for j in BANDAI_JOINTS], dtype=float), rotations.reshape(frames, -1, 3, 3), root,
              frame_time=1 / 30)
    return path.read_text()


FOLDER = "dataset/Bandai-Namco-Research-Motiondataset-2"


def write_archive(archive: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(archive, "w:xz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"{FOLDER}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


def annotated(stem: str, content: int, style: int, bvh: str | None) -> dict[str, bytes]:
    members = {} if bvh is None else {f"data/{stem}.bvh": bvh.encode()}
    return members | {f"data/{stem}.json": json.dumps({"content": content, "style": style}).encode()}


def make_archive(tmp_path: Path) -> Path:
    """Clips with JSON annotations: two good, one BVH truncated, one annotation without its BVH, one annotation
    contradicting its file name."""
    run = bandai_bvh(tmp_path / "c.bvh", 80, 8.0)
    members = (annotated("dataset-2_walk_normal_001", 0, 5, bandai_bvh(tmp_path / "a.bvh", 90, 4.0))
               | annotated("dataset-2_wave-left-hand_active_001", 5, 0,
                           bandai_bvh(tmp_path / "b.bvh", 75, 0.0, wave="L"))
               | annotated("dataset-2_run_normal_001", 3, 5, run[:len(run) // 2])
               | annotated("dataset-2_run_normal_002", 3, 5, None)
               | annotated("dataset-2_walk_youthful_001", 3, 6, bandai_bvh(tmp_path / "d.bvh", 60, 4.0)))
    members["cfg/content_label.txt"] = "\n".join(f"dataset-2_{c}" for c in (
        "walk", "walk-turn-left", "walk-turn-right", "run", "wave-both-hands", "wave-left-hand",
        "wave-right-hand", "raise-up-both-hands", "raise-up-left-hand", "raise-up-right-hand")).encode()
    return write_archive(tmp_path / "mocap.tar.xz", members)


# ------------------------------------------------------------------------------------------------------ VRM
# The VRM humanoid bone of each SMPL joint in a VRoid model (JOINT_NAMES order): spine, chest, upperChest;
# VRM's shoulder is the collar.
VRM_BONES = ["hips", "leftUpperLeg", "rightUpperLeg", "spine", "leftLowerLeg", "rightLowerLeg", "chest", "leftFoot",
             "rightFoot", "upperChest", "leftToes", "rightToes", "neck", "leftShoulder", "rightShoulder", "head",
             "leftUpperArm", "rightUpperArm", "leftLowerArm", "rightLowerArm", "leftHand", "rightHand"]


def vrm_gltf(version: str, bones: dict[str, str]) -> dict:
    """glTF JSON of a VRM model (version "0" or "1") whose humanoid maps VRM bone -> node named by `bones`' value;
    an unnamed mesh node comes first, so node indices are not bone order."""
    nodes = [{"mesh": 0}] + [{"name": name} for name in bones.values()]
    index = {vrm: i + 1 for i, vrm in enumerate(bones)}
    if version == "0":
        humanoid = {"humanBones": [{"bone": vrm, "node": i, "useDefaultValues": True} for vrm, i in index.items()]}
        return {"asset": {"version": "2.0"}, "nodes": nodes, "extensions": {"VRM": {"humanoid": humanoid}}}
    humanoid = {"humanBones": {vrm: {"node": i} for vrm, i in index.items()}}
    return {"asset": {"version": "2.0"}, "nodes": nodes,
            "extensions": {"VRMC_vrm": {"specVersion": "1.0", "humanoid": humanoid}}}


def glb(gltf: dict, binary: bytes = b"") -> bytes:
    """A binary glTF: header, the JSON chunk (padded with spaces to 4 bytes), then a BIN chunk if given."""
    chunk = json.dumps(gltf).encode()
    chunk += b" " * (-len(chunk) % 4)
    body = struct.pack("<II", len(chunk), 0x4E4F534A) + chunk
    if binary:
        body += struct.pack("<II", len(binary), 0x004E4942) + binary
    return b"glTF" + struct.pack("<II", 2, 12 + len(body)) + body
