"""Timeline edits as worker jobs: regenerate frame ranges of the armature's animation (inpaint), fill the gap
between two clips (inbetween), and key a prompt timeline as one action (sequence).

The animation is sampled at the scene's frames (pose_sampling), carried into the models' space and resampled
to 20 fps for the worker; the answer comes back to the scene's frames. The worker fades each range in from
the motion it continues at 20 fps (core.blending); resampling to the scene's rate blurs that, so the fade is
applied again here against the animation's own frames at the scene's rate (a clip carried on at its last
velocity in a gap): the keys next to a range go on at their own speed whatever the model made. The range is
then solved onto the rig and spliced into the action (action_splice): keys outside it stay as they were, in a
copy of the action by default.

Feet are planted (foot_lock, as generate does) in the edited motion before the fade: a pin sits in the middle
of the span its contact covers and the legs re-bend to it, so locking after the fade would pull the frames
next to a seam off the animation; faded last, the seams join the animation exactly as without locking, and the
feet stand still inside the range once the fade is over. The ground they are kept on is the lowest the
animation's feet go, not the rig's rest: an animation may stand anywhere.

A generated Rigify rig is read through its ORG bones (the deforming skeleton, under IK or FK) and keyed like
generate keys it (rigify.Keyer: solved on the proxy, baked onto the FK controls with the limbs switched to FK
at each range's ends) into a temporary action whose range is then spliced in."""
import math
import re
from dataclasses import dataclass

import bpy
import numpy as np
from bpy_extras import anim_utils

from . import action_splice, jobs, keying, rigify
from ._core import blending, footlock, limits, solver, timebase
from .jobs import GenerationError
from .pose_sampling import evaluated_joints, motion_placement, to_motion_space

MIN_RANGE_FRAMES = 4  # scene frames of the shortest range or gap
RANGE_CONTEXT_SECONDS = limits.MAX_FRAMES / timebase.FPS  # animation sampled on each side: a model window
GAP_CONTEXT_SECONDS = 2.0  # of each clip around a gap


@dataclass
class EditSettings:
    """A regenerate or fill-gap request (the operator's properties); ranges are (first, last) scene frames, both
    included."""
    prompt: str
    ranges: list[tuple[int, int]]
    in_place: bool
    seed: int
    guidance: float
    steps: int
    foot_lock: bool = True


@dataclass
class SequenceSettings:
    """A prompt timeline: (prompt, seconds) segments played in order."""
    segments: list[tuple[str, float]]
    seed: int
    guidance: float
    steps: int
    start_frame: int
    in_place: bool
    foot_lock: bool = True


def parse_ranges(text: str) -> list[tuple[int, int]]:
    """'10-30, 50-70' -> [(10, 30), (50, 70)]."""
    ranges = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = re.fullmatch(r"(-?\d+)\s*-\s*(-?\d+)", part)
        if match is None:
            raise GenerationError(f"Ranges are first-last frames separated by commas, as in '10-30, 50-70'; "
                                  f"'{part}' is not one")
        ranges.append((int(match[1]), int(match[2])))
    return ranges


def checked_scene_ranges(ranges, first: int, last: int, where: str) -> list[timebase.SceneRange]:
    """(first, last) scene frames -> sorted SceneRanges, touching ones merged. Refuses a range reversed, shorter
    than MIN_RANGE_FRAMES, outside first..last (`where` says whose frames those are) or overlapping another."""
    if not ranges:
        raise GenerationError("Give the frames to regenerate (first and last frame)")
    for f0, f1 in ranges:
        if f1 < f0:
            raise GenerationError(f"Frames {f0}-{f1}: the last frame comes before the first")
        if f1 - f0 + 1 < MIN_RANGE_FRAMES:
            raise GenerationError(f"Frames {f0}-{f1} are {f1 - f0 + 1} frame(s); a range needs at least "
                                  f"{MIN_RANGE_FRAMES}")
        if f0 < first or f1 > last:
            raise GenerationError(f"Frames {f0}-{f1} are outside {where}, keyed from frame {first} to {last}")
    merged = []
    for scene_range in sorted(timebase.SceneRange(*pair) for pair in ranges):
        if merged and scene_range.first <= merged[-1].last:
            raise GenerationError(f"Frames {merged[-1]} and {scene_range} overlap; give each frame once")
        if merged and scene_range.first == merged[-1].last + 1:
            merged[-1] = timebase.SceneRange(merged[-1].first, scene_range.last)
        else:
            merged.append(scene_range)
    return merged


def _action_keys(ob):
    """(action, frames of every key of its slot) of the armature's current animation, or None."""
    animation = ob.animation_data
    if animation is None or animation.action is None:
        return None
    channelbag = anim_utils.animdata_get_channelbag_for_assigned_slot(animation)
    frames = [action_splice.keys_in_range(curve, -math.inf, math.inf)["co"][:, 0]
              for curve in (channelbag.fcurves if channelbag is not None else ())]
    frames = np.concatenate(frames) if frames else np.empty(0)
    return (animation.action, frames) if len(frames) else None


def _check_editable(model_length: int, model_ranges, scene_ranges: list[timebase.SceneRange], fps: float) -> None:
    """The model's limits on a source of `model_length` model frames and on each range (the model frames
    [start, stop) it regenerates, the scene range they stand for)."""
    if model_length < limits.MIN_FRAMES:
        raise GenerationError(f"Too little animation to edit: the model needs at least "
                              f"{limits.MIN_FRAMES / timebase.FPS:g} s around and in the range")
    if model_length > limits.MAX_FRAMES:
        for (start, stop), scene_range in zip(model_ranges, scene_ranges):
            if stop - start > limits.MAX_RANGE_FRAMES:
                raise GenerationError(
                    f"Frames {scene_range} last {scene_range.frames / fps:.1f} s; the model regenerates at most "
                    f"{limits.MAX_RANGE_FRAMES / timebase.FPS:g} s at a time: split the range")


class _Edit(jobs.WorkerJob):
    """What regenerating and gap filling share: the armature sampled in the models' space, and the edited frames,
    feet planted, solved and spliced into the animation's action (or a copy of it); both through rigify.Keyer's
    rig (a generated Rigify rig's proxy)."""

    def __init__(self, context, settings: EditSettings):
        super().__init__(context, settings)
        self.fps = keying.scene_fps(context.scene)
        self.keyer = rigify.keyer(context.scene.objects[self.object_name], self.rig)
        self.placement = motion_placement(self.keyer.solved)

    def _sample(self, context, ob, frames) -> np.ndarray:
        """(F, 22, 3) the armature's joints at these scene frames, in the models' space."""
        return to_motion_space(evaluated_joints(context.scene, ob, self.keyer.solved, frames), self.placement)

    def _ground(self, joints: np.ndarray) -> float:
        """The lowest the sampled animation's feet go: where planted feet are kept."""
        return float(joints[:, solver.foot_joints(self.keyer.solved), footlock.UP].min())

    def _planted(self, joints: np.ndarray, contacts: np.ndarray) -> np.ndarray:
        """(F, 22, 3) edited joints at the scene's rate -> the rig's own joints (solved onto it and read back: its
        proportions slide feet that stand still in the motion) with the feet planted during the (F, 4) contacts,
        re-checked on them (core.footlock.lock_feet), and none below the lowest the sampled animation's feet go
        (its ground, which need not be the rig's rest floor); as they are when foot_lock is off."""
        if not self.settings.foot_lock:
            return joints
        rig = self.keyer.solved
        own = to_motion_space(solver.mapped_joint_positions(rig, self._solve(joints)), self.placement)
        own = np.where(rig.bone_map.weights.any(axis=1)[:, None], own, joints)  # joints without a bone: as made
        return footlock.lock_feet(own, contacts, self.fps, floor=self.floor)

    def _solve(self, joints: np.ndarray) -> solver.RigPose:
        return solver.solve(self.keyer.solved, joints, solver.SolveOptions(placement=self.placement))

    def _splice(self, context, ob, pose: solver.RigPose, first_frame: int, ranges, name: str) -> bpy.types.Action:
        """Key `pose` (frames from first_frame on) into `ranges` of the armature's action, or of a copy named
        `name` that becomes its new candidate -> the action keyed."""
        animation = ob.animation_data
        action = animation.action if animation is not None else None
        if action is None or action.name != self.action_name:
            raise GenerationError(f"The animation of '{ob.name}' changed meanwhile (it was '{self.action_name}'); "
                                  "nothing was changed")
        (keys,) = self.keyer.key(context, ob, [pose], ["MoMask keys to splice"], first_frame,
                                 switch_frames=[frame for r in ranges for frame in (r.first, r.last)])
        try:
            if not self.settings.in_place:
                action = action.copy()
                action.name = name
            target = anim_utils.action_ensure_channelbag_for_slot(action,
                                                                  action.slots[animation.action_slot.identifier])
            for r in ranges:
                action_splice.splice(target, anim_utils.action_get_channelbag_for_slot(keys, keys.slots[0]), r.first,
                                     r.last, ob)
        finally:
            bpy.data.actions.remove(keys)
        if not self.settings.in_place:
            jobs.add_candidates(ob, [action])
        return action

    def _name(self, result, what: str) -> str:
        """`what` followed by the prompt (if any) and the seed: the name of an action made."""
        prompt = self.settings.prompt.strip()[:jobs.PROMPT_IN_NAME]
        return what + (f" '{prompt}'" if prompt else "") + f" (seed {result['params']['seed']})"

    def _request(self) -> dict:
        s = self.settings
        return dict(prompt=s.prompt.strip(), candidates=1, seed=s.seed, steps=s.steps, cond_scale=s.guidance)


class RangeRegeneration(_Edit):
    """Regenerate frame ranges of the armature's action under a prompt (worker job `inpaint`)."""
    kind = "inpaint"

    def __init__(self, context, settings: EditSettings):
        super().__init__(context, settings)
        ob = context.scene.objects[self.object_name]
        animation = _action_keys(ob)
        if animation is None:
            raise GenerationError(f"'{ob.name}' has no animation to edit: key it, import an action or generate one")
        action, keyed = animation
        first, last = math.ceil(keyed.min()), math.floor(keyed.max())
        self.action_name = action.name
        self.ranges = checked_scene_ranges(settings.ranges, first, last, f"the action '{action.name}'")
        self.seams = [(r.first > first, r.last < last) for r in self.ranges]  # animation before, after
        context_frames = math.ceil(RANGE_CONTEXT_SECONDS * self.fps)
        self.first_frame = max(first, self.ranges[0].first - context_frames)  # model frame 0 of the source
        frames = range(self.first_frame,
                       min(last, self.ranges[-1].last + context_frames) + math.ceil(self.fps / timebase.FPS) + 1)
        self.model_ranges = []  # the model frames [start, stop) inside each range (its edges are faded anyway)
        for r in self.ranges:
            start, stop = r.model_range(self.first_frame, self.fps)
            if self.model_ranges and start <= self.model_ranges[-1][1]:  # no frame of the animation between them
                raise GenerationError(f"Frames {self.ranges[len(self.model_ranges) - 1]} and {r} are too close to "
                                      "regenerate apart: leave more frames between them or join them")
            self.model_ranges.append((start, stop))
        _check_editable(timebase.resampled_count(len(frames), timebase.FPS, self.fps), self.model_ranges,
                        self.ranges, self.fps)
        self.source = self._sample(context, ob, frames)  # at the scene's frames
        self.floor = self._ground(self.source)

    def request(self) -> dict:
        source = timebase.resample(self.source, timebase.FPS, self.fps).astype(np.float32)
        return dict(self._request(), source=source, ranges=[list(pair) for pair in self.model_ranges])

    def keyed_joints(self, result) -> np.ndarray:
        """(F, 22, 3) the joints (models' space) keyed from the first range's first frame to the last range's last
        frame: the worker's edit at the scene's rate, feet planted, faded in from and out into the animation at
        each range's seams, and the animation itself between ranges."""
        motion, count = result["motions"][0], len(self.source)
        window = slice(self.ranges[0].first - self.first_frame, self.ranges[-1].last - self.first_frame + 1)
        edited = self._planted(timebase.resample(motion["joints"], self.fps)[:count][window],
                               keying.contacts_at_fps(motion["contacts"], self.fps)[:count][window])
        source = self.source[window]
        joints = source.copy()
        blend = blending.seam_fade_frames(self.fps)
        for r, (before, after) in zip(self.ranges, self.seams):
            span = slice(r.first - self.ranges[0].first, r.last - self.ranges[0].first + 1)
            joints[span] = blending.fade(edited[span], source[span] if before else None,
                                         source[span] if after else None, blend)
        return joints

    def finish(self, context) -> list[bpy.types.Action]:
        """Splice the regenerated ranges into the action (or a copy, the armature's new candidate)."""
        ob, _, result = self.result(context)
        pose = self._solve(self.keyed_joints(result))
        ranges = ", ".join(map(str, self.ranges))
        return [self._splice(context, ob, pose, self.ranges[0].first, self.ranges,
                             self._name(result, f"{self.action_name}, frames {ranges}"))]

    def summary(self, actions) -> str:
        return f"MoMask: regenerated frames {', '.join(map(str, self.ranges))} in '{actions[0].name}'"


class GapFill(_Edit):
    """The in-between of a gap between two clips (keys of the action, or NLA strips) under an optional prompt
    (worker job `inbetween`): from the pose and velocity before the gap to the pose after it."""
    kind = "inbetween"

    def __init__(self, context, settings: EditSettings):
        super().__init__(context, settings)
        ob = context.scene.objects[self.object_name]
        ((g0, g1),) = settings.ranges
        if g1 < g0 or g1 - g0 + 1 < MIN_RANGE_FRAMES:
            raise GenerationError(f"Frames {g0}-{g1}: a gap to fill is at least {MIN_RANGE_FRAMES} frames, "
                                  "first frame before last")
        self.gap = timebase.SceneRange(g0, g1)
        # the clips are keys of this action, or NLA strips (action_name None)
        clip_start, clip_end, self.action_name = self._clips(ob, g0, g1)
        context_frames = math.ceil(GAP_CONTEXT_SECONDS * self.fps)
        before = range(max(clip_start, g0 - context_frames), g0)
        after = range(g1 + 1, min(clip_end, g1 + context_frames) + 1)
        self.gap_model_frames = self.gap.model_frames_inside(self.fps)
        self.before_model_frames = timebase.resampled_count(len(before), timebase.FPS, self.fps)
        after_model_frames = timebase.resampled_count(len(after), timebase.FPS, self.fps)
        _check_editable(self.before_model_frames + self.gap_model_frames + after_model_frames,
                        [(0, self.gap_model_frames)], [self.gap], self.fps)
        joints = self._sample(context, ob, [*before, *after])
        self.before, self.after = joints[:len(before)], joints[len(before):]
        self.floor = self._ground(joints)

    @staticmethod
    def _clips(ob, g0: int, g1: int) -> tuple[int, int, str | None]:
        """(first frame of the clip before the gap, last of the clip after it, the name of the action they are keys
        of, or None for NLA strips)."""
        keys = _action_keys(ob)
        what = f"Frames {g0}-{g1} are no gap between two clips on '{ob.name}'"
        if keys is not None:
            action, frames = keys
            inside = frames[(frames >= g0) & (frames <= g1)]
            if len(inside):
                raise GenerationError(f"{what}: its action '{action.name}' has keys at frame {inside.min():g}")
            if not (frames < g0).any() or not (frames > g1).any():
                raise GenerationError(f"{what}: its action '{action.name}' is keyed from frame {frames.min():g} to "
                                      f"{frames.max():g}, not on both sides")
            return math.ceil(frames.min()), math.floor(frames.max()), action.name
        strips = [s for track in (ob.animation_data.nla_tracks if ob.animation_data else ()) if not track.mute
                  for s in track.strips if not s.mute]
        if not strips:
            raise GenerationError(f"'{ob.name}' has no animation: a gap lies between keys of its action or between "
                                  "two NLA strips")
        before = [s for s in strips if s.frame_end < g0]
        after = [s for s in strips if s.frame_start > g1]
        inside = [s for s in strips if s.frame_start <= g1 and s.frame_end >= g0]
        if inside or not before or not after:
            raise GenerationError(f"{what}: the NLA strip '{inside[0].name}' plays there" if inside else
                                  f"{what}: no NLA strip ends before frame {g0} and another starts after {g1}")
        return (math.ceil(max(before, key=lambda s: s.frame_end).frame_start),
                math.floor(min(after, key=lambda s: s.frame_start).frame_end), None)

    def request(self) -> dict:
        before = timebase.resample(self.before[::-1], timebase.FPS, self.fps)[::-1]  # ends at the gap
        after = timebase.resample(self.after, timebase.FPS, self.fps)
        return dict(self._request(), before=before.astype(np.float32), after=after.astype(np.float32),
                    gap_frames=self.gap_model_frames)

    def finish(self, context) -> list[bpy.types.Action]:
        """Key the in-between into the action's gap (or a copy's), or as an NLA strip in a track of its own."""
        ob, _, result = self.result(context)
        g0, g1, frames = self.gap.first, self.gap.last, self.gap.frames
        # the fill with a frame of the clips on either side, played at the rate that spans the gap's scene frames
        motion = result["motions"][0]
        span = slice(self.before_model_frames - 1, self.before_model_frames + self.gap_model_frames + 1)
        rate = self.gap.fill_rate(self.gap_model_frames)
        edited = self._planted(timebase.resample(motion["joints"][span], rate)[1:frames + 1],
                               keying.contacts_at_fps(motion["contacts"][span], rate)[1:frames + 1])
        lead_in, lead_out = blending.carried_on(self.before, self.after, frames)
        pose = self._solve(blending.fade(edited, lead_in, lead_out, blending.seam_fade_frames(self.fps)))
        if self.action_name is not None:
            return [self._splice(context, ob, pose, g0, [self.gap],
                                 self._name(result, f"{self.action_name}, in-between {g0}-{g1}"))]
        (action,) = self.keyer.key(context, ob, [pose], [self._name(result, f"In-between {g0}-{g1}")], g0)
        track = ob.animation_data.nla_tracks.new()
        track.name = "MoMask in-between"
        strip = track.strips.new(action.name, g0, action)
        strip.extrapolation = "NOTHING"  # plays in the gap only
        return [action]

    def summary(self, actions) -> str:
        where = "an NLA strip of its own" if self.action_name is None else f"'{actions[0].name}'"
        return f"MoMask: filled frames {self.gap} with an in-between, in {where}"


class PromptSequence(jobs.WorkerJob):
    """A prompt timeline as one continuous motion (worker job `sequence`), keyed as one action with a marker at
    each segment's start named after its prompt."""
    kind = "sequence"

    def __init__(self, context, settings: SequenceSettings):
        if not settings.segments:
            raise GenerationError("The prompt timeline is empty: add segments (a prompt and its duration)")
        self.frames = []
        for i, (prompt, seconds) in enumerate(settings.segments, start=1):
            if not prompt.strip():
                raise GenerationError(f"Segment {i} of the prompt timeline has no prompt")
            self.frames.append(round(seconds * timebase.FPS))
            if self.frames[-1] < limits.MIN_FRAMES:
                raise GenerationError(f"Segment {i} ('{prompt.strip()}') lasts {seconds:g} s; a segment needs at "
                                      f"least {limits.MIN_FRAMES / timebase.FPS:g} s")
        super().__init__(context, settings)

    def request(self) -> dict:
        s = self.settings
        return dict(segments=[[prompt.strip(), frames] for (prompt, _), frames in zip(s.segments, self.frames)],
                    candidates=1, seed=s.seed, steps=s.steps, cond_scale=s.guidance)

    def finish(self, context) -> list[bpy.types.Action]:
        """Key the motion as a new action (the armature's new candidate) and mark where each segment starts."""
        ob, rig, result = self.result(context)
        s, motion = self.settings, result["motions"][0]
        prompts = [prompt.strip() for prompt, _ in s.segments]
        name = " > ".join(prompts)[:jobs.PROMPT_IN_NAME] + f" (seed {result['params']['seed']})"
        (action,) = jobs.key_candidates(
            context, ob, rig, [(motion["joints"], motion["contacts"])], [name], s.start_frame,
            solver.SolveOptions(motion="in place" if s.in_place else "root motion"), s.foot_lock)
        fps = keying.scene_fps(context.scene)
        for prompt, start in zip(prompts, motion["segment_starts"]):
            frame = s.start_frame + round(timebase.to_scene_frames(start, fps))
            context.scene.timeline_markers.new(prompt, frame=frame)
        return [action]

    def summary(self, actions) -> str:
        return (f"MoMask: keyed the prompt timeline ({len(self.frames)} segments, "
                f"{sum(self.frames) / timebase.FPS:g} s) as '{actions[0].name}'")
