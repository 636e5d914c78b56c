"""Detection on the difference: a matched filter, a noise model measured on the difference itself, and sep.

The difference is correlated with a Gaussian of its PSF (separably); sep then thresholds the filtered image
against the filtered image's own noise, so `threshold_sigma` is a matched-filter S/N even though resampling
and PSF matching correlate the noise. Photon noise of stars and galaxy cores, which sky noise alone misses,
enters as var = sigma² + alpha·reference with alpha fitted on bright pixels of the difference (no gain needed), and uses
the reference rather than the new frame so that a transient never dilutes its own significance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from astropolis.models.errors import BadInput
from astropolis.models.transients.align import extract
from astropolis.models.transients.diff import GAUSS_TO_R50, Subtraction, mask_of, shrink, zero_outside
from astropolis.models.transients.kernel import correlate, gaussian_taps

CHI2_MEDIAN = 0.4549  # median of a χ² with one degree of freedom
BIG_OBJECT_FWHM2 = 4.0  # objects larger than this many FWHM² are searched for further peaks
PEAKS_PER_OBJECT = 60
MAX_ALPHA = 3.0  # photon noise is ~1/gain ADU per ADU; larger residuals are the classifier's to judge


@dataclass(frozen=True)
class NoiseModel:
    """Noise of the difference: raw and filtered sky noise (ADU) and the source term alpha."""

    raw: float
    filtered: float
    alpha: float

    def error_map(self, reference: np.ndarray) -> np.ndarray | float:
        """Per-pixel noise of the filtered difference (a scalar where sources add nothing)."""
        if self.alpha <= 0:
            return self.filtered
        err = np.maximum(reference, 0.0)
        err *= np.float32((self.filtered / self.raw) ** 2 * self.alpha)
        err += np.float32(self.filtered**2)
        return np.sqrt(err, out=err)


@dataclass(frozen=True)
class Detections:
    """Sources at ≥ threshold sigma on the difference, most significant first (0-based pixel coordinates)."""

    x: np.ndarray
    y: np.ndarray
    snr: np.ndarray  # matched-filter peak S/N
    flux: np.ndarray  # difference flux in a one-FWHM-radius aperture, ADU
    npix: np.ndarray
    elongation: np.ndarray  # a / b
    total: int  # detections before the cap
    noise: NoiseModel


def _mad_sigma(values: np.ndarray) -> float:
    return 1.4826 * float(np.median(np.abs(values)))


def _alpha(difference: np.ndarray, reference: np.ndarray, keep: np.ndarray, noise: float) -> float:
    """alpha such that var = noise² + alpha·reference gives a median χ² of 0.455 on bright reference pixels."""
    step = max(1, int(np.sqrt(difference.size / 4e6)))
    ref = reference[::step, ::step]
    bright = (ref > 5.0 * noise) & keep[::step, ::step]
    if bright.sum() < 50:
        return 0.0  # too few bright pixels to tell
    thin = max(1, int(bright.sum()) // 20000)  # 20 000 pixels pin a median to 1 %
    d2 = difference[::step, ::step][bright][::thin].astype(np.float64) ** 2
    m = ref[bright][::thin].astype(np.float64)

    def median_chi2(alpha: float) -> float:
        return float(np.median(d2 / (noise**2 + alpha * m)))

    if median_chi2(0.0) <= CHI2_MEDIAN:
        return 0.0
    if median_chi2(MAX_ALPHA) > CHI2_MEDIAN:
        return MAX_ALPHA
    low, high = -6.0, float(np.log10(MAX_ALPHA))
    for _ in range(24):  # 9 decades / 2**24: far finer than the median's own noise
        mid = 0.5 * (low + high)
        low, high = (mid, high) if median_chi2(10**mid) > CHI2_MEDIAN else (low, mid)
    return float(10**high)


def filtered_difference(sub: Subtraction) -> tuple[np.ndarray, NoiseModel]:
    """The matched-filtered difference (zero near the region's edge) and the measured noise model."""
    taps = gaussian_taps(sub.psf_sigma_px)
    filtered = correlate(sub.difference, taps, taps)
    inner = shrink(sub.valid, len(taps) // 2 + 1)
    zero_outside(filtered, inner)
    keep, inside = mask_of(sub.valid, sub.difference.shape), mask_of(inner, sub.difference.shape)
    step = max(1, int(np.sqrt(sub.difference.size / 2.5e5)))  # a quarter-million pixels pin a MAD to 0.3 %
    raw_values = sub.difference[::step, ::step][keep[::step, ::step]]
    smooth_values = filtered[::step, ::step][inside[::step, ::step]]
    if len(smooth_values) < 1000:
        raise BadInput("mismatched reference: it covers too little of the new frame to measure the difference")
    raw, smooth = _mad_sigma(raw_values), _mad_sigma(smooth_values)
    if not (raw > 0 and smooth > 0):
        raise BadInput("the difference is exactly zero: the new frame and the reference hold the same pixels")
    return filtered, NoiseModel(raw, smooth, _alpha(sub.difference, sub.reference, keep, raw))


def _peak_positions(filtered: np.ndarray, xpeak: np.ndarray, ypeak: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel positions of the filtered difference's peaks (a parabola through the peak and its neighbours):
    unlike a barycentre, a peak stays on a transient that touches a trail or a brighter neighbour."""
    height, width = filtered.shape
    px, py = np.clip(xpeak, 1, width - 2), np.clip(ypeak, 1, height - 2)
    centre = filtered[py, px].astype(np.float64)

    def offset(before: np.ndarray, after: np.ndarray) -> np.ndarray:
        curvature = before - 2.0 * centre + after
        safe = np.where(curvature < 0, curvature, -1.0)
        return np.where(curvature < 0, np.clip(0.5 * (before - after) / safe, -0.5, 0.5), 0.0)

    dx = offset(filtered[py, px - 1].astype(np.float64), filtered[py, px + 1].astype(np.float64))
    dy = offset(filtered[py - 1, px].astype(np.float64), filtered[py + 1, px].astype(np.float64))
    return px + dx, py + dy


def _inner_peaks(
    snr_map: np.ndarray, objects: np.ndarray, fwhm: float, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Further peaks ≥ `threshold` inside objects bigger than BIG_OBJECT_FWHM2 FWHM² (a transient that touches a
    trail or a hot column merges into it): (object index, x, y) of each, at most PEAKS_PER_OBJECT per object."""
    from scipy.ndimage import maximum_filter

    size = int(np.ceil(fwhm)) // 2 * 2 + 3
    found: list[tuple[int, int, int]] = []
    for index in np.flatnonzero(objects["npix"] > BIG_OBJECT_FWHM2 * fwhm**2):
        obj = objects[index]
        box = snr_map[obj["ymin"] : obj["ymax"] + 1, obj["xmin"] : obj["xmax"] + 1]
        peaks = (box == maximum_filter(box, size=size, mode="constant")) & (box >= threshold)
        py, px = np.nonzero(peaks)
        py, px = py + obj["ymin"], px + obj["xmin"]
        away = np.hypot(px - obj["xpeak"], py - obj["ypeak"]) > fwhm
        py, px = py[away], px[away]
        best = np.lexsort((px, py, -snr_map[py, px]))[:PEAKS_PER_OBJECT]
        found.extend((int(index), int(px[k]), int(py[k])) for k in best)
    if not found:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    table = np.array(found, dtype=np.int64)
    return table[:, 0], table[:, 1], table[:, 2]


def detect(sub: Subtraction, *, threshold_sigma: float = 5.0, cap: int = 2000) -> Detections:
    """Sources at ≥ `threshold_sigma` (matched-filter S/N) on the difference, away from saturated pixels: each
    object's peak, plus the further peaks of big objects (trails, columns)."""
    import sep
    from scipy.spatial import cKDTree

    filtered, noise = filtered_difference(sub)
    err = noise.error_map(sub.reference)
    objects = extract(filtered, threshold_sigma, err=err, minarea=2, filter_kernel=None, deblend_cont=0.005)
    fwhm = 2 * GAUSS_TO_R50 * sub.psf_sigma_px
    snr_map = filtered / err
    parent, extra_x, extra_y = _inner_peaks(snr_map, objects, fwhm, threshold_sigma)
    source = np.concatenate([np.arange(len(objects)), parent])
    px = np.concatenate([objects["xpeak"].astype(np.int64), extra_x])
    py = np.concatenate([objects["ypeak"].astype(np.int64), extra_y])
    if len(px) and len(sub.saturated):
        distance, _ = cKDTree(sub.saturated).query(np.column_stack([px, py]).astype(np.float64), k=1)
        away = distance > 3.0 * fwhm + 3.0
        source, px, py = source[away], px[away], py[away]
    snr = snr_map[py, px].astype(np.float64)
    total = len(snr)
    order = np.lexsort((px, py, -snr))[:cap]
    source, px, py, snr = source[order], px[order], py[order], snr[order]
    x, y = _peak_positions(filtered, px, py)
    flux = sep.sum_circle(sub.difference, x, y, fwhm)[0] if len(x) else np.zeros(0)
    chosen = objects[source]
    return Detections(
        x=x,
        y=y,
        snr=snr,
        flux=np.asarray(flux, dtype=np.float64),
        npix=chosen["npix"].astype(np.int64),
        elongation=chosen["a"].astype(np.float64) / np.maximum(chosen["b"].astype(np.float64), 1e-3),
        total=total,
        noise=noise,
    )
