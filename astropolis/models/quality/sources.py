"""Sources in a frame (sep) and the shape of its stars: FWHM, concentration, donut dip, elongation."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from astropolis.models.quality.meta import FrameMeta

DETECT_SIGMA = 3.0
STAR_SNR = 10.0
PSF_SNR = 8.0
MAX_PSF_STARS = 300
HFD_STARS = 15  # the half-light radius is the median of the brightest this many (noise inflates faint stars')
CR_SIGCLIP = 4.5  # L.A.Cosmic Laplacian-to-noise limit
CR_OBJLIM = 5.0  # L.A.Cosmic contrast limit that protects stars' cores
CR_LIGHT_SHARE = 0.5  # a source with more than this share of its light in flagged pixels is a hit
HIT_LIGHT_SHARE = 0.9  # ... for the score's point-source count: undersampled stars keep more than 10% unflagged
GROUPED_BELOW = 24  # the score reads the count below 6 (PSF unjudged) and 2 (no stars): group pieces only there
FOOTPRINT_GAP_PX = 2
HOT_PIXEL_SHARP = 0.9  # 1 - (mean of the peak's 4 neighbours) / peak at or above this: a single hot pixel


@dataclass(frozen=True)
class Sources:
    """sep's catalogue of one frame plus the counts the features use."""

    objects: np.ndarray
    segmentation: np.ndarray  # bool: pixels of any detected object
    compact: np.ndarray  # bool: pixels of compact (star- or galaxy-like) objects
    snr: np.ndarray
    sharp: np.ndarray  # 1 - (mean of the 4 neighbours of the peak) / peak
    count: int
    stars: int
    long_objects: int
    cosmic: np.ndarray  # bool per object: most of its light is in pixels L.A.Cosmic flags (a hit, not a star)
    labels: np.ndarray  # int: sep's segmentation map (object i has label i + 1, 0 is sky)
    cosmic_share: np.ndarray  # per object: the share of its light in pixels L.A.Cosmic flags


@dataclass(frozen=True)
class PsfStats:
    """The PSF measured on bright, isolated, unsaturated stars (a stacked radial profile and mean moments)."""

    count: int
    fwhm_px: float | None
    top_fraction: float  # (r at 80% of the peak / r at 50%)², ~0.3 for any Moffat, towards 1 flat-topped
    foot_ratio: float  # r at 20% of the peak / r at 50%: ~1.65 for any Moffat, less for steep-edged donuts
    center_dip: float  # profile at the centre over its maximum: 1 for a star, < 1 for a donut
    wing: float  # profile at 2 x the half-maximum radius over its maximum
    r90_over_r50: float
    r50_px: float | None  # half-light radius of the brightest stars (in the profile's radius): grows through defocus
    ellipticity: float  # |mean (e1, e2)| of windowed second moments: a common (tracking) elongation
    ellipticity_spread: float  # median |e| of single stars
    elongation: float | None  # median a/b of the stars (sep's isophotal moments)
    elongation_p80: float | None
    coherence: float  # how aligned the stars' major axes are (0 random, 1 all parallel)


def _extract(sub: np.ndarray, rms: float, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import sep

    # sep allocates its pixel stack on every call: size it to the frame (a fixed huge one costs ~0.1 s).
    stack = max(300_000, sub.size // 8)
    sep.set_sub_object_limit(4096)
    for attempt in range(3):
        sep.set_extract_pixstack(stack * 4**attempt)
        try:
            return sep.extract(sub, DETECT_SIGMA, err=rms, mask=mask, minarea=5, segmentation_map=True)
        except Exception:  # pixel stack or deblending overflow (crowded fields): more room, then no deblending
            continue
    return sep.extract(sub, DETECT_SIGMA * 2, err=rms, mask=mask, minarea=5, segmentation_map=True, deblend_nthresh=1)


def cosmic_ray_mask(image: np.ndarray, sub: np.ndarray, rms: float, saturation: float, meta: FrameMeta) -> np.ndarray:
    """Pixels L.A.Cosmic (astroscrappy, one iteration, one thread) flags as cosmic-ray hits or hot pixels."""
    import astroscrappy
    from threadpoolctl import threadpool_limits

    gain = meta.gain_e_per_adu or 1.0
    variance = (rms**2 + np.clip(sub, 0.0, None) / gain).astype(np.float32)
    level = saturation if math.isfinite(saturation) else float(image.max()) + 1.0
    with threadpool_limits(limits=1):
        mask, _ = astroscrappy.detect_cosmics(
            np.ascontiguousarray(image, dtype=np.float32),
            invar=variance,
            sigclip=CR_SIGCLIP,
            objlim=CR_OBJLIM,
            satlevel=level,
            niter=1,
            cleantype="meanmask",
        )
    return np.asarray(mask, dtype=bool)


def _cosmic(
    sub: np.ndarray, segmentation: np.ndarray, count: int, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per object: (is most of its light in flagged pixels?, the share of its light in flagged pixels)."""
    if mask is None:
        return np.zeros(count, dtype=bool), np.zeros(count)
    light = np.clip(sub, 0.0, None).ravel()
    labels = np.asarray(segmentation).ravel()
    total = np.maximum(np.bincount(labels, weights=light, minlength=count + 1)[1 : count + 1], 1e-12)
    flagged = np.bincount(labels, weights=light * mask.ravel(), minlength=count + 1)[1 : count + 1]
    return np.asarray(flagged > CR_LIGHT_SHARE * total), np.asarray(flagged / total)


def streaks(objects: np.ndarray) -> np.ndarray:
    """Per sep object: long and thin (a/b > 4 and a > 8 px), a piece of a trail or a hot column, not a star."""
    return np.asarray((objects["a"] / np.maximum(objects["b"], 1e-3) > 4.0) & (objects["a"] > 8.0))


def detect(
    sub: np.ndarray, rms: float, saturated: np.ndarray, meta: FrameMeta, cosmic_mask: np.ndarray | None = None
) -> Sources:
    """Detect sources 3 sigma above the background; count stars (S/N >= 10, not single-pixel sharp, not a
    cosmic-ray hit)."""
    height, width = sub.shape
    objects, segmentation = _extract(sub, rms, saturated)
    count = len(objects)
    if count == 0:
        empty = np.zeros(sub.shape, dtype=bool)
        none = np.zeros(0)
        return Sources(objects, empty, empty, none, none, 0, 0, 0, none > 0, np.zeros(sub.shape, np.int32), none)
    cosmic, share = _cosmic(sub, segmentation, count, cosmic_mask)
    gain = meta.gain_e_per_adu
    noise2 = objects["npix"] * rms**2 + (np.clip(objects["flux"], 0, None) / gain if gain else 0.0)
    snr = objects["flux"] / np.sqrt(np.maximum(noise2, 1e-12))
    px = np.clip(objects["xpeak"], 1, width - 2)
    py = np.clip(objects["ypeak"], 1, height - 2)
    peak = sub[py, px]
    around = (sub[py - 1, px] + sub[py + 1, px] + sub[py, px - 1] + sub[py, px + 1]) / 4.0
    sharp = 1.0 - around / np.maximum(peak, 1e-9)
    a, b = objects["a"], np.maximum(objects["b"], 1e-3)
    stars = int(np.count_nonzero((snr >= STAR_SNR) & (sharp < 0.7) & ~cosmic))
    long_objects = int(np.count_nonzero(streaks(objects)))
    # Stars and large round objects (galaxies) are hidden from the line finder; streaks, the dashes of an
    # aircraft's strobes (round-ish but larger than a star) and faint fragments are not.
    reference = (snr >= PSF_SNR) & (sharp < 0.7) & ((objects["flag"] & 1) == 0) & ~cosmic
    a_star = float(np.median(a[reference])) if reference.sum() >= 3 else None
    round_ = a / b < 2.0
    hidden = round_ if a_star is None else round_ & ((a <= 1.3 * a_star) | (a >= 3.0 * a_star))
    compact_ids = np.flatnonzero(hidden) + 1
    segmentation = np.asarray(segmentation)
    compact = np.isin(segmentation, compact_ids) if compact_ids.size < count else segmentation > 0
    found = (snr, sharp, count, stars, long_objects, cosmic, segmentation, share)
    return Sources(objects, segmentation > 0, compact, *found)


def aperture_snr(sub: np.ndarray, sources: Sources, rms: float, gain: float | None, fwhm: float | None) -> np.ndarray:
    """Per source: S/N in a near-optimal aperture (radius 0.7 FWHM), the S/N definition the simulator's truth uses."""
    import sep

    objects = sources.objects
    if len(objects) == 0:
        return np.zeros(0)
    if fwhm is None:
        sizes = np.sqrt(objects["a"] * objects["b"])[(sources.snr >= 5) & ~sources.cosmic]
        fwhm = 2.355 * float(np.median(sizes)) if sizes.size else 3.0
    radius = max(1.5, 0.7 * fwhm)
    flux, error, _ = sep.sum_circle(
        np.ascontiguousarray(sub), objects["x"], objects["y"], radius, err=rms, gain=gain or 1.0, subpix=5
    )
    return np.asarray(flux / np.maximum(error, 1e-12))


def count_stars(sources: Sources, snr: np.ndarray) -> int:
    """Sources that reach S/N 10 in the aperture and are neither single sharp pixels nor cosmic-ray hits."""
    return int(np.count_nonzero((snr >= STAR_SNR) & (sources.sharp < 0.7) & ~sources.cosmic))


def point_sources(sources: Sources, snr: np.ndarray, shape: tuple[int, int], excluded: np.ndarray) -> int:
    """Sources at S/N >= 10 that are not hits, not single hot pixels, not streaks, not on the frame's edge and
    not `excluded` (near a trail or a found hot column): a count for the score that a defect cannot inflate.
    Unlike `count_stars` it keeps stars whose sharp cores L.A.Cosmic partly flags (undersampled stars at best
    focus): only sources with nearly all their light in flagged pixels are hits. Streaks (a/b > 4, a > 8 px) are
    pieces of hot columns too faint for the column finder (three of them lifted a 4-star field past the PSF
    floor), and pieces whose footprints nearly touch count once: a donut far out of focus breaks into arcs a
    few pixels apart (one star became two at 3.5x focus). The grouping runs only on sparse frames, where the
    score reads the count."""
    objects = sources.objects
    if len(objects) == 0:
        return 0
    height, width = shape
    x, y = objects["xpeak"], objects["ypeak"]
    inner = (x > 0) & (x < width - 1) & (y > 0) & (y < height - 1)
    real = (sources.cosmic_share < HIT_LIGHT_SHARE) & (sources.sharp < HOT_PIXEL_SHARP)
    chosen = np.flatnonzero((snr >= STAR_SNR) & real & inner & ~streaks(objects) & ~excluded)
    if chosen.size < 2 or chosen.size >= GROUPED_BELOW:
        return int(chosen.size)
    from scipy.ndimage import binary_dilation, label

    # One footprint: detected pixels joined across gaps of up to 2 * FOOTPRINT_GAP_PX (a donut's faint arcs).
    grown = binary_dilation(sources.segmentation, structure=np.ones((2 * FOOTPRINT_GAP_PX + 1, 1), dtype=bool))
    grown = binary_dilation(grown, structure=np.ones((1, 2 * FOOTPRINT_GAP_PX + 1), dtype=bool))
    footprints, _ = label(grown)
    return int(np.unique(footprints[y[chosen], x[chosen]]).size)


def psf_stats(sub: np.ndarray, sources: Sources, back: np.ndarray, saturation: float, rms: float) -> PsfStats:
    """The PSF of up to 300 isolated, unsaturated stars (S/N >= 8): a radial profile stacked in 0.25 px bins (FWHM,
    flat top, central dip, wings), windowed second moments (mean ellipticity) and sep's a/b and angles."""
    import sep

    empty = PsfStats(0, None, 0.0, 0.0, 0.0, 0.0, 0.0, None, 0.0, 0.0, None, None, 0.0)
    objects = sources.objects
    if len(objects) == 0:
        return empty
    height, width = sub.shape
    x, y = objects["x"], objects["y"]
    level = objects["peak"] + back[np.clip(objects["ypeak"], 0, height - 1), np.clip(objects["xpeak"], 0, width - 1)]
    good = (
        (sources.snr >= PSF_SNR)
        & (sources.sharp < 0.7)
        & ~sources.cosmic
        & (level < 0.8 * saturation)
        & ((objects["flag"] & 1) == 0)
        & (objects["npix"] >= 5)
    )
    a_med = float(np.median(objects["a"][good])) if good.any() else 2.0
    radius = int(min(40, max(6, math.ceil(5.0 * a_med) + 2)))
    good &= (x > radius) & (x < width - 1 - radius) & (y > radius) & (y < height - 1 - radius)
    if good.sum() >= 3:
        from scipy.spatial import cKDTree

        tree = cKDTree(np.column_stack([x, y]))
        distance, _ = tree.query(np.column_stack([x, y]), k=2)
        isolated = good & (distance[:, 1] > 1.2 * radius)
        if isolated.sum() >= 5:
            good = isolated
    chosen = np.flatnonzero(good)
    if chosen.size < 3:
        return empty
    chosen = chosen[np.argsort(-objects["flux"][chosen], kind="stable")[:MAX_PSF_STARS]]
    cx, cy = np.rint(x[chosen]).astype(np.int64), np.rint(y[chosen]).astype(np.int64)
    offsets = np.arange(-radius, radius + 1)
    cutouts = sub[(cy[:, None] + offsets)[:, :, None], (cx[:, None] + offsets)[:, None, :]].astype(np.float64)
    dx = offsets[None, None, :] - (x[chosen] - cx)[:, None, None]
    dy = offsets[None, :, None] - (y[chosen] - cy)[:, None, None]
    r = np.hypot(dx, dy)
    inside = r <= radius
    total = np.sum(np.where(inside, cutouts, 0.0), axis=(1, 2))
    keep = total > 0
    if keep.sum() < 3:
        return empty
    cutouts, dx, dy, r, inside, total = cutouts[keep], dx[keep], dy[keep], r[keep], inside[keep], total[keep]
    chosen = chosen[keep]
    profile = _profile(cutouts / total[:, None, None], r, inside, radius)
    ellipticity, spread = _moments(cutouts, dx, dy, r, profile.fwhm)
    radii, _ = sep.flux_radius(
        np.ascontiguousarray(sub), x[chosen], y[chosen], np.full(len(chosen), float(radius)), [0.5, 0.9], subpix=5
    )
    radii = np.asarray(radii).reshape(len(chosen), 2)
    ratio = objects["a"][chosen] / np.maximum(objects["b"][chosen], 1e-3)
    angle = objects["theta"][chosen]
    weight = np.clip(ratio - 1.0, 0.0, None) + 1e-3
    return PsfStats(
        count=len(chosen),
        fwhm_px=profile.fwhm,
        top_fraction=profile.top,
        foot_ratio=profile.foot,
        center_dip=profile.dip,
        wing=profile.wing,
        r90_over_r50=float(np.median(radii[:, 1] / np.maximum(radii[:, 0], 1e-3))),
        r50_px=_half_light_radius(cutouts[:HFD_STARS], r[:HFD_STARS], radius),  # chosen is in falling flux
        ellipticity=ellipticity,
        ellipticity_spread=spread,
        elongation=float(np.median(ratio)),
        elongation_p80=float(np.percentile(ratio, 80)),
        coherence=float(np.abs(np.sum(weight * np.exp(2j * angle))) / np.sum(weight)),
    )


def _half_light_radius(cutouts: np.ndarray, r: np.ndarray, radius: int) -> float | None:
    """Median over stars of the radius holding half the light within 0.75 x `radius`, each star's own background
    (the median of its cutout's outer ring) taken out first: a residual sky pedestal under clouds would otherwise
    push every radius outwards."""
    inner, ring = r <= 0.75 * radius, (r > 0.75 * radius) & (r <= radius)
    found = []
    for cutout, distance, keep, outer in zip(cutouts, r, inner, ring, strict=True):
        values = cutout[keep] - (float(np.median(cutout[outer])) if outer.any() else 0.0)
        order = np.argsort(distance[keep], kind="stable")
        light = np.maximum.accumulate(np.cumsum(values[order]))
        if light.size < 2 or light[-1] <= 0:
            continue
        radii = distance[keep][order]
        j = min(max(int(np.searchsorted(light, 0.5 * light[-1])), 1), light.size - 1)
        step = light[j] - light[j - 1]
        t = (0.5 * light[-1] - light[j - 1]) / step if step > 0 else 0.0
        found.append(float(radii[j - 1] + t * (radii[j] - radii[j - 1])))
    return float(np.median(found)) if found else None


@dataclass(frozen=True)
class _Profile:
    fwhm: float | None
    top: float
    foot: float
    dip: float
    wing: float


def _crossing(centres: np.ndarray, values: np.ndarray, start: int, level: float) -> float | None:
    """Radius where the profile first falls below `level` beyond index `start` (linear interpolation)."""
    below = np.flatnonzero(values[start:] < level)
    if below.size == 0:
        return None
    j = start + int(below[0])
    if j == 0:
        return float(centres[0])
    v0, v1 = values[j - 1], values[j]
    t = (v0 - level) / (v0 - v1) if v0 != v1 else 0.0
    return float(centres[j - 1] + t * (centres[j] - centres[j - 1]))


def _profile(normalised: np.ndarray, r: np.ndarray, inside: np.ndarray, radius: int) -> _Profile:
    """Median flux-normalised profile of all stars in 0.25 px radial bins (the median shrugs off neighbours,
    cosmic rays and hot pixels), and its shape numbers."""
    step = 0.25
    top_bin = int(radius / step)
    bins = np.minimum((r[inside] / step).astype(np.int64), top_bin)
    values_all = normalised[inside]
    order = np.lexsort((values_all, bins))
    bins, values_all = bins[order], values_all[order]
    count = np.bincount(bins, minlength=top_bin + 1)
    starts = np.concatenate([[0], np.cumsum(count)[:-1]])
    filled = count >= 3
    if filled.sum() < 4:
        return _Profile(None, 0.0, 0.0, 0.0, 0.0)
    lower = values_all[starts[filled] + (count[filled] - 1) // 2]
    upper = values_all[starts[filled] + count[filled] // 2]
    values = (lower + upper) / 2.0
    centres = ((np.arange(count.size) + 0.5) * step)[filled]
    near = centres <= max(1.0, radius / 2.0)
    peak_at = int(np.argmax(np.where(near, values, -np.inf)))
    peak = float(values[peak_at])
    if peak <= 0:
        return _Profile(None, 0.0, 0.0, 0.0, 0.0)
    half = _crossing(centres, values, peak_at, 0.5 * peak)
    high = _crossing(centres, values, peak_at, 0.8 * peak)
    low = _crossing(centres, values, peak_at, 0.2 * peak)
    if half is None or high is None or low is None or half <= 0:
        return _Profile(None, 0.0, 0.0, 0.0, 0.0)
    centre = float(np.mean(values[centres < 0.6])) if np.any(centres < 0.6) else float(values[0])
    wing = float(np.interp(2.0 * half, centres, values)) / peak
    return _Profile(2.0 * half, float(min(1.0, (high / half) ** 2)), low / half, centre / peak, wing)


def _moments(
    cutouts: np.ndarray, dx: np.ndarray, dy: np.ndarray, r: np.ndarray, fwhm: float | None
) -> tuple[float, float]:
    """(|mean ellipticity|, median single-star |e|) from second moments in a Gaussian window."""
    sigma = 1.5 * max(0.8, (fwhm or 2.5) / 2.355)
    window = np.exp(-0.5 * (r / sigma) ** 2) * cutouts
    xx = np.sum(window * dx * dx, axis=(1, 2))
    yy = np.sum(window * dy * dy, axis=(1, 2))
    xy = np.sum(window * dx * dy, axis=(1, 2))
    trace = xx + yy
    valid = trace > 0
    if valid.sum() < 3:
        return 0.0, 0.0
    e1, e2 = (xx - yy)[valid] / trace[valid], 2.0 * xy[valid] / trace[valid]
    return float(np.hypot(np.median(e1), np.median(e2))), float(np.median(np.hypot(e1, e2)))
