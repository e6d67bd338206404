"""Two actions at once, made from clips of one action each: body-part composition as in SINC (Athanasiou et
al., ICCV 2023).

The mocap has people walking and people waving, never people walking while waving, so the model cannot
learn "walks forward while waving the right hand" from it. A composed clip takes the pelvis, legs, spine and
head (and the arm that does nothing) from a locomotion clip and the acting arm(s) from an arm-action clip: the
collar, shoulder, elbow and wrist positions relative to the upper spine, turned from the arm clip's facing
into the locomotion clip's facing frame by frame and re-attached to the locomotion's upper spine. The result
is a joint array like any converted clip, so features, mirroring and training treat it as real data; its
captions say both actions in the shapes annotators use ("walks forward while waving his right hand").
Numpy only.
"""
import numpy as np

from .captions import PLAIN_SUBJECTS, phrasings, possessive_of, verb_forms
from ..skeleton import JOINT_INDEX, facing_directions

_J = JOINT_INDEX
LOCOMOTION = ("walk", "run", "walk-back", "walk-turn-left", "walk-turn-right", "walk-left", "walk-right")
ARM_ACTIONS = {  # content -> the arms it moves
    "wave-left-hand": ("left",), "wave-right-hand": ("right",), "wave-both-hands": ("left", "right"),
    "raise-up-left-hand": ("left",), "raise-up-right-hand": ("right",), "raise-up-both-hands": ("left", "right"),
}
ARM_JOINTS = {side: tuple(_J[f"{side}_{part}"] for part in ("collar", "shoulder", "elbow", "wrist"))
              for side in ("left", "right")}
SEPARATOR = "+"  # composed content ids: "<locomotion>+<arm action>"
# Sentence shapes of a composed caption: L/A are the locomotion's and the arm action's verb phrases.
_SHAPES = ("{s} {L3} while {Aing}", "{s} {A3} while {Ling}", "{s} {L3} and {A3} at the same time",
           "{s} {A3} as {pron} {L3}", "{s} is {Ling} and {Aing}", "while {Ling}, {s} {A3}", "{Limp} while {Aing}")
_PRONOUN = {"his": "he", "her": "she", "their": "they"}


def _yaw(joints: np.ndarray) -> np.ndarray:
    """(T,) facing angle about +y of each frame."""
    forward = facing_directions(joints)
    return np.arctan2(forward[:, 0], forward[:, 2])


def _ping_pong(clip: np.ndarray, frames: int) -> np.ndarray:
    """`frames` frames of `clip` played forward, backward, forward... (no jump where it turns round)."""
    if len(clip) >= frames:
        return clip[:frames]
    cycle = np.concatenate([np.arange(len(clip)), np.arange(len(clip) - 2, 0, -1)])
    return clip[np.resize(cycle, frames)]


def compose_arms(body: np.ndarray, arms: np.ndarray, sides: tuple[str, ...]) -> np.ndarray:
    """(T, 22, 3) joints: `body` (all T frames of it) with the arms of `sides` taken from `arms`.
    An arm clip shorter than the body plays forward and back again: cutting the body to the arm clip's length
    (raising a hand lasts about 2.5 s, a walking turn about 5 s) left half the composed turns unfinished under
    captions that say "turns"."""
    arms = _ping_pong(arms, len(body))
    out = body.copy()
    turn = _yaw(body) - _yaw(arms)
    cos, sin = np.cos(turn)[:, None], np.sin(turn)[:, None]
    spine_body, spine_arms = body[:, [_J["spine3"]]], arms[:, [_J["spine3"]]]
    for side in sides:
        joints = list(ARM_JOINTS[side])
        rel = arms[:, joints] - spine_arms
        # rotate about +y by `turn`: x' = x cos + z sin, z' = -x sin + z cos
        rotated = np.stack([rel[..., 0] * cos + rel[..., 2] * sin, rel[..., 1],
                            -rel[..., 0] * sin + rel[..., 2] * cos], axis=-1)
        out[:, joints] = spine_body + rotated
    return out


def _composed(subject: str, loco_phrase: str, arm_phrase: str, shape: str) -> str:
    """One composed caption: the two verb phrases in `shape`, said of `subject`."""
    possessive = possessive_of(subject)
    pronoun = _PRONOUN[possessive]
    if "{pron}" in shape and pronoun == "they":  # "as they walks" would need a plural verb
        shape = _SHAPES[0]
    if shape.startswith("{Limp}"):
        possessive = "your"
    loco, arm = verb_forms(loco_phrase), verb_forms(arm_phrase)
    return shape.format(s=subject, pron=pronoun, L3=loco["third"], Ling=loco["ing"], Limp=loco["imperative"],
                        A3=arm["third"], Aing=arm["ing"]).format(p=possessive)


def composed_captions(locomotion: str, arm_action: str, n: int, rng: np.random.Generator) -> list[str]:
    """n distinct captions of a composed clip, each pairing one phrasing of each action in a random shape."""
    captions: list[str] = []
    for _ in range(50 * n):
        text = _composed(str(rng.choice(PLAIN_SUBJECTS)), str(rng.choice(phrasings(locomotion))),
                         str(rng.choice(phrasings(arm_action))), str(rng.choice(_SHAPES)))
        if text not in captions:
            captions.append(text)
            if len(captions) == n:
                return captions
    raise ValueError(f"could not make {n} distinct captions for {locomotion}{SEPARATOR}{arm_action}")


def every_composed_caption(locomotion: str, arm_action: str):
    """Every caption composed_captions can give for this pair (what the prompt benchmark is checked against)."""
    for subject in PLAIN_SUBJECTS:
        for loco in phrasings(locomotion):
            for arm in phrasings(arm_action):
                for shape in _SHAPES:
                    yield _composed(subject, loco, arm, shape)
