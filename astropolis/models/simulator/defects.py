"""Defects a frame can carry, each drawn from its own random stream so that raising one defect's count keeps
the ones already drawn (item i of a kind is always the same) and leaves every other part of the frame alone."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from astropolis.models.simulator.psf import deposit

# Stream ids: every random choice comes from np.random.default_rng([seed, STREAM, ...]).
CLOUDS, SKY_GRADIENT, SATELLITE, AIRCRAFT, HOT_PIXEL, HOT_COLUMN, COSMIC, NOISE, PSF_BETA, PAIR, SCINTILLATION = range(
    1, 12
)


def stream(seed: int, kind: int, *more: int) -> np.random.Generator:
    """The random stream of one part of one frame."""
    return np.random.default_rng([seed & 0xFFFFFFFF, kind, *more])


def smooth_field(seed: int, kind: int, x: np.ndarray, y: np.ndarray, scale_arcsec: float) -> np.ndarray:
    """A smooth random pattern (zero mean, unit-ish spread) made of a few long waves, 3 to 20 arcmin."""
    rng = stream(seed, kind, 1)
    pattern = np.zeros(np.broadcast(x, y).shape)
    for _ in range(6):
        wavelength = rng.uniform(180.0, 1200.0) / scale_arcsec  # pixels
        angle, phase = rng.uniform(0, 2 * math.pi, 2)
        k = 2 * math.pi / wavelength
        pattern += np.cos(k * (x * math.cos(angle) + y * math.sin(angle)) + phase)
    return pattern / math.sqrt(3.0)


def cloud_pattern(seed: int, shape: tuple[int, int], offset: int, scale_arcsec: float) -> np.ndarray:
    """Where the cloud is thicker (0..1) over a padded canvas: a gradient in a random direction plus patches."""
    height, width = shape
    rng = stream(seed, CLOUDS)
    angle = rng.uniform(0, 2 * math.pi)
    y = (np.arange(height, dtype=np.float64) - offset)[:, None]
    x = (np.arange(width, dtype=np.float64) - offset)[None, :]
    size = max(width, height) - 2 * offset
    gradient = ((x - size / 2) * math.cos(angle) + (y - size / 2) * math.sin(angle)) / max(size, 1)
    patches = smooth_field(seed, CLOUDS, x, y, scale_arcsec)
    return np.clip(0.5 + 0.7 * gradient + 0.2 * patches, 0.0, 1.0)


def cloud_transparency(pattern: np.ndarray, clouds: float) -> np.ndarray:
    """Fraction of light that gets through: mean loss about `clouds`, deeper where the pattern is thicker."""
    return np.clip(1.0 - clouds * (0.5 + pattern), 0.02, 1.0)


def cloud_sky_factor(pattern: np.ndarray, clouds: float) -> np.ndarray:
    """How much brighter the sky is under cloud (clouds reflect the site's light pollution)."""
    return 1.0 + 1.2 * clouds * (0.5 + pattern)


def sky_gradient(seed: int, shape: tuple[int, int]) -> tuple[np.ndarray, dict[str, float]]:
    """A clear sky's own gentle gradient (moon, horizon glow): up to ±1.5% across the frame."""
    rng = stream(seed, SKY_GRADIENT)
    amplitude, angle = rng.uniform(0.0, 0.015), rng.uniform(0, 2 * math.pi)
    height, width = shape
    u = (np.arange(width) - (width - 1) / 2) / max(width, height) * 2
    v = (np.arange(height) - (height - 1) / 2) / max(width, height) * 2
    factor = 1.0 + amplitude * (u[None, :] * math.cos(angle) + v[:, None] * math.sin(angle))
    return factor, {"amplitude": amplitude, "angle_deg": math.degrees(angle)}


def _line_through(rng: np.random.Generator, width: int, height: int) -> tuple[float, float, float, float]:
    """Endpoints of a straight line through a random point of the frame, clipped to the frame."""
    px, py = rng.uniform(0.1 * width, 0.9 * width), rng.uniform(0.1 * height, 0.9 * height)
    angle = rng.uniform(0, math.pi)
    dx, dy = math.cos(angle), math.sin(angle)
    ts: list[float] = []
    for start, step, limit in ((px, dx, width - 1), (py, dy, height - 1)):
        if abs(step) > 1e-9:
            ts.extend(sorted(((0 - start) / step, (limit - start) / step)))
    t0 = max(t for t in ts if t <= 0) if any(t <= 0 for t in ts) else 0.0
    t1 = min(t for t in ts if t >= 0) if any(t >= 0 for t in ts) else 0.0
    return px + t0 * dx, py + t0 * dy, px + t1 * dx, py + t1 * dy


def _deposit_line(canvas: np.ndarray, x0: float, y0: float, x1: float, y1: float, per_px: float, offset: int) -> None:
    length = math.hypot(x1 - x0, y1 - y0)
    count = max(2, math.ceil(4 * length))
    t = np.linspace(0.0, 1.0, count)
    deposit(canvas, offset + x0 + t * (x1 - x0), offset + y0 + t * (y1 - y0), np.full(count, per_px * length / count))


def add_satellites(
    canvas: np.ndarray, seed: int, count: int, offset: int, shape: tuple[int, int], noise_e: float, fwhm_px: float
) -> list[dict[str, Any]]:
    """Satellite trails (continuous lines, electrons per pixel of length) added to the pre-PSF canvas."""
    height, width = shape
    trails = []
    for index in range(count):
        rng = stream(seed, SATELLITE, index)
        x0, y0, x1, y1 = _line_through(rng, width, height)
        strength = math.exp(rng.uniform(math.log(2.0), math.log(40.0)))  # peak S/N per pixel, roughly
        per_px = strength * noise_e * 1.06 * fwhm_px
        _deposit_line(canvas, x0, y0, x1, y1, per_px, offset)
        trails.append({"kind": "satellite", "x0": x0, "y0": y0, "x1": x1, "y1": y1, "e_per_px": per_px})
    return trails


def add_aircraft(
    canvas: np.ndarray, seed: int, count: int, offset: int, shape: tuple[int, int], noise_e: float, fwhm_px: float
) -> list[dict[str, Any]]:
    """Aircraft trails: two faint wingtip lines and a dashed line of strobe flashes between them."""
    height, width = shape
    trails = []
    for index in range(count):
        rng = stream(seed, AIRCRAFT, index)
        x0, y0, x1, y1 = _line_through(rng, width, height)
        strength = math.exp(rng.uniform(math.log(3.0), math.log(40.0)))
        per_px = strength * noise_e * 1.06 * fwhm_px
        span, period = rng.uniform(3.0, 8.0), rng.uniform(15.0, 60.0)
        length = math.hypot(x1 - x0, y1 - y0)
        ux, uy = (x1 - x0) / max(length, 1e-9), (y1 - y0) / max(length, 1e-9)
        nx, ny = -uy * span / 2, ux * span / 2
        for side in (-1.0, 1.0):
            _deposit_line(canvas, x0 + side * nx, y0 + side * ny, x1 + side * nx, y1 + side * ny, 0.35 * per_px, offset)
        phase = rng.uniform(0.0, period)
        start = phase
        while start < length:
            end = min(length, start + 0.3 * period)
            _deposit_line(canvas, x0 + ux * start, y0 + uy * start, x0 + ux * end, y0 + uy * end, 2.0 * per_px, offset)
            start += period
        trails.append(
            {"kind": "aircraft", "x0": x0, "y0": y0, "x1": x1, "y1": y1, "e_per_px": per_px, "period_px": period}
        )
    return trails


def hot_pixels(seed: int, count: int, shape: tuple[int, int], noise_e: float) -> dict[str, np.ndarray]:
    """Hot pixel positions and their excess charge (electrons): 20 sigma of the sky up to 30000 e-."""
    height, width = shape
    x = stream(seed, HOT_PIXEL, 0).integers(0, width, count)
    y = stream(seed, HOT_PIXEL, 1).integers(0, height, count)
    low = math.log(max(20.0 * noise_e, 50.0))
    amplitude = np.exp(stream(seed, HOT_PIXEL, 2).uniform(low, max(low, math.log(30000.0)), count))
    return {"x": x, "y": y, "e": amplitude}


def hot_columns(seed: int, count: int, shape: tuple[int, int], noise_e: float) -> list[dict[str, float]]:
    """Hot columns: from a charge trap at row y0 to the top of the frame, raised by 2 to 20 sigma of the sky."""
    height, width = shape
    columns = []
    for index in range(count):
        rng = stream(seed, HOT_COLUMN, index)
        x = int(rng.integers(0, width))
        y0 = 0 if rng.uniform() < 0.5 else int(rng.integers(0, 2 * height // 3))
        amplitude = math.exp(rng.uniform(math.log(2.0), math.log(20.0))) * noise_e
        columns.append({"x": x, "y0": y0, "y1": height - 1, "e": amplitude})
    return columns


def cosmic_rays(seed: int, count: int, shape: tuple[int, int]) -> list[dict[str, Any]]:
    """Cosmic-ray hits: a third are single pixels, the rest short tracks (1-15 px); 300-5000 e- per pixel."""
    height, width = shape
    hits = []
    for index in range(count):
        rng = stream(seed, COSMIC, index)
        x, y = rng.uniform(0, width - 1), rng.uniform(0, height - 1)
        per_px = math.exp(rng.uniform(math.log(300.0), math.log(5000.0)))
        if rng.uniform() < 0.35:
            xs, ys, es = np.array([round(x)]), np.array([round(y)]), np.array([per_px])
        else:
            length, angle = min(15.0, 1.0 + rng.exponential(4.0)), rng.uniform(0, 2 * math.pi)
            steps = max(2, math.ceil(3 * length))
            t = np.linspace(0.0, length, steps)
            xs = np.clip(np.round(x + t * math.cos(angle)), 0, width - 1).astype(np.int64)
            ys = np.clip(np.round(y + t * math.sin(angle)), 0, height - 1).astype(np.int64)
            es = np.full(steps, per_px * length / steps)
        hits.append({"x": xs, "y": ys, "e": es})
    return hits


def add_pixel_defects(electrons: np.ndarray, pixels: dict[str, np.ndarray], columns: list[dict[str, float]]) -> None:
    """Add hot pixels and hot columns (electrons) in place."""
    np.add.at(electrons, (pixels["y"], pixels["x"]), pixels["e"])
    for column in columns:
        electrons[int(column["y0"]) : int(column["y1"]) + 1, int(column["x"])] += column["e"]


def add_cosmic_rays(electrons: np.ndarray, hits: list[dict[str, Any]]) -> None:
    """Add cosmic-ray charge (electrons) in place."""
    for hit in hits:
        np.add.at(electrons, (hit["y"], hit["x"]), hit["e"])
