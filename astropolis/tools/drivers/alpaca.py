"""The ASCOM Alpaca backend: a site's mount, camera, safety monitor, weather station and filter wheel, spoken to
over HTTP with the official `alpyca` client.

Assumptions, each checked against `alpaca-simulators` and written down because a real site may differ:

- Coordinates. The mount's `EquatorialSystem` is read at connect. J2000 (2, which ASCOM defines on the ICRS
  frame) and "other" (0, which alpaca-simulators reports for J2000) are taken as ICRS and passed through
  unchanged, so the pointing sent is bit-for-bit the pointing the base class writes into the WCS. Topocentric
  (1) is converted to apparent place (astropy TETE at the site and the run clock's time); J2050 and B1950 to
  FK5/FK4 of that equinox.
- Image orientation. `ImageArray` is [x][y] with (0, 0) the first pixel read out, shown top-left (ASCOM);
  FITS row 1 is the bottom row. The frame is transposed to (rows=y, cols=x) and its rows reversed, which
  gives north up and east left for a camera mounted the usual way (this is what alpaca-simulators renders).
- Units. ASCOM's CloudCover is a percentage, but alpaca-simulators reports a 0-1 fraction and says so in
  `SensorDescription("CloudCover")`; a description that mentions "fraction" is scaled by 100.
- Device numbers. Mount and camera come from the site's `DriverSpec`; safety monitor, weather station and
  filter wheel are device 0. Weather and filter wheel are optional; a missing sensor reads as None.

Every HTTP request has a short timeout and ignores proxy settings; every alpyca, HTTP or decoding failure
becomes a `DriverError` naming the site and what failed, so a dead server fails fast and never hangs.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import requests
from alpaca import exceptions as alpaca_exceptions
from alpaca.camera import Camera, CameraStates
from alpaca.device import Device
from alpaca.filterwheel import FilterWheel
from alpaca.observingconditions import ObservingConditions
from alpaca.safetymonitor import SafetyMonitor
from alpaca.telescope import Telescope

from astropolis.lake.clock import Clock
from astropolis.tools.drivers.base import Driver, FrameStore, SiteStatus, WeatherReading
from astropolis.tools.drivers.journal import CommandJournal
from astropolis.tools.errors import DriverError
from astropolis.tools.sites import Site

_ALPACA_ERRORS: tuple[type[Exception], ...] = tuple(
    getattr(alpaca_exceptions, name) for name in dir(alpaca_exceptions) if name.endswith("Exception")
)
# What a device, the network or a garbled answer can throw; anything else is a bug and is not translated.
_DEVICE_ERRORS: tuple[type[Exception], ...] = (
    *_ALPACA_ERRORS,
    requests.RequestException,
    ValueError,
    KeyError,
    OSError,
)
_CAMERA_STATES = {
    CameraStates.cameraIdle: "idle",
    CameraStates.cameraWaiting: "exposing",
    CameraStates.cameraExposing: "exposing",
    CameraStates.cameraReading: "reading",
    CameraStates.cameraDownload: "reading",
    CameraStates.cameraError: "error",
}
# ImageBytes transmission element types (Alpaca API): code -> little-endian numpy dtype.
_IMAGEBYTES_DTYPES = {1: "<i2", 2: "<i4", 3: "<f8", 4: "<f4", 6: "u1", 8: "<u2", 9: "<u4"}
_IMAGEBYTES_HEADER = 44


class _BoundedSession(requests.Session):
    """A requests session that never waits longer than `timeout_s` for a connection or a byte, and never
    routes loopback traffic through a proxy from the environment."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.trust_env = False
        self.timeout_s = timeout_s

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        """Send with the timeout capped at `timeout_s`."""
        asked = kwargs.get("timeout")
        kwargs["timeout"] = self.timeout_s if asked is None else min(float(asked), self.timeout_s)
        return super().request(method, url, *args, **kwargs)


class AlpacaDriver(Driver):
    """A site whose devices are served by one Alpaca server (`site.driver.host:port`)."""

    def __init__(
        self,
        site: Site,
        *,
        journal: CommandJournal,
        frames: FrameStore,
        clock: Clock | None = None,
        timeout_s: float = 3.0,
        poll_s: float = 0.05,
        readout_timeout_s: float = 60.0,
    ) -> None:
        """`timeout_s` bounds every HTTP wait; `readout_timeout_s` how long after an exposure the image may take."""
        super().__init__(site, journal=journal, frames=frames, clock=clock)
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.readout_timeout_s = readout_timeout_s
        self.endpoint = f"{self.site.driver.host}:{self.site.driver.port}"
        self._session = _BoundedSession(timeout_s)
        self._devices: dict[str, Device] | None = None
        self._equatorial_system: int | None = None
        self._cloud_scale: float | None = None

    # ------------------------------------------------------------------------------------------ plumbing
    @contextmanager
    def _device_errors(self, what: str) -> Iterator[None]:
        """Translate whatever the devices or the network throw into a DriverError naming the site."""
        try:
            yield
        except requests.Timeout as error:
            raise DriverError(
                f"{self.site.name}: {what}: no answer from the Alpaca server at {self.endpoint} within "
                f"{self.timeout_s:g} s"
            ) from error
        except requests.ConnectionError as error:
            raise DriverError(
                f"{self.site.name}: {what}: cannot reach the Alpaca server at {self.endpoint} (is its process running?)"
            ) from error
        except _DEVICE_ERRORS as error:
            raise DriverError(f"{self.site.name}: {what}: {type(error).__name__}: {error}") from error

    def _make(self, kind: type[Device], number: int) -> Device:
        device = kind(self.endpoint, number)
        device.rqs.close()
        device.rqs = self._session
        return device

    def _ensure_devices(self) -> dict[str, Device]:
        if self._devices is None:
            spec = self.site.driver
            self._devices = {
                "telescope": self._make(Telescope, int(spec.telescope)),
                "camera": self._make(Camera, int(spec.camera)),
                "safety": self._make(SafetyMonitor, 0),
                "weather": self._make(ObservingConditions, 0),
                "wheel": self._make(FilterWheel, 0),
            }
        return self._devices

    @property
    def _telescope(self) -> Telescope:
        return self._ensure_devices()["telescope"]

    @property
    def _camera(self) -> Camera:
        return self._ensure_devices()["camera"]

    def _optional(self, read: Callable[[], Any]) -> Any:
        """A reading the server does not implement, or a device it does not have, is None; anything else (a
        broken sensor, a dead server) still raises."""
        try:
            return read()
        except alpaca_exceptions.NotImplementedException:
            return None
        except alpaca_exceptions.AlpacaRequestException as error:
            if error.number in (400, 404):
                return None
            raise

    # -------------------------------------------------------------------------------------- device hooks
    def _connect(self) -> None:
        devices = self._ensure_devices()
        with self._device_errors("connect"):
            for name in ("telescope", "camera", "safety"):
                devices[name].Connected = True
            for optional in (devices["weather"], devices["wheel"]):
                self._optional(functools.partial(setattr, optional, "Connected", True))
            self._read_conventions()
            self._configure_camera()
            self._check_filters()

    def _read_conventions(self) -> None:
        """The mount's equatorial system and the weather station's cloud-cover unit (once per session)."""
        if self._equatorial_system is None:
            self._equatorial_system = int(self._telescope.EquatorialSystem)
        if self._cloud_scale is None:
            weather = self._ensure_devices()["weather"]
            description = self._optional(lambda: weather.SensorDescription("CloudCover")) or ""
            self._cloud_scale = 100.0 if "fraction" in description.lower() else 1.0

    def _configure_camera(self) -> None:
        camera, spec = self._camera, self.site.camera
        size = (camera.CameraXSize, camera.CameraYSize)
        if size != (spec.width_px, spec.height_px):
            raise DriverError(
                f"{self.site.name}: the camera is {size[0]}x{size[1]} px but the site registry says "
                f"{spec.width_px}x{spec.height_px}; fix the registry or the camera"
            )
        camera.BinX, camera.BinY = 1, 1
        camera.StartX, camera.StartY = 0, 0
        camera.NumX, camera.NumY = spec.width_px, spec.height_px

    def _check_filters(self) -> None:
        names = self._optional(lambda: self._ensure_devices()["wheel"].Names)
        missing = [f for f in self.site.filters if f not in (names or [])]
        if names is None and len(self.site.filters) > 1:
            raise DriverError(f"{self.site.name}: the site lists filters {self.site.filters} but has no filter wheel")
        if names is not None and missing:
            raise DriverError(
                f"{self.site.name}: the filter wheel holds {', '.join(names)}; missing {', '.join(missing)}"
            )

    def _status(self) -> SiteStatus:
        devices = self._ensure_devices()
        telescope, camera, weather = self._telescope, self._camera, devices["weather"]
        with self._device_errors("read status"):
            self._read_conventions()
            connected = all(devices[name].Connected for name in ("telescope", "camera", "safety"))
            safe = bool(devices["safety"].IsSafe)
            cloud = self._optional(lambda: weather.CloudCover)
            reading = WeatherReading(
                cloud_cover_pct=None if cloud is None else float(cloud) * (self._cloud_scale or 1.0),
                wind_mps=self._optional(lambda: weather.WindSpeed),
                humidity_pct=self._optional(lambda: weather.Humidity),
            )
            parked, slewing, tracking = bool(telescope.AtPark), bool(telescope.Slewing), bool(telescope.Tracking)
            ra_deg, dec_deg = self._from_mount(float(telescope.RightAscension) * 15.0, float(telescope.Declination))
            state = _CAMERA_STATES.get(camera.CameraState, "unknown")
        return SiteStatus(
            site=self.site.name,
            connected=connected,
            safe=safe,
            weather=reading,
            parked=parked,
            slewing=slewing,
            tracking=tracking,
            ra_deg=ra_deg,
            dec_deg=dec_deg,
            camera_state=state,
        )

    def _unpark(self) -> None:
        with self._device_errors("unpark"):
            if self._telescope.AtPark:
                self._telescope.Unpark()

    def _slew(self, ra_deg: float, dec_deg: float) -> None:
        telescope = self._telescope
        with self._device_errors(f"slew to RA {ra_deg:.5f} Dec {dec_deg:+.5f}"):
            self._read_conventions()
            mount_ra, mount_dec = self._to_mount(ra_deg, dec_deg)
            hours = (mount_ra % 360.0) / 15.0
            if telescope.CanSetTracking and not telescope.Tracking:
                telescope.Tracking = True
            telescope.SlewToCoordinatesAsync(hours if hours < 24.0 else 0.0, mount_dec)
            deadline = time.monotonic() + 180.0 / self.site.slew_rate_deg_s + 60.0
            while telescope.Slewing:
                if time.monotonic() > deadline:
                    telescope.AbortSlew()
                    raise DriverError(f"{self.site.name}: the mount was still slewing after the slew timeout")
                time.sleep(self.poll_s)
            landed_ra, landed_dec = float(telescope.RightAscension) * 15.0, float(telescope.Declination)
        miss = _separation_arcsec(landed_ra, landed_dec, mount_ra, mount_dec)
        if miss > 60.0:
            raise DriverError(f"{self.site.name}: the mount stopped {miss:.0f} arcsec from the requested position")

    def _expose_pixels(self, exposure_s: float, filter_name: str | None) -> np.ndarray:
        camera = self._camera
        with self._device_errors(f"{exposure_s:g} s exposure"):
            if filter_name is not None:
                self._select_filter(filter_name)
            state = camera.CameraState
            if state == CameraStates.cameraError:
                raise DriverError(f"{self.site.name}: the camera is in an error state; abort to reset it")
            if state != CameraStates.cameraIdle:
                raise DriverError(f"{self.site.name}: the camera is busy ({state.name}); abort or wait")
            camera.StartExposure(exposure_s, True)
            self._wait_for_image(exposure_s)
            pixels = self._download()
        height, width = self.site.camera.height_px, self.site.camera.width_px
        if pixels.shape != (height, width):
            raise DriverError(f"{self.site.name}: the camera sent a {pixels.shape} frame, expected {(height, width)}")
        return pixels

    def _wait_for_image(self, exposure_s: float) -> None:
        camera = self._camera
        started = time.monotonic()
        deadline = started + exposure_s + self.readout_timeout_s
        while not camera.ImageReady:
            if camera.CameraState == CameraStates.cameraError:
                raise DriverError(f"{self.site.name}: the camera reported an error during the exposure")
            now = time.monotonic()
            if now > deadline:
                camera.AbortExposure()
                raise DriverError(f"{self.site.name}: no image {self.readout_timeout_s:g} s after the exposure ended")
            left = started + exposure_s - now  # while the shutter is open, poll less often
            time.sleep(min(0.5, left / 2) if left > 2 * self.poll_s else self.poll_s)

    def _download(self) -> np.ndarray:
        """Fetch ImageArray (ImageBytes, or JSON from servers without it) as (rows=y, cols=x), FITS order."""
        camera = self._camera
        response = self._session.get(f"{camera.base_url}/imagearray", headers={"Accept": "application/imagebytes"})
        if not response.ok:
            raise DriverError(f"{self.site.name}: image download failed: HTTP {response.status_code}")
        if "application/imagebytes" in response.headers.get("content-type", ""):
            array = _decode_imagebytes(response.content, self.site.name)
        else:
            body = response.json()
            if body.get("ErrorNumber"):
                raise DriverError(f"{self.site.name}: image download failed: {body.get('ErrorMessage')}")
            array = np.asarray(body["Value"])
        if array.ndim != 2:
            raise DriverError(f"{self.site.name}: the camera sent a {array.ndim}-dimensional image")
        return np.ascontiguousarray(array.T[::-1])  # [x][y] top-down -> rows=y bottom-up: north up

    def _select_filter(self, filter_name: str) -> None:
        wheel = self._ensure_devices()["wheel"]
        names = self._optional(lambda: wheel.Names)
        if names is None:
            if len(self.site.filters) == 1:
                return  # a fixed filter
            raise DriverError(f"{self.site.name}: no filter wheel to select {filter_name!r}")
        target = list(names).index(filter_name) if filter_name in names else -1
        if target < 0:
            raise DriverError(f"{self.site.name}: the filter wheel has no {filter_name!r}")
        wheel.Position = target
        deadline = time.monotonic() + 60.0
        while wheel.Position != target:  # -1 while moving
            if time.monotonic() > deadline:
                raise DriverError(f"{self.site.name}: the filter wheel did not reach {filter_name!r}")
            time.sleep(self.poll_s)

    def _abort(self) -> None:
        camera, telescope = self._camera, self._telescope
        with self._device_errors("abort"):
            if camera.CanAbortExposure:
                camera.AbortExposure()
            if telescope.Slewing:
                telescope.AbortSlew()

    def _park(self) -> None:
        telescope = self._telescope
        with self._device_errors("park"):
            telescope.Park()
            deadline = time.monotonic() + 180.0 / self.site.slew_rate_deg_s + 60.0
            while not telescope.AtPark:
                if time.monotonic() > deadline:
                    raise DriverError(f"{self.site.name}: the mount did not report parked")
                time.sleep(self.poll_s)

    def close(self) -> None:
        """Close the HTTP connections; the devices stay connected for other clients (Alpaca devices are shared)."""
        self._session.close()
        self._devices = None

    # -------------------------------------------------------------------------------------- coordinates
    def _mount_frame(self) -> Any:
        from astropy.coordinates import FK4, FK5, TETE
        from astropy.time import Time

        from astropolis.tools.visibility import configure_offline

        configure_offline()
        if self._equatorial_system == 1:
            return TETE(obstime=Time(self.clock.now()), location=self.site.location())
        if self._equatorial_system == 3:
            return FK5(equinox=Time("J2050"))
        return FK4(equinox=Time("B1950"))

    def _to_mount(self, ra_deg: float, dec_deg: float) -> tuple[float, float]:
        """ICRS -> the mount's equatorial system (identity for J2000/other)."""
        if self._equatorial_system in (None, 0, 2):
            return ra_deg, dec_deg
        from astropy import units as u
        from astropy.coordinates import SkyCoord

        moved = SkyCoord(ra_deg * u.deg, dec_deg * u.deg, frame="icrs").transform_to(self._mount_frame())
        return float(moved.ra.deg), float(moved.dec.deg)

    def _from_mount(self, ra_deg: float, dec_deg: float) -> tuple[float, float]:
        """The mount's equatorial system -> ICRS."""
        if self._equatorial_system in (None, 0, 2):
            return ra_deg % 360.0, dec_deg
        from astropy import units as u
        from astropy.coordinates import SkyCoord

        icrs = SkyCoord(ra_deg * u.deg, dec_deg * u.deg, frame=self._mount_frame()).icrs
        return float(icrs.ra.deg), float(icrs.dec.deg)


def _decode_imagebytes(data: bytes, site: str) -> np.ndarray:
    """An Alpaca ImageBytes payload as an (NumX, NumY) array."""
    header = np.frombuffer(data[:_IMAGEBYTES_HEADER], dtype="<i4")
    if len(header) < 11:
        raise DriverError(f"{site}: the camera sent a truncated image ({len(data)} bytes)")
    error, start, transmission, rank, dim1, dim2 = (int(v) for v in header[[1, 4, 6, 7, 8, 9]])
    if error:
        raise DriverError(f"{site}: image download failed: {data[start:].decode(errors='replace')}")
    if rank != 2 or transmission not in _IMAGEBYTES_DTYPES:
        raise DriverError(f"{site}: unsupported image (rank {rank}, element type {transmission})")
    pixels = np.frombuffer(data, dtype=_IMAGEBYTES_DTYPES[transmission], offset=start)
    if pixels.size != dim1 * dim2:
        raise DriverError(f"{site}: the image holds {pixels.size} pixels, its header says {dim1}x{dim2}")
    return pixels.reshape(dim1, dim2)


def _separation_arcsec(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Great-circle distance between two positions (degrees in), arcseconds."""
    r1, d1, r2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    hav = math.sin((d2 - d1) / 2) ** 2 + math.cos(d1) * math.cos(d2) * math.sin((r2 - r1) / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(hav)))) * 3600.0
