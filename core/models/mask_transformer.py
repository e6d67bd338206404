"""M-Transformer (docs/momask.md, "Masked transformer"): predicts base-layer tokens from a partly masked sequence and
the text."""
import math

import torch
from torch import nn
from torch.nn import functional as F

from .transformer import ConditionedTransformer, OutputProcess, init_weights


class MaskTransformer(ConditionedTransformer):
    """Vocabulary: `num_tokens` codes, then `mask_id`, then `pad_id`; logits cover the codes only."""

    def __init__(self, num_tokens: int = 512, code_dim: int = 512, latent_dim: int = 384, ff_size: int = 1024,
                 num_layers: int = 8, num_heads: int = 6, dropout: float = 0.2, cond_dim: int = 512,
                 cond_drop_prob: float = 0.1, max_len: int = 5000):
        hparams = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        super().__init__(code_dim, latent_dim, ff_size, num_layers, num_heads, dropout, cond_drop_prob, max_len)
        self.hparams = hparams  # constructor kwargs: a checkpoint rebuilds the model from them
        self.num_tokens = num_tokens
        self.mask_id = num_tokens
        self.pad_id = num_tokens + 1
        self.cond_emb = nn.Linear(cond_dim, latent_dim)
        self.output_process = OutputProcess(num_tokens, latent_dim)
        self.token_emb = nn.Embedding(num_tokens + 2, code_dim)
        self.apply(init_weights)

    def logits(self, ids: torch.Tensor, cond: torch.Tensor, padding_mask: torch.Tensor,
               needed: torch.Tensor | None = None) -> torch.Tensor:
        """ids (B, n) with mask/pad ids, cond (B, cond_dim) (zeros = unconditional), padding_mask (B, n)
        True at pads -> (B, n, num_tokens); with `needed` (B, n) bool, the same as `logits(...)[needed]`
        (k, num_tokens), computed only there (sampling needs the masked positions alone)."""
        prefix = self.linear(self.cond_emb, self.drop_condition(cond))[:, None]
        return self.head(self.encode(self.token_emb(ids), prefix, padding_mask, needed))

    def forward(self, ids: torch.Tensor, cond: torch.Tensor, token_lens: torch.Tensor):
        """Training step on ground-truth ids (B, n): mask a cosine-scheduled share of the valid positions,
        corrupt them BERT-style, predict the originals. Returns (cross-entropy, accuracy on masked)."""
        batch, n = ids.shape
        valid = torch.arange(n, device=ids.device) < token_lens[:, None]
        ids = torch.where(valid, ids, self.pad_id)
        num_masked = (n * torch.cos(torch.rand(batch, device=ids.device) * math.pi / 2)).round().clamp(min=1)
        permutation = torch.rand(batch, n, device=ids.device).argsort(dim=-1)
        masked = (permutation < num_masked[:, None]) & valid
        labels = torch.where(masked, ids, self.mask_id)
        replaced = masked & (torch.rand(batch, n, device=ids.device) < 0.1)
        x_ids = torch.where(replaced, torch.randint_like(ids, self.num_tokens), ids)
        hidden = masked & ~replaced & (torch.rand(batch, n, device=ids.device) < 0.88)
        x_ids = torch.where(hidden, self.mask_id, x_ids)
        logits = self.logits(x_ids, cond, ~valid)
        loss = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=self.mask_id)
        accuracy = (logits.argmax(-1) == labels)[masked].float().mean()
        return loss, accuracy
