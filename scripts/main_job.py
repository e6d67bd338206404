"""The main job, headless in Blender 5.0 (the bpy module): the extension installed as a user installs it (the
zip built by scripts/build_extension.py, its Worker Python set to this set-up's), the built-in MoMask rig or
an imported character animated from a prompt through bpy.ops.momask.generate with the default model, the
scene saved as a .blend, and a Workbench preview of the animated character rendered to PNG frames and
assembled into a GIF.

    .venv/bin/python scripts/main_job.py ["PROMPT"] [--rig FILE.fbx|.glb|.gltf|.bvh|.blend] [--out DIR]
                                         [--seconds S] [--seed N] [--width PIXELS]

Writes DIR/main_job.blend, DIR/main_job.gif and the frames in DIR/main_job_frames/ (DIR: out/).
"""
import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PROMPT = "a person walks forward"
RIG_IMPORTERS = {".fbx": "import_scene.fbx", ".glb": "import_scene.gltf", ".gltf": "import_scene.gltf",
                 ".bvh": "import_anim.bvh"}  # extension -> the bpy.ops importer (its defaults)
ADDON = "bl_ext.user_default.momask_blender"
GIF_FPS = 12  # preview frame rate: every other frame of a 24 fps scene
BALL_RADIUS = 0.024  # the mannequin's joints, as a share of the body's height
LEFT_COLOUR, RIGHT_COLOUR, CENTRE_COLOUR = (0.12, 0.37, 0.84, 1.0), (0.88, 0.13, 0.11, 1.0), (0.75, 0.75, 0.72, 1.0)
FLOOR_COLOURS = ((0.93, 0.93, 0.91, 1.0), (0.80, 0.80, 0.78, 1.0))


class JobError(Exception):
    """Bad input or a step that failed; printed as one line, exit code 2."""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prompt", nargs="?", default=DEFAULT_PROMPT,
                        help=f'what the character does (default: "{DEFAULT_PROMPT}")')
    parser.add_argument("--rig", type=Path, default=None, metavar="FILE",
                        help="a character to animate (.fbx, .glb/.gltf, .bvh or .blend with an armature; default: "
                             "the built-in MoMask rig)")
    parser.add_argument("--out", type=Path, default=REPO / "out", metavar="DIR",
                        help="output folder (default: out/ in the repository)")
    parser.add_argument("--seconds", type=float, default=4.0, metavar="S",
                        help="duration of the motion, 0.4 to 9.8 s (default 4)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the generation (default 0)")
    parser.add_argument("--width", type=int, default=400, metavar="PIXELS",
                        help="preview width in pixels, the height 3/4 of it (default 400)")
    args = parser.parse_args(argv)
    if not args.prompt.strip():
        parser.error("the prompt is empty; describe the motion in words")
    if args.rig is not None:
        if not args.rig.is_file():
            parser.error(f"--rig {args.rig}: no such file")
        if args.rig.suffix.lower() not in (*RIG_IMPORTERS, ".blend"):
            parser.error(f"--rig {args.rig}: unknown format {args.rig.suffix!r}; use "
                         f"{', '.join(RIG_IMPORTERS)} or .blend")
    if not 16 <= args.width <= 1920:
        parser.error(f"--width {args.width}: choose 16 to 1920 pixels")
    return args


def install_extension(tmp: Path):
    """Build the extension zip and install it into a fresh Blender user folder, with this Python as the worker's
    (the set-up's .venv: it has PyTorch). Returns bpy."""
    os.environ["BLENDER_USER_RESOURCES"] = str(tmp / "blender_user")
    build = subprocess.run([sys.executable, str(REPO / "scripts" / "build_extension.py"), "--output-dir",
                            str(tmp / "dist")], capture_output=True, text=True)
    if build.returncode:
        raise JobError(f"building the extension failed:\n{build.stdout}{build.stderr}")
    (zip_path,) = (tmp / "dist").glob("*.zip")
    import bpy
    if bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default",
                                                enable_on_install=True) != {"FINISHED"} or \
            ADDON not in bpy.context.preferences.addons:
        raise JobError(f"Blender did not install and enable {zip_path}")
    bpy.context.preferences.addons[ADDON].preferences.worker_python = sys.executable
    return bpy


def extension_module(name: str):
    """A module of the installed extension's Blender side."""
    return sys.modules[f"{ADDON}.momask_blender.{name}"]


def load_character(bpy, rig: Path | None):
    """The armature to animate, active and selected: the built-in rig, or the largest armature of the file."""
    bpy.ops.wm.read_homefile(use_empty=True)
    if rig is None:
        bpy.ops.momask.add_rig()
        return bpy.context.active_object
    ext = rig.suffix.lower()
    if ext == ".blend":
        with bpy.data.libraries.load(str(rig), link=False) as (source, loaded):
            loaded.objects = source.objects
        for ob in loaded.objects:
            if ob is not None:
                bpy.context.scene.collection.objects.link(ob)
    else:
        group, name = RIG_IMPORTERS[ext].split(".")
        try:
            getattr(getattr(bpy.ops, group), name)(filepath=str(rig))
        except RuntimeError as err:
            raise JobError(f"--rig {rig}: Blender cannot import it: {str(err).strip()}") from None
    armatures = [ob for ob in bpy.context.scene.objects if ob.type == "ARMATURE"]
    if not armatures:
        raise JobError(f"--rig {rig}: the file has no armature to animate")
    armature = max(armatures, key=lambda ob: len(ob.data.bones))
    for ob in bpy.context.selected_objects:
        ob.select_set(False)
    armature.select_set(True)
    bpy.context.view_layer.objects.active = armature
    return armature


def generate(bpy, armature, args) -> tuple[int, int]:
    """Generate and key through the operator; returns the keyed frame range."""
    try:
        bpy.ops.momask.generate(prompt=args.prompt, seconds=args.seconds, seed=args.seed, start_frame=1)
    except RuntimeError as err:  # the operator's error report
        raise JobError(str(err).strip().removeprefix("Error: ")) from None
    start, end = armature.animation_data.action.frame_range
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = int(start), int(math.ceil(end))
    return scene.frame_start, scene.frame_end


def has_own_mesh(bpy, armature) -> bool:
    """Whether a mesh moves with the armature (parented or deformed by it): else renders would show nothing."""
    return any(ob.type == "MESH" and (ob.parent == armature or any(
        m.type == "ARMATURE" and m.object == armature for m in ob.modifiers)) for ob in bpy.data.objects)


def _material(bpy, name: str, colour):
    material = bpy.data.materials.new(name)
    material.diffuse_color = colour
    return material


def add_mannequin(bpy, armature, joint_of: dict[str, str], height: float) -> None:
    """A mesh that shows a bare armature in renders: a ball per joint and a tapered limb per bone, each skinned
    wholly to its bone; left limbs blue, right red (after the bone map's joint names)."""
    import bmesh
    from mathutils import Matrix
    mesh = bpy.data.meshes.new("MoMask Mannequin")
    ob = bpy.data.objects.new(mesh.name, mesh)
    bpy.context.scene.collection.objects.link(ob)
    ob.parent = armature  # mesh coordinates are the armature's
    ob.modifiers.new("Armature", "ARMATURE").object = armature
    for colour in (CENTRE_COLOUR, LEFT_COLOUR, RIGHT_COLOUR):
        mesh.materials.append(_material(bpy, "MoMask Mannequin", colour))
    radius = BALL_RADIUS * height / armature.matrix_world.to_scale()[0]
    bm = bmesh.new()
    deform = bm.verts.layers.deform.verify()
    for bone in armature.data.bones:
        joint = joint_of.get(bone.name, "")
        material = 1 if joint.startswith("left_") else 2 if joint.startswith("right_") else 0
        group = ob.vertex_groups.new(name=bone.name).index
        head, tail = bone.head_local, bone.tail_local
        pieces = [bmesh.ops.create_uvsphere(bm, u_segments=12, v_segments=8, radius=radius,
                                            matrix=Matrix.Translation(head))["verts"]]
        if (tail - head).length > radius:
            turn = (tail - head).to_track_quat("Z", "Y").to_matrix().to_4x4()
            pieces.append(bmesh.ops.create_cone(bm, cap_ends=True, segments=12, radius1=0.8 * radius,
                                                radius2=0.6 * radius, depth=(tail - head).length,
                                                matrix=Matrix.Translation((head + tail) / 2) @ turn)["verts"])
        for verts in pieces:
            for vert in verts:
                vert[deform][group] = 1.0
            for face in {f for v in verts for f in v.link_faces}:
                face.material_index = material
    bm.to_mesh(mesh)
    bm.free()
    mesh.shade_smooth()


def pelvis_path(bpy, armature, frames: range, pelvis: str):
    """((F, 3) world positions of the pelvis bone over the frames, the body's height: bone heads' span)."""
    import numpy as np
    path, heights = [], []
    world = np.array(armature.matrix_world)
    heads = np.zeros((len(armature.pose.bones), 3), dtype=np.float32)
    for frame in frames:
        bpy.context.scene.frame_set(frame)
        armature.pose.bones.foreach_get("head", heads.ravel())
        points = heads @ world[:3, :3].T + world[:3, 3]
        path.append(points[armature.pose.bones.find(pelvis)])
        heights.append(np.ptp(points[:, 2]))
    return np.array(path), float(max(heights))


def ground_height(bpy, armature) -> float:
    """The floor: the lowest point of the meshes with the armature in its rest pose, since generated motion is
    placed with its lowest foot joint on the rig's lowest rest foot joint."""
    import numpy as np
    armature.data.pose_position = "REST"
    depsgraph = bpy.context.evaluated_depsgraph_get()
    corners = [np.array(ob.matrix_world) @ np.r_[corner, 1.0] for ob in bpy.context.scene.objects
               if ob.type == "MESH" for corner in ob.evaluated_get(depsgraph).bound_box]
    armature.data.pose_position = "POSE"
    return float(min(c[2] for c in corners))


def stage(bpy, armature, pelvis: str, path, floor: float, height: float, forward, width: int) -> None:
    """Workbench render settings (`width` x 3/4 of it pixels), a checkered floor under the whole path and a camera
    that follows the pelvis (Copy Location, horizontal only) in a three-quarter view of the character's front."""
    import bmesh
    import numpy as np
    from mathutils import Matrix, Vector
    scene = bpy.context.scene
    scene.render.engine = "BLENDER_WORKBENCH"
    shading = scene.display.shading
    shading.light, shading.studio_light, shading.color_type = "STUDIO", "paint.sl", "MATERIAL"
    shading.show_shadows = True
    scene.render.resolution_x, scene.render.resolution_y = width, width * 3 // 4
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.world = scene.world or bpy.data.worlds.new("World")
    scene.world.color = (1.0, 1.0, 1.0)

    cell = 0.5 * height / 1.7  # half-metre squares on a human
    low, high = path[:, :2].min(axis=0) - 3 * height, path[:, :2].max(axis=0) + 3 * height
    counts = np.ceil((high - low) / cell).astype(int)
    mesh = bpy.data.meshes.new("MoMask Floor")
    bm = bmesh.new()
    bmesh.ops.create_grid(bm, x_segments=int(counts[0]), y_segments=int(counts[1]), size=0.5,
                          matrix=Matrix.Diagonal((*(counts * cell), 1.0, 1.0)))
    for face in bm.faces:
        centre = face.calc_center_median()
        face.material_index = (math.floor(centre.x / cell) + math.floor(centre.y / cell)) % 2
    bm.to_mesh(mesh)
    bm.free()
    for colour in FLOOR_COLOURS:
        mesh.materials.append(_material(bpy, "MoMask Floor", colour))
    floor_ob = bpy.data.objects.new(mesh.name, mesh)
    floor_ob.location = (*((low + high) / 2), floor)
    scene.collection.objects.link(floor_ob)

    camera = bpy.data.objects.new("MoMask Camera", bpy.data.cameras.new("MoMask Camera"))
    scene.collection.objects.link(camera)
    camera.data.lens = 50
    azimuth = math.radians(35)
    forward, left = Vector((*forward, 0.0)), Vector((-forward[1], forward[0], 0.0))
    offset = 2.8 * height * (math.cos(azimuth) * forward + math.sin(azimuth) * left) + Vector((0, 0, 0.35 * height))
    camera.location = Vector((0.0, 0.0, floor + 0.5 * height)) + offset  # Copy Location adds the pelvis' x, y
    camera.rotation_euler = (-offset).to_track_quat("-Z", "Y").to_euler()
    follow = camera.constraints.new("COPY_LOCATION")
    follow.target, follow.subtarget = armature, pelvis
    follow.use_z, follow.use_offset = False, True
    scene.camera = camera


def render_gif(bpy, frames: range, folder: Path, gif: Path) -> int:
    """Render the frames (every other one of a 24 fps scene) to PNG and assemble them into a looping GIF."""
    from PIL import Image
    scene = bpy.context.scene
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    step = max(1, round(scene.render.fps / scene.render.fps_base / GIF_FPS))
    files = []
    for frame in frames[::step]:
        scene.frame_set(frame)
        scene.render.filepath = str(folder / f"{frame:04d}.png")
        bpy.ops.render.render(write_still=True)
        files.append(scene.render.filepath)
    images = [Image.open(f).convert("RGB") for f in files]
    palette = images[len(images) // 2].quantize(colors=255)  # one palette for all frames: no flicker
    frames_out = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    frames_out[0].save(gif, save_all=True, append_images=frames_out[1:], loop=0, optimize=True,
                       duration=round(1000 * step * scene.render.fps_base / scene.render.fps))
    return len(files)


def facing(armature, left_hip: str, right_hip: str):
    """The character's forward direction on the ground (world x, y): its left (hip to hip) crossed with up."""
    from mathutils import Vector
    bones, world = armature.data.bones, armature.matrix_world
    left = world @ bones[left_hip].head_local - world @ bones[right_hip].head_local
    forward = left.cross(Vector((0.0, 0.0, 1.0)))
    forward.z = 0.0
    return tuple(forward.normalized()[:2])


def run(args) -> int:
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    blend, gif = args.out / "main_job.blend", args.out / "main_job.gif"
    with tempfile.TemporaryDirectory(prefix="momask_main_job_") as tmp:
        bpy = install_extension(Path(tmp))
        try:
            armature = load_character(bpy, args.rig)
            who = "the built-in MoMask rig" if args.rig is None else f"'{armature.name}' from {args.rig}"
            print(f'main job: animating {who}: "{args.prompt}", {args.seconds:g} s, seed {args.seed}', flush=True)
            begin = time.perf_counter()
            first, last = generate(bpy, armature, args)
            generated = time.perf_counter() - begin
            frames = range(first, last + 1)
            bone_of = dict(zip(extension_module("_core").skeleton.JOINT_NAMES,
                               extension_module("armature_reading").read_rig(armature).bone_map.bones))
            path, height = pelvis_path(bpy, armature, frames, bone_of["pelvis"])
            if not has_own_mesh(bpy, armature):
                add_mannequin(bpy, armature, {b: j for j, b in bone_of.items() if b}, height)
            floor = ground_height(bpy, armature)
            stage(bpy, armature, bone_of["pelvis"], path, floor, height,
                  facing(armature, bone_of["left_hip"], bone_of["right_hip"]), args.width)
            bpy.ops.wm.save_as_mainfile(filepath=str(blend.resolve()))
            begin = time.perf_counter()
            count = render_gif(bpy, frames, args.out / "main_job_frames", gif)
            rendered = time.perf_counter() - begin
        finally:
            extension_module("jobs").shutdown()
    print(f"main job: keyed frames {first}-{last} (generation {generated:.1f} s, the worker's start included); "
          f"saved {blend}; rendered {count} frames in {rendered:.1f} s; preview {gif} "
          f"({gif.stat().st_size / 1e6:.2f} MB); {time.perf_counter() - started:.1f} s in all")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except JobError as err:
        print(f"main job: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
