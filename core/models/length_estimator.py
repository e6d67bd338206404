"""Length estimator (docs/momask.md, "Length estimator"): text vector -> distribution over the motion's length in
tokens."""
import torch
from torch import nn
from torch.nn import functional as F


class LengthEstimator(nn.Module):
    """MLP 512-256-128 with LayerNorm and LeakyReLU; class k means k tokens (4k frames)."""

    def __init__(self, cond_dim: int = 512, hidden: int = 512, num_lengths: int = 50):
        super().__init__()
        self.hparams = dict(cond_dim=cond_dim, hidden=hidden, num_lengths=num_lengths)
        self.output = nn.Sequential(
            nn.Linear(cond_dim, hidden), nn.LayerNorm(hidden), nn.LeakyReLU(0.2), nn.Dropout(0.2),
            nn.Linear(hidden, hidden // 2), nn.LayerNorm(hidden // 2), nn.LeakyReLU(0.2), nn.Dropout(0.2),
            nn.Linear(hidden // 2, hidden // 4), nn.LayerNorm(hidden // 4), nn.LeakyReLU(0.2),
            nn.Linear(hidden // 4, num_lengths),
        )
        for module in self.output:
            if isinstance(module, nn.Linear):
                nn.init.xavier_normal_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        """(B, cond_dim) -> (B, num_lengths) logits."""
        return self.output(cond)

    def loss(self, cond: torch.Tensor, token_lens: torch.Tensor) -> torch.Tensor:
        """Cross-entropy against the true length in tokens (frames // 4)."""
        return F.cross_entropy(self(cond), token_lens)
