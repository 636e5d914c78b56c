"""The learned part of the quality resident: a small MLP from measured features to flag probabilities.

Inputs are standardised with the training set's mean and spread (buffers in the state dict); each flag has its
own decision threshold, tuned on a validation set (also a buffer). Two more outputs (dataset.GATES) are the
score's PSF gates; they have no threshold. Inference runs in float64 on one thread
with deterministic kernels, so the same features give the same probabilities on any CPU run.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from torch import nn

from astropolis.models.base import deterministic
from astropolis.models.quality.dataset import FLAGS, OUTPUTS
from astropolis.models.quality.features import FEATURE_NAMES

HIDDEN = 128
DROPOUT = 0.1


class QualityNet(nn.Module):
    """features (n, F) -> logits (n, 9): the seven flags, then the two gates (dataset.OUTPUTS)."""

    mean: torch.Tensor
    scale: torch.Tensor
    thresholds: torch.Tensor

    def __init__(
        self,
        n_features: int = len(FEATURE_NAMES),
        n_flags: int = len(FLAGS),
        n_outputs: int = len(OUTPUTS),
        hidden: int = HIDDEN,
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        self.register_buffer("thresholds", torch.full((n_flags,), 0.5))
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.SiLU(),
            nn.Dropout(DROPOUT),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Dropout(DROPOUT),
            nn.Linear(hidden, n_outputs),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Flag logits for standardised-on-the-fly features."""
        return self.net((features - self.mean) / self.scale)


def save(model: QualityNet, path: Path) -> None:
    """Write the state dict (float32 tensors) to `path`."""
    state = {key: value.detach().to(torch.float32).contiguous() for key, value in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    Path(path).write_bytes(buffer.getvalue())


def load(weights: bytes) -> QualityNet:
    """A float64 model in eval mode from state-dict bytes (loaded with weights_only=True)."""
    state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    model = QualityNet()
    model.load_state_dict(state)
    return model.double().eval()


def predict(model: QualityNet, features: np.ndarray) -> np.ndarray:
    """Probabilities (n, 9), in dataset.OUTPUTS order, for features (n, F) or (F,)."""
    batch = np.atleast_2d(np.asarray(features, dtype=np.float64))
    with deterministic(), torch.no_grad():
        logits = model(torch.from_numpy(batch))
        return torch.sigmoid(logits).numpy().astype(np.float64)
