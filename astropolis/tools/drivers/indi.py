"""The INDI backend: a site's mount, camera and weather devices behind one indiserver, over TCP.

`IndiSession` runs indipyclient's asyncio client on a private event-loop thread and keeps a thread-safe
mirror of every property the server defines; the driver's synchronous hooks send new vectors and wait, with
a deadline on every wait, for the server's answer. A closed socket (indiserver killed) is noticed within
about 0.1 s and fails every wait at once with `DriverError`.

Conventions this backend relies on (INDI 1.9.9's standard properties):

- Devices are found by `DRIVER_INFO.DRIVER_INTERFACE` bits: the site's `telescope`/`camera` fields are an
  INDI device name, or a number N meaning the N-th (by name) device with the mount / CCD interface.
- Mount coordinates are JNow (`EQUATORIAL_EOD_COORD`, RA in hours). ICRS <-> JNow uses astropy's TETE
  frame (true equator and equinox of date, aberration included: the true apparent place) at the mount's
  time, which is the wall clock: the run clock may be a replay clock, but the mount lives in real time.
  (libindi 1.9's own JNow is off by up to ~30" through a nutation bug; only its CCD simulator uses it,
  and `simulators/gsc.py` undoes that on the simulated sky, not here.)
- A goto is repeated until the mount reports the target within `pointing_tolerance_arcsec`: INDI's
  telescope simulator aims at the hour angle the target had when the slew began and arrives late by
  the slew time (about 3 arcmin after a 12 s slew); the second goto lands within 0.1".
- Safety comes from the weather devices (interface bit 128): the site is safe only if at least one is
  connected and none reports `WEATHER_STATUS` in Alert (Ok, Idle and Busy, INDI's "warning", are safe).
  Readings come from `WEATHER_PARAMETERS`: cloud cover from `WEATHER_CLOUD_COVER` or `WEATHER_CLOUDS` (%),
  wind from `WEATHER_WIND_SPEED` (INDI uses km/h), humidity from `WEATHER_HUMIDITY` (%); with several
  stations the highest value counts. The station's own alarm limits are not used for readings: the
  site's `WeatherLimits` judge them in the base class.
- Frames arrive as the camera's FITS BLOB (`CCD1`, upload mode client); an exposure whose `CCD_EXPOSURE`
  goes to Alert is a camera error. `CameraOrientation` turns the frame north up, east left (undoing the
  180 degrees of a German mount on its west pier side). The filter wheel slot is the filter's position
  in `Site.filters` + 1. `status()` first asks the server for one property, so a dead server is an error
  at once rather than a stale mirror.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from astropolis.lake.clock import Clock, SystemClock
from astropolis.tools.drivers.base import Driver, SiteStatus, WeatherReading
from astropolis.tools.drivers.indi_session import (
    CCD_INTERFACE,
    FILTER_INTERFACE,
    TELESCOPE_INTERFACE,
    WEATHER_INTERFACE,
    IndiSession,
    Vector,
)
from astropolis.tools.errors import DriverError

if TYPE_CHECKING:
    from astropolis.tools.drivers.base import FrameStore
    from astropolis.tools.drivers.journal import CommandJournal
    from astropolis.tools.sites import Site

CameraState = Literal["idle", "exposing", "reading", "error", "unknown"]
CAMERA_STATES: dict[str, CameraState] = {"Busy": "exposing", "Alert": "error", "Ok": "idle", "Idle": "idle"}
CLOUD_PARAMETERS = ("WEATHER_CLOUD_COVER", "WEATHER_CLOUDS")


@dataclass(frozen=True)
class CameraOrientation:
    """How to turn the camera's FITS image so north is up and east left while the mount is on its east pier
    side; on the west side a German mount has turned the field by 180 degrees, which is undone too.
    The default is how INDI's CCD simulator draws the sky (measured: its image is the transpose)."""

    transpose: bool = True
    flip_rows: bool = False
    flip_cols: bool = False

    def apply(self, pixels: np.ndarray, *, pier_west: bool) -> np.ndarray:
        """The image turned north up, east left."""
        turned = pixels.T if self.transpose else pixels
        if self.flip_rows != pier_west:
            turned = turned[::-1, :]
        if self.flip_cols != pier_west:
            turned = turned[:, ::-1]
        return np.ascontiguousarray(turned)


def icrs_to_jnow(ra_deg: float, dec_deg: float, when: datetime) -> tuple[float, float]:
    """ICRS (degrees) to JNow (apparent place, true equator and equinox of `when`; degrees)."""
    from astropy import units as u
    from astropy.coordinates import TETE, SkyCoord
    from astropy.time import Time

    from astropolis.tools.visibility import configure_offline

    configure_offline()
    apparent = SkyCoord(ra=ra_deg * u.deg, dec=dec_deg * u.deg, frame="icrs").transform_to(TETE(obstime=Time(when)))
    return float(apparent.ra.wrap_at(360 * u.deg).deg), float(apparent.dec.deg)


def jnow_to_icrs(ra_deg: float, dec_deg: float, when: datetime) -> tuple[float, float]:
    """JNow (degrees, true equator and equinox of `when`) to ICRS (degrees)."""
    from astropy import units as u
    from astropy.coordinates import TETE, SkyCoord
    from astropy.time import Time

    from astropolis.tools.visibility import configure_offline

    configure_offline()
    apparent = SkyCoord(ra=ra_deg * u.deg, dec=dec_deg * u.deg, frame=TETE(obstime=Time(when)))
    icrs = apparent.transform_to("icrs")
    return float(icrs.ra.wrap_at(360 * u.deg).deg), float(icrs.dec.deg)


class IndiDriver(Driver):
    """A site whose mount, camera and weather stations are INDI devices behind one indiserver."""

    connect_timeout_s = 10.0
    command_timeout_s = 10.0
    slew_timeout_s = 180.0
    readout_timeout_s = 30.0
    settle_s = 1.0  # a goto with no report for this long has ended (INDI mounts poll at 4 Hz or faster)
    pointing_tolerance_arcsec = 1.0
    max_gotos = 5

    def __init__(
        self,
        site: Site,
        *,
        journal: CommandJournal,
        frames: FrameStore,
        clock: Clock | None = None,
        mount_clock: Clock | None = None,
        orientation: CameraOrientation | None = None,
    ) -> None:
        super().__init__(site, journal=journal, frames=frames, clock=clock)
        self.mount_clock: Clock = mount_clock or SystemClock()
        self.orientation = orientation or CameraOrientation()
        self._session: IndiSession | None = None
        self.mount = ""
        self.camera = ""
        self.wheel: str | None = None

    # ------------------------------------------------------------------------------------------ session
    @property
    def session(self) -> IndiSession:
        """The live session; a lost one is replaced by a fresh connection (or DriverError if that fails)."""
        if self._session is None or self._session.lost is not None:
            self._connect()
        assert self._session is not None
        return self._session

    def _connect(self) -> None:
        self.close()
        spec = self.site.driver
        session = IndiSession(spec.host, spec.port, label=self.site.name, timeout_s=self.command_timeout_s)
        session.open(self.connect_timeout_s)
        try:
            self.mount = session.find_device(spec.telescope, TELESCOPE_INTERFACE, "mount", self.connect_timeout_s)
            self.camera = session.find_device(spec.camera, CCD_INTERFACE, "camera", self.connect_timeout_s)
            session.settle(self.connect_timeout_s)
            for device in (self.mount, self.camera):
                session.connect_device(device, self.connect_timeout_s)
            for station in session.devices_with(WEATHER_INTERFACE):
                try:
                    session.connect_device(station, self.connect_timeout_s)
                except DriverError:
                    if session.lost is not None:
                        raise  # a weather station that will not connect only makes the site unsafe
            session.wait_defined(self.mount, "EQUATORIAL_EOD_COORD", self.connect_timeout_s)
            session.wait_defined(self.camera, "CCD_EXPOSURE", self.connect_timeout_s)
            session.wait_defined(self.camera, "CCD1", self.connect_timeout_s)
            session.settle(self.connect_timeout_s)  # connected devices define the rest of their properties
            self._configure_mount(session)
            self._configure_camera(session)
            wheels = [self.camera] if session.has(self.camera, "FILTER_SLOT") else []
            wheels += [d for d in session.devices_with(FILTER_INTERFACE) if session.has(d, "FILTER_SLOT")]
            self.wheel = wheels[0] if wheels else None
        except BaseException:
            session.close()
            raise
        self._session = session

    def _configure_mount(self, session: IndiSession) -> None:
        site, mount = self.site, self.mount
        if session.has(mount, "GEOGRAPHIC_COORD"):
            location = {"LAT": site.latitude_deg, "LONG": site.longitude_deg % 360.0, "ELEV": site.elevation_m}
            session.set_numbers(mount, "GEOGRAPHIC_COORD", location)
        if session.has(mount, "TELESCOPE_INFO"):
            optics = {"TELESCOPE_APERTURE": site.optics.aperture_mm}
            optics["TELESCOPE_FOCAL_LENGTH"] = site.optics.focal_length_mm
            session.set_numbers(mount, "TELESCOPE_INFO", optics)

    def _configure_camera(self, session: IndiSession) -> None:
        """Check the camera is the one the registry describes, then set full frame, 1x1, light, client upload."""
        site, camera = self.site, self.camera
        info = session.vector(camera, "CCD_INFO")
        if info is not None:
            width, height, pixel = (info.number(k) for k in ("CCD_MAX_X", "CCD_MAX_Y", "CCD_PIXEL_SIZE"))
            spec = site.camera
            if (width, height) != (spec.width_px, spec.height_px) or abs(pixel - spec.pixel_um) > 0.01 * spec.pixel_um:
                raise DriverError(
                    f"{site.name}: camera {camera!r} is {width:.0f}x{height:.0f} px of {pixel:g} um but the site "
                    f"registry says {spec.width_px}x{spec.height_px} px of {spec.pixel_um:g} um; fix the registry"
                )
        session.set_numbers(camera, "CCD_BINNING", {"HOR_BIN": 1, "VER_BIN": 1})
        frame = {"X": 0, "Y": 0, "WIDTH": site.camera.width_px, "HEIGHT": site.camera.height_px}
        session.set_numbers(camera, "CCD_FRAME", frame)
        if session.has(camera, "SCOPE_INFO"):
            optics = {"FOCAL_LENGTH": site.optics.focal_length_mm, "APERTURE": site.optics.aperture_mm}
            session.set_numbers(camera, "SCOPE_INFO", optics)
        for vector, member in (
            ("CCD_FRAME_TYPE", "FRAME_LIGHT"),
            ("UPLOAD_MODE", "UPLOAD_CLIENT"),
            ("CCD_TRANSFER_FORMAT", "FORMAT_FITS"),
            ("CCD_COMPRESSION", "INDI_DISABLED"),
        ):
            if session.has(camera, vector):
                session.set_switch(camera, vector, member)

    def close(self) -> None:
        """Drop the connection (the devices stay as they are)."""
        if self._session is not None:
            self._session.close()
            self._session = None

    # -------------------------------------------------------------------------------------------- hooks
    def _status(self) -> SiteStatus:
        session = self.session
        mount, camera = self.mount, self.camera
        session.ping(mount, "CONNECTION", self.command_timeout_s)  # a live answer, not only the mirror
        eod = session.vector(mount, "EQUATORIAL_EOD_COORD")
        park = session.vector(mount, "TELESCOPE_PARK")
        parked = park is not None and park.switch("PARK")
        track = session.vector(mount, "TELESCOPE_TRACK_STATE")
        ra = dec = None
        if eod is not None:
            ra, dec = jnow_to_icrs(eod.number("RA") * 15.0, eod.number("DEC"), self.mount_clock.now())
        exposure = session.vector(camera, "CCD_EXPOSURE")
        safe, weather = self._weather(session)
        return SiteStatus(
            site=self.site.name,
            connected=session.device_connected(mount) and session.device_connected(camera),
            safe=safe,
            weather=weather,
            parked=parked,
            slewing=eod is not None and eod.state == "Busy" and not parked,
            tracking=track.switch("TRACK_ON") if track is not None else (eod is not None and not parked),
            ra_deg=ra,
            dec_deg=dec,
            camera_state=CAMERA_STATES.get(exposure.state, "unknown") if exposure is not None else "unknown",
        )

    def _weather(self, session: IndiSession) -> tuple[bool, WeatherReading]:
        stations = session.devices_with(WEATHER_INTERFACE)
        safe = bool(stations)
        readings: dict[str, float] = {}
        for device in stations:
            status = session.vector(device, "WEATHER_STATUS")
            if not session.device_connected(device) or status is None or status.state == "Alert":
                safe = False
            parameters = session.vector(device, "WEATHER_PARAMETERS")
            if parameters is None:
                continue
            for name in (*CLOUD_PARAMETERS, "WEATHER_WIND_SPEED", "WEATHER_HUMIDITY"):
                if name in parameters.values:
                    key = "cloud" if name in CLOUD_PARAMETERS else name
                    readings[key] = max(readings.get(key, -np.inf), parameters.number(name))
        wind = readings.get("WEATHER_WIND_SPEED")
        return safe, WeatherReading(
            cloud_cover_pct=readings.get("cloud"),
            wind_mps=wind / 3.6 if wind is not None else None,
            humidity_pct=readings.get("WEATHER_HUMIDITY"),
        )

    def _unpark(self) -> None:
        session = self.session
        park = session.vector(self.mount, "TELESCOPE_PARK")
        if park is not None and park.switch("PARK"):
            session.set_switch(self.mount, "TELESCOPE_PARK", "UNPARK", timeout_s=self.slew_timeout_s)

    def _park(self) -> None:
        session = self.session
        if not session.has(self.mount, "TELESCOPE_PARK"):
            raise DriverError(f"{self.site.name}: mount {self.mount!r} cannot park (no TELESCOPE_PARK)")
        session.set_switch(self.mount, "TELESCOPE_PARK", "PARK", timeout_s=self.slew_timeout_s)

    def _slew(self, ra_deg: float, dec_deg: float) -> None:
        """Goto in JNow and repeat until the mount reports the target: some mounts (INDI's simulator among
        them) aim at the hour angle the target had when the slew began and arrive late by the slew time."""
        session, mount = self.session, self.mount
        park = session.vector(mount, "TELESCOPE_PARK")
        if park is not None and park.switch("PARK"):
            raise DriverError(f"{self.site.name}: mount {mount!r} is parked")
        if session.has(mount, "ON_COORD_SET"):
            session.set_switch(mount, "ON_COORD_SET", "TRACK")
        offset = math.inf
        for _ in range(self.max_gotos):
            ra_jnow, dec_jnow = icrs_to_jnow(ra_deg, dec_deg, self.mount_clock.now())
            offset = self._goto(session, ra_jnow, dec_jnow)
            if offset <= self.pointing_tolerance_arcsec:
                return
        raise DriverError(
            f"{self.site.name}: mount {mount!r} settled {offset:.1f} arcsec from RA {ra_deg:.5f} Dec {dec_deg:+.5f} "
            f"after {self.max_gotos} gotos"
        )

    def _goto(self, session: IndiSession, ra_jnow: float, dec_jnow: float) -> float:
        """One goto; return how far (arcsec) from the target the mount settled."""
        mount, eod = self.mount, "EQUATORIAL_EOD_COORD"

        def offset(vector: Vector) -> float:
            d_ra = (vector.number("RA") * 15.0 - ra_jnow + 180.0) % 360.0 - 180.0
            d_dec = vector.number("DEC") - dec_jnow
            return 3600.0 * math.hypot(d_ra * math.cos(math.radians(dec_jnow)), d_dec)

        before = session.vector(mount, eod)
        if before is not None and before.state == "Ok" and offset(before) <= self.pointing_tolerance_arcsec:
            return offset(before)  # already there and tracking: a goto would get no answer at all
        after = session.send(mount, eod, {"RA": ra_jnow / 15.0, "DEC": dec_jnow})
        sent, busy_seen = time.monotonic(), False

        def settled() -> Vector | None:
            nonlocal busy_seen
            vector = session.vector(mount, eod)
            if vector is None:
                raise DriverError(f"{self.site.name}: mount {mount!r} went away during a slew")
            if vector.seq > after and vector.state == "Alert":
                why = vector.message or session.last_message(mount) or "no reason given"
                raise DriverError(f"{self.site.name}: mount {mount!r} refused the slew: {why}")
            if vector.state == "Busy":
                busy_seen = busy_seen or vector.seq > after
                return None
            if busy_seen and vector.seq > after:
                return vector
            # A goto that ends within one polling cycle may never report Busy (or anything): settle by time.
            return vector if time.monotonic() - sent > self.settle_s else None

        return offset(session.wait_for(f"mount {mount!r} to reach the target", settled, self.slew_timeout_s))

    def _expose_pixels(self, exposure_s: float, filter_name: str | None) -> np.ndarray:
        session, camera = self.session, self.camera
        if filter_name is not None:
            if self.wheel is None:
                raise DriverError(f"{self.site.name}: no filter wheel found for filter {filter_name!r}")
            slot = self.site.filters.index(filter_name) + 1
            session.set_numbers(self.wheel, "FILTER_SLOT", {"FILTER_SLOT_VALUE": slot}, timeout_s=60.0)
        upload = session.vector(camera, "UPLOAD_MODE")
        if upload is not None and upload.switch("UPLOAD_LOCAL"):
            session.set_switch(camera, "UPLOAD_MODE", "UPLOAD_CLIENT")  # frames must come to us
        blob = session.expose(camera, exposure_s, timeout_s=exposure_s + self.readout_timeout_s)
        pier = session.vector(self.mount, "TELESCOPE_PIER_SIDE")
        pier_west = pier is not None and pier.switch("PIER_WEST")
        return self.orientation.apply(_fits_pixels(blob, self.site.name), pier_west=pier_west)

    def _abort(self) -> None:
        """Abort any exposure (this also clears a camera error) and any slew; re-apply the camera set-up."""
        session = self.session
        if session.has(self.camera, "CCD_ABORT_EXPOSURE"):
            session.press(self.camera, "CCD_ABORT_EXPOSURE", "ABORT")
            session.wait_for(
                f"{self.camera} to stop exposing",
                lambda: _not_busy(session.vector(self.camera, "CCD_EXPOSURE")),
                self.command_timeout_s,
            )
        eod = session.vector(self.mount, "EQUATORIAL_EOD_COORD")
        park = session.vector(self.mount, "TELESCOPE_PARK")
        moving = eod is not None and eod.state == "Busy" and not (park is not None and park.state == "Busy")
        if moving and session.has(self.mount, "TELESCOPE_ABORT_MOTION"):
            session.press(self.mount, "TELESCOPE_ABORT_MOTION", "ABORT")
        self._configure_camera(session)


def _not_busy(vector: Vector | None) -> bool | None:
    return True if vector is None or vector.state != "Busy" else None


def _fits_pixels(blob: bytes, site: str) -> np.ndarray:
    """The image of a FITS BLOB as (rows=y, cols=x), as the camera wrote it."""
    from astropy.io import fits

    try:
        with fits.open(io.BytesIO(blob)) as hdul:
            data: Any = hdul[0].data
            pixels = np.array(data)
    except (OSError, ValueError, TypeError, IndexError) as error:
        raise DriverError(f"{site}: the camera sent a frame that is not readable FITS ({error})") from error
    if pixels.ndim != 2:
        raise DriverError(f"{site}: the camera sent a {pixels.ndim}-D frame; expected a 2-D image")
    return pixels
