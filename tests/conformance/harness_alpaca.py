"""The Alpaca backend: AlpacaDriver against one real alpaca-simulators process for the 'lapalma' demo site, on a
free loopback port, rendering a star catalogue built in tmp with a faint field at the conformance target."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import numpy as np
import requests

from astropolis.lake.blobs import BlobStore
from astropolis.lake.clock import ManualClock
from astropolis.tools.drivers import CommandJournal
from astropolis.tools.drivers.alpaca import AlpacaDriver
from astropolis.tools.simulators.alpaca import AlpacaSimulators
from astropolis.tools.simulators.catalogue import StarCatalogue
from astropolis.tools.sites import Site, demo_sites

from .harness import zenith_target

SITE = "lapalma"


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class AlpacaHarness:
    """Fault switches go to the simulator over its HTTP API; the dead site is a SIGKILL of its recorded PID."""

    def __init__(self, driver: AlpacaDriver, simulators: AlpacaSimulators, sky: StarCatalogue) -> None:
        self.driver = driver
        self.simulators = simulators
        self.sky = sky
        self.watchers: list[threading.Thread] = []

    def set_safe(self, safe: bool) -> None:
        self.simulators.set_safe(SITE, safe)

    def set_cloud_cover(self, percent: float) -> None:
        self.simulators.set_cloud_cover(SITE, percent)

    def break_camera(self) -> None:
        """Break the camera now and mend it once the next exposure has failed (a one-shot fault)."""
        self.simulators.set_camera_fault(SITE, True)
        driver = self.driver
        original = driver._expose_pixels

        def once(exposure_s: float, filter_name: str | None) -> np.ndarray:
            try:
                return original(exposure_s, filter_name)
            finally:
                self.simulators.set_camera_fault(SITE, False)
                driver._expose_pixels = original  # type: ignore[method-assign]

        driver._expose_pixels = once  # type: ignore[method-assign]

    def kill_during_exposure(self) -> None:
        """Watch the camera over HTTP and SIGKILL the simulator as soon as it is exposing."""
        record = self.simulators.record(SITE)
        url = f"http://{record.host}:{record.port}/api/v1/camera/{record.camera_device}/camerastate"

        def watch() -> None:
            with requests.Session() as http:
                http.trust_env = False
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    try:
                        exposing = http.get(url, timeout=2).json()["Value"] == 2  # CameraStates.EXPOSING
                    except requests.RequestException:
                        return  # already gone
                    if exposing:
                        self.simulators.kill(SITE)
                        return
                    time.sleep(0.02)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        self.watchers.append(watcher)

    def expected_stars(self, ra_deg: float, dec_deg: float, radius_deg: float) -> list[tuple[float, float, float]]:
        return [(s.ra_deg, s.dec_deg, s.mag) for s in self.sky.cone(ra_deg, dec_deg, radius_deg)]


def lapalma_on(port: int) -> Site:
    """The demo 'lapalma' site, served on `port`."""
    site = demo_sites("alpaca").get(SITE)
    return site.model_copy(update={"driver": site.driver.model_copy(update={"port": port})})


@contextmanager
def make_harness(tmp_path: Path, clock: ManualClock) -> Iterator[AlpacaHarness]:
    site = lapalma_on(free_port())
    journal = CommandJournal(f"sqlite:///{tmp_path / 'commands.db'}", clock=clock)
    driver = AlpacaDriver(site, journal=journal, frames=BlobStore(tmp_path / "lake"), clock=clock)
    sky = StarCatalogue.build(tmp_path / "sky.db", fields=[zenith_target(driver)], field_radius_deg=0.2)
    simulators = AlpacaSimulators(tmp_path / "home")
    simulators.start(site, sky)
    harness = AlpacaHarness(driver, simulators, sky)
    try:
        driver.connect()
        yield harness
    finally:
        for watcher in harness.watchers:
            watcher.join(timeout=10)
        driver.close()
        simulators.down()
        journal.close()
