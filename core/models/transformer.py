"""The body the masked and residual transformers share (docs/momask.md, "Masked transformer"): token vectors -> Linear
-> sinusoidal positions -> prefix tokens (text, layer) -> post-LayerNorm TransformerEncoder -> output head.

Attribute names are those of momask-codes so released weights load by name. The encoder runs batch-first
(same state_dict as the released sequence-first one) because PyTorch's fused inference path needs it.
On CPU, inference goes further (`packed_copy`): sampling runs ~100-row matrix products, where oneDNN
weights packed once beat PyTorch's fused path by about a quarter, and `inference_dtype` bfloat16 halves
them again. Sampling also asks only for the logits it uses (`needed`): the last layer and the head skip
the other positions."""
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
    """Holds the code-space -> model width Linear under momask-codes' name (`input_process.poseEmbedding`);
    ConditionedTransformer.encode applies it."""

    def __init__(self, code_dim: int, latent_dim: int):
        super().__init__()
        self.poseEmbedding = nn.Linear(code_dim, latent_dim)


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


class PackedLinear:
    """An nn.Linear's weights packed by oneDNN for CPU inference, optionally in bfloat16; float32 out.
    `gelu` fuses the exact GELU."""

    def __init__(self, linear: nn.Linear, dtype: torch.dtype):
        self.weight = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach().to(dtype))
        self.bias = None if linear.bias is None else linear.bias.detach().to(dtype)
        self.dtype = dtype

    def __call__(self, x: torch.Tensor, gelu: bool = False) -> torch.Tensor:
        attr, algorithm = ("gelu", "none") if gelu else ("none", "")
        out = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, x.shape[-1]).to(self.dtype), self.weight,
                                                 self.bias, attr, [], algorithm)
        return out.float().view(*x.shape[:-1], out.shape[-1])


class PackedHead:
    """OutputProcess for CPU inference; the logits layer stays float32 (its rounding would show)."""

    def __init__(self, head: OutputProcess, dtype: torch.dtype):
        self.dense, self.final = PackedLinear(head.dense, dtype), PackedLinear(head.poseFinal, torch.float32)
        norm = head.LayerNorm
        self.norm = norm.normalized_shape, norm.weight.detach(), norm.bias.detach(), norm.eps

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.final(F.layer_norm(self.dense(x, gelu=True), *self.norm))


class PackedEncoder:
    """Inference-only CPU forward of our post-LayerNorm GELU encoder with oneDNN-packed linear weights.
    In float32 it is numerically `nn.TransformerEncoder` in eval (exact GELU); in bfloat16 the matrix
    products run at twice the rate on CPUs with native bf16, the LayerNorm statistics stay float32."""

    def __init__(self, encoder: nn.TransformerEncoder, dtype: torch.dtype):
        def packed(weight, bias):
            return torch.ops.mkldnn._reorder_linear_weight(weight.detach().to(dtype)), bias.detach().to(dtype)

        def norm(layer_norm):
            return layer_norm.normalized_shape, layer_norm.weight.detach(), layer_norm.bias.detach(), layer_norm.eps

        self.dtype = dtype
        self.num_heads = encoder.layers[0].self_attn.num_heads
        self.layers = [(packed(layer.self_attn.in_proj_weight, layer.self_attn.in_proj_bias),
                        packed(layer.self_attn.out_proj.weight, layer.self_attn.out_proj.bias),
                        packed(layer.linear1.weight, layer.linear1.bias),
                        packed(layer.linear2.weight, layer.linear2.bias),
                        norm(layer.norm1), norm(layer.norm2)) for layer in encoder.layers]

    def __call__(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None,
                 rows: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, n, d) float32, key_padding_mask (B, n) True at pads or None -> (B, n, d) float32; with
        `rows` (B, n) bool, only those rows' outputs (k, d), the last layer computing them alone after
        its attention."""
        linear = torch.ops.mkldnn._linear_pointwise
        batch, n, d = x.shape
        heads = self.num_heads
        attend = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
        x = x.reshape(batch * n, d).to(self.dtype)
        last = len(self.layers) - 1
        for i, (qkv_proj, out_proj, ff1, ff2, norm1, norm2) in enumerate(self.layers):
            qkv = linear(x, *qkv_proj, "none", [], "").view(batch, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
            attn = F.scaled_dot_product_attention(*qkv.unbind(0), attn_mask=attend).transpose(1, 2).reshape(-1, d)
            if i == last and rows is not None:
                keep = rows.reshape(-1)
                x, attn = x[keep], attn[keep]
            x = F.layer_norm(linear.binary(attn, x, *out_proj, "add"), *norm1)
            x = F.layer_norm(linear.binary(linear(x, *ff1, "gelu", [], "none"), x, *ff2, "add"), *norm2)
        x = x.float()
        return x.view(batch, n, d) if rows is None else x


_packed_copies: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()
PACKING_AVAILABLE = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
# bfloat16 products only pay where the CPU computes them natively; elsewhere oneDNN emulates them slowly.
BF16_NATIVE = PACKING_AVAILABLE and any(getattr(torch.cpu, check, lambda: False)()
                                        for check in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def packed_copy(module: nn.Module, x: torch.Tensor, dtype: torch.dtype, pack: type):
    """`pack(module, dtype)`, cached, if `x` can use it (CPU float32 inference), rebuilt whenever a weight
    was replaced or changed in place (load_state_dict, optimiser step); None otherwise. `dtype` bfloat16
    is honoured only where BF16_NATIVE, float32 is used otherwise."""
    global PACKING_AVAILABLE
    if (not PACKING_AVAILABLE or x.device.type != "cpu" or x.dtype != torch.float32 or module.training
            or torch.is_grad_enabled()):
        return None
    params = list(module.parameters())
    if any(p.is_inference() for p in params):  # no version counter: a stale copy would go unnoticed
        return None
    dtype = dtype if dtype == torch.bfloat16 and BF16_NATIVE else torch.float32
    version = (dtype, *((id(p), p._version) for p in params))
    cached = _packed_copies.get(module)
    if cached is None or cached[0] != version:
        try:
            cached = _packed_copies[module] = version, pack(module, dtype)
        except RuntimeError:  # a oneDNN build that cannot pack on this CPU: stay on PyTorch's path
            PACKING_AVAILABLE = False
            return None
    return cached[1]


def packed_encoder(encoder: nn.TransformerEncoder, x: torch.Tensor,
                   dtype: torch.dtype = torch.float32) -> PackedEncoder | None:
    """The packed copy of `encoder` for `x` (see packed_copy)."""
    return packed_copy(encoder, x, dtype, PackedEncoder)


class ConditionedTransformer(nn.Module):
    """Text-conditioned encoder body; subclasses add their token embeddings, prefix tokens and heads."""
    # Precision of CPU inference's matrix products. Set torch.bfloat16 on an instance to halve their time
    # where the CPU has native bf16 (BF16_NATIVE), at logit errors of about 1e-2; float32 is exact.
    inference_dtype = torch.float32

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

    def linear(self, layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        """layer(x), through a packed copy at `inference_dtype` in CPU inference."""
        packed = packed_copy(layer, x, self.inference_dtype, PackedLinear)
        return layer(x) if packed is None else packed(x)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """output_process(x), through a packed copy at `inference_dtype` in CPU inference."""
        packed = packed_copy(self.output_process, x, self.inference_dtype, PackedHead)
        return self.output_process(x) if packed is None else packed(x)

    def encode(self, x: torch.Tensor, prefix: torch.Tensor, padding_mask: torch.Tensor,
               needed: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, n, code_dim) motion vectors, prefix (B, p, latent) unpositioned tokens, padding_mask (B, n)
        True at pads -> (B, n, latent) outputs at the motion positions; with `needed` (B, n) bool, only
        those outputs (k, latent), row-major like boolean indexing, skipping work for the others."""
        x = self.position_enc(self.linear(self.input_process.poseEmbedding, x))
        mask = nn.functional.pad(padding_mask, (prefix.shape[1], 0), value=False)
        mask = mask if mask.any() else None  # no pads: attention skips the masking
        seq = torch.cat([prefix, x], dim=1)
        rows = None if needed is None else nn.functional.pad(needed, (prefix.shape[1], 0), value=False)
        packed = packed_encoder(self.seqTransEncoder, seq, self.inference_dtype)
        if packed is not None and rows is not None:
            return packed(seq, mask, rows)
        out = self.seqTransEncoder(seq, src_key_padding_mask=mask) if packed is None else packed(seq, mask)
        return out[:, prefix.shape[1]:] if rows is None else out[rows]
