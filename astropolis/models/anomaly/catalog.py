"""Known extended objects: OpenNGC galaxies and nebulae (shipped in `pyongc`), read offline.

A catalogued galaxy is not what a reviewer should be woken for: it is large, rare in a star field and always
"unusual" to a model of point sources, and the network points at such galaxies on purpose. Sources inside the
padded ellipse of an OpenNGC galaxy, planetary nebula, nebula or globular cluster are set aside as
"catalogued" before scoring (open clusters and associations are not: their stars are ordinary stars).
"""

from __future__ import annotations

import math
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from astropolis.models.anomaly.features import Sources

EXTENDED_TYPES = ("G", "GPair", "GTrpl", "GGroup", "PN", "Neb", "HII", "EmN", "RfN", "SNR", "GCl", "Cl+N")
PAD = 1.5  # the D25 ellipse grown by this factor (discs and haloes reach past it in deep frames)
MIN_RADIUS_ARCSEC = 10.0


@dataclass(frozen=True)
class KnownObjects:
    """Catalogued extended objects as parallel arrays (ICRS degrees, semi-axes in arcsec, PA in degrees)."""

    ra_deg: np.ndarray
    dec_deg: np.ndarray
    semi_major_arcsec: np.ndarray
    semi_minor_arcsec: np.ndarray
    pa_deg: np.ndarray


@lru_cache(maxsize=1)
def known_objects() -> KnownObjects:
    """Every OpenNGC object of EXTENDED_TYPES with a size, loaded once per process (read-only, offline)."""
    from pyongc import DBPATH

    marks = ",".join("?" * len(EXTENDED_TYPES))
    with closing(sqlite3.connect(f"file:{DBPATH}?mode=ro", uri=True)) as connection:
        rows = connection.execute(
            f"SELECT ra, dec, majax, minax, pa FROM objects WHERE type IN ({marks}) "
            "AND ra IS NOT NULL AND majax IS NOT NULL ORDER BY id",
            EXTENDED_TYPES,
        ).fetchall()
    table = np.array([(ra, dec, major, minor if minor else major, pa or 0.0) for ra, dec, major, minor, pa in rows])
    return KnownObjects(
        ra_deg=np.degrees(table[:, 0]),
        dec_deg=np.degrees(table[:, 1]),
        semi_major_arcsec=table[:, 2] * 30.0,
        semi_minor_arcsec=table[:, 3] * 30.0,
        pa_deg=table[:, 4],
    )


def catalogued(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    """Whether each position lies inside the padded ellipse of a known extended object."""
    ra_deg, dec_deg = np.atleast_1d(ra_deg), np.atleast_1d(dec_deg)
    inside = np.zeros(ra_deg.size, dtype=bool)
    if ra_deg.size == 0:
        return inside
    known = known_objects()
    # Only objects near the sources: a cheap box in declination, then the exact test.
    reach = (PAD * known.semi_major_arcsec + MIN_RADIUS_ARCSEC) / 3600.0
    near = (known.dec_deg + reach >= dec_deg.min()) & (known.dec_deg - reach <= dec_deg.max())
    for index in np.flatnonzero(near):
        ra0, dec0 = known.ra_deg[index], known.dec_deg[index]
        east = ((ra_deg - ra0 + 180.0) % 360.0 - 180.0) * math.cos(math.radians(dec0)) * 3600.0
        north = (dec_deg - dec0) * 3600.0
        pa = math.radians(known.pa_deg[index])
        along = east * math.sin(pa) + north * math.cos(pa)
        across = east * math.cos(pa) - north * math.sin(pa)
        major = max(PAD * known.semi_major_arcsec[index], MIN_RADIUS_ARCSEC)
        minor = max(PAD * known.semi_minor_arcsec[index], MIN_RADIUS_ARCSEC)
        inside |= (along / major) ** 2 + (across / minor) ** 2 <= 1.0
    return inside


def without_catalogued(sources: Sources, wcs: Any) -> Sources:
    """Sources with their sky positions (from the frame's celestial `wcs`), less those inside a known object."""
    if len(sources) == 0:
        return sources.located(np.zeros(0), np.zeros(0))
    ra, dec = wcs.pixel_to_world_values(sources.x, sources.y)
    located = sources.located(np.asarray(ra) % 360.0, np.asarray(dec))
    return located.without(catalogued(located.ra_deg, located.dec_deg), "catalogued")
