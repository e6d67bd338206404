"""Training configuration: one JSON file holds the settings shared by all stages and one section per
network kind, so the five `momask train KIND` commands of a model read the same file. Every value is
checked on load; a typo in a key is an error rather than a silently ignored setting."""
import json
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

from ..limits import MAX_FRAMES

KINDS = ("rvq", "mask", "residual", "length", "evaluator")
OPTIMIZERS = ("adamw", "adam")
AMP_MODES = ("bf16", "fp16", "off")
# Settings a resumed run may change: they decide how long and how verbosely it runs, not what it learns.
RESUMABLE_CHANGES = ("iterations", "checkpoint_minutes", "log_every")


class ConfigError(ValueError):
    """A training config that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class StageConfig:
    """How one network trains. Learning rate: linear warm-up over `warmup` steps, then multiplied by
    `gamma` at each milestone (MultiStepLR); docs/momask.md gives the released values."""
    model: dict  # constructor hparams; cond_dim, code_dim, num_tokens, num_quantizers are filled in
    iterations: int
    batch_size: int  # per process
    lr: float
    optimizer: str = "adamw"
    betas: tuple = (0.9, 0.99)
    weight_decay: float = 0.0
    warmup: int = 0
    milestones: tuple = ()
    gamma: float = 0.1
    grad_clip: float | None = None
    window: int = 64  # rvq: frames per training window
    token_offsets: int = 4  # mask/residual: frame offsets 0..k-1 at which each clip is tokenised (crop variety)
    rvq: str | None = None  # mask/residual: the run directory of the trained RVQ (--rvq overrides)


@dataclass(frozen=True)
class TrainConfig:
    stages: dict  # kind -> StageConfig
    seed: int = 1234
    text_encoder: str = "minilm"
    captions_per_clip: int = 12  # pool of generated captions per clip, embedded once
    max_frames: int = MAX_FRAMES  # longest training crop of the transformers, length estimator and evaluator
    checkpoint_minutes: float = 5.0
    log_every: int = 50
    amp: str = "bf16"  # mixed precision on CUDA; CPUs always train in float32
    # Balanced sampling: each action's share of the draws is proportional to its frames ** action_balance
    # (1: as many draws as frames, 0: every action equally often), clips within an action by their frames;
    # null: every clip equally often (the released recipe's epochs).
    action_balance: float | None = None
    text_noise: float = 0.0  # std of Gaussian noise added to unit-length caption embeddings in training

    def stage(self, kind: str) -> StageConfig:
        if kind not in self.stages:
            raise ConfigError(f"the config has no '{kind}' section (it has: {', '.join(self.stages) or 'none'})")
        return self.stages[kind]

    def resume_key(self, kind: str) -> dict:
        """What a checkpoint must agree with to be resumed by this config."""
        stage = {k: v for k, v in asdict(self.stage(kind)).items() if k not in RESUMABLE_CHANGES}
        top = {k: v for k, v in asdict(self).items() if k != "stages" and k not in RESUMABLE_CHANGES}
        return json.loads(json.dumps(top | {kind: stage}))  # tuples -> lists, as stored in the checkpoint


def _check(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"{where}: {message}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _build(cls, values, where: str, extra: tuple = ()):
    _check(isinstance(values, dict), where, f"expected an object, got {type(values).__name__}")
    known = {f.name for f in fields(cls)} - {"stages"}
    unknown = sorted(set(values) - known - set(extra))
    _check(not unknown, where, f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known | set(extra)))}")
    required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
                and f.name != "stages"]
    missing = [name for name in required if name not in values]
    _check(not missing, where, f"missing key(s) {', '.join(missing)}")
    return {k: v for k, v in values.items() if k in known}


def _stage(kind: str, values, where: str) -> StageConfig:
    values = _build(StageConfig, values, where)
    for key in ("iterations", "batch_size", "window", "token_offsets"):
        if key in values:
            _check(_is_int(values[key]) and values[key] >= 1, f"{where}.{key}", "must be a positive integer")
    _check(isinstance(values["model"], dict), f"{where}.model", "must be an object of constructor hparams")
    _check(_is_number(values["lr"]) and values["lr"] > 0, f"{where}.lr", "must be a positive number")
    stage = StageConfig(**values)
    _check(stage.optimizer in OPTIMIZERS, f"{where}.optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
    _check(isinstance(stage.betas, (list, tuple)) and len(stage.betas) == 2
           and all(_is_number(b) and 0 <= b < 1 for b in stage.betas), f"{where}.betas", "must be two numbers in [0, 1)")
    _check(_is_number(stage.weight_decay) and stage.weight_decay >= 0, f"{where}.weight_decay", "must be >= 0")
    _check(_is_int(stage.warmup) and stage.warmup >= 0, f"{where}.warmup", "must be an integer >= 0")
    _check(isinstance(stage.milestones, (list, tuple)) and all(_is_int(m) and m > 0 for m in stage.milestones)
           and list(stage.milestones) == sorted(stage.milestones), f"{where}.milestones",
           "must be increasing positive step numbers")
    _check(_is_number(stage.gamma) and stage.gamma > 0, f"{where}.gamma", "must be a positive number")
    _check(stage.grad_clip is None or (_is_number(stage.grad_clip) and stage.grad_clip > 0), f"{where}.grad_clip",
           "must be a positive number or null")
    _check(stage.window % 4 == 0, f"{where}.window", "must be a multiple of 4 (frames per token)")
    _check(stage.token_offsets <= 4, f"{where}.token_offsets", "must be 1..4 (frames per token)")
    _check(stage.rvq is None or isinstance(stage.rvq, str), f"{where}.rvq", "must be a directory path or null")
    return StageConfig(**{**asdict(stage), "betas": tuple(stage.betas), "milestones": tuple(stage.milestones)})


def parse_config(values: dict, where: str = "config") -> TrainConfig:
    """A TrainConfig from the file's JSON object; `where` names the file in error messages."""
    top = _build(TrainConfig, values, where, extra=KINDS)
    stages = {kind: _stage(kind, values[kind], f"{where}: {kind}") for kind in KINDS if kind in values}
    config = TrainConfig(stages=stages, **top)
    _check(_is_int(config.seed), f"{where}: seed", "must be an integer")
    _check(_is_int(config.captions_per_clip) and config.captions_per_clip >= 1, f"{where}: captions_per_clip",
           "must be a positive integer")
    _check(_is_int(config.max_frames) and config.max_frames >= 4 and config.max_frames % 4 == 0,
           f"{where}: max_frames", "must be a positive multiple of 4")
    _check(_is_number(config.checkpoint_minutes) and config.checkpoint_minutes > 0, f"{where}: checkpoint_minutes",
           "must be a positive number")
    _check(_is_int(config.log_every) and config.log_every >= 1, f"{where}: log_every", "must be a positive integer")
    _check(config.amp in AMP_MODES, f"{where}: amp", f"must be one of {', '.join(AMP_MODES)}")
    _check(isinstance(config.text_encoder, str), f"{where}: text_encoder", "must be an encoder name")
    _check(config.action_balance is None or (_is_number(config.action_balance) and 0 <= config.action_balance <= 1),
           f"{where}: action_balance", "must be a number in [0, 1] or null")
    _check(_is_number(config.text_noise) and config.text_noise >= 0, f"{where}: text_noise", "must be >= 0")
    return config


def load_config(path) -> TrainConfig:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training config not found: {path}")
    try:
        values = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from None
    return parse_config(values, str(path))
