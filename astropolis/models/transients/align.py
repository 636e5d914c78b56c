"""Aligning a reference frame to a new frame: star lists, a WCS first guess, star matching, an affine fit.

The WCS says roughly where each reference star should land on the new frame; a vote over star-pair offsets
absorbs pointing errors of tens of pixels, and nearest-neighbour matching then fits the exact affine map from
reference pixels to new pixels. Where the star lists do not vote clearly, astroalign's asterism matching
(triangle invariants) is the fallback. Fields that do not overlap, or whose pixel scales differ more than
resampling handles well, are refused with a `BadInput` that says which.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from astropolis.models.errors import BadInput

MAX_SCALE_RATIO = 1.25  # beyond ±25 % in pixel scale the PSF matching below is no longer trustworthy
MIN_OVERLAP = 0.5  # the reference must cover at least half of the new frame
VOTE_RADIUS_PX = 60.0  # largest WCS error (pointing) the offset vote absorbs
MATCH_RADIUS_PX = 2.0
TILE_ABOVE_PX = 4 * 1024 * 1024  # frames larger than this are searched for stars in boxes
AFFINE_MIN_STARS = 30  # below this, fit only the offset and keep the WCS's scale and rotation


@dataclass(frozen=True)
class Stars:
    """Bright, clean, unsaturated point-like sources of one frame (0-based pixel coordinates)."""

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    r50: np.ndarray  # half-light radius, pixels

    def __len__(self) -> int:
        return len(self.x)

    def take(self, index: np.ndarray) -> Stars:
        """The stars at `index`."""
        return Stars(self.x[index], self.y[index], self.flux[index], self.r50[index])


@dataclass(frozen=True)
class Alignment:
    """x_new = matrix @ x_ref + offset (pixels, x then y), with how it was found."""

    matrix: np.ndarray
    offset: np.ndarray
    method: str  # "stars", "astroalign" or "wcs"
    matched: int
    residual_px: float
    pairs: tuple[np.ndarray, np.ndarray]  # indices into (new stars, reference stars) of matched pairs

    def apply(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Reference pixel positions mapped onto the new frame."""
        m = self.matrix
        return m[0, 0] * x + m[0, 1] * y + self.offset[0], m[1, 0] * x + m[1, 1] * y + self.offset[1]

    def inverse(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New-frame pixel positions mapped back onto the reference."""
        inv = np.linalg.inv(self.matrix)
        u, v = x - self.offset[0], y - self.offset[1]
        return inv[0, 0] * u + inv[0, 1] * v, inv[1, 0] * u + inv[1, 1] * v


def extract(data: np.ndarray, thresh: float, **options: Any) -> np.ndarray:
    """sep.extract with a pixel stack that grows only when a frame needs it (a big stack costs time per call)."""
    import sep

    for stack in (300_000, 3_000_000, 30_000_000):
        sep.set_extract_pixstack(stack)
        try:
            return sep.extract(data, thresh, **options)
        except Exception as error:
            if "buffer full" not in str(error) and "limit" not in str(error):
                raise
        finally:
            sep.set_extract_pixstack(300_000)
    raise BadInput("too many pixels above the detection threshold: the difference is dominated by residuals")


def star_kernel() -> np.ndarray:
    """The detection filter for star finding: a normalised 7x7 Gaussian of sigma = 1.2 px."""
    j = np.arange(-3, 4, dtype=np.float64)
    row = np.exp(-0.5 * (j / 1.2) ** 2)
    kernel = np.outer(row, row)
    return (kernel / kernel.sum()).astype(np.float32)


def _boxes(height: int, width: int, everywhere: bool) -> list[tuple[int, int, int, int]]:
    """Where to look for stars on a frame: all of it, or on frames over 4 Mpx a central 1024² box and four
    512² corner boxes (an eighth of a 4k frame: plenty of stars for the fit, and corners to pin rotation)."""
    if everywhere or height * width <= TILE_ABOVE_PX:
        return [(0, height, 0, width)]
    boxes = [(height // 2 - 512, height // 2 + 512, width // 2 - 512, width // 2 + 512)]
    for y0 in (64, height - 576):
        for x0 in (64, width - 576):
            boxes.append((y0, y0 + 512, x0, x0 + 512))
    return boxes


def _objects(data: np.ndarray, rms: float, boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    """sep objects at >= 8 sigma (filtered S/N) in the boxes, positions in frame pixels. No cleaning pass: in
    rich fields it costs more than the extraction, and the filters below drop what it would merge."""
    kernel = star_kernel()
    found = []
    for y0, y1, x0, x1 in boxes:
        part = extract(
            np.ascontiguousarray(data[y0:y1, x0:x1]),
            8.0,
            err=rms * float(np.sqrt((kernel**2).sum())),
            minarea=5,
            filter_kernel=kernel,
            filter_type="conv",
            deblend_cont=0.005,
            deblend_nthresh=8,  # blends are dropped below anyway; coarse deblending is 3x cheaper
            clean=False,
        )
        part["x"] += x0
        part["y"] += y0
        found.append(part)
    return np.concatenate(found)


def find_stars(data: np.ndarray, rms: float, *, ceiling: float, limit: int = 200, everywhere: bool = False) -> Stars:
    """The `limit` brightest clean, round, resolved sources at >= 8 sigma (filtered S/N) whose peak stays below
    `ceiling` (background-subtracted data). Single hot pixels and cosmic rays (half-light radius < 0.55 px)
    and tracks (elongated) are left out. Large frames are searched in boxes unless `everywhere`."""
    import sep

    height, width = data.shape
    boxes = _boxes(height, width, everywhere)
    objects = _objects(data, rms, boxes)
    keep = (
        (objects["flag"] == 0)
        & (objects["peak"] < ceiling)
        & (objects["x"] > 8)
        & (objects["x"] < width - 9)
        & (objects["y"] > 8)
        & (objects["y"] < height - 9)
        & (objects["b"] > 0.6 * objects["a"])
    )
    if len(boxes) > 1 and keep.sum() < 100:  # a sparse field: the boxes hold too few, search everything
        return find_stars(data, rms, ceiling=ceiling, limit=limit, everywhere=True)
    objects = objects[keep]
    objects = objects[np.argsort(-objects["flux"], kind="stable")[: limit + limit // 2]]
    x, y = objects["x"].astype(np.float64), objects["y"].astype(np.float64)
    if len(x) == 0:
        return Stars(x, y, x.copy(), x.copy())
    rmax = np.clip(6.0 * objects["a"].astype(np.float64), 6.0, 40.0)
    r50, _ = sep.flux_radius(data, x, y, rmax, 0.5, subpix=1)
    r50 = np.asarray(r50, dtype=np.float64)
    resolved = np.flatnonzero(r50 >= 0.55)[:limit]
    return Stars(x[resolved], y[resolved], objects["flux"].astype(np.float64)[resolved], r50[resolved])


def wcs_mapping(new_wcs: Any, ref_wcs: Any, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference pixel positions carried through the sky onto the new frame's pixels, by the two WCSs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ra, dec = ref_wcs.all_pix2world(x, y, 0)
        return new_wcs.all_world2pix(ra, dec, 0)


def check_geometry(new_wcs: Any, new_shape: tuple[int, int], ref_wcs: Any, ref_shape: tuple[int, int]) -> None:
    """Refuse references whose pixel scale differs too much or that cover too little of the new frame."""
    from astropy.wcs.utils import proj_plane_pixel_scales

    new_scale = float(np.mean(proj_plane_pixel_scales(new_wcs)))
    ref_scale = float(np.mean(proj_plane_pixel_scales(ref_wcs)))
    ratio = ref_scale / new_scale if new_scale > 0 else float("inf")
    if not 1 / MAX_SCALE_RATIO <= ratio <= MAX_SCALE_RATIO:
        raise BadInput(
            f"mismatched reference: pixel scale {ref_scale * 3600:.3f}\"/px vs the new frame's "
            f'{new_scale * 3600:.3f}"/px (ratio {ratio:.2f}, alignment handles {1 / MAX_SCALE_RATIO:.2f}'
            f"..{MAX_SCALE_RATIO:.2f})"
        )
    height, width = new_shape
    gy, gx = np.mgrid[0 : height - 1 : 24j, 0 : width - 1 : 24j]
    rx, ry = wcs_mapping(ref_wcs, new_wcs, gx.ravel(), gy.ravel())
    inside = (rx >= 0) & (rx <= ref_shape[1] - 1) & (ry >= 0) & (ry <= ref_shape[0] - 1)
    covered = float(np.mean(inside & np.isfinite(rx) & np.isfinite(ry)))
    if covered < MIN_OVERLAP:
        raise BadInput(
            f"mismatched reference: it covers {100 * covered:.0f}% of the new frame's field "
            f"(need {100 * MIN_OVERLAP:.0f}%); the fields do not overlap enough"
        )


def _vote_offset(nx: np.ndarray, ny: np.ndarray, px: np.ndarray, py: np.ndarray) -> tuple[float, float, int]:
    """The (dx, dy) most star pairs agree on, and how many agree (2-px bins, then a local mean)."""
    dx = (nx[:, None] - px[None, :]).ravel()
    dy = (ny[:, None] - py[None, :]).ravel()
    near = (np.abs(dx) < VOTE_RADIUS_PX) & (np.abs(dy) < VOTE_RADIUS_PX)
    dx, dy = dx[near], dy[near]
    if len(dx) == 0:
        return 0.0, 0.0, 0
    edges = np.arange(-VOTE_RADIUS_PX, VOTE_RADIUS_PX + 2.0, 2.0)
    counts, _, _ = np.histogram2d(dx, dy, bins=(edges, edges))
    i, j = np.unravel_index(int(np.argmax(counts)), counts.shape)
    cx, cy = edges[i] + 1.0, edges[j] + 1.0
    close = (np.abs(dx - cx) < 2.0) & (np.abs(dy - cy) < 2.0)
    return float(np.mean(dx[close])), float(np.mean(dy[close])), int(close.sum())


def _match(
    new: Stars, ref: Stars, guess: tuple[np.ndarray, np.ndarray], radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (new, ref) of mutual nearest neighbours closer than `radius` after mapping ref by `guess`."""
    from scipy.spatial import cKDTree

    gx, gy = guess
    if len(new) == 0 or len(ref) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    dist, index = cKDTree(np.column_stack([new.x, new.y])).query(np.column_stack([gx, gy]), k=1)
    ok = dist < radius
    ref_idx, new_idx = np.nonzero(ok)[0], index[ok]
    # One reference star per new star: keep the closest when two claim the same one.
    order = np.lexsort((dist[ok], new_idx))
    new_idx, ref_idx = new_idx[order], ref_idx[order]
    first = np.ones(len(new_idx), dtype=bool)
    first[1:] = new_idx[1:] != new_idx[:-1]
    return new_idx[first].astype(np.int64), ref_idx[first].astype(np.int64)


def _fit(
    new: Stars, ref: Stars, pairs: tuple[np.ndarray, np.ndarray], affine: bool, matrix: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares affine taking matched reference positions to new positions (or, with `affine` false, only
    the offset, keeping `matrix`: too few stars to fit rotation and scale)."""
    ni, ri = pairs
    if not affine:
        linear = np.eye(2) if matrix is None else matrix
        mx = linear[0, 0] * ref.x[ri] + linear[0, 1] * ref.y[ri]
        my = linear[1, 0] * ref.x[ri] + linear[1, 1] * ref.y[ri]
        return linear, np.array([np.mean(new.x[ni] - mx), np.mean(new.y[ni] - my)])
    design = np.column_stack([ref.x[ri], ref.y[ri], np.ones(len(ri))])
    coeff_x = np.linalg.lstsq(design, new.x[ni], rcond=None)[0]
    coeff_y = np.linalg.lstsq(design, new.y[ni], rcond=None)[0]
    return np.array([coeff_x[:2], coeff_y[:2]]), np.array([coeff_x[2], coeff_y[2]])


def _refine(new: Stars, ref: Stars, matrix: np.ndarray, offset: np.ndarray, method: str) -> Alignment | None:
    """Iterate match → fit from a first guess; None when too few stars agree."""
    for radius in (3.0 * MATCH_RADIUS_PX, MATCH_RADIUS_PX, MATCH_RADIUS_PX):
        guess = Alignment(matrix, offset, method, 0, 0.0, (np.zeros(0), np.zeros(0)))
        pairs = _match(new, ref, guess.apply(ref.x, ref.y), radius)
        if len(pairs[0]) < 3:
            return None
        matrix, offset = _fit(new, ref, pairs, affine=len(pairs[0]) >= AFFINE_MIN_STARS, matrix=matrix)
    fitted = Alignment(matrix, offset, method, len(pairs[0]), 0.0, pairs)
    mx, my = fitted.apply(ref.x[pairs[1]], ref.y[pairs[1]])
    residual = float(np.sqrt(np.mean((mx - new.x[pairs[0]]) ** 2 + (my - new.y[pairs[0]]) ** 2)))
    return Alignment(matrix, offset, method, len(pairs[0]), residual, pairs)


def _wcs_affine(new_wcs: Any, ref_wcs: Any, ref_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The affine map ref → new pixels that the two WCSs imply (fitted on a grid over the reference)."""
    height, width = ref_shape
    gy, gx = np.mgrid[0 : height - 1 : 8j, 0 : width - 1 : 8j]
    x, y = gx.ravel(), gy.ravel()
    mx, my = wcs_mapping(new_wcs, ref_wcs, x, y)
    grid = Stars(x, y, x, x)
    target = Stars(np.asarray(mx), np.asarray(my), x, x)
    index = np.arange(len(x))
    return _fit(target, grid, (index, index), affine=True)


def align(new: Stars, ref: Stars, new_wcs: Any, ref_wcs: Any, ref_shape: tuple[int, int]) -> Alignment:
    """The affine map from reference pixels to new pixels: stars matched from the WCS guess (after an offset
    vote), then astroalign; a sparse field with too few stars to tell keeps the WCS."""
    matrix, offset = _wcs_affine(new_wcs, ref_wcs, ref_shape)
    predicted = Alignment(matrix, offset, "wcs", 0, 0.0, (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)))
    bright_new, bright_ref = new.take(np.arange(min(len(new), 80))), ref.take(np.arange(min(len(ref), 80)))
    px, py = predicted.apply(bright_ref.x, bright_ref.y)
    dx, dy, votes = _vote_offset(bright_new.x, bright_new.y, px, py)
    if votes >= max(3, min(len(bright_new), len(bright_ref)) // 5):
        found = _refine(new, ref, matrix, offset + np.array([dx, dy]), "stars")
        if found is not None:
            return found
    found = _refine(new, ref, matrix, offset, "stars")
    if found is not None:
        return found
    if min(len(new), len(ref)) >= 5:
        found = _astroalign(new, ref)
        if found is not None:
            return found
    if min(len(new), len(ref)) >= 20:
        raise BadInput(
            f"mismatched reference: its {len(ref)} stars do not match the new frame's {len(new)} stars "
            "(different field, or a WCS off by more than alignment can absorb)"
        )
    # Too few stars to tell: trust the WCS (sparse fields, short exposures), keeping whatever stars agree.
    pairs = _match(new, ref, predicted.apply(ref.x, ref.y), MATCH_RADIUS_PX)
    return Alignment(matrix, offset, "wcs", len(pairs[0]), 0.0, pairs)


def _astroalign(new: Stars, ref: Stars) -> Alignment | None:
    """astroalign's asterism match as a first guess, refined by our own matching (so the result is ours)."""
    import astroalign

    try:
        transform, _ = astroalign.find_transform(
            np.column_stack([ref.x, ref.y])[:50], np.column_stack([new.x, new.y])[:50]
        )
    except Exception:
        return None
    params = np.asarray(transform.params, dtype=np.float64)
    return _refine(new, ref, params[:2, :2], params[:2, 2], "astroalign")
