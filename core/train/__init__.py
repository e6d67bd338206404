"""`momask train`: the training of MoMask's networks on a prepared dataset (docs/momask.md) and of the
evaluator (its "Evaluation"), single-process or under torchrun, and the assembly of the trained parts into a model
directory. The default model:

    momask train rvq       --config configs/default.json --out runs/rvq
    momask train mask      --config configs/default.json --out runs/mask     --rvq runs/rvq
    momask train residual  --config configs/default.json --out runs/residual --rvq runs/rvq
    momask train length    --config configs/default.json --out runs/length
    momask train evaluator --config configs/default.json --out runs/evaluator
    momask train assemble  --out models/default --rvq runs/rvq --mask runs/mask --residual runs/residual
                           --length runs/length --evaluator runs/evaluator

Any of them runs as `torchrun --nproc_per_node N -m core train ...` on several processes or machines. An
interrupted command (Ctrl-C, SIGTERM, a crash after a checkpoint) continues where it stopped when run again.

    config.py  the JSON training config        data.py   clip features, tokens, caption pools, sampling
    tasks.py   per-kind batches and losses     loop.py   optimiser, schedule, AMP, DDP, checkpoints, resume
    ddp.py     the torchrun process group      log.py    log.csv and curves.png
    parts.py   finished parts -> model directory
"""
from .config import KINDS, ConfigError, load_config
from .loop import TrainingInterrupted, train
from .parts import assemble_model_dir

__all__ = ["KINDS", "ConfigError", "TrainingInterrupted", "assemble_model_dir", "load_config", "train"]
