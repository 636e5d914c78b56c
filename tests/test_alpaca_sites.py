"""`astropolis sites up/status/down` against real alpaca-simulators processes on free loopback ports, the demo
sky's transients, fault switches and the dead site."""

from __future__ import annotations

import io
import json
import math
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from astropy.io import fits
from astropy.wcs import WCS
from typer.testing import CliRunner

from astropolis.agent.cli import app
from astropolis.lake.blobs import BlobStore
from astropolis.lake.clock import ManualClock
from astropolis.tools.drivers import CommandJournal, ExposureRequest
from astropolis.tools.drivers.alpaca import AlpacaDriver
from astropolis.tools.errors import DriverError, OperatorError
from astropolis.tools.simulators.alpaca import (
    AlpacaSimulators,
    SimulatorRecord,
    SimulatorState,
    add_transient,
    simulator_config,
)
from astropolis.tools.simulators.catalogue import StarCatalogue
from astropolis.tools.sites import Site, demo_sites

runner = CliRunner()
NIGHT = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)  # deep night at La Palma


def free_base_port(count: int = 3) -> int:
    """The first of `count` consecutive loopback ports nothing listens on."""
    for _ in range(50):
        with closing(socket.socket()) as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + count > 65000:
            continue
        sockets = []
        try:
            for port in range(base, base + count):
                taken = socket.socket()
                sockets.append(taken)
                taken.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for taken in sockets:
                taken.close()
    raise RuntimeError("no free run of loopback ports")


@dataclass
class Demo:
    """The module's demo network: its data directory, ports and the environment the CLI runs in."""

    home: Path
    base_port: int
    env: dict[str, str]

    def cli(self, *args: str, code: int = 0) -> Any:
        """Run `astropolis ARGS --json` and return its JSON document."""
        result = runner.invoke(app, [*args, "--json"], env=self.env)
        assert result.exit_code == code, f"{args} -> {result.exit_code}\n{result.stdout}\n{result.stderr}"
        return json.loads(result.stdout)

    @property
    def simulators(self) -> AlpacaSimulators:
        return AlpacaSimulators(self.home)

    def site(self, name: str) -> Site:
        return demo_sites("alpaca", base_port=self.base_port).get(name)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    home = tmp_path_factory.mktemp("sites") / "home"
    made = Demo(home, free_base_port(), {"ASTROPOLIS_HOME": str(home), "ASTROPOLIS_ACTOR": "person:tester"})
    try:
        yield made
    finally:
        runner.invoke(app, ["sites", "down"], env=made.env)


def _by_site(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["site"]: entry for entry in document["sites"]}


def _driver(demo: Demo, name: str, tmp_path: Path, clock: ManualClock | None = None) -> AlpacaDriver:
    journal = CommandJournal(f"sqlite:///{tmp_path / 'commands.db'}")
    return AlpacaDriver(
        demo.site(name), journal=journal, frames=BlobStore(tmp_path / "lake"), clock=clock or ManualClock(NIGHT)
    )


def _zenith(site: Site, when: datetime) -> tuple[float, float]:
    from astropy import units as u
    from astropy.coordinates import AltAz, SkyCoord
    from astropy.time import Time

    from astropolis.tools.visibility import configure_offline

    configure_offline()
    frame = AltAz(obstime=Time(when), location=site.location())
    icrs = SkyCoord(alt=80 * u.deg, az=180 * u.deg, frame=frame).icrs
    return float(icrs.ra.deg), float(icrs.dec.deg)


# ------------------------------------------------------------------------------------- no processes needed
def test_simulator_config_renders_the_sites_plate_scale_and_sky(tmp_path: Path) -> None:
    sky = tmp_path / "sky.db"
    for site in demo_sites("alpaca"):
        config = simulator_config(site, sky, instance="abc123")
        camera, telescope = config["devices"]["camera"][0], config["devices"]["telescope"][0]
        # cabaret's plate scale: 2 atan(pitch / 2f), pitch in um and focal length in m.
        scale = math.degrees(2 * math.atan(camera["pixelsizex"] * 1e-6 / (2 * telescope["focallength"]))) * 3600
        assert scale == pytest.approx(site.pixel_scale_arcsec, rel=1e-6)
        assert (camera["numx"], camera["numy"]) == (site.camera.width_px, site.camera.height_px)
        assert camera["exposuremin"] == 0.001 and camera["rotation"] == 0.0
        assert (telescope["sitelatitude"], telescope["sitelongitude"]) == (site.latitude_deg, site.longitude_deg)
        assert telescope["equatorialsystem"] == 2 and "abc123" in telescope["name"]
        assert config["devices"]["filterwheel"][0]["names"] == list(site.filters)
        assert config["tap_source"] == str(sky) and Path(config["tap_source"]).is_absolute()
        assert config["sunlight"] is False
        assert yaml.safe_load(yaml.safe_dump(config)) == config
    with pytest.raises(OperatorError, match=r"\.db"):
        simulator_config(demo_sites("alpaca").get("chile"), tmp_path / "sky.csv")  # cabaret would go online


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path: Path) -> None:
    (tmp_path / "sky.db").touch()
    with closing(socket.socket()) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        site = demo_sites("alpaca", base_port=int(taken.getsockname()[1])).get("lapalma")
        with pytest.raises(OperatorError, match="already in use"):
            AlpacaSimulators(tmp_path / "home").start(site, StarCatalogue(tmp_path / "sky.db"))
    assert AlpacaSimulators(tmp_path / "home").records() == {}


def test_cli_needs_a_registry(home: Path) -> None:
    result = runner.invoke(app, ["sites", "up"])
    assert result.exit_code == 2 and "--demo or --sites" in result.stderr
    result = runner.invoke(app, ["sites", "status", "--json"])
    assert result.exit_code == 2 and "sites up --demo" in json.loads(result.stdout)["error"]["message"]
    assert json.loads(runner.invoke(app, ["sites", "down", "--json"]).stdout) == {"simulators": []}


# ------------------------------------------------------------------------------- the demo network, for real
@pytest.mark.slow
def test_up_starts_three_connected_sites_and_is_idempotent(demo: Demo) -> None:
    started = time.perf_counter()
    first = _by_site(demo.cli("sites", "up", "--demo", "--base-port", str(demo.base_port)))
    took = time.perf_counter() - started
    assert set(first) == {"lapalma", "chile", "siding-spring"}
    for index, name in enumerate(["lapalma", "chile", "siding-spring"]):
        entry = first[name]
        assert entry["action"] == "started" and entry["error"] is None
        assert entry["endpoint"] == f"127.0.0.1:{demo.base_port + index}" and entry["process"]["alive"]
        status = entry["status"]
        assert status["connected"] and status["safe"] and status["parked"] and not status["slewing"]
        assert status["camera_state"] == "idle" and status["weather"]["cloud_cover_pct"] == 0.0
    records = demo.simulators.records()
    assert {name: r.pid for name, r in records.items()} == {n: e["process"]["pid"] for n, e in first.items()}
    assert (demo.home / "sky" / "demo-sky.db").is_file() and (demo.home / "sites" / "registry.toml").is_file()
    print(f"sites up (3 simulators, sky built): {took:.1f} s; start-up {[r.startup_s for r in records.values()]}")
    again = _by_site(demo.cli("sites", "up", "--demo", "--base-port", str(demo.base_port)))
    assert {n: (e["action"], e["process"]["pid"]) for n, e in again.items()} == {
        n: ("running", e["process"]["pid"]) for n, e in first.items()
    }


@pytest.mark.slow
def test_status_shows_the_fault_switches(demo: Demo, tmp_path: Path) -> None:
    simulators = demo.simulators
    simulators.set_safe("lapalma", False)
    simulators.set_cloud_cover("siding-spring", 45.0)
    simulators.set_weather("chile", wind_mps=20.0, humidity_pct=95.0)
    try:
        status = _by_site(demo.cli("sites", "status"))
        registry = tmp_path / "sites.toml"
        registry.write_text(demo_sites("alpaca", base_port=demo.base_port).to_toml())
        assert _by_site(demo.cli("sites", "status", "--sites", str(registry))).keys() == status.keys()
    finally:
        simulators.set_safe("lapalma", True)
        simulators.set_cloud_cover("siding-spring", 0.0)
        simulators.set_weather("chile", wind_mps=3.0, humidity_pct=50.0)
    assert status["lapalma"]["status"]["safe"] is False
    assert status["siding-spring"]["status"]["weather"]["cloud_cover_pct"] == pytest.approx(45.0)
    assert status["chile"]["status"]["weather"] == {"cloud_cover_pct": 0.0, "wind_mps": 20.0, "humidity_pct": 95.0}
    with pytest.raises(OperatorError, match=r"0\.\.100"):
        simulators.set_cloud_cover("chile", 140.0)


@pytest.mark.slow
def test_a_transient_appears_at_the_next_new_pointing(demo: Demo, tmp_path: Path) -> None:
    driver = _driver(demo, "lapalma", tmp_path)
    driver.connect()
    ra, dec = _zenith(driver.site, NIGHT)

    def expose(command_id: str) -> tuple[np.ndarray, WCS]:
        request = ExposureRequest(command_id=command_id, ra_deg=ra, dec_deg=dec, exposure_s=1.0, filter="R")
        with fits.open(io.BytesIO(driver.expose(request).fits)) as hdul:
            return hdul[0].data.astype(np.float64), WCS(hdul[0].header, fix=False)

    def nearest_source_px(data: np.ndarray, wcs: WCS) -> float:
        import sep

        background = sep.Background(data)
        found = sep.extract(data - background, 10, err=background.globalrms)
        x, y = wcs.world_to_pixel_values(ra, dec)
        return float(np.min(np.hypot(found["x"] - x, found["y"] - y), initial=np.inf))

    before, before_wcs = expose("transient-before")
    add_transient(StarCatalogue(demo.home / "sky" / "demo-sky.db"), ra, dec, 9.0, label="SN test")
    # The exact same pointing and exposure: the simulator hands back its cached frame, noise and all.
    pointing = driver.journal.completed("lapalma", "transient-before")
    assert pointing is not None
    driver._slew(pointing.detail["ra_deg"], pointing.detail["dec_deg"])
    assert np.array_equal(driver._expose_pixels(1.0, "R"), before)
    after, after_wcs = expose("transient-after")  # a new command dithers: a new pointing, a fresh render
    assert nearest_source_px(before, before_wcs) > 10 and nearest_source_px(after, after_wcs) < 2
    driver.close()
    driver.journal.close()


@pytest.mark.slow
def test_a_dead_site_fails_fast_and_up_revives_only_it(demo: Demo, tmp_path: Path) -> None:
    simulators = demo.simulators
    pids = {name: record.pid for name, record in simulators.records().items()}
    simulators.kill("chile")
    started = time.perf_counter()
    status = _by_site(demo.cli("sites", "status"))
    assert time.perf_counter() - started < 5.0
    assert status["chile"]["process"]["alive"] is False and status["chile"]["process"]["pid"] == pids["chile"]
    assert status["chile"]["status"] is None and "chile" in status["chile"]["error"]
    assert "cannot reach" in status["chile"]["error"]
    assert status["lapalma"]["error"] is None and status["siding-spring"]["status"]["connected"]
    driver = _driver(demo, "chile", tmp_path)
    for call in (driver.connect, driver.status, lambda: driver.expose(_any_request(driver))):
        started = time.perf_counter()
        with pytest.raises(DriverError, match="chile"):
            call()
        assert time.perf_counter() - started < 2.0
    with pytest.raises(DriverError, match="chile"):
        simulators.set_safe("chile", True)
    driver.close()
    driver.journal.close()
    revived = _by_site(demo.cli("sites", "up", "--demo", "--base-port", str(demo.base_port)))
    assert {n: e["action"] for n, e in revived.items()} == {
        "lapalma": "running",
        "chile": "restarted",
        "siding-spring": "running",
    }
    assert revived["lapalma"]["process"]["pid"] == pids["lapalma"]
    assert revived["chile"]["process"]["pid"] != pids["chile"] and revived["chile"]["status"]["connected"]


def _any_request(driver: AlpacaDriver) -> ExposureRequest:
    ra, dec = _zenith(driver.site, NIGHT)
    return ExposureRequest(command_id="dead-1", ra_deg=ra, dec_deg=dec, exposure_s=1.0)


@pytest.mark.slow
def test_down_stops_exactly_the_recorded_processes(demo: Demo) -> None:
    simulators = demo.simulators
    records = simulators.records()
    decoy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        # A stale record whose PID now belongs to someone else must not be signalled.
        ghost = SimulatorRecord(
            **{**records["chile"].model_dump(), "site": "ghost", "pid": decoy.pid, "config": Path("/nonexistent.yaml")}
        )
        state = SimulatorState(simulators={**records, "ghost": ghost})
        simulators.state_file.write_text(state.model_dump_json())
        stopped = {entry["site"]: entry for entry in demo.cli("sites", "down")["simulators"]}
        assert {name: entry["action"] for name, entry in stopped.items()} == {
            **{name: "stopped" for name in records},
            "ghost": "already gone",
        }
        assert decoy.poll() is None, "down signalled a process that was not its simulator"
        assert not any(simulators.alive(record) for record in records.values())
    finally:
        decoy.kill()
        decoy.wait()
    assert simulators.records() == {} and demo.cli("sites", "down") == {"simulators": []}
    after = _by_site(demo.cli("sites", "status"))
    assert all(entry["status"] is None and entry["process"] is None for entry in after.values())
