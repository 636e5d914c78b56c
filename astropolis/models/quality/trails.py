"""The trail search behind the score: every straight line of a frame, one after another (Hough search, take the
line's pixels out, search again), each judged by how evenly it lights its length, so that crossing satellite
trails, an aircraft's dashed strobes and several trails at once are all found and a galaxy or a cloud edge is
not. The features keep their own single-line search (artefacts.line_stats), the model's inputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from astropolis.models.quality.artefacts import hough_thetas, line_significance, lit_image
from astropolis.models.quality.sources import Sources

TRAIL_FIND_Z = 6.0  # a Hough peak below this is noise: the search stops
TRAIL_MIN_STRENGTH = 16.0  # a line counts as a trail from this strength on (noise lines stay below 16)
TRAIL_CHUNKS = 8  # a trail crosses the frame: every eighth of its length is lit (an aircraft's strobes too)
TRAIL_PERCENTILE = 25.0  # of the chunk significances: aligned trailed stars or a cloud edge light only some chunks
TRAIL_MASK_PX = 6.0  # binned px either side of a found line taken out before the next search (wingtip lights)
MAX_TRAILS = 4
ROW_REACH = 2.5  # binned px from a line within which a compact source's centre sits on it
ROW_WEIGHT = 3.0  # a row of blobs, each several sigma, against the chunk statistic's scale (noise rows stay < 1)
OCCUPANCY_PERCENTILE = 50.0  # of the blocks' lit shares: trails light some blocks, never most of them


@dataclass(frozen=True)
class Trail:
    """One straight line found by the trail search (binned coordinates: rho = x cos theta + y sin theta)."""

    z: float  # significance of all its lit pixels over the frame's occupancy
    strength: float  # sqrt(chunks) x a low quartile of the chunk significances (or the row of blobs on it)
    theta: float
    rho: float


@dataclass(frozen=True)
class TrailStats:
    """Every trail-like line of a frame, found one after another with the lines already found taken out."""

    trails: tuple[Trail, ...]
    step: int  # binning of the search (frame px per binned px)

    @property
    def strength(self) -> float:
        """Summed strength of the trails above the threshold (0 on a frame without any; continuous at it, so a
        line near the threshold barely moves the score)."""
        return float(sum(self.excesses))

    @property
    def excesses(self) -> tuple[float, ...]:
        """Each counted trail's strength above the threshold, strongest found first."""
        return tuple(t.strength - TRAIL_MIN_STRENGTH for t in self.trails if t.strength > TRAIL_MIN_STRENGTH)

    @property
    def count(self) -> int:
        """How many lines count as trails."""
        return sum(1 for t in self.trails if t.strength > TRAIL_MIN_STRENGTH)

    def runs_down(self, x: float, height: int, reach_px: float) -> bool:
        """Whether a counted trail stays within `reach_px` of column `x` for a sixteenth of the frame's rows or more
        (enough to raise that column's median in a block of rows, like a hot column)."""
        rows = np.arange(0.0, height, 2.0)
        return bool(2.0 * self.near(np.full(rows.size, x), rows, reach_px).sum() >= height / 16.0)

    def near(self, x: np.ndarray, y: np.ndarray, reach_px: float) -> np.ndarray:
        """Which frame positions lie within `reach_px` of a counted trail."""
        close = np.zeros(np.shape(x), dtype=bool)
        for t in self.trails:
            if t.strength > TRAIL_MIN_STRENGTH:
                bx, by = (np.asarray(x) + 0.5) / self.step - 0.5, (np.asarray(y) + 0.5) / self.step - 0.5
                distance = np.abs(bx * np.cos(t.theta) + by * np.sin(t.theta) - t.rho) * self.step
                close |= distance <= reach_px
        return close


def trail_hidden(sources: Sources, saturated: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Pixels the trail search ignores: saturated ones, hot columns, and compact sources each only within a disc
    around its peak (1.6 x its area's radius), so a trail that sep merged into a galaxy's or a star's segment stays
    visible."""
    labels = sources.labels
    objects = sources.objects
    hidden = saturated.copy()
    for x in columns:
        hidden[:, max(0, int(x) - 1) : int(x) + 2] = True
    if len(objects) == 0:
        return hidden
    ys, xs = np.nonzero(sources.compact)
    ids = labels[ys, xs] - 1
    reach = 1.6 * np.sqrt(objects["npix"][ids] / np.pi) + 2.0
    inside = (xs - objects["xpeak"][ids]) ** 2 + (ys - objects["ypeak"][ids]) ** 2 <= reach**2
    hidden[ys[inside], xs[inside]] = True
    return hidden


def _chunk_strength(lit: np.ndarray, hidden: np.ndarray, theta: float, rho: float, occupancy: float) -> float:
    """sqrt(K) x a low percentile over the K chunks along the line of (lit - expected) / noise in a band 3 px wide;
    chunks mostly hidden (under a galaxy or a bright star) do not count."""
    h, w = lit.shape
    ys, xs = np.mgrid[0:h, 0:w]
    along = -xs * np.sin(theta) + ys * np.cos(theta)
    inside = np.abs(xs * np.cos(theta) + ys * np.sin(theta) - rho) <= 1.5
    if inside.sum() < TRAIL_CHUNKS * 4:
        return 0.0
    position = along[inside]
    edges = np.linspace(position.min(), position.max() + 1e-9, TRAIL_CHUNKS + 1)
    chunk = np.clip(np.searchsorted(edges, position, side="right") - 1, 0, TRAIL_CHUNKS - 1)
    total = np.bincount(chunk, minlength=TRAIL_CHUNKS).astype(np.float64)
    n = np.bincount(chunk, weights=(~hidden[inside]).astype(np.float64), minlength=TRAIL_CHUNKS)
    k = np.bincount(chunk, weights=lit[inside].astype(np.float64), minlength=TRAIL_CHUNKS)
    valid = n >= 0.5 * total
    if valid.sum() < TRAIL_CHUNKS // 2:
        return 0.0
    z = (k[valid] - occupancy * n[valid]) / np.sqrt(n[valid] * occupancy * (1 - occupancy) + 1.0)
    return float(np.sqrt(valid.sum()) * np.percentile(z, TRAIL_PERCENTILE))


def _row_strength(sources: Sources, step: int, shape: tuple[int, int], theta: float, rho: float) -> float:
    """How far the compact sources centred on the line outnumber chance, in sigma, when they spread along at least
    3/4 of it: an aircraft's strobes are a row of blobs that the search hides like stars."""
    objects = sources.objects
    ids = np.flatnonzero(np.isin(np.arange(1, len(objects) + 1), np.unique(sources.labels[sources.compact])))
    if ids.size < TRAIL_CHUNKS:
        return 0.0
    h, w = shape
    bx, by = (objects["x"][ids] + 0.5) / step - 0.5, (objects["y"][ids] + 0.5) / step - 0.5
    on = np.abs(bx * np.cos(theta) + by * np.sin(theta) - rho) <= ROW_REACH
    along = -bx * np.sin(theta) + by * np.cos(theta)
    ys, xs = np.mgrid[0:h, 0:w]
    inside = np.abs(xs * np.cos(theta) + ys * np.sin(theta) - rho) <= ROW_REACH
    if not on.any() or not inside.any():
        return 0.0
    span = -xs[inside] * np.sin(theta) + ys[inside] * np.cos(theta)
    edges = np.linspace(span.min(), span.max() + 1e-9, TRAIL_CHUNKS + 1)
    spread = np.unique(np.clip(np.searchsorted(edges, along[on], side="right") - 1, 0, TRAIL_CHUNKS - 1)).size
    if spread < 0.75 * TRAIL_CHUNKS:
        return 0.0
    expected = ids.size * float(inside.sum()) / float(h * w)
    return float(ROW_WEIGHT * (on.sum() - expected) / np.sqrt(expected + 1.0))


def _refine(lit: np.ndarray, theta: float, rho: float) -> tuple[float, float]:
    """The line through the most lit pixels within a Hough bin of (theta, rho): angles in 0.1 degree and distances in
    0.25 px steps (a 1-degree bin drifts by 4 px across 256, enough to miss a dashed line's far end)."""
    ys, xs = np.nonzero(lit)
    near = np.abs(xs * np.cos(theta) + ys * np.sin(theta) - rho) <= 8.0
    xs, ys = xs[near].astype(np.float64), ys[near].astype(np.float64)
    if xs.size < 3:
        return theta, rho
    angles = theta + np.radians(np.arange(-10, 11) * 0.1)
    offsets = np.arange(-8, 9) * 0.25
    distance = xs[None, :] * np.cos(angles)[:, None] + ys[None, :] * np.sin(angles)[:, None]  # (angles, pixels)
    counts = np.stack([(np.abs(distance - (rho + offset)) <= 1.5).sum(axis=1) for offset in offsets], axis=1)
    # Ties go to the bin centre (the first maximum in an order that starts there).
    order = np.argsort(np.abs(angles - theta)[:, None] + np.abs(offsets)[None, :] / 100.0, axis=None, kind="stable")
    pick = order[int(np.argmax(counts.ravel()[order]))]
    i, j = np.unravel_index(int(pick), counts.shape)
    return float(angles[i]), float(rho + offsets[j])


def trails(
    sub: np.ndarray, rms: float, sources: Sources, saturated: np.ndarray, columns: np.ndarray, target: int = 256
) -> TrailStats:
    """Up to 4 straight lines, strongest first: Hough search, record the line, take its pixels out, search again.
    The occupancy the lines are judged against is a low quartile over blocks of the frame, which a few trails do
    not move, so adding a trail does not weaken the ones already there."""
    prepared = lit_image(sub, rms, trail_hidden(sources, saturated, columns), target)
    if prepared is None:
        return TrailStats((), 1)
    lit, hidden, step = prepared
    h, w = lit.shape
    block = max(8, min(h, w) // 8)
    shares = [
        float(lit[y : y + block, x : x + block].sum()) / max(float((~hidden[y : y + block, x : x + block]).sum()), 1.0)
        for y in range(0, h - block + 1, block)
        for x in range(0, w - block + 1, block)
    ]
    occupancy = float(np.percentile(shares, OCCUPANCY_PERCENTILE)) if shares else float(lit.mean())
    if not 0.0 < occupancy < 1.0:
        return TrailStats((), step)
    from skimage.transform import hough_line

    _, _, distances = hough_line(np.zeros((h, w), dtype=bool), theta=hough_thetas()[:1])
    ys, xs = np.mgrid[0:h, 0:w]
    remaining = lit.copy()
    found: list[Trail] = []
    for _ in range(MAX_TRAILS):
        # Lines along the pixel axes count here: lit_image took out each row's and column's median (a whole bad row
        # or hot column is gone) and trail_hidden hides the hot columns, while a satellite crossing within a degree
        # of a row is as much a trail as any (the features' search leaves the axes out).
        z, _, _ = line_significance(remaining, hidden, occupancy, axes=True)
        best = np.unravel_index(int(np.argmax(z)), z.shape)
        if z[best] < TRAIL_FIND_Z:
            break
        theta, rho = _refine(remaining, float(hough_thetas()[best[1]]), float(distances[best[0]]))
        strength = max(
            _chunk_strength(lit, hidden, theta, rho, occupancy), _row_strength(sources, step, (h, w), theta, rho)
        )
        found.append(Trail(float(z[best]), strength, theta, rho))
        remaining &= np.abs(xs * np.cos(theta) + ys * np.sin(theta) - rho) > TRAIL_MASK_PX
    return TrailStats(tuple(found), step)
