"""Does a motion do what its prompt asked? Kinematic checks of SMPL-22 joints, one set per action.

R-Precision scores motion against captions with an evaluator trained on the same captions, so it cannot see
a model that walks when asked to kick. These checks look at the joints instead: each action is a few
statistics of the motion (how fast and which way the pelvis travels, how far the heading turns, how high a
wrist or an ankle goes, how far the torso pitches...) compared with thresholds that were calibrated on that
action's real clips (`scripts/bench_prompts.py --calibrate` prints, per action, the share of its real clips
that pass and the share of other actions' clips that pass too). Sided actions also check the side: the
named hand or foot must do more than the other one.

Joints are (T, 22, 3) in metres, y up, at 20 fps, as `recover_from_ric` gives them (the uniform skeleton,
so real and generated motion are measured on the same body). Directions are in the body's frame at the
first frame: forward is where the body faces, left is its left. Numpy only.
"""
import re
from dataclasses import dataclass

import numpy as np

from ..skeleton import JOINT_INDEX, facing_directions
from ..timebase import FPS

_J = JOINT_INDEX
_UP = np.array([0.0, 1.0, 0.0])
_EDGE_SECONDS = 0.25  # heading is averaged over this much at each end when measuring a turn
_SIDE = re.compile(r"(?<![a-z])(left|right)(?![a-z])")


def _heading(forward: np.ndarray) -> np.ndarray:
    """Unwrapped heading angle per frame in degrees, counter-clockwise seen from above (a left turn is +)."""
    return np.degrees(np.unwrap(np.arctan2(forward[:, 0], forward[:, 2])))


def motion_statistics(joints: np.ndarray, fps: float = FPS) -> dict[str, float]:
    """Every statistic a check can use, for one motion (see the module docstring for units and frames)."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (22, 3) or len(joints) < 2:
        raise ValueError(f"expected joints of shape (T >= 2, 22, 3), got {joints.shape}")
    seconds = (len(joints) - 1) / fps
    forward = facing_directions(joints)
    left0 = np.cross(_UP, forward[0])
    pelvis, head = joints[:, _J["pelvis"]], joints[:, _J["head"]]
    travel = pelvis[-1] - pelvis[0]
    path = np.linalg.norm(np.diff(pelvis[:, [0, 2]], axis=0), axis=-1).sum()
    heading = _heading(forward)
    edge = max(1, int(round(_EDGE_SECONDS * fps)))
    floor = np.percentile(joints[:, [_J["left_foot"], _J["right_foot"], _J["left_ankle"], _J["right_ankle"]], 1].min(1), 5)
    spine = joints[:, _J["neck"]] - pelvis
    pitch = np.degrees(np.arctan2(np.einsum("tc,tc->t", spine, forward), spine[:, 1]))
    lowest_foot = joints[:, [_J["left_foot"], _J["right_foot"], _J["left_ankle"], _J["right_ankle"]], 1].min(1)
    stats = {
        "speed": path / seconds,
        "forward_speed": float(travel @ forward[0]) / seconds,
        "left_speed": float(travel @ left0) / seconds,
        "travel": float(np.linalg.norm(travel[[0, 2]])),
        "turn": float(heading[-edge:].mean() - heading[:edge].mean()),
        "torso_pitch": float(pitch.max()),
        "head_drop": float(np.percentile(head[:, 1], 90) - head[:, 1].min()),
        "head_min": float(head[:, 1].min() - floor),
        "head_mean": float(head[:, 1].mean() - floor),
        "pelvis_drop": float(np.percentile(pelvis[:, 1], 90) - pelvis[:, 1].min()),
        "airborne": float(np.percentile(lowest_foot - floor, 99)),
        "wrists_low": float(joints[:, [_J["left_wrist"], _J["right_wrist"]], 1].max(1).min() - floor),
    }
    limbs = joints[:, [_J["left_wrist"], _J["right_wrist"], _J["left_ankle"], _J["right_ankle"]]] - pelvis[:, None]
    stats["limb_speed"] = float(np.linalg.norm(np.diff(limbs, axis=0), axis=-1).mean() * fps)
    for side in ("left", "right"):
        wrist, shoulder = joints[:, _J[f"{side}_wrist"]], joints[:, _J[f"{side}_shoulder"]]
        raised = wrist[:, 1] - shoulder[:, 1]
        stats[f"raise_{side}"] = float(np.percentile(raised, 95))
        stats[f"raised_time_{side}"] = float((raised > 0).mean())
        stats[f"over_head_{side}"] = float(np.percentile(wrist[:, 1] - head[:, 1], 95))
        stats[f"reach_{side}"] = float(np.einsum("tc,tc->t", wrist - shoulder, forward).max())
        ankle = joints[:, _J[f"{side}_ankle"], 1]
        stats[f"kick_{side}"] = float(ankle.max() - floor)
        wrist_speed = np.linalg.norm(np.diff(wrist - pelvis, axis=0), axis=-1) * fps
        stats[f"wrist_peak_{side}"] = float(np.percentile(wrist_speed, 98))
        across = np.einsum("tc,tc->t", wrist - shoulder, np.cross(_UP, forward))
        stats[f"sway_{side}"] = float(np.abs(np.diff(across))[raised[1:] > -0.1].sum() / seconds)
        stats[f"extend_{side}"] = float(np.linalg.norm((wrist - shoulder)[:, [0, 2]], axis=-1).max())
    stats["lateral_left"], stats["lateral_right"] = stats["left_speed"], -stats["left_speed"]
    stats["turn_left"], stats["turn_right"] = stats["turn"], -stats["turn"]
    stats["wrist_gap"] = float(np.percentile(np.linalg.norm(joints[:, _J["left_wrist"]] - joints[:, _J["right_wrist"]],
                                                            axis=-1), 10))
    stats["hand_near_head"] = float(np.linalg.norm(joints[:, [_J["left_wrist"], _J["right_wrist"]]] - head[:, None],
                                                   axis=-1).min())
    for name in ("raise", "over_head", "reach", "kick", "raised_time", "wrist_peak", "sway", "extend"):
        stats[f"{name}_any"] = max(stats[f"{name}_left"], stats[f"{name}_right"])
        stats[f"{name}_both"] = min(stats[f"{name}_left"], stats[f"{name}_right"])
    return stats


@dataclass(frozen=True)
class Condition:
    """statistic (minus `minus`, if given) >= above and/or <= below; "{side}"/"{other}" in names are filled
    with the action's side and the opposite one."""
    statistic: str
    above: float | None = None
    below: float | None = None
    minus: str | None = None

    def value(self, stats: dict, side: str | None) -> float:
        def get(name):
            other = {"left": "right", "right": "left"}.get(side)
            return stats[name.format(side=side, other=other)]
        return get(self.statistic) - (get(self.minus) if self.minus else 0.0)

    def passes(self, stats: dict, side: str | None) -> bool:
        value = self.value(stats, side)
        return (self.above is None or value >= self.above) and (self.below is None or value <= self.below)

    def describe(self, side: str | None = None) -> str:
        other = {"left": "right", "right": "left"}.get(side, "{other}")
        name = self.statistic.format(side=side or "{side}", other=other)
        if self.minus:
            name += " - " + self.minus.format(side=side or "{side}", other=other)
        bounds = [f">= {self.above:g}" if self.above is not None else "", f"<= {self.below:g}" if self.below is not None else ""]
        return f"{name} {' and '.join(b for b in bounds if b)}"


C = Condition
_IN_PLACE = C("travel", below=1.0)  # actions done standing: the pelvis ends within a metre of its start
# Checks per action id (sided ones with "{side}"): every condition must hold. Thresholds come from the real
# clips' distributions (`scripts/bench_prompts.py --calibrate`): loose enough that most real clips of the
# action pass, tight enough that the actions a model confuses it with (walking for kicking...) fail.
_ONE_HAND = C("raise_any", minus="raise_both", above=0.2)  # one hand well above the other
_ONE_SIDE = (C("raise_{side}", above=-0.05), C("raise_{side}", minus="raise_{other}", above=0.2))
ACTION_CHECKS: dict[str, tuple[Condition, ...]] = {
    "walk": (C("forward_speed", above=0.5, below=1.9), C("turn", above=-45, below=45)),
    "run": (C("forward_speed", above=1.6),),
    "dash": (C("forward_speed", above=2.4),),
    "walk-back": (C("forward_speed", below=-0.3),),
    "walk-{side}": (C("forward_speed", above=0.2), C("lateral_{side}", above=0.2), C("turn", above=-45, below=45)),
    "walk-turn-{side}": (C("turn_{side}", above=45), C("speed", above=0.3)),
    "bow": (C("torso_pitch", above=25), _IN_PLACE),
    "bye": (C("raise_any", above=-0.15), _ONE_HAND, C("wrist_peak_any", above=0.5), _IN_PLACE),
    "byebye": (C("raise_both", above=-0.15), _IN_PLACE),
    "guide": (C("extend_any", above=0.4), C("raise_any", below=0.15), _IN_PLACE),
    "respond": (C("raise_any", above=0.1), _ONE_HAND, _IN_PLACE),
    "call": (C("hand_near_head", below=0.5), C("raise_any", above=-0.15), _IN_PLACE),
    "punch": (C("wrist_peak_any", above=2.5), C("extend_any", above=0.45), C("raise_any", below=0.25),
              C("travel", below=1.5)),
    "kick": (C("kick_any", above=0.45), C("forward_speed", below=1.0)),
    "slash": (C("wrist_gap", below=0.2), C("wrist_peak_both", above=2.0), C("travel", below=2.0)),
    "dance": (C("limb_speed", above=0.6), C("forward_speed", below=0.6)),
    "wave-both-hands": (C("raise_both", above=-0.05), C("sway_both", above=0.1), _IN_PLACE),
    "wave-{side}-hand": (*_ONE_SIDE, C("sway_{side}", above=0.1), _IN_PLACE),
    "raise-up-both-hands": (C("raise_both", above=-0.05), _IN_PLACE),
    "raise-up-{side}-hand": (*_ONE_SIDE, _IN_PLACE),
    # actions of the more-mocap archive
    "jump": (C("airborne", above=0.15), C("travel", below=1.5)),
    "hop": (C("airborne", above=0.14),),
    "skip": (C("airborne", above=0.08), C("speed", above=0.8, below=2.4)),
    "crouch": (C("pelvis_drop", above=0.3), C("head_min", above=0.5)),
    "crawl-forward": (C("head_mean", below=0.6), C("forward_speed", above=0.1)),
    "lie-down": (C("head_min", below=0.5),),
    "pick-up-box": (C("wrists_low", below=0.5), C("pelvis_drop", above=0.2)),
    "side-step-{side}": (C("lateral_{side}", above=0.1), C("forward_speed", above=-0.4, below=0.4)),
    "kick-{side}": (C("kick_{side}", above=0.45), C("kick_{side}", minus="kick_{other}", above=0.2),
                    C("forward_speed", below=1.0)),
    "punch-{side}": (C("wrist_peak_{side}", above=2.0), C("wrist_peak_{side}", minus="wrist_peak_{other}", above=0.5),
                     C("extend_{side}", above=0.35), C("travel", below=1.5)),
    "idle": (C("travel", below=0.5), C("limb_speed", below=0.3), C("raise_any", below=-0.2)),
    "run-backward": (C("forward_speed", below=-0.8),),
    "salsa": (C("limb_speed", above=0.8), C("forward_speed", below=0.6)),
}


def action_checks(action: str) -> tuple[tuple[Condition, ...], str | None]:
    """(conditions, side) of an action id such as 'wave-left-hand'; raises for an action without checks."""
    sides = _SIDE.findall(action)
    key = _SIDE.sub("{side}", action) if len(sides) == 1 else action
    if key not in ACTION_CHECKS:
        raise ValueError(f"no kinematic checks for action '{action}' (known: {', '.join(sorted(ACTION_CHECKS))})")
    return ACTION_CHECKS[key], sides[0] if len(sides) == 1 else None


def judge(action: str, stats: dict) -> bool:
    """Whether a motion with these statistics does `action`; a composed action "walk+wave-left-hand" must
    pass both parts' checks, the arm action's without its stay-in-place condition."""
    locomotion, _, arm_action = action.rpartition("+")
    if locomotion:
        return judge(locomotion, stats) and all(c.passes(stats, side) for c, side in _conditions(arm_action)
                                                if c is not _IN_PLACE)
    return all(c.passes(stats, side) for c, side in _conditions(action))


def describe_checks(action: str) -> str:
    """The conditions judge applies to `action`, as text; raises for an action without checks."""
    locomotion, _, arm_action = action.rpartition("+")
    if locomotion:
        return describe_checks(locomotion) + "; " + "; ".join(c.describe(side) for c, side in _conditions(arm_action)
                                                             if c is not _IN_PLACE)
    return "; ".join(c.describe(side) for c, side in _conditions(action))


def _conditions(action: str) -> list[tuple[Condition, str | None]]:
    conditions, side = action_checks(action)
    return [(c, side) for c in conditions]
