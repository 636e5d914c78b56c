"""Measured features of one frame: background (level, gradient, patchiness), sources and their PSF (FWHM,
concentration, donut dip, elongation and its coherence), sharp pixels (hot pixels, cosmic rays), hot columns,
straight lines (a Hough transform for trails) and saturation. All numbers are dimensionless or logarithmic so
that one model serves cameras of any gain, scale and exposure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from astropolis.models.base import clipped_maximum
from astropolis.models.quality.artefacts import LineStats, hot_columns, line_stats, sharp_pixels
from astropolis.models.quality.meta import FrameMeta
from astropolis.models.quality.sources import (
    PsfStats,
    Sources,
    aperture_snr,
    cosmic_ray_mask,
    count_stars,
    detect,
    point_sources,
    psf_stats,
    streaks,
)
from astropolis.models.quality.trails import TrailStats, trails

FEATURE_NAMES: tuple[str, ...] = (
    "log_sky",
    "bg_grad_frac",
    "bg_radial_frac",
    "bg_patch_frac",
    "bg_grad_sig",
    "bg_patch_sig",
    "log_sources",
    "log_stars",
    "log_star_density",
    "log_fwhm_px",
    "log_fwhm_arcsec",
    "top_fraction",
    "foot_ratio",
    "center_dip",
    "log_wing",
    "r90_over_r50",
    "ellipticity",
    "ellipticity_spread",
    "log_elongation",
    "log_elongation_p80",
    "orientation_coherence",
    "log_psf_stars",
    "log_single_sharp",
    "log_multi_sharp",
    "hot_column_z",
    "log_hot_columns",
    "line_z",
    "line_coverage",
    "line_z_coarse",
    "line_coverage_coarse",
    "log_long_objects",
    "log_saturated_px",
    "log_saturated_groups",
)
REFERENCE_AREA = 512 * 512  # counts of defects are normalised to a 512x512 frame
TRAIL_REACH_PX = 6.0  # sources this close to a trail are fragments of it, not stars
VERTICAL_DEG = 2.0  # a sep streak this close to the columns' direction may be a hot column
COLUMN_REACH_PX = 6.0  # stars centred this close to a hot column are left out of the report's PSF


@dataclass(frozen=True)
class Measurements:
    """The frame's physical measurements (for the report) and its feature vector (for the model)."""

    features: np.ndarray
    background_adu: float
    background_rms_adu: float
    sky_adu: float
    sky_gradient_pct: float
    star_count: int
    fwhm_px: float | None
    seeing_arcsec: float | None
    hfd_px: float | None  # half-flux diameter (2 x the median half-light radius) of the bright stars
    hfd_arcsec: float | None
    elongation: float | None
    saturated_pixels: int
    hot_pixel_candidates: int
    hot_columns: int
    line_z: float
    hot_pixels_per_area: float  # single sharp pixels per 512x512 pixels
    cloud_gradient_pct: float  # sky gradient with the trails' light left out of the background
    detector_columns: int  # hot columns that are not a near-vertical trail
    trail_excesses: tuple[float, ...]  # each line that counts as a trail: its strength over the threshold (16)
    point_sources: int  # S/N >= 10 sources that are neither hits, hot pixels nor pieces of a trail

    @property
    def trail_strength(self) -> float:
        """Summed strength over 16 of the lines that count as trails (0: none)."""
        return float(sum(self.trail_excesses))

    @property
    def trail_count(self) -> int:
        """How many lines count as trails."""
        return len(self.trail_excesses)


def saturation_level(data: np.ndarray, meta: FrameMeta) -> float:
    """The level at which the camera clips: the header's, or the maximum when several pixels share it exactly."""
    if meta.saturation_adu is not None:
        return meta.saturation_adu
    clipped = clipped_maximum(data)
    return clipped if clipped is not None else math.inf


def _background(data: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float, int]:
    import sep

    height, width = data.shape
    box = int(min(128, max(16, min(height, width) // 8)))
    background = sep.Background(data, mask=mask, bw=box, bh=box, fw=3, fh=3)
    return np.asarray(background.back(), dtype=np.float32), float(background.globalrms), box


def _sky_model(back: np.ndarray, box: int) -> tuple[np.ndarray, np.ndarray]:
    """Robust fit of level + plane + radial term to the background mesh; (coefficients, residuals)."""
    height, width = back.shape
    mesh = back[box // 2 :: box, box // 2 :: box].astype(np.float64)
    ys, xs = np.mgrid[box // 2 : height : box, box // 2 : width : box]
    u = (xs - (width - 1) / 2) / (width / 2)
    v = (ys - (height - 1) / 2) / (height / 2)
    design = np.column_stack([np.ones(mesh.size), u.ravel(), v.ravel(), (u**2 + v**2).ravel()])
    values = mesh.ravel()
    if values.size < 6:
        return np.array([float(np.median(values)), 0.0, 0.0, 0.0]), np.zeros(1)
    keep = np.ones(values.size, dtype=bool)
    coefficients = np.zeros(4)
    for _ in range(2):
        coefficients, *_ = np.linalg.lstsq(design[keep], values[keep], rcond=None)
        residual = values - design @ coefficients
        spread = 1.4826 * float(np.median(np.abs(residual[keep] - np.median(residual[keep])))) + 1e-9
        keep = np.abs(residual) <= 3.0 * spread
        if keep.sum() < 6:
            break
    return coefficients, (values - design @ coefficients)[keep]


def sky_level(background_adu: float, rms_adu: float, meta: FrameMeta) -> float:
    """Sky above the bias pedestal, ADU: level - BIASLEV when known, else from the noise (Poisson) with the
    gain, else min(level, rms²) (a gain of 1; right for bias-subtracted frames, rough otherwise)."""
    if meta.bias_adu is not None:
        sky = background_adu - meta.bias_adu
    elif meta.gain_e_per_adu is not None:
        gain = meta.gain_e_per_adu
        read = meta.read_noise_e or 0.0
        sky = ((rms_adu * gain) ** 2 - read**2) / gain
    else:
        sky = min(background_adu, rms_adu**2)
    return max(sky, 0.05 * rms_adu, 1e-6)


def measure(data: np.ndarray, meta: FrameMeta) -> Measurements:
    """Every feature of one frame (data in ADU, FITS orientation)."""
    image = np.ascontiguousarray(data, dtype=np.float32)
    height, width = image.shape
    area_scale = REFERENCE_AREA / float(height * width)
    saturation = saturation_level(image, meta)
    saturated = image >= 0.999 * saturation if math.isfinite(saturation) else np.zeros(image.shape, dtype=bool)
    back, rms, box = _background(image, saturated)
    rms = max(rms, 1e-6)
    sub = image - back
    background_adu = float(np.median(back))
    sky = sky_level(background_adu, rms, meta)
    coefficients, residual = _sky_model(back, box)
    gradient = float(math.hypot(coefficients[1], coefficients[2]))
    patch = float(np.std(residual)) if residual.size > 1 else 0.0
    mesh_noise = rms / box

    sources = detect(sub, rms, saturated, meta, cosmic_ray_mask(image, sub, rms, saturation, meta))
    psf: PsfStats = psf_stats(sub, sources, back, saturation, rms)
    snr = aperture_snr(sub, sources, rms, meta.gain_e_per_adu, psf.fwhm_px)
    stars = count_stars(sources, snr)
    singles, multis = sharp_pixels(sub, rms, saturated)
    column_z, columns, column_x = hot_columns(sub, rms, sources.segmentation | saturated)
    lines: LineStats = line_stats(sub, rms, sources, saturated)
    coarse: LineStats = line_stats(sub, rms, sources, saturated, target=128)
    found: TrailStats = trails(sub, rms, sources, saturated, column_x)
    evidence = _evidence(
        image, saturated, sources, snr, found, _score_columns(sub, rms, sources, saturated, column_x), gradient, sky
    )
    # The PSF leaves out trail pieces and an aircraft's strobes, for the model as for the report: fed the strobes,
    # the model called one aircraft a bad focus (p 1.0) on a sparse field.
    psf = psf_stats(sub, evidence.sources, back, saturation, rms) if found.count else psf
    # The report's PSF (which the score reads) also leaves out the stars a hot column runs through or beside: one
    # column through one of 8 stars lifted their median a/b from 1.10 to 1.36 and opened the tracking penalty. The
    # model's features keep them, as it was trained.
    shown = psf_stats(sub, evidence.shown, back, saturation, rms) if evidence.detector_columns else psf
    n_saturated, saturated_groups = _saturation(saturated)

    scale = meta.pixel_scale_arcsec
    area_arcmin2 = height * width * ((scale or 1.0) / 60.0) ** 2
    gain = meta.gain_e_per_adu or 1.0
    fwhm = psf.fwhm_px
    values = {
        "log_sky": math.log10(1.0 + sky * gain),
        "bg_grad_frac": math.log10(1e-3 + gradient / sky),
        "bg_radial_frac": float(np.clip(coefficients[3] / sky, -1.0, 1.0)),
        "bg_patch_frac": math.log10(1e-3 + patch / sky),
        "bg_grad_sig": math.log10(1.0 + gradient / mesh_noise),
        "bg_patch_sig": math.log10(1.0 + patch / mesh_noise),
        "log_sources": math.log10(1.0 + sources.count),
        "log_stars": math.log10(1.0 + stars),
        "log_star_density": math.log10(0.01 + stars / area_arcmin2),
        "log_fwhm_px": math.log10(fwhm) if fwhm else 0.0,
        "log_fwhm_arcsec": math.log10(fwhm * (scale or 1.0)) if fwhm else 0.0,
        "top_fraction": psf.top_fraction,
        "foot_ratio": psf.foot_ratio,
        "center_dip": psf.center_dip,
        "log_wing": math.log10(max(psf.wing, 1e-3)) if fwhm else 0.0,
        "r90_over_r50": psf.r90_over_r50,
        "ellipticity": psf.ellipticity,
        "ellipticity_spread": psf.ellipticity_spread,
        "log_elongation": math.log10(psf.elongation) if psf.elongation else 0.0,
        "log_elongation_p80": math.log10(psf.elongation_p80) if psf.elongation_p80 else 0.0,
        "orientation_coherence": psf.coherence,
        "log_psf_stars": math.log10(1.0 + psf.count),
        "log_single_sharp": math.log10(1.0 + singles * area_scale),
        "log_multi_sharp": math.log10(1.0 + multis * area_scale),
        "hot_column_z": math.log10(1.0 + max(column_z, 0.0)),
        "log_hot_columns": math.log10(1.0 + columns),
        "line_z": math.log10(1.0 + max(lines.z, 0.0)),
        "line_coverage": lines.coverage,
        "line_z_coarse": math.log10(1.0 + max(coarse.z, 0.0)),
        "line_coverage_coarse": coarse.coverage,
        "log_long_objects": math.log10(1.0 + sources.long_objects),
        "log_saturated_px": math.log10(1.0 + n_saturated * area_scale),
        "log_saturated_groups": math.log10(1.0 + saturated_groups),
    }
    features = np.array([values[name] for name in FEATURE_NAMES], dtype=np.float64)
    if not np.all(np.isfinite(features)):
        features = np.nan_to_num(features, nan=0.0, posinf=10.0, neginf=-10.0)
    return Measurements(
        features=features,
        background_adu=background_adu,
        background_rms_adu=rms,
        sky_adu=sky,
        sky_gradient_pct=100.0 * gradient / sky,
        cloud_gradient_pct=evidence.cloud_gradient_pct,
        star_count=stars,
        fwhm_px=shown.fwhm_px,
        seeing_arcsec=shown.fwhm_px * scale if shown.fwhm_px and scale else None,
        hfd_px=2.0 * shown.r50_px if shown.r50_px else None,
        hfd_arcsec=2.0 * shown.r50_px * scale if shown.r50_px and scale else None,
        elongation=shown.elongation,
        saturated_pixels=n_saturated,
        hot_pixel_candidates=singles,
        hot_columns=columns,
        line_z=lines.z,
        hot_pixels_per_area=singles * area_scale,
        trail_excesses=found.excesses,
        point_sources=evidence.point_sources,
        detector_columns=evidence.detector_columns,
    )


def _score_columns(
    sub: np.ndarray, rms: float, sources: Sources, saturated: np.ndarray, column_x: np.ndarray
) -> np.ndarray:
    """The hot columns the score counts: the column finder's, run again with sep's vertical streaks left in view.
    A bright column can become a segment of its own, and the finder masks segments: on a seed-2 field the count
    went 0, 1, 2, 1 as columns were added. The features and the trail search keep the finder's first answer (a
    satellite within a degree of the columns lights a staircase of them, which must stay visible to the trail
    search; the score then leaves out the columns a trail runs down)."""
    objects = sources.objects
    if len(objects) == 0:
        return column_x
    vertical = streaks(objects) & (np.abs(np.abs(objects["theta"]) - np.pi / 2) <= np.radians(VERTICAL_DEG))
    if not vertical.any():
        return column_x
    in_view = np.isin(sources.labels, np.flatnonzero(vertical) + 1)
    return hot_columns(sub, rms, (sources.segmentation & ~in_view) | saturated)[2]


@dataclass(frozen=True)
class _Evidence:
    cloud_gradient_pct: float
    detector_columns: int
    point_sources: int
    sources: Sources  # the sources with those near a trail marked as hits (for a PSF without trail pieces)
    shown: Sources  # and with those near a hot column (not a trail's) marked too (for the report's PSF)


def _evidence(
    image: np.ndarray,
    saturated: np.ndarray,
    sources: Sources,
    snr: np.ndarray,
    found: TrailStats,
    column_x: np.ndarray,
    gradient: float,
    sky: float,
) -> _Evidence:
    """The severities the score reads that the features do not: the sky's gradient without the trails' light in
    the background (a trail tilts the mesh like a cloud), the hot columns (`column_x`, _score_columns) that are not
    a trail running down a column, and the point sources that are neither hits, hot pixels nor pieces of trails or
    hot columns; and the sources the PSFs leave out."""
    height, width = image.shape
    detector = [x for x in column_x if not found.runs_down(float(x), height, TRAIL_REACH_PX)]
    if found.count:
        ys, xs = np.mgrid[0:height, 0:width]
        lines = found.near(xs.ravel().astype(np.float64), ys.ravel().astype(np.float64), 2 * TRAIL_REACH_PX)
        back, _, box = _background(image, saturated | lines.reshape(height, width))
        coefficients, _ = _sky_model(back, box)
        gradient = float(math.hypot(coefficients[1], coefficients[2]))
    points, clean, shown = 0, sources, sources
    if sources.count:
        x = sources.objects["x"]
        on_column = np.isin(np.rint(x).astype(np.int64), np.concatenate([column_x - 1, column_x, column_x + 1]))
        on_trail = found.near(x, sources.objects["y"], TRAIL_REACH_PX)
        points = point_sources(sources, snr, image.shape, on_trail | on_column)
        clean = replace(sources, cosmic=sources.cosmic | on_trail)
        if detector:
            beside = np.abs(x[:, None] - np.asarray(detector, dtype=np.float64)[None, :]).min(axis=1) <= COLUMN_REACH_PX
            shown = replace(clean, cosmic=clean.cosmic | beside)
        else:
            shown = clean
    return _Evidence(100.0 * gradient / sky, len(detector), points, clean, shown)


def _saturation(saturated: np.ndarray) -> tuple[int, int]:
    count = int(np.count_nonzero(saturated))
    if count == 0:
        return 0, 0
    from scipy.ndimage import label

    labels, _ = label(saturated)
    sizes = np.bincount(labels.ravel())[1:]
    return count, int(np.count_nonzero(sizes >= 3))
