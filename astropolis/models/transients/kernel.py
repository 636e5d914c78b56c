"""PSF matching: a convolution kernel that turns the sharper frame's PSF into the blurrier one's.

The kernel is a weighted sum of three separable terms, δ + G(sigma1) + G(2 sigma1) (an Alard-Lupton-style basis with
no spatial variation), with sigma1 from the two frames' measured widths. Least squares on matched stars fits the
three weights, so Moffat wings of different β and the photometric scale (the weights' sum) come out of one
fit. Applying it costs six 1-D passes (the wide Gaussian is cascaded from the narrow one). With fewer than
three usable stars the kernel falls back to the single Gaussian the widths imply.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_SIGMA_PX = 0.5


@dataclass(frozen=True)
class MatchKernel:
    """K = w₀·δ + w₁·G(sigma1) + w₂·G(2 sigma1), applied to the sharper frame."""

    sigma_px: float
    weights: tuple[float, float, float]
    stars: int  # stars the weights were fitted on (0: Gaussian fallback)
    residual: float  # rms of the fit's normalised residuals (≈ 1 for a perfect match)

    @property
    def total(self) -> float:
        """The kernel's integral: the flux ratio blurrier / sharper frame."""
        return float(sum(self.weights))

    @property
    def margin(self) -> int:
        """Pixels lost at the edge of a convolved frame: 2.5sigma of the widest term, where the missing tail of
        the kernel falls under 1 %."""
        return int(np.ceil(2.5 * 2.0 * self.sigma_px)) + 1


def gaussian_taps(sigma: float) -> np.ndarray:
    """A normalised sampled Gaussian (odd length, ±4sigma); [1] for negligible widths."""
    if sigma < 0.2:
        return np.ones(1)
    half = int(np.ceil(4.0 * sigma))
    j = np.arange(-half, half + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (j / sigma) ** 2)
    return taps / taps.sum()


def _correlate_rows(image: np.ndarray, taps: np.ndarray, block: int = 64) -> np.ndarray:
    """out[y] = Σₖ taps[k] · image[y + k - h] (zero outside), in blocks of rows that stay in cache: 3-5x faster
    than scipy's correlate1d along axis 0, which walks the array column by column."""
    height = image.shape[0]
    half = len(taps) // 2
    out = np.zeros(image.shape, dtype=np.float32)  # calloc: pages arrive zeroed, no memset pass
    scratch = np.empty((block, *image.shape[1:]), dtype=np.float32)
    weights = taps.astype(np.float32)
    for y0 in range(0, height, block):
        y1 = min(height, y0 + block)
        target = out[y0:y1]
        for k, weight in enumerate(weights):
            s0, s1 = y0 + k - half, y1 + k - half
            a0, a1 = max(s0, 0), min(s1, height)
            if a1 <= a0:
                continue
            product = scratch[: a1 - a0]
            np.multiply(image[a0:a1], weight, out=product)
            target[a0 - s0 : a1 - s0] += product
    return out


def correlate(image: np.ndarray, taps_x: np.ndarray, taps_y: np.ndarray) -> np.ndarray:
    """Separable correlation (float32, zero outside the image); the input itself for unit taps."""
    from scipy.ndimage import correlate1d

    out = image
    if len(taps_x) > 1 or taps_x[0] != 1.0:
        out = correlate1d(out, taps_x.astype(np.float32), axis=1, mode="constant", output=np.float32)
    if len(taps_y) > 1 or taps_y[0] != 1.0:
        out = _correlate_rows(np.asarray(out, dtype=np.float32), taps_y)
    return out


def _terms(image: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, G(sigma)⊗image, G(2sigma)⊗image), the wide term cascaded from the narrow one."""
    narrow = gaussian_taps(sigma)
    extra = gaussian_taps(float(np.sqrt(3.0)) * sigma)  # sigma² + 3sigma² = (2sigma)²
    first = correlate(image, narrow, narrow)
    return image, first, correlate(first, extra, extra)


def apply(kernel: MatchKernel, image: np.ndarray) -> np.ndarray:
    """The image convolved with the kernel (float32)."""
    base, first, second = _terms(np.ascontiguousarray(image, dtype=np.float32), kernel.sigma_px)
    w0, w1, w2 = (np.float32(w) for w in kernel.weights)
    out = np.multiply(second, w2, out=second if second is not base else None)
    out += w1 * first
    out += w0 * base
    return out


def flux_ratio(
    target: np.ndarray, source: np.ndarray, x: np.ndarray, y: np.ndarray, *, fwhm_px: float, noise: tuple[float, float]
) -> tuple[float, int] | None:
    """Flux ratio target / source of the same stars (same grid): apertures of 2 FWHM with local sky from an
    annulus, a median screen against stars that changed, then an inverse-variance mean. None below 3 stars."""
    import sep

    if len(x) == 0:
        return None
    radius, annulus = 2.0 * fwhm_px, (3.0 * fwhm_px, 4.5 * fwhm_px)
    ft, et, flag_t = sep.sum_circle(target, x, y, radius, err=noise[0], bkgann=annulus)
    fs, es, flag_s = sep.sum_circle(source, x, y, radius, err=noise[1], bkgann=annulus)
    good = (flag_t == 0) & (flag_s == 0) & (ft > 10.0 * et) & (fs > 10.0 * es)
    if good.sum() < 3:
        return None
    ratio = ft[good] / fs[good]
    error = ratio * np.hypot(et[good] / ft[good], es[good] / fs[good])
    centre = float(np.median(ratio))
    spread = 1.4826 * float(np.median(np.abs(ratio - centre)))
    keep = np.abs(ratio - centre) <= np.maximum(4.0 * spread, 3.0 * error)
    if keep.sum() < 3:
        return centre, int(good.sum())
    weight = 1.0 / error[keep] ** 2
    return float(np.sum(ratio[keep] * weight) / np.sum(weight)), int(keep.sum())


def fit(
    target: np.ndarray,
    source: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    *,
    sigma_px: float,
    fwhm_px: float,
    noise: float,
    scale: float,
) -> MatchKernel:
    """Weights making source ⊗ K ≈ target around stars at (x, y) on both (same grid), their sum held at `scale`
    (measured by aperture photometry, which the kernel's shape cannot bias). With fewer than five usable stars
    the shape stays the single Gaussian."""
    sigma = max(MIN_SIGMA_PX, sigma_px)
    fallback = MatchKernel(sigma, (0.0, scale, 0.0), 0, float("nan"))
    half = int(np.clip(np.ceil(2.5 * fwhm_px), 6, 25))
    reach = half + len(gaussian_taps(2.0 * sigma)) // 2 + 1
    height, width = target.shape
    axis = np.arange(-half, half + 1)
    core = (np.hypot(axis[None, :], axis[:, None]) <= max(1.5, fwhm_px)).ravel()
    rows: list[np.ndarray] = []
    values: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    for cx, cy in zip(np.floor(x + 0.5).astype(int), np.floor(y + 0.5).astype(int), strict=True):
        if not (reach <= cx < width - reach and reach <= cy < height - reach):
            continue
        stamp = source[cy - reach : cy + reach + 1, cx - reach : cx + reach + 1]
        inner = (slice(reach - half, reach + half + 1),) * 2
        delta, narrow, wide = (t[inner].ravel().astype(np.float64) for t in _terms(np.ascontiguousarray(stamp), sigma))
        goal = target[cy - half : cy + half + 1, cx - half : cx + half + 1].ravel().astype(np.float64)
        # With w₀ + w₁ + w₂ = scale: goal - scale·narrow = w₀(δ - narrow) + w₂(wide - narrow) + c.
        rows.append(np.column_stack([delta - narrow, wide - narrow, np.ones_like(goal)]))
        values.append(goal - scale * narrow)
        weights.append(1.0 / np.sqrt(noise**2 + np.abs(goal)))
    if len(rows) < 5:
        return fallback
    keep = np.ones(len(rows), dtype=bool)
    for _ in range(3):
        design = np.concatenate([r * w[:, None] for r, w, k in zip(rows, weights, keep, strict=True) if k])
        rhs = np.concatenate([v * w for v, w, k in zip(values, weights, keep, strict=True) if k])
        solution = np.linalg.lstsq(design, rhs, rcond=None)[0]
        chi = np.array(
            [float(np.mean(((r @ solution - v) * w)[core] ** 2)) for r, v, w in zip(rows, values, weights, strict=True)]
        )
        clipped = keep & (chi <= max(4.0 * float(np.median(chi[keep])), 3.0))
        if np.array_equal(clipped, keep) or clipped.sum() < 5:
            break
        keep = clipped
    w0, w2 = float(solution[0]), float(solution[1])
    return MatchKernel(sigma, (w0, scale - w0 - w2, w2), int(keep.sum()), float(np.sqrt(np.median(chi[keep]))))
