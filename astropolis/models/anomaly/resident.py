"""The anomaly resident: one frame → an AnomalyReport (every scoreable source scored, the most unusual listed
with where they are and why), plus `review` job requests for the few above the calibrated threshold.

Scoring is unsupervised: the model (model.py) was fitted on ordinary simulated frames only, and its threshold is
the 99.5th percentile of scores of ordinary sources in frames it never saw. Defects (cosmic rays, hot pixels and
columns, trails), sources that cannot be measured fairly (saturated, at the edge, faint, no PSF) and sources
inside catalogued galaxies (catalog.py) are set aside before scoring and counted by kind (detection.py says how
each is recognised). `top_anomalies` picks a night's most unusual sources across frames for the end-of-night
review.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from astropolis.models.anomaly.catalog import without_catalogued
from astropolis.models.anomaly.features import DEFECT_KINDS, Sources, measure
from astropolis.models.anomaly.model import DISPLAY, FEATURES, AnomalyModel, load
from astropolis.models.base import Context, FrameInput, Output, ProposedJob, Resident, checked_weights, rounded
from astropolis.models.errors import BadInput

WEIGHTS = Path(__file__).with_name("anomaly.npz")
WEIGHTS_SHA256 = "sha256:e0cdd5c3bf33fa19a739868e9147d2a1914e023613136d3e292a2c77790dca1c"
TOP_K = 10  # sources listed per frame
MAX_REVIEWS = 3  # review jobs proposed per frame at most
REVIEW_PRIORITY = 30  # reviews are for people in daytime, below any observation
SAME_OBJECT_ARCSEC = 3.0  # two frames' anomalies closer than this are one object in `top_anomalies`


class AnomalySource(Output):
    """One scored source."""

    rank: int = Field(description="1 for the most unusual source of the frame.")
    x: float = Field(description="Column of the source centre, 0-based pixels.")
    y: float = Field(description="Row of the source centre, 0-based pixels.")
    ra_deg: float = Field(description="ICRS right ascension, degrees.")
    dec_deg: float = Field(description="ICRS declination, degrees.")
    score: float = Field(description="Isolation-forest anomaly score in (0, 1]; higher is more unusual.")
    snr: float = Field(description="Signal-to-noise in an aperture of 3 PSF FWHM.")
    features: dict[str, float] = Field(description="The model's features (see model.FEATURES).")
    why: str = Field(description="The features furthest outside their normal range, in readable units.")


class AnomalyReport(Output):
    """What the anomaly resident says about one frame."""

    schema_version: Literal[1] = 1
    frame_id: str = Field(description="Lake id of the frame.")
    psf_fwhm_px: float = Field(description="PSF size the features are normalised by (2 x stars' r50), pixels.")
    sources_detected: int = Field(description="Sources sep detected.")
    sources_scored: int = Field(description="Sources scored (detected minus those set aside).")
    set_aside: dict[str, int] = Field(description="Detections not scored, by kind: defects and unmeasurable ones.")
    threshold: float = Field(description="Score above which a source is unusual (99.5th pct of normal sources).")
    above_threshold: int = Field(description="Scored sources above the threshold.")
    top: tuple[AnomalySource, ...] = Field(description=f"The {TOP_K} highest-scored sources, most unusual first.")


class NightAnomaly(Output):
    """One of a night's most unusual objects, as `top_anomalies` picks them."""

    frame_id: str = Field(description="Frame where it scored highest.")
    source: AnomalySource = Field(description="Its entry in that frame's report.")
    threshold: float = Field(description="That report's threshold.")
    frames: int = Field(description="How many frames listed it (within SAME_OBJECT_ARCSEC).")


def _why(model: AnomalyModel, row: np.ndarray) -> str:
    """A short human reason: the most abnormal features with their normal ranges."""
    parts = []
    for name, value, low, high, outside in model.reasons(row):
        parts.append(f"{DISPLAY[name][0]} {value:.3g} (normal {low:.3g}-{high:.3g})")
        if not outside:
            return f"an unusual combination; nearest its limit: {parts[0]}"
    return "; ".join(parts)


def report(model: AnomalyModel, frame_id: str, sources: Sources, top_k: int = TOP_K) -> AnomalyReport:
    """The report for one measured frame (pure: measured sources and model in, rounded report out)."""
    features = model.features(sources.features, sources.cutouts)
    scores = np.round(model.score(features), 4)
    # Ties (rare after rounding) go to the brighter source, then to position: the order never depends on luck.
    order = np.lexsort((sources.x, sources.y, -sources.snr, -scores))[:top_k]
    listed = []
    for rank, index in enumerate(order, 1):
        row = features[index]
        listed.append(
            AnomalySource(
                rank=rank,
                x=rounded(sources.x[index], 3),
                y=rounded(sources.y[index], 3),
                ra_deg=rounded(float(sources.ra_deg[index]), 7),
                dec_deg=rounded(float(sources.dec_deg[index]), 7),
                score=rounded(scores[index], 4),
                snr=rounded(sources.snr[index], 1),
                features={name: rounded(float(row[i]), 4) for i, name in enumerate(FEATURES)},
                why=_why(model, row),
            )
        )
    threshold = rounded(model.threshold, 4)
    return AnomalyReport(
        frame_id=frame_id,
        psf_fwhm_px=rounded(sources.psf_fwhm_px, 3),
        sources_detected=sources.detected,
        sources_scored=len(sources),
        set_aside={kind: int(sources.defects.get(kind, 0)) for kind in DEFECT_KINDS},
        threshold=threshold,
        above_threshold=int(np.sum(scores >= threshold)),
        top=tuple(listed),
    )


class AnomalyResident(Resident[AnomalyReport]):
    """Unusual sources in a frame: features + autoencoder residual scored by an isolation forest."""

    name = "anomaly"
    version = "1.0.0"
    input_kind = "frame"
    output_model = AnomalyReport

    def __init__(self, weights: Path = WEIGHTS, weights_sha256: str = WEIGHTS_SHA256) -> None:
        self._weights = Path(weights)
        self._expected = weights_sha256

    @property
    def weights_sha256(self) -> str:
        """sha256 of the committed model file."""
        return self._expected

    @cached_property
    def model(self) -> AnomalyModel:
        """The model, loaded once and only if its file hashes to the expected sha256."""
        return load(checked_weights(self._weights, self._expected))

    def run(self, inputs: FrameInput) -> AnomalyReport:
        """Measure, score and rank the frame's sources."""
        data = inputs.data
        source = inputs.frame.id[:19]
        if min(data.shape) < 64:
            raise BadInput(f"{source}: frame {data.shape[1]}x{data.shape[0]} is too small to judge sources (64x64)")
        if not np.isfinite(data).all():
            data = np.where(np.isfinite(data), data, float(np.median(data[np.isfinite(data)])))
        model = self.model
        sources = without_catalogued(measure(data, inputs.header), inputs.wcs)
        return report(model, inputs.frame.id, sources)

    def propose(self, output: AnomalyReport, inputs: FrameInput, context: Context) -> Sequence[ProposedJob]:
        """A `review` job for each of the (at most MAX_REVIEWS) top sources at or above the threshold."""
        jobs = []
        for item in output.top[:MAX_REVIEWS]:
            if item.score < output.threshold:
                break
            jobs.append(
                ProposedJob(
                    kind="review",
                    reason=(
                        f"unusual source #{item.rank} at x={item.x:.0f} y={item.y:.0f} (score {item.score:.3f}"
                        f" >= {output.threshold:.3f}, S/N {item.snr:.0f}): {item.why}"
                    ),
                    priority=REVIEW_PRIORITY,
                    ra_deg=item.ra_deg,
                    dec_deg=item.dec_deg,
                    name=f"anomaly-{item.rank}",
                )
            )
        return jobs


def top_anomalies(reports: Sequence[AnomalyReport], k: int, *, above_threshold: bool = True) -> list[NightAnomaly]:
    """The night's k most unusual objects across frames, highest score first; an object listed by several frames
    (within SAME_OBJECT_ARCSEC) counts once, at its best score. By default only sources at or above their
    report's threshold qualify."""
    if k <= 0:
        return []
    candidates = [
        (item.score, report.frame_id, item.rank, report, item)
        for report in reports
        for item in report.top
        if not above_threshold or item.score >= report.threshold
    ]
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    picked: list[_Pick] = []
    for _, _, _, rep, item in candidates:
        for entry in picked:
            if _separation_arcsec(entry.item, item) < SAME_OBJECT_ARCSEC:
                entry.frames += 1
                break
        else:
            picked.append(_Pick(rep, item))
    return [
        NightAnomaly(frame_id=p.report.frame_id, source=p.item, threshold=p.report.threshold, frames=p.frames)
        for p in picked[:k]
    ]


@dataclass
class _Pick:
    """A night anomaly being gathered: its best listing and how many frames listed it."""

    report: AnomalyReport
    item: AnomalySource
    frames: int = 1


def _separation_arcsec(a: AnomalySource, b: AnomalySource) -> float:
    """Angular distance between two sources (haversine), arcseconds."""
    ra1, dec1, ra2, dec2 = map(math.radians, (a.ra_deg, a.dec_deg, b.ra_deg, b.dec_deg))
    h = math.sin((dec2 - dec1) / 2) ** 2 + math.cos(dec1) * math.cos(dec2) * math.sin((ra2 - ra1) / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h)))) * 3600.0
