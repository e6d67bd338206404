"""MoMask's networks, rebuilt from their `hparams` (the constructor kwargs a checkpoint stores)."""
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .length_estimator import LengthEstimator
from .mask_transformer import MaskTransformer
from .residual_transformer import ResidualTransformer
from .rvq import RVQVAE
from .transformer import BF16_NATIVE
from ..protocol import PRECISIONS

MODEL_CLASSES = {"rvq": RVQVAE, "mask": MaskTransformer, "residual": ResidualTransformer, "length": LengthEstimator}


def build_model(kind: str, hparams: dict) -> nn.Module:
    """A freshly initialised network of `kind` ("rvq", "mask", "residual", "length") with these sizes."""
    if kind not in MODEL_CLASSES:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {sorted(MODEL_CLASSES)}")
    try:
        return MODEL_CLASSES[kind](**hparams)
    except TypeError as err:
        raise ValueError(f"bad hyper-parameters for the {kind} model: {err}") from None


@dataclass
class MoMaskModels:
    """Everything generation needs from one model directory: networks, normalisation and the config."""
    rvq: RVQVAE
    mask: MaskTransformer
    residual: ResidualTransformer | None
    length: LengthEstimator | None
    mean: np.ndarray  # (263,) feature mean the networks were trained around
    std: np.ndarray  # (263,)
    config: dict = field(default_factory=dict)

    def set_precision(self, precision: str = "auto") -> str:
        """Choose the transformers' CPU inference precision (one of core.protocol.PRECISIONS) -> the one their
        products will run in ("bfloat16" only where the CPU has it natively; training and GPUs: float32)."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        on_cpu = next(self.mask.parameters()).device.type == "cpu"
        bf16 = precision != "float32" and BF16_NATIVE and on_cpu
        for net in (self.mask, self.residual):
            if net is not None:
                net.inference_dtype = torch.bfloat16 if bf16 else torch.float32
        return "bfloat16" if bf16 else "float32"

    def eval(self) -> "MoMaskModels":
        """Inference mode for every network (no dropout, no EMA codebook updates)."""
        for net in (self.rvq, self.mask, self.residual, self.length):
            if net is not None:
                net.eval()
        return self
