"""alpaca-simulators as telescope sites: one process per site on 127.0.0.1 with a config generated from the Site
model, health-checked, recorded by PID in a state file under the data directory and stopped by exactly that
PID; fault switches through the simulator's own HTTP API; and the demo sky its cameras render.

Layout under `home` (ASTROPOLIS_HOME):

    sky/demo-sky.db                    the demo star catalogue (built on first use, only ever added to)
    sites/simulators.json              the processes we started: site, PID, port, config, log
    sites/<site>/simulator.yaml, .log  one simulator's config and output
    sites/astropy/astropy.cfg          keeps astropy inside the simulators off the network

The simulator renders each new pointing from a fresh query of the catalogue file; only an exact repeat of
pointing, exposure time and camera settings returns a cached frame (noise included). The drivers dither every
exposure, so a source added with `add_transient` shows up in the next exposure of its field.
"""

from __future__ import annotations

import fcntl
import math
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import requests
import yaml
from pydantic import BaseModel, ConfigDict, Field

from astropolis.tools.errors import DriverError, OperatorError
from astropolis.tools.simulators.catalogue import StarCatalogue
from astropolis.tools.sites import Site

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 3.0
SLEW_RATE_DEG_S = 360.0  # simulated slews take a poll or two: the demo is about the network, not the mount
CCD_SET_POINT_C = -20.0
DEMO_SKY = Path("sky") / "demo-sky.db"
# Fields with seeded faint stars in the demo sky: bright galaxies spread over the sky (ICRS, degrees), so
# every demo site has some above its horizon at any hour of the night.
DEMO_FIELDS: tuple[tuple[str, float, float], ...] = (
    ("M31", 10.6847, 41.2690),
    ("NGC253", 11.8880, -25.2882),
    ("M33", 23.4621, 30.6599),
    ("M77", 40.6696, -0.0133),
    ("NGC1365", 53.4016, -36.1404),
    ("M81", 148.8882, 69.0653),
    ("M104", 189.9976, -11.6231),
    ("NGC5128", 201.3651, -43.0191),
    ("M51", 202.4696, 47.1952),
    ("M83", 204.2538, -29.8658),
    ("M101", 210.8024, 54.3488),
    ("NGC7793", 359.4576, -32.5910),
)
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_ASTROPY_OFFLINE = "[utils.data]\nallow_internet = False\n\n[utils.iers.iers]\nauto_download = False\n"


class SimulatorRecord(BaseModel):
    """One simulator process we started."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    site: str = Field(description="Site name.")
    pid: int = Field(description="Process id; only a process whose command line names `config` is ever signalled.")
    host: str = Field(description="Loopback address it listens on.")
    port: int = Field(description="Port it listens on.")
    config: Path = Field(description="Absolute path of its YAML config.")
    log: Path = Field(description="Its stdout and stderr.")
    instance: str = Field(description="Random token in its mount's name: proves the port answers with our process.")
    telescope_device: int = Field(description="Alpaca device number of its mount.")
    camera_device: int = Field(description="Alpaca device number of its camera.")
    started_at: datetime = Field(description="UTC start time.")
    startup_s: float = Field(description="Seconds from spawn to a healthy answer.")


class SimulatorState(BaseModel):
    """The state file: every simulator we started and have not stopped."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    simulators: dict[str, SimulatorRecord] = Field(default_factory=dict)


class UpResult(BaseModel):
    """What `up` did for one site."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    record: SimulatorRecord
    action: Literal["started", "running", "restarted"]


def demo_sky(home: Path) -> StarCatalogue:
    """The demo star catalogue under `home`, built (Hipparcos-2 plus faint stars in DEMO_FIELDS) if absent."""
    path = Path(home).absolute() / DEMO_SKY
    if not path.is_file():
        building = path.with_name(f".building-{uuid.uuid4().hex}.db")  # renamed into place: never half a sky
        StarCatalogue.build(building, fields=[(ra, dec) for _, ra, dec in DEMO_FIELDS])
        building.replace(path)
    return StarCatalogue(path)


def add_transient(sky: StarCatalogue, ra_deg: float, dec_deg: float, mag: float, *, label: str) -> None:
    """Put a new star on the sky; every simulator rendering `sky` shows it from its next new pointing on."""
    if not (-90 <= dec_deg <= 90 and -2 <= mag <= 25):
        raise OperatorError(f"transient {label!r}: Dec must be within -90..90 and magnitude within -2..25")
    sky.add_source(ra_deg, dec_deg, mag, label=label)


def simulator_config(site: Site, sky: Path, *, instance: str = "") -> dict[str, Any]:
    """The alpaca-simulators YAML config of one site: its location, optics and camera (so the rendered plate
    scale is `site.pixel_scale_arcsec`), its filters, a fast mount, no sunlight, and the local sky catalogue."""
    sky = Path(sky).absolute()
    if sky.suffix not in {".db", ".sqlite", ".sqlite3"}:
        # cabaret treats any other tap_source as the URL of a TAP service and would go online.
        raise OperatorError(f"{sky}: the sky catalogue file must end in .db, .sqlite or .sqlite3")
    template = yaml.safe_load((resources.files("alpaca_simulators") / "config" / "template.yaml").read_text())
    devices = template["devices"]
    camera_number, telescope_number = _device_number(site, "camera"), _device_number(site, "telescope")
    optics, spec = site.optics, site.camera
    camera = {
        **devices["camera"][0],
        "name": f"{site.name} camera",
        "cameraxsize": spec.width_px,
        "cameraysize": spec.height_px,
        "numx": spec.width_px,
        "numy": spec.height_px,
        "startx": 0,
        "starty": 0,
        "binx": 1,
        "biny": 1,
        "pixelsizex": spec.pixel_um,
        "pixelsizey": spec.pixel_um,
        "rotation": 0.0,
        "exposuremin": max(0.001, spec.exposure_min_s),
        "exposuremax": spec.exposure_max_s,
        "cooleron": True,
        "ccdtemperature": CCD_SET_POINT_C,
        "setccdtemperature": CCD_SET_POINT_C,
    }
    pole = 90.0 if site.latitude_deg >= 0 else -90.0
    telescope = {
        **devices["telescope"][0],
        "name": f"{site.name} mount {instance}".strip(),
        "focallength": optics.focal_length_mm / 1000.0,  # metres (ASCOM), as cabaret wants
        "aperturediameter": optics.aperture_mm / 1000.0,
        "aperturearea": math.pi * (optics.aperture_mm / 2000.0) ** 2,
        "sitelatitude": site.latitude_deg,
        "sitelongitude": site.longitude_deg,
        "siteelevation": site.elevation_m,
        "equatorialsystem": 2,  # ASCOM equJ2000 (ICRS): what the camera renders the catalogue in
        "slew_rate": SLEW_RATE_DEG_S,
        "slewsettletime": 0.0,
        "atpark": True,
        "athome": False,
        "tracking": False,
        "rightascension": 0.0,
        "declination": pole,
        "parkrightascension": 0.0,
        "parkdeclination": pole,
    }
    filters = list(site.filters)
    return {
        **{key: value for key, value in template.items() if key != "devices"},
        "devices": {
            "camera": {camera_number: camera},
            "telescope": {telescope_number: telescope},
            "filterwheel": {0: {**devices["filterwheel"][0], "names": filters, "focusoffsets": [0] * len(filters)}},
            "focuser": {0: {**devices["focuser"][0], "position": 10_000}},  # the simulator's best focus
            "safetymonitor": {0: {**devices["safetymonitor"][0], "issafe": True}},
            "observingconditions": {
                0: {**devices["observingconditions"][0], "cloudcover": 0.0, "windspeed": 3.0, "humidity": 50.0}
            },
        },
        "tap_source": str(sky),
        "sunlight": False,
        "bad_tracking": False,
        "pointing_error_ra": 0.0,
        "pointing_error_dec": 0.0,
    }


def _device_number(site: Site, role: Literal["camera", "telescope"]) -> int:
    value = getattr(site.driver, role)
    if not value.isdigit():
        raise OperatorError(f"{site.name}: driver.{role} must be an Alpaca device number, not {value!r}")
    return int(value)


class AlpacaSimulators:
    """The alpaca-simulators processes of the sites under one data directory, and their fault switches.

    Switches take a site name and satisfy the night runner's `SiteControls` (set_safe, set_cloud_cover, kill).
    """

    def __init__(self, home: Path) -> None:
        self.home = Path(home).absolute()
        self.sites_dir = self.home / "sites"
        self.state_file = self.sites_dir / "simulators.json"

    # ------------------------------------------------------------------------------------ processes
    def records(self) -> dict[str, SimulatorRecord]:
        """Every simulator recorded as started (alive or not)."""
        if not self.state_file.is_file():
            return {}
        try:
            return SimulatorState.model_validate_json(self.state_file.read_text()).simulators
        except ValueError as error:  # pydantic's ValidationError is a ValueError
            raise OperatorError(f"{self.state_file}: unreadable simulator state ({error.__class__.__name__})") from None

    def record(self, site: str) -> SimulatorRecord:
        """The record of one site's simulator."""
        found = self.records().get(site)
        if found is None:
            raise OperatorError(f"{site}: no simulator recorded under {self.sites_dir}; start it with `sites up`")
        return found

    def alive(self, record: SimulatorRecord) -> bool:
        """True while the recorded PID is still that simulator (a reused PID is not)."""
        with suppress(ChildProcessError):
            os.waitpid(record.pid, os.WNOHANG)  # reap it if it is our own child that has exited
        proc = Path("/proc")
        if not proc.is_dir():
            try:
                os.kill(record.pid, 0)
            except OSError:
                return False
            return True
        try:
            arguments = (proc / str(record.pid) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return str(record.config).encode() in arguments

    def healthy(self, record: SimulatorRecord) -> bool:
        """True when the recorded port answers with this very simulator's mount."""
        try:
            url = f"http://{_url_host(record.host)}:{record.port}/api/v1/telescope/{record.telescope_device}/name"
            with _http() as http:
                response = http.get(url, timeout=HTTP_TIMEOUT_S)
            return response.ok and record.instance in str(response.json().get("Value", ""))
        except (requests.RequestException, ValueError):
            return False

    def up(self, sites: Iterable[Site], sky: StarCatalogue) -> list[UpResult]:
        """Start every site's simulator that is not already running healthy (idempotent). Every port is checked
        before anything starts; the processes then start side by side and each is waited for."""
        wanted = list(sites)
        with self._locked():
            results: dict[str, UpResult] = {}
            to_start: list[tuple[Site, SimulatorRecord | None]] = []
            for site in wanted:
                known = self.records().get(site.name)
                alive = known is not None and self.alive(known)
                if known is not None and alive and (known.host, known.port) != (site.driver.host, site.driver.port):
                    raise OperatorError(
                        f"{site.name}: already runs on {known.host}:{known.port}, not {site.driver.port}; "
                        "run `sites down` first"
                    )
                if known is not None and alive and self.healthy(known):
                    results[site.name] = UpResult(record=known, action="running")
                    continue
                if known is not None:
                    self._terminate(known)
                _check_port(site)
                to_start.append((site, known))
            spawned = [(self._spawn(site, sky), known) for site, known in to_start]
            for record, known in spawned:
                action: Literal["started", "restarted"] = "restarted" if known else "started"
                results[record.site] = UpResult(record=self._await_healthy(record), action=action)
            return [results[site.name] for site in wanted]

    def start(self, site: Site, sky: StarCatalogue) -> SimulatorRecord:
        """Start one site's simulator (stopping a recorded one first) and wait until it answers."""
        with self._locked():
            known = self.records().get(site.name)
            if known is not None:
                self._terminate(known)
            return self._await_healthy(self._spawn(site, sky))

    def stop(self, site: str) -> bool:
        """Stop one recorded simulator by its PID; False when none was recorded."""
        with self._locked():
            known = self.records().get(site)
            if known is None:
                return False
            self._terminate(known)
            self._save({k: v for k, v in self.records().items() if k != site})
            return True

    def down(self) -> list[tuple[SimulatorRecord, bool]]:
        """Stop exactly the recorded simulators and forget them: each record, and whether it was still running."""
        with self._locked():
            records = list(self.records().values())
            stopped = [(record, self.alive(record)) for record in records]
            for record in records:
                self._terminate(record)
            self._save({})
        return stopped

    def kill(self, site: str) -> None:
        """Kill a site's simulator outright (SIGKILL): the dead site. The record stays, so status shows it dead."""
        record = self.record(site)
        if self.alive(record):
            os.kill(record.pid, signal.SIGKILL)
            self._wait_gone(record, STOP_TIMEOUT_S)

    # -------------------------------------------------------------------------------------- switches
    def set_safe(self, site: str, safe: bool) -> None:
        """Make the site's safety monitor report safe or unsafe."""
        self._put(site, "safetymonitor/0/issafe", IsSafe="true" if safe else "false")

    def set_cloud_cover(self, site: str, percent: float) -> None:
        """Set the site's cloud cover, percent (the simulator stores a 0-1 fraction)."""
        if not 0 <= percent <= 100:
            raise OperatorError(f"{site}: cloud cover {percent:g}% must be within 0..100")
        self._put(site, "observingconditions/0/cloudcover", CloudCover=percent / 100.0)

    def set_weather(self, site: str, *, wind_mps: float | None = None, humidity_pct: float | None = None) -> None:
        """Set the site's wind speed (m/s) and/or relative humidity (percent)."""
        if wind_mps is not None:
            self._put(site, "observingconditions/0/windspeed", WindSpeed=wind_mps)
        if humidity_pct is not None:
            self._put(site, "observingconditions/0/humidity", Humidity=humidity_pct)

    def set_camera_fault(self, site: str, broken: bool) -> None:
        """Break or mend the site's camera: while broken, every exposure ends with the camera in its error state.

        The simulator has no fault endpoint. Its SetCCDTemperature accepts NaN, which makes the sensor model's
        dark current NaN, so rendering fails inside the exposure and the camera goes to CameraStates.ERROR
        exactly as on a hardware fault; AbortExposure recovers it. Mending restores the set point. (A config
        change plus /reload would also work but wipes every device's state: mount, safety, weather.)"""
        number = self.record(site).camera_device
        value = "nan" if broken else repr(CCD_SET_POINT_C)
        self._put(site, f"camera/{number}/setccdtemperature", SetCCDTemperature=value)

    # ---------------------------------------------------------------------------------------- helpers
    def _spawn(self, site: Site, sky: StarCatalogue) -> SimulatorRecord:
        host, port = site.driver.host, site.driver.port
        _check_port(site)
        directory = self.sites_dir / site.name
        directory.mkdir(parents=True, exist_ok=True)
        instance = uuid.uuid4().hex[:12]
        config = directory / "simulator.yaml"
        _write_atomic(config, yaml.safe_dump(simulator_config(site, sky.path, instance=instance), sort_keys=False))
        log = directory / "simulator.log"
        env = {**os.environ, "ASTROPY_CONFIG_DIR": str(self._astropy_dir()), "PYTHONUNBUFFERED": "1"}
        argv = [sys.executable, "-m", "alpaca_simulators.run_simulator"]
        argv += ["--config", str(config), "--host", host, "--port", str(port)]
        with open(log, "wb") as out:
            # posix_spawn, not Popen: the process outlives this one (own session), and no Popen object is left
            # to warn when it is garbage-collected while the simulator still runs.
            pid = os.posix_spawn(
                sys.executable,
                argv,
                env,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
                    (os.POSIX_SPAWN_DUP2, out.fileno(), 2),
                ],
                setsid=True,
            )
        record = SimulatorRecord(
            site=site.name,
            pid=pid,
            host=host,
            port=port,
            config=config,
            log=log,
            instance=instance,
            telescope_device=_device_number(site, "telescope"),
            camera_device=_device_number(site, "camera"),
            started_at=datetime.now(UTC),
            startup_s=0.0,
        )
        self._save({**self.records(), site.name: record})  # recorded before waiting: `down` can always stop it
        return record

    def _await_healthy(self, record: SimulatorRecord) -> SimulatorRecord:
        """Wait until the simulator answers as itself; record its start-up time."""
        while not self.healthy(record):
            waited = (datetime.now(UTC) - record.started_at).total_seconds()
            if not self.alive(record):
                raise OperatorError(f"{record.site}: the simulator exited during start-up: {_tail(record.log)}")
            if waited > STARTUP_TIMEOUT_S:
                self._terminate(record)
                raise OperatorError(f"{record.site}: the simulator did not answer within {STARTUP_TIMEOUT_S:g} s")
            time.sleep(0.05)
        waited = (datetime.now(UTC) - record.started_at).total_seconds()
        record = record.model_copy(update={"startup_s": round(waited, 3)})
        self._save({**self.records(), record.site: record})
        return record

    def _terminate(self, record: SimulatorRecord) -> None:
        """SIGTERM the recorded PID (only if it is still that simulator), SIGKILL if it lingers."""
        for sig, wait_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, STOP_TIMEOUT_S)):
            if not self.alive(record):
                return
            with suppress(ProcessLookupError):
                os.kill(record.pid, sig)
            if self._wait_gone(record, wait_s):
                return
        raise OperatorError(f"{record.site}: simulator PID {record.pid} survived SIGKILL")

    def _wait_gone(self, record: SimulatorRecord, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.alive(record):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def _put(self, site: str, path: str, **form: Any) -> None:
        record = self.record(site)
        url = f"http://{_url_host(record.host)}:{record.port}/api/v1/{path}"
        try:
            with _http() as http:
                response = http.put(url, data=form, timeout=HTTP_TIMEOUT_S)
            body = response.json() if response.ok else {}
        except requests.RequestException as error:
            raise DriverError(f"{site}: switch {path}: the simulator at port {record.port} does not answer") from error
        except ValueError as error:
            raise DriverError(f"{site}: switch {path}: the simulator sent a garbled answer") from error
        if not response.ok or body.get("ErrorNumber"):
            detail = body.get("ErrorMessage") or f"HTTP {response.status_code}"
            raise DriverError(f"{site}: switch {path} refused: {detail}")

    def _astropy_dir(self) -> Path:
        directory = self.sites_dir / "astropy"
        directory.mkdir(parents=True, exist_ok=True)
        if not (directory / "astropy.cfg").is_file():
            _write_atomic(directory / "astropy.cfg", _ASTROPY_OFFLINE)
        return directory

    def _save(self, records: dict[str, SimulatorRecord]) -> None:
        self.sites_dir.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.state_file, SimulatorState(simulators=records).model_dump_json(indent=2))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer of the state file at a time (two `sites up` at once start each site once)."""
        self.sites_dir.mkdir(parents=True, exist_ok=True)
        with open(self.sites_dir / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _http() -> Iterator[requests.Session]:
    """A short-lived HTTP session that never goes through a proxy from the environment (loopback only)."""
    with requests.Session() as session:
        session.trust_env = False
        yield session


def _check_port(site: Site) -> None:
    """Refuse a site that is not on loopback, or whose port something else already answers on."""
    host, port = site.driver.host, site.driver.port
    if host not in _LOOPBACK:
        raise OperatorError(f"{site.name}: simulators only run on loopback; its driver host is {host!r}")
    try:
        with socket.create_connection((host, port), timeout=0.5):
            taken = True
    except OSError:
        taken = False
    if taken:
        raise OperatorError(
            f"{site.name}: port {port} on {host} is already in use; stop what runs there or choose other ports"
        )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _tail(log: Path, lines: int = 5) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
