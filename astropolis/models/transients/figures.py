"""Model-card figures: example triplets of each class and the held-out ROC curve (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from astropolis.models.transients.cnn import CLASSES
from astropolis.models.transients.metrics import fpr_at_fnr, roc


def triplet_grid(stamps: np.ndarray, labels: np.ndarray, path: Path, *, per_class: int = 3, seed: int = 0) -> None:
    """A grid: one row per (class, example), one column per stamp channel (new, reference, difference, and the
    unconvolved new frame when the stamps carry it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    rows: list[tuple[int, int]] = []
    for k in range(len(CLASSES)):
        members = np.flatnonzero(labels == k)
        rows.extend((k, int(i)) for i in rng.choice(members, min(per_class, len(members)), replace=False))
    titles = ("new", "reference", "difference", "new, unconvolved")[: stamps.shape[1]]
    fig, axes = plt.subplots(len(rows), len(titles), figsize=(1.4 * len(titles), 1.4 * len(rows)), squeeze=False)
    for r, (k, i) in enumerate(rows):
        for c, title in enumerate(titles):
            ax = axes[r, c]
            ax.imshow(stamps[i, c].astype(np.float32), cmap="gray", origin="lower", vmin=-2.0, vmax=4.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=8)
            if c == 0:
                ax.set_ylabel(CLASSES[k].replace("_", " "), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def roc_figure(p_real: np.ndarray, real: np.ndarray, path: Path) -> None:
    """ROC of p(real) against everything else, log false-positive axis, the 5 %-FNR point marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fpr, tpr, _ = roc(p_real, real)
    at, _ = fpr_at_fnr(p_real, real, 0.05)
    fig, ax = plt.subplots(figsize=(4.5, 3.6))
    ax.plot(np.maximum(fpr, 1e-4), tpr, lw=1.5)
    ax.axhline(0.95, color="grey", lw=0.7, ls="--")
    ax.plot([max(at, 1e-4)], [0.95], "o", color="C3", label=f"FPR {100 * at:.2f}% at 5% FNR")
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1.0)
    ax.set_ylim(0.5, 1.005)
    ax.set_xlabel("false-positive rate (bogus called real)")
    ax.set_ylabel("true-positive rate")
    ax.set_title("held-out simulated pairs: real vs bogus", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
