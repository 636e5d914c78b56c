"""Per-source measurements for the anomaly resident: seeing-normalised shape features and cutouts.

Everything is measured in units of the frame's own point-spread function (the median half-light radius of its
star-like sources), so a star looks the same to the model in 1" and in 3" seeing and what stands out is shape,
not scale; elongation, concentration and peakiness are further taken relative to the frame's own stars, so a
tracking error or a defocus that shapes every star alike is not an anomaly. Pixels of neighbouring sources are
kept out of every aperture (sep's segmentation map) and cutout (segmentation and nearest-centre masks).

Defects (detection.py) are set aside before scoring rather than scored, and counted in the report by kind:
cosmic rays and hot pixels, hot columns, trails, saturated sources, sources at the edge, frames without a PSF,
sources too faint (S/N < MIN_SNR) for their shape to mean anything, and diffuse sky structure (cloud patches).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import sep
from scipy import ndimage
from scipy.spatial import cKDTree

from astropolis.models.anomaly.detection import clean_cosmic_rays, detect, header_number, set_aside
from astropolis.models.anomaly.residuals import asymmetry_chi2, cell_variance, psf_chi2, template

# Measured shape features, in this order (the model appends its cutout reconstruction error as "recon").
BASE_FEATURES = (
    "log_snr",
    "size",
    "elongation",
    "concentration",
    "peakiness",
    "asymmetry",
    "offset",
    "halo",
    "psf_chi2",
    "asym_chi2",
)
MIN_SNR = 15.0  # below this, shapes are noise: sources are detected but not scored
CUTOUT = 24  # cutout side in grid cells
CUTOUT_SPAN_FWHM = 8.0  # the cutout covers ±4 PSF FWHM
APERTURE_FWHM = 3.0  # aperture radius for flux and radii, in PSF FWHM
DIFFUSE_PEAK_SIGMA = 5.0  # a source whose brightest pixel is below this many background rms ...
DIFFUSE_HALO = 1.5  # ... and with more light than this (x its aperture flux) in the next annulus is sky structure
DEFECT_KINDS = ("cosmic_ray", "hot_column", "trail", "saturated", "edge", "no_psf", "faint", "diffuse", "catalogued")


@dataclass(frozen=True)
class Sources:
    """What one frame's extraction yields: every scored source's position, flux, features and cutout."""

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    snr: np.ndarray
    features: np.ndarray  # (n, len(BASE_FEATURES))
    cutouts: np.ndarray  # (n, CUTOUT * CUTOUT), normalised by the source's flux
    psf_fwhm_px: float
    background_rms: float
    detected: int
    defects: dict[str, int] = field(default_factory=dict)
    defect_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # x, y of every defect, for evals

    ra_deg: np.ndarray = field(default_factory=lambda: np.zeros(0))  # filled by `located`
    dec_deg: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return int(self.x.size)

    def located(self, ra_deg: np.ndarray, dec_deg: np.ndarray) -> Sources:
        """These sources with their sky positions."""
        return replace(self, ra_deg=np.asarray(ra_deg, dtype=np.float64), dec_deg=np.asarray(dec_deg, dtype=np.float64))

    def without(self, drop: np.ndarray, kind: str) -> Sources:
        """These sources less those where `drop` is true, counted as set aside under `kind`."""
        keep = ~drop
        defects = {**self.defects, kind: self.defects.get(kind, 0) + int(drop.sum())}
        located = {"ra_deg": self.ra_deg[keep], "dec_deg": self.dec_deg[keep]} if self.ra_deg.size else {}
        return replace(
            self,
            x=self.x[keep],
            y=self.y[keep],
            flux=self.flux[keep],
            snr=self.snr[keep],
            features=self.features[keep],
            cutouts=self.cutouts[keep],
            defects=defects,
            **located,
        )


def sample_cutouts(
    image: np.ndarray,
    seg: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    ids: np.ndarray,
    fwhm: float,
    centres: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CUTOUT x CUTOUT bilinear samples spanning ±CUTOUT_SPAN_FWHM/2 PSF FWHM around each source, one row per
    source (not normalised); which cells are valid (inside the frame, not another source's pixels, and, given
    every detection's `centres` in segment-id order, nearer to this source than to any other: a neighbour's
    wings stay out); invalid cells are zero. Also each cell's sum of squared interpolation weights (noise)."""
    half = CUTOUT_SPAN_FWHM * fwhm / 2.0
    grid = (np.arange(CUTOUT) + 0.5) / CUTOUT * 2.0 * half - half
    gy, gx = np.meshgrid(grid, grid, indexing="ij")
    rows = (y[:, None, None] + gy[None]).reshape(x.size, -1)
    cols = (x[:, None, None] + gx[None]).reshape(x.size, -1)
    coords = np.stack([rows.ravel(), cols.ravel()])
    values = ndimage.map_coordinates(image, coords, order=1, mode="constant", cval=0.0).reshape(rows.shape)
    owner = ndimage.map_coordinates(seg, coords, order=0, mode="constant", cval=-1).reshape(rows.shape)
    valid = (owner == 0) | (owner == ids[:, None])
    height, width = image.shape
    valid &= (rows >= 0) & (rows <= height - 1) & (cols >= 0) & (cols <= width - 1)
    if centres is not None and len(centres) > 1:
        _, nearest = cKDTree(centres).query(np.column_stack([cols.ravel(), rows.ravel()]))
        valid &= nearest.reshape(rows.shape) == (ids[:, None] - 1)
    fy, fx = rows - np.floor(rows), cols - np.floor(cols)
    weights2 = ((1 - fx) ** 2 + fx**2) * ((1 - fy) ** 2 + fy**2)
    return np.where(valid, values, 0.0), valid, weights2


def asymmetry(cutouts: np.ndarray) -> np.ndarray:
    """Rotational asymmetry sum|I - I_180| / (2 sum|I|) of each cutout (0 for a point-symmetric source)."""
    images = cutouts.reshape(-1, CUTOUT, CUTOUT)
    rotated = images[:, ::-1, ::-1]
    total = np.abs(images).sum(axis=(1, 2))
    return np.abs(images - rotated).sum(axis=(1, 2)) / np.maximum(2.0 * total, 1e-12)


def _relative(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Values minus the median over the frame's reference stars (unchanged when it has fewer than 3)."""
    return values - float(np.median(values[reference])) if reference.sum() >= 3 else values


def measure(data: np.ndarray, header: object | None = None) -> Sources:
    """Detect sources with sep, set defects aside and measure every scoreable source."""
    cleaned, hits = clean_cosmic_rays(data, header)
    det = detect(cleaned)
    count = len(det.objects)
    defects = dict.fromkeys(DEFECT_KINDS, 0)
    defects["cosmic_ray"] = hits
    if count == 0:
        return _empty(det.rms, defects)
    masks, psf_r50 = set_aside(det, header, CUTOUT_SPAN_FWHM / 4.0)
    if not np.isfinite(psf_r50):
        for kind, mask in masks.items():
            defects[kind] += int(mask.sum())
        return _empty(det.rms, defects, detected=count)
    fwhm = 2.0 * psf_r50
    sub, rms, seg = det.sub, det.rms, det.seg
    x, y, ids = det.column("x"), det.column("y"), det.ids
    radius = np.full(count, APERTURE_FWHM * fwhm)
    flux, flux_err, _ = sep.sum_circle(sub, x, y, radius, err=rms, seg_id=ids, segmap=seg)
    snr = flux / np.maximum(flux_err, 1e-9)
    rejected = np.zeros(count, dtype=bool)
    for kind, mask in masks.items():
        defects[kind] += int(mask.sum())
        rejected |= mask
    odd = masks["cosmic_ray"] | masks["hot_column"] | masks["trail"]
    defect_xy = np.column_stack([x[odd], y[odd]])
    faint = ~rejected & ~(snr >= MIN_SNR)
    defects["faint"] = int(faint.sum())
    keep = ~rejected & ~faint
    if not keep.any():
        return _empty(rms, defects, detected=count, fwhm=fwhm, defect_xy=defect_xy)
    x, y, ids, flux, snr, radius = x[keep], y[keep], ids[keep], flux[keep], snr[keep], radius[keep]
    kept = det.objects[keep]
    elong = np.clip(kept["a"] / np.maximum(kept["b"], 1e-6), 1.0, 100.0)
    radii, _ = sep.flux_radius(sub, x, y, radius, [0.2, 0.5, 0.8], normflux=flux, seg_id=ids, segmap=seg)
    radii = np.clip(np.nan_to_num(radii, nan=0.05 * fwhm), 0.05 * fwhm, None)
    ring, _, _ = sep.sum_circann(sub, x, y, radius, 2.0 * radius, err=rms, seg_id=ids, segmap=seg)
    centres = np.column_stack([det.column("x"), det.column("y")])
    raw, valid, weights2 = sample_cutouts(sub, seg, x, y, ids, fwhm, centres)
    cutouts = raw / flux[:, None]
    size = np.log(radii[:, 1] / psf_r50)
    # The frame's own stars set what round, concentrated and peaked mean here (tracking errors, focus, beta).
    reference = (snr > 30) & (np.abs(size) < 0.25)
    variance = cell_variance(raw, weights2, rms, header_number(header, "GAIN", "EGAIN") or 1.0)
    psf = template(cutouts, valid, reference, CUTOUT)
    features = np.column_stack(
        [
            np.log10(snr),
            size,
            _relative(np.log(elong), reference),
            _relative(np.log(radii[:, 2] / radii[:, 0]), reference),
            _relative(np.log(np.clip(kept["peak"] * psf_r50**2 / flux, 1e-4, None)), reference),
            asymmetry(cutouts),
            np.hypot(kept["xpeak"] - x, kept["ypeak"] - y) / psf_r50,
            ring / flux,
            np.log10(np.maximum(psf_chi2(raw, valid, variance, psf, CUTOUT), 1e-3)),
            np.log10(np.maximum(asymmetry_chi2(raw, valid, variance, CUTOUT), 1e-3)),
        ]
    )
    measured = Sources(
        x=x,
        y=y,
        flux=flux,
        snr=snr,
        features=features,
        cutouts=cutouts,
        psf_fwhm_px=float(fwhm),
        background_rms=rms,
        detected=count,
        defects=defects,
        defect_xy=defect_xy,
    )
    # Sky structure (cloud patches, scattered light): no peak to speak of, and light spreading past the cutout.
    diffuse = (kept["peak"] < DIFFUSE_PEAK_SIGMA * rms) & (ring / flux > DIFFUSE_HALO)
    return measured.without(diffuse, "diffuse")


def _empty(
    rms: float, defects: dict[str, int], *, detected: int = 0, fwhm: float = 0.0, defect_xy: np.ndarray | None = None
) -> Sources:
    """A frame with nothing to score."""
    none = np.zeros(0)
    return Sources(
        x=none,
        y=none,
        flux=none,
        snr=none,
        features=np.zeros((0, len(BASE_FEATURES))),
        cutouts=np.zeros((0, CUTOUT * CUTOUT)),
        psf_fwhm_px=float(fwhm),
        background_rms=rms,
        detected=detected,
        defects=defects,
        defect_xy=np.zeros((0, 2)) if defect_xy is None else defect_xy,
    )
