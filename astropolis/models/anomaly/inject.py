"""Unusual objects injected into frames, labelled and seeded: the truth the anomaly resident is judged on.

The simulator renders stars and ordinary galaxies; the objects a reviewer would want to see are rarer. Each
kind here is an intrinsic shape drawn on a 5x oversampled grid, binned to pixels and convolved with the
frame's own point-spread function (a median stack of its bright isolated stars), so an injected object is
blurred exactly like everything else in the frame, whatever the seeing, focus or tracking. Photon noise is
added with the frame's gain. Fluxes are set by a target signal-to-noise over the object's noise-equivalent
area, so faint and bright examples of every kind appear.

Kinds (all sizes in PSF FWHM):
- needle: a thin straight streak 6-12 FWHM long (far longer than any edge-on disc the simulator makes);
- jet: a point source with a one-sided linear jet 3-6 FWHM long carrying 30-50% of the light;
- ring: a thin ring of radius 1.5-3 FWHM, sometimes with a faint central source (Einstein ring, ring galaxy);
- arc: a 60-140° arc of radius 2.5-5 FWHM beside a faint lens (a lensed arc);
- comet: a fuzzy coma with a widening tail 3-6 FWHM long;
- halo: a point-like core inside a round exponential halo of scale 2-4 FWHM (compact but extended);
- double: two point sources 0.8-1.6 FWHM apart at a flux ratio of 0.15-0.4 (an odd blend).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sep
from scipy import ndimage, signal

KINDS = ("needle", "jet", "ring", "arc", "comet", "halo", "double")
OVERSAMPLE = 5
PSF_SIDE = 25  # empirical PSF stamp side in pixels (odd)


@dataclass(frozen=True)
class Injected:
    """One injected object: its kind, where it is (0-based pixels and ICRS degrees), how big and how bright."""

    kind: str
    x: float
    y: float
    radius_px: float  # a detection within this distance of (x, y) belongs to the object
    flux_adu: float
    snr: float
    ra_deg: float = 0.0
    dec_deg: float = 0.0


def empirical_psf(data: np.ndarray, *, side: int = PSF_SIDE, saturation: float | None = None) -> np.ndarray:
    """The frame's PSF: a median of bright, isolated, unsaturated, round sources, each shifted to the stamp's
    centre, normalised to unit sum."""
    image = np.ascontiguousarray(data, dtype=np.float64)
    background = sep.Background(image, bw=64, bh=64)
    sub = image - background.back()
    objects = sep.extract(sub, 5.0, err=background.globalrms, minarea=5)
    half = side // 2
    height, width = sub.shape
    top = saturation if saturation is not None else 0.7 * float(image.max())
    xy = np.column_stack([objects["x"], objects["y"]])
    fluxes = objects["flux"]
    stamps = []
    for index in np.argsort(-objects["flux"]):
        obj = objects[index]
        x, y = float(obj["x"]), float(obj["y"])
        if obj["peak"] + background.globalback >= top or obj["a"] > 1.3 * obj["b"] + 0.3:
            continue
        if not (half + 2 <= x < width - half - 2 and half + 2 <= y < height - half - 2):
            continue
        distance = np.hypot(xy[:, 0] - x, xy[:, 1] - y)
        if np.sum((distance < side) & (fluxes > 0.02 * obj["flux"])) > 1:
            continue
        cx, cy = round(x), round(y)
        stamp = sub[cy - half - 1 : cy + half + 2, cx - half - 1 : cx + half + 2]
        shifted = ndimage.shift(stamp, (cy - y, cx - x), order=3, mode="nearest")[1:-1, 1:-1]
        total = shifted.sum()
        if total > 0 and obj["peak"] > 50 * background.globalrms:
            stamps.append(shifted / total)
        if len(stamps) >= 25:
            break
    if len(stamps) < 3:
        raise ValueError("too few bright isolated stars to measure the PSF")
    psf = np.clip(np.median(np.stack(stamps), axis=0), 0.0, None)
    return psf / psf.sum()


def _trimmed(psf: np.ndarray) -> np.ndarray:
    """A PSF kernel cut to the square holding all but 1e-4 of its light (big Moffat kernels cost time)."""
    half = psf.shape[0] // 2
    total = psf.sum()
    for radius in range(4, half + 1):
        if psf[half - radius : half + radius + 1, half - radius : half + radius + 1].sum() >= (1 - 1e-4) * total:
            cut = psf[half - radius : half + radius + 1, half - radius : half + radius + 1]
            return cut / cut.sum()
    return psf / total


def _fwhm(psf: np.ndarray) -> float:
    """FWHM in pixels of a PSF stamp, from the area above half maximum."""
    return float(2.0 * np.sqrt(np.count_nonzero(psf >= psf.max() / 2.0) / np.pi))


def _line(u: np.ndarray, v: np.ndarray, length: float, width: float, weight: Any = None) -> np.ndarray:
    """A straight streak along u from 0 to `length`, Gaussian across (sigma `width`)."""
    inside = (u >= 0) & (u <= length)
    profile = np.exp(-0.5 * (v / width) ** 2) * inside
    return profile * (1.0 if weight is None else weight)


def _intrinsic(kind: str, u: np.ndarray, v: np.ndarray, s: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Unit-sum intrinsic image of `kind` on the rotated fine grid (u, v in pixels; s = PSF FWHM) and the
    object's radius in pixels."""
    point = np.exp(-0.5 * (u**2 + v**2) / (0.15 * s) ** 2)
    point /= point.sum()
    if kind == "needle":
        length = rng.uniform(6.0, 12.0) * s
        image = _line(u + length / 2, v, length, 0.12 * s)
        return image / image.sum(), length / 2 + s
    if kind == "jet":
        length = rng.uniform(3.0, 6.0) * s
        jet = _line(u, v, length, 0.12 * s, np.exp(-u / length))
        share = rng.uniform(0.3, 0.5)
        return (1 - share) * point + share * jet / jet.sum(), length + s
    if kind == "ring":
        radius = rng.uniform(1.5, 3.0) * s
        ring = np.exp(-0.5 * ((np.hypot(u, v) - radius) / (0.12 * s)) ** 2)
        core = rng.choice([0.0, rng.uniform(0.1, 0.25)])
        return (1 - core) * ring / ring.sum() + core * point, radius + s
    if kind == "arc":
        radius = rng.uniform(2.5, 5.0) * s
        extent = np.radians(rng.uniform(60.0, 140.0))
        angle = np.arctan2(v, u)
        taper = np.clip(1.0 - (angle / (extent / 2)) ** 2, 0.0, None)
        arc = np.exp(-0.5 * ((np.hypot(u, v) - radius) / (0.12 * s)) ** 2) * taper
        lens = np.exp(-np.hypot(u, v) / (0.4 * s))
        share = rng.uniform(0.15, 0.3)
        return (1 - share) * arc / arc.sum() + share * lens / lens.sum(), radius + s
    if kind == "comet":
        coma = np.exp(-0.5 * (u**2 + v**2) / (rng.uniform(0.5, 1.0) * s) ** 2)
        length = rng.uniform(3.0, 6.0) * s
        spread = 0.3 * s + 0.25 * np.clip(u, 0.0, None)
        tail = np.exp(-np.clip(u, 0.0, None) / (length / 2)) * np.exp(-0.5 * (v / spread) ** 2) * (u >= 0)
        share = rng.uniform(0.35, 0.6)
        return (1 - share) * coma / coma.sum() + share * tail / tail.sum(), length + s
    if kind == "halo":
        scale = rng.uniform(2.0, 4.0) * s
        halo = np.exp(-np.hypot(u, v) / scale)
        core = rng.uniform(0.35, 0.6)
        return core * point + (1 - core) * halo / halo.sum(), 3 * scale
    if kind == "double":
        gap = rng.uniform(0.8, 1.6) * s
        ratio = rng.uniform(0.15, 0.4)
        second = np.exp(-0.5 * ((u - gap) ** 2 + v**2) / (0.15 * s) ** 2)
        return (point + ratio * second / second.sum()) / (1 + ratio), gap + s
    raise ValueError(f"unknown anomaly kind {kind!r}; kinds: {', '.join(KINDS)}")


def render_object(
    kind: str, psf: np.ndarray, rng: np.random.Generator, *, dx: float = 0.0, dy: float = 0.0
) -> tuple[np.ndarray, float]:
    """A unit-flux pixel stamp of `kind` convolved with `psf`, centred at the stamp centre plus (dx, dy), and the
    object's radius in pixels."""
    s = _fwhm(psf)
    side = int(2 * np.ceil(14 * s) + 1)
    fine = (np.arange(side * OVERSAMPLE) + 0.5) / OVERSAMPLE - side / 2
    gy, gx = np.meshgrid(fine - dy, fine - dx, indexing="ij")
    theta = rng.uniform(0.0, 2 * np.pi)
    u = gx * np.cos(theta) + gy * np.sin(theta)
    v = -gx * np.sin(theta) + gy * np.cos(theta)
    intrinsic, radius = _intrinsic(kind, u, v, s, rng)
    pixels = intrinsic.reshape(side, OVERSAMPLE, side, OVERSAMPLE).sum(axis=(1, 3))
    stamp = np.clip(signal.fftconvolve(pixels, psf, mode="same"), 0.0, None)
    return stamp / stamp.sum(), radius


def inject(
    data: np.ndarray,
    rng: np.random.Generator,
    *,
    count: int,
    kinds: Sequence[str] = KINDS,
    snr_range: tuple[float, float] = (40.0, 400.0),
    gain: float = 1.0,
    wcs: Any = None,
    saturation: float | None = None,
    psf: np.ndarray | None = None,
) -> tuple[np.ndarray, list[Injected]]:
    """`data` with `count` unusual objects added at free places (kinds drawn in turn from `kinds`), and their
    labels. The PSF is the given kernel (the simulator's, when the frame is simulated) or the frame's empirical
    one. Pixels clip at `saturation` and stay whole ADU if they were. The input array is not changed."""
    image = np.array(data, dtype=np.float64)
    if psf is None:
        psf = empirical_psf(image, saturation=saturation)
    psf = _trimmed(psf)
    background = sep.Background(np.ascontiguousarray(image), bw=64, bh=64)
    rms = float(background.globalrms)
    occupied = sep.extract(image - background.back(), 3.0, err=rms, minarea=5)
    taken = [(float(o["x"]), float(o["y"]), 1.5 * float(o["a"]) * 3.0) for o in occupied]
    height, width = image.shape
    placed: list[Injected] = []
    for index in range(count):
        kind = kinds[index % len(kinds)]
        stamp, radius = render_object(kind, psf, rng, dx=rng.uniform(-0.5, 0.5), dy=rng.uniform(-0.5, 0.5))
        half = stamp.shape[0] // 2
        snr = float(np.exp(rng.uniform(*np.log(snr_range))))
        flux = snr * rms * float(np.sqrt(1.0 / np.sum(stamp**2)))
        for _ in range(200):
            cx = int(rng.integers(half + 4, width - half - 4))
            cy = int(rng.integers(half + 4, height - half - 4))
            if all(np.hypot(cx - x, cy - y) > radius + r + 4 for x, y, r in taken):
                break
        else:
            continue
        signal_adu = flux * stamp
        noisy = signal_adu + rng.normal(0.0, 1.0, stamp.shape) * np.sqrt(signal_adu / gain)
        image[cy - half : cy + half + 1, cx - half : cx + half + 1] += noisy
        yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
        x = cx + float((stamp * xx).sum())
        y = cy + float((stamp * yy).sum())
        ra = dec = 0.0
        if wcs is not None:
            ra, dec = (float(value) for value in wcs.pixel_to_world_values(x, y))
        placed.append(Injected(kind, x, y, radius, flux, snr, ra, dec))
        taken.append((x, y, radius))
    if saturation is not None:
        np.minimum(image, saturation, out=image)
    source = np.asarray(data)
    if np.issubdtype(source.dtype, np.integer) or bool(np.all(source == np.rint(source))):
        np.rint(image, out=image)  # a camera writes whole ADU; so should the injection
    return image.astype(np.asarray(data).dtype, copy=False), placed
