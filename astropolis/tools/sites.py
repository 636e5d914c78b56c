"""The site registry: where each telescope is, what it carries, and how to reach its driver.

Sites are built with `EarthLocation.from_geodetic`, never `of_site`/`from_name` (those need the network).
The registry is a TOML file of `[[site]]` tables; `demo_sites()` gives three well-separated demo sites.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from astropolis.tools.errors import OperatorError

if TYPE_CHECKING:
    from astropy.coordinates import EarthLocation


class Model(BaseModel):
    """Frozen, strict base of the site contracts."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Optics(Model):
    """The telescope's optics."""

    aperture_mm: float = Field(gt=0, le=10_000, description="Clear aperture, mm.")
    focal_length_mm: float = Field(gt=0, le=100_000, description="Effective focal length, mm.")


class CameraSpec(Model):
    """The science camera."""

    width_px: int = Field(ge=16, le=16_384, description="Sensor width, pixels.")
    height_px: int = Field(ge=16, le=16_384, description="Sensor height, pixels.")
    pixel_um: float = Field(gt=0, le=100, description="Pixel pitch, micrometres.")
    exposure_min_s: float = Field(default=0.001, ge=0, description="Shortest exposure, s.")
    exposure_max_s: float = Field(default=3600.0, gt=0, description="Longest exposure, s.")


class WeatherLimits(Model):
    """Above any of these the site closes."""

    max_cloud_cover_pct: float = Field(default=30.0, ge=0, le=100, description="Cloud cover, percent.")
    max_wind_mps: float = Field(default=15.0, ge=0, description="Wind speed, m/s.")
    max_humidity_pct: float = Field(default=90.0, ge=0, le=100, description="Relative humidity, percent.")


class DriverSpec(Model):
    """How to reach the site's devices."""

    kind: Literal["alpaca", "indi", "fake"] = Field(description="Driver backend.")
    host: str = Field(default="127.0.0.1", description="Host of the Alpaca server or indiserver.")
    port: int = Field(default=11111, ge=1, le=65535, description="Port of the Alpaca server or indiserver.")
    telescope: str = Field(default="0", description="Alpaca device number, or INDI device name, of the mount.")
    camera: str = Field(default="0", description="Alpaca device number, or INDI device name, of the camera.")


class Site(Model):
    """One telescope site."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", description="Short lowercase site name.")
    latitude_deg: float = Field(ge=-90, le=90, description="Geodetic latitude, degrees north.")
    longitude_deg: float = Field(ge=-180, le=180, description="Longitude, degrees east.")
    elevation_m: float = Field(ge=-500, le=6000, description="Height above the WGS84 ellipsoid, m.")
    horizon_deg: float = Field(default=20.0, ge=0, le=80, description="Lowest altitude the site observes at.")
    optics: Optics
    camera: CameraSpec
    filters: tuple[str, ...] = Field(default=("R",), min_length=1, description="Filters in the wheel.")
    driver: DriverSpec
    quality_threshold: float = Field(default=50.0, ge=0, le=100, description="Frames scoring below are retaken.")
    weather_limits: WeatherLimits = Field(default_factory=WeatherLimits)
    slew_rate_deg_s: float = Field(default=5.0, gt=0, le=100, description="Slew speed used for planning.")
    overhead_s: float = Field(default=10.0, ge=0, description="Settle and readout overhead per pointing, s.")

    @property
    def pixel_scale_arcsec(self) -> float:
        """Arcseconds per pixel: 206.265 * pixel pitch (um) / focal length (mm)."""
        return 206.264806 * self.camera.pixel_um / self.optics.focal_length_mm

    @property
    def field_of_view_deg(self) -> tuple[float, float]:
        """Width and height of the field, degrees."""
        scale = self.pixel_scale_arcsec / 3600.0
        return self.camera.width_px * scale, self.camera.height_px * scale

    def location(self) -> EarthLocation:
        """The site as an astropy EarthLocation (offline: from_geodetic)."""
        from astropy import units as u
        from astropy.coordinates import EarthLocation

        return EarthLocation.from_geodetic(
            lon=self.longitude_deg * u.deg, lat=self.latitude_deg * u.deg, height=self.elevation_m * u.m
        )


class SiteRegistry(Model):
    """All sites the network runs."""

    sites: tuple[Site, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> SiteRegistry:
        names = [site.name for site in self.sites]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"site names must be unique; repeated: {', '.join(duplicates)}")
        endpoints = [(s.driver.host, s.driver.port) for s in self.sites if s.driver.kind != "fake"]
        clashes = sorted({f"{h}:{p}" for h, p in endpoints if endpoints.count((h, p)) > 1})
        if clashes:
            raise ValueError(f"two sites share a driver endpoint: {', '.join(clashes)}")
        return self

    def __iter__(self) -> Iterator[Site]:  # type: ignore[override]
        return iter(self.sites)

    def __len__(self) -> int:
        return len(self.sites)

    def get(self, name: str) -> Site:
        """The site called `name`."""
        for site in self.sites:
            if site.name == name:
                return site
        raise OperatorError(f"no site named {name!r}; known sites: {', '.join(s.name for s in self.sites)}")

    @property
    def names(self) -> tuple[str, ...]:
        """Site names in registry order."""
        return tuple(site.name for site in self.sites)

    @classmethod
    def from_toml(cls, path: Path) -> SiteRegistry:
        """Load a registry from a TOML file of `[[site]]` tables."""
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise OperatorError(f"{path}: no such site registry file") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise OperatorError(f"{path}: not valid TOML ({error})") from None
        try:
            return cls(sites=tuple(data.get("site", ())))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise OperatorError(f"{path}: site registry field {where}: {first['msg']}") from None

    def to_toml(self) -> str:
        """The registry as TOML (round-trips through `from_toml`)."""
        lines: list[str] = []
        for site in self.sites:
            lines.append("[[site]]")
            nested = []
            for key, value in site.model_dump(mode="json").items():
                if isinstance(value, dict):
                    nested.append((key, value))
                else:
                    lines.append(f"{key} = {_toml_value(value)}")
            for key, table in nested:
                lines.append(f"[site.{key}]")
                lines.extend(f"{k} = {_toml_value(v)}" for k, v in table.items())
            lines.append("")
        return "\n".join(lines)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("TOML cannot hold NaN or infinity here")
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, Sequence):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


DEMO_FIRST_PORT = {"alpaca": 11111, "indi": 7624, "fake": 11111}


def demo_sites(kind: Literal["alpaca", "indi", "fake"] = "alpaca", base_port: int | None = None) -> SiteRegistry:
    """Three demo sites at well-separated longitudes: La Palma, Cerro Pachón (Chile), Siding Spring."""
    coordinates = {
        "lapalma": (28.7606, -17.8816, 2396.0),
        "chile": (-30.2407, -70.7366, 2715.0),
        "siding-spring": (-31.2733, 149.0617, 1165.0),
    }
    first_port = base_port if base_port is not None else DEMO_FIRST_PORT[kind]
    sites = []
    for index, (name, (lat, lon, height)) in enumerate(coordinates.items()):
        port = first_port + index
        sites.append(
            Site(
                name=name,
                latitude_deg=lat,
                longitude_deg=lon,
                elevation_m=height,
                horizon_deg=20.0,
                optics=Optics(aperture_mm=400.0, focal_length_mm=2800.0),
                camera=CameraSpec(width_px=512, height_px=512, pixel_um=9.0),
                filters=("R", "V", "B"),
                driver=DriverSpec(kind=kind, port=port),
                quality_threshold=50.0,
            )
        )
    return SiteRegistry(sites=tuple(sites))
