"""Stick-figure previews of a motion (.gif, or .mp4 where ffmpeg exists): the quickest way to see what a model
generated or what a data file holds, without Blender.

Draws on a private matplotlib Figure with the Agg canvas, so rendering never touches pyplot's global state.
"""
import textwrap
from pathlib import Path

import numpy as np
from matplotlib.animation import FFMpegWriter, PillowWriter
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d.art3d import Line3DCollection

from .features import foot_contacts, recover_from_ric
from .footlock import checked_contacts
from .motion_export import require_ffmpeg
from .skeleton import FOOT_CONTACT_JOINTS, JOINT_NAMES, KINEMATIC_CHAINS, NUM_JOINTS

# Left and right in clearly different colours, so a mirrored motion is visible at a glance.
LEFT_COLOUR = "#1f5fd6"
RIGHT_COLOUR = "#e0201b"
SPINE_COLOUR = "#303030"
CONTACT_COLOUR = "#22b03c"
TRAJECTORY_COLOUR = "#f08c00"
GRID_COLOUR = "#c8c8c8"

GRID_SPACING = 0.5    # metres between floor grid lines
SIZE_PIXELS = 480
DPI = 100
VIEW_ELEVATION, VIEW_AZIMUTH = 20.0, -60.0  # 3/4 view from the body's front-left (it faces -Y on the plot)


def _chain_colour(chain) -> str:
    names = [JOINT_NAMES[j] for j in chain]
    if any(n.startswith("left_") for n in names):
        return LEFT_COLOUR
    if any(n.startswith("right_") for n in names):
        return RIGHT_COLOUR
    return SPINE_COLOUR


def _to_plot(points: np.ndarray) -> tuple:
    """Y-up metres (x left, z forward) -> matplotlib's Z-up axes by a rotation (X=x, Y=-z, Z=y).
    A plain swap of y and z would be a reflection and show left limbs on the right."""
    return points[..., 0], -points[..., 2], points[..., 1]


def _validated(joints, contacts, source: str):
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3) or len(joints) == 0:
        raise ValueError(f"{source}: expected joint positions of shape (T, {NUM_JOINTS}, 3), "
                         f"got {joints.shape}")
    bad = ~np.isfinite(joints).all(axis=(1, 2))
    if bad.any():
        raise ValueError(f"{source}: joint positions are not finite in frame {int(np.argmax(bad))}")
    if contacts is not None:
        try:
            contacts = checked_contacts(contacts, len(joints))
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None
    return joints, contacts


def _writer(out_path: Path, fps: float):
    ext = out_path.suffix.lower()
    if ext == ".gif":
        return PillowWriter(fps=fps)
    if ext == ".mp4":
        require_ffmpeg(out_path)
        return FFMpegWriter(fps=fps)
    raise ValueError(f"{out_path}: unknown output format {ext or '(no extension)'!r}; use .gif or .mp4")


class _StickFigure:
    """One figure whose artists are made once and moved every frame, so a frame costs only a redraw."""

    def __init__(self, joints: np.ndarray, contacts, title):
        self.joints, self.contacts = joints, contacts
        self.floor = joints[:, list(FOOT_CONTACT_JOINTS), 1].min()
        reach = np.linalg.norm(joints[:, :, [0, 2]] - joints[:, :1, [0, 2]], axis=-1).max()
        self.height = 1.1 * max(joints[..., 1].max() - self.floor, 0.5)
        self.half = max(1.1 * reach, self.height / 2)  # half the side of the floor square around the root

        self.fig = Figure(figsize=(SIZE_PIXELS / DPI, SIZE_PIXELS / DPI), dpi=DPI)
        FigureCanvasAgg(self.fig)
        top = 0.9 if title else 1.0
        ax = self.ax = self.fig.add_axes((0.0, 0.0, 1.0, top), projection="3d")
        ax.view_init(elev=VIEW_ELEVATION, azim=VIEW_AZIMUTH)
        ax.set_box_aspect((2 * self.half, 2 * self.half, self.height), zoom=1.2)  # equal aspect
        ax.set_axis_off()
        if title:
            self.fig.text(0.5, 0.985, textwrap.fill(title, 60), ha="center", va="top", fontsize=10)
        self.counter = self.fig.text(0.02, 0.02, "", fontsize=9, color="#606060")

        self.grid = ax.add_collection3d(Line3DCollection([], colors=GRID_COLOUR, linewidths=0.8), autolim=False)
        (self.trajectory,) = ax.plot([], [], [], color=TRAJECTORY_COLOUR, lw=1.5, axlim_clip=True)
        self.chains = [(chain, ax.plot([], [], [], color=_chain_colour(chain), lw=3.0,
                                       solid_capstyle="round")[0]) for chain in KINEMATIC_CHAINS]
        (self.contact_dots,) = ax.plot([], [], [], "o", color=CONTACT_COLOUR, ms=7)

    def update(self, t: int) -> None:
        pose, floor, half = self.joints[t], self.floor, self.half
        cx, cy, _ = _to_plot(pose[0])
        self.ax.set(xlim=(cx - half, cx + half), ylim=(cy - half, cy + half), zlim=(floor, floor + self.height))
        self.grid.set_segments(_grid_segments(cx, cy, half, floor))
        tx, ty, _ = _to_plot(self.joints[: t + 1, 0])
        self.trajectory.set_data_3d(tx, ty, np.full_like(tx, floor))
        for chain, line in self.chains:
            line.set_data_3d(*_to_plot(pose[list(chain)]))
        touching = pose[list(FOOT_CONTACT_JOINTS)][self.contacts[t]] if self.contacts is not None else pose[:0]
        self.contact_dots.set_data_3d(*_to_plot(touching))
        self.counter.set_text(f"frame {t + 1}/{len(self.joints)}")


def _grid_segments(cx: float, cy: float, half: float, floor: float) -> np.ndarray:
    """World-aligned floor lines inside the current view square: they slide past as the character travels."""
    def ticks(c):
        first, last = np.ceil((c - half) / GRID_SPACING), np.floor((c + half) / GRID_SPACING)
        return np.arange(first, last + 1) * GRID_SPACING
    xs, ys = ticks(cx), ticks(cy)
    along_y = [[(x, cy - half, floor), (x, cy + half, floor)] for x in xs]
    along_x = [[(cx - half, y, floor), (cx + half, y, floor)] for y in ys]
    return np.array(along_y + along_x)


def render_joints(joints, out_path, fps: float = 20, title: str | None = None, contacts=None) -> Path:
    """Animate joint positions (T, 22, 3), metres, y up, as a stick figure; optional foot contacts (T, 4) in the
    order l_ankle, l_foot, r_ankle, r_foot are drawn as dots. Writes .gif (or .mp4 with ffmpeg)."""
    out_path = Path(out_path)
    writer = _writer(out_path, fps)
    joints, contacts = _validated(joints, contacts, "joints")
    figure = _StickFigure(joints, contacts, title)
    with writer.saving(figure.fig, str(out_path), dpi=DPI):
        for t in range(len(joints)):
            figure.update(t)
            writer.grab_frame()
    return out_path


def render_file(path, out_path, fps: float = 20, title: str | None = None) -> Path:
    """Render a motion file: .npy of joints (T, 22, 3) or features (T, 263), or .npz with `joints` and optional
    `contacts` (T, 4) and `prompt` (the title unless one is given)."""
    path = Path(path)
    contacts = None
    if path.suffix.lower() == ".npy":
        data = np.load(path)
        if data.ndim == 2 and data.shape[1] == 263:
            joints, contacts = recover_from_ric(data), foot_contacts(data)
        elif data.ndim == 3 and data.shape[1:] == (NUM_JOINTS, 3):
            joints = data
        else:
            raise ValueError(f"{path}: expected joints (T, {NUM_JOINTS}, 3) or features (T, 263), "
                             f"got shape {data.shape}")
    elif path.suffix.lower() == ".npz":
        with np.load(path) as data:
            if "joints" not in data:
                raise ValueError(f"{path}: no 'joints' array (it holds: {', '.join(data.files) or 'nothing'})")
            joints = data["joints"]
            contacts = data["contacts"] if "contacts" in data else None
            if title is None and "prompt" in data:
                title = str(data["prompt"])
    else:
        raise ValueError(f"{path}: unknown motion format {path.suffix or '(no extension)'!r}; use .npy or .npz")
    joints, contacts = _validated(joints, contacts, str(path))
    return render_joints(joints, out_path, fps=fps, title=title, contacts=contacts)
