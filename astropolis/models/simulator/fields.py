"""Random but realistic fields for training sets: pointings (a third of them on OpenNGC galaxies), seeing,
sky brightness, exposure and camera."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import numpy as np

from astropolis.models.simulator.galaxies import catalogue
from astropolis.models.simulator.spec import DEFAULT_DATE_OBS, FieldSpec

EXPOSURES_S = (5.0, 10.0, 20.0, 30.0, 60.0, 60.0, 90.0, 120.0, 180.0, 300.0)
FILTERS = ("R", "R", "V", "B", "I", "L")
GALAXY_SHARE = 0.35
MIN_FWHM_PX = 1.6


def random_field(rng: np.random.Generator, **overrides: Any) -> FieldSpec:
    """A random field: pointing uniform on the sky or (35%) on a catalogued galaxy, seeing 1.2-4 arcsec
    (log-uniform), plate scale 0.45-1.4 arcsec/px (FWHM at least 1.6 px), sky 19-21.5 mag/arcsec², exposure
    5-300 s, zero point 21-23.5, gain 0.8-3 e-/ADU, read noise 3-12 e-.
    Keyword overrides replace any FieldSpec field."""
    width = int(overrides.get("width", 512))
    height = int(overrides.get("height", 512))
    seeing = float(overrides.get("seeing_arcsec", math.exp(rng.uniform(math.log(1.2), math.log(4.0)))))
    # Plate scales 0.45-1.4 arcsec/px, but stars sampled by at least MIN_FWHM_PX pixels (no undersampled PSFs).
    scale = float(overrides.get("pixel_scale_arcsec", min(rng.uniform(0.45, 1.4), seeing / MIN_FWHM_PX)))
    if rng.uniform() < GALAXY_SHARE:
        galaxies, _ = catalogue()
        galaxy = galaxies[int(rng.integers(0, len(galaxies)))]
        offset_arcsec = rng.uniform(0, 0.3) * min(width, height) * scale
        angle = rng.uniform(0, 2 * math.pi)
        dec = float(np.clip(galaxy.dec_deg + offset_arcsec * math.sin(angle) / 3600.0, -90.0, 90.0))
        cos_dec = max(math.cos(math.radians(dec)), 1e-6)
        ra = (galaxy.ra_deg + offset_arcsec * math.cos(angle) / 3600.0 / cos_dec) % 360.0
    else:
        ra = float(rng.uniform(0.0, 360.0))
        dec = float(np.degrees(np.arcsin(rng.uniform(-1.0, 1.0))))
    params: dict[str, Any] = {
        "ra_deg": ra,
        "dec_deg": dec,
        "width": width,
        "height": height,
        "pixel_scale_arcsec": scale,
        "seeing_arcsec": seeing,
        "exposure_s": float(EXPOSURES_S[int(rng.integers(0, len(EXPOSURES_S)))]),
        "filter": FILTERS[int(rng.integers(0, len(FILTERS)))],
        "seed": int(rng.integers(0, 2**31 - 1)),
        "sky_mag_arcsec2": float(rng.uniform(19.0, 21.5)),
        "zero_point": float(rng.uniform(21.0, 23.5)),
        "gain_e_per_adu": float(rng.uniform(0.8, 3.0)),
        "read_noise_e": float(rng.uniform(3.0, 12.0)),
        "bias_adu": float(rng.choice([100.0, 300.0, 500.0, 1000.0, 2000.0])),
        "date_obs": DEFAULT_DATE_OBS + timedelta(days=float(rng.uniform(0.0, 365.0))),
    }
    params.update(overrides)
    return FieldSpec(**params)
