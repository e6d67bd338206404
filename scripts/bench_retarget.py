"""Accuracy and speed of the joints -> bone rotations solver (issue 6, section 1) on real rigs in Blender.

Each rig of ../shared/rigs (and a generated Rigify rig, posed through its FK controls with the constraints
muted) is solved onto the HumanML3D fixture clip resampled to --frames frames; the solved matrix_basis is
written into the pose bones and Blender evaluates it. Prints per rig: bones, world units per motion metre,
Blender against the numpy forward kinematics (mm of motion), the worst angle between the rig's and the
motion's segments joining directly mapped joints, the pelvis error, and the median solve time.

    .venv/bin/python scripts/bench_retarget.py [--frames 200] [--runs 5]
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core.mocap import resample  # noqa: E402
from core.solver import forward, solve  # noqa: E402
from tests.conftest import SHARED  # noqa: E402
from tests.test_solver import placed  # noqa: E402
from tests.test_solver_bpy import RIGS, bpy, checked_segments, evaluate, import_rig, read_rig  # noqa: E402


def rigify():
    import addon_utils
    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    bpy.ops.pose.rigify_generate()
    ob = bpy.data.objects["rig"]
    for bone in ob.pose.bones:
        for constraint in bone.constraints:
            constraint.mute = True
    return ob


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=200, help="frames per solve (default 200)")
    parser.add_argument("--runs", type=int, default=5, help="timed solves per rig (default 5)")
    args = parser.parse_args()
    clip = np.load(SHARED / "fixtures" / "humanml3d" / "000000_joints.npy").astype(np.float64)
    clip = resample(clip, 20.0, 20.0 * (args.frames - 1) / (len(clip) - 1))
    print(f"fixture 000000 resampled to {len(clip)} frames; errors in mm of motion (metres / rig scale)")
    print(f"{'rig':<20}{'bones':>6}{'scale':>8}{'Blender-numpy':>15}{'segments':>14}{'pelvis':>10}{'solve':>10}")
    for name in [*RIGS, "rigify"]:
        bpy.ops.wm.read_homefile(use_empty=True)
        ob = rigify() if name == "rigify" else import_rig(name)
        rig = read_rig(ob)
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            pose = solve(rig, clip)
            times.append(time.perf_counter() - start)
        blender, _ = evaluate(ob, pose, range(len(clip)))
        scale = pose.placement[2, 1]  # world units per motion metre (the placement only turns about z)
        got = np.einsum("jb,fbc->fjc", rig.bone_map.weights, blender)
        target = placed(pose, clip)
        print(f"{name:<20}{len(rig.names):>6}{scale:>8.3g}"
              f"{np.abs(blender - forward(rig, pose)).max() / scale * 1e3:>12.4f} mm"
              f"{checked_segments(rig, got, target):>9.5f} deg"
              f"{np.linalg.norm(got[:, 0] - target[:, 0], axis=-1).max() / scale * 1e3:>7.4f} mm"
              f"{statistics.median(times) * 1e3:>7.1f} ms")


if __name__ == "__main__":
    main()
