"""Finding a frame's sources and setting its defects aside, before anything is scored.

Cosmic rays and hot pixels are cleaned first (L.A.Cosmic via astroscrappy), except where a detection keeps most
of its light outside the flagged pixels or has a blunter peak than a hot pixel: L.A.Cosmic also bites the cores
of bright and undersampled stars. sep then finds the sources on the cleaned frame. What is left that no sky
object can be is set aside by rule, against the frame's own stars: peaks sharper than its stars allow (cosmic
rays and hot pixels the cleaning missed), one-pixel-wide streaks (hot columns), segments longer than
TRAIL_LENGTH_FWHM or elongated pieces lined up along their common axis (satellite and aircraft trails); then
saturated sources and those too near the edge to be measured. The PSF size comes from the smaller half of the
bright round sources, or the header's seeing when the frame has too few.
"""

from __future__ import annotations

from dataclasses import dataclass

import astroscrappy
import numpy as np
import sep
from scipy import ndimage
from threadpoolctl import threadpool_limits

from astropolis.models.base import clipped_maximum

DETECT_SIGMA = 3.0  # detection threshold per pixel (after sep's 3x3 smoothing), in background rms
MIN_AREA = 5  # pixels above threshold
SHARP_MARGIN = 0.45  # a source is a defect when its sharpness exceeds the stars' by this share of what is left to 1
SHARP_FLOOR = 0.5  # ... and is above this in any case (well-sampled stars sit near 0.25, hot pixels near 1)
TRAIL_LENGTH_FWHM = 20.0  # longer than this and elongated: a satellite or aircraft trail
TRAIL_ALIGN_DEG = 12.0  # elongated sources aligned within this along their common axis are pieces of one trail
TRAIL_GAP_FWHM = 30.0  # ... when no further apart than this
CR_SIGCLIP = 4.5  # L.A.Cosmic Laplacian-to-noise limit
CR_OBJLIM = 5.0  # L.A.Cosmic contrast limit protecting stars' cores (see CR_LIGHT_SHARE for the rest)
CR_ITERATIONS = 1
CR_LIGHT_SHARE = 0.5  # a detection with more of its light than this in flagged pixels is a cosmic ray ...
CR_SHARPNESS = 0.8  # ... if its peak is also this sharp (see _sharpness; stars sampled by 1.5 px reach 0.75)
MIN_STARS = 5  # bright round sources needed to measure the PSF from the frame itself
R50_PER_FWHM = 0.675  # a seeing-limited (Moffat) star's half-light radius per FWHM, for the header fallback
MIN_R50_PX = 0.5  # a single hot pixel's half-light radius: sources this small never set the PSF size
_PIXSTACK = 3_000_000


def _sharpness(image: np.ndarray, xp: np.ndarray, yp: np.ndarray) -> np.ndarray:
    """(peak - mean of a neighbour pair) / peak at integer peak positions, for the sharper of the horizontal and
    vertical pairs: a thin cosmic-ray track is sharp across itself whatever its direction."""
    padded = np.pad(image, 1, mode="edge")
    row, col = yp + 1, xp + 1
    peak = padded[row, col]
    across = np.minimum(padded[row - 1, col] + padded[row + 1, col], padded[row, col - 1] + padded[row, col + 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(peak > 0, (peak - across / 2.0) / peak, 0.0)


def _saturation_level(data: np.ndarray, header: object | None) -> float:
    """The header's SATURATE when given, else the data maximum when several pixels share it (clipped)."""
    if header is not None:
        for key in ("SATURATE", "SATLEVEL"):
            value = header.get(key) if hasattr(header, "get") else None
            if isinstance(value, (int, float)) and value > 0:
                return float(value) * 0.98
    clipped = clipped_maximum(data, pixels=4)
    return clipped * 0.999 if clipped is not None else np.inf


def _psf_r50(r50: np.ndarray, elong: np.ndarray, snr: np.ndarray, header: object | None) -> float:
    """Half-light radius of the frame's point sources: the median of the smaller half of bright round sources
    (stars are the most compact things on the sky once defects are gone). With fewer than MIN_STARS of them the
    header's seeing (SEEING arcsec / PIXSCALE) decides when it has one; NaN when nothing can."""
    pick = (snr > 20) & (elong < 1.4) & np.isfinite(r50) & (r50 > MIN_R50_PX)
    sizes = np.sort(r50[pick])
    smaller_half = float(np.median(sizes[: max(3, (sizes.size + 1) // 2)])) if sizes.size else float("nan")
    if sizes.size >= MIN_STARS:
        return smaller_half
    seeing, scale = header_number(header, "SEEING", "FWHM"), header_number(header, "PIXSCALE", "SECPIX")
    if seeing is not None and scale is not None:
        return R50_PER_FWHM * seeing / scale
    return smaller_half if sizes.size >= 3 else float("nan")


@dataclass(frozen=True)
class Detections:
    """sep's catalogue of a background-subtracted frame, with its segmentation map."""

    sub: np.ndarray
    back: np.ndarray
    rms: float
    objects: np.ndarray
    seg: np.ndarray

    @property
    def ids(self) -> np.ndarray:
        """Segment ids (1-based, in catalogue order)."""
        return np.arange(1, len(self.objects) + 1, dtype=np.int32)

    def column(self, name: str) -> np.ndarray:
        """One catalogue column as float64."""
        return np.asarray(self.objects[name], dtype=np.float64)


def header_number(header: object | None, *keys: str) -> float | None:
    """The first positive number among header `keys`, if any."""
    getter = getattr(header, "get", None)
    for key in keys:
        value = getter(key) if getter is not None else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
    return None


def clean_cosmic_rays(data: np.ndarray, header: object | None = None) -> tuple[np.ndarray, int]:
    """The frame with cosmic rays and hot pixels replaced (L.A.Cosmic, astroscrappy, one iteration), and the
    number of hits cleaned. The noise model is the measured background rms plus the sources' photon noise."""
    image = np.ascontiguousarray(data, dtype=np.float64)
    background = sep.Background(image, bw=64, bh=64, fw=3, fh=3)
    back = background.back()
    gain = header_number(header, "GAIN", "EGAIN") or 1.0
    saturation = header_number(header, "SATURATE", "SATLEVEL") or float(image.max()) + 1.0
    variance = background.rms() ** 2 + np.clip(image - back, 0.0, None) / gain
    with threadpool_limits(limits=1):  # one thread: deterministic, and no OpenMP spinning on a busy machine
        mask, cleaned = astroscrappy.detect_cosmics(
            image.astype(np.float32),
            invar=variance.astype(np.float32),
            sigclip=CR_SIGCLIP,
            objlim=CR_OBJLIM,
            satlevel=saturation,
            niter=CR_ITERATIONS,
            cleantype="meanmask",
        )
    # L.A.Cosmic also bites the cores of bright or undersampled stars: a detection keeps its pixels unless most
    # of its light is in flagged pixels (then it is a cosmic ray or hot pixel, and goes).
    sub = image - back
    sep.set_extract_pixstack(_PIXSTACK)
    found, seg = sep.extract(sub, DETECT_SIGMA, err=float(background.globalrms), minarea=1, segmentation_map=True)
    light = np.clip(sub, 0.0, None).ravel()
    total = np.bincount(seg.ravel(), weights=light, minlength=len(found) + 1)
    flagged = np.bincount(seg.ravel(), weights=light * mask.ravel(), minlength=total.size)
    # ... and unless its peak is blunter than a hot pixel's or a thin track's (undersampled stars are sharp too).
    sharp = _sharpness(sub, found["xpeak"].astype(np.intp), found["ypeak"].astype(np.intp))
    protected = (flagged <= CR_LIGHT_SHARE * total) | np.concatenate([[False], sharp < CR_SHARPNESS])
    protected[0] = False
    mask &= ~protected[seg]
    result = np.where(mask, np.asarray(cleaned, dtype=np.float64), image)
    hits = int(ndimage.label(mask, structure=np.ones((3, 3)))[1])
    return result, hits


def detect(image: np.ndarray) -> Detections:
    """Background (64 px mesh) and the sources above DETECT_SIGMA of its rms, with sep."""
    image = np.ascontiguousarray(image, dtype=np.float64)
    sep.set_extract_pixstack(_PIXSTACK)
    sep.set_sub_object_limit(4096)
    background = sep.Background(image, bw=64, bh=64, fw=3, fh=3)
    back = background.back()
    sub = image - back
    rms = float(background.globalrms)
    if not np.isfinite(rms) or rms <= 0:
        rms = float(np.std(sub)) or 1.0
    objects, seg = sep.extract(sub, DETECT_SIGMA, err=rms, minarea=MIN_AREA, segmentation_map=True, deblend_cont=0.005)
    return Detections(sub, back, rms, objects, np.ascontiguousarray(seg, dtype=np.int32))


def _collinear(
    x: np.ndarray, y: np.ndarray, theta: np.ndarray, candidate: np.ndarray, anchor: np.ndarray, fwhm: float
) -> np.ndarray:
    """Elongated sources lying on a line with others along their own major axes: the dashes of an aircraft
    trail, or a trail broken up by deblending. A candidate needs two partners within TRAIL_GAP_FWHM, or one
    that is an anchor (a long trail segment); the line between two pieces must run along both their axes."""
    found = np.zeros(x.size, dtype=bool)
    index = np.flatnonzero(candidate | anchor)
    if index.size < 2:
        return found
    tolerance = np.sin(np.radians(TRAIL_ALIGN_DEG))
    xs, ys, angle = x[index], y[index], theta[index]
    towards = np.arctan2(ys[None, :] - ys[:, None], xs[None, :] - xs[:, None])
    near = np.hypot(xs[None, :] - xs[:, None], ys[None, :] - ys[:, None]) < TRAIL_GAP_FWHM * fwhm
    along = (np.abs(np.sin(towards - angle[:, None])) < tolerance) & (
        np.abs(np.sin(towards - angle[None, :])) < tolerance
    )
    partners = near & along & ~np.eye(index.size, dtype=bool)
    lined = (partners.sum(axis=1) >= 2) | (partners & anchor[index][None, :]).any(axis=1)
    lined |= (partners & lined[None, :]).any(axis=1)  # the last piece of a line has one partner, itself lined up
    found[index] = lined & candidate[index]
    return found


def set_aside(det: Detections, header: object | None, edge_fwhm: float) -> tuple[dict[str, np.ndarray], float]:
    """Masks of the detections set aside, by kind (cosmic rays and hot pixels, hot columns, trails, saturated,
    within `edge_fwhm` PSF FWHM of the edge), and the PSF half-light radius (NaN: no PSF, all set aside)."""
    objects, sub, rms = det.objects, det.sub, det.rms
    x, y, a, b = det.column("x"), det.column("y"), det.column("a"), det.column("b")
    xp, yp = objects["xpeak"].astype(np.intp), objects["ypeak"].astype(np.intp)
    span_x = objects["xmax"] - objects["xmin"] + 1
    span_y = objects["ymax"] - objects["ymin"] + 1
    column = (np.minimum(span_x, span_y) <= 2) & (np.maximum(span_x, span_y) >= 12)
    # Sharpness is judged against the frame's own bright sources (mostly stars): undersampled stars are sharp too.
    sharp = _sharpness(sub, xp, yp)
    # Stars are the least sharp bright sources; cosmic rays and hot pixels may outnumber them in sparse fields.
    bright = objects["peak"] > 20.0 * rms
    typical = float(np.percentile(sharp[bright], 30)) if bright.sum() >= 3 else 0.3
    cosmic = (sharp > max(SHARP_FLOOR, typical + SHARP_MARGIN * (1.0 - typical))) & ~column
    elong = a / np.maximum(b, 1e-6)
    clean = ~cosmic & ~column
    fwhm0 = 2.0 * np.sqrt(2.0 * np.log(2.0)) * float(np.median(a[clean])) if clean.any() else 3.0
    rmax = np.full(len(objects), max(3.0 * fwhm0, 6.0))
    flux0, _, _ = sep.sum_circle(sub, x, y, rmax, err=rms, seg_id=det.ids, segmap=det.seg)
    radii, _ = sep.flux_radius(sub, x, y, rmax, [0.5], normflux=np.maximum(flux0, 1e-9), seg_id=det.ids, segmap=det.seg)
    snr0 = flux0 / (rms * np.sqrt(np.pi) * rmax)
    psf_r50 = _psf_r50(radii[:, 0], elong, np.where(clean, snr0, 0.0), header)
    if not np.isfinite(psf_r50):
        # No stars to learn the PSF from and no seeing in the header: shapes cannot be judged at all.
        return {"cosmic_ray": cosmic, "hot_column": column & ~cosmic, "no_psf": clean}, float("nan")
    fwhm = 2.0 * psf_r50
    long = (np.maximum(span_x, span_y) > TRAIL_LENGTH_FWHM * fwhm) & (elong > 4.0)
    typical_elong = float(np.median(elong[clean & bright])) if (clean & bright).sum() >= 3 else 1.0
    candidate = clean & (elong > 2.0 * typical_elong) & ~long
    pieces = _collinear(x, y, det.column("theta"), candidate, long & clean, fwhm)
    trail = (long | pieces) & clean
    saturated = objects["peak"] + det.back[yp, xp] >= _saturation_level(sub + det.back, header)
    height, width = sub.shape
    margin = edge_fwhm * fwhm + 2.0
    edge = (x < margin) | (y < margin) | (x > width - 1 - margin) | (y > height - 1 - margin)
    masks: dict[str, np.ndarray] = {}
    taken = np.zeros(len(objects), dtype=bool)
    for kind, mask in (
        ("cosmic_ray", cosmic),
        ("hot_column", column),
        ("trail", trail),
        ("saturated", saturated),
        ("edge", edge),
    ):
        masks[kind] = mask & ~taken
        taken |= mask
    return masks, psf_r50
