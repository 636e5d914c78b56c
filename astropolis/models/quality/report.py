"""The quality resident's output and how its 0-100 score is made.

score = 100 x prod_k (1 - P_k), rounded to 0.1: one penalty per defect, each a non-decreasing function of one
measured severity, so that the score can only fall as a defect grows:

    clouds     0.75 ramp(p_sky_clouds, 0.3, 0.5) sat((sky gradient % - 3.5) / 4)    (trails left out of the mesh)
    PSF        0.60 without a measurable PSF or with fewer than 6 point sources (a PSF from a few stars is noise,
               and a hot pixel or a strobe can make one), else max(focus, tracking)
      focus    0.60 lin(HFD": 2.4 -> 0.6, 12 -> 1) max(g(p_psf_focus), ramp(HFD", 5.5, 7.2))
      tracking 0.60 lin(a/b: 1.05 -> 0, 1.35 -> 0.6, 2.3 -> 1) max(g(p_psf_elongated), ramp(a/b, 1.45, 1.75))
    trail      0.50 s / (s + 25)             s: sum over the lines the multi-line search finds of min(strength - 16, 20)
    hot pixels 0.25 e / (e + 150)            e: hot pixels per 512² + 30 per hot column (not a trail's)
    no stars   0.85 (1 - min(1, n / 2))      n: point sources (S/N >= 10, not hits, hot pixels or trail pieces)

A line's strength is how surely it is a trail (a detection significance; 16 is where noise lines stop), not how
much of the frame it spoils: from 36 on a trail is certain, and more strength says nothing more. Past there it
wavers with the search's noise threshold and with where other trails cross it: a bright satellite lost 2.4 as a
third, faint one (strength 17) crossed it, and another 2.4 as a second satellite too faint to find joined the frame,
so the summed strength fell, and the score rose, as satellites were added. Capped, each certain trail counts the
same and a fainter one counts for less.

HFD is the stars' half-flux diameter (twice the median half-light radius; about 1.2 FWHM for a focused Moffat
star), the size autofocus routines use because it keeps growing through defocus: the FWHM of a donut does not
(its half maximum sits on the ring's edge, and on a sparse field it fell as the focus worsened). Each star's own
background is taken out first, so clouds (a residual sky pedestal) do not inflate it.

with sat(x) = 1 - exp(-max(x, 0)), ramp(x, a, b) = clip((x - a) / (b - a), 0, 1), lin(...) piecewise linear
through the points given (flat beyond them) and g(p) = ramp(p, 0.1, 0.2). p_psf_focus and p_psf_elongated are the
model's gate outputs (dataset.GATES): bad focus and tracking by the injected severity alone, not the flags, which
are negative on frames with too few stars to judge and so would close the gates as a defect thins the stars out.
p_psf_elongated is a monotone head that reads only the stars' ellipticity, elongation and how well their axes
agree: hot columns, hot pixels or cosmic rays cannot close it (the MLP's tracking gate, reading every feature,
went 1.00 -> 0.04 as a third hot column joined an 8-star field whose a/b stayed 1.34). Its ramp is the MLP gates'
own, where its F1 on the validation set peaks (0.944-0.949 from 0.1 to 0.2).
p_sky_clouds is the clouds gate, a monotone head (model.MONOTONE) that reads only the sky and the star counts, so it
cannot close while the sky's gradient and patches grow and the stars thin out (the clouds flag, reading the PSF
too, wavered there on a sparse field). Its ramp is centred on 0.4, the middle of its F1 plateau on the validation
set (0.93 from 0.35 to 0.45); the head reads a cluster's glow as a patchy sky more readily than the flag did (M13:
0.24, below the ramp).
The learned probability p only opens a gate (a galaxy or a cluster's glow tilts the sky like a cloud does; only
the model tells them apart), and so does a severity too large to be anything else; how much the score falls is
the measured severity's, which keeps rising where p has long saturated. Closed gates and dead zones keep the other
flags' wobble out of the score: on a clean, star-rich frame of HFD under 5.5" (seeing under ~4.6") the score is 100.
Losing the PSF measurement can only raise the penalty (0.60 is the PSF term's largest value), so a defect that
smears the stars away cannot lift the score. Saturation does not lower the score (a property of the exposure).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import Field

from astropolis.models.base import Output, rounded
from astropolis.models.quality.dataset import FLAGS
from astropolis.models.quality.features import Measurements

GATE = (0.1, 0.2)  # the PSF gates open their penalties from p = 0.1 and fully at 0.2
CLOUDS = {"weight": 0.75, "dead_pct": 3.5, "scale_pct": 4.0}  # galaxies tilt the mesh by up to ~3.5 %
CLOUDS_GATE = (0.3, 0.5)  # p_sky_clouds opens the clouds penalty from 0.3 and fully at 0.5
# Each gate's ramp (dataset.GATES; psf_tracking is the MLP's, which the score does not read: for the card's table).
GATES_OPEN = {"psf_focus": GATE, "psf_tracking": GATE, "sky_clouds": CLOUDS_GATE, "psf_elongated": GATE}
# Severity (0..1) as a piecewise-linear function of the measurement through these points; the gate opens with the
# flag or, regardless of it, along "opens".
FOCUS = {"weight": 0.6, "severity": ((2.4, 0.6), (12.0, 1.0)), "opens": (5.5, 7.2)}  # HFD, arcsec: 1.2 x the FWHM
TRACKING = {"weight": 0.6, "severity": ((1.05, 0.0), (1.35, 0.6), (2.3, 1.0)), "opens": (1.45, 1.75)}
PSF_UNJUDGED = 0.6  # no PSF to judge: as bad as the PSF term gets
MIN_PSF_SOURCES = 6  # with fewer point sources the PSF term is PSF_UNJUDGED (a PSF from a few stars is noise,
# and a hot pixel or a strobe can make one)
TRAIL = {"weight": 0.5, "half": 25.0, "cap": 20.0}  # each line's strength over 16 counts up to "cap"
HOT = {"weight": 0.25, "half": 150.0, "per_column": 30.0}
NO_STARS = {"weight": 0.85, "enough": 2.0}


def _sat(x: float) -> float:
    return 1.0 - math.exp(-max(x, 0.0))


def _ramp(x: float, low: float, high: float) -> float:
    return min(1.0, max(0.0, (x - low) / (high - low)))


def _gate(name: str, probabilities: dict[str, float]) -> float:
    return _ramp(probabilities[name], *GATES_OPEN[name])


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
    hfd_arcsec: float | None = Field(
        default=None, description="Half-flux diameter of bright stars, arcsec (None: no stars or scale)."
    )
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


def penalties(probabilities: dict[str, float], measured: Measurements) -> dict[str, float]:
    """Each defect's penalty (0: absent, towards 1: ruins the frame); see the module docstring."""
    tilt = _sat((measured.cloud_gradient_pct - CLOUDS["dead_pct"]) / CLOUDS["scale_pct"])
    out = {"clouds": CLOUDS["weight"] * _gate("sky_clouds", probabilities) * tilt}
    # The plate scale turns the HFD into arcsec; without one, pixels stand in for arcsec.
    width = measured.hfd_arcsec if measured.hfd_arcsec is not None else measured.hfd_px
    elongation = measured.elongation
    floor = PSF_UNJUDGED if measured.point_sources < MIN_PSF_SOURCES else 0.0
    if width is None or elongation is None:
        out["psf"] = PSF_UNJUDGED
    else:
        focus = _psf(FOCUS, _gate("psf_focus", probabilities), width)
        out["psf"] = max(floor, focus, _psf(TRACKING, _gate("psf_elongated", probabilities), elongation))
    strength = sum(min(excess, TRAIL["cap"]) for excess in measured.trail_excesses)
    out["trail"] = TRAIL["weight"] * strength / (strength + TRAIL["half"])
    hot = measured.hot_pixels_per_area + HOT["per_column"] * measured.detector_columns
    out["hot_pixels"] = HOT["weight"] * hot / (hot + HOT["half"])
    out["no_stars"] = NO_STARS["weight"] * (1.0 - min(1.0, measured.point_sources / NO_STARS["enough"]))
    return out


def _psf(terms: dict[str, Any], gate: float, value: float) -> float:
    """A PSF penalty: its size from the measurement, its gate opened by the model's gate (`gate`, 0..1) or by a value
    too large to be anything else (where the model's say no longer matters)."""
    xs, ys = zip(*terms["severity"], strict=True)
    severity = float(np.interp(value, xs, ys))
    return float(terms["weight"] * severity * max(gate, _ramp(value, *terms["opens"])))


def score(probabilities: dict[str, float], measured: Measurements) -> float:
    """The 0-100 score of a frame from its flag probabilities and measurements."""
    value = 100.0
    for penalty in penalties(probabilities, measured).values():
        value *= 1.0 - penalty
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
        hfd_arcsec=optional(measured.hfd_arcsec, 3),
        background_adu=rounded(measured.background_adu, 3),
        background_rms_adu=rounded(measured.background_rms_adu, 4),
        sky_gradient_pct=rounded(min(measured.sky_gradient_pct, 1e6), 3),
        star_count=measured.star_count,
        elongation=optional(measured.elongation, 4),
        saturated_pixels=measured.saturated_pixels,
    )
