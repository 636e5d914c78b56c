"""Labelled training and evaluation frames from the simulator.

Each example is a pure function of its seed: a random field (astropolis.models.simulator.random_field) with
randomly drawn defects, rendered, measured, and labelled from the simulator's truth. Flags are defined by
thresholds on the injected severity:

    clouds          transparency loss >= 0.25
    bad_focus       focus (PSF width multiplier) >= 2 (the PSF doubled and flat-topped)
    tracking        trail length >= 0.75 x the PSF FWHM (seeing x focus)
    trail           at least one satellite or aircraft trail
    hot_pixels      at least 10 hot pixels per 512x512 pixels, or any hot column
    saturated       at least 5 pixels at the saturation level
    low_star_count  fewer than 10 stars with an expected S/N >= 10

The PSF flags (bad_focus, tracking) are judged only where there are stars to judge: on a frame with fewer
than 10 stars of S/N >= 10 they are negative and low_star_count is raised instead. The score needs to know
whether the PSF is bad on every frame, sparse or not (a flag that switches off as clouds thin the stars out
would let the score rise), so the model has more outputs, GATES, labelled by the injected severity alone
(focus >= 2, trail length >= 0.75 FWHM, and transparency loss >= 0.25 for the clouds gate) whatever the star
count; they open the score's penalties and are not reported as flags. The clouds and tracking gates the score
reads are monotone heads (model.MONOTONE); the MLP still learns its own tracking gate, psf_tracking, which the
score no longer reads: as an auxiliary target it shapes the MLP's shared layers (without it the bad_focus flag's
held-out F1 fell from 0.921 to 0.897).

In the standard ("buffered") sets, severities are drawn away from the thresholds: positives from the
threshold up, negatives from zero up to a third of it (sub-threshold defects are present, just not at the
edge), and frames with 7 to 14 stars of S/N >= 10 are redrawn. The "continuous" sets draw severities
uniformly through the thresholds and keep every frame, to show what the edge costs. The training set
("training") draws severities like the buffered sets but keeps every frame: the labels that depend on the star
count (bad_focus, tracking, low_star_count) carry no weight on a frame with 7 to 14 stars (loss_weights), while
every other output learns from it. Sparse frames are where a gate is hardest to judge (the score's ladders
rose there when training never showed the model one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from astropolis.models.quality.features import REFERENCE_AREA, measure
from astropolis.models.quality.meta import FrameMeta
from astropolis.models.simulator import Defects, FieldSpec, SimFrame, random_field, render
from astropolis.models.simulator.psf import ApertureCurve
from astropolis.models.simulator.render import frame_psf

FLAGS: tuple[str, ...] = ("clouds", "bad_focus", "tracking", "trail", "hot_pixels", "saturated", "low_star_count")
# Gates, labelled by the injected severity whatever the star count: bad focus and tracking from the MLP, clouds
# and tracking again from monotone heads (model.MONOTONE). The score reads psf_focus, sky_clouds and psf_elongated.
GATES: tuple[str, ...] = ("psf_focus", "psf_tracking", "sky_clouds", "psf_elongated")
OUTPUTS: tuple[str, ...] = FLAGS + GATES
CLOUDS_LABEL = 0.25
FOCUS_LABEL = 2.0
TRACKING_LABEL = 0.75  # in PSF FWHMs
HOT_PIXELS_LABEL = 10  # per 512x512
SATURATED_LABEL = 5
LOW_STARS_LABEL = 10
STAR_BUFFER = (7, 14)  # buffered sets redraw frames with this many S/N >= 10 stars

Mode = Literal["buffered", "training", "continuous"]
STAR_DEPENDENT: tuple[str, ...] = ("bad_focus", "tracking", "low_star_count")  # labels judged on the star count


@dataclass(frozen=True)
class Example:
    """One labelled frame: features, flag labels (0/1) and the injected severities."""

    seed: int
    features: np.ndarray
    labels: np.ndarray
    severity: dict[str, float]


def draw_defects(rng: np.random.Generator, field: FieldSpec, mode: Mode = "buffered") -> Defects:
    """Random defects for a field: each kind present with probability ~0.22, a quarter of frames clean."""
    clean = rng.uniform() < 0.25
    continuous = mode == "continuous"

    def severity(present_p: float, low: float, high: float, threshold: float) -> float:
        present, sub, u = rng.uniform() < present_p and not clean, rng.uniform() < 0.5, rng.uniform()
        if continuous:
            return low + u * (high - low) if present else low
        if present:
            return threshold + u * (high - threshold)
        return low + u * (threshold - low) / 3.0 if sub else low

    clouds = severity(0.22, 0.0, 0.9, CLOUDS_LABEL)
    focus = severity(0.22, 1.0, 3.5, FOCUS_LABEL)
    width = field.seeing_arcsec * focus
    tracking = severity(0.22, 0.0, 4.0, TRACKING_LABEL) * width
    angle = float(rng.uniform(0.0, 180.0))
    trails = rng.uniform() < 0.2 and not clean
    satellites = int(rng.integers(1, 3)) if trails and rng.uniform() < 0.7 else 0
    aircraft = 1 if trails and satellites == 0 else int(trails and rng.uniform() < 0.2)
    scale = field.width * field.height / REFERENCE_AREA
    hot_present = rng.uniform() < 0.2 and not clean
    hot_u, columns_u = rng.uniform(), rng.uniform()
    if continuous:
        hot = round(hot_u * 200 * scale) if hot_present else 0
    else:
        hot = round((HOT_PIXELS_LABEL + 5 + hot_u * 185) * scale) if hot_present else int(hot_u * 4)
    columns = int(rng.integers(1, 4)) if hot_present and columns_u < 0.4 else 0
    if hot_present and columns and columns_u < 0.2:
        hot = int(hot_u * 4)  # columns alone
    cosmic = int(rng.poisson(2.0 * field.exposure_s / 60.0 * scale))
    if rng.uniform() < 0.2:
        cosmic += int(rng.integers(5, 30) * scale)
    return Defects(
        clouds=round(clouds, 4),
        focus=round(focus, 4),
        tracking_arcsec=round(tracking, 4),
        tracking_angle_deg=round(angle, 3),
        satellite_trails=satellites,
        aircraft_trails=aircraft,
        hot_pixels=hot,
        hot_columns=columns,
        cosmic_rays=cosmic,
    )


def bright_star_count(frame: SimFrame, defects: Defects) -> int:
    """Stars in the frame whose expected S/N (with the frame's PSF, sky and clouds) is at least 10."""
    field: FieldSpec = frame.truth["field"]
    curve = ApertureCurve.of(frame_psf(field, defects).kernel)
    noise = (
        field.sky_e_per_pixel * frame.truth["sky"]["mean_factor"]
        + field.dark_e_per_s * field.exposure_s
        + field.read_noise_e**2
    )
    needed, _ = curve.flux_for_snr(10.0, noise)
    return int(np.count_nonzero(frame.truth["stars"]["observed_e"] >= needed))


def labels_of(frame: SimFrame, defects: Defects) -> np.ndarray:
    """The seven flag labels (0/1, in FLAGS order) of a rendered frame."""
    field: FieldSpec = frame.truth["field"]
    scale = field.width * field.height / REFERENCE_AREA
    width = field.seeing_arcsec * defects.focus
    enough_stars = bright_star_count(frame, defects) >= LOW_STARS_LABEL
    values = {
        "clouds": defects.clouds >= CLOUDS_LABEL,
        "bad_focus": defects.focus >= FOCUS_LABEL and enough_stars,
        "tracking": defects.tracking_arcsec >= TRACKING_LABEL * width and enough_stars,
        "trail": defects.satellite_trails + defects.aircraft_trails >= 1,
        "hot_pixels": defects.hot_pixels >= HOT_PIXELS_LABEL * scale or defects.hot_columns >= 1,
        "saturated": frame.truth["saturated_pixels"] >= SATURATED_LABEL,
        "low_star_count": not enough_stars,
    }
    return np.array([float(values[name]) for name in FLAGS])


def gate_labels(severity: dict[str, float]) -> np.ndarray:
    """The GATES labels (0/1) of an example from its injected severities, whatever its star count."""
    tracking = float(severity["tracking_fwhm"] >= TRACKING_LABEL)  # the MLP's gate and the head's: one label
    labels = {
        "psf_focus": float(severity["focus"] >= FOCUS_LABEL),
        "psf_tracking": tracking,
        "sky_clouds": float(severity["clouds"] >= CLOUDS_LABEL),
        "psf_elongated": tracking,
    }
    return np.array([labels[name] for name in GATES])


def targets(example: Example) -> np.ndarray:
    """What the model is trained on, in OUTPUTS order: the flag labels, then the gate labels."""
    return np.concatenate([example.labels, gate_labels(example.severity)])


def loss_weights(example: Example) -> np.ndarray:
    """Per output (OUTPUTS order), how much its label counts in training: 0 for the star-count labels of a frame
    whose star count is within STAR_BUFFER (where they sit on their threshold), else 1."""
    weights = np.ones(len(OUTPUTS))
    stars = example.severity.get("bright_stars")
    if stars is not None and STAR_BUFFER[0] <= stars <= STAR_BUFFER[1]:
        weights[[OUTPUTS.index(name) for name in STAR_DEPENDENT]] = 0.0
    return weights


def example(seed: int, mode: Mode = "buffered", size: int = 512) -> Example:
    """The labelled example of one seed (a pure function of its arguments)."""
    rng = np.random.default_rng([seed, 0x51A7])
    for _ in range(20):
        field = random_field(rng, width=size, height=size)
        defects = draw_defects(rng, field, mode)
        frame = render(field, defects)
        # Buffered sets keep star counts away from the low_star_count threshold too (like every other flag).
        stars = bright_star_count(frame, defects)
        if mode != "buffered" or not STAR_BUFFER[0] <= stars <= STAR_BUFFER[1]:
            break
    measured = measure(frame.data, FrameMeta.from_header(frame.header))
    severity = {
        "clouds": defects.clouds,
        "focus": defects.focus,
        "tracking_fwhm": defects.tracking_arcsec / (field.seeing_arcsec * defects.focus),
        "trails": float(defects.satellite_trails + defects.aircraft_trails),
        "hot_pixels": float(defects.hot_pixels),
        "hot_columns": float(defects.hot_columns),
        "cosmic_rays": float(defects.cosmic_rays),
        "seeing_arcsec": field.seeing_arcsec,
        "exposure_s": field.exposure_s,
        "bright_stars": float(stars),
    }
    return Example(seed, measured.features, labels_of(frame, defects), severity)


def _run(job: tuple[int, Mode, int]) -> Example:
    return example(*job)


def examples(seeds: range | list[int], mode: Mode = "buffered", *, size: int = 512, workers: int = 1) -> list[Example]:
    """Examples for many seeds, in seed order (the same whatever the number of worker processes)."""
    jobs = [(int(seed), mode, size) for seed in seeds]
    if workers <= 1:
        return [_run(job) for job in jobs]
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        return pool.map(_run, jobs, chunksize=max(1, math.ceil(len(jobs) / (workers * 8))))
