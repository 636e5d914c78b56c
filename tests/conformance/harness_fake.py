"""The in-process fake backend (fast; the unit-test stand-in for real simulators)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from astropolis.lake.blobs import BlobStore
from astropolis.lake.clock import ManualClock
from astropolis.tools.drivers import CommandJournal
from astropolis.tools.drivers.fake import FakeDriver, sky_stars
from astropolis.tools.sites import demo_sites


class FakeHarness:
    """Fault switches map to the fake's attributes."""

    def __init__(self, driver: FakeDriver) -> None:
        self.driver = driver

    def set_safe(self, safe: bool) -> None:
        self.driver.safe = safe

    def set_cloud_cover(self, percent: float) -> None:
        self.driver.cloud_cover_pct = percent

    def break_camera(self) -> None:
        self.driver.fail_next_exposure = True

    def kill_during_exposure(self) -> None:
        driver = self.driver
        original = driver._expose_pixels

        def dying(exposure_s: float, filter_name: str | None):  # type: ignore[no-untyped-def]
            driver.dead = True  # the process dies with the shutter open
            return original(exposure_s, filter_name)

        driver._expose_pixels = dying  # type: ignore[method-assign]

    def expected_stars(self, ra_deg: float, dec_deg: float, radius_deg: float) -> list[tuple[float, float, float]]:
        return sky_stars(ra_deg, dec_deg, radius_deg)


@contextmanager
def make_harness(tmp_path: Path, clock: ManualClock) -> Iterator[FakeHarness]:
    site = demo_sites("fake").get("lapalma")
    journal = CommandJournal(f"sqlite:///{tmp_path / 'commands.db'}", clock=clock)
    driver = FakeDriver(site, journal=journal, frames=BlobStore(tmp_path / "lake"), clock=clock)
    driver.connect()
    try:
        yield FakeHarness(driver)
    finally:
        driver.close()
        journal.close()
