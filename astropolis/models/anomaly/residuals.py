"""How far each source is from a point source of its own frame, in units of its own noise.

Shape features such as elongation or asymmetry are noisy for faint sources and exact for bright ones, so a
fixed cut on them either drowns faint sources in false alarms or misses bright oddities. Two chi-squares fix
that: the residual of fitting the frame's PSF template (the median cutout of its reference stars, with a
linearised sub-pixel shift) and the residual of the source against itself rotated by 180°. Both are ~1 for an
ordinary star at any signal-to-noise and grow with (S/N)² for anything that is not a point source or not
point-symmetric. The noise of each cutout cell comes from the background rms, the source's own photon noise
and the bilinear interpolation weights of the cell.
"""

from __future__ import annotations

import numpy as np


def cell_variance(values: np.ndarray, weights2: np.ndarray, background_rms: float, gain: float) -> np.ndarray:
    """Noise variance (ADU²) of each bilinearly sampled cell: (rms² + signal/gain) x sum of squared weights."""
    return (background_rms**2 + np.clip(values, 0.0, None) / gain) * weights2


def template(normalised: np.ndarray, valid: np.ndarray, reference: np.ndarray, side: int) -> np.ndarray:
    """The frame's PSF template on the cutout grid: the per-cell median of its reference stars' unit-flux
    cutouts; a Gaussian of the PSF width when there are fewer than three of them."""
    if reference.sum() >= 3:
        stack = np.where(valid[reference], normalised[reference], np.nan)
        median = np.nanmedian(stack, axis=0) if np.isfinite(stack).any(axis=0).all() else None
        if median is not None:
            return np.asarray(median)
    # Cutouts span 8 FWHM in `side` cells: sigma is side / 8 / 2.355 cells.
    sigma = side / 8.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    axis = np.arange(side) - (side - 1) / 2.0
    gauss = np.exp(-0.5 * (axis[None, :] ** 2 + axis[:, None] ** 2) / sigma**2)
    return np.asarray((gauss / gauss.sum()).ravel())


def psf_chi2(raw: np.ndarray, valid: np.ndarray, variance: np.ndarray, psf: np.ndarray, side: int) -> np.ndarray:
    """Reduced chi-square of each cutout against flux x template plus a linear sub-pixel shift (weighted least
    squares on the valid cells)."""
    image = psf.reshape(side, side)
    grad_y, grad_x = np.gradient(image)
    design = np.stack([psf, grad_x.ravel(), grad_y.ravel()], axis=1)  # (cells, 3)
    weight = np.where(valid, 1.0 / np.maximum(variance, 1e-12), 0.0)  # (n, cells)
    normal = np.einsum("nc,ci,cj->nij", weight, design, design)
    rhs = np.einsum("nc,nc,ci->ni", weight, raw, design)
    normal += np.eye(3)[None] * 1e-12 * np.trace(normal, axis1=1, axis2=2)[:, None, None]
    coefficients = np.linalg.solve(normal, rhs[..., None])[..., 0]
    residual = raw - coefficients @ design.T
    dof = np.maximum(valid.sum(axis=1) - 3, 1)
    return np.asarray((weight * residual**2).sum(axis=1) / dof)


def asymmetry_chi2(raw: np.ndarray, valid: np.ndarray, variance: np.ndarray, side: int) -> np.ndarray:
    """Reduced chi-square of each cutout against itself rotated by 180° (cells valid in both)."""

    def rotate(a: np.ndarray) -> np.ndarray:
        return a.reshape(-1, side, side)[:, ::-1, ::-1].reshape(a.shape)

    both = valid & rotate(valid)
    difference = raw - rotate(raw)
    total = variance + rotate(variance)
    cells = np.maximum(both.sum(axis=1), 1)
    return np.asarray(np.where(both, difference**2 / np.maximum(total, 1e-12), 0.0).sum(axis=1) / cells)
