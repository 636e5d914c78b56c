"""Difference imaging: background, alignment, resampling, PSF matching, photometric scaling and subtraction.

The reference is resampled onto the new frame's pixel grid: when the grids differ only by a shift (same camera;
a dither or a pointing error) by a separable Lanczos-3 interpolation, otherwise by a cubic-spline affine
resampling. The sharper of the two frames is then convolved with a kernel fitted on stars (`kernel.py`), and
the difference is new - reference in the new frame's photometric units, zero where it is undefined.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from astropolis.models.errors import BadInput
from astropolis.models.transients import kernel as psf_kernel
from astropolis.models.transients.align import Alignment, Stars, align, check_geometry, find_stars

GAUSS_TO_R50 = 1.1774  # half-light radius of a Gaussian in units of its sigma
SHIFT_ONLY_TOLERANCE_PX = 0.05  # largest error a pure shift may make anywhere on the frame
KERNEL_STARS = 80  # brightest matched stars the photometry and the kernel are fitted on
MAX_SEEING_RATIO = 1.5  # cap on the FWHM ratio implied by unpaired (rough) width estimates

Region = tuple[slice, slice] | np.ndarray  # a box (the usual case, cheap) or a boolean mask


@dataclass(frozen=True)
class Subtraction:
    """Everything after subtraction, on the new frame's pixel grid (float32, background-subtracted)."""

    new_raw: np.ndarray  # the new frame, background-subtracted, never convolved (for cosmic-ray checks)
    new: np.ndarray  # the new frame as subtracted (convolved when it was the sharper one)
    reference: np.ndarray  # the reference resampled, PSF-matched and scaled to the new frame's photometry
    difference: np.ndarray  # new - reference, zero outside `valid`
    valid: Region  # where the difference is defined
    new_noise: float  # background rms of the new frame, ADU
    psf_sigma_px: float  # Gaussian-equivalent sigma of the difference's PSF
    fwhm_new_px: float
    fwhm_reference_px: float
    flux_scale: float  # reference ADU → new-frame ADU
    kernel: psf_kernel.MatchKernel
    convolved: str  # "reference" or "new": which frame the kernel was applied to
    alignment: Alignment
    saturated: np.ndarray  # (n, 2) x, y of saturated pixels in either frame (new-frame coordinates)


def background(data: np.ndarray) -> tuple[np.ndarray, float]:
    """Background-subtracted float32 copy and the global background rms (sep, 64-px meshes)."""
    import sep

    image = np.ascontiguousarray(data, dtype=np.float32)
    model = sep.Background(image, bw=64, bh=64, fw=3, fh=3)
    model.subfrom(image)
    return image, float(model.globalrms)


def lanczos_taps(fraction: float) -> np.ndarray:
    """Lanczos-3 weights for reading a value `fraction` (|f| ≤ 0.5) pixels past the centre tap (7 taps)."""
    j = np.arange(-3, 4, dtype=np.float64) - fraction
    taps = np.sinc(j) * np.sinc(j / 3.0)
    return taps / taps.sum()


def _shifted(ref: np.ndarray, shape: tuple[int, int], sx: int, sy: int) -> np.ndarray:
    """out[y, x] = ref[y + sy, x + sx] where that exists, else 0, on a grid of `shape`."""
    out = np.zeros(shape, dtype=np.float32)
    height, width = shape
    y0, y1 = max(0, -sy), min(height, ref.shape[0] - sy)
    x0, x1 = max(0, -sx), min(width, ref.shape[1] - sx)
    if y1 > y0 and x1 > x0:
        out[y0:y1, x0:x1] = ref[y0 + sy : y1 + sy, x0 + sx : x1 + sx]
    return out


def _shift_only(alignment: Alignment, shape: tuple[int, int]) -> np.ndarray | None:
    """The shift (x, y) to read the reference at, when a pure shift is exact to SHIFT_ONLY_TOLERANCE_PX."""
    height, width = shape
    corners = np.array([[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]], dtype=np.float64)
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    rx, ry = alignment.inverse(corners[:, 0], corners[:, 1])
    cx, cy = alignment.inverse(centre[:1], centre[1:])
    shift = np.array([cx[0] - centre[0], cy[0] - centre[1]])
    error = np.hypot(rx - corners[:, 0] - shift[0], ry - corners[:, 1] - shift[1])
    return shift if float(error.max()) < SHIFT_ONLY_TOLERANCE_PX else None


def resample(ref: np.ndarray, alignment: Alignment, shape: tuple[int, int]) -> tuple[np.ndarray, Region]:
    """The reference on the new frame's grid, and the region where it is defined."""
    height, width = shape
    shift = _shift_only(alignment, shape)
    if shift is not None:
        whole = np.round(shift).astype(int)
        taps_x, taps_y = lanczos_taps(float(shift[0] - whole[0])), lanczos_taps(float(shift[1] - whole[1]))
        out = psf_kernel.correlate(_shifted(ref, shape, int(whole[0]), int(whole[1])), taps_x, taps_y)
        margin = 4
        y0, y1 = max(0, -whole[1]) + margin, min(height, ref.shape[0] - whole[1]) - margin
        x0, x1 = max(0, -whole[0]) + margin, min(width, ref.shape[1] - whole[0]) - margin
        return out, (slice(int(y0), int(max(y0, y1))), slice(int(x0), int(max(x0, x1))))
    from scipy.ndimage import affine_transform

    inv = np.linalg.inv(alignment.matrix)
    swap = np.array([[0, 1], [1, 0]])
    out = affine_transform(
        ref, swap @ inv @ swap, offset=swap @ (-inv @ alignment.offset), output_shape=shape, order=3, mode="constant"
    ).astype(np.float32)
    gy, gx = np.mgrid[0:height, 0:width]
    rx, ry = alignment.inverse(gx.astype(np.float64), gy.astype(np.float64))
    margin = 4
    valid = (rx >= margin) & (rx <= ref.shape[1] - 1 - margin) & (ry >= margin) & (ry <= ref.shape[0] - 1 - margin)
    return out, valid


def shrink(region: Region, by: int) -> Region:
    """The region without a border `by` pixels wide."""
    if isinstance(region, np.ndarray):
        from scipy.ndimage import binary_erosion

        return binary_erosion(region, structure=np.ones((2 * by + 1, 2 * by + 1), dtype=bool))
    ys, xs = region
    return (
        slice(ys.start + by, max(ys.start + by, ys.stop - by)),
        slice(xs.start + by, max(xs.start + by, xs.stop - by)),
    )


def mask_of(region: Region, shape: tuple[int, int]) -> np.ndarray:
    """The region as a boolean image."""
    if isinstance(region, np.ndarray):
        return region
    mask = np.zeros(shape, dtype=bool)
    mask[region] = True
    return mask


def zero_outside(image: np.ndarray, region: Region) -> None:
    """Set `image` to 0 outside `region` (in place; four slices for a box)."""
    if isinstance(region, np.ndarray):
        image[~region] = 0.0
        return
    ys, xs = region
    image[: ys.start] = 0.0
    image[ys.stop :] = 0.0
    image[:, : xs.start] = 0.0
    image[:, xs.stop :] = 0.0


def _fwhm(stars: Stars, *, matched: bool) -> float | None:
    """A FWHM-like width (pixels): 2 x a percentile of the brightest 50 sources' half-light radii; None without
    sources. Sources seen in both frames are stars or galaxies: the 30th percentile keeps galaxies out. Sources
    of one frame alone also hold cosmic rays (sharper) and galaxies (wider): the median splits them."""
    if len(stars) == 0:
        return None
    return float(2.0 * np.percentile(stars.r50[:50], 30 if matched else 50))


def _saturated(data: np.ndarray, level: float, mapper: Any = None) -> np.ndarray:
    """(n, 2) x, y of pixels at ≥ 95 % of `level`, optionally mapped onto the new frame."""
    ys, xs = np.nonzero(data >= 0.95 * level)
    x, y = xs.astype(np.float64), ys.astype(np.float64)
    if mapper is not None:
        x, y = mapper(x, y)
    return np.column_stack([x, y])


def _level(data: np.ndarray) -> float:
    """Median of a sparse grid of pixels: the sky level, for the saturation headroom."""
    return float(np.median(data[:: max(1, data.shape[0] // 64), :: max(1, data.shape[1] // 64)]))


def _flatten(difference: np.ndarray, valid: Region) -> None:
    """Remove what is left of the sky from the difference (in place): patchy cloud brightens the new frame's sky
    on scales finer than the frames' own 64-px background meshes, and the difference, free of stars, can take
    a finer 32-px one."""
    import sep

    mask = ~mask_of(valid, difference.shape)
    sep.Background(difference, mask=mask, bw=32, bh=32, fw=3, fh=3).subfrom(difference)
    zero_outside(difference, valid)


def exposure_ratio(new_header: Any, ref_header: Any) -> float:
    """EXPTIME of the new frame over the reference's: the flux scale when no star is common to both; 1.0 when
    either header lacks a positive, finite EXPTIME."""
    times = []
    for header in (new_header, ref_header):
        try:
            value = float(header.get("EXPTIME")) if header is not None else math.nan
        except (TypeError, ValueError):
            value = math.nan
        times.append(value)
    new_s, ref_s = times
    if not (math.isfinite(new_s) and math.isfinite(ref_s) and new_s > 0 and ref_s > 0):
        return 1.0
    return new_s / ref_s


def subtract(
    new_data: np.ndarray,
    new_wcs: Any,
    ref_data: np.ndarray,
    ref_wcs: Any,
    *,
    new_saturation: float,
    ref_saturation: float,
    exposure_scale: float = 1.0,
) -> Subtraction:
    """Align, PSF-match, scale and subtract the reference from the new frame (raises BadInput on mismatch).
    `exposure_scale` (exposure_ratio of the headers) is the flux scale when the frames share no star."""
    check_geometry(new_wcs, new_data.shape, ref_wcs, ref_data.shape)
    new, new_rms = background(new_data)
    ref, ref_rms = background(ref_data)
    new_stars = find_stars(new, new_rms, ceiling=0.8 * (new_saturation - _level(new_data)))
    ref_stars = find_stars(ref, ref_rms, ceiling=0.8 * (ref_saturation - _level(ref_data)))
    alignment = align(new_stars, ref_stars, new_wcs, ref_wcs, ref_data.shape)
    ni, ri = alignment.pairs
    matched = len(ni) >= 3
    fwhm_new = _fwhm(new_stars.take(ni) if matched else new_stars, matched=matched)
    fwhm_ref = _fwhm(ref_stars.take(ri) if matched else ref_stars, matched=matched)
    if fwhm_new is None and fwhm_ref is None:
        raise BadInput("no star found in either frame to measure the PSF: both are blank, clouded out or saturated")
    fwhm_new = fwhm_new if fwhm_new is not None else fwhm_ref
    fwhm_ref = fwhm_ref if fwhm_ref is not None else fwhm_new
    assert fwhm_new is not None and fwhm_ref is not None
    if not matched:  # unpaired estimates are rough: keep their ratio within what seeing changes do
        centre = float(np.sqrt(fwhm_new * fwhm_ref))
        fwhm_new = float(np.clip(fwhm_new, centre / MAX_SEEING_RATIO**0.5, centre * MAX_SEEING_RATIO**0.5))
        fwhm_ref = float(np.clip(fwhm_ref, centre / MAX_SEEING_RATIO**0.5, centre * MAX_SEEING_RATIO**0.5))
    sigma_new, sigma_ref = fwhm_new / (2 * GAUSS_TO_R50), fwhm_ref / (2 * GAUSS_TO_R50)
    sigma_k = float(np.sqrt(abs(sigma_new**2 - sigma_ref**2)))
    resampled, valid = resample(ref, alignment, new.shape)
    # Photometry and kernel only where both frames have the star: a cosmic ray or hot pixel would drag them.
    fit_x, fit_y = new_stars.x[ni][:KERNEL_STARS], new_stars.y[ni][:KERNEL_STARS]
    fwhm = max(fwhm_new, fwhm_ref)
    measured = psf_kernel.flux_ratio(new, resampled, fit_x, fit_y, fwhm_px=fwhm, noise=(new_rms, ref_rms))
    if measured is not None:
        ratio = measured[0]
    elif len(ni):  # too few bright stars for apertures: the isophotal fluxes of the few there are
        ratio = float(np.median(new_stars.flux[ni] / np.maximum(ref_stars.flux[ri], 1e-9)))
    else:  # no common star at all: scale by the exposure times
        ratio = exposure_scale
    if sigma_new >= sigma_ref:  # the usual direction: blur the (sharper) reference
        found = psf_kernel.fit(new, resampled, fit_x, fit_y, sigma_px=sigma_k, fwhm_px=fwhm, noise=new_rms, scale=ratio)
        matched_new, reference, scale = new, psf_kernel.apply(found, resampled), found.total
        convolved = "reference"
    else:
        found = psf_kernel.fit(
            resampled, new, fit_x, fit_y, sigma_px=sigma_k, fwhm_px=fwhm, noise=ref_rms, scale=1.0 / ratio
        )
        scale = 1.0 / found.total
        matched_new = psf_kernel.apply(found, new)
        matched_new *= np.float32(scale)
        reference = resampled
        reference *= np.float32(scale)
        convolved = "new"
    valid = shrink(valid, found.margin)
    difference = np.subtract(matched_new, reference)
    zero_outside(difference, valid)
    _flatten(difference, valid)
    saturated = np.concatenate(
        [_saturated(new_data, new_saturation), _saturated(ref_data, ref_saturation, alignment.apply)], axis=0
    )
    return Subtraction(
        new_raw=new,
        new=matched_new,
        reference=reference,
        difference=difference,
        valid=valid,
        new_noise=new_rms,
        psf_sigma_px=max(sigma_new, sigma_ref),
        fwhm_new_px=fwhm_new,
        fwhm_reference_px=fwhm_ref,
        flux_scale=scale,
        kernel=found,
        convolved=convolved,
        alignment=alignment,
        saturated=saturated,
    )
