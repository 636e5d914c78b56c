"""An in-process fake site for unit tests and the conformance suite: a deterministic sky, instant slews, and
fault switches (unsafe, cloud, wind, camera error, dead). Never used where an issue asks for a real simulator."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from astropolis.tools.drivers.base import Driver, SiteStatus, WeatherReading
from astropolis.tools.errors import DriverError

_CELL_DEG = 0.05


class FakeDriver(Driver):
    """A site whose devices live in this process."""

    safe: bool = True
    cloud_cover_pct: float = 0.0
    wind_mps: float = 3.0
    humidity_pct: float = 50.0
    dead: bool = False
    fail_next_exposure: bool = False

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.connected = False
        self.parked = True
        self.ra_deg: float | None = None
        self.dec_deg: float | None = None
        self.exposures_taken = 0
        self.camera_error = False
        self.new_sources: list[tuple[float, float, float]] = []  # (ra_deg, dec_deg, mag) added to the sky

    def _alive(self) -> None:
        if self.dead:
            raise DriverError(f"{self.site.name}: no answer from the devices (connection refused)")

    def _connect(self) -> None:
        self._alive()
        self.connected = True

    def _status(self) -> SiteStatus:
        self._alive()
        return SiteStatus(
            site=self.site.name,
            connected=self.connected,
            safe=self.safe,
            weather=WeatherReading(
                cloud_cover_pct=self.cloud_cover_pct, wind_mps=self.wind_mps, humidity_pct=self.humidity_pct
            ),
            parked=self.parked,
            slewing=False,
            tracking=not self.parked,
            ra_deg=self.ra_deg,
            dec_deg=self.dec_deg,
            camera_state="error" if self.camera_error else "idle",
        )

    def _unpark(self) -> None:
        self._alive()
        self.parked = False

    def _slew(self, ra_deg: float, dec_deg: float) -> None:
        self._alive()
        if self.parked:
            raise DriverError(f"{self.site.name}: mount is parked")
        self.ra_deg, self.dec_deg = ra_deg, dec_deg

    def _expose_pixels(self, exposure_s: float, filter_name: str | None) -> np.ndarray:
        self._alive()
        if self.fail_next_exposure:
            self.fail_next_exposure = False
            self.camera_error = True
            raise DriverError(f"{self.site.name}: camera reported an error during readout")
        self.camera_error = False
        assert self.ra_deg is not None and self.dec_deg is not None
        self.exposures_taken += 1
        return render_sky(
            self.site, self.ra_deg, self.dec_deg, exposure_s, seed=self.exposures_taken, extra=self.new_sources
        )

    def _abort(self) -> None:
        self.camera_error = False

    def _park(self) -> None:
        self._alive()
        self.parked = True


def sky_stars(ra_deg: float, dec_deg: float, radius_deg: float) -> list[tuple[float, float, float]]:
    """The fake sky's stars near a position: (ra_deg, dec_deg, mag), fixed on the sky (seeded per 0.05 deg
    cell), mag = -2.5 log10(counts per second)."""
    stars = []
    cos_dec = max(math.cos(math.radians(dec_deg)), 1e-3)
    span = radius_deg / cos_dec
    for cell_dec in range(
        math.floor((dec_deg - radius_deg) / _CELL_DEG), math.ceil((dec_deg + radius_deg) / _CELL_DEG) + 1
    ):
        for cell_ra in range(math.floor((ra_deg - span) / _CELL_DEG), math.ceil((ra_deg + span) / _CELL_DEG) + 1):
            cell_rng = np.random.default_rng([cell_ra % 7200 + 10_000, cell_dec + 2000])
            for _ in range(cell_rng.poisson(3)):
                star_ra = ((cell_ra + cell_rng.random()) * _CELL_DEG) % 360.0
                star_dec = (cell_dec + cell_rng.random()) * _CELL_DEG
                rate = 10 ** cell_rng.uniform(2.5, 5.0)
                stars.append((star_ra, star_dec, -2.5 * math.log10(rate)))
    return stars


def render_sky(
    site: object,
    ra_deg: float,
    dec_deg: float,
    exposure_s: float,
    *,
    seed: int,
    extra: Sequence[tuple[float, float, float]] = (),
) -> np.ndarray:
    """The fake sky's stars rendered through a TAN projection with east left and north up, plus sky background
    and noise."""
    from astropolis.tools.sites import Site

    assert isinstance(site, Site)
    width, height = site.camera.width_px, site.camera.height_px
    scale = site.pixel_scale_arcsec / 3600.0
    rng = np.random.default_rng(seed)
    image = rng.normal(1000.0 + 20.0 * exposure_s, 8.0, (height, width))
    for star_ra, star_dec, mag in [*sky_stars(ra_deg, dec_deg, max(width, height) * scale / 2 * 1.5), *extra]:
        xi, eta = _gnomonic(star_ra, star_dec, ra_deg, dec_deg)
        px = (width - 1) / 2.0 - xi / scale  # east (larger RA) to the left
        py = (height - 1) / 2.0 + eta / scale
        if -10 < px < width + 10 and -10 < py < height + 10:
            _add_star(image, px, py, 10 ** (-0.4 * mag) * exposure_s, sigma=1.2)
    return np.clip(image, 0, 65535).astype(np.uint16)


def _add_star(image: np.ndarray, px: float, py: float, flux: float, *, sigma: float) -> None:
    """Add a Gaussian star to a 21x21 box around (px, py)."""
    x0, y0 = round(px) - 10, round(py) - 10
    y, x = np.mgrid[y0 : y0 + 21, x0 : x0 + 21]
    stamp = flux / (2 * math.pi * sigma**2) * np.exp(-((x - px) ** 2 + (y - py) ** 2) / (2 * sigma**2))
    ys, xs = slice(max(y0, 0), min(y0 + 21, image.shape[0])), slice(max(x0, 0), min(x0 + 21, image.shape[1]))
    if ys.start < ys.stop and xs.start < xs.stop:
        image[ys, xs] += stamp[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]


def _gnomonic(ra: float, dec: float, ra0: float, dec0: float) -> tuple[float, float]:
    """Standard coordinates (degrees) of (ra, dec) about the tangent point (ra0, dec0)."""
    ra_r, dec_r, ra0_r, dec0_r = map(math.radians, (ra, dec, ra0, dec0))
    cos_c = math.sin(dec0_r) * math.sin(dec_r) + math.cos(dec0_r) * math.cos(dec_r) * math.cos(ra_r - ra0_r)
    xi = math.cos(dec_r) * math.sin(ra_r - ra0_r) / cos_c
    eta = (math.cos(dec0_r) * math.sin(dec_r) - math.sin(dec0_r) * math.cos(dec_r) * math.cos(ra_r - ra0_r)) / cos_c
    return math.degrees(xi), math.degrees(eta)
