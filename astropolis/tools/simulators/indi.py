"""One site's INDI simulators: an `indiserver` running Debian's telescope, CCD and weather simulators plus the
`indi_watcher_weather` station, configured so the camera matches the site and renders our demo sky.

- The CCD simulator draws stars by running `gsc` (see `gsc.py`); we put a generated `gsc` that answers from
  the StarCatalogue first on the server's PATH, and set the simulator's chip size, pixel pitch and depth.
- The weather simulator is the safety monitor (its `Weather` control at 1 makes `WEATHER_STATUS` Alert).
  It has no cloud sensor, so the site also runs INDI's Weather Watcher, which reads `key=value` lines
  (clouds, humidity, wind in km/h) from a file we write; its alarm limits are opened wide so it only reports
  and the driver's site limits judge.
- Processes: indiserver is started in a new session (its own process group, which its driver children
  join); its PID is kept, and it is stopped by signalling exactly that group; never by name. HOME points
  into the work folder so drivers neither read nor write ~/.indi.
- Fault switches: `set_safe`, `set_cloud_cover`, `set_weather`, `break_camera` (INDI's own exposure
  failure path: the camera cannot save the frame and ends the exposure in Alert), `kill` and
  `kill_during_exposure` (SIGKILL to the whole group once the camera reports an exposure under way).
- Network: indiserver 1.9.9 has no option to choose its listening address; it binds every interface on
  the TCP port. Clients here only use 127.0.0.1; on a shared machine firewall the port.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from astropolis.tools.drivers.indi_session import IndiSession
from astropolis.tools.errors import DriverError, OperatorError
from astropolis.tools.simulators.catalogue import StarCatalogue
from astropolis.tools.simulators.gsc import write_script
from astropolis.tools.sites import Site

TELESCOPE, CAMERA, SAFETY, STATION = "Telescope Simulator", "CCD Simulator", "Weather Simulator", "Weather Watcher"
DRIVERS = ("indi_simulator_telescope", "indi_simulator_ccd", "indi_simulator_weather", "indi_watcher_weather")
# Depth of the simulated camera: a mag-8 star saturates in 1 s, a mag-20 star gives about 1 ADU/s.
CAMERA_SETTINGS = {
    "SIM_MAXVAL": 65000,
    "SIM_SATURATION": 8.0,
    "SIM_LIMITINGMAG": 20.0,
    "SIM_NOISE": 10.0,
    "SIM_SKYGLOW": 19.5,
    "SIM_OAGOFFSET": 0.0,
    "SIM_POLAR": 0.0,
    "SIM_POLARDRIFT": 0.0,
    "SIM_PEPERIOD": 0.0,
    "SIM_PEMAX": 0.0,
    "SIM_TIME_FACTOR": 1.0,
    "SIM_ROTATION": 0.0,
}
SEEING_ARCSEC = 2.5
WIDE_OPEN = {"WEATHER_CLOUDS": (0, 100), "WEATHER_HUMIDITY": (0, 100), "WEATHER_WIND_SPEED": (0, 500)}


def libindi_version() -> str:
    """The INDI library version indiserver reports (e.g. '1.9.9'), or '' if it does not say."""
    try:
        result = subprocess.run(
            ["indiserver", "--help"], capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    match = re.search(r"INDI Library: (\S+)", result.stdout + result.stderr)
    return match.group(1) if match else ""


def has_nutation_bug() -> bool:
    """Whether this libindi's JNow carries the 1.9 nutation error (see `gsc.py`); measured on 1.9.9."""
    return libindi_version().startswith("1.9.")


def live_processes(pgid: int) -> list[int]:
    """PIDs of the processes of group `pgid` that are still running (zombies awaiting their reaper excluded)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone while we looked
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(stat.parent.name))
    return sorted(live)


def _wait_group_gone(pgid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while live_processes(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def free_port() -> int:
    """A TCP port that is free on loopback right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class IndiSimulator:
    """A running indiserver for one site, with fault switches."""

    def __init__(self, site: Site, catalogue: StarCatalogue, workdir: Path, *, port: int | None = None) -> None:
        self.site, self.catalogue = site, catalogue
        self.workdir = Path(workdir).absolute()
        self.port = port if port is not None else site.driver.port
        self.weather_file = self.workdir / "weather.txt"
        self.log_file = self.workdir / "indiserver.log"
        self.pid: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._control: IndiSession | None = None
        self._weather = {"clouds": 0.0, "humidity": 50.0, "wind": 10.8}

    # ----------------------------------------------------------------------------------- lifecycle
    def start(self, timeout_s: float = 30.0) -> IndiSimulator:
        """Start indiserver, wait for its port, connect and configure the simulated devices."""
        if shutil.which("indiserver") is None:
            raise OperatorError("indiserver is not installed (Debian package indi-bin)")
        for folder in ("bin", "home"):
            (self.workdir / folder).mkdir(parents=True, exist_ok=True)
        write_script(self.workdir / "bin", self.catalogue.path, undo_libindi_nutation=has_nutation_bug())
        self._write_weather()
        env = dict(os.environ, HOME=str(self.workdir / "home"), LC_ALL="C")
        env["PATH"] = f"{self.workdir / 'bin'}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
        command = ["indiserver", "-v", "-r", "0", "-p", str(self.port), "-u", str(self.workdir / "indi.sock"), *DRIVERS]
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self.pid = self._process.pid
        try:
            self._wait_for_port(timeout_s)
            self._configure(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_for_port(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise OperatorError(f"indiserver exited at start-up; see {self.log_file}:\n{self._log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise OperatorError(f"indiserver did not listen on 127.0.0.1:{self.port} in {timeout_s:g} s")

    def _configure(self, timeout_s: float) -> None:
        """Make the simulated hardware match the site: chip, pixel pitch, depth, weather station file."""
        control = IndiSession("127.0.0.1", self.port, label=f"{self.site.name}-simulator")
        control.open(timeout_s)
        self._control = control
        for device, vector in ((CAMERA, "SIMULATOR_SETTINGS"), (CAMERA, "SIM_FOCUSING"), (STATION, "WATCH_SOURCE")):
            control.wait_defined(device, vector, timeout_s)
        for device in (TELESCOPE, SAFETY):
            control.wait_defined(device, "CONNECTION", timeout_s)
        camera = self.site.camera
        chip: dict[str, float] = {"SIM_XRES": camera.width_px, "SIM_YRES": camera.height_px}
        chip |= {"SIM_XSIZE": camera.pixel_um, "SIM_YSIZE": camera.pixel_um}
        control.set_numbers(CAMERA, "SIMULATOR_SETTINGS", chip | CAMERA_SETTINGS)
        control.set_numbers(CAMERA, "SIM_FOCUSING", {"SIM_SEEING": SEEING_ARCSEC})
        control.set_text(STATION, "WATCH_SOURCE", {"URL": str(self.weather_file)})
        for device in (TELESCOPE, CAMERA, SAFETY, STATION):
            control.connect_device(device, timeout_s)
        control.wait_defined(SAFETY, "WEATHER_CONTROL", timeout_s)
        for parameter, (low, high) in WIDE_OPEN.items():
            control.wait_defined(STATION, parameter, timeout_s)
            control.set_numbers(STATION, parameter, {"MIN_OK": low, "MAX_OK": high})
        self.set_safe(True)
        self._refresh_station()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop indiserver and its drivers: SIGTERM to our process group, SIGKILL to whatever outlives it."""
        if self._control is not None:
            self._control.close()
            self._control = None
        process, self._process = self._process, None
        if process is None:
            return
        self._signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._signal_group(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout_s)
        if not _wait_group_gone(process.pid, 1.0):
            self._signal_group(process.pid, signal.SIGKILL)
            if not _wait_group_gone(process.pid, timeout_s):
                raise OperatorError(f"processes of indiserver group {process.pid} survived SIGKILL")

    def kill(self) -> None:
        """Crash the site: SIGKILL indiserver and its drivers at once (the process group we created)."""
        if self._process is not None:
            self._signal_group(self._process.pid, signal.SIGKILL)

    @staticmethod
    def _signal_group(pgid: int, signum: int) -> None:
        try:
            os.killpg(pgid, signum)  # the group id is indiserver's own PID (start_new_session)
        except ProcessLookupError:
            pass

    def __enter__(self) -> IndiSimulator:
        return self if self._process is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # ------------------------------------------------------------------------------- fault switches
    @property
    def control(self) -> IndiSession:
        """The simulator's own client session (separate from any driver's)."""
        if self._control is None:
            raise OperatorError(f"{self.site.name}: the INDI simulator is not running")
        return self._control

    def set_safe(self, safe: bool) -> None:
        """Weather simulator's `Weather` control: 0 is fine, 1 puts WEATHER_STATUS in Alert (unsafe)."""
        control = self.control
        control.set_numbers(SAFETY, "WEATHER_CONTROL", {"Weather": 0 if safe else 1})
        control.press(SAFETY, "WEATHER_REFRESH", "REFRESH")
        wanted = "Ok" if safe else "Alert"
        control.wait_for(
            f"weather status {wanted}",
            lambda: True if getattr(control.vector(SAFETY, "WEATHER_STATUS"), "state", None) == wanted else None,
            10.0,
        )

    def set_cloud_cover(self, percent: float) -> None:
        """Write the station's file and make it re-read it now."""
        self._weather["clouds"] = float(percent)
        self._write_weather()
        self._refresh_station()

    def set_weather(self, *, humidity_pct: float | None = None, wind_mps: float | None = None) -> None:
        """Change the station's humidity or wind."""
        if humidity_pct is not None:
            self._weather["humidity"] = float(humidity_pct)
        if wind_mps is not None:
            self._weather["wind"] = float(wind_mps) * 3.6
        self._write_weather()
        self._refresh_station()

    def _write_weather(self) -> None:
        text = "".join(f"{key}={value:g}\n" for key, value in self._weather.items())
        temporary = self.weather_file.with_suffix(".tmp")
        temporary.write_text(text)
        temporary.replace(self.weather_file)  # the station never reads half a file

    def _refresh_station(self) -> None:
        control = self.control
        control.press(STATION, "WEATHER_REFRESH", "REFRESH")
        written = {key: float(f"{value:g}") for key, value in self._weather.items()}  # as the file has them
        wanted = {f"WEATHER_{key.upper()}": value for key, value in written.items()}
        wanted["WEATHER_WIND_SPEED"] = wanted.pop("WEATHER_WIND")

        def current() -> bool | None:
            parameters = control.vector(STATION, "WEATHER_PARAMETERS")
            if parameters is None or not all(k in parameters.values for k in wanted):
                return None
            return True if all(abs(parameters.number(k) - v) < 1e-6 for k, v in wanted.items()) else None

        control.wait_for("the weather station to read its file", current, 10.0)

    def break_camera(self) -> None:
        """Make exposures fail inside the camera until a client re-selects client-only upload (the driver's
        abort does): upload mode 'both' with a local folder that cannot exist, so INDI's own save step
        fails and the camera ends the exposure in Alert without sending a frame."""
        blocker = self.workdir / "not-a-folder"
        blocker.write_text("a file where the camera expects a folder\n")
        self.control.set_text(CAMERA, "UPLOAD_SETTINGS", {"UPLOAD_DIR": str(blocker / "frames")})
        self.control.set_switch(CAMERA, "UPLOAD_MODE", "UPLOAD_BOTH")

    def kill_during_exposure(self, timeout_s: float = 120.0) -> threading.Thread:
        """Kill the whole server 0.3 s into the camera's next exposure (watched from our own session)."""
        control = self.control
        start = control.vector(CAMERA, "CCD_EXPOSURE")
        after = start.seq if start is not None else 0

        def exposing() -> bool | None:
            exposure = control.vector(CAMERA, "CCD_EXPOSURE")
            return True if exposure is not None and exposure.seq > after and exposure.state == "Busy" else None

        def watch() -> None:
            try:
                control.wait_for("the next exposure", exposing, timeout_s)
            except DriverError:
                return
            time.sleep(0.3)  # well inside the exposure, with the shutter open
            self.kill()

        watcher = threading.Thread(target=watch, name=f"kill-{self.site.name}", daemon=True)
        watcher.start()
        return watcher
