"""The benchmark's reference: the same difference imaging and detection done the plain photutils way.

Background2D on both frames, every new pixel carried through the sky to the reference by the two WCSs and
resampled with a cubic spline, PSF matching with photutils' Fourier matching kernel between Gaussian PSFs of
the measured widths (convolve_fft), a flux ratio from cross-matched SourceCatalog fluxes, then
detect_sources at 5sigma of the matched-filtered difference's own noise and a SourceCatalog of the result. Not
used by the resident: it exists so that benchmarks can print our pipeline's time and recall next to it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class BaselineResult:
    """Positions (0-based) of the baseline's detections."""

    x: np.ndarray
    y: np.ndarray


def _subtracted(data: np.ndarray) -> np.ndarray:
    from photutils.background import Background2D, MedianBackground

    background = Background2D(data, (64, 64), filter_size=(3, 3), bkg_estimator=MedianBackground())
    return np.asarray(data - background.background, dtype=np.float64)


def _catalog(data: np.ndarray, threshold_sigma: float = 10.0) -> Any:
    from astropy.stats import mad_std
    from photutils.segmentation import SourceCatalog, detect_sources

    segments = detect_sources(data, threshold_sigma * mad_std(data), n_pixels=5)
    return SourceCatalog(data, segments) if segments is not None else None


def _gaussian_psf(fwhm: float, size: int) -> np.ndarray:
    axis = np.arange(size) - size // 2
    sigma = fwhm / 2.3548
    psf = np.exp(-0.5 * (axis[None, :] ** 2 + axis[:, None] ** 2) / sigma**2)
    return psf / psf.sum()


def photutils_difference(new: np.ndarray, new_wcs: Any, ref: np.ndarray, ref_wcs: Any) -> BaselineResult:
    """Sources at ≥ 5sigma on new - reference, the plain photutils way."""
    from astropy.convolution import convolve_fft
    from astropy.stats import mad_std
    from photutils.psf_matching import TopHatWindow, create_matching_kernel
    from photutils.segmentation import SourceCatalog, detect_sources, make_2dgaussian_kernel
    from scipy.ndimage import map_coordinates

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        n, r = _subtracted(new), _subtracted(ref)
        height, width = n.shape
        yy, xx = np.mgrid[0:height, 0:width]
        ra, dec = new_wcs.all_pix2world(xx, yy, 0)
        rx, ry = ref_wcs.all_world2pix(ra, dec, 0)
        r = map_coordinates(r, [ry, rx], order=3, cval=0.0)
        cat_n, cat_r = _catalog(n), _catalog(r)
        fwhm_n = float(np.nanmedian(cat_n.fwhm.value)) if cat_n is not None else 3.0
        fwhm_r = float(np.nanmedian(cat_r.fwhm.value)) if cat_r is not None else fwhm_n
        if cat_n is not None and cat_r is not None:
            dx = cat_n.xcentroid[:, None] - cat_r.xcentroid[None, :]
            dy = cat_n.ycentroid[:, None] - cat_r.ycentroid[None, :]
            nearest = np.argmin(dx**2 + dy**2, axis=1)
            close = np.hypot(dx[np.arange(len(nearest)), nearest], dy[np.arange(len(nearest)), nearest]) < 2.0
            ratio = cat_n.segment_flux[close] / cat_r.segment_flux[nearest[close]]
            scale = float(np.nanmedian(ratio)) if close.any() else 1.0
        else:
            scale = 1.0
        size = int(2 * np.ceil(3 * max(fwhm_n, fwhm_r)) + 1)
        sharp, broad = sorted((fwhm_n, fwhm_r))
        kernel = create_matching_kernel(
            _gaussian_psf(sharp, size), _gaussian_psf(broad, size), window=TopHatWindow(0.35)
        )
        if fwhm_n >= fwhm_r:
            r = convolve_fft(r, kernel, boundary="fill", normalize_kernel=True)
        else:
            n = convolve_fft(n, kernel, boundary="fill", normalize_kernel=True)
        difference = n - scale * r
        difference[(rx < 3) | (ry < 3) | (rx > ref.shape[1] - 4) | (ry > ref.shape[0] - 4)] = 0.0
        smooth = convolve_fft(difference, make_2dgaussian_kernel(max(fwhm_n, fwhm_r), size=size), boundary="fill")
        segments = detect_sources(smooth, 5.0 * mad_std(smooth), n_pixels=2)
        if segments is None:
            return BaselineResult(np.zeros(0), np.zeros(0))
        found = SourceCatalog(difference, segments, convolved_data=smooth)
        return BaselineResult(np.asarray(found.xcentroid, dtype=float), np.asarray(found.ycentroid, dtype=float))
