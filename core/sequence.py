"""Motions longer than the transformers' 196 frames, and prompt sequences, as one continuous motion.

Tokens are made window by window, at most 49 per window: the first window from scratch, every later one as
an inpainting (docs/momask.md, "Inpainting") whose first tokens are the previous window's last ones, kept with all their
layers, and whose rest is generated under its segment's prompt. A window never spans two segments, so a
prompt change is where a window starts: its new tokens are generated seeing the end of the previous
motion, which is how the two segments blend. The whole token sequence is then decoded in one pass of the
convolutional RVQ decoder, so windows join without a decoder seam and nothing needs stitching.
"""
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .features import foot_contacts, recover_from_ric
from .inpainting import edit_tokens
from .models import MoMaskModels
from .protocol import BadRequest
from .limits import MAX_FRAMES, MIN_FRAMES
from .sampling import GeneratedMotion, StepCounter, decode_features, network_passes, start_request

CONTEXT_FRAMES = 48  # frames of the previous window that a window keeps and continues from


@dataclass
class TokenWindow:
    """Tokens [start, stop) of the whole motion made by one transformer pass; the first `keep` of them are
    the previous window's, kept; the rest are generated under segment `segment`'s prompt."""
    segment: int
    start: int
    keep: int
    stop: int


@dataclass
class LongMotion(GeneratedMotion):
    segment_starts: list[int]  # first frame of each segment (segments change at 4-frame tokens)
    seams: list[int]  # first frame of each window's generated tokens after the first window


def plan_windows(segment_tokens: list[int], window_tokens: int, context_tokens: int) -> list[TokenWindow]:
    """Windows covering segments of these token counts in order: a window holds at most `window_tokens`
    and keeps the last `context_tokens` made before it (fewer at the very start); a segment longer than one
    window takes the fewest windows that hold it, of near-equal size."""
    if not 0 < context_tokens < window_tokens:
        raise ValueError(f"context of {context_tokens} tokens must be between 1 and {window_tokens - 1}")
    windows, pos = [], 0
    for segment, count in enumerate(segment_tokens):
        end = pos + count
        while pos < end:
            keep, left = min(context_tokens, pos), end - pos
            parts = 1 + math.ceil(max(left - (window_tokens - keep), 0) / (window_tokens - context_tokens))
            size = math.ceil((left + keep + context_tokens * (parts - 1)) / parts)
            windows.append(TokenWindow(segment, pos - keep, keep, pos - keep + size))
            pos += size - keep
    return windows


def _check_segments(segments) -> list[tuple[str, int]]:
    if isinstance(segments, (str, tuple)) or not isinstance(segments, list) or not segments:
        raise BadRequest("generate_long: expected a non-empty list of (prompt, frames) segments")
    for i, segment in enumerate(segments):
        if not isinstance(segment, (tuple, list)) or len(segment) != 2:
            raise BadRequest(f"generate_long: segment {i} must be a (prompt, frames) pair, got {segment!r}")
        prompt, frames = segment
        if not isinstance(prompt, str):
            raise BadRequest(f"generate_long: the prompt of segment {i} must be a string (\"\" for none), "
                             f"got {prompt!r}")
        if not isinstance(frames, (int, np.integer)) or frames < MIN_FRAMES:
            raise BadRequest(f"generate_long: segment {i} lasts {frames!r} frames; give a whole number of "
                             f"frames >= {MIN_FRAMES} (20 fps)")
    return [(prompt, int(frames)) for prompt, frames in segments]


def generate_long(models: MoMaskModels, text_encoder, segments: list[tuple[str, int]], *, candidates: int = 1,
                  seed: int | None = None, steps: int = 10, cond_scale: float = 4.0, res_cond_scale: float = 5.0,
                  temperature: float = 1.0, topk: float = 0.9, context_frames: int = CONTEXT_FRAMES,
                  progress: Callable[[int, int], None] | None = None,
                  cancel: Callable[[], bool] | None = None) -> list[LongMotion]:
    """One continuous motion of any length per candidate from (prompt, frames) segments, played in order.

    A prompt "" makes its segment unconditional. Segment boundaries snap to the nearest 4-frame token (a
    segment of 8 or more frames keeps at least one token); the motion has exactly sum(frames) frames.
    Every window's new tokens see `context_frames` (rounded up to tokens) of what came before.
    progress(step, total) counts network passes over all windows; cancel() is polled between them."""
    segments = _check_segments(segments)
    fpt, window_tokens = models.rvq.frames_per_token, MAX_FRAMES // models.rvq.frames_per_token
    if not isinstance(context_frames, (int, np.integer)) or not 0 < context_frames <= MAX_FRAMES // 2:
        raise BadRequest(f"generate_long: context_frames must be in 1..{MAX_FRAMES // 2}, got {context_frames}")
    prompts = [prompt for prompt, _ in segments]
    cond, generators = start_request(models, text_encoder, prompts, candidates, steps, topk, temperature, seed,
                                     "generate_long")
    ends = np.cumsum([frames for _, frames in segments])
    length = int(ends[-1])
    bounds = np.concatenate([[0], np.round(ends[:-1] / fpt).astype(int), [-(-length // fpt)]])
    windows = plan_windows(np.diff(bounds).tolist(), window_tokens, -(-context_frames // fpt))
    num_layers = models.residual.num_quantizers if models.residual is not None else 1
    counter = StepCounter(len(windows) * network_passes(models, steps), progress, cancel)
    device = cond.device
    tokens = torch.full((candidates, int(bounds[-1]), num_layers), -1, dtype=torch.long, device=device)
    with torch.inference_mode():
        for w in windows:
            n = w.stop - w.start
            editable = (torch.arange(n, device=device) >= w.keep).expand(candidates, n)
            tokens[:, w.start:w.stop] = edit_tokens(
                models, cond[w.segment].expand(candidates, -1), torch.full((candidates,), n, device=device),
                tokens[:, w.start:w.stop], editable, generators, counter, steps=steps, cond_scale=cond_scale,
                res_cond_scale=res_cond_scale, temperature=temperature, topk=topk)
        decoded = decode_features(models, tokens, torch.full((candidates,), tokens.shape[1], device=device))
    seams = [(w.start + w.keep) * fpt for w in windows[1:]]
    motions = []
    for feats, ids in zip(decoded, tokens.cpu().numpy()):
        feats = feats[:length]
        motions.append(LongMotion(feats, recover_from_ric(feats).astype(np.float32), foot_contacts(feats) > 0.5,
                                  ids, length, (bounds[:-1] * fpt).tolist(), seams))
    return motions
