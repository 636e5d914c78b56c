"""Detector and sky artefacts: sharp pixels (hot pixels, cosmic rays), hot columns, straight lines (trails)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from astropolis.models.quality.sources import Sources

SHARP_SIGMA = 8.0
COLUMN_SIGMA = 8.0
LINE_SIGMA = 1.5
THETAS = 180


def sharp_pixels(sub: np.ndarray, rms: float, saturated: np.ndarray) -> tuple[int, int]:
    """(single, multi): local maxima 8 sigma up whose 8 neighbours all stay below 30% of them (hot pixels,
    head-on cosmic rays), and others whose 4 neighbours average below 45% (cosmic-ray tracks)."""
    height, width = sub.shape
    if height < 3 or width < 3:
        return 0, 0
    core = sub[1:-1, 1:-1]
    ys, xs = np.nonzero((core > SHARP_SIGMA * rms) & ~saturated[1:-1, 1:-1])
    if ys.size == 0:
        return 0, 0
    ys, xs = ys + 1, xs + 1
    value = sub[ys, xs]
    neighbours = np.stack([sub[ys + dy, xs + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx])  # (8, n)
    local_max = value >= neighbours.max(axis=0)
    four = (sub[ys - 1, xs] + sub[ys + 1, xs] + sub[ys, xs - 1] + sub[ys, xs + 1]) / 4.0
    single = local_max & (neighbours.max(axis=0) < 0.3 * value)
    multi = local_max & ~single & (four < 0.45 * value)
    return int(single.sum()), int(multi.sum())


def hot_columns(sub: np.ndarray, rms: float, masked: np.ndarray) -> tuple[float, int, np.ndarray]:
    """(largest z, count, x of each) of columns whose median, in any of 4 row blocks, stands above their
    neighbours'."""
    from scipy.ndimage import median_filter

    height, width = sub.shape
    if width < 8 or height < 8:
        return 0.0, 0, np.zeros(0, dtype=np.int64)
    blocks = 4 if height >= 128 else 1
    rows = height // blocks
    values = np.where(masked, np.nan, sub)[: rows * blocks].reshape(blocks, rows, width)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        medians = np.nanmedian(values, axis=1)
    valid = np.isfinite(medians)
    medians = np.where(valid, medians, 0.0)
    local = median_filter(medians, size=(1, 7), mode="nearest")
    counts = np.maximum((~np.isnan(values)).sum(axis=1), 1)
    z = (medians - local) / (1.2533 * rms / np.sqrt(counts))
    z = np.where(valid & (counts >= rows // 4), z, 0.0)
    best = z.max(axis=0)
    hot = np.flatnonzero(best > COLUMN_SIGMA)
    return float(best.max()), int(hot.size), hot


@dataclass(frozen=True)
class LineStats:
    """The strongest straight line: significance over noise and the fraction of its length that is lit."""

    z: float
    coverage: float


@lru_cache(maxsize=8)
def _line_lengths(shape: tuple[int, int]) -> np.ndarray:
    from skimage.transform import hough_line

    lengths, _, _ = hough_line(np.ones(shape, dtype=bool), theta=hough_thetas())
    lengths = lengths.astype(np.float64)
    lengths.setflags(write=False)
    return lengths


def _band(accumulator: np.ndarray) -> np.ndarray:
    """Sum of each Hough cell and its two neighbours in distance."""
    banded = accumulator.copy()
    banded[1:] += accumulator[:-1]
    banded[:-1] += accumulator[1:]
    return banded


def hough_thetas() -> np.ndarray:
    """The Hough search's 180 angles, -90 to 89 degrees."""
    return np.linspace(-np.pi / 2, np.pi / 2, THETAS, endpoint=False)


def _axis_aligned() -> np.ndarray:
    """Hough angle bins within 1 degree of vertical or horizontal lines."""
    degrees = np.degrees(hough_thetas())
    return np.flatnonzero((np.abs(degrees) <= 1.01) | (np.abs(np.abs(degrees) - 90.0) <= 1.01))


def lit_image(
    sub: np.ndarray, rms: float, hidden_full: np.ndarray, target: int
) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(lit, hidden, step): the frame binned to about `target` px, a finer background and each column's and row's
    median taken out, and the binned pixels 1.5 sigma up that no hidden pixel touches; None for tiny frames."""
    from scipy.ndimage import binary_dilation

    height, width = sub.shape
    step = max(1, round(min(height, width) / target))
    h, w = height // step, width // step
    if h < 16 or w < 16:
        return None
    crop = (slice(0, h * step), slice(0, w * step))
    hidden = hidden_full[crop].reshape(h, step, w, step).any(axis=(1, 3))
    hidden = binary_dilation(hidden, iterations=1)
    binned = np.ascontiguousarray(sub[crop].reshape(h, step, w, step).mean(axis=(1, 3)), dtype=np.float32)
    # A finer background (16 binned px) takes out cloud patches and gradients; a trail, a few px wide, stays.
    import sep

    local = sep.Background(binned, mask=hidden, bw=16, bh=16, fw=3, fh=3)
    binned = binned - local.back()
    noise = float(local.globalrms) if local.globalrms > 0 else rms / step
    # Whole hot columns (and rows) are not trails: take out each column's and row's median first.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        binned = binned - np.nan_to_num(np.nanmedian(np.where(hidden, np.nan, binned), axis=0))[None, :]
        binned = binned - np.nan_to_num(np.nanmedian(np.where(hidden, np.nan, binned), axis=1))[:, None]
    return (binned > LINE_SIGMA * noise) & ~hidden, hidden, step


def line_significance(
    lit: np.ndarray, hidden: np.ndarray, occupancy: float, *, axes: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, counts, lengths) per Hough cell (bands three distance bins wide) for lit pixels at `occupancy`; lines
    within a degree of the pixel axes count only with `axes`."""
    from skimage.transform import hough_line

    h, w = lit.shape
    # A trail a few pixels wide spreads over neighbouring distance bins: count bands three bins wide.
    counts = _band(hough_line(lit, theta=hough_thetas())[0].astype(np.float64))
    lengths = _band(_line_lengths((h, w)))
    open_share = 1.0 - float(hidden.mean())
    expected = occupancy * lengths
    z = (counts - expected) / np.sqrt(lengths * occupancy * (1 - occupancy) + 1.0)
    z = np.where(lengths >= 0.3 * min(h, w) * open_share, z, 0.0)
    if not axes:  # exactly vertical or horizontal lines are the detector's (hot columns, bad rows), not the sky's
        z[:, _axis_aligned()] = 0.0
    return z, counts, lengths


def line_stats(sub: np.ndarray, rms: float, sources: Sources, saturated: np.ndarray, target: int = 256) -> LineStats:
    """Hough transform of the pixels 1.5 sigma up in a copy binned to about `target` px, compact sources masked
    (a coarser binning finds fainter, wider trails)."""
    prepared = lit_image(sub, rms, sources.compact | saturated, target)
    if prepared is None:
        return LineStats(0.0, 0.0)
    lit, hidden, _ = prepared
    occupancy = float(lit.mean())
    if occupancy <= 0:
        return LineStats(0.0, 0.0)
    z, counts, lengths = line_significance(lit, hidden, occupancy)
    best = np.unravel_index(int(np.argmax(z)), z.shape)
    coverage = float(counts[best] / max(lengths[best], 1.0))
    return LineStats(float(z[best]), coverage)
