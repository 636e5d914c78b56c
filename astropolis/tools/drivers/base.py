"""One driver base class for every telescope backend (Alpaca, INDI, the in-process fake).

The base class owns everything that must not depend on the backend: command ids (a completed command is
never run twice), the preconditions checked outside any model (target above the site's horizon limit, Sun
below -12 degrees, safety monitor safe, weather within limits, exposure within camera limits, known filter),
dithering, and the FITS file: full header plus a TAN WCS built from pointing and plate scale. Subclasses
implement only the device hooks (`_connect`, `_status`, `_slew`, `_expose_pixels`, `_abort`, `_park`).
"""

from __future__ import annotations

import hashlib
import io
import math
from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from astropolis import __version__
from astropolis.lake.blobs import PutResult
from astropolis.lake.clock import Clock, SystemClock
from astropolis.tools.drivers.journal import CommandJournal, CommandResult
from astropolis.tools.errors import DriverError, Refused
from astropolis.tools.sites import Site
from astropolis.tools.visibility import sun_altitude_deg, target_altitude_deg

SUN_LIMIT_DEG = -12.0
CLOUD_FLAG_PCT = 10.0  # frames taken above this cloud cover carry CLOUDY = T


class Model(BaseModel):
    """Frozen, strict base of driver contracts."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class WeatherReading(Model):
    """What the site's weather station says (None where it has no such sensor)."""

    cloud_cover_pct: float | None = Field(default=None, description="Cloud cover, percent.")
    wind_mps: float | None = Field(default=None, description="Wind speed, m/s.")
    humidity_pct: float | None = Field(default=None, description="Relative humidity, percent.")


class SiteStatus(Model):
    """A snapshot of a site's devices."""

    site: str
    connected: bool
    safe: bool = Field(description="Safety monitor verdict.")
    weather: WeatherReading
    parked: bool
    slewing: bool
    tracking: bool
    ra_deg: float | None = Field(description="Mount RA (ICRS), degrees.")
    dec_deg: float | None = Field(description="Mount Dec (ICRS), degrees.")
    camera_state: Literal["idle", "exposing", "reading", "error", "unknown"]


class ExposureRequest(Model):
    """Take one exposure of a sky position."""

    command_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$", description="Unique per exposure.")
    ra_deg: float = Field(ge=0, lt=360, description="ICRS right ascension, degrees.")
    dec_deg: float = Field(ge=-90, le=90, description="ICRS declination, degrees.")
    exposure_s: float = Field(gt=0, description="Exposure time, seconds.")
    filter: str | None = Field(default=None, description="Filter; None keeps the current one.")
    object_name: str | None = Field(default=None, max_length=64, description="OBJECT keyword.")
    dither_arcsec: float = Field(default=5.0, ge=0, le=120, description="Maximum dither offset.")
    job_id: int | None = Field(default=None, description="Ledger job this exposure serves.")


class Exposure(Model):
    """A finished exposure: its FITS bytes, already in the frame store under `frame_id`."""

    command_id: str
    frame_id: str
    fits: bytes
    replayed: bool = Field(description="True when this command had completed before and nothing new was taken.")


class FrameStore(Protocol):
    """Where raw frames go the moment they are read out (the lake's blob store)."""

    def put_bytes(self, data: bytes) -> PutResult:
        """Store bytes, return their id."""
        ...

    def read_bytes(self, object_id: str) -> bytes:
        """Verified bytes of a stored object."""
        ...


def dither_offset(command_id: str, max_arcsec: float) -> tuple[float, float]:
    """A deterministic (dRA*cos(dec), dDec) offset in arcsec, from the command id: same id, same pointing."""
    digest = hashlib.sha256(command_id.encode()).digest()
    radius = max_arcsec * math.sqrt(int.from_bytes(digest[:4], "big") / 2**32)
    angle = 2 * math.pi * int.from_bytes(digest[4:8], "big") / 2**32
    return radius * math.cos(angle), radius * math.sin(angle)


def _mjd(moment: datetime) -> float:
    """Modified Julian Date of a UTC time (days since 1858-11-17T00:00Z, UTC days, as FITS MJD-OBS)."""
    return (moment - datetime(1858, 11, 17, tzinfo=UTC)).total_seconds() / 86400.0


class Driver(ABC):
    """A site's telescope and camera. Public methods enforce preconditions and command ids."""

    def __init__(self, site: Site, *, journal: CommandJournal, frames: FrameStore, clock: Clock | None = None) -> None:
        self.site = site
        self.journal = journal
        self.frames = frames
        self.clock: Clock = clock or SystemClock()

    # ------------------------------------------------------------------------------------ device hooks
    @abstractmethod
    def _connect(self) -> None:
        """Connect to the devices (raise DriverError if they cannot be reached)."""

    @abstractmethod
    def _status(self) -> SiteStatus:
        """Read the devices' state."""

    @abstractmethod
    def _slew(self, ra_deg: float, dec_deg: float) -> None:
        """Slew to an ICRS position and return once the mount has settled and is tracking."""

    @abstractmethod
    def _expose_pixels(self, exposure_s: float, filter_name: str | None) -> np.ndarray:
        """Expose and read out; return the image as (rows=y, cols=x), FITS order, north up, east left."""

    @abstractmethod
    def _abort(self) -> None:
        """Stop an exposure or slew in progress, leaving the devices usable."""

    @abstractmethod
    def _park(self) -> None:
        """Park the mount (close up)."""

    def _unpark(self) -> None:  # noqa: B027 - backends without a parked state need nothing here
        """Unpark the mount if it is parked."""

    def close(self) -> None:  # noqa: B027 - backends without a session need nothing here
        """Release connections."""

    # ------------------------------------------------------------------------------------------ public
    def connect(self) -> None:
        """Connect to the site's devices."""
        self._connect()

    def status(self) -> SiteStatus:
        """Connection, safety, weather, park and slew state."""
        return self._status()

    def validate(self, request: ExposureRequest, *, when: datetime | None = None) -> None:
        """Dry run: raise `Refused` naming the first precondition this exposure would break now (or `when`)."""
        when = when or self.clock.now()
        camera = self.site.camera
        if not camera.exposure_min_s <= request.exposure_s <= camera.exposure_max_s:
            raise Refused(
                "exposure_limits",
                f"{self.site.name}: exposure {request.exposure_s:g} s is outside the camera's "
                f"{camera.exposure_min_s:g}..{camera.exposure_max_s:g} s",
            )
        if request.filter is not None and request.filter not in self.site.filters:
            raise Refused(
                "filter_unknown",
                f"{self.site.name}: no filter {request.filter!r}; it has {', '.join(self.site.filters)}",
            )
        self.check_site(when)
        for moment in (when, when + timedelta(seconds=request.exposure_s)):
            altitude = target_altitude_deg(self.site, request.ra_deg, request.dec_deg, moment)
            if altitude < self.site.horizon_deg:
                raise Refused(
                    "below_horizon",
                    f"{self.site.name}: target RA {request.ra_deg:.4f} Dec {request.dec_deg:+.4f} is at altitude "
                    f"{altitude:.1f} deg at {moment.isoformat()}, below the site's limit of "
                    f"{self.site.horizon_deg:g} deg",
                )

    def check_site(self, when: datetime | None = None) -> SiteStatus:
        """Raise `Refused` unless the site is dark, safe and within its weather limits; return its status."""
        when = when or self.clock.now()
        sun = sun_altitude_deg(self.site, when)
        if sun >= SUN_LIMIT_DEG:
            raise Refused(
                "sun_up", f"{self.site.name}: the Sun is at {sun:.1f} deg at {when.isoformat()}; need below -12"
            )
        status = self.status()
        if not status.connected:
            raise Refused("site_unavailable", f"{self.site.name}: devices are not connected")
        if not status.safe:
            raise Refused("unsafe", f"{self.site.name}: the safety monitor says unsafe")
        weather, limits = status.weather, self.site.weather_limits
        for value, limit, label in (
            (weather.cloud_cover_pct, limits.max_cloud_cover_pct, "cloud cover {:.0f}% > {:.0f}%"),
            (weather.wind_mps, limits.max_wind_mps, "wind {:.1f} m/s > {:.1f} m/s"),
            (weather.humidity_pct, limits.max_humidity_pct, "humidity {:.0f}% > {:.0f}%"),
        ):
            if value is not None and value > limit:
                raise Refused("weather", f"{self.site.name}: {label.format(value, limit)}")
        return status

    def slew(self, command_id: str, ra_deg: float, dec_deg: float) -> CommandResult:
        """Point at an ICRS position (checked against horizon, Sun, safety and weather first)."""
        done = self.journal.completed(self.site.name, command_id)
        if done is not None:
            return done
        now = self.clock.now()
        self.check_site(now)
        altitude = target_altitude_deg(self.site, ra_deg, dec_deg, now)
        if altitude < self.site.horizon_deg:
            raise Refused("below_horizon", f"{self.site.name}: altitude {altitude:.1f} deg is below the limit")
        self.journal.record(self.site.name, command_id, "slew", "started")
        try:
            self._unpark()
            self._slew(ra_deg, dec_deg)
        except Exception as error:
            self.journal.record(self.site.name, command_id, "slew", "failed", detail={"error": str(error)})
            raise
        result = self.journal.record(
            self.site.name, command_id, "slew", "completed", detail={"ra_deg": ra_deg, "dec_deg": dec_deg}
        )
        assert result is not None
        return result

    def expose(self, request: ExposureRequest) -> Exposure:
        """Dither, point, expose, read out and store the FITS frame; a completed command id is never re-run."""
        done = self.journal.completed(self.site.name, request.command_id)
        if done is not None and done.frame_id is not None:
            return Exposure(
                command_id=request.command_id,
                frame_id=done.frame_id,
                fits=self.frames.read_bytes(done.frame_id),
                replayed=True,
            )
        self.validate(request)
        status = self.status()
        d_ra, d_dec = dither_offset(request.command_id, request.dither_arcsec)
        dec = max(-90.0, min(90.0, request.dec_deg + d_dec / 3600.0))
        ra = (request.ra_deg + d_ra / 3600.0 / max(math.cos(math.radians(dec)), 1e-6)) % 360.0
        self.journal.record(self.site.name, request.command_id, "expose", "started")
        try:
            self._unpark()
            self._slew(ra, dec)
            opened = self.clock.now()
            pixels = self._expose_pixels(request.exposure_s, request.filter)
        except Exception as error:
            self.journal.record(self.site.name, request.command_id, "expose", "failed", detail={"error": str(error)})
            if isinstance(error, DriverError | Refused):
                raise
            raise DriverError(f"{self.site.name}: exposure {request.command_id} failed: {error}") from error
        fits_bytes = self.fits_file(pixels, request, ra, dec, opened, status)
        put = self.frames.put_bytes(fits_bytes)
        self.journal.record(
            self.site.name,
            request.command_id,
            "expose",
            "completed",
            frame_id=put.id,
            detail={"ra_deg": ra, "dec_deg": dec, "exposure_s": request.exposure_s},
        )
        return Exposure(command_id=request.command_id, frame_id=put.id, fits=fits_bytes, replayed=False)

    def abort(self) -> None:
        """Stop whatever is moving or exposing."""
        self._abort()

    def park(self, command_id: str) -> CommandResult:
        """Park the mount (idempotent by command id)."""
        done = self.journal.completed(self.site.name, command_id)
        if done is not None:
            return done
        self.journal.record(self.site.name, command_id, "park", "started")
        try:
            self._park()
        except Exception as error:
            self.journal.record(self.site.name, command_id, "park", "failed", detail={"error": str(error)})
            raise
        result = self.journal.record(self.site.name, command_id, "park", "completed")
        assert result is not None
        return result

    # -------------------------------------------------------------------------------------------- FITS
    def fits_file(
        self,
        pixels: np.ndarray,
        request: ExposureRequest,
        ra_deg: float,
        dec_deg: float,
        opened: datetime,
        status: SiteStatus,
    ) -> bytes:
        """FITS bytes with a full observing header and a TAN WCS from the pointing and the plate scale."""
        from astropy.io import fits

        site = self.site
        height, width = pixels.shape
        scale_deg = site.pixel_scale_arcsec / 3600.0
        altitude = target_altitude_deg(site, ra_deg, dec_deg, opened)
        airmass = 1.0 / math.sin(math.radians(altitude)) if altitude > 1 else None
        cloud = status.weather.cloud_cover_pct
        header = fits.Header()
        cards: list[tuple[str, object, str]] = [
            ("DATE-OBS", opened.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3], "UTC start of exposure"),
            ("MJD-OBS", round(_mjd(opened), 8), "[d] MJD (UTC) at start of exposure"),
            ("EXPTIME", float(request.exposure_s), "[s] exposure time"),
            ("OBSERVAT", site.name, "Astropolis site"),
            ("TELESCOP", f"{site.name}-{site.optics.aperture_mm:g}mm", "telescope"),
            ("INSTRUME", f"{self.backend}-camera", "camera and driver backend"),
            ("SITELAT", site.latitude_deg, "[deg] geodetic latitude"),
            ("SITELONG", site.longitude_deg, "[deg] east longitude"),
            ("SITEELEV", site.elevation_m, "[m] elevation"),
            ("FILTER", request.filter or "NONE", "filter"),
            ("OBJECT", request.object_name or "field", "target name"),
            ("RA", ra_deg, "[deg] ICRS pointing (dithered)"),
            ("DEC", dec_deg, "[deg] ICRS pointing (dithered)"),
            ("TARG-RA", request.ra_deg, "[deg] requested target RA"),
            ("TARG-DEC", request.dec_deg, "[deg] requested target Dec"),
            ("ALTITUDE", round(altitude, 4), "[deg] altitude at start"),
            ("AIRMASS", round(airmass, 4) if airmass else "UNKNOWN", "plane-parallel airmass at start"),
            ("FOCALLEN", site.optics.focal_length_mm, "[mm] focal length"),
            ("APTDIA", site.optics.aperture_mm, "[mm] aperture"),
            ("XPIXSZ", site.camera.pixel_um, "[um] pixel size"),
            ("PIXSCALE", round(site.pixel_scale_arcsec, 6), "[arcsec/px] plate scale"),
            ("CLOUDCVR", cloud if cloud is not None else "UNKNOWN", "[%] cloud cover at start"),
            ("CLOUDY", bool(cloud is not None and cloud >= CLOUD_FLAG_PCT), "taken under cloud"),
            ("CMDID", request.command_id, "Astropolis command id"),
            ("JOBID", request.job_id if request.job_id is not None else -1, "Astropolis job id (-1: none)"),
            ("SWCREATE", f"astropolis {__version__}", "software"),
            ("RADESYS", "ICRS", ""),
            ("CTYPE1", "RA---TAN", ""),
            ("CTYPE2", "DEC--TAN", ""),
            ("CUNIT1", "deg", ""),
            ("CUNIT2", "deg", ""),
            ("CRVAL1", ra_deg, "[deg] pointing"),
            ("CRVAL2", dec_deg, "[deg] pointing"),
            ("CRPIX1", (width + 1) / 2.0, "image centre"),
            ("CRPIX2", (height + 1) / 2.0, "image centre"),
            ("CDELT1", -scale_deg, "[deg/px] east to the left"),
            ("CDELT2", scale_deg, "[deg/px] north up"),
        ]
        for key, value, comment in cards:
            header[key] = (value, comment)
        data = np.asarray(pixels)
        if data.dtype.kind in "iu" and data.min(initial=0) >= 0 and data.max(initial=0) <= 65535:
            data = data.astype(np.uint16)
        buffer = io.BytesIO()
        fits.PrimaryHDU(data, header).writeto(buffer)
        return buffer.getvalue()

    @property
    def backend(self) -> str:
        """Short backend name for headers and messages."""
        return type(self).__name__.removesuffix("Driver").lower()
