"""Real/bogus figures of merit: ROC AUC, false-positive rate at a fixed false-negative rate, recall by S/N."""

from __future__ import annotations

from typing import Any

import numpy as np

SNR_BINS = ((5.0, 7.0), (7.0, 10.0), (10.0, 15.0), (15.0, 25.0), (25.0, 60.0), (10.0, float("inf")))


def roc(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false-positive rate, true-positive rate, threshold) at every distinct score, highest threshold first."""
    order = np.argsort(-scores, kind="stable")
    s, p = scores[order], positive[order].astype(np.float64)
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp, fp = np.cumsum(p)[distinct], np.cumsum(1.0 - p)[distinct]
    tpr = np.r_[0.0, tp / max(p.sum(), 1.0)]
    fpr = np.r_[0.0, fp / max((1.0 - p).sum(), 1.0)]
    return fpr, tpr, np.r_[np.inf, s[distinct]]


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (trapezoids)."""
    fpr, tpr, _ = roc(scores, positive)
    return float(np.trapezoid(tpr, fpr))


def fpr_at_fnr(scores: np.ndarray, positive: np.ndarray, fnr: float = 0.05) -> tuple[float, float]:
    """(false-positive rate, score threshold) where the false-negative rate first falls to `fnr` or below."""
    fpr, tpr, threshold = roc(scores, positive)
    index = int(np.argmax(tpr >= 1.0 - fnr))
    return float(fpr[index]), float(threshold[index])


def recall_by_snr(
    transient_snr: np.ndarray, candidate: np.ndarray, covered: np.ndarray, p_real: np.ndarray, threshold: float
) -> list[dict[str, Any]]:
    """Per S/N bin: injected transients (inside the subtracted region), the share detected at ≥ 5sigma, and the
    share detected and classified real (p ≥ `threshold`)."""
    rows = []
    for low, high in SNR_BINS:
        chosen = covered & (transient_snr >= low) & (transient_snr < high)
        found = candidate[chosen]
        detected = found >= 0
        classified = detected & (p_real[np.maximum(found, 0)] >= threshold)
        count = int(chosen.sum())
        rows.append(
            {
                "snr_min": low,
                "snr_max": None if not np.isfinite(high) else high,
                "injected": count,
                "detected": float(detected.mean()) if count else None,
                "recall": float(classified.mean()) if count else None,
            }
        )
    return rows
