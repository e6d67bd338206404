"""R-Transformer (docs/momask.md, "Residual transformer"; share_weight variant): predicts residual layer j from the sum
of the token embeddings of layers 0..j-1, one pass per layer."""
import math

import torch
from torch import nn
from torch.nn import functional as F

from .transformer import ConditionedTransformer, OutputProcess, init_weights


class ResidualTransformer(ConditionedTransformer):
    """Per-layer vocabulary: `num_tokens` codes + `pad_id`. Embedding tables E0..E_{Q-2} and output
    projections W1..W_{Q-1} share storage: W_j = E_j for j < Q-1, only W_{Q-1} and E0 are separate."""

    def __init__(self, num_tokens: int = 512, code_dim: int = 512, num_quantizers: int = 6, latent_dim: int = 384,
                 ff_size: int = 1024, num_layers: int = 8, num_heads: int = 6, dropout: float = 0.2,
                 cond_dim: int = 512, cond_drop_prob: float = 0.2, max_len: int = 5000):
        hparams = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        super().__init__(code_dim, latent_dim, ff_size, num_layers, num_heads, dropout, cond_drop_prob, max_len)
        self.hparams = hparams  # constructor kwargs: a checkpoint rebuilds the model from them
        self.num_tokens = num_tokens
        self.num_quantizers = num_quantizers
        self.pad_id = num_tokens
        vocab = num_tokens + 1
        self.embed_proj_shared_weight = nn.Parameter(torch.randn(num_quantizers - 2, vocab, code_dim) * 0.02)
        self.token_embed_weight_ = nn.Parameter(torch.randn(1, vocab, code_dim) * 0.02)
        self.output_proj_weight_ = nn.Parameter(torch.randn(1, vocab, code_dim) * 0.02)
        self.quant_emb = nn.Linear(num_quantizers, latent_dim)
        self.cond_emb = nn.Linear(cond_dim, latent_dim)
        self.output_process = OutputProcess(code_dim, latent_dim)
        self.apply(init_weights)

    def token_embeddings(self) -> torch.Tensor:
        """(Q-1, vocab, code_dim): E_k embeds layer k's tokens, k = 0..Q-2."""
        return torch.cat([self.token_embed_weight_, self.embed_proj_shared_weight])

    def token_embedding(self, layer: int) -> torch.Tensor:
        """(vocab, code_dim) E_layer, a view (token_embeddings() copies all of them)."""
        return self.token_embed_weight_[0] if layer == 0 else self.embed_proj_shared_weight[layer - 1]

    def output_projections(self) -> torch.Tensor:
        """(Q-1, vocab, code_dim): row j-1 scores layer j's tokens, j = 1..Q-1."""
        return torch.cat([self.embed_proj_shared_weight, self.output_proj_weight_])

    def output_projection(self, layer: int) -> torch.Tensor:
        """(vocab, code_dim) W_layer, a view (output_projections() copies all of them)."""
        shared = self.embed_proj_shared_weight
        return shared[layer - 1] if layer <= shared.shape[0] else self.output_proj_weight_[0]

    def logits(self, history: torch.Tensor, layers: torch.Tensor, cond: torch.Tensor,
               padding_mask: torch.Tensor, needed: torch.Tensor | None = None) -> torch.Tensor:
        """history (B, n, code_dim) = sum of E_k[t_k] for k < j, layers (B,) the j to predict (1..Q-1),
        cond (B, cond_dim) (zeros = unconditional), padding_mask (B, n) True at pads -> (B, n, vocab);
        with `needed` (B, n) bool, the same as `logits(...)[needed]` (k, vocab), computed only there."""
        layer_token = self.linear(self.quant_emb, F.one_hot(layers, self.num_quantizers).to(history.dtype))
        prefix = torch.stack([self.linear(self.cond_emb, self.drop_condition(cond)), layer_token], dim=1)
        out = self.head(self.encode(history, prefix, padding_mask, needed))
        row_layers = layers[:, None].expand(history.shape[:2])
        row_layers = row_layers if needed is None else row_layers[needed]
        logits = out.new_empty(*out.shape[:-1], self.num_tokens + 1)
        for layer in layers.unique().tolist():  # one product per layer: no (B, vocab, code_dim) gather
            rows = row_layers == layer
            logits[rows] = F.linear(out[rows], self.output_projection(layer))
        return logits

    def forward(self, all_ids: torch.Tensor, cond: torch.Tensor, token_lens: torch.Tensor):
        """Training step on ground-truth ids (B, n, Q): per sample pick a layer j in 1..Q-1 (cosine schedule,
        low layers more often), predict it from layers below. Returns (cross-entropy, accuracy)."""
        batch, n, q = all_ids.shape
        valid = torch.arange(n, device=all_ids.device) < token_lens[:, None]
        all_ids = torch.where(valid[..., None], all_ids, self.pad_id)
        u = torch.rand(batch, device=all_ids.device)
        layers = ((1 - torch.cos(u * math.pi / 2)) * (q - 2)).round().long() + 1
        codes = self.token_embeddings()[torch.arange(q - 1, device=all_ids.device), all_ids[..., :-1]]
        below = torch.arange(q - 1, device=all_ids.device) < layers[:, None]  # (B, Q-1)
        history = (codes * below[:, None, :, None]).sum(dim=2)
        targets = all_ids[torch.arange(batch, device=all_ids.device), :, layers]
        logits = self.logits(history, layers, cond, ~valid)
        loss = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=self.pad_id)
        accuracy = (logits.argmax(-1) == targets)[valid].float().mean()
        return loss, accuracy
