"""The point-spread function (Moffat seeing, a defocused pupil, a tracking trail), sub-pixel placement of point
sources, and the S/N definition used for injected transients.

S/N of a point source (the definition every resident and test uses): with F the source's electrons, b_i the
electrons per pixel of everything else at that place (sky, host galaxy, neighbouring stars, dark current) and
RN the read noise, summed over a circular aperture A of radius r centred on the source,

    S/N(r) = f(r) F / sqrt( f(r) F + Σ_{i in A} (b_i + RN²) ),

where f(r) is the fraction of the PSF inside A; the optimal aperture is the radius that maximises S/N(r).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

LANCZOS_A = 3


@dataclass(frozen=True)
class Psf:
    """A rendered PSF kernel (odd square, sums to 1, centred on its middle pixel) and how it was made."""

    kernel: np.ndarray
    fwhm_px: float  # seeing FWHM (best focus)
    beta: float
    defocus_px: float  # outer diameter of the defocused pupil image
    trail_px: float
    trail_angle_deg: float

    @property
    def half(self) -> int:
        """Half-size of the kernel (its radius in pixels)."""
        return self.kernel.shape[0] // 2

    @property
    def effective_fwhm_px(self) -> float:
        """FWHM of the kernel measured along its narrowest direction crossing the centre (pixels)."""
        return measured_fwhm(self.kernel)


def moffat_alpha(fwhm: float, beta: float) -> float:
    """Moffat core radius alpha for a FWHM and beta."""
    return fwhm / (2.0 * math.sqrt(2 ** (1.0 / beta) - 1.0))


def _moffat(half: int, fwhm: float, beta: float) -> np.ndarray:
    alpha = moffat_alpha(fwhm, beta)
    axis = np.arange(-half, half + 1, dtype=np.float64)
    r2 = axis[None, :] ** 2 + axis[:, None] ** 2
    kernel = (1.0 + r2 / alpha**2) ** (-beta)
    # Pixel integration matters where the profile is steep: supersample the core 5x5.
    core = min(half, max(2, math.ceil(fwhm)))
    sub = (np.arange(5) - 2) / 5.0
    for dy in range(-core, core + 1):
        for dx in range(-core, core + 1):
            sy, sx = np.meshgrid(dy + sub, dx + sub, indexing="ij")
            kernel[dy + half, dx + half] = float(np.mean((1.0 + (sx**2 + sy**2) / alpha**2) ** (-beta)))
    return kernel


def _annulus(diameter: float, obstruction: float = 0.35) -> np.ndarray:
    """The image of a defocused pupil with a central obstruction: a uniform ring, antialiased 8x."""
    outer = diameter / 2.0
    half = math.ceil(outer) + 1
    fine = 8
    axis = (np.arange(-half * fine, (half + 1) * fine) + 0.5 - fine / 2) / fine
    r = np.hypot(axis[None, :], axis[:, None])
    ring = ((r <= outer) & (r >= obstruction * outer)).astype(np.float64)
    size = 2 * half + 1
    binned = ring.reshape(size, fine, size, fine).sum(axis=(1, 3))
    return binned / binned.sum()


def _segment(length: float, angle_deg: float) -> np.ndarray:
    """A straight trail of `length` pixels through the centre, as a kernel (Lanczos-deposited samples)."""
    half = math.ceil(length / 2.0) + LANCZOS_A + 1
    kernel = np.zeros((2 * half + 1, 2 * half + 1))
    samples = max(2, math.ceil(4 * length) + 1)
    t = np.linspace(-0.5, 0.5, samples) * length
    angle = math.radians(angle_deg)
    deposit(kernel, half + t * math.cos(angle), half + t * math.sin(angle), np.full(samples, 1.0 / samples))
    return kernel / kernel.sum()


@lru_cache(maxsize=64)
def make_psf(
    fwhm_px: float, beta: float, focus: float = 1.0, trail_px: float = 0.0, trail_angle_deg: float = 0.0
) -> Psf:
    """The PSF kernel: Moffat(fwhm, beta) convolved with a defocused pupil and a tracking trail.

    A focus multiplier f > 1 adds a pupil image of outer diameter fwhm * sqrt(f² - 1), so the FWHM grows
    roughly f-fold and the profile turns flat-topped, then into a donut.
    """
    from scipy.signal import fftconvolve

    half = min(128, max(15, math.ceil(12.0 * fwhm_px)))
    kernel = _moffat(half, fwhm_px, beta)
    defocus = fwhm_px * math.sqrt(max(focus**2 - 1.0, 0.0))
    if defocus > 0.5:
        kernel = fftconvolve(kernel, _annulus(defocus), mode="full")
    if trail_px > 0.25:
        kernel = fftconvolve(kernel, _segment(trail_px, trail_angle_deg), mode="full")
    kernel = np.clip(kernel, 0.0, None)
    kernel /= kernel.sum()
    kernel.setflags(write=False)
    return Psf(kernel, fwhm_px, beta, defocus, trail_px, trail_angle_deg)


def lanczos_weights(frac: np.ndarray) -> np.ndarray:
    """Lanczos-3 weights (n, 6) for taps at offsets -2..3 from floor(x), normalised to sum 1."""
    offsets = np.arange(-LANCZOS_A + 1, LANCZOS_A + 1, dtype=np.float64)
    d = frac[:, None] - offsets[None, :]
    weights = np.sinc(d) * np.sinc(d / LANCZOS_A)
    return weights / weights.sum(axis=1, keepdims=True)


def deposit(image: np.ndarray, x: np.ndarray, y: np.ndarray, flux: np.ndarray) -> None:
    """Add point sources at sub-pixel (x, y) to `image` in place, spread by Lanczos-3 weights so that convolving
    with a PSF kernel places the PSF at (x, y); taps outside the image are dropped."""
    x, y, flux = np.asarray(x, float), np.asarray(y, float), np.asarray(flux, float)
    if x.size == 0:
        return
    height, width = image.shape
    ix, iy = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    wx, wy = lanczos_weights(x - ix), lanczos_weights(y - iy)
    offsets = np.arange(-LANCZOS_A + 1, LANCZOS_A + 1)
    cols = ix[:, None, None] + offsets[None, None, :]
    rows = iy[:, None, None] + offsets[None, :, None]
    weights = flux[:, None, None] * wy[:, :, None] * wx[:, None, :]
    cols, rows = np.broadcast_to(cols, weights.shape), np.broadcast_to(rows, weights.shape)
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    flat = rows[inside] * width + cols[inside]
    if flat.size > image.size // 8:
        image += np.bincount(flat, weights=weights[inside], minlength=height * width).reshape(height, width)
    else:
        np.add.at(image.reshape(-1), flat, weights[inside])


def measured_fwhm(kernel: np.ndarray) -> float:
    """FWHM of an image of a point source from the area above half maximum (2 sqrt(area / pi)), pixels; the
    area is measured on a 4x bilinear upsampling so that it is not quantised to whole pixels."""
    from scipy.ndimage import zoom

    peak_at = np.unravel_index(int(np.argmax(kernel)), kernel.shape)
    reach = max(4, int((kernel >= 0.05 * kernel.max()).sum() ** 0.5) + 2)
    y0, x0 = max(0, peak_at[0] - reach), max(0, peak_at[1] - reach)
    core = kernel[y0 : peak_at[0] + reach + 1, x0 : peak_at[1] + reach + 1]
    fine = zoom(core, 4, order=1, grid_mode=True, mode="nearest")
    area = float((fine >= 0.5 * kernel.max()).sum()) / 16.0
    return 2.0 * math.sqrt(area / math.pi)


@dataclass(frozen=True)
class ApertureCurve:
    """Encircled energy of a PSF: fraction f(r) and pixel count n(r) for apertures of radius r (pixels)."""

    radius: np.ndarray
    fraction: np.ndarray
    pixels: np.ndarray

    @classmethod
    def of(cls, kernel: np.ndarray) -> ApertureCurve:
        """The curve of a kernel centred on its middle pixel."""
        half = kernel.shape[0] // 2
        axis = np.arange(-half, half + 1)
        r = np.hypot(axis[None, :], axis[:, None]).ravel()
        order = np.argsort(r, kind="stable")
        r_sorted, cumulative = r[order], np.cumsum(kernel.ravel()[order])
        radius = np.arange(1.0, min(half, 60) + 0.01, 0.25)
        count = np.searchsorted(r_sorted, radius, side="right")
        return cls(radius, cumulative[count - 1], count.astype(np.float64))

    def flux_for_snr(self, snr: float, noise_per_pixel: float) -> tuple[float, float]:
        """(total electrons, optimal radius) a source needs to reach `snr` over background variance
        `noise_per_pixel` (b + RN², electrons per pixel)."""
        s2 = snr * snr
        inside = (s2 + np.sqrt(s2 * s2 + 4.0 * s2 * self.pixels * noise_per_pixel)) / 2.0
        total = inside / self.fraction
        best = int(np.argmin(total))
        return float(total[best]), float(self.radius[best])

    def snr(self, flux: float, noise_per_pixel: float) -> tuple[float, float]:
        """(S/N, optimal radius) of a source of `flux` electrons over background variance `noise_per_pixel`."""
        signal = self.fraction * flux
        values = signal / np.sqrt(np.maximum(signal + self.pixels * noise_per_pixel, 1e-12))
        best = int(np.argmax(values))
        return float(values[best]), float(self.radius[best])
