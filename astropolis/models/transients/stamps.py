"""Triplets (new, reference, difference) cut around candidates, and L.A.Cosmic's verdict on each.

Stamps are STAMP_SIZE² pixels centred on the candidate's rounded position, zero-padded off the frame. All
channels are divided by the difference's per-pixel noise and compressed with asinh(v / 3): faint detail stays
linear, bright cores stay in range, and the channels keep one scale, so new - reference = difference
still holds where it matters to the eye and the network. The network also gets a fourth channel, the new frame
as taken (background-subtracted, never convolved): when the new frame is the sharper one, PSF matching blurs it,
and a cosmic ray or hot pixel then looks like a point source on the other three; unblurred it is still sharper
than the PSF.
"""

from __future__ import annotations

import numpy as np

STAMP_SIZE = 31
STAMP_CHANNELS = 4  # new, reference, difference, unconvolved new (what the pipeline cuts)
ASINH_SOFTENING = 3.0
CR_HALF = 20  # astroscrappy runs on a (2·CR_HALF + 1)² patch of the unconvolved new frame
CR_RADIUS_PX = 2.0


def centres(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer pixel centres (round half up, the same on every CPU)."""
    return np.floor(np.asarray(x) + 0.5).astype(np.int64), np.floor(np.asarray(y) + 0.5).astype(np.int64)


def cut(image: np.ndarray, cx: np.ndarray, cy: np.ndarray, half: int) -> np.ndarray:
    """(n, 2·half+1, 2·half+1) float32 patches of `image` centred on (cx, cy), zero where off the image."""
    size = 2 * half + 1
    height, width = image.shape
    out = np.zeros((len(cx), size, size), dtype=np.float32)
    for i, (x, y) in enumerate(zip(cx.tolist(), cy.tolist(), strict=True)):
        y0, y1, x0, x1 = y - half, y + half + 1, x - half, x + half + 1
        sy0, sy1, sx0, sx1 = max(0, y0), min(height, y1), max(0, x0), min(width, x1)
        if sy1 > sy0 and sx1 > sx0:
            out[i, sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def triplets(
    new: np.ndarray,
    reference: np.ndarray,
    difference: np.ndarray,
    noise: float,
    x: np.ndarray,
    y: np.ndarray,
    raw: np.ndarray | None = None,
) -> np.ndarray:
    """(n, C, STAMP_SIZE, STAMP_SIZE) float32 normalised stamps: new, reference, difference (C = 3), then the
    unconvolved new frame `raw` when given (C = 4)."""
    cx, cy = centres(x, y)
    half = STAMP_SIZE // 2
    images = (new, reference, difference) if raw is None else (new, reference, difference, raw)
    stack = np.stack([cut(image, cx, cy, half) for image in images], axis=1)
    stack *= np.float32(1.0 / (noise * ASINH_SOFTENING))
    return np.arcsinh(stack, out=stack)


def cosmic_ray_flags(new_raw: np.ndarray, noise: float, fwhm_px: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Whether L.A.Cosmic (astroscrappy) marks a pixel within CR_RADIUS_PX of each candidate.

    Each patch of the background-subtracted, never-convolved new frame is rescaled so that its sky noise is 10
    and offset by 100, which makes astroscrappy's Poisson noise model (gain 1, no read noise) match the sky.
    """
    import astroscrappy
    from threadpoolctl import threadpool_limits

    cx, cy = centres(x, y)
    patches = cut(new_raw, cx, cy, CR_HALF)
    patches *= np.float32(10.0 / noise)
    patches += np.float32(100.0)
    yy, xx = np.mgrid[-CR_HALF : CR_HALF + 1, -CR_HALF : CR_HALF + 1]
    fx, fy = np.asarray(x) - cx, np.asarray(y) - cy
    flags = np.zeros(len(cx), dtype=bool)
    # One OpenMP thread: on 41x41 patches threads only add spin-waits, which on a busy machine cost 100x.
    with threadpool_limits(1, user_api="openmp"):
        for i, patch in enumerate(patches):
            mask, _ = astroscrappy.detect_cosmics(
                patch,
                gain=1.0,
                readnoise=0.0,
                sigclip=4.5,
                sigfrac=0.3,
                objlim=5.0,
                satlevel=1e9,
                niter=2,
                psffwhm=float(max(fwhm_px, 1.0)),
                verbose=False,
            )
            near = (xx - fx[i]) ** 2 + (yy - fy[i]) ** 2 <= CR_RADIUS_PX**2
            flags[i] = bool(mask[near].any())
    return flags
