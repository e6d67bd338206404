"""RVQ-VAE (docs/momask.md, "RVQ-VAE"): 1D-conv autoencoder with a 6-layer residual quantiser, 4 frames per token.

Only `codebook` is saved per quantiser layer (as in the released checkpoints). The EMA statistics that
training updates (`code_sum`, `code_count`, `initialised`) are non-persistent buffers: they follow the
module across devices and show up in `named_buffers()`, so a trainer that wants an exact resume saves and
restores them itself; a model loaded from a checkpoint without them treats the loaded codebook as its
initialised state (sum = codebook, count = 1)."""
import torch
from torch import nn
from torch.nn import functional as F


class ResConv1DBlock(nn.Module):
    """y = x + Dropout(conv_k1(ReLU(conv_k3 dilated(ReLU(x)))))."""

    def __init__(self, width: int, dilation: int, dropout: float):
        super().__init__()
        self.conv1 = nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(width, width, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.dropout(self.conv2(F.relu(self.conv1(F.relu(x)))))


class Resnet1D(nn.Module):
    """`depth` residual blocks, dilations growth**(depth-1) .. 1 (9, 3, 1)."""

    def __init__(self, width: int, depth: int, growth: int, dropout: float):
        super().__init__()
        self.model = nn.Sequential(*(ResConv1DBlock(width, growth ** d, dropout) for d in reversed(range(depth))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Encoder(nn.Module):
    """(B, input_dim, T) -> (B, code_dim, T / stride_t**down_t): conv, then per level a strided conv + Resnet1D."""

    def __init__(self, input_dim, code_dim, width, down_t, stride_t, depth, growth, dropout):
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv1d(input_dim, width, 3, 1, 1), nn.ReLU(),
            *(nn.Sequential(nn.Conv1d(width, width, 2 * stride_t, stride_t, stride_t // 2),
                            Resnet1D(width, depth, growth, dropout)) for _ in range(down_t)),
            nn.Conv1d(width, code_dim, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Decoder(nn.Module):
    """Mirror of the encoder: per level Resnet1D + nearest upsampling + conv, then two convs to input_dim."""

    def __init__(self, input_dim, code_dim, width, down_t, stride_t, depth, growth, dropout):
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv1d(code_dim, width, 3, 1, 1), nn.ReLU(),
            *(nn.Sequential(Resnet1D(width, depth, growth, dropout), nn.Upsample(scale_factor=stride_t),
                            nn.Conv1d(width, width, 3, 1, 1)) for _ in range(down_t)),
            nn.Conv1d(width, width, 3, 1, 1), nn.ReLU(),
            nn.Conv1d(width, input_dim, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class EMACodebook(nn.Module):
    """One quantiser layer: nearest-code lookup, codebook learnt by exponential moving averages, codes
    that fall out of use (EMA count < 1) replaced by current latents."""

    def __init__(self, nb_code: int, code_dim: int, mu: float):
        super().__init__()
        self.nb_code, self.mu = nb_code, mu
        self.register_buffer("codebook", torch.zeros(nb_code, code_dim))
        self.register_buffer("code_sum", torch.zeros(nb_code, code_dim), persistent=False)
        self.register_buffer("code_count", torch.zeros(nb_code), persistent=False)
        self.register_buffer("initialised", torch.tensor(False), persistent=False)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if prefix + "codebook" in state_dict:
            self.code_sum.copy_(self.codebook)
            self.code_count.fill_(1.0)
            self.initialised.fill_(True)

    def _tile(self, x: torch.Tensor) -> torch.Tensor:
        """At least nb_code rows: repeat a short batch with a little noise so copies differ."""
        if x.shape[0] >= self.nb_code:
            return x
        out = x.repeat(-(-self.nb_code // x.shape[0]), 1)
        return out + torch.randn_like(out) * (0.01 / x.shape[1] ** 0.5)

    def nearest(self, x: torch.Tensor, temperature: float = 0.0) -> torch.Tensor:
        """(N, d) -> (N,) code ids: squared-L2 nearest, or Gumbel-perturbed at `temperature` > 0."""
        neg_dist = 2 * x @ self.codebook.t() - self.codebook.square().sum(1)  # + |x|^2 changes no argmax
        if temperature > 0:
            neg_dist = neg_dist / temperature - torch.empty_like(neg_dist).exponential_().log()
        return neg_dist.argmax(dim=-1)

    @torch.no_grad()
    def _update(self, x: torch.Tensor, ids: torch.Tensor) -> None:
        counts = torch.bincount(ids, minlength=self.nb_code).to(x.dtype)
        sums = torch.zeros_like(self.code_sum).index_add_(0, ids, x)
        tiled = self._tile(x)
        replacement = tiled[torch.randperm(tiled.shape[0], device=x.device)[: self.nb_code]]
        self.code_sum.mul_(self.mu).add_(sums, alpha=1 - self.mu)
        self.code_count.mul_(self.mu).add_(counts, alpha=1 - self.mu)
        used = (self.code_count >= 1.0)[:, None]
        self.codebook.copy_(torch.where(used, self.code_sum / self.code_count[:, None], replacement))

    def forward(self, x: torch.Tensor, temperature: float = 0.0):
        """(N, d) -> (straight-through quantised (N, d), ids (N,), commitment loss, perplexity)."""
        if self.training and not self.initialised:
            with torch.no_grad():
                self.codebook.copy_(self._tile(x)[: self.nb_code])
                self.code_sum.copy_(self.codebook)
                self.code_count.fill_(1.0)
                self.initialised.fill_(True)
        ids = self.nearest(x.detach(), temperature if self.training else 0.0)
        quantised = self.codebook[ids]
        if self.training:
            self._update(x.detach(), ids)
        commit = F.mse_loss(x, quantised)
        prob = torch.bincount(ids, minlength=self.nb_code) / ids.numel()
        perplexity = torch.exp(-(prob * torch.log(prob + 1e-7)).sum())
        return x + (quantised - x).detach(), ids, commit, perplexity


class ResidualQuantizer(nn.Module):
    """Layer v quantises what layers 0..v-1 left over; the decoder gets the sum of all layers."""

    def __init__(self, num_quantizers: int, nb_code: int, code_dim: int, mu: float, dropout_prob: float):
        super().__init__()
        self.dropout_prob = dropout_prob
        self.layers = nn.ModuleList(EMACodebook(nb_code, code_dim, mu) for _ in range(num_quantizers))

    def forward(self, z: torch.Tensor, temperature: float):
        """z (B, n, d) -> (quantised sum (B, n, d), ids (B, n, Q) with -1 for dropped layers,
        commitment loss and perplexity averaged over the layers used)."""
        flat = z.reshape(-1, z.shape[-1])
        num_used = len(self.layers)
        if self.training and torch.rand(()) < self.dropout_prob:  # quantisation dropout: keep layers 0..s
            num_used = int(torch.randint(len(self.layers), ())) + 1
        residual, total = flat, 0.0
        ids = torch.full((flat.shape[0], len(self.layers)), -1, dtype=torch.long, device=z.device)
        commits, perplexities = [], []
        for v, layer in enumerate(self.layers[:num_used]):
            quantised, ids[:, v], commit, perplexity = layer(residual, temperature)
            residual = residual - quantised.detach()
            total = total + quantised
            commits.append(commit)
            perplexities.append(perplexity)
        return (total.view_as(z), ids.view(*z.shape[:-1], -1),
                torch.stack(commits).mean(), torch.stack(perplexities).mean())

    @torch.no_grad()
    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, n, d) -> (B, n, Q) nearest-code ids of every layer, never stochastic, no EMA update."""
        residual = z.reshape(-1, z.shape[-1])
        ids = []
        for layer in self.layers:
            ids.append(layer.nearest(residual))
            residual = residual - layer.codebook[ids[-1]]
        return torch.stack(ids, dim=-1).view(*z.shape[:-1], -1)

    def codes(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, n, q <= Q) ids, -1 = no code -> (B, n, d) sum of the codebook vectors."""
        ids = F.pad(ids, (0, len(self.layers) - ids.shape[-1]), value=-1)
        codebooks = torch.stack([layer.codebook for layer in self.layers])
        vectors = codebooks[torch.arange(len(self.layers), device=ids.device), ids.clamp(min=0)]
        return (vectors * (ids >= 0)[..., None]).sum(dim=-2)


class RVQVAE(nn.Module):
    """Motion (B, T, input_dim), normalised -> tokens (B, T / 4, Q) -> motion."""

    def __init__(self, input_dim: int = 263, nb_code: int = 512, code_dim: int = 512, width: int = 512,
                 down_t: int = 2, stride_t: int = 2, depth: int = 3, dilation_growth_rate: int = 3,
                 num_quantizers: int = 6, quantize_dropout_prob: float = 0.2, mu: float = 0.99,
                 dropout: float = 0.2):
        hparams = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        super().__init__()
        self.hparams = hparams  # constructor kwargs: a checkpoint rebuilds the model from them
        self.frames_per_token = stride_t ** down_t
        self.num_joints = (input_dim + 1) // 12  # 263 = 4 + 3(J-1) + 6(J-1) + 3J + 4
        body = (input_dim, code_dim, width, down_t, stride_t, depth, dilation_growth_rate, dropout)
        self.encoder = Encoder(*body)
        self.decoder = Decoder(*body)
        self.quantizer = ResidualQuantizer(num_quantizers, nb_code, code_dim, mu, quantize_dropout_prob)

    def forward(self, x: torch.Tensor, temperature: float = 0.5):
        """Training forward: (B, T, input_dim) -> (reconstruction, commitment loss, perplexity).
        Code choice is Gumbel-perturbed at `temperature` while training, nearest otherwise."""
        z = self.encoder(x.transpose(1, 2)).transpose(1, 2)
        quantised, _, commit, perplexity = self.quantizer(z, temperature)
        return self.decoder(quantised.transpose(1, 2)).transpose(1, 2), commit, perplexity

    def loss(self, x: torch.Tensor, ric_weight: float = 0.5, commit_weight: float = 0.02) -> dict:
        """MoMask's RVQ objective in normalised space: SmoothL1 on all dims + extra SmoothL1 on the
        root-relative joint positions (ric) + commitment."""
        x_hat, commit, perplexity = self(x)
        ric = slice(4, 4 + 3 * (self.num_joints - 1))
        recon = F.smooth_l1_loss(x_hat, x)
        ric_loss = F.smooth_l1_loss(x_hat[..., ric], x[..., ric])
        total = recon + ric_weight * ric_loss + commit_weight * commit
        return dict(loss=total, recon=recon, ric=ric_loss, commit=commit, perplexity=perplexity)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, input_dim) -> (B, T / frames_per_token, Q) nearest-code ids."""
        return self.quantizer.encode(self.encoder(x.transpose(1, 2)).transpose(1, 2))

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, n, q <= Q) ids (-1 = zero vector) -> (B, n * frames_per_token, input_dim)."""
        return self.decoder(self.quantizer.codes(ids).transpose(1, 2)).transpose(1, 2)
