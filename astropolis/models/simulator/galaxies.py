"""Galaxies from OpenNGC (shipped in pyongc) rendered as Sérsic profiles.

Size, axis ratio, position angle and magnitude come from the catalogue: the major axis is the D25 isophotal
diameter, so a disc's effective radius is taken as 0.48 R25 (an exponential disc reaches the 25 mag/arcsec²
isophote at about 3.5 scale lengths) and an elliptical's as R25 / 3. Spirals get a de Vaucouleurs bulge whose
share of the light falls from 40% (S0/Sa) to 0 (Sd, irregulars). R magnitudes are V - 0.5 or B - 1.3.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from astropolis.models.simulator.sky import unit_vectors


@dataclass(frozen=True)
class Galaxy:
    """One OpenNGC galaxy."""

    name: str
    ra_deg: float
    dec_deg: float
    major_arcmin: float
    minor_arcmin: float
    pa_deg: float
    mag: float
    hubble: str

    @property
    def bulge_fraction(self) -> float:
        """Share of the light in the de Vaucouleurs bulge."""
        kind = self.hubble.strip()
        if kind.startswith("E"):
            return 1.0
        for prefix, share in (("S0", 0.4), ("SB0", 0.4), ("Sa", 0.4), ("SBa", 0.4), ("Sb", 0.25), ("SBb", 0.25)):
            if kind.startswith(prefix):
                return share
        if kind.startswith(("Sc", "SBc")):
            return 0.1
        return 0.0

    def as_dict(self) -> dict[str, Any]:
        """The catalogue facts as a plain dict."""
        return {
            "name": self.name,
            "ra_deg": self.ra_deg,
            "dec_deg": self.dec_deg,
            "major_arcmin": self.major_arcmin,
            "minor_arcmin": self.minor_arcmin,
            "pa_deg": self.pa_deg,
            "mag": self.mag,
            "type": self.hubble or "G",
        }


@lru_cache(maxsize=1)
def catalogue() -> tuple[tuple[Galaxy, ...], np.ndarray]:
    """All OpenNGC galaxies with a size and a magnitude, and their unit vectors (loaded once)."""
    from pyongc import DBPATH

    with sqlite3.connect(f"file:{DBPATH}?mode=ro", uri=True) as connection:
        rows = connection.execute(
            "SELECT name, ra, dec, majax, minax, pa, bmag, vmag, hubble FROM objects "
            "WHERE type = 'G' AND ra IS NOT NULL AND majax IS NOT NULL AND (bmag IS NOT NULL OR vmag IS NOT NULL)"
        ).fetchall()
    galaxies: list[Galaxy] = []
    for name, ra, dec, major, minor, pa, bmag, vmag, hubble in rows:
        if pa is None:  # a stable, name-derived angle rather than a pattern of zeros
            pa = int.from_bytes(hashlib.sha256(name.encode()).digest()[:2], "big") % 180
        mag = vmag - 0.5 if vmag is not None else bmag - 1.3
        minor = minor if minor else major * 0.7
        galaxies.append(
            Galaxy(name, math.degrees(ra), math.degrees(dec), float(major), float(minor), float(pa), mag, hubble or "")
        )
    vectors = unit_vectors(np.array([g.ra_deg for g in galaxies]), np.array([g.dec_deg for g in galaxies]))
    return tuple(galaxies), vectors


def galaxies_in_cone(ra_deg: float, dec_deg: float, radius_deg: float) -> list[Galaxy]:
    """Galaxies whose D25 ellipse may reach within `radius_deg` of a position."""
    galaxies, vectors = catalogue()
    centre = unit_vectors(np.array([ra_deg]), np.array([dec_deg]))[0]
    separation = np.degrees(np.arccos(np.clip(vectors @ centre, -1.0, 1.0)))
    reach = radius_deg + np.array([g.major_arcmin for g in galaxies]) / 60.0
    return [galaxies[i] for i in np.flatnonzero(separation <= reach)]


def _sersic_b(n: float) -> float:
    return 2 * n - 1 / 3 + 4 / (405 * n) + 46 / (25515 * n * n)


def sersic_image(
    shape: tuple[int, int], x0: float, y0: float, flux: float, r_e: float, n: float, q: float, theta: float
) -> np.ndarray:
    """A Sérsic profile of total `flux` (integrated to infinity) centred at pixel (x0, y0).

    r_e: effective (half-light) radius along the major axis, pixels; q: axis ratio; theta: angle of the major
    axis, radians counter-clockwise from +x. Evaluated within 8 r_e, with the central pixels supersampled.
    """
    height, width = shape
    image = np.zeros(shape)
    q = max(q, 0.05)
    r_e = max(r_e, 0.3)
    extent = 8.0 * r_e
    x_lo, x_hi = max(0, int(x0 - extent)), min(width, int(x0 + extent) + 2)
    y_lo, y_hi = max(0, int(y0 - extent)), min(height, int(y0 + extent) + 2)
    if x_lo >= x_hi or y_lo >= y_hi:
        return image
    b = _sersic_b(n)
    total = 2 * math.pi * n * q * r_e**2 * math.exp(b) * b ** (-2 * n) * math.gamma(2 * n)
    i_e = flux / total
    cos_t, sin_t = math.cos(theta), math.sin(theta)

    def profile(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        dx, dy = x - x0, y - y0
        major = dx * cos_t + dy * sin_t
        minor = (-dx * sin_t + dy * cos_t) / q
        r = np.sqrt(major**2 + minor**2)
        return np.asarray(i_e * np.exp(-b * ((r / r_e) ** (1.0 / n) - 1.0)))

    ys, xs = np.mgrid[y_lo:y_hi, x_lo:x_hi]
    image[y_lo:y_hi, x_lo:x_hi] = profile(xs.astype(np.float64), ys.astype(np.float64))
    # The cusp: average a 5x5 subgrid over the pixels within 2 px of the centre.
    cx, cy = round(x0), round(y0)
    offsets = (np.arange(5) - 2) / 5.0
    for py in range(max(y_lo, cy - 2), min(y_hi, cy + 3)):
        for px in range(max(x_lo, cx - 2), min(x_hi, cx + 3)):
            sub_y, sub_x = np.meshgrid(py + offsets, px + offsets, indexing="ij")
            image[py, px] = float(profile(sub_x, sub_y).mean())
    return image


def render_galaxy(
    shape: tuple[int, int], galaxy: Galaxy, x0: float, y0: float, flux_e: float, scale_arcsec: float, north_deg: float
) -> np.ndarray:
    """The galaxy's light (electrons) before the PSF: disc plus bulge, oriented by its position angle.

    north_deg: angle of celestial north on the image, degrees counter-clockwise from +x (90 for north up).
    """
    r25 = galaxy.major_arcmin * 30.0 / scale_arcsec  # pixels
    q = galaxy.minor_arcmin / galaxy.major_arcmin
    # PA runs from north through east; east is counter-clockwise from north on a north-up, east-left image.
    theta = math.radians(north_deg + galaxy.pa_deg)
    bulge = galaxy.bulge_fraction
    image = np.zeros(shape)
    if bulge < 1.0:
        image += sersic_image(shape, x0, y0, flux_e * (1 - bulge), 0.48 * r25, 1.0, q, theta)
    if bulge > 0.0:
        radius = r25 / 3.0 if bulge == 1.0 else 0.1 * r25
        image += sersic_image(shape, x0, y0, flux_e * bulge, radius, 4.0, max(q, 0.6) if bulge < 1 else q, theta)
    return image
