"""MoMask's networks, rebuilt from their `hparams` (the constructor kwargs a checkpoint stores)."""
from dataclasses import dataclass, field

import numpy as np
from torch import nn

from core.models.length_estimator import LengthEstimator
from core.models.mask_transformer import MaskTransformer
from core.models.residual_transformer import ResidualTransformer
from core.models.rvq import RVQVAE

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

    def eval(self) -> "MoMaskModels":
        """Inference mode for every network (no dropout, no EMA codebook updates)."""
        for net in (self.rvq, self.mask, self.residual, self.length):
            if net is not None:
                net.eval()
        return self
