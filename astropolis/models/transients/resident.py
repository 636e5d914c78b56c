"""The transients resident: (new frame, reference) → difference image → candidates → real/bogus.

The reference is aligned and PSF-matched to the new frame and subtracted; ≥ 5sigma sources on the difference
are cut into (new, reference, difference, unconvolved new) stamps that a small CNN classifies as a real
transient, cosmic ray, bad pixel, satellite trail or subtraction artefact; L.A.Cosmic (astroscrappy) flags
cosmic rays as a second opinion. Candidates with p(real) above the threshold become observe requests. Stamps
are not stored: the report lists candidates (position, S/N, probabilities) and how the subtraction went.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from astropolis.models.base import Context, FramePair, Output, ProposedJob, Resident, checked_weights, rounded
from astropolis.models.transients.cnn import CLASSES, load_model, probabilities
from astropolis.models.transients.followup import follow_up_exposure
from astropolis.models.transients.pipeline import analyse, filter_name
from astropolis.models.transients.stamps import cosmic_ray_flags

WEIGHTS_PATH = Path(__file__).with_name("weights.npz")
WEIGHTS_SHA256 = "sha256:b14bbc98c4f2191ee0bc37ae9c3fa69965ee197abc536b9ab079d6663f82f32c"
RAPID_MIN_SNR = 10.0  # the rapid lane also needs this S/N: a lone 5-sigma peak looks like a faint star to the CNN
CANDIDATE_CAP = 2000  # candidates classified per pair; the report keeps the most likely real ones
ClassName = Literal["real", "cosmic_ray", "bad_pixel", "satellite_trail", "artefact"]


class Candidate(Output):
    """One ≥ 5sigma source on the difference image."""

    ra_deg: float = Field(description="ICRS right ascension (new frame's WCS), degrees.")
    dec_deg: float = Field(description="ICRS declination, degrees.")
    x: float = Field(description="Column in the new frame, 0-based pixels.")
    y: float = Field(description="Row in the new frame, 0-based pixels.")
    snr: float = Field(description="Matched-filter S/N on the difference.")
    flux_adu: float = Field(description="Difference flux within one FWHM, new-frame ADU.")
    p_real: float = Field(description="Probability of a real transient.")
    p_cosmic_ray: float = Field(description="Probability of a cosmic-ray hit.")
    p_bad_pixel: float = Field(description="Probability of a hot pixel or column.")
    p_satellite_trail: float = Field(description="Probability of a satellite or aircraft trail.")
    p_artefact: float = Field(description="Probability of a subtraction artefact.")
    label: ClassName = Field(description="The most probable class.")
    real: bool = Field(description="p_real is at or above the report's real_threshold.")
    cosmic_ray_flag: bool = Field(description="astroscrappy (L.A.Cosmic) marks a pixel within 2 px.")


class Subtraction(Output):
    """How the reference was matched to the new frame."""

    alignment: Literal["stars", "astroalign", "wcs"] = Field(description="How the frames were registered.")
    matched_stars: int = Field(description="Stars matched between the frames.")
    shift_x_px: float = Field(description="Reference → new offset at the frame centre, x, pixels.")
    shift_y_px: float = Field(description="Reference → new offset at the frame centre, y, pixels.")
    fwhm_new_px: float = Field(description="PSF width of the new frame (2 x half-light radius), pixels.")
    fwhm_reference_px: float = Field(description="PSF width of the reference, pixels.")
    convolved: Literal["reference", "new"] = Field(description="The (sharper) frame the kernel blurred.")
    kernel_stars: int = Field(description="Stars the matching kernel was fitted on (0: Gaussian fallback).")
    flux_scale: float = Field(description="Reference ADU → new-frame ADU.")
    noise_adu: float = Field(description="Per-pixel noise of the difference, ADU.")


class TransientReport(Output):
    """Candidates on the difference of a new frame and its reference, most likely real first."""

    schema_version: Literal[1] = 1
    detection_sigma: float = Field(description="Detection threshold, matched-filter S/N.")
    real_threshold: float = Field(description="p_real at or above which a candidate counts as real.")
    rapid_threshold: float = Field(
        description="p_real at or above which its follow-up takes the rapid lane (with S/N >= 10)."
    )
    detections: int = Field(description="Sources found on the difference (before any cap).")
    real_candidates: int = Field(description="Reported candidates with real = true.")
    subtraction: Subtraction
    candidates: list[Candidate] = Field(description="At most max_candidates, by p_real then S/N.")


class TransientResident(Resident[TransientReport]):
    """Difference imaging and real/bogus classification of a (new, reference) frame pair."""

    name: ClassVar[str] = "transients"
    # 1.1: a fourth stamp channel and new weights (other p_real for the same pair). 1.2: new weights trained with a
    # share of pairs on bright galaxies (nuclear subtraction residuals as artefacts, nuclear transients as real).
    # 1.3: trained on exposure mismatches and scintillation; a clipped maximum is the saturation level.
    version: ClassVar[str] = "1.3.0"
    input_kind: ClassVar[Literal["frame_pair"]] = "frame_pair"
    output_model: ClassVar[type[Output]] = TransientReport

    def __init__(
        self,
        *,
        real_threshold: float = 0.5,
        rapid_threshold: float = 0.9,
        detection_sigma: float = 5.0,
        max_candidates: int = 200,
        max_jobs: int = 5,
        weights_path: Path = WEIGHTS_PATH,
    ) -> None:
        self.real_threshold = real_threshold
        self.rapid_threshold = rapid_threshold
        self.detection_sigma = detection_sigma
        self.max_candidates = max_candidates
        self.max_jobs = max_jobs
        self.weights_path = weights_path
        self._model: Any = None

    @property
    def weights_sha256(self) -> str:
        """sha256 of the committed CNN weights."""
        return WEIGHTS_SHA256

    def model(self) -> Any:
        """The CNN, loaded once from weights checked against WEIGHTS_SHA256."""
        if self._model is None:
            self._model = load_model(checked_weights(self.weights_path, WEIGHTS_SHA256))
        return self._model

    def run(self, inputs: FramePair) -> TransientReport:
        """Subtract, detect, classify; raises BadInput for pairs that cannot be compared."""
        new, ref = inputs.new, inputs.reference
        found = analyse(
            new.data,
            new.header,
            new.wcs,
            ref.data,
            ref.header,
            ref.wcs,
            threshold_sigma=self.detection_sigma,
            cap=CANDIDATE_CAP,
        )
        sub, det = found.subtraction, found.detections
        probs = probabilities(self.model(), found.stamps)
        p_real = np.round(probs[:, 0], 6)
        order = np.lexsort((det.x, det.y, -np.round(det.snr, 2), -p_real))[: self.max_candidates]
        flags = cosmic_ray_flags(sub.new_raw, sub.new_noise, sub.fwhm_new_px, det.x[order], det.y[order])
        ra, dec = new.wcs.all_pix2world(det.x[order], det.y[order], 0) if len(order) else ([], [])
        candidates = [
            self._candidate(float(ra[k]), float(dec[k]), det, int(i), probs[i], bool(flags[k]))
            for k, i in enumerate(order)
        ]
        offset = sub.alignment.apply(np.array([(ref.data.shape[1] - 1) / 2]), np.array([(ref.data.shape[0] - 1) / 2]))
        return TransientReport(
            detection_sigma=rounded(self.detection_sigma, 3),
            real_threshold=rounded(self.real_threshold, 4),
            rapid_threshold=rounded(self.rapid_threshold, 4),
            detections=int(det.total),
            real_candidates=sum(c.real for c in candidates),
            subtraction=Subtraction(
                alignment=sub.alignment.method,
                matched_stars=int(sub.alignment.matched),
                shift_x_px=rounded(float(offset[0][0]) - (ref.data.shape[1] - 1) / 2, 3),
                shift_y_px=rounded(float(offset[1][0]) - (ref.data.shape[0] - 1) / 2, 3),
                fwhm_new_px=rounded(sub.fwhm_new_px, 3),
                fwhm_reference_px=rounded(sub.fwhm_reference_px, 3),
                convolved=sub.convolved,
                kernel_stars=int(sub.kernel.stars),
                flux_scale=rounded(sub.flux_scale, 4),
                noise_adu=rounded(det.noise.raw, 3),
            ),
            candidates=candidates,
        )

    def _candidate(self, ra: float, dec: float, det: Any, i: int, p: np.ndarray, flag: bool) -> Candidate:
        probs = [rounded(float(v), 6) for v in p]
        return Candidate(
            ra_deg=rounded(ra % 360.0, 7),
            dec_deg=rounded(dec, 7),
            x=rounded(float(det.x[i]), 3),
            y=rounded(float(det.y[i]), 3),
            snr=rounded(float(det.snr[i]), 2),
            flux_adu=rounded(float(det.flux[i]), 2),
            p_real=probs[0],
            p_cosmic_ray=probs[1],
            p_bad_pixel=probs[2],
            p_satellite_trail=probs[3],
            p_artefact=probs[4],
            label=CLASSES[int(np.argmax(p))],
            real=probs[0] >= self.real_threshold,
            cosmic_ray_flag=flag,
        )

    def propose(self, output: TransientReport, inputs: FramePair, context: Context) -> Sequence[ProposedJob]:
        """An observe request per real candidate (most likely first, at most max_jobs), citing the product."""
        new = inputs.new
        band = filter_name(new.header)
        band = band if band and re.fullmatch(r"[A-Za-z0-9_'+\-]{1,16}", band) else None
        exposure = new.frame.exptime_s or float(new.header.get("EXPTIME", 60.0) or 60.0)
        jobs = []
        for c in (c for c in output.candidates if c.real):
            strength = min(1.0, max(0.0, math.log10(max(c.snr, 1.0) / 5.0)))  # 0 at S/N 5, 1 at S/N 50
            jobs.append(
                ProposedJob(
                    kind="observe",
                    reason=(
                        f"transient candidate p(real) {c.p_real:.3f} at S/N {c.snr:.1f} on the difference of "
                        f"{new.frame.id[:19]} and {inputs.reference.frame.id[:19]}; product {context.product_id}"
                    ),
                    priority=int(np.clip(round(30 + 50 * c.p_real + 20 * strength), 1, 100)),
                    ra_deg=c.ra_deg,
                    dec_deg=c.dec_deg,
                    name=f"AT candidate {c.ra_deg:.5f} {c.dec_deg:+.5f}",
                    filter=band,
                    exposure_s=follow_up_exposure(exposure, c.snr),
                    count=3,
                    lane="rapid" if c.p_real >= self.rapid_threshold and c.snr >= RAPID_MIN_SNR else "queue",
                    other_site=True,  # confirmation from independent optics rules out the instrument
                )
            )
            if len(jobs) >= self.max_jobs:
                break
        return jobs
