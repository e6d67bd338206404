"""Worker jobs from request to keys, in steps the operator drives: checked input first (nothing changes when it
is wrong), then a worker job polled without blocking, then the result keyed in one go. WorkerJob holds the
worker path every request shares; Generation is prompt -> candidates (timeline_jobs.py has the edits).

The worker client is kept for the session (warm model, one process) and replaced when the preferences name
another command; a worker that died is restarted by the client on the next request."""
from dataclasses import dataclass

import bpy

from . import keying, preferences, rigify
from ._core import bonemap, limits, solver
from .armature_reading import read_rig
from .worker_client import EXTENSION_ROOT, WorkerClient, WorkerError

PROMPT_IN_NAME = 40  # characters of the prompt in an action's name

_client: WorkerClient | None = None


class GenerationError(Exception):
    """A generation that cannot run or did not finish; the message is for the user. Raised before anything
    changed."""


def client(command: list[str]) -> WorkerClient:
    """The session's worker client for `command` (started on its first request, then kept warm)."""
    global _client
    if _client is None or _client.command != command:
        shutdown()
        _client = WorkerClient(command, cwd=EXTENSION_ROOT)
    return _client


def shutdown() -> None:
    """Stop the session's worker (unregister, or a changed command)."""
    global _client
    if _client is not None:
        _client.shutdown()
        _client = None


@dataclass
class Settings:
    """What the user asked for (the operator's properties)."""
    prompt: str
    seconds: float
    seed: int
    candidates: int
    guidance: float
    steps: int
    start_frame: int
    in_place: bool
    foot_lock: bool = True
    travel_on: str = "PELVIS"  # the bone carrying the horizontal motion: PELVIS or ROOT (the bone above it)


def armature_problem(ob) -> str | None:
    """Why `ob` (the active object) cannot be animated now, without reading its bones; None if it can be."""
    if ob is None or ob.type != "ARMATURE":
        what = f"the active object '{ob.name}' is a {ob.type.lower()}" if ob is not None else "nothing is active"
        return f"Select an armature to animate ({what}); or add one with Add MoMask Rig"
    if ob.mode == "EDIT":
        return f"'{ob.name}' is in edit mode: leave edit mode to generate"
    return None


def target_armature(context):
    """(the active object, its rig description) if it is an armature MoMask can animate (its bones map onto the
    22 joints)."""
    ob = context.active_object
    problem = armature_problem(ob)
    if problem is not None:
        raise GenerationError(problem)
    try:
        return ob, read_rig(ob)
    except bonemap.UnmappableSkeletonError as err:
        raise GenerationError(f"'{ob.name}' cannot be animated: {err}") from None
    except ValueError as err:
        raise GenerationError(f"'{ob.name}': {err}") from None


def _frames(seconds: float) -> int | None:
    try:
        return limits.requested_frames(seconds)
    except ValueError as err:
        raise GenerationError(f"Duration {seconds:g} s is out of range: {err}") from None


def _worker_message(err) -> str:
    message = str(err)
    if "No module named" in message:
        message += f". The worker's Python lacks MoMask's packages: {preferences.INSTALL_HINT}"
    return f"MoMask worker: {message}"


class WorkerJob:
    """One worker request for the active armature, in the steps an operator drives: made (the armature and the
    worker checked: GenerationError before anything changed), started, polled without blocking or waited on,
    then finished (the result put on the armature). Subclasses name the job `kind` and give request(),
    finish() and summary(); `counts` names the settings that must be at least 1."""
    kind = ""
    counts = ("steps",)

    def __init__(self, context, settings):
        """settings: the request, with the fields `counts` names. Keeps the armature's rig as read now (self.rig;
        result() reads it again)."""
        values = [getattr(settings, name) for name in self.counts]
        if min(values) < 1:
            raise GenerationError(f"{' and '.join(self.counts).capitalize()} must be at least 1 (got "
                                  f"{' and '.join(map(str, values))})")
        self.settings = settings
        ob, self.rig = target_armature(context)
        self.object_name = ob.name
        prefs = preferences.get(context)
        try:
            self.command = preferences.worker_command(prefs)
            self.model = preferences.selected_model(prefs)
            if not prefs.worker_command.strip():  # a local worker: its model must be here
                preferences.check_model_dir(self.model)
        except (preferences.WorkerUnavailable, preferences.ModelUnavailable) as err:
            raise GenerationError(str(err)) from None
        self.job = None

    def request(self) -> dict:
        """The job's parameters besides the model."""
        raise NotImplementedError

    def start(self):
        """Send the job to the (warm or starting) worker; raises GenerationError if the worker cannot take it."""
        try:
            self.job = client(self.command).request(self.kind, model=str(self.model), **self.request())
        except WorkerError as err:
            raise GenerationError(_worker_message(err)) from None
        return self

    def poll(self) -> bool:
        """Take the job's new events (never blocks) -> whether it ended."""
        self.job.poll()
        return self.job.done

    def cancel(self):
        self.job.cancel()

    def wait(self):
        """Block until the job ends (scripts, EXEC)."""
        try:
            self.job.wait()
        except WorkerError:
            pass  # finish() reports it

    def result(self, context):
        """(armature, its rig re-read, the job's payload) once the job ended. Raises GenerationError for a failed
        or cancelled job, or an armature gone or changed meanwhile (then nothing changed)."""
        job = self.job
        if job.cancelled:
            raise GenerationError("Generation cancelled; nothing was changed")
        if job.error is not None:
            raise GenerationError(_worker_message(job.error))
        ob = context.scene.objects.get(self.object_name)
        if ob is None or ob.type != "ARMATURE":
            raise GenerationError(f"The armature '{self.object_name}' is gone; nothing was keyed")
        try:
            rig = read_rig(ob)
        except ValueError as err:
            raise GenerationError(f"'{ob.name}' changed while generating: {err}") from None
        return ob, rig, job.result

    def finish(self, context) -> list[bpy.types.Action]:
        """Put the result on the armature -> the actions made or changed (raises GenerationError as result())."""
        raise NotImplementedError

    def summary(self, actions) -> str:
        """The report of a finished job."""
        raise NotImplementedError


class Generation(WorkerJob):
    """Prompt -> candidates, each keyed as its own action."""
    kind = "generate"
    counts = ("candidates", "steps")

    def __init__(self, context, settings: Settings):
        if not settings.prompt.strip():
            raise GenerationError("Type a prompt that describes the motion")
        self.frames = _frames(settings.seconds)
        super().__init__(context, settings)

    def request(self) -> dict:
        s = self.settings
        return dict(prompts=[s.prompt.strip()], lengths=None if self.frames is None else [self.frames],
                    candidates=s.candidates, seed=s.seed, steps=s.steps, cond_scale=s.guidance)

    def finish(self, context) -> list[bpy.types.Action]:
        """Key every candidate as its own action on the armature and switch it to the first one; the panel's
        settings keep what the prompt was understood as."""
        ob, rig, result = self.result(context)
        settings = getattr(context.scene, "momask", None)
        if settings is not None:
            settings.understood, settings.understood_far = understood_text(result.get("understood", [[]])[0])
        s, seed, motions = self.settings, result["params"]["seed"], result["motions"][0]
        names = [f"{s.prompt.strip()[:PROMPT_IN_NAME]} (seed {seed + k}" + (
            f", {k + 1} of {len(motions)})" if len(motions) > 1 else ")") for k in range(len(motions))]
        options = solver.SolveOptions(motion="in place" if s.in_place else "root motion",
                                      horizontal_on=s.travel_on.lower())
        return key_candidates(context, ob, rig, [(m["joints"], m.get("contacts")) for m in motions], names,
                              s.start_frame, options, s.foot_lock)

    def summary(self, actions) -> str:
        return f"MoMask: keyed {len(actions)} candidate(s): {', '.join(a.name for a in actions)}"


def understood_text(parts: list[dict]) -> tuple[str, bool]:
    """(one line for the panel, whether a part is far from every known action) from a generate result's
    "understood" entry: the nearest known actions of each part of the prompt, with their similarity."""
    if not parts or not parts[0]["closest"]:
        return "", False
    def nearest(part):
        return ", ".join(f"{name} {similarity:.2f}" for name, similarity in part["closest"][:2])
    far = any(part["far"] for part in parts)
    if len(parts) == 1:
        text = nearest(parts[0])
    else:
        text = "  |  ".join(f"{k + 1}: {nearest(part)}" for k, part in enumerate(parts))
    return ("Not a known action, nearest: " if far else "Understood as: ") + text, far


def key_candidates(context, ob, rig, motions, names: list[str], start_frame: int, options: solver.SolveOptions,
                   foot_lock: bool) -> list[bpy.types.Action]:
    """Key each (joints, contacts or None) motion at timebase.FPS as a new action named after `names` from
    start_frame on the armature (read_rig gave `rig`), listed among its candidates, the first one assigned. Every
    motion is solved at the scene's rate before the first key is written; GenerationError when one cannot be."""
    keyer = rigify.keyer(ob, rig)  # a generated Rigify rig: solved on a proxy, baked onto its controls
    fps = keying.scene_fps(context.scene)
    try:
        poses = [keying.solve_at_fps(keyer.solved, joints, fps, options, foot_lock=foot_lock, contacts=contacts)
                 for joints, contacts in motions]
    except ValueError as err:
        raise GenerationError(f"The generated motion cannot be put on '{ob.name}': {err}") from None
    actions = keyer.key(context, ob, poses, names, start_frame)
    add_candidates(ob, actions)
    return actions


def add_candidates(ob, actions) -> None:
    """List the new actions among the armature's candidates (after the action it had, which stays listed)
    and switch it to the first new one."""
    previous = ob.animation_data.action if ob.animation_data else None
    listed = {item.action for item in ob.momask_candidates}
    if previous is not None and previous not in listed:
        ob.momask_candidates.add().action = previous
    for action in actions:
        ob.momask_candidates.add().action = action
    ob.momask_candidate_index = len(ob.momask_candidates) - len(actions)


def switch_candidate(ob, _context=None) -> None:
    """Update callback of Object.momask_candidate_index: animate the armature with the chosen candidate."""
    if 0 <= ob.momask_candidate_index < len(ob.momask_candidates):
        action = ob.momask_candidates[ob.momask_candidate_index].action
        if action is not None:
            keying.assign_action(ob, action)
