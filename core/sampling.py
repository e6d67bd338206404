"""Text -> motion with MoMask (docs/momask.md, "Pipeline"): masked decoding of the base tokens, one pass per
residual layer, RVQ decoding, de-normalisation, joints.

`masked_decode` and `residual_decode` also serve inpainting (docs/momask.md, "Inpainting"): positions outside `editable`
keep the source's tokens. Classifier-free guidance runs the conditional and unconditional halves as one batch, and all
prompts and candidates of a request share that batch. Candidate k (from 0) of a request with seed s draws all its
randomness from its own torch.Generator seeded s + k, so it is the motion a one-candidate request with seed s + k
makes (`candidate_generators`)."""
import math
import secrets
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .features import foot_contacts, recover_from_ric
from .limits import MAX_FRAMES, MIN_FRAMES
from .models import MoMaskModels
from .protocol import BadRequest

KEPT_SCORE = 1e5  # confidence of a token that must never be re-masked (pads, kept source tokens)


class GenerationCancelled(Exception):
    """The caller's `cancel()` returned True between two steps."""


@dataclass
class GeneratedMotion:
    features: np.ndarray  # (T, 263) float32, de-normalised HumanML3D features
    joints: np.ndarray  # (T, 22, 3) float32, metres, y up
    contacts: np.ndarray  # (T, 4) bool, feet on the ground (l_ankle, l_foot, r_ankle, r_foot)
    tokens: np.ndarray  # (ceil(T / 4), Q) int64 code ids, -1 = no code in that layer
    length: int  # T, frames at 20 fps


def mask_counts(steps: int, edit_len: torch.Tensor) -> torch.Tensor:
    """(steps, B) how many of each row's editable tokens are (re-)masked at each step: cosine schedule,
    >= 1, computed in float32 like momask-codes (T=10, m=49: 49 48 46 42 38 31 24 17 9 1)."""
    t = torch.linspace(0, 1, steps, device=edit_len.device)
    counts = torch.round(torch.cos(t * math.pi * 0.5)[:, None] * edit_len).clamp(min=1)
    return torch.minimum(counts, edit_len).long()


Generators = torch.Generator | list[torch.Generator] | None  # one for the batch, or one per batch row


def candidate_generators(device, seed: int | None, candidates: int) -> list[torch.Generator]:
    """One generator per candidate, seeded seed, seed + 1, ... (seed None: a random one)."""
    if seed is None:
        seed = secrets.randbelow(2 ** 31)
    return [torch.Generator(device=device).manual_seed(seed + k) for k in range(candidates)]


def _exponential(like: torch.Tensor, generator: Generators, rows: torch.Tensor | None) -> torch.Tensor:
    """Exponential(1) noise shaped like `like` (k, ...). With one generator per batch row, `rows` (k,) names the
    batch row of each of `like`'s rows and every batch row's noise comes from its own generator, drawn row by row in
    batch order: what a row draws does not depend on the other rows of its batch."""
    if not isinstance(generator, list):
        return torch.empty_like(like).exponential_(generator=generator)
    noise = torch.empty_like(like)
    for row in rows.unique().tolist():
        where = rows == row
        noise[where] = torch.empty_like(like[where]).exponential_(generator=generator[row])
    return noise


def sample_top_k(logits: torch.Tensor, topk: float, temperature: float, generator: Generators,
                 rows: torch.Tensor | None = None):
    """Sample from softmax(logits / temperature) restricted to the ceil((1 - topk) * V) largest logits
    (topk 0.9 keeps 52 of 512), by Gumbel-max over those; temperature 0 takes the largest. `rows` (k,): the
    batch row of each logits row, needed with a generator per batch row."""
    top, index = logits.topk(math.ceil((1 - topk) * logits.shape[-1]), dim=-1)
    if temperature > 0:
        gumbel = -_exponential(top, generator, rows).log()
        top = top / temperature + gumbel
    return index.gather(-1, top.argmax(-1, keepdim=True)).squeeze(-1)


def guided_logits(logits_fn: Callable, cond: torch.Tensor, cond_scale: float, **inputs) -> torch.Tensor:
    """L_u + s (L_c - L_u) with L_c = logits_fn(cond=cond, **inputs), L_u the same with a zero condition;
    both halves in one batched pass. s = 1 is a single conditional pass."""
    if cond_scale == 1:
        return logits_fn(cond=cond, **inputs)
    doubled = {name: torch.cat([x, x]) for name, x in inputs.items()}
    cond_logits, uncond_logits = logits_fn(cond=torch.cat([cond, torch.zeros_like(cond)]), **doubled).chunk(2)
    return uncond_logits + cond_scale * (cond_logits - uncond_logits)


def padding_mask(token_lens: torch.Tensor, n: int | None = None) -> torch.Tensor:
    """(B, n) True at positions >= the row's length."""
    n = int(token_lens.max()) if n is None else n
    return torch.arange(n, device=token_lens.device) >= token_lens[:, None]


def masked_decode(mask_model, cond: torch.Tensor, token_lens: torch.Tensor, *, steps: int = 10,
                  cond_scale: float = 4.0, temperature: float = 1.0, topk: float = 0.9,
                  generator: Generators = None, source_ids: torch.Tensor | None = None,
                  editable: torch.Tensor | None = None, on_step: Callable[[], None] | None = None) -> torch.Tensor:
    """Base-layer tokens by iterative masked decoding (docs/momask.md, "Masked transformer"). cond (B, cond_dim),
    token_lens (B,). Generation: every valid position starts masked. Editing ("Inpainting"): `editable` (B, n) marks the
    positions to regenerate, the others keep `source_ids` (B, n) with score KEPT_SCORE, and the schedule counts editable
    positions only. `on_step()` runs after each of the `steps` network passes.
    Returns (B, n) ids, n = max(token_lens), -1 at pads."""
    pad = padding_mask(token_lens)
    editable = ~pad if editable is None else editable.to(pad.device) & ~pad
    if source_ids is None:
        if not editable.eq(~pad).all():
            raise ValueError("masked_decode: `editable` leaves positions unedited but no source_ids were given")
        source_ids = torch.zeros_like(pad, dtype=torch.long)
    elif ((source_ids < 0) | (source_ids >= mask_model.num_tokens))[~editable & ~pad].any():
        raise ValueError(f"masked_decode: kept source tokens must be code ids in 0..{mask_model.num_tokens - 1}")
    ids = torch.where(pad, mask_model.pad_id, torch.where(editable, mask_model.mask_id, source_ids))
    scores = torch.where(editable, 0.0, KEPT_SCORE)
    for count in mask_counts(steps, editable.sum(dim=1)):
        is_mask = scores.argsort(dim=1).argsort(dim=1) < count[:, None]
        ids = torch.where(is_mask, mask_model.mask_id, ids)
        logits = guided_logits(mask_model.logits, cond, cond_scale, ids=ids, padding_mask=pad, needed=is_mask)
        sampled = sample_top_k(logits, topk, temperature, generator, is_mask.nonzero()[:, 0])  # (k,) masked
        ids = ids.masked_scatter(is_mask, sampled)
        confidence = logits.softmax(dim=-1).gather(-1, sampled[:, None]).squeeze(-1)
        scores = torch.full_like(scores, KEPT_SCORE).masked_scatter(is_mask, confidence)
        if on_step is not None:
            on_step()
    return torch.where(pad, -1, ids)


def residual_decode(res_model, base_ids: torch.Tensor, cond: torch.Tensor, token_lens: torch.Tensor, *,
                    cond_scale: float = 5.0, temperature: float = 1.0, topk: float = 0.9,
                    generator: Generators = None, source_ids: torch.Tensor | None = None,
                    editable: torch.Tensor | None = None, on_step: Callable[[], None] | None = None) -> torch.Tensor:
    """Residual layers 1..Q-1 on top of base_ids (B, n), one guided pass each (docs/momask.md,
    "Residual transformer"). With `editable` (B, n), positions outside it take layer j from `source_ids`
    (B, n, Q) instead of sampling, so the layers above see the source's history there (unedited frames stay
    as they were).
    Returns (B, n, Q), -1 at pads and where the pad class was sampled."""
    pad = padding_mask(token_lens, base_ids.shape[1])
    keep = None
    if editable is not None:
        if source_ids is None:
            raise ValueError("residual_decode: `editable` needs the source_ids to keep outside it")
        keep = ~editable.to(pad.device) & ~pad
        source_ids = torch.where(source_ids < 0, res_model.pad_id, source_ids)
    ids = torch.where(pad, res_model.pad_id, base_ids)
    all_ids, history = [ids], 0
    for j in range(1, res_model.num_quantizers):
        history = history + res_model.token_embedding(j - 1)[ids]
        layers = torch.full_like(token_lens, j)
        logits = guided_logits(res_model.logits, cond, cond_scale, history=history, layers=layers,
                               padding_mask=pad, needed=~pad)
        ids = torch.full_like(pad, res_model.pad_id, dtype=torch.long)
        ids = ids.masked_scatter(~pad, sample_top_k(logits, topk, temperature, generator, (~pad).nonzero()[:, 0]))
        if keep is not None:
            ids = torch.where(keep, source_ids[..., j], ids)
        all_ids.append(ids)
        if on_step is not None:
            on_step()
    all_ids = torch.stack(all_ids, dim=-1)
    return torch.where(all_ids == res_model.pad_id, -1, all_ids)


def sample_token_lengths(length_model, cond: torch.Tensor, frames_per_token: int,
                         generator: Generators) -> torch.Tensor:
    """(B,) lengths in tokens drawn from the estimator's softmax, restricted to MIN_FRAMES..MAX_FRAMES
    (the released estimator can otherwise say 0 tokens); a list of generators draws row b with generator[b]."""
    logits = length_model(cond)
    k = torch.arange(logits.shape[-1], device=logits.device)
    allowed = (k * frames_per_token >= MIN_FRAMES) & (k * frames_per_token <= MAX_FRAMES)
    probs = logits.masked_fill(~allowed, -math.inf).softmax(dim=-1)
    if not isinstance(generator, list):
        return torch.multinomial(probs, 1, generator=generator)[:, 0]
    return torch.cat([torch.multinomial(row[None], 1, generator=g)[:, 0] for row, g in zip(probs, generator)])


def check_sampling_options(candidates: int, steps: int, topk: float, temperature: float, caller: str) -> None:
    """The checks every request (generate, inpaint, long motions) makes of its sampling options."""
    if candidates < 1 or steps < 1:
        raise BadRequest(f"{caller}: candidates and steps must be >= 1, got {candidates} and {steps}")
    if not 0 <= topk < 1:
        raise BadRequest(f"{caller}: topk is the share of the vocabulary filtered out, in [0, 1), got {topk}")
    if temperature < 0:
        raise BadRequest(f"{caller}: temperature must be >= 0, got {temperature}")


def network_passes(models: MoMaskModels, steps: int) -> int:
    """Network passes of one decode: the masked transformer's steps, then one per residual layer."""
    return steps + (models.residual.num_quantizers - 1 if models.residual is not None else 0)


class StepCounter:
    """One request's network passes, over however many decodes it takes: progress(done, total) after each
    pass, cancel() polled before the first and after each (True raises GenerationCancelled)."""

    def __init__(self, total: int, progress: Callable[[int, int], None] | None,
                 cancel: Callable[[], bool] | None):
        self.total, self.done, self.progress, self.cancel = total, 0, progress, cancel
        if cancel is not None and cancel():
            raise GenerationCancelled("generation cancelled before it started")

    def __call__(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)
        if self.cancel is not None and self.cancel():
            raise GenerationCancelled(f"generation cancelled after step {self.done} of {self.total}")


def start_request(models: MoMaskModels, text_encoder, prompts: list[str], candidates: int, steps: int,
                  topk: float, temperature: float, seed: int | None, caller: str):
    """The checks and set-up every request shares (generate, inpaint, long motions) -> (condition vectors
    (len(prompts), dim), one torch.Generator per candidate: candidate k of a request with seed s is what a
    one-candidate request with seed s + k makes).
    An empty prompt is unconditional: the zero vector the transformers were trained on for dropped text.
    Prompts longer than the encoder's context are truncated by the encoder."""
    check_sampling_options(candidates, steps, topk, temperature, caller)
    if any(net is not None and net.training for net in (models.rvq, models.mask, models.residual, models.length)):
        raise RuntimeError(f"{caller}: the models are in training mode (dropout on); call models.eval() first")
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise BadRequest(f"{caller}: prompt {i} must be a string (\"\" for no prompt), got {prompt!r}")
    device = next(models.mask.parameters()).device
    cond_dim = models.mask.hparams["cond_dim"]
    cond = torch.zeros(len(prompts), cond_dim, device=device)
    worded = [i for i, p in enumerate(prompts) if p.strip()]
    if worded:
        if text_encoder.dim != cond_dim:
            raise BadRequest(f"{caller}: text encoder {text_encoder.name!r} gives {text_encoder.dim}-d vectors "
                             f"but the model was trained on {cond_dim}-d ones; use the encoder named in its config")
        with torch.inference_mode():
            cond[worded] = text_encoder.encode([prompts[i] for i in worded]).to(device, torch.float32)
    return cond, candidate_generators(device, seed, candidates)


def _checked_lengths(prompts, lengths) -> list[int] | None:
    """generate's prompts (non-empty words) and lengths (one per prompt, in frames, or None)."""
    if isinstance(prompts, str) or not isinstance(prompts, (list, tuple)) or not prompts:
        raise BadRequest("generate: expected a non-empty list of prompt strings")
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str) or not prompt.strip():
            raise BadRequest(f"generate: prompt {i} is empty; describe the motion in words")
    if lengths is None:
        return None
    lengths = [lengths] * len(prompts) if isinstance(lengths, (int, np.integer)) else list(lengths)
    if len(lengths) != len(prompts):
        raise BadRequest(f"generate: {len(lengths)} lengths for {len(prompts)} prompts; give one per prompt")
    for i, frames in enumerate(lengths):
        if not MIN_FRAMES <= frames <= MAX_FRAMES or int(frames) != frames:
            raise BadRequest(f"generate: length {frames} of prompt {i} is outside the allowed range "
                             f"{MIN_FRAMES}..{MAX_FRAMES} frames (20 fps)")
    return [int(f) for f in lengths]


def generate(models: MoMaskModels, text_encoder, prompts: list[str], lengths: list[int] | int | None = None,
             candidates: int = 1, seed: int | None = None, steps: int = 10, cond_scale: float = 4.0,
             res_cond_scale: float = 5.0, temperature: float = 1.0, topk: float = 0.9,
             progress: Callable[[int, int], None] | None = None,
             cancel: Callable[[], bool] | None = None) -> list[list[GeneratedMotion]]:
    """`candidates` motions for each prompt -> [prompt][candidate] GeneratedMotion.

    lengths: frames per prompt (MIN_FRAMES..MAX_FRAMES; a length that is not a multiple of 4 is generated
    at the next multiple and trimmed), or None to sample one per candidate from the length estimator.
    Candidate k of every prompt is what a one-candidate request with seed + k makes (seed None: a random one);
    the same seed gives the same motion with the same model, options, precision and device type.
    Prompts longer than the text encoder's context are truncated by the encoder. topk is momask-codes'
    filter threshold (0.9 keeps the 10% largest logits); temperature applies to both transformers
    (momask-codes fixes the residual's at 1, the default). progress(step, total) is called after each network
    pass (steps + residual layers); cancel() is polled between passes and True raises GenerationCancelled."""
    frames = _checked_lengths(prompts, lengths)
    if frames is None and models.length is None:
        raise BadRequest("generate: this model has no length estimator; give a length in frames for each prompt")
    seed = secrets.randbelow(2 ** 31) if seed is None else seed
    cond, generators = start_request(models, text_encoder, list(prompts), candidates, steps, topk, temperature, seed,
                                     "generate")
    # rows prompt-major, as cond below; every row its own generator (rows sharing one would draw in turns)
    generators += [g for _ in prompts[1:] for g in candidate_generators(cond.device, seed, candidates)]
    fpt = models.rvq.frames_per_token
    on_step = StepCounter(network_passes(models, steps), progress, cancel)
    with torch.inference_mode():
        cond = cond.repeat_interleave(candidates, 0)
        if frames is None:  # each candidate draws its own length, as a request for it alone would
            token_lens = sample_token_lengths(models.length, cond, fpt, generators)
            frames = (token_lens * fpt).tolist()
        else:
            frames = [f for f in frames for _ in range(candidates)]
            token_lens = torch.tensor([-(-f // fpt) for f in frames], device=cond.device)
        ids = masked_decode(models.mask, cond, token_lens, steps=steps, cond_scale=cond_scale,
                            temperature=temperature, topk=topk, generator=generators, on_step=on_step)
        if models.residual is not None:
            ids = residual_decode(models.residual, ids, cond, token_lens, cond_scale=res_cond_scale,
                                  temperature=temperature, topk=topk, generator=generators, on_step=on_step)
        else:
            ids = ids[..., None]
        features = decode_features(models, ids, token_lens)
    tokens, motions = ids.cpu().numpy(), []
    for row, (feats, n) in enumerate(zip(features, token_lens.tolist())):
        length = frames[row]
        feats = feats[:length]
        motions.append(GeneratedMotion(feats, recover_from_ric(feats).astype(np.float32),
                                       foot_contacts(feats) > 0.5, tokens[row, :n], length))
    return [motions[i: i + candidates] for i in range(0, len(motions), candidates)]


def decode_features(models: MoMaskModels, ids: torch.Tensor, token_lens: torch.Tensor) -> list[np.ndarray]:
    """(B, n, q) ids -> per row (token_len * 4, 263) de-normalised float32 features. Rows are decoded at
    their own length (grouped by length), so one row's padding never leaks into another's edges."""
    out = [None] * len(ids)
    for n in token_lens.unique().tolist():
        rows = (token_lens == n).nonzero()[:, 0]
        decoded = models.rvq.decode(ids[rows, :n]).cpu().numpy()
        for row, feats in zip(rows.tolist(), decoded):
            out[row] = (feats * models.std + models.mean).astype(np.float32)
    return out
