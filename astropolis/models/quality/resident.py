"""The quality resident: one frame → QualityReport (score 0-100, flags with confidences, seeing, background,
star count, elongation); below the site's threshold it asks for the target to be observed again.

`assess` is the same judgement on bare pixels and an optional header: it needs no WCS (the plate scale comes
from PIXSCALE-like keys, the WCS, or the caller), so frames the lake's loader refuses for lack of a celestial
WCS (old calibration frames, other observatories' files) can still be graded offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from astropolis.models.base import Context, FrameInput, ProposedJob, Resident, checked_weights
from astropolis.models.errors import BadInput
from astropolis.models.quality.dataset import FLAGS, OUTPUTS
from astropolis.models.quality.features import measure
from astropolis.models.quality.flags import PERSISTENT_FLAGS
from astropolis.models.quality.meta import FrameMeta
from astropolis.models.quality.model import QualityNet, load, predict
from astropolis.models.quality.report import QualityReport, report

WEIGHTS = Path(__file__).with_name("quality.pt")
WEIGHTS_SHA256 = "sha256:95ab6932a7e43d13570ad1d4559f060dca5f0587ded410bc02f1d183eacec0dd"
DEFAULT_THRESHOLD = 50.0  # the Site model's default quality_threshold
REOBSERVE_PRIORITY = 60
MIN_SIDE = 16


@lru_cache(maxsize=4)
def _model(path: str, expected: str) -> QualityNet:
    return load(checked_weights(Path(path), expected))


def assess(
    data: np.ndarray,
    header: Any = None,
    *,
    pixel_scale_arcsec: float | None = None,
    model: QualityNet | None = None,
) -> QualityReport:
    """The quality report of a frame's pixels (ADU, FITS orientation) with an optional header."""
    image = np.asarray(data, dtype=np.float64)
    if image.ndim != 2 or min(image.shape) < MIN_SIDE:
        raise BadInput(f"quality needs a 2-D image of at least {MIN_SIDE}x{MIN_SIDE} pixels, got {image.shape}")
    if not np.all(np.isfinite(image)):
        raise BadInput("quality needs finite pixel values")
    if float(np.ptp(image)) == 0.0:
        raise BadInput("every pixel has the same value: no image")
    net = model if model is not None else _model(str(WEIGHTS), WEIGHTS_SHA256)
    measured = measure(image, FrameMeta.from_header(header, pixel_scale_arcsec=pixel_scale_arcsec))
    probabilities = predict(net, measured.features)[0]
    thresholds = net.thresholds.detach().cpu().numpy()
    return report(
        {name: float(p) for name, p in zip(OUTPUTS, probabilities, strict=True)},
        {name: float(t) for name, t in zip(FLAGS, thresholds, strict=True)},
        measured,
    )


class QualityResident(Resident[QualityReport]):
    """Grades every frame; frames below the site's quality threshold are proposed for re-observation."""

    name = "quality"
    # 1.1: per-defect penalties that never rise with severity; 1.2: the PSF gates by truth; 1.3: the focus penalty
    # on the half-flux diameter, trails along the pixel rows, the model trained on sparse frames too; 1.4: the
    # model's PSF features without trail pieces, a point-source count without hot-column streaks or donut arcs; 1.5: the
    # clouds gate a monotone head of the sky and the star counts; 1.6: the tracking gate a monotone head of the stars'
    # elongation; 1.7: each certain trail counts the same, the report's PSF without the stars beside a hot column, the
    # score's hot columns counted with sep's vertical streaks in view
    version = "1.7.0"
    input_kind = "frame"
    output_model = QualityReport

    def __init__(self, weights: Path | None = None, weights_sha256: str | None = None) -> None:
        self._path = Path(weights) if weights is not None else WEIGHTS
        self._sha256 = weights_sha256 or WEIGHTS_SHA256
        self._net = _model(str(self._path), self._sha256)

    @property
    def weights_sha256(self) -> str:
        """sha256 of the committed weights (checked when they were loaded)."""
        return self._sha256

    def run(self, inputs: FrameInput) -> QualityReport:
        """The quality report of one lake frame."""
        return assess(inputs.data, inputs.header, model=self._net)

    def propose(self, output: QualityReport, inputs: FrameInput, context: Context) -> Sequence[ProposedJob]:
        """A reobserve request, same target, filter and exposure, when the score is below the site's threshold
        and a repeat could do better (not when only persistent flags are raised)."""
        threshold = context.site_threshold if context.site_threshold is not None else DEFAULT_THRESHOLD
        if output.score >= threshold:
            return ()
        if output.raised and set(output.raised) <= PERSISTENT_FLAGS:
            return ()  # the same exposure of the same field would come out the same: a repeat cannot help
        header = inputs.header
        ra, dec = _number(header, "TARG-RA"), _number(header, "TARG-DEC")
        raised = ", ".join(output.raised) or "no single flag"
        exposure = _number(header, "EXPTIME")
        text = header.get("FILTER")
        name = header.get("OBJECT")
        return [
            ProposedJob(
                kind="reobserve",
                reason=f"quality score {output.score:g} < site threshold {threshold:g} ({raised})",
                priority=REOBSERVE_PRIORITY,
                ra_deg=ra if ra is not None and dec is not None else None,
                dec_deg=dec if ra is not None and dec is not None else None,
                name=str(name)[:64] if name else None,
                filter=str(text) if text not in (None, "", "NONE") else None,
                exposure_s=exposure if exposure is not None and exposure > 0 else None,
            )
        ]


def _number(header: Any, key: str) -> float | None:
    value = header.get(key) if header is not None else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
