"""Seeded frames for training and judging the anomaly resident, drawn from the frame simulator.

Training and calibration frames are ordinary: simulator stars and OpenNGC galaxies, with the defects a night
brings (cosmic rays, hot pixels and columns, satellite and aircraft trails, clouds, tracking errors, focus
drift) in a share of them. Held-out frames come from different seeds and the other half of the sky (training
points at RA 0-180°, held-out at RA 180-360°), and carry injected unusual objects (inject.py) with their labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from astropolis.models.anomaly.inject import Injected, inject
from astropolis.models.simulator import Defects, FieldSpec, random_field, render
from astropolis.models.simulator.render import frame_psf

Split = Literal["train", "calibrate", "held_out"]
RA_RANGE: dict[Split, tuple[float, float]] = {
    "train": (0.0, 180.0),
    "calibrate": (0.0, 180.0),
    "held_out": (180.0, 360.0),
}
SPLIT_STREAM: dict[Split, int] = {"train": 1, "calibrate": 2, "held_out": 3}
DEFECT_SHARE = 0.5  # share of frames with defects
ANOMALIES_PER_FRAME = 2  # unusual objects injected into each held-out frame


@dataclass(frozen=True)
class Example:
    """One simulated frame with its labels."""

    data: np.ndarray
    header: Any
    spec: FieldSpec
    defects: Defects
    injected: list[Injected] = field(default_factory=list)
    defect_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # cosmic-ray and hot-pixel positions
    trails: list[dict[str, Any]] = field(default_factory=list)
    psf_fwhm_px: float = 0.0  # the simulator's effective PSF FWHM


def field_for(rng: np.random.Generator, split: Split) -> FieldSpec:
    """A random simulator field whose pointing falls in the split's half of the sky."""
    low, high = RA_RANGE[split]
    for _ in range(1000):
        spec = random_field(rng)
        if low <= spec.ra_deg < high:
            return spec
    raise RuntimeError("no field found in the split's RA range")  # pragma: no cover - 2^-1000


def defects_for(rng: np.random.Generator) -> Defects:
    """The defects of one frame: none in half of them, otherwise a random mix of what a night brings."""
    if rng.uniform() >= DEFECT_SHARE:
        return Defects()
    return Defects(
        clouds=float(rng.uniform(0.0, 0.6)) if rng.uniform() < 0.2 else 0.0,
        focus=float(rng.uniform(1.2, 2.5)) if rng.uniform() < 0.1 else 1.0,
        tracking_arcsec=float(rng.uniform(1.0, 5.0)) if rng.uniform() < 0.1 else 0.0,
        tracking_angle_deg=float(rng.uniform(0.0, 180.0)),
        satellite_trails=int(rng.uniform() < 0.15),
        aircraft_trails=int(rng.uniform() < 0.05),
        hot_pixels=int(rng.integers(0, 40)),
        hot_columns=int(rng.uniform() < 0.1) * int(rng.integers(1, 3)),
        cosmic_rays=int(rng.integers(0, 60)),
    )


def _defect_positions(truth: dict[str, Any]) -> np.ndarray:
    """x, y of every cosmic-ray pixel and hot pixel in a frame's truth."""
    xs: list[float] = list(np.asarray(truth["hot_pixels"]["x"], dtype=float))
    ys: list[float] = list(np.asarray(truth["hot_pixels"]["y"], dtype=float))
    for hit in truth["cosmic_rays"]:
        xs.extend(hit["x"])
        ys.extend(hit["y"])
    return np.column_stack([np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)]) if xs else np.zeros((0, 2))


def example(seed: int, index: int, split: Split, *, anomalies: int = 0) -> Example:
    """Frame `index` of a split, a pure function of (seed, split, index); held-out frames get `anomalies`
    injected objects (kinds in turn, starting at a kind that depends on the index)."""
    rng = np.random.default_rng([seed, SPLIT_STREAM[split], index])
    spec = field_for(rng, split)
    defects = defects_for(rng)
    frame = render(spec, defects)
    data = frame.data
    injected: list[Injected] = []
    if anomalies:
        from astropolis.models.anomaly.inject import KINDS

        start = index % len(KINDS)
        kinds = KINDS[start:] + KINDS[:start]
        data, injected = inject(
            data,
            rng,
            count=anomalies,
            kinds=kinds,
            psf=np.asarray(frame_psf(spec, defects).kernel),
            gain=spec.gain_e_per_adu,
            wcs=frame.wcs,
            saturation=spec.saturation_adu,
        )
    return Example(
        data=data,
        header=frame.header,
        spec=spec,
        defects=defects,
        injected=injected,
        defect_xy=_defect_positions(frame.truth),
        trails=list(frame.truth["trails"]) + [{"kind": "column", **c} for c in frame.truth["hot_columns"]],
        psf_fwhm_px=float(frame.truth["psf"]["effective_fwhm_px"]),
    )
