"""The body the masked and residual transformers share (momask-spec 3, 4): token vectors -> Linear ->
sinusoidal positions -> prefix tokens (text, layer) -> post-LayerNorm TransformerEncoder -> output head.

Attribute names are those of momask-codes so released weights load by name. The encoder runs batch-first
(same state_dict as the released sequence-first one) because PyTorch's fused inference path needs it.
On CPU, inference goes one step further (`PackedEncoder`): sampling runs ~100-row matrix products, where
oneDNN weights packed once beat PyTorch's fused path by about a quarter."""
import math
import weakref

import torch
from torch import nn
from torch.nn import functional as F


def init_weights(module: nn.Module) -> None:
    """momask-codes' init: Linear/Embedding N(0, 0.02) with zero bias, LayerNorm 1/0."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class InputProcess(nn.Module):
    """Code-space vectors (B, n, code_dim) -> model width."""

    def __init__(self, code_dim: int, latent_dim: int):
        super().__init__()
        self.poseEmbedding = nn.Linear(code_dim, latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.poseEmbedding(x)


class PositionalEncoding(nn.Module):
    """Fixed sinusoids (sin on even, cos on odd dims); `pe` is kept (max_len, 1, d) as in the checkpoints."""

    def __init__(self, d_model: int, dropout: float, max_len: int):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        position = torch.arange(max_len, dtype=torch.float32)[:, None]
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe[:, None, :])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n, d) batch-first."""
        return self.dropout(x + self.pe[: x.shape[1], 0])


class OutputProcess(nn.Module):
    """BERT-style head: Linear, GELU, LayerNorm(1e-12), Linear."""

    def __init__(self, out_feats: int, latent_dim: int):
        super().__init__()
        self.dense = nn.Linear(latent_dim, latent_dim)
        self.LayerNorm = nn.LayerNorm(latent_dim, eps=1e-12)
        self.poseFinal = nn.Linear(latent_dim, out_feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.poseFinal(self.LayerNorm(nn.functional.gelu(self.dense(x))))


class PackedEncoder:
    """Inference-only CPU forward of our post-LayerNorm GELU encoder with oneDNN-packed linear weights;
    numerically the same as `nn.TransformerEncoder` in eval (float32, exact GELU)."""

    def __init__(self, encoder: nn.TransformerEncoder, version: tuple):
        def packed(weight, bias):
            return torch.ops.mkldnn._reorder_linear_weight(weight.detach()), bias.detach()

        self.version = version
        self.num_heads = encoder.layers[0].self_attn.num_heads
        self.layers = [(packed(layer.self_attn.in_proj_weight, layer.self_attn.in_proj_bias),
                        packed(layer.self_attn.out_proj.weight, layer.self_attn.out_proj.bias),
                        packed(layer.linear1.weight, layer.linear1.bias),
                        packed(layer.linear2.weight, layer.linear2.bias),
                        layer.norm1, layer.norm2) for layer in encoder.layers]

    def __call__(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        linear = torch.ops.mkldnn._linear_pointwise
        batch, n, d = x.shape
        heads = self.num_heads
        attend = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
        x = x.reshape(batch * n, d)
        for qkv_proj, out_proj, ff1, ff2, norm1, norm2 in self.layers:
            qkv = linear(x, *qkv_proj, "none", [], "").view(batch, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
            attn = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=attend)
            attn = linear(attn.transpose(1, 2).reshape(batch * n, d), *out_proj, "none", [], "")
            x = norm1(x + attn)
            x = norm2(x + linear(linear(x, *ff1, "gelu", [], "none"), *ff2, "none", [], ""))
        return x.view(batch, n, d)


_packed_encoders: "weakref.WeakKeyDictionary[nn.TransformerEncoder, PackedEncoder]" = weakref.WeakKeyDictionary()
PACKING_AVAILABLE = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def packed_encoder(encoder: nn.TransformerEncoder, x: torch.Tensor) -> PackedEncoder | None:
    """The packed copy of `encoder` if `x` can use it (CPU float32 inference), repacked whenever a weight
    was replaced or changed in place (load_state_dict, optimiser step); None otherwise."""
    global PACKING_AVAILABLE
    if (not PACKING_AVAILABLE or x.device.type != "cpu" or x.dtype != torch.float32 or encoder.training
            or torch.is_grad_enabled()):
        return None
    params = list(encoder.parameters())
    if any(p.is_inference() for p in params):  # no version counter: a stale copy would go unnoticed
        return None
    version = tuple((id(p), p._version) for p in params)
    packed = _packed_encoders.get(encoder)
    if packed is None or packed.version != version:
        try:
            packed = _packed_encoders[encoder] = PackedEncoder(encoder, version)
        except RuntimeError:  # a oneDNN build that cannot pack on this CPU: stay on PyTorch's path
            PACKING_AVAILABLE = False
            return None
    return packed


class ConditionedTransformer(nn.Module):
    """Text-conditioned encoder body; subclasses add their token embeddings, prefix tokens and heads."""

    def __init__(self, code_dim: int, latent_dim: int, ff_size: int, num_layers: int, num_heads: int,
                 dropout: float, cond_drop_prob: float, max_len: int):
        super().__init__()
        self.cond_drop_prob = cond_drop_prob
        self.input_process = InputProcess(code_dim, latent_dim)
        self.position_enc = PositionalEncoding(latent_dim, dropout, max_len)
        layer = nn.TransformerEncoderLayer(latent_dim, num_heads, ff_size, dropout, activation="gelu",
                                           batch_first=True)
        self.seqTransEncoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)

    def drop_condition(self, cond: torch.Tensor) -> torch.Tensor:
        """Training only: zero each sample's condition with p cond_drop_prob, which teaches the
        unconditional model that classifier-free guidance needs."""
        if not self.training or self.cond_drop_prob <= 0:
            return cond
        keep = torch.rand(cond.shape[0], 1, device=cond.device) >= self.cond_drop_prob
        return cond * keep

    def encode(self, x: torch.Tensor, prefix: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        """x (B, n, code_dim) motion vectors, prefix (B, k, latent) unpositioned tokens, padding_mask (B, n)
        True at pads -> (B, n, latent) outputs at the motion positions."""
        x = self.position_enc(self.input_process(x))
        mask = nn.functional.pad(padding_mask, (prefix.shape[1], 0), value=False)
        mask = mask if mask.any() else None  # no pads: attention skips the masking
        seq = torch.cat([prefix, x], dim=1)
        packed = packed_encoder(self.seqTransEncoder, seq)
        out = self.seqTransEncoder(seq, src_key_padding_mask=mask) if packed is None else packed(seq, mask)
        return out[:, prefix.shape[1]:]
