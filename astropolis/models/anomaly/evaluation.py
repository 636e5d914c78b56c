"""Measuring simulated frames and judging the model on them: labels from the injection and the simulator's
truth, precision at k, recall by kind, what the review proposals would hit, and how defects fare."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from astropolis.models.anomaly.catalog import without_catalogued
from astropolis.models.anomaly.dataset import Example
from astropolis.models.anomaly.features import Sources, measure
from astropolis.models.anomaly.inject import KINDS
from astropolis.models.anomaly.model import AnomalyModel

PRECISION_AT = (10, 25, 50, 100, 200)
REVIEWS_PER_FRAME = 3
FRAMES_PER_NIGHT = 25
NIGHT_TOP = 10


@dataclass(frozen=True)
class Measured:
    """One frame's scoreable sources with their labels: an injected kind, "defect", or "" (ordinary)."""

    sources: Sources
    labels: np.ndarray  # (n,) str
    injected: list[Any]  # inject.Injected
    matched: list[np.ndarray]  # per injected object, indices of its sources
    defect_hits: int  # truth cosmic-ray / hot-pixel positions set aside as defects


def _near_line(x: np.ndarray, y: np.ndarray, trail: dict[str, Any], reach: float) -> np.ndarray:
    """Points within `reach` pixels of a trail segment or hot column."""
    if trail["kind"] == "column":
        return (np.abs(x - trail["x"]) < reach) & (y > trail["y0"] - reach) & (y < trail["y1"] + reach)
    x0, y0, x1, y1 = trail["x0"], trail["y0"], trail["x1"], trail["y1"]
    dx, dy = x1 - x0, y1 - y0
    length2 = max(dx * dx + dy * dy, 1e-9)
    t = np.clip(((x - x0) * dx + (y - y0) * dy) / length2, 0.0, 1.0)
    return np.hypot(x - (x0 + t * dx), y - (y0 + t * dy)) < reach


def label(example: Example, sources: Sources) -> Measured:
    """Labels for a measured frame from its injected objects and the simulator's defect truth."""
    labels = np.full(len(sources), "", dtype=object)
    reach = 2.0 * max(sources.psf_fwhm_px, 1.0)
    if len(example.defect_xy) and len(sources):
        distance = np.hypot(
            sources.x[:, None] - example.defect_xy[None, :, 0], sources.y[:, None] - example.defect_xy[None, :, 1]
        )
        labels[distance.min(axis=1) < reach] = "defect"
    for trail in example.trails:
        labels[_near_line(sources.x, sources.y, trail, reach)] = "defect"
    matched = []
    for item in example.injected:
        near = np.flatnonzero(np.hypot(sources.x - item.x, sources.y - item.y) < item.radius_px)
        labels[near] = item.kind
        matched.append(near)
    hits = 0
    if len(example.defect_xy) and len(sources.defect_xy):
        gap = np.hypot(
            example.defect_xy[:, None, 0] - sources.defect_xy[None, :, 0],
            example.defect_xy[:, None, 1] - sources.defect_xy[None, :, 1],
        )
        hits = int((gap.min(axis=0) < 3.0).sum())
    return Measured(sources, labels.astype(str), list(example.injected), matched, hits)


def measure_example(example: Example) -> Sources:
    """A simulated frame's scoreable sources, exactly as the resident measures them."""
    from astropy.wcs import WCS

    wcs = WCS(example.header, naxis=2).celestial
    return without_catalogued(measure(example.data, example.header), wcs)


def measure_examples(examples: Iterable[Example]) -> list[Measured]:
    """Measure and label every frame."""
    return [label(example, measure_example(example)) for example in examples]


def _scores(model: AnomalyModel, frames: Sequence[Measured]) -> list[np.ndarray]:
    return [np.round(model.score(model.features(f.sources.features, f.sources.cutouts)), 4) for f in frames]


def evaluate(model: AnomalyModel, frames: Sequence[Measured]) -> dict[str, Any]:
    """Precision at k over all held-out sources ranked together, recall at the threshold by kind, precision of
    the review jobs the resident would propose, of each night's top list, and the false-positive rate."""
    scores = _scores(model, frames)
    threshold = round(model.threshold, 4)
    pooled = np.concatenate(scores) if scores else np.zeros(0)
    labels = np.concatenate([f.labels for f in frames]) if frames else np.zeros(0, dtype=str)
    unusual = np.isin(labels, KINDS)
    order = np.argsort(-pooled, kind="stable")
    injected = sum(len(f.injected) for f in frames)
    precision = {
        f"p@{k}": round(float(unusual[order[:k]].mean()), 4) for k in (*PRECISION_AT, injected) if k <= len(order)
    }
    found: dict[str, list[int]] = {kind: [0, 0] for kind in KINDS}
    for frame, frame_scores in zip(frames, scores, strict=True):
        for item, near in zip(frame.injected, frame.matched, strict=True):
            found[item.kind][1] += 1
            found[item.kind][0] += int(bool(near.size) and bool((frame_scores[near] >= threshold).any()))
    detected = sum(int(near.size > 0) for f in frames for near in f.matched)
    reviews = hits = 0
    for frame, frame_scores in zip(frames, scores, strict=True):
        top = np.argsort(-frame_scores, kind="stable")[:REVIEWS_PER_FRAME]
        top = top[frame_scores[top] >= threshold]
        reviews += top.size
        hits += int(np.isin(frame.labels[top], KINDS).sum())
    nights = []
    for start in range(0, len(frames), FRAMES_PER_NIGHT):
        night_scores = pooled[_slice(scores, start, start + FRAMES_PER_NIGHT)]
        night_labels = labels[_slice(scores, start, start + FRAMES_PER_NIGHT)]
        best = np.argsort(-night_scores, kind="stable")[:NIGHT_TOP]
        best = best[night_scores[best] >= threshold]
        if best.size:
            nights.append(float(np.isin(night_labels[best], KINDS).mean()))
    ordinary = labels == ""
    defects = labels == "defect"
    return {
        "frames": len(frames),
        "sources_scored": len(pooled),
        "injected": injected,
        "injected_detected": detected,
        "threshold": threshold,
        "precision": precision,
        "recall_at_threshold": round(sum(v[0] for v in found.values()) / max(injected, 1), 4),
        "recall_by_kind": {kind: f"{v[0]}/{v[1]}" for kind, v in found.items()},
        "above_threshold": int((pooled >= threshold).sum()),
        "precision_at_threshold": round(float(unusual[pooled >= threshold].mean()), 4)
        if (pooled >= threshold).any()
        else None,
        "review_jobs": reviews,
        "review_precision": round(hits / reviews, 4) if reviews else None,
        "night_top10_precision": round(float(np.mean(nights)), 4) if nights else None,
        "ordinary_above_threshold_rate": round(float((pooled[ordinary] >= threshold).mean()), 5)
        if ordinary.any()
        else None,
        "scored_defects": int(defects.sum()),
        "scored_defects_above_threshold": int((pooled[defects] >= threshold).sum()),
        "defects_set_aside": {k: sum(f.sources.defects.get(k, 0) for f in frames) for k in frames[0].sources.defects}
        if frames
        else {},
        "truth_defect_pixels_set_aside": sum(f.defect_hits for f in frames),
    }


def _slice(scores: Sequence[np.ndarray], first: int, stop: int) -> slice:
    """The pooled index range of frames first..stop-1."""
    sizes = np.cumsum([0, *[len(s) for s in scores]])
    stop = min(stop, len(scores))
    return slice(int(sizes[first]), int(sizes[stop]))
