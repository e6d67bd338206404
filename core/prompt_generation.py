"""One user prompt -> motions, the way the command line and the worker take it: a chained prompt ("walks
forward, then bows") is split into its parts and made as one continuous motion by the sequence generator,
any other prompt is one generation; either way the caller learns which known actions each part was
understood as (core.known_actions), so it can show them and warn about prompts the model does not know."""
import secrets
from dataclasses import dataclass

import numpy as np
import torch

from .known_actions import FAR_SIMILARITY, KnownActions
from .limits import MIN_FRAMES
from .prompt_sequence import split_sequence
from .protocol import BadRequest
from .sampling import candidate_generators, generate, sample_token_lengths
from .sequence import generate_long


@dataclass(frozen=True)
class Understood:
    """One part of a prompt and the known actions nearest to it (empty for a model that lists none)."""
    prompt: str
    closest: list[tuple[str, float]]

    @property
    def far(self) -> bool:
        return bool(self.closest) and self.closest[0][1] < FAR_SIMILARITY


def understand(parts: list[str], text_encoder, known: KnownActions | None) -> list[Understood]:
    """What each part of a prompt was understood as."""
    if known is None:
        return [Understood(p, []) for p in parts]
    embeddings = text_encoder.encode(parts).float().cpu().numpy()
    return [Understood(p, known.closest(e)) for p, e in zip(parts, embeddings)]


def part_frames(models, text_encoder, parts: list[str], frames: int | None, seed: int) -> list[int]:
    """Frames per part: `frames` (the whole motion's) shared out evenly, or each part's own length drawn from
    the length estimator with `seed`."""
    if frames is not None:
        shares = np.diff(np.round(np.linspace(0, max(frames, MIN_FRAMES * len(parts)), len(parts) + 1)))
        return [int(f) for f in shares]
    with torch.inference_mode():
        cond = text_encoder.encode(parts).to(next(models.length.parameters()).device, torch.float32)
        generators = candidate_generators(cond.device, seed, 1) * len(parts)
        tokens = sample_token_lengths(models.length, cond, models.rvq.frames_per_token, generators)
    return [int(t) * models.rvq.frames_per_token for t in tokens.tolist()]


def generate_prompt(models, text_encoder, prompt: str, frames: int | None, *, candidates: int = 1, seed: int = 0,
                    known: KnownActions | None = None, **options) -> tuple[list, list[Understood]]:
    """(candidate motions, what each part was understood as) for one prompt; `frames` None lets the model
    choose the length; options go to generate / generate_long (steps, cond_scale, progress, cancel)."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise BadRequest("generate: a prompt is empty; describe the motion in words")
    parts = split_sequence(prompt)
    understood = understand(parts, text_encoder, known)
    if len(parts) == 1:
        [motions] = generate(models, text_encoder, parts, None if frames is None else [frames],
                             candidates=candidates, seed=seed, **options)
        return motions, understood
    segments = list(zip(parts, part_frames(models, text_encoder, parts, frames, seed)))
    return generate_long(models, text_encoder, segments, candidates=candidates, seed=seed, **options), understood


def generate_prompts(models, text_encoder, prompts: list[str], lengths: list[int] | None = None, candidates: int = 1,
                     seed: int | None = None, steps: int = 10, cond_scale: float = 4.0, res_cond_scale: float = 5.0,
                     temperature: float = 1.0, topk: float = 0.9, progress=None, cancel=None,
                     known: KnownActions | None = None) -> tuple[list[list], list[list[Understood]]]:
    """The worker's generate job: generate_prompt for each prompt -> ([prompt][candidate] motions, [prompt][part]
    understood). lengths: frames per prompt (None: the model chooses); keywords as core.sampling.generate's."""
    if isinstance(prompts, str) or not isinstance(prompts, (list, tuple)) or not prompts:
        raise BadRequest("generate: expected a non-empty list of prompt strings")
    if lengths is not None and (not isinstance(lengths, (list, tuple)) or len(lengths) != len(prompts)):
        raise BadRequest(f"generate: give one length per prompt ({len(prompts)}), or none")
    for k, prompt in enumerate(prompts):
        if not isinstance(prompt, str) or not prompt.strip():
            raise BadRequest(f"generate: prompt {k} is empty; describe the motion in words")
    seed = secrets.randbelow(2 ** 31) if seed is None else seed
    results = [generate_prompt(models, text_encoder, prompt, None if lengths is None else lengths[k],
                               candidates=candidates, seed=seed, known=known, steps=steps, cond_scale=cond_scale,
                               res_cond_scale=res_cond_scale, temperature=temperature, topk=topk, progress=progress,
                               cancel=cancel)
               for k, prompt in enumerate(prompts)]
    return [motions for motions, _ in results], [understood for _, understood in results]
