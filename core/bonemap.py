"""Rig bones -> the 22 SMPL joints: the one bone map behind BVH import, retargeting and reading rigs.

Two ways to a map. Presets are the name tables of common rigs; the preset that finds the most of its
names wins when it finds all of them. Any other rig goes through the generic matcher, which reads the names
(keywords, side tokens) and the hierarchy (limb chains, the path from the pelvis to the head). Either way
left and right are then checked on the rest positions, since names lie (mirrored or viewer-left rigs) and a
file's up and forward axes are unknown. Joints a rig lacks are blended from mapped bones where that is sound
(spine, neck, collars) and left unmapped otherwise (toes). A third way skips detection: a complete table
(preset TABLE), such as a VRM file's humanoid table or one an animator edited. Pure numpy and the standard
library: the Blender side imports this too.
"""
import json
import re
import struct
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Sequence

import numpy as np

from .skeleton import JOINT_INDEX, JOINT_NAMES, NUM_JOINTS

TORSO = ("pelvis", "spine1", "spine2", "spine3", "neck", "head")
LEG = ("hip", "knee", "ankle", "foot")
ARM = ("collar", "shoulder", "elbow", "wrist")
SIDES = ("left", "right")


def _preset(torso: str, legs: str, arms: str, sides=("Left", "Right")) -> dict[str, str | None]:
    """A preset from 6 torso names and leg/arm name templates ('{s}' = side); '-' = the rig lacks the joint."""
    names = dict(zip(TORSO, torso.split()))
    for side, token in zip(SIDES, sides):
        for joints, templates in ((LEG, legs), (ARM, arms)):
            names.update((f"{side}_{j}", t.format(s=token)) for j, t in zip(joints, templates.split()))
    return {joint: None if names[joint] == "-" else names[joint] for joint in JOINT_NAMES}


def _rigify(prefix: str) -> dict[str, str | None]:
    """Metarig names (pelvis 'spine', neck 'spine.004', head 'spine.006'; spine.005 is the upper neck)."""
    p = prefix
    return _preset(f"{p}spine {p}spine.001 {p}spine.002 {p}spine.003 {p}spine.004 {p}spine.006",
                   f"{p}thigh.{{s}} {p}shin.{{s}} {p}foot.{{s}} {p}toe.{{s}}",
                   f"{p}shoulder.{{s}} {p}upper_arm.{{s}} {p}forearm.{{s}} {p}hand.{{s}}", ("L", "R"))


# SMPL joint -> bone name (None: the rig has no such bone; it is interpolated). Matching ignores case and any
# 'namespace:' ('mixamorig:Hips'); on a tie the earlier preset wins. Choices:
# - cmu: LowerBack, Neck and the LeftShoulder clavicle start where their parents do (zero OFFSET), so they
#   cannot be joints: spine1 = Spine, spine3 = Spine1 (the arms' parent), neck = Neck1; spine2 and the
#   collars are interpolated.
# - ue5 (spine_01..05): spine_01, spine_03 and spine_05 (the clavicles' parent); a UE5 skeleton with only
#   spine_01..03 (Quaternius UBC) is ue4 by name.
# - rigify: a generated rig also holds the DEF- and ORG- sets and is detected as the controls (what an
#   animator keys); pass preset="rigify_org" for the deforming joint positions.
PRESETS: dict[str, dict[str, str | None]] = {
    "mixamo": _preset("Hips Spine Spine1 Spine2 Neck Head", "{s}UpLeg {s}Leg {s}Foot {s}ToeBase",
                      "{s}Shoulder {s}Arm {s}ForeArm {s}Hand"),
    "smpl22_template": _preset("Hips Spine Spine1 Spine2 Neck Head", "{s}UpLeg {s}Leg {s}Foot {s}Toe",
                               "{s}Shoulder {s}Arm {s}ForeArm {s}Hand"),
    "cmu": _preset("Hips Spine - Spine1 Neck1 Head", "{s}UpLeg {s}Leg {s}Foot {s}ToeBase",
                   "- {s}Arm {s}ForeArm {s}Hand"),
    "bandai": _preset("Hips Spine - Chest Neck Head", "UpperLeg_{s} LowerLeg_{s} Foot_{s} Toes_{s}",
                      "Shoulder_{s} UpperArm_{s} LowerArm_{s} Hand_{s}", ("L", "R")),
    "ue5": _preset("pelvis spine_01 spine_03 spine_05 neck_01 head", "thigh_{s} calf_{s} foot_{s} ball_{s}",
                   "clavicle_{s} upperarm_{s} lowerarm_{s} hand_{s}", ("l", "r")),
    "ue4": _preset("pelvis spine_01 spine_02 spine_03 neck_01 head", "thigh_{s} calf_{s} foot_{s} ball_{s}",
                   "clavicle_{s} upperarm_{s} lowerarm_{s} hand_{s}", ("l", "r")),
    "smplx": _preset("pelvis spine1 spine2 spine3 neck head", "{s}_hip {s}_knee {s}_ankle {s}_foot",
                     "{s}_collar {s}_shoulder {s}_elbow {s}_wrist", SIDES),
    "smpl_fbx": _preset("m_avg_Pelvis m_avg_Spine1 m_avg_Spine2 m_avg_Spine3 m_avg_Neck m_avg_Head",
                        "m_avg_{s}_Hip m_avg_{s}_Knee m_avg_{s}_Ankle m_avg_{s}_Foot",
                        "m_avg_{s}_Collar m_avg_{s}_Shoulder m_avg_{s}_Elbow m_avg_{s}_Wrist", ("L", "R")),
    "rigify": _preset("torso spine_fk.001 spine_fk.002 spine_fk.003 neck head",
                      "thigh_fk.{s} shin_fk.{s} foot_fk.{s} toe_fk.{s}",
                      "shoulder.{s} upper_arm_fk.{s} forearm_fk.{s} hand_fk.{s}", ("L", "R")),
    "rigify_def": _rigify("DEF-"),
    "rigify_org": _rigify("ORG-"),
    "metarig": _rigify(""),
}
GENERIC = "generic"
TABLE = "table"  # no detection: the overrides are the whole map (missing spine, neck and collars interpolated)
# Name keys for preset matching: lower case, no namespace; Blender's 'mixamorig_' and SMPL's female rig.
_KEY_REWRITES = ((re.compile(r"^.*:"), ""), (re.compile(r"^mixamorig\d*_"), ""), (re.compile(r"^f_avg_"), "m_avg_"))

# Generic matcher vocabulary. A name splits into words (separators, camelCase, digits); side words give the
# side, noise words are dropped, a skip word removes the bone, the rest joined is the bone's keyword.
_SIDE_WORDS = {"l": "left", "left": "left", "r": "right", "right": "right"}
_NOISE_WORDS = {"def", "org", "mixamorig", "bip", "j", "c", "m", "f", "avg", "joint", "jnt", "skeleton", "bone",
                "bn", "fk", "sk", "rig", "deform"}
_SKIP_WORDS = {"twist", "roll", "end", "leaf", "nub", "tip", "pole", "ik", "target", "null", "helper", "corrective",
               "heel", "tweak", "socket", "prop", "mch", "ctrl", "control", "jiggle"}
_FINGER = re.compile(r"thumb|index|middle|ring|pinky|little|finger|metacarpal")
_TORSO_KEYWORDS = (("pelvis", r"pelvis|hips?"),
                   ("spine", r"spine|abdomen|torso|(upper)?chest|(lower|upper)?back|waist|belly|stomach|lumbar"),
                   ("neck", r"neck"), ("head", r"head"))
# (limb, keyword, {slot: bonus}), first full match wins. A limb chain takes slots in order; a bonus of 0 lets
# a bone take the slot without evidence (Collada 'leg_joint_L_1..5', 'arm_joint_L_n'), 3 is a certain name,
# 1-2 an ambiguous one: Mixamo 'LeftLeg' is the shin, 'LeftArm' the upper arm, 'LeftShoulder' the clavicle
# but the upper arm in some BVH exports; CMU's 'LHipJoint' is an extra bone above 'LeftUpLeg'; SMPL-X's
# 'left_foot' is the toe after 'left_ankle'.
_LIMB_KEYWORDS = (
    ("leg", r"thigh|upleg|upperleg", {"hip": 3}),
    ("leg", r"calf|shin|lowerleg|knee", {"knee": 3}),
    ("leg", r"toes?(base)?|ball", {"foot": 3}),
    ("leg", r"ankle", {"ankle": 3}),
    ("leg", r"foot", {"ankle": 3, "foot": 1}),
    ("leg", r"hip", {"hip": 1}),
    ("leg", r"leg", {"hip": 0, "knee": 1, "ankle": 0, "foot": 0}),
    ("arm", r"clavicle|collar", {"collar": 3}),
    ("arm", r"upperarm", {"shoulder": 3}),
    ("arm", r"forearm|lowerarm|elbow", {"elbow": 3}),
    ("arm", r"hand|wrist|palm", {"wrist": 3}),
    ("arm", r"shoulder", {"collar": 2, "shoulder": 1}),
    ("arm", r"arm", {"collar": 0, "shoulder": 1, "elbow": 0, "wrist": 0}),
)
_OPTIONAL_SLOTS = {"collar", "foot"}

# Joints a map must have; the others are interpolated (spine, neck, collars) or may stay unmapped (feet).
_REQUIRED = (("torso", ("pelvis", "head")),
             *((f"{side} leg", tuple(f"{side}_{j}" for j in LEG[:3])) for side in SIDES),
             *((f"{side} arm", tuple(f"{side}_{j}" for j in ARM[1:])) for side in SIDES))
# A missing collar sits between the upper spine and the shoulder: on the SMPL template this blend lands
# ~1 cm from the real collar.
_COLLAR_BLEND = (("spine3", 0.25), ("neck", 0.25), ("shoulder", 0.5))
# Relative tolerances. A bone starting where its parent starts (fraction of the skeleton's extent) is no
# joint; as fractions of the pelvis -> head distance, left/right needs the hips or shoulders this far apart
# and forward needs the toes (or the knees' bend) this clear.
_COINCIDENT, _SIDE_GAP, _FORWARD_MIN = 1e-3, 0.05, 0.02


class UnmappableSkeletonError(ValueError):
    """The skeleton lacks joints MoMask needs, or two bones compete for one joint; the message names them.
    partial: SMPL joint -> bone name of the joints that were found, a start for a table to complete by hand."""

    def __init__(self, message: str, partial: dict[str, str] | None = None):
        super().__init__(message)
        self.partial = dict(partial or {})


@dataclass(frozen=True)
class BoneMap:
    """Which rig bones make each of the 22 SMPL joints (core.skeleton.JOINT_NAMES order).

    smpl = einsum('jb,fbc->fjc', weights, bone_positions): a directly mapped joint has a one-hot row, an
    interpolated one a blend summing to 1, an unmapped one (in `unmapped`, a foot without a toe bone) a zero
    row that the caller must handle.
    """
    bones: tuple[str | None, ...]
    weights: np.ndarray
    interpolated: dict[str, str]
    preset: str
    unmapped: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    structural: tuple[str, ...] = ()

    def report(self) -> str:
        """Human readable: the preset, each joint's bone or blend, the unmapped joints and any notes."""
        source = {GENERIC: "generic matcher", TABLE: "given table"}.get(self.preset, "preset " + self.preset)
        lines = [f"bone map: {source}"]
        for joint, bone in zip(JOINT_NAMES, self.bones):
            if bone is not None:
                lines.append(f"  {joint:<15}<- {bone}" + (" (by structure)" if joint in self.structural else ""))
            elif joint in self.interpolated:
                lines.append(f"  {joint:<15}~  {self.interpolated[joint]} (interpolated)")
            else:
                lines.append(f"  {joint:<15}-- unmapped (no bone; see BoneMap.unmapped)")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def map_skeleton(names: Sequence[str], parents: Sequence[int], rest_positions: np.ndarray,
                 preset: str | None = None, overrides: dict[str, str] | None = None) -> BoneMap:
    """Map a skeleton (bone names, parent indices (-1 = root), (B, 3) rest head positions in any units and
    axes) onto the 22 SMPL joints. preset: a PRESETS name or GENERIC to force one, TABLE to take the overrides as
    the whole map, None to detect. overrides: SMPL joint -> bone name, applied after detection (they win)."""
    names, parents, positions = _checked_skeleton(names, parents, rest_positions)
    paths = _ancestor_paths(parents, names)
    overrides = _checked_overrides(overrides or {}, names)
    closest = None
    if preset is None:
        preset, closest = _detect_preset(names)
    elif preset not in (GENERIC, TABLE) and preset not in PRESETS:
        raise ValueError(f"unknown preset '{preset}'; known: {', '.join(PRESETS)}, {GENERIC}, {TABLE}")
    structural = ()
    if preset == TABLE:
        mapping, conflicts, notes = {}, {}, []
    elif preset in PRESETS:
        mapping, conflicts = _preset_mapping(names, PRESETS[preset])
        notes = []
    else:
        preset = GENERIC
        mapping, conflicts, notes = _generic_mapping(names, paths, positions)
        notes += [closest] if closest else []
        structural = _fill_from_structure(mapping, conflicts, names, parents, positions, paths, notes)
    conflicts = {j: c for j, c in conflicts.items() if j not in overrides}
    if conflicts:
        raise UnmappableSkeletonError("ambiguous skeleton: " + "; ".join(
            f"{len(c)} bones qualify as {joint} ({', '.join(names[b] for b in c)})" for joint, c in conflicts.items()),
            {j: names[b] for j, b in mapping.items() if j not in conflicts} | overrides)
    notes += _resolve_sides(mapping, positions)
    mapping.update((joint, names.index(bone)) for joint, bone in overrides.items())
    if preset != TABLE:
        notes += [f"{joint} set by override: {bone}" for joint, bone in overrides.items()]
    _require(mapping, notes, names,
             "the table names no bone for them" if preset == TABLE else "map them by hand")
    weights, interpolated, unmapped = _blend_weights(mapping, len(names))
    bones = tuple(names[mapping[j]] if j in mapping else None for j in JOINT_NAMES)
    structural = tuple(j for j in JOINT_NAMES if j in structural and j not in overrides)
    return BoneMap(bones, weights, interpolated, preset, unmapped, tuple(notes), structural)


# ---------------------------------------------------------------------------------------------- input checks
def _checked_skeleton(names, parents, rest_positions):
    names = [str(n) for n in names]
    if not names:
        raise UnmappableSkeletonError(f"empty skeleton: no bones to map the {NUM_JOINTS} SMPL joints onto "
                                      f"({', '.join(JOINT_NAMES)})")
    parents = np.asarray(parents)
    positions = np.asarray(rest_positions, dtype=np.float64)
    if parents.shape != (len(names),) or positions.shape != (len(names), 3):
        raise ValueError(f"inconsistent skeleton: {len(names)} names, parents {parents.shape}, "
                         f"rest_positions {positions.shape} (expected ({len(names)},) and ({len(names)}, 3))")
    if not np.issubdtype(parents.dtype, np.integer):
        raise ValueError(f"parents must be integer bone indices, got dtype {parents.dtype}")
    bad = np.flatnonzero((parents < -1) | (parents >= len(names)))
    if len(bad):
        raise ValueError(f"parent of bone '{names[bad[0]]}' is {parents[bad[0]]}: not a bone index (0.."
                         f"{len(names) - 1}) nor -1")
    if not np.isfinite(positions).all():
        raise ValueError("rest_positions must be finite")
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise ValueError(f"bone names must be unique: {', '.join(duplicates)} appear more than once")
    return names, parents.astype(np.int64), positions


def _checked_overrides(overrides: dict[str, str], names: list[str]) -> dict[str, str]:
    for joint, bone in overrides.items():
        if joint not in JOINT_INDEX:
            raise ValueError(f"override '{joint}': not an SMPL joint (one of {', '.join(JOINT_NAMES)})")
        if bone not in names:
            raise ValueError(f"override {joint} -> '{bone}': the skeleton has no bone of that name")
    return dict(overrides)


def _ancestor_paths(parents: np.ndarray, names: list[str]) -> list[list[int]]:
    """Each bone's path to its root, itself first; refuses cycles."""
    paths = []
    for bone in range(len(parents)):
        path = [bone]
        while parents[path[-1]] >= 0:
            path.append(int(parents[path[-1]]))
            if len(path) > len(parents):
                raise ValueError(f"parents contain a cycle through bone '{names[bone]}'")
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------------------- presets
def _name_key(name: str) -> str:
    key = name.lower()
    for pattern, replacement in _KEY_REWRITES:
        key = pattern.sub(replacement, key)
    return key


def _bones_by_key(names: list[str]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        found.setdefault(_name_key(name), []).append(index)
    return found


def _detect_preset(names: list[str]) -> tuple[str | None, str | None]:
    """(the complete preset with the most names found, or None; a note on the closest incomplete one)."""
    found = _bones_by_key(names)
    coverage = {}
    for name, table in PRESETS.items():
        wanted = [_name_key(bone) for bone in table.values() if bone is not None]
        coverage[name] = (sum(key in found for key in wanted), len(wanted))
    complete = [name for name, (hit, total) in coverage.items() if hit == total]
    if complete:
        return max(complete, key=lambda name: coverage[name][0]), None
    closest = max(coverage, key=lambda name: coverage[name][0] / coverage[name][1])
    hit, total = coverage[closest]
    return None, (f"no preset matched (closest: {closest}, {hit} of {total} names)" if hit * 2 >= total else None)


def _preset_mapping(names: list[str], table: dict[str, str | None]):
    """(joint -> bone index, joint -> competing bone indices) for the preset's names found in the rig."""
    found = _bones_by_key(names)
    mapping, conflicts = {}, {}
    for joint, bone in table.items():
        hits = found.get(_name_key(bone), []) if bone is not None else []
        if len(hits) == 1:
            mapping[joint] = hits[0]
        elif len(hits) > 1:
            conflicts[joint] = hits
    return mapping, conflicts


# ------------------------------------------------------------------------------------------- generic matcher
def _words(name: str) -> list[str]:
    name = name.rsplit(":", 1)[-1]
    return [word.lower() for piece in re.split(r"[^A-Za-z0-9]+", name)
            for word in re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+", piece)]


def _classify(name: str):
    """(side or None, role: pelvis/spine/neck/head/leg/arm/finger/skip/None, {slot: bonus} of limb bones)."""
    words = _words(name)
    if _SKIP_WORDS.intersection(words):
        return None, "skip", {}
    sides = {_SIDE_WORDS[w] for w in words if w in _SIDE_WORDS}
    side = sides.pop() if len(sides) == 1 else None
    keyword = "".join(w for w in words if w not in _SIDE_WORDS and w not in _NOISE_WORDS and not w.isdigit())
    if _FINGER.search(keyword):
        return side, "finger", {}
    for limb, pattern, slots in _LIMB_KEYWORDS:
        if re.fullmatch(pattern, keyword):
            return side, limb, slots
    if side is None:
        for role, pattern in _TORSO_KEYWORDS:
            if re.fullmatch(pattern, keyword):
                return None, role, {}
    return side, None, {}


def _joints_apart(paths: list[list[int]], positions: np.ndarray) -> list[bool]:
    """Per bone: whether it is a joint of its own, not starting where its parent starts (CMU LowerBack)."""
    scale = np.linalg.norm(np.ptp(positions, axis=0)) or 1.0
    return [len(p) == 1 or np.linalg.norm(positions[b] - positions[p[1]]) > _COINCIDENT * scale
            for b, p in enumerate(paths)]


def _generic_mapping(names: list[str], paths: list[list[int]], positions: np.ndarray):
    """(joint -> bone index, conflicts, notes) from keywords and hierarchy."""
    classes = [_classify(name) for name in names]
    usable = _joints_apart(paths, positions)
    roles = [role for _, role, _ in classes]
    mapping, conflicts, notes = {}, {}, []
    chain_roots = {}
    for limb, slots in (("leg", LEG), ("arm", ARM)):
        for side in SIDES:
            members = [b for b, (s, role, _) in enumerate(classes) if role == limb and s == side and usable[b]]
            chain = _limb_chain(members, paths)
            assigned = _assign_slots([classes[b][2] for b in chain], slots)
            mapping.update((f"{side}_{slot}", chain[i]) for slot, i in assigned.items())
            if assigned:
                chain_roots[(limb, side)] = chain[min(assigned.values())]
    head = _find_head(roles, paths, conflicts)
    hips = [mapping[f"{side}_hip"] for side in SIDES if f"{side}_hip" in mapping]
    pelvis = _find_pelvis(roles, paths, [head, *hips] if head is not None and len(hips) == 2 else [],
                          conflicts, names, notes)
    if head is not None:
        mapping["head"] = head
    if pelvis is not None:
        mapping["pelvis"] = pelvis
    if head is not None and pelvis is not None and pelvis in paths[head]:
        arms = [chain_roots[("arm", side)] for side in SIDES if ("arm", side) in chain_roots]
        branch = _common_ancestor(arms, paths) if len(arms) == 2 else None
        mapping.update(_spine_and_neck(paths[head][1:paths[head].index(pelvis)][::-1], roles, usable, branch,
                                       positions))
    return mapping, conflicts, notes


def _fill_from_structure(mapping, conflicts, names, parents, positions, paths, notes) -> set[str]:
    """Joints the names left open, from the structural matcher; returns the joints filled. Bones the names took
    stay theirs, and end bones the names call end, tip, IK or finger bones (_SKIP_WORDS, _FINGER) take no joint
    (a toe-less foot's FootTip; CC's NeckTwist01, a chain through to the head, is the neck). Where the structure
    shows no body the names stand alone, with a note why."""
    found, why = _structural_mapping(parents, positions, paths, _joints_apart(paths, positions))
    if why is not None:
        if len(mapping) < NUM_JOINTS:
            notes.append(f"structure: {why}")
        return set()
    for limb in (LEG, ARM):  # where the names tell a side of this limb, the structure's sides follow them
        if any(mapping.get(f"{a}_{j}") == found.get(f"{b}_{j}") is not None for a, b in (SIDES, SIDES[::-1])
               for j in limb):
            for joint in limb:
                pair = [found.pop(f"{s}_{joint}", None) for s in SIDES]
                found.update((f"{s}_{joint}", b) for s, b in zip(SIDES[::-1], pair) if b is not None)
    ends = set(range(len(names))) - set(parents.tolist())
    taken = set(mapping.values()) | {b for b in ends if _classify(names[b])[1] in ("skip", "finger")}
    filled = {j: b for j, b in found.items() if j not in mapping and j not in conflicts and b not in taken}
    mapping.update(filled)
    return set(filled)


def _limb_chain(members: list[int], paths: list[list[int]]) -> list[int]:
    """A side's limb bones in chain order: the longest run of them along one hierarchy path, then bones off
    that path (feet parented to the root in IK rigs) by depth."""
    if not members:
        return []
    tip = max(members, key=lambda b: (sum(m in paths[b] for m in members), len(paths[b])))
    main = sorted((m for m in members if m in paths[tip]), key=lambda b: len(paths[b]))
    return main + sorted((m for m in members if m not in main), key=lambda b: len(paths[b]))


def _assign_slots(options: list[dict[str, int]], slots: tuple[str, ...]) -> dict[str, int]:
    """Slot -> chain position: the order-preserving assignment that fills the most (required first) slots with
    the best-named bones (dynamic programming over chain position x slot)."""
    @cache
    def best(i: int, k: int) -> tuple[float, tuple]:
        if i == len(options) or k == len(slots):
            return 0.0, ()
        candidates = []
        bonus = options[i].get(slots[k])
        if bonus is not None:
            score, rest = best(i + 1, k + 1)
            candidates.append((score + bonus + (5 if slots[k] in _OPTIONAL_SLOTS else 10), ((slots[k], i),) + rest))
        candidates += [best(i + 1, k), best(i, k + 1)]
        return max(candidates, key=lambda c: c[0])

    return dict(best(0, 0)[1])


def _common_ancestor(bones: list[int], paths: list[list[int]]) -> int | None:
    shared = set(paths[bones[0]]).intersection(*(paths[b] for b in bones[1:]))
    return next((b for b in paths[bones[0]] if b in shared), None)


def _unrelated(bones: list[int], paths: list[list[int]]) -> bool:
    return any(a not in paths[b] and b not in paths[a] for a in bones for b in bones)


def _find_head(roles, paths, conflicts) -> int | None:
    """The head bone, or the top of a neck chain when no bone says head (Collada 'neck_joint_2')."""
    heads = [b for b, role in enumerate(roles) if role == "head"]
    if heads:
        if _unrelated(heads, paths):
            conflicts["head"] = heads
            return None
        return min(heads, key=lambda b: len(paths[b]))
    necks = [b for b, role in enumerate(roles) if role == "neck"]
    if len(necks) >= 2 and not _unrelated(necks, paths):
        return max(necks, key=lambda b: len(paths[b]))
    return None


def _find_pelvis(roles, paths, anchors, conflicts, names, notes) -> int | None:
    """The bone both legs and the spine hang from; a pelvis-named bone at or above it if there is one.
    (Quaternius' IK rig hangs the legs from 'Body', above 'Hips'.)"""
    named = [b for b, role in enumerate(roles) if role == "pelvis"]
    if len(named) > 1 and _unrelated(named, paths):
        conflicts["pelvis"] = named
        return None
    if not anchors:
        return named[0] if len(named) == 1 else None
    hub = _common_ancestor(anchors, paths)
    if hub is None:  # legs and head in separate trees
        return named[0] if len(named) == 1 else None
    above = [b for b in named if b in paths[hub]]
    if above:
        return max(above, key=lambda b: len(paths[b]))
    notes.append(f"pelvis: '{names[hub]}', the bone both legs and the spine hang from"
                 + (f" ('{names[named[0]]}' is not above the legs)" if named else ""))
    return hub


def _spine_and_neck(path: list[int], roles, usable, branch, positions) -> dict[str, int]:
    """spine1..3 and neck from the bones between pelvis and head (bottom to top). neck = the first neck-named
    bone; the spine ends at the one the arms hang from (else the highest) (_spine_joints). Bones that start where
    their parent starts (CMU LowerBack, Neck) are skipped."""
    path = [b for b in path if usable[b] and roles[b] in ("spine", "neck", None)]
    necks = [i for i, b in enumerate(path) if roles[b] == "neck"]
    mapping = {"neck": path[necks[0]]} if necks else {}
    spine = path[:necks[0]] if necks else path
    if branch in spine:
        spine = spine[:spine.index(branch) + 1]
    if len(spine) == 1 and spine[0] != branch:
        mapping["spine2"] = spine[0]
        return mapping
    return mapping | _spine_joints(spine, positions)


def _spine_joints(spine: list[int], positions) -> dict[str, int]:
    """spine1..3 from the spine bones, bottom to top, the top one carrying the arms: spine3 = the top, spine1 =
    the lowest, spine2 = the one nearest the middle of those two; missing ones are interpolated later."""
    if not spine:
        return {}
    mapping = {"spine3": spine[-1]}
    if len(spine) > 1:
        mapping["spine1"] = spine[0]
        middle = (positions[spine[0]] + positions[spine[-1]]) / 2
        if len(spine) > 2:
            mapping["spine2"] = min(spine[1:-1], key=lambda b: np.linalg.norm(positions[b] - middle))
    return mapping


# ---------------------------------------------------------------------------------------- structural matcher
# Relative tolerances of the structural matcher. A limb is a branch at least _LIMB_REACH of the skeleton's extent
# long, its left/right twin within _PAIR_RATIO of its length; legs point down against the spine (cosine below
# _LEGS_DOWN); a bone within _RIDING of the distance between two joints off the line joining them rides on that
# segment (twist and share bones); a hand or foot is a bone whose two or more children are all shorter than
# _DIGIT of its limb up to it (fingers, toes); a last bone _END_BONE times longer than the one before it is an
# end bone at the top of the skull, not the head; a toe points less than 45 deg up from its ankle (_TOE_UP, a sine:
# a heel strike lifts it).
_LIMB_REACH, _PAIR_RATIO, _LEGS_DOWN, _RIDING, _DIGIT, _END_BONE, _TOE_UP = 0.15, 0.8, -0.5, 0.03, 0.5, 1.5, 0.7


class _Tree:
    """The hierarchy and rest heads as the structural matcher walks them: children, the length of the longest
    path below each bone, and which bones are joints (`usable`: not starting where their parent starts)."""

    def __init__(self, parents: np.ndarray, positions: np.ndarray, paths: list[list[int]], usable: list[bool]):
        self.parents, self.positions, self.paths, self.usable = parents, positions, paths, usable
        self.children = [[] for _ in parents]
        for bone, parent in enumerate(parents):
            if parent >= 0:
                self.children[parent].append(bone)
        self.segment = np.array([np.linalg.norm(positions[b] - positions[p]) if p >= 0 else 0.0
                                 for b, p in enumerate(parents)])
        self.below = np.zeros(len(parents))
        for bone in sorted(range(len(parents)), key=lambda b: -len(paths[b])):  # children before parents
            if parents[bone] >= 0:
                self.below[parents[bone]] = max(self.below[parents[bone]], self.reach(bone))
        self.extent = np.linalg.norm(np.ptp(positions, axis=0)) or 1.0

    def reach(self, bone: int) -> float:
        """Length of the longest path from the bone's parent down through it."""
        return self.segment[bone] + self.below[bone]

    def main_path(self, bone: int) -> list[int]:
        """The joints from `bone` down its longest path."""
        path = [bone]
        while self.children[path[-1]]:
            path.append(max(self.children[path[-1]], key=self.reach))
        return [b for b in path if self.usable[b]]

    def distance(self, a: int, b: int) -> float:
        return float(np.linalg.norm(self.positions[b] - self.positions[a]))

    def is_hand(self, bone: int, limb: float) -> bool:
        """Two or more children, all short next to the limb up to the bone: fingers or toes."""
        kids = self.children[bone]
        return len(kids) >= 2 and all(self.reach(k) < _DIGIT * limb for k in kids)

    def riding(self, bone: int, a: int, b: int) -> bool:
        """Whether the bone lies on the line from joint a to joint b (a twist or share bone)."""
        span, offset = self.positions[b] - self.positions[a], self.positions[bone] - self.positions[a]
        length = np.linalg.norm(span)
        return bool(length > 0 and np.linalg.norm(np.cross(offset, span)) <= _RIDING * length ** 2)


def _structural_mapping(parents, positions, paths, usable) -> tuple[dict[str, int], str | None]:
    """(joint -> bone index, None) from the hierarchy and the rest heads alone, or ({}, why not). The body: a
    fork of two limbs pointing down (legs) and a spine up to a fork of two more limbs (arms) and a neck; sides
    as they come (left and right are told on the rest positions afterwards)."""
    tree = _Tree(parents, positions, paths, usable)
    pairs = []
    for hub, kids in enumerate(tree.children):
        limbs = [k for k in kids if tree.reach(k) >= _LIMB_REACH * tree.extent and len(tree.main_path(k)) >= 2]
        pairs += [(hub, a, b) for i, a in enumerate(limbs) for b in limbs[i + 1:]
                  if min(tree.reach(a), tree.reach(b)) >= _PAIR_RATIO * max(tree.reach(a), tree.reach(b))]
    bodies = []
    for legs in pairs:
        for arms in pairs:
            fork = _common_ancestor([legs[0], arms[0]], paths)
            if (fork is None or arms[0] in (fork, legs[0]) or any(b in paths[arms[0]] for b in legs[1:])
                    or any(b in paths[legs[0]] for b in arms[1:])):
                continue
            up = _unit(positions[arms[0]] - positions[legs[0]])
            if all(_unit(positions[tree.main_path(b)[-1]] - positions[legs[0]]) @ up < _LEGS_DOWN for b in legs[1:]):
                bodies.append((legs, arms, fork, up))
    if len(bodies) != 1:
        return {}, (f"{len(bodies)} bodies in one skeleton" if bodies else
                    "no two legs pointing down from a spine that forks into two arms")
    (_, *legs), (arm_hub, *arms), fork, up = bodies[0]
    mapping = {}
    for side, leg, arm in zip(SIDES, legs, arms):
        mapping.update(_limb_joints(tree, tree.main_path(leg), f"{side}_", LEG[:3], up))
        mapping.update(_limb_joints(tree, tree.main_path(arm), f"{side}_", ARM[1:], up))
    _detached_ankles(tree, mapping, fork, up)
    if any(f"{side}_{joint}" not in mapping for side in SIDES for joint in ("hip", "shoulder")):
        return {}, "limbs without three joints"
    pelvis = fork
    hips = min(positions[mapping[f"{side}_hip"]] @ up for side in SIDES)
    while usable[pelvis] and parents[pelvis] >= 0 and positions[parents[pelvis]] @ up >= hips:
        pelvis = int(parents[pelvis])  # the legs fork above the pelvis bone (3ds Max Biped: thighs on the spine)
    mapping["pelvis"] = pelvis
    spine = [b for b in paths[arm_hub][:paths[arm_hub].index(pelvis)][::-1]
             if usable[b] and (positions[b] - positions[pelvis]) @ up > 0]
    neck = _neck_and_head(tree, arm_hub, arms, up)
    if not neck:
        return {}, "no neck or head above the arms"
    mapping["head"] = neck[-1]
    if len(neck) > 1:
        mapping["neck"] = neck[0]
    elif len(spine) > 1:  # the arms hang from the neck (3ds Max Biped)
        mapping["neck"] = spine.pop()
    return mapping | _spine_joints(spine, positions), None


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v)
    return v / norm if norm > 0 else v


def _limb_joints(tree: _Tree, chain: list[int], prefix: str, slots: tuple[str, ...], up) -> dict[str, int]:
    """The three real joints of a leg (hip, knee, ankle) or an arm (shoulder, elbow, wrist) along its chain: upper
    and lower segment about as long, as much of the chain between them as can be, no bone skipped that does not
    ride on its segment; the wrist or ankle is no further than a hand or foot (its children all short). A leg's
    toe is the joint after the ankle unless it points up; an arm's collar the joint before its shoulder."""
    along = np.concatenate([[0.0], np.cumsum([tree.distance(a, b) for a, b in zip(chain, chain[1:])])])
    total = along[-1]
    if total == 0 or len(chain) < 3:
        return {f"{prefix}{slot}": bone for slot, bone in zip(slots, chain)} if len(chain) == 2 else {}
    end = next((i for i, b in enumerate(chain) if i >= 2 and tree.is_hand(b, along[i])), len(chain) - 1)
    best, found = np.inf, None
    for i in range(end + 1):
        for j in range(i + 1, end + 1):
            for k in range(j + 1, end + 1):
                upper, lower = tree.distance(chain[i], chain[j]), tree.distance(chain[j], chain[k])
                skipped = sum(not tree.riding(chain[m], chain[a], chain[b]) for a, b in ((i, j), (j, k))
                              for m in range(a + 1, b))
                cost = (abs(np.log(upper / lower)) + skipped + (total - upper - lower) / total if upper * lower
                        else np.inf)
                if cost < best:
                    best, found = cost, (i, j, k)
    if found is None:
        return {}
    mapping = {prefix + slot: chain[i] for slot, i in zip(slots, found)}
    if slots[0] == "shoulder" and found[0] > 0:
        mapping[prefix + "collar"] = chain[0]
    if slots[0] == "hip" and found[2] + 1 < len(chain):
        _set_toe(tree, mapping, prefix, chain[found[2] + 1], up)
    return mapping


def _set_toe(tree: _Tree, mapping: dict[str, int], prefix: str, toe: int, up) -> None:
    """The toe joint, unless it points up from the ankle more steeply than _TOE_UP (a sine)."""
    if (tree.positions[toe] - tree.positions[mapping[prefix + "ankle"]]) @ up <= _TOE_UP * tree.distance(
            mapping[prefix + "ankle"], toe):
        mapping[prefix + "foot"] = toe


def _detached_ankles(tree: _Tree, mapping: dict[str, int], fork: int, up) -> None:
    """A leg ending at its knee takes as ankle the nearest joint outside the body's hierarchy at least half a
    thigh below the knee and within two thighs of it (IK rigs hang the feet from the root)."""
    outside = [b for b in range(len(tree.parents)) if tree.usable[b] and fork not in tree.paths[b]
               and b not in tree.paths[fork]]
    for side in SIDES:
        hip, knee = mapping.get(f"{side}_hip"), mapping.get(f"{side}_knee")
        if hip is None or knee is None or f"{side}_ankle" in mapping:
            continue
        thigh = tree.distance(hip, knee)
        below = [b for b in outside if (tree.positions[knee] - tree.positions[b]) @ up >= thigh / 2
                 and tree.distance(knee, b) <= 2 * thigh and b not in mapping.values()]
        if below:
            mapping[f"{side}_ankle"] = ankle = min(below, key=lambda b: tree.distance(knee, b))
            toes = tree.main_path(ankle)[1:]
            if toes:
                _set_toe(tree, mapping, f"{side}_", toes[0], up)


def _neck_and_head(tree: _Tree, arm_hub: int, arms: list[int], up) -> list[int]:
    """The joints from above the arms' fork to the head: the fork's other branch that rises highest, followed
    until it forks again (eyes, face) or ends, less a last bone longer than the one before it (an end bone at
    the top of the skull: Mixamo HeadTop_End, 3ds Max HeadNub)."""
    def top(bone):
        return max(tree.positions[b] @ up for b in tree.main_path(bone) or [bone])
    others = [k for k in tree.children[arm_hub] if k not in arms and top(k) > tree.positions[arm_hub] @ up]
    if not others:
        return []
    chain, bone = [], max(others, key=top)
    while True:
        if tree.usable[bone]:
            chain.append(bone)
        kids = tree.children[bone]
        while len(kids) == 1 and not tree.usable[kids[0]]:  # look through bones at their parent's head
            kids = tree.children[kids[0]]
        if len(kids) != 1:
            break
        bone = kids[0]
    if len(chain) >= 2 and not tree.children[chain[-1]]:
        before = tree.distance(chain[-3], chain[-2]) if len(chain) >= 3 else tree.distance(arm_hub, chain[-2])
        if tree.distance(chain[-2], chain[-1]) > _END_BONE * before:
            chain.pop()
    return chain


# ---------------------------------------------------------------------------------------- sides, validation
def _forward(mapping: dict[str, int], positions: np.ndarray, up: np.ndarray) -> np.ndarray | None:
    """The body's forward direction: toes point forward, else knees bend forward; None if neither shows."""
    def at(joint):
        return positions[mapping[joint]]
    for parts, vector in ((("foot", "ankle"), lambda s: at(f"{s}_foot") - at(f"{s}_ankle")),
                          (("knee", "hip", "ankle"),
                           lambda s: at(f"{s}_knee") - (at(f"{s}_hip") + at(f"{s}_ankle")) / 2)):
        if all(f"{s}_{p}" in mapping for s in SIDES for p in parts):
            forward = sum(vector(s) for s in SIDES)
            forward = forward - (forward @ up) * up
            if np.linalg.norm(forward) > _FORWARD_MIN:
                return forward / np.linalg.norm(forward)
    return None


def _resolve_sides(mapping: dict[str, int], positions: np.ndarray) -> list[str]:
    """Swap a limb pair whose bones named left lie on the body's right. The body frame comes from the rest
    positions (up: pelvis -> head; forward: feet or knees; left = up x forward); where it cannot be told (a
    zero-rotation pose with the legs along the spine) the names stand."""
    if "pelvis" not in mapping or "head" not in mapping:
        return []
    up = positions[mapping["head"]] - positions[mapping["pelvis"]]
    size = np.linalg.norm(up)
    if size == 0:
        return []
    up = up / size
    forward = _forward(mapping, positions / size, up)
    if forward is None:
        return []
    left = np.cross(up, forward)
    notes = []
    for limb, joints, anchor in (("leg", LEG, "hip"), ("arm", ARM, "shoulder")):  # collars may sit on the spine
        if not all(f"{s}_{anchor}" in mapping for s in SIDES):
            continue
        gap = (positions[mapping[f"left_{anchor}"]] - positions[mapping[f"right_{anchor}"]]) @ left / size
        if gap < -_SIDE_GAP:
            for joint in joints:
                pair = [mapping.pop(f"{s}_{joint}", None) for s in SIDES]
                mapping.update((f"{s}_{joint}", b) for s, b in zip(SIDES[::-1], pair) if b is not None)
            notes.append(f"the {limb} named left lies on the body's right (rest positions): sides swapped")
    return notes


def _require(mapping: dict[str, int], notes: list[str], names: list[str], remedy: str) -> None:
    """Refuse a map without the joints nothing can stand in for, naming them limb by limb."""
    problems = []
    for label, joints in _REQUIRED:
        missing = [j for j in joints if j not in mapping]
        if missing == list(joints) and len(joints) > 1 and label != "torso":
            problems.append(f"no {label}: {', '.join(missing)} not found")
        elif missing:
            problems.append(f"{label} incomplete: {', '.join(missing)} not found")
    if problems:
        hint = "".join(f"; {n}" for n in notes if n.startswith(("no preset", "structure:")))
        raise UnmappableSkeletonError("; ".join(problems) + hint + f" ({remedy})",
                                      {joint: names[bone] for joint, bone in mapping.items()})


# ---------------------------------------------------------------------------------------------- interpolation
def _blend_weights(mapping: dict[str, int], num_bones: int):
    """(22, B) weights, joint -> description of each blend, unmapped joints. Missing torso joints are evenly
    spaced between the nearest mapped torso joints below and above (Bandai's spine2 = 1/2 Spine + 1/2 Chest);
    a missing collar is _COLLAR_BLEND; a missing foot (toe) stays unmapped: no blend of bone heads gives the
    point ahead of the ankle."""
    weights = np.zeros((NUM_JOINTS, num_bones))
    for joint, bone in mapping.items():
        weights[JOINT_INDEX[joint], bone] = 1.0
    interpolated = {}

    def blend(joint: str, parts: list[tuple[str, float]]) -> None:
        weights[JOINT_INDEX[joint]] = sum(w * weights[JOINT_INDEX[j]] for j, w in parts)
        interpolated[joint] = " + ".join(f"{w:g} {j}" for j, w in parts)

    known = [i for i, joint in enumerate(TORSO) if joint in mapping]
    for i, joint in enumerate(TORSO):
        if joint not in mapping:
            below, above = max(k for k in known if k < i), min(k for k in known if k > i)
            t = round((i - below) / (above - below), 4)
            blend(joint, [(TORSO[below], 1 - t), (TORSO[above], t)])
    for side in SIDES:
        if f"{side}_collar" not in mapping:
            blend(f"{side}_collar", [(j if j in TORSO else f"{side}_{j}", w) for j, w in _COLLAR_BLEND])
    unmapped = tuple(j for j in JOINT_NAMES if j not in mapping and j not in interpolated)
    return weights, interpolated, unmapped


# ------------------------------------------------------------------------------------------------------- VRM
# VRM humanoid bone -> SMPL joint (names as both VRM 0.x and 1.0 write them). VRM's shoulder is the clavicle
# (SMPL collar) and its upper arm SMPL's shoulder; toes are SMPL's foot. Spine, chest and upperChest (chest is
# optional in 1.0, upperChest in both) are matched from the top in vrm_joint_table.
VRM_JOINTS = {"hips": "pelvis", "neck": "neck", "head": "head", **{
    f"{side}{vrm}": f"{side}_{joint}" for side in SIDES for vrm, joint in (
        ("UpperLeg", "hip"), ("LowerLeg", "knee"), ("Foot", "ankle"), ("Toes", "foot"), ("Shoulder", "collar"),
        ("UpperArm", "shoulder"), ("LowerArm", "elbow"), ("Hand", "wrist"))}}
VRM_SPINE = ("spine", "chest", "upperChest")
_GLB_MAGIC, _GLB_JSON = b"glTF", 0x4E4F534A


def vrm_joint_table(human_bones: dict[str, str]) -> dict[str, str]:
    """SMPL joint -> bone name from a VRM humanoid table (VRM bone name -> bone name; fingers, eyes and jaw
    ignored). The highest of spine/chest/upperChest is spine3, which the collars hang from; of the others the
    lowest is spine1 and a middle one spine2. SMPL joints left out are interpolated by the bone map."""
    table = {VRM_JOINTS[vrm]: bone for vrm, bone in human_bones.items() if vrm in VRM_JOINTS and bone}
    spine = [human_bones[vrm] for vrm in VRM_SPINE if human_bones.get(vrm)]
    if spine:
        table["spine3"] = spine[-1]
        table.update(zip(("spine1", "spine2"), spine[:-1]))
    return table


def vrm_humanoid(gltf: dict, source: str = "glTF JSON") -> dict[str, str]:
    """SMPL joint -> node name from a VRM model's glTF JSON: VRM 1.0 (extensions.VRMC_vrm.humanoid.humanBones,
    {bone: {node}}) or VRM 0.x (extensions.VRM.humanoid.humanBones, [{bone, node}]). Raises ValueError naming
    `source` when the file has no such table or a bone names a node it lacks."""
    extensions = gltf.get("extensions") or {}
    if "VRMC_vrm" in extensions:
        bones = extensions["VRMC_vrm"].get("humanoid", {}).get("humanBones", {})
        nodes = {bone: (entry or {}).get("node") for bone, entry in bones.items()} if isinstance(bones, dict) else None
    elif "VRM" in extensions:
        bones = extensions["VRM"].get("humanoid", {}).get("humanBones", [])
        nodes = {entry.get("bone"): entry.get("node") for entry in bones} if isinstance(bones, list) else None
    else:
        raise ValueError(f"{source}: no VRM humanoid table (neither extensions.VRMC_vrm nor extensions.VRM)")
    if not nodes:
        raise ValueError(f"{source}: the VRM humanoid table (humanBones) is empty or malformed")
    names = {}
    all_nodes = gltf.get("nodes", [])
    for bone, node in nodes.items():
        if bone not in VRM_JOINTS and bone not in VRM_SPINE:
            continue
        if not isinstance(node, int) or not 0 <= node < len(all_nodes):
            raise ValueError(f"{source}: VRM bone '{bone}' names node {node!r}, but the file has {len(all_nodes)} "
                             "nodes")
        if not all_nodes[node].get("name"):
            raise ValueError(f"{source}: VRM bone '{bone}' is node {node}, which has no name to find its bone by")
        names[bone] = all_nodes[node]["name"]
    return vrm_joint_table(names)


def read_gltf_json(path: str | Path) -> dict:
    """The JSON of a .vrm/.glb (binary glTF: a 12-byte header, then a JSON chunk) or .gltf file."""
    path = Path(path)
    data = path.read_bytes()
    if data[:4] == _GLB_MAGIC:
        if len(data) < 20:
            raise ValueError(f"{path}: truncated binary glTF ({len(data)} bytes)")
        (version,), (length, kind) = struct.unpack_from("<I", data, 4), struct.unpack_from("<II", data, 12)
        if version != 2 or kind != _GLB_JSON or 20 + length > len(data):
            raise ValueError(f"{path}: not a binary glTF 2.0 file with a JSON first chunk (version {version}, "
                             f"chunk type {kind:#x}, chunk of {length} bytes in {len(data)})")
        data = data[20:20 + length]
    try:
        gltf = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: neither binary glTF nor glTF JSON ({err})") from None
    if not isinstance(gltf, dict):
        raise ValueError(f"{path}: glTF JSON must be an object")
    return gltf
