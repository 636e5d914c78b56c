"""What every driver backend provides to the conformance suite: a connected driver plus fault switches.

A backend is a module `harness_<name>.py` in this folder with `make_harness(tmp_path, clock) -> Harness`
(a context manager that starts and stops whatever it needs, by PID). Every module present is run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from astropolis.lake.clock import ManualClock
from astropolis.tools.drivers import Driver

# Deep night at La Palma (Sun at about -82 deg); every backend's harness drives the 'lapalma' demo site.
NIGHT = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


class Harness(Protocol):
    """A driver under test and the switches that break its simulated hardware."""

    driver: Driver

    def set_safe(self, safe: bool) -> None:
        """Make the safety monitor report safe or unsafe."""

    def set_cloud_cover(self, percent: float) -> None:
        """Set the weather station's cloud cover."""

    def break_camera(self) -> None:
        """Make the next exposure end with the camera in an error state."""

    def kill_during_exposure(self) -> None:
        """Arrange for the device process to die while the next exposure is in progress."""

    def expected_stars(
        self, ra_deg: float, dec_deg: float, radius_deg: float
    ) -> list[tuple[float, float, float]] | None:
        """(ra, dec, mag) of stars the camera should render in this field, or None if the sky is not a catalogue."""


def backends() -> list[str]:
    """Names of the backends whose harness module is present."""
    return sorted(p.stem.removeprefix("harness_") for p in Path(__file__).parent.glob("harness_*.py"))


def night_clock() -> ManualClock:
    """A run clock at NIGHT."""
    return ManualClock(NIGHT)


def zenith_target(driver: Driver) -> tuple[float, float]:
    """An ICRS position near the zenith of the driver's site at the clock's time (always observable)."""
    from astropy import units as u
    from astropy.coordinates import AltAz, SkyCoord
    from astropy.time import Time

    from astropolis.tools.visibility import configure_offline

    configure_offline()
    frame = AltAz(obstime=Time(driver.clock.now()), location=driver.site.location())
    icrs = SkyCoord(alt=80 * u.deg, az=180 * u.deg, frame=frame).icrs
    return float(icrs.ra.deg), float(icrs.dec.deg)
