"""The learned part of the quality resident: a small MLP from measured features to flag probabilities, and small
monotone heads for the score's gates that must not waver.

Inputs are standardised with the training set's mean and spread (buffers in the state dict); each flag has its
own decision threshold, tuned on a validation set (also a buffer). The outputs after the flags (dataset.GATES)
are gates; they have no threshold. psf_focus and psf_tracking come from the MLP; each gate in MONOTONE comes from
a head of its own that reads only the features named there, each with the sign of the way the defect moves it,
through positive weights and rising activations: the gate cannot fall while every one of those features moves
the way more of the defect moves it, whatever the rest of the frame does. The MLP's clouds flag, reading every
feature, wavered along a clouds ladder with the PSF of a sparse field (p 0.96, 0.17, 0.95 at 0.6, 0.75 and
0.9 transparency loss, while the sky's gradient and patches grew and the stars thinned at every step), and its
tracking gate closed and opened with hot columns and cosmic rays on sparse fields (p 0.98, 1.00, then 0.04 as a
third hot column joined an 8-star field whose stars' a/b stayed at 1.34); the score reads psf_elongated instead.
Inference runs in float64 on one thread with deterministic kernels, so the same features give the same
probabilities on any CPU run.
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
MONOTONE_HIDDEN = 16
HEAD_SEED = 0
# Gates with a monotone head: feature -> +1 where more of the defect raises it, -1 where it lowers it. Clouds
# brighten and structure the sky (its gradient and patches, in % of the sky and in sigma) and thin out the stars.
MONOTONE: dict[str, dict[str, int]] = {
    "sky_clouds": {
        "log_sky": 1,
        "bg_grad_frac": 1,
        "bg_patch_frac": 1,
        "bg_grad_sig": 1,
        "bg_patch_sig": 1,
        "log_sources": -1,
        "log_stars": -1,
        "log_star_density": -1,
        "log_psf_stars": -1,
    },
    # Tracking errors stretch every star the same way: the stars' ellipticity, their median and 80th-percentile
    # elongation and how well their long axes agree.
    "psf_elongated": {
        "ellipticity": 1,
        "log_elongation": 1,
        "log_elongation_p80": 1,
        "orientation_coherence": 1,
    },
}
LEARNED = tuple(name for name in OUTPUTS if name not in MONOTONE)  # the MLP's outputs


class MonotoneHead(nn.Module):
    """Standardised features (n, F) -> one logit (n,), non-decreasing in sign x feature for each feature in
    `signs` and blind to the rest: two tanh layers and a linear read-out, every weight softplus(parameter) > 0."""

    index: torch.Tensor
    sign: torch.Tensor

    def __init__(self, signs: dict[str, int], hidden: int = MONOTONE_HIDDEN) -> None:
        super().__init__()
        self.register_buffer("index", torch.tensor([FEATURE_NAMES.index(name) for name in signs]), persistent=False)
        self.register_buffer("sign", torch.tensor([float(value) for value in signs.values()]), persistent=False)
        # Small positive weights to start (softplus(-1) = 0.31), so that tanh is not saturated from the outset, drawn
        # from a generator of the head's own: the global one drives the MLP's dropout, which stays as it was.
        draw = torch.Generator().manual_seed(HEAD_SEED)
        self.w1 = nn.Parameter(torch.randn(hidden, len(signs), generator=draw) * 0.3 - 1.0)
        self.b1 = nn.Parameter(torch.zeros(hidden))
        self.w2 = nn.Parameter(torch.randn(hidden, hidden, generator=draw) * 0.3 - 2.0)
        self.b2 = nn.Parameter(torch.zeros(hidden))
        self.w3 = nn.Parameter(torch.randn(hidden, generator=draw) * 0.3)
        self.b3 = nn.Parameter(torch.zeros(()))

    def forward(self, standardised: torch.Tensor) -> torch.Tensor:
        """The gate's logit."""
        signed = standardised[:, self.index] * self.sign
        positive = nn.functional.softplus
        hidden = torch.tanh(signed @ positive(self.w1).T + self.b1)
        hidden = torch.tanh(hidden @ positive(self.w2).T + self.b2)
        return hidden @ positive(self.w3) + self.b3


class QualityNet(nn.Module):
    """features (n, F) -> logits (n, len(OUTPUTS)): the seven flags, then the gates (dataset.OUTPUTS); the MLP
    gives the flags and the PSF gates, a MonotoneHead each gate in MONOTONE."""

    mean: torch.Tensor
    scale: torch.Tensor
    thresholds: torch.Tensor

    def __init__(
        self,
        n_features: int = len(FEATURE_NAMES),
        n_flags: int = len(FLAGS),
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
            nn.Linear(hidden, len(LEARNED)),
        )
        self.heads = nn.ModuleDict({name: MonotoneHead(signs) for name, signs in MONOTONE.items()})

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits (OUTPUTS order) for standardised-on-the-fly features."""
        standardised = (features - self.mean) / self.scale
        learned = self.net(standardised)
        columns = {name: learned[:, index] for index, name in enumerate(LEARNED)}
        columns.update({name: head(standardised) for name, head in self.heads.items()})
        return torch.stack([columns[name] for name in OUTPUTS], dim=1)


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
    """Probabilities (n, len(OUTPUTS)), in dataset.OUTPUTS order, for features (n, F) or (F,)."""
    batch = np.atleast_2d(np.asarray(features, dtype=np.float64))
    with deterministic(), torch.no_grad():
        logits = model(torch.from_numpy(batch))
        return torch.sigmoid(logits).numpy().astype(np.float64)
