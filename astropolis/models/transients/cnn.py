"""The real/bogus network: a braai-sized CNN (≈ 32 k parameters) over (new, reference, difference, unconvolved
new) stamps.

Four 3x3 convolutions (8, 16, 32, 32 channels, two max-pools) and two dense layers give probabilities over
CLASSES. Training runs in float32; inference runs in float64 on one thread with deterministic algorithms, so
the last-bit differences between CPUs' kernels stay ~1e-15 and the rounded probabilities are byte-identical.
Weights are stored as an uncompressed .npz whose bytes depend only on the values (fixed order, fixed zip
timestamps), so the same training run gives the same sha256.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from astropolis.models.base import deterministic
from astropolis.models.transients.stamps import STAMP_CHANNELS, STAMP_SIZE

CLASSES = ("real", "cosmic_ray", "bad_pixel", "satellite_trail", "artefact")
BATCH = 64  # small batches keep float64 inference in cache


def build_model() -> Any:
    """A freshly initialised network (uses torch's current RNG state)."""
    from torch import nn

    side = ((STAMP_SIZE - 4) // 2 - 4) // 2
    return nn.Sequential(
        nn.Conv2d(STAMP_CHANNELS, 8, 3),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3),
        nn.ReLU(),
        nn.Conv2d(32, 32, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(32 * side * side, 32),
        nn.ReLU(),
        nn.Linear(32, len(CLASSES)),
    )


def parameter_count(model: Any) -> int:
    """Number of trainable parameters."""
    return int(sum(p.numel() for p in model.parameters()))


def weights_bytes(model: Any) -> bytes:
    """The model's parameters as deterministic .npz bytes (float32, state-dict order)."""
    arrays = {name: value.detach().cpu().numpy().astype(np.float32) for name, value in model.state_dict().items()}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # uncompressed; zip entries carry a fixed 1980-01-01 timestamp
    return buffer.getvalue()


def load_model(data: bytes) -> Any:
    """The network with weights from .npz bytes, in float64 evaluation mode."""
    import torch

    model = build_model()
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        state = {name: torch.from_numpy(np.array(arrays[name], dtype=np.float32)) for name in arrays.files}
    model.load_state_dict(state)
    return model.double().eval()


def probabilities(model: Any, stamps: np.ndarray) -> np.ndarray:
    """(n, len(CLASSES)) float64 class probabilities of (n, STAMP_CHANNELS, S, S) stamps (1 thread, deterministic)."""
    import torch

    out = np.zeros((len(stamps), len(CLASSES)), dtype=np.float64)
    if len(stamps) == 0:
        return out
    with deterministic(1), torch.no_grad():
        for start in range(0, len(stamps), BATCH):
            batch = torch.from_numpy(np.ascontiguousarray(stamps[start : start + BATCH], dtype=np.float64))
            out[start : start + BATCH] = torch.softmax(model(batch), dim=1).numpy()
    return out
