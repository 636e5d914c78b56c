"""The INDI backend: a real indiserver (Debian's indi-bin) per test, running the telescope, CCD and weather
simulators and INDI's Weather Watcher on a free loopback port, rendering a StarCatalogue built for the test
(Hipparcos plus a faint field around the conformance target). Started and stopped by PID."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from astropolis.lake.blobs import BlobStore
from astropolis.lake.clock import ManualClock
from astropolis.tools.drivers import CommandJournal
from astropolis.tools.drivers.indi import IndiDriver
from astropolis.tools.simulators.catalogue import StarCatalogue
from astropolis.tools.simulators.indi import IndiSimulator, free_port
from astropolis.tools.sites import demo_sites

from .harness import zenith_target


class IndiHarness:
    """Fault switches act on the simulated devices through the server, never on the driver."""

    def __init__(self, driver: IndiDriver, simulator: IndiSimulator, catalogue: StarCatalogue) -> None:
        self.driver = driver
        self.simulator = simulator
        self.catalogue = catalogue

    def set_safe(self, safe: bool) -> None:
        self.simulator.set_safe(safe)

    def set_cloud_cover(self, percent: float) -> None:
        self.simulator.set_cloud_cover(percent)

    def break_camera(self) -> None:
        self.simulator.break_camera()

    def kill_during_exposure(self) -> None:
        self.simulator.kill_during_exposure()

    def expected_stars(self, ra_deg: float, dec_deg: float, radius_deg: float) -> list[tuple[float, float, float]]:
        # The simulated camera reaches magnitude 20; every catalogue star in the field is drawn.
        return [(s.ra_deg, s.dec_deg, s.mag) for s in self.catalogue.cone(ra_deg, dec_deg, radius_deg, max_mag=20.0)]


@contextmanager
def make_harness(tmp_path: Path, clock: ManualClock) -> Iterator[IndiHarness]:
    demo = demo_sites("indi").get("lapalma")
    site = demo.model_copy(update={"driver": demo.driver.model_copy(update={"port": free_port()})})
    journal = CommandJournal(f"sqlite:///{tmp_path / 'commands.db'}", clock=clock)
    driver = IndiDriver(site, journal=journal, frames=BlobStore(tmp_path / "lake"), clock=clock)
    catalogue = StarCatalogue.build(tmp_path / "sky.db", fields=[zenith_target(driver)], field_radius_deg=0.3)
    simulator = IndiSimulator(site, catalogue, tmp_path / "indi")
    try:
        simulator.start()
        driver.connect()
        yield IndiHarness(driver, simulator, catalogue)
    finally:
        driver.close()
        journal.close()
        simulator.stop()
