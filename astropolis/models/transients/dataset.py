"""Labelled triplets from simulated pairs: the training and held-out sets of the real/bogus network.

Each pair is a pure function of (split, index): a random field from the simulator (a third on OpenNGC
galaxies), transients at S/N 4-60 (40 % on a galaxy when one is in the field), defects on the new frame
(cosmic rays, hot pixels and columns, satellite and aircraft trails, clouds, focus, tracking), a pointing
offset and a seeing change. The pipeline the resident runs finds the candidates; the simulator's truth
labels them. Held-out ("test") fields lie in a band of right ascension that training and validation never
draw from, and use their own seed streams, so neither sky nor noise is shared.

Training pairs (only) also get extra transients (TRAIN_EXTRA), and a share (BRIGHT_GALAXY["share"]) of them are
centred on a bright OpenNGC galaxy instead, often with a seeing change beyond the usual x0.85-1.3: their
compact, cuspy cores leave subtraction residuals on the difference that are labelled artefacts, and about half
of those pairs also carry a transient on or next to the nucleus, labelled real, so that the network learns the
difference (a PSF-shaped source on the difference and the unconvolved new frame versus a ring, dip or
core-shaped misfit of the matched reference) rather than "a source on a bright nucleus".

1.3: in the night, a follow-up of 30 s or more is compared with a reference of a few seconds, often from
another site, and a small telescope's stars twinkle by a few per cent in a short exposure (scintillation),
which leaves residuals no kernel can subtract; no training pair had either. (What failed 1.2's night was
mostly a saturation level taken too high, fixed in pipeline.saturation_level; see the model card.) A share
(EXPOSURES["share"]) of training pairs therefore take the two epochs with exposures up to 60 times apart
(mostly the new one deeper, and often sharper), and most training pairs (SCINTILLATION["share"]) render their
stars with scintillation; those residuals are labelled artefacts. The "exposures" split is held out like
"test" (same band of right ascension, its own stream) with every pair mismatched so: the bench measures the
false positives there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np

from astropolis.models.errors import BadInput
from astropolis.models.transients.cnn import CLASSES
from astropolis.models.transients.diff import mask_of
from astropolis.models.transients.pipeline import Analysis, analyse
from astropolis.models.transients.stamps import STAMP_CHANNELS, STAMP_SIZE, cosmic_ray_flags

SPLIT_STREAMS = {"train": 1, "validation": 2, "test": 3, "exposures": 4}
HOLDOUT_SPLITS = ("test", "exposures")
HOLDOUT_RA_DEG = (0.0, 60.0)  # only held-out fields are centred here
# Training pairs get these extra transients: the faint end (S/N 10-15) is where recall is lost, and transients
# on galaxies or next to trails and defects are where the network errs; more of them per pair costs little.
TRAIN_EXTRA: dict[str, Any] = {"snr_range": (7.0, 25.0), "count": (3, 8), "on_galaxy": 0.5}
# 1.2: 1.1 called an M77 nuclear residual real (p 0.71): random galaxy fields are mostly faint galaxies, so the
# network had seen few bright nuclei. Share of training pairs centred on a galaxy brighter than R `max_mag`
# (outside the held-out band), share of those with a new seeing beyond x0.85-1.3, share with a nuclear transient.
BRIGHT_GALAXY: dict[str, Any] = {
    "share": 0.25,
    "max_mag": 11.0,
    "wide_seeing": 0.6,
    "nuclear_transient": 0.5,
    "nuclear_snr": (5.0, 40.0),
    "nuclear_offset_arcsec": 2.5,
}
# 1.3: share of training pairs whose epochs differ in exposure time: the shorter one of `short_s` seconds, the
# other `ratio` times longer (log-uniform); the new epoch the deeper one in a share `deep_new`, and sharper (its
# seeing times `sharper`) in a share `sharper_new`.
EXPOSURES: dict[str, Any] = {
    "share": 0.3,
    "short_s": (0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0),
    "ratio": (2.0, 60.0),
    "deep_new": 0.7,
    "sharper_new": 0.6,
    "sharper": (0.6, 0.95),
}
# 1.3: share of training pairs (and every "exposures" pair) whose stars scintillate, with this rms at 1 s.
SCINTILLATION: dict[str, Any] = {"share": 0.7, "range_1s": (0.003, 0.025)}
REAL, COSMIC_RAY, BAD_PIXEL, TRAIL, ARTEFACT = range(len(CLASSES))


@dataclass
class PairExamples:
    """What one simulated pair yields: labelled triplets and, per injected transient, whether it was found."""

    stamps: np.ndarray  # (n, STAMP_CHANNELS, S, S) float16
    labels: np.ndarray  # (n,) int8 indices into CLASSES
    snr: np.ndarray  # (n,) detection S/N on the difference
    cr_flag: np.ndarray  # (n,) astroscrappy's cosmic-ray flag
    transient_snr: np.ndarray  # (t,) injected S/N (simulator definition, new frame)
    transient_found: np.ndarray  # (t,) index of the matching candidate, -1 if none
    transient_host: np.ndarray  # (t,) bool: injected on a galaxy
    transient_covered: np.ndarray  # (t,) bool: inside the region where the difference is defined
    info: dict[str, Any] = field(default_factory=dict)


def _in_holdout(ra_deg: float) -> bool:
    return HOLDOUT_RA_DEG[0] <= ra_deg % 360.0 < HOLDOUT_RA_DEG[1]


def draw_field(rng: np.random.Generator, split: str, size: int) -> Any:
    """A random field of the split's part of the sky."""
    from astropolis.models.simulator import random_field

    while True:
        spec = random_field(rng, width=size, height=size)
        if _in_holdout(spec.ra_deg) == (split in HOLDOUT_SPLITS):
            return spec


@lru_cache(maxsize=4)
def bright_galaxies(max_mag: float, holdout: bool) -> tuple[Any, ...]:
    """OpenNGC galaxies brighter than R `max_mag` inside (holdout) or outside the held-out band, brightest first."""
    from astropolis.models.simulator.galaxies import catalogue

    galaxies, _ = catalogue()
    chosen = [g for g in galaxies if g.mag < max_mag and _in_holdout(g.ra_deg) == holdout and abs(g.dec_deg) < 85]
    return tuple(sorted(chosen, key=lambda g: (g.mag, g.name)))


def bright_galaxy_field(rng: np.random.Generator, spec: Any, galaxy: Any, split: str) -> Any:
    """`spec` re-pointed so that `galaxy` lies within a quarter frame of its centre (kept in the split's sky)."""
    half_arcsec = 0.25 * min(spec.width, spec.height) * spec.pixel_scale_arcsec
    while True:
        dx, dy = rng.uniform(-half_arcsec, half_arcsec, 2)
        ra, dec = _offset(galaxy.ra_deg, galaxy.dec_deg, float(dx), float(dy))
        if _in_holdout(ra) == (split in HOLDOUT_SPLITS):
            return replace(spec, ra_deg=ra, dec_deg=dec)


def new_seeing_factor(rng: np.random.Generator) -> float:
    """A seeing change beyond render_pair's x0.85-1.3: mostly worse (the reference convolved), sometimes better."""
    return float(rng.uniform(1.3, 1.7)) if rng.uniform() < 0.7 else float(rng.uniform(0.6, 0.85))


def exposure_mismatch(rng: np.random.Generator, seeing_arcsec: float) -> dict[str, float | None]:
    """Exposures of the two epochs up to 60 times apart (EXPOSURES): the reference's exposure_s, the new
    epoch's new_exposure_s, and new_seeing_arcsec when the new epoch is also sharper (None: render_pair's)."""
    short = float(rng.choice(EXPOSURES["short_s"]))
    low, high = EXPOSURES["ratio"]
    long = short * float(math.exp(rng.uniform(math.log(low), math.log(high))))
    deep_new = rng.uniform() < EXPOSURES["deep_new"]
    sharper = rng.uniform() < EXPOSURES["sharper_new"]
    factor = float(rng.uniform(*EXPOSURES["sharper"]))
    return {
        "exposure_s": short if deep_new else long,
        "new_exposure_s": long if deep_new else short,
        "new_seeing_arcsec": seeing_arcsec * factor if sharper else None,
    }


def _offset(ra: float, dec: float, dx_arcsec: float, dy_arcsec: float) -> tuple[float, float]:
    """A position dx east, dy north of (ra, dec), small-angle."""
    new_dec = float(np.clip(dec + dy_arcsec / 3600.0, -89.9, 89.9))
    return (ra + dx_arcsec / 3600.0 / max(math.cos(math.radians(new_dec)), 1e-6)) % 360.0, new_dec


def draw_transients(
    rng: np.random.Generator,
    spec: Any,
    snr_range: tuple[float, float] = (4.0, 60.0),
    count: tuple[int, int] = (2, 8),
    on_galaxy: float = 0.4,
) -> list[Any]:
    """`count` (inclusive) transients, S/N log-uniform in `snr_range`, a share `on_galaxy` of them on a galaxy of
    the field when there is one."""
    from astropolis.models.simulator import Transient
    from astropolis.models.simulator.galaxies import galaxies_in_cone

    half_arcsec = 0.42 * min(spec.width, spec.height) * spec.pixel_scale_arcsec
    galaxies = [
        g
        for g in galaxies_in_cone(spec.ra_deg, spec.dec_deg, spec.radius_deg)
        if abs(((g.ra_deg - spec.ra_deg + 180) % 360 - 180) * math.cos(math.radians(spec.dec_deg))) * 3600 < half_arcsec
        and abs(g.dec_deg - spec.dec_deg) * 3600 < half_arcsec
    ]
    made = []
    for _ in range(int(rng.integers(count[0], count[1] + 1))):
        snr = float(math.exp(rng.uniform(math.log(snr_range[0]), math.log(snr_range[1]))))
        if galaxies and rng.uniform() < on_galaxy:
            host = galaxies[int(rng.integers(0, len(galaxies)))]
            reach = 60.0 * host.major_arcmin * 0.3 * rng.uniform() ** 0.5
            angle = rng.uniform(0, 2 * math.pi)
            ra, dec = _offset(host.ra_deg, host.dec_deg, reach * math.cos(angle), reach * math.sin(angle))
            made.append(Transient(ra, dec, snr=snr, host=host.name))
        else:
            dx, dy = rng.uniform(-half_arcsec, half_arcsec, 2)
            ra, dec = _offset(spec.ra_deg, spec.dec_deg, float(dx), float(dy))
            made.append(Transient(ra, dec, snr=snr))
    return made


def draw_defects(rng: np.random.Generator) -> tuple[Any, Any]:
    """(reference, new) defects: the new frame carries most; references are cleaner, as stacked ones are."""
    from astropolis.models.simulator import Defects

    new = Defects(
        clouds=float(rng.uniform(0.0, 0.5)) if rng.uniform() < 0.2 else 0.0,
        focus=float(rng.uniform(1.0, 1.6)) if rng.uniform() < 0.1 else 1.0,
        tracking_arcsec=float(rng.uniform(0.5, 3.0)) if rng.uniform() < 0.1 else 0.0,
        tracking_angle_deg=float(rng.uniform(0.0, 180.0)),
        satellite_trails=int(rng.uniform() < 0.3),
        aircraft_trails=int(rng.uniform() < 0.1),
        hot_pixels=int(rng.integers(0, 25)),
        hot_columns=int(rng.integers(0, 3)) if rng.uniform() < 0.3 else 0,
        cosmic_rays=int(rng.integers(5, 40)),
    )
    reference = Defects(hot_pixels=int(rng.integers(0, 10)), cosmic_rays=int(rng.integers(0, 10)))
    return reference, new


def simulate(split: str, index: int, size: int = 512) -> tuple[Any, Any]:
    """The (reference, new) SimFrames of one pair of a split: a pure function of (split, index, size).

    Training pairs carry TRAIN_EXTRA more transients, bright-galaxy centres (BRIGHT_GALAXY), exposure mismatches
    (EXPOSURES) and scintillation (SCINTILLATION), each drawn from its own stream so that validation and test
    pairs are exactly what they were. Every "exposures" pair has an exposure mismatch and scintillation."""
    from astropolis.models.simulator import render_pair

    rng = np.random.default_rng([20261125, SPLIT_STREAMS[split], index])
    spec = draw_field(rng, split, size)
    bright = np.random.default_rng([20261125, SPLIT_STREAMS[split], index, 2])
    nuclear: list[Any] = []
    new_seeing = None
    if split == "train" and bright.uniform() < BRIGHT_GALAXY["share"]:
        from astropolis.models.simulator import Transient

        pool = bright_galaxies(BRIGHT_GALAXY["max_mag"], False)
        galaxy = pool[int(bright.integers(0, len(pool)))]
        spec = bright_galaxy_field(bright, spec, galaxy, split)
        if bright.uniform() < BRIGHT_GALAXY["wide_seeing"]:
            new_seeing = spec.seeing_arcsec * new_seeing_factor(bright)
        if bright.uniform() < BRIGHT_GALAXY["nuclear_transient"]:
            low, high = BRIGHT_GALAXY["nuclear_snr"]
            reach = BRIGHT_GALAXY["nuclear_offset_arcsec"] * bright.uniform() ** 0.5
            angle = bright.uniform(0, 2 * math.pi)
            ra, dec = _offset(galaxy.ra_deg, galaxy.dec_deg, reach * math.cos(angle), reach * math.sin(angle))
            snr = float(math.exp(bright.uniform(math.log(low), math.log(high))))
            nuclear.append(Transient(ra, dec, snr=snr, host=galaxy.name))
    transients = draw_transients(rng, spec)
    reference_defects, new_defects = draw_defects(rng)
    shift = float(rng.choice([1.0, 3.0, 10.0, 30.0]) * rng.uniform(0.5, 1.5))
    if split == "train":
        extra = np.random.default_rng([20261125, SPLIT_STREAMS[split], index, 1])
        transients += draw_transients(extra, spec, **TRAIN_EXTRA) + nuclear
    new_exposure = None
    if split in ("train", "exposures"):
        exposures = np.random.default_rng([20261125, SPLIT_STREAMS[split], index, 3])
        if split == "exposures" or exposures.uniform() < EXPOSURES["share"]:
            mismatch = exposure_mismatch(exposures, spec.seeing_arcsec)
            spec = replace(spec, exposure_s=mismatch["exposure_s"])
            new_exposure = mismatch["new_exposure_s"]
            new_seeing = mismatch["new_seeing_arcsec"] if mismatch["new_seeing_arcsec"] is not None else new_seeing
        twinkle = np.random.default_rng([20261125, SPLIT_STREAMS[split], index, 4])
        if split == "exposures" or twinkle.uniform() < SCINTILLATION["share"]:
            spec = replace(spec, scintillation_1s=float(twinkle.uniform(*SCINTILLATION["range_1s"])))
    return render_pair(
        spec,
        transients=transients,
        reference_defects=reference_defects,
        new_defects=new_defects,
        shift_arcsec=shift,
        new_seeing_arcsec=new_seeing,
        new_exposure_s=new_exposure,
    )


def _segment_distance(px: np.ndarray, py: np.ndarray, trail: dict[str, Any]) -> np.ndarray:
    x0, y0, x1, y1 = trail["x0"], trail["y0"], trail["x1"], trail["y1"]
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((px - x0) * dx + (py - y0) * dy) / max(dx * dx + dy * dy, 1e-9), 0.0, 1.0)
    return np.hypot(px - (x0 + t * dx), py - (y0 + t * dy))


def label(x: np.ndarray, y: np.ndarray, truth: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Class of each candidate at (x, y) from the new frame's truth, and per transient the candidate it matches
    (-1 if none). Order of precedence: real, cosmic ray, bad pixel, trail, else subtraction artefact."""
    fwhm = float(truth["psf"]["effective_fwhm_px"])
    labels = np.full(len(x), ARTEFACT, dtype=np.int8)
    trail_distance = np.full(len(x), np.inf)
    for trail in truth["trails"]:
        reach = fwhm + (8.0 if trail["kind"] == "aircraft" else 3.0)
        trail_distance = np.minimum(trail_distance, _segment_distance(x, y, trail) - reach)
    labels[trail_distance <= 0] = TRAIL
    bad = np.zeros(len(x), dtype=bool)
    hot = truth["hot_pixels"]
    for hx, hy in zip(hot["x"], hot["y"], strict=True):
        bad |= np.hypot(x - hx, y - hy) <= 2.5
    for column in truth["hot_columns"]:
        bad |= (np.abs(x - column["x"]) <= 2.5) & (y >= column["y0"] - 2.5)
    labels[bad] = BAD_PIXEL
    ray = np.zeros(len(x), dtype=bool)
    for hit in truth["cosmic_rays"]:
        hx, hy = np.asarray(hit["x"], dtype=np.float64), np.asarray(hit["y"], dtype=np.float64)
        if len(x):
            ray |= np.min(np.hypot(x[:, None] - hx[None, :], y[:, None] - hy[None, :]), axis=1) <= 2.5
    labels[ray] = COSMIC_RAY
    found = np.full(len(truth["transients"]), -1, dtype=np.int64)
    radius = max(2.5, fwhm)
    for t, transient in enumerate(truth["transients"]):
        if not transient["in_frame"] or len(x) == 0:
            continue
        distance = np.hypot(x - transient["x"], y - transient["y"])
        nearest = int(np.argmin(distance))
        if distance[nearest] <= radius:
            found[t] = nearest
            labels[nearest] = REAL
    return labels, found


def run_pipeline(reference: Any, new: Any) -> Analysis:
    """The resident's pipeline on simulated frames (their float32 ADU equal the FITS the lake would hold)."""
    return analyse(
        new.data.astype(np.float64),
        new.header,
        new.wcs,
        reference.data.astype(np.float64),
        reference.header,
        reference.wcs,
    )


def pair_examples(split: str, index: int, size: int = 512) -> PairExamples:
    """Labelled triplets of one simulated pair (empty when the pipeline refuses the pair as bad input)."""
    reference, new = simulate(split, index, size)
    transients = new.truth["transients"]
    inside = np.array([bool(t["in_frame"]) for t in transients], dtype=bool)
    t_snr = np.array([float(t["snr"]) for t in transients])[inside] if len(transients) else np.zeros(0)
    t_host = (
        np.array([t["host"] is not None for t in transients], dtype=bool)[inside]
        if len(transients)
        else np.zeros(0, bool)
    )
    try:
        result = run_pipeline(reference, new)
    except BadInput as error:
        return PairExamples(
            np.zeros((0, STAMP_CHANNELS, STAMP_SIZE, STAMP_SIZE), np.float16),
            np.zeros(0, np.int8),
            np.zeros(0),
            np.zeros(0, bool),
            t_snr,
            np.full(len(t_snr), -1),
            t_host,
            np.zeros(len(t_snr), bool),
            {"refused": str(error)},
        )
    found, sub = result.detections, result.subtraction
    labels, matched = label(found.x, found.y, new.truth)
    region = mask_of(result.subtraction.valid, new.data.shape)
    tx = np.array([float(t["x"]) for t in transients])[inside] if len(transients) else np.zeros(0)
    ty = np.array([float(t["y"]) for t in transients])[inside] if len(transients) else np.zeros(0)
    ix, iy = (
        np.clip(np.rint(tx).astype(int), 0, new.data.shape[1] - 1),
        np.clip(np.rint(ty).astype(int), 0, new.data.shape[0] - 1),
    )
    covered = region[iy, ix] if len(ix) else np.zeros(0, bool)
    return PairExamples(
        stamps=result.stamps.astype(np.float16),
        labels=labels,
        snr=found.snr.astype(np.float32),
        cr_flag=cosmic_ray_flags(sub.new_raw, sub.new_noise, sub.fwhm_new_px, found.x, found.y),
        transient_snr=t_snr,
        transient_found=matched[inside],
        transient_host=t_host,
        transient_covered=np.asarray(covered, dtype=bool),
        info={"fwhm_px": float(new.truth["psf"]["effective_fwhm_px"]), "candidates": int(found.total)},
    )
