"""Importing released momask-codes checkpoints: release-layout trees are built here from our own networks
(torch.save with the release's top-level keys, opt.txt in the release's style), imported, loaded back from
our format, and compared output for output."""
import os
import shutil

import numpy as np
import pytest
import torch

from core.checkpoint import CheckpointError, load_model_dir
from core.cli import main
from core.import_momask import import_momask, read_opt
from core.models import build_model

RVQ_DIR, MASK_DIR = "rvq_nq6_dc512_nc512_noshare_qdp0.2", "t2m_nlayer8_nhead6_ld384_ff1024_cdp0.1_rvq6ns"
RES_DIR = "tres_nlayer8_ld384_ff1024_rvq6ns_cdp0.2_sw"

# opt.txt contents as the release's option parsers write them (released values, unrelated keys included).
VQ_OPT = dict(batch_size=256, checkpoints_dir="./checkpoints", code_dim=512, commit=0.02, dataset_name="t2m",
              depth=3, dilation_growth_rate=3, do_vq_res=False, down_t=2, eval_every_e=1, ext="default",
              feat_bias=5, gamma=0.05, gpu_id=0, is_continue=False, log_every=10, loss_vel=0.5, lr=0.0002,
              max_epoch=50, milestones=[150000, 250000], mu=0.99, n_res=2, name=RVQ_DIR, nb_code=512,
              num_quantizers=6, output_emb_width=512, quantize_dropout_prob=0.2, recons_loss="l1_smooth",
              save_every_e=2, save_latest=500, seed=3407, shared_codebook=False, stride_t=2, vq_act="relu",
              vq_name="rvq_nq6_dc512_nc512_noshare_qdp0.2", vq_norm=None, warm_up_iter=2000, weight_decay=0.0,
              which_epoch="all", width=512, window_size=64)
T2M_OPT = dict(batch_size=64, checkpoints_dir="./checkpoints", cond_drop_prob=0.1, dataset_name="t2m",
               dropout=0.2, eval_every_e=10, ff_size=1024, force_mask=False, gamma=0.1, gpu_id=0,
               gumbel_sample=False, is_continue=False, is_train=True, is_v2=False, latent_dim=384, log_every=50,
               lr=0.0002, max_epoch=500, max_motion_length=196, milestones=[50000], n_heads=6, n_layers=8,
               name=MASK_DIR, save_latest=500, seed=3407, share_weight=False, unit_length=4, vq_name=RVQ_DIR,
               warm_up_iter=2000)
RES_OPT = {**T2M_OPT, "cond_drop_prob": 0.2, "name": RES_DIR, "share_weight": True}

# Small variants: the opt.txt values and, independently, the hparams our networks are built with.
SMALL_OPTS = {"rvq": dict(nb_code=16, code_dim=32, output_emb_width=32, width=32, depth=2, num_quantizers=3),
              "mask": dict(latent_dim=32, ff_size=64, n_layers=2, n_heads=2)}
SMALL_HPARAMS = {"rvq": dict(nb_code=16, code_dim=32, width=32, depth=2, num_quantizers=3),
                 "mask": dict(num_tokens=16, code_dim=32, latent_dim=32, ff_size=64, num_layers=2, num_heads=2),
                 "residual": dict(num_tokens=16, code_dim=32, num_quantizers=3, latent_dim=32, ff_size=64,
                                  num_layers=2, num_heads=2, cond_drop_prob=0.2),
                 "length": {}}
FULL_HPARAMS = {"rvq": {}, "mask": {}, "residual": {}, "length": {}}  # our defaults are the released sizes


def write_opt(path, opt):
    lines = ["------------ Options -------------", *(f"{k}: {v}" for k, v in sorted(opt.items())),
             "-------------- End ----------------"]
    path.write_text("\n".join(lines) + "\n")


def perturbed(name, hparams, seed):
    torch.manual_seed(seed)
    module = build_model(name, hparams)
    for tensor in module.state_dict().values():  # codebooks start at zero: make every tensor distinctive
        tensor.add_(torch.randn_like(tensor))
    return module.eval()


def write_release(root, hparams=SMALL_HPARAMS, opts=SMALL_OPTS, parts=("rvq", "mask", "residual", "length"),
                  old_keys=False):
    """A checkpoints/t2m tree in the release layout; returns the networks it holds."""
    small = opts.get("rvq", {})
    modules = {name: perturbed(name, hparams[name], seed) for seed, name in enumerate(parts)}
    clip_keys = {"clip_model.positional_embedding": torch.randn(77, 512), "clip_model.logit_scale": torch.ones(())}
    if "rvq" in parts:
        folder = root / RVQ_DIR
        (folder / "model").mkdir(parents=True)
        (folder / "meta").mkdir()
        write_opt(folder / "opt.txt", {**VQ_OPT, **small})
        torch.save({"net" if old_keys else "vq_model": modules["rvq"].state_dict(), "ep": 50},
                   folder / "model" / "net_best_fid.tar")
        rng = np.random.default_rng(0)
        np.save(folder / "meta" / "mean.npy", rng.normal(size=263).astype(np.float32))
        np.save(folder / "meta" / "std.npy", rng.uniform(0.1, 2, 263).astype(np.float32))
    if "mask" in parts:
        folder = root / MASK_DIR
        (folder / "model").mkdir(parents=True)
        write_opt(folder / "opt.txt", {**T2M_OPT, **opts.get("mask", {})})
        net = modules["mask"]
        optimizer = torch.optim.AdamW(net.parameters(), lr=2e-4, betas=(0.9, 0.99), weight_decay=1e-5)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[50000], gamma=0.1)
        torch.save({"trans" if old_keys else "t2m_transformer": {**net.state_dict(), **clip_keys},
                    "opt_t2m_transformer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "ep": 500, "total_it": 123456}, folder / "model" / "latest.tar")
    if "residual" in parts:
        folder = root / RES_DIR
        (folder / "model").mkdir(parents=True)
        write_opt(folder / "opt.txt", {**RES_OPT, **opts.get("mask", {})})
        torch.save({"res_transformer": {**modules["residual"].state_dict(), **clip_keys}, "ep": 400},
                   folder / "model" / "net_best_fid.tar")
    if "length" in parts:
        (root / "length_estimator" / "model").mkdir(parents=True)
        torch.save({"estimator": modules["length"].state_dict(), "epoch": 30, "niter": 9000},
                   root / "length_estimator" / "model" / "finest.tar")
    return modules


@torch.no_grad()
def outputs(modules, seed=1) -> dict:
    """One forward pass of every part on fixed random inputs sized from its hparams."""
    g = torch.Generator().manual_seed(seed)
    rvq = modules["rvq"].hparams
    ids = torch.randint(0, rvq["nb_code"], (2, 6, rvq["num_quantizers"]), generator=g)
    cond = torch.randn(2, 512, generator=g)
    pads = torch.tensor([[False] * 6, [False] * 4 + [True] * 2])
    out = {"decode": modules["rvq"].decode(ids),
           "encode": modules["rvq"].encode(torch.randn(2, 24, 263, generator=g)),
           "mask": modules["mask"].logits(ids[..., 0], cond, pads)}
    if modules.get("residual") is not None:
        history = torch.randn(2, 6, rvq["code_dim"], generator=g)
        out["residual"] = modules["residual"].logits(history, torch.tensor([1, 2]), cond, pads)
    if modules.get("length") is not None:
        out["length"] = modules["length"](cond)
    return out


def loaded_parts(path):
    models = load_model_dir(path, precision="float32")  # exact products: compared bit for bit
    return models, {name: getattr(models, name) for name in ("rvq", "mask", "residual", "length")}


def assert_same_networks(parts: dict, source: dict) -> None:
    """Imported parts equal the released modules: sizes, every tensor and the outputs, bit for bit."""
    for name, module in source.items():
        assert parts[name].hparams == module.hparams, name
        torch.testing.assert_close(parts[name].state_dict(), module.state_dict(), rtol=0, atol=0)
    expected = outputs(source)
    for key, value in outputs(parts).items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0)


def test_import_release_gives_identical_networks(tmp_path):
    source = write_release(tmp_path / "t2m")
    report = import_momask(tmp_path / "t2m", tmp_path / "ours")
    models, parts = loaded_parts(tmp_path / "ours")

    assert_same_networks(parts, source)
    np.testing.assert_array_equal(models.mean, np.load(tmp_path / "t2m" / RVQ_DIR / "meta" / "mean.npy"))
    np.testing.assert_array_equal(models.std, np.load(tmp_path / "t2m" / RVQ_DIR / "meta" / "std.npy"))
    assert models.config["text_encoder"] == {"name": "clip-vit-b32", "dim": 512}
    assert models.config["dataset"] == "humanml3d" and models.config["warnings"] == []
    assert f"mask: momask-codes release {MASK_DIR}/model/latest.tar (epoch 500)" in models.config["notes"]
    for text in (f"{RVQ_DIR}/model/net_best_fid.tar (epoch 50)", "latest.tar (epoch 500)",
                 f"{RES_DIR}/model/net_best_fid.tar (epoch 400)", "length_estimator/model/finest.tar (epoch 30)"):
        assert text in report


def test_import_full_released_config(tmp_path):
    source = write_release(tmp_path / "t2m", hparams=FULL_HPARAMS, opts={})
    # the released tensor counts and sizes (docs/momask.md, "Released checkpoints")
    assert [len(source[n].state_dict()) for n in ("rvq", "mask", "residual")] == [72, 108, 112]
    assert [sum(p.numel() for p in source[n].parameters()) for n in ("rvq", "mask", "residual")] == [
        19_436_807, 12_048_768, 13_364_224]
    report = import_momask(tmp_path / "t2m", tmp_path / "ours")
    _, parts = loaded_parts(tmp_path / "ours")

    assert_same_networks(parts, source)
    assert "19,436,807 parameters" in report and "12,048,768 parameters" in report


def test_older_top_level_keys(tmp_path):
    source = write_release(tmp_path / "t2m", parts=("rvq", "mask"), old_keys=True)
    import_momask(tmp_path / "t2m", tmp_path / "ours")
    _, parts = loaded_parts(tmp_path / "ours")
    torch.testing.assert_close(outputs(parts)["mask"], outputs(source)["mask"], rtol=0, atol=0)


def test_missing_optional_parts_degrade_gracefully(tmp_path):
    write_release(tmp_path / "t2m", parts=("rvq", "mask"))
    report = import_momask(tmp_path / "t2m", tmp_path / "ours")
    models = load_model_dir(tmp_path / "ours")

    assert models.residual is None and models.length is None
    assert "residual  not found (tres_*): no residual transformer" in report
    assert "length    not found (length_estimator): no length estimator" in report
    assert len(models.config["warnings"]) == 2


def test_missing_required_parts(tmp_path):
    write_release(tmp_path / "t2m", parts=("mask", "residual"))
    with pytest.raises(CheckpointError, match=r"no RVQ-VAE folder \(rvq_\*\)"):
        import_momask(tmp_path / "t2m", tmp_path / "ours")
    shutil.rmtree(tmp_path / "t2m" / MASK_DIR)
    with pytest.raises(CheckpointError, match=r"no masked transformer folder \(t2m_nlayer\*\)$"):
        import_momask(tmp_path / "t2m", tmp_path / "ours")
    with pytest.raises(CheckpointError, match=r"did you mean .*/t2m\?"):
        import_momask(tmp_path, tmp_path / "ours")
    assert not (tmp_path / "ours").exists()


class Payload:
    """Unpickling this would create a folder: a stand-in for code a malicious checkpoint could run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_pickled_custom_class_is_refused_unrun(tmp_path):
    write_release(tmp_path / "t2m")
    file = tmp_path / "t2m" / MASK_DIR / "model" / "latest.tar"
    ckpt = torch.load(file, weights_only=True)
    torch.save({**ckpt, "opt": Payload(tmp_path / "pwned")}, file)
    with pytest.raises(CheckpointError, match=r"latest\.tar: cannot be unpickled as tensors and plain "
                                              r"containers only \(.*GLOBAL posix\.mkdir.*not loaded for safety"):
        import_momask(tmp_path / "t2m", tmp_path / "ours")
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "ours" / "config.json").exists()


def test_corrupt_files(tmp_path):
    root = tmp_path / "t2m"
    write_release(root)
    weights = root / RES_DIR / "model" / "net_best_fid.tar"
    weights.write_bytes(weights.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"net_best_fid\.tar: not a readable PyTorch checkpoint"):
        import_momask(root, tmp_path / "ours")
    torch.save({"ep": 3}, weights)
    with pytest.raises(CheckpointError, match=r"net_best_fid\.tar: no 'res_transformer' entry \(found \['ep'\]\)"):
        import_momask(root, tmp_path / "ours")

    (root / MASK_DIR / "opt.txt").write_text("------------ Options -------------\nlatent_dim 384\n")
    with pytest.raises(CheckpointError, match=r"opt\.txt: line 'latent_dim 384' is not 'key: value'"):
        import_momask(root, tmp_path / "ours")
    write_opt(root / MASK_DIR / "opt.txt", {k: v for k, v in T2M_OPT.items() if k != "n_layers"})
    with pytest.raises(CheckpointError, match=r"opt\.txt: missing option\(s\) n_layers"):
        import_momask(root, tmp_path / "ours")


def test_opt_that_does_not_fit_the_weights(tmp_path):
    root = tmp_path / "t2m"
    write_release(root)
    write_opt(root / MASK_DIR / "opt.txt", {**T2M_OPT, **SMALL_OPTS["mask"], "n_layers": 3})
    with pytest.raises(CheckpointError, match=r"latest\.tar: weights do not fit.*seqTransEncoder\.layers\.2"):
        import_momask(root, tmp_path / "ours")


def test_kit_release_is_refused(tmp_path):
    write_release(tmp_path / "kit")
    np.save(tmp_path / "kit" / RVQ_DIR / "meta" / "mean.npy", np.zeros(251, np.float32))
    with pytest.raises(CheckpointError, match=r"mean\.npy: shape \(251,\); only HumanML3D.*not KIT-ML"):
        import_momask(tmp_path / "kit", tmp_path / "ours")


def test_rvq_folder_chosen_by_vq_name_and_checked_against_the_residual(tmp_path):
    root = tmp_path / "t2m"
    source = write_release(root)
    shutil.copytree(root / RVQ_DIR, root / "rvq_other")  # an unrelated RVQ: the mask's vq_name picks ours
    import_momask(root, tmp_path / "ours")
    torch.testing.assert_close(load_model_dir(tmp_path / "ours").rvq.state_dict(), source["rvq"].state_dict())
    write_opt(root / RES_DIR / "opt.txt", {**RES_OPT, **SMALL_OPTS["mask"], "vq_name": "rvq_other"})
    with pytest.raises(CheckpointError, match=r"trained on the tokens of rvq_other, not of rvq_nq6"):
        import_momask(root, tmp_path / "ours")


def test_read_opt_types(tmp_path):
    write_opt(tmp_path / "opt.txt", {"a": True, "b": False, "n": 8, "lr": 0.0002, "wd": 1e-05, "name": "t2m",
                                     "norm": None, "milestones": [150000, 250000], "neg": -3})
    assert read_opt(tmp_path / "opt.txt") == {"a": True, "b": False, "n": 8, "lr": 0.0002, "wd": 1e-05,
                                              "name": "t2m", "norm": "None", "milestones": "[150000, 250000]",
                                              "neg": -3}


def test_command_line(tmp_path, capsys):
    write_release(tmp_path / "t2m", parts=("rvq", "mask"))
    assert main(["import-momask", str(tmp_path / "t2m"), str(tmp_path / "ours")]) == 0
    assert "Imported MoMask release" in capsys.readouterr().out
    assert (tmp_path / "ours" / "mask.safetensors").is_file()
    assert main(["import-momask", str(tmp_path / "nothing"), str(tmp_path / "ours2")]) == 2
    assert "nothing: no such folder" in capsys.readouterr().err
