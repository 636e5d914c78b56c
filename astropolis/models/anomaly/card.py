"""Figures for MODEL_CARD.md: one injected example of each kind, the top-scored held-out sources, and the score
distributions of ordinary and injected sources against the threshold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from astropolis.models.anomaly.dataset import ANOMALIES_PER_FRAME, example
from astropolis.models.anomaly.evaluation import Measured
from astropolis.models.anomaly.inject import KINDS
from astropolis.models.anomaly.model import AnomalyModel


def _stamp(axis: Any, data: np.ndarray, x: float, y: float, half: int, rms: float, title: str) -> None:
    """An asinh-stretched cutout around (x, y)."""
    height, width = data.shape
    cx, cy = round(x), round(y)
    cut = data[max(0, cy - half) : min(height, cy + half + 1), max(0, cx - half) : min(width, cx + half + 1)]
    cut = np.asarray(cut, dtype=np.float64)
    axis.imshow(np.arcsinh((cut - np.median(cut)) / (3.0 * rms)), origin="lower", cmap="gray", interpolation="nearest")
    axis.set_title(title, fontsize=8)
    axis.set_axis_off()


def draw_figures(model: AnomalyModel, judged: list[Measured], out: Path, *, seed: int) -> list[Path]:
    """Write anomaly_kinds.png, anomaly_top.png and anomaly_scores.png into `out`; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    held_seed = seed + 1000
    # One example of each kind: the first held-out frame that has it.
    fig, axes = plt.subplots(1, len(KINDS), figsize=(2.0 * len(KINDS), 2.4))
    for axis, kind in zip(axes, KINDS, strict=True):
        index = next((i for i, m in enumerate(judged) if any(j.kind == kind for j in m.injected)), None)
        if index is None:
            axis.set_axis_off()
            continue
        frame = example(held_seed, index, "held_out", anomalies=ANOMALIES_PER_FRAME)
        item = next(j for j in judged[index].injected if j.kind == kind)
        half = int(max(12, item.radius_px * 1.6))
        _stamp(
            axis, frame.data, item.x, item.y, half, judged[index].sources.background_rms, f"{kind}\nS/N {item.snr:.0f}"
        )
    fig.tight_layout()
    written.append(out / "anomaly_kinds.png")
    fig.savefig(written[-1], dpi=80)
    plt.close(fig)

    scores = [np.round(model.score(model.features(m.sources.features, m.sources.cutouts)), 4) for m in judged]
    pooled = [(float(s), i, j) for i, frame_scores in enumerate(scores) for j, s in enumerate(frame_scores)]
    pooled.sort(key=lambda item: (-item[0], item[1], item[2]))
    fig, axes = plt.subplots(3, 8, figsize=(16, 6.6))
    cache: dict[int, np.ndarray] = {}
    for axis, (score, i, j) in zip(axes.ravel(), pooled[:24], strict=False):
        if i not in cache:
            cache[i] = example(held_seed, i, "held_out", anomalies=ANOMALIES_PER_FRAME).data
        sources = judged[i].sources
        label = judged[i].labels[j] or "ordinary"
        half = int(max(12, 4 * sources.psf_fwhm_px))
        _stamp(axis, cache[i], sources.x[j], sources.y[j], half, sources.background_rms, f"{score:.3f} {label}")
    fig.suptitle("Top-scored held-out sources (score, truth label)")
    fig.tight_layout()
    written.append(out / "anomaly_top.png")
    fig.savefig(written[-1], dpi=70)
    plt.close(fig)

    labels = np.concatenate([m.labels for m in judged])
    flat = np.concatenate(scores)
    fig, axis = plt.subplots(figsize=(7, 3.5))
    bins = np.linspace(float(flat.min()), float(flat.max()), 60).tolist()
    axis.hist(flat[labels == ""], bins=bins, alpha=0.6, label="ordinary", density=True)
    axis.hist(flat[np.isin(labels, KINDS)], bins=bins, alpha=0.6, label="injected unusual", density=True)
    axis.axvline(model.threshold, color="k", linestyle="--", label=f"threshold {model.threshold:.3f}")
    axis.set_xlabel("anomaly score")
    axis.set_yscale("log")
    axis.legend()
    fig.tight_layout()
    written.append(out / "anomaly_scores.png")
    fig.savefig(written[-1], dpi=80)
    plt.close(fig)
    return written
