"""Tiny random MoMask models and a stand-in text encoder, shared by the sampling, inpainting, sequence, worker
and Blender tests. Random weights decode noise, so these tests check mechanics (tokens, shapes, seeds, errors)."""
import hashlib

import numpy as np
import pytest
import torch

from core.checkpoint import model_config
from core.models import MoMaskModels, build_model

Q, V, COND = 3, 16, 8
TINY = dict(num_tokens=V, code_dim=16, latent_dim=32, ff_size=64, num_layers=2, num_heads=2, cond_dim=COND)


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Tiny models: a second intra-op thread only adds synchronisation cost, badly so on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class HashEncoder:
    """Deterministic stand-in for a sentence encoder: a fixed random vector per prompt."""
    name, dim = "hash", COND

    def encode(self, prompts):
        seeds = [int(hashlib.sha256(p.encode()).hexdigest()[:8], 16) for p in prompts]
        return torch.stack([torch.randn(self.dim, generator=torch.Generator().manual_seed(s)) for s in seeds])


@pytest.fixture(scope="module")
def models() -> MoMaskModels:
    """RVQ (Q layers of V codes, spread codebooks), masked and residual transformers, length estimator."""
    torch.manual_seed(0)
    rvq = build_model("rvq", dict(nb_code=V, code_dim=16, width=32, depth=2, num_quantizers=Q))
    for layer in rvq.quantizer.layers:
        layer.codebook.normal_()
    rng = np.random.default_rng(0)
    return MoMaskModels(rvq, build_model("mask", TINY), build_model("residual", dict(TINY, num_quantizers=Q)),
                        build_model("length", dict(cond_dim=COND, hidden=32)),
                        rng.normal(size=263).astype(np.float32), rng.uniform(0.5, 2, 263).astype(np.float32),
                        {"text_encoder": "hash"}).eval()


TEXT_DIM = 384
SMALL = {
    "rvq": dict(nb_code=16, code_dim=32, width=32, depth=2, num_quantizers=3),
    "mask": dict(num_tokens=16, code_dim=32, latent_dim=32, ff_size=64, num_layers=2, num_heads=2,
                 cond_dim=TEXT_DIM, max_len=64),
    "residual": dict(num_tokens=16, code_dim=32, num_quantizers=3, latent_dim=32, ff_size=64, num_layers=2,
                     num_heads=2, cond_dim=TEXT_DIM, max_len=64),
    "length": dict(cond_dim=TEXT_DIM, hidden=64),
}


def small_models(seed=0, parts=("rvq", "mask", "residual", "length")) -> MoMaskModels:
    """Small networks whose every tensor is perturbed away from its initial value (codebooks start at zero),
    so a part that silently kept fresh weights would show."""
    torch.manual_seed(seed)
    modules = {name: build_model(name, SMALL[name]) if name in parts else None for name in SMALL}
    for module in filter(None, modules.values()):
        for tensor in module.state_dict().values():
            tensor.add_(torch.randn_like(tensor))
    rng = np.random.default_rng(seed)
    config = model_config("minilm", TEXT_DIM, "bandai", notes=["trained in a test"])
    return MoMaskModels(**modules, mean=rng.normal(size=263).astype(np.float32),
                        std=rng.uniform(0.1, 2, 263).astype(np.float32), config=config).eval()
