"""The quality resident's output and how its 0-100 score is made.

score = 100 x prod_k (1 - W_k p_k) x g_seeing x g_elongation x g_stars, rounded to 0.1, where p_k are the
model's flag probabilities and the g terms are fixed, monotone penalties on measured quantities (they make the
score fall smoothly with seeing, elongation and lost stars, even where a flag's probability has saturated).
"""

from __future__ import annotations

import math

from pydantic import Field

from astropolis.models.base import Output, rounded
from astropolis.models.quality.dataset import FLAGS
from astropolis.models.quality.features import Measurements

# How much each flag, when certain, takes off the score (1 - W).
FLAG_WEIGHTS: dict[str, float] = {
    "clouds": 0.55,
    "bad_focus": 0.5,
    "tracking": 0.5,
    "trail": 0.25,
    "hot_pixels": 0.15,
    "saturated": 0.1,
    "low_star_count": 0.5,
}
GOOD_SEEING_ARCSEC = 2.0
ROUND_ELONGATION = 1.1
ENOUGH_STARS = 20


class QualityFlag(Output):
    """One quality flag."""

    name: str = Field(description="clouds, bad_focus, tracking, trail, hot_pixels, saturated or low_star_count.")
    raised: bool = Field(description="Whether the flag is raised (confidence at or above its tuned threshold).")
    confidence: float = Field(ge=0, le=1, description="Model probability that the condition is present.")


class QualityReport(Output):
    """The quality of one frame."""

    score: float = Field(ge=0, le=100, description="0 (useless) to 100 (excellent).")
    flags: tuple[QualityFlag, ...] = Field(description="Every flag, raised or not, in a fixed order.")
    seeing_arcsec: float | None = Field(description="Median FWHM of bright stars, arcsec (None: no stars or scale).")
    fwhm_px: float | None = Field(description="Median FWHM of bright stars, pixels (None: too few stars).")
    background_adu: float = Field(description="Median background level, ADU (bias included).")
    background_rms_adu: float = Field(description="Background noise, ADU.")
    sky_gradient_pct: float = Field(description="Background change from centre to edge, percent of the sky level.")
    star_count: int = Field(ge=0, description="Point-like sources with S/N >= 10.")
    elongation: float | None = Field(description="Median a/b of bright stars (1 = round).")
    saturated_pixels: int = Field(ge=0, description="Pixels at the saturation level.")

    @property
    def raised(self) -> list[str]:
        """Names of the raised flags."""
        return [flag.name for flag in self.flags if flag.raised]


def score(probabilities: dict[str, float], measured: Measurements) -> float:
    """The 0-100 score of a frame from its flag probabilities and measurements."""
    value = 100.0
    for name, weight in FLAG_WEIGHTS.items():
        value *= 1.0 - weight * probabilities[name]
    seeing = measured.seeing_arcsec if measured.seeing_arcsec is not None else measured.fwhm_px
    if seeing is not None:
        value *= min(1.0, max(0.5, 1.0 - 0.06 * max(0.0, seeing - GOOD_SEEING_ARCSEC)))
    if measured.elongation is not None:
        value *= min(1.0, max(0.5, 1.0 - 0.25 * max(0.0, measured.elongation - ROUND_ELONGATION)))
    value *= 0.4 + 0.6 * math.sqrt(min(1.0, measured.star_count / ENOUGH_STARS))
    return rounded(min(100.0, max(0.0, value)), 1)


def report(probabilities: dict[str, float], thresholds: dict[str, float], measured: Measurements) -> QualityReport:
    """The report of one frame."""

    def optional(value: float | None, digits: int) -> float | None:
        return rounded(value, digits) if value is not None and math.isfinite(value) else None

    return QualityReport(
        score=score(probabilities, measured),
        flags=tuple(
            QualityFlag(
                name=name,
                raised=probabilities[name] >= thresholds[name],
                confidence=rounded(probabilities[name], 4),
            )
            for name in FLAGS
        ),
        seeing_arcsec=optional(measured.seeing_arcsec, 3),
        fwhm_px=optional(measured.fwhm_px, 3),
        background_adu=rounded(measured.background_adu, 3),
        background_rms_adu=rounded(measured.background_rms_adu, 4),
        sky_gradient_pct=rounded(min(measured.sky_gradient_pct, 1e6), 3),
        star_count=measured.star_count,
        elongation=optional(measured.elongation, 4),
        saturated_pixels=measured.saturated_pixels,
    )
