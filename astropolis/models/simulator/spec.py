"""What a simulated frame is made of: the field (where and how it is taken), the defects injected into it,
the transients added to it, and the rendered result with its ground truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

DEFAULT_DATE_OBS = datetime(2026, 11, 25, 22, 0, tzinfo=UTC)


@dataclass(frozen=True)
class FieldSpec:
    """Where and how a frame is taken; every random choice of the render derives from `seed`."""

    ra_deg: float
    """ICRS right ascension of the frame centre, degrees."""
    dec_deg: float
    """ICRS declination of the frame centre, degrees."""
    width: int = 512
    """Columns (x), pixels."""
    height: int = 512
    """Rows (y), pixels."""
    pixel_scale_arcsec: float = 0.663
    """Plate scale, arcsec per pixel."""
    seeing_arcsec: float = 2.0
    """Atmospheric seeing: FWHM of the Moffat PSF at best focus, arcsec."""
    exposure_s: float = 60.0
    """Exposure time, seconds."""
    filter: str = "R"
    """Filter name written to the header (magnitudes are treated as this band's)."""
    seed: int = 0
    """Seed of the frame's own randomness (noise, defects, sky gradient); the sky itself is seeded by position."""
    sky_mag_arcsec2: float = 20.5
    """Sky surface brightness, mag per square arcsec."""
    zero_point: float = 22.0
    """Magnitude giving 1 e-/s (telescope, camera and filter together)."""
    gain_e_per_adu: float = 1.5
    """Electrons per ADU."""
    read_noise_e: float = 8.0
    """Read noise, electrons rms."""
    bias_adu: float = 1000.0
    """Bias level, ADU."""
    saturation_adu: float = 65535.0
    """Largest ADU the camera writes; brighter pixels clip here."""
    site: str = "sim"
    """Site name (OBSERVAT); the camera's flat field is seeded by it, so one site keeps one flat."""
    date_obs: datetime = DEFAULT_DATE_OBS
    """UTC start of the exposure (timezone-aware)."""
    include_galaxies: bool = True
    """Render OpenNGC galaxies that fall in the field."""
    psf_beta: float | None = None
    """Moffat beta; None draws one in 2.5..4.0 from `seed` (real seeing PSFs vary)."""
    dark_e_per_s: float = 0.05
    """Dark current, electrons per second per pixel."""
    object_name: str | None = None
    """OBJECT keyword; None names the OpenNGC galaxy nearest the centre, or 'field'."""
    scintillation_1s: float = 0.0
    """Scintillation: each star's flux varies by this fraction rms in a 1 s exposure, falling as 1/sqrt(exposure)
    (small telescopes see a few per cent in short exposures). 0, the default, is none."""
    noise_draw: int = 0
    """Which draw of the pixel noise (photon, read) to render: another value redraws only the noise, for the same
    sky, defects and transients (how much a measurement owes to the noise); 0, the default, is the seed's own."""

    def __post_init__(self) -> None:
        if not (-90.0 <= self.dec_deg <= 90.0):
            raise ValueError(f"dec_deg {self.dec_deg} is outside -90..90")
        if self.width < 16 or self.height < 16:
            raise ValueError(f"frame {self.width}x{self.height} is too small (16x16 at least)")
        for name in ("pixel_scale_arcsec", "seeing_arcsec", "exposure_s", "gain_e_per_adu"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if not 0.0 <= self.scintillation_1s < 1.0:
            raise ValueError(f"scintillation_1s {self.scintillation_1s} is outside 0..1")
        if self.date_obs.tzinfo is None:
            raise ValueError("date_obs must be timezone-aware (UTC)")

    @property
    def sky_e_per_pixel(self) -> float:
        """Sky electrons per pixel over the exposure (before flat field and clouds)."""
        per_arcsec2 = 10 ** (-0.4 * (self.sky_mag_arcsec2 - self.zero_point))
        return per_arcsec2 * self.pixel_scale_arcsec**2 * self.exposure_s

    def flux_e(self, mag: float | np.ndarray) -> Any:
        """Electrons collected over the exposure from a source of magnitude `mag` (clear sky)."""
        return 10 ** (-0.4 * (np.asarray(mag, dtype=np.float64) - self.zero_point)) * self.exposure_s

    @property
    def radius_deg(self) -> float:
        """Half the frame diagonal, degrees."""
        return 0.5 * float(np.hypot(self.width, self.height)) * self.pixel_scale_arcsec / 3600.0


@dataclass(frozen=True)
class Defects:
    """Defects to inject, all off by default; each value is a severity (see the field docs)."""

    clouds: float = 0.0
    """Transparency loss 0..1 (mean over the frame), with a spatial gradient and patchy structure; clouds also
    brighten the sky (they reflect the site's light pollution)."""
    focus: float = 1.0
    """PSF width multiplier: 1 in focus, >1 defocused (the pupil's donut shows from about 2 on)."""
    tracking_arcsec: float = 0.0
    """Length of the star trail a tracking error leaves over the exposure, arcsec."""
    tracking_angle_deg: float = 0.0
    """Direction of the trail, degrees counter-clockwise from the +x (column) axis of the image."""
    satellite_trails: int = 0
    """Number of satellite trails (straight, continuous, above the clouds)."""
    aircraft_trails: int = 0
    """Number of aircraft trails (straight, dashed by blinking lights, below the clouds)."""
    hot_pixels: int = 0
    """Number of hot pixels (single pixels, a dark-current excess)."""
    hot_columns: int = 0
    """Number of hot columns (whole or partial columns with a raised level)."""
    cosmic_rays: int = 0
    """Number of cosmic-ray hits (sharp single pixels and short tracks)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.clouds <= 1.0:
            raise ValueError(f"clouds {self.clouds} is outside 0..1")
        if self.focus < 1.0:
            raise ValueError(f"focus {self.focus} must be >= 1 (1 is best focus)")
        if self.tracking_arcsec < 0:
            raise ValueError("tracking_arcsec must be >= 0")
        for name in ("satellite_trails", "aircraft_trails", "hot_pixels", "hot_columns", "cosmic_rays"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")

    @property
    def any(self) -> bool:
        """Whether any defect is on."""
        return self != Defects()


@dataclass(frozen=True)
class Transient:
    """A new point source at a sky position, given either the S/N it should have in the frame or its magnitude."""

    ra_deg: float
    """ICRS right ascension, degrees."""
    dec_deg: float
    """ICRS declination, degrees."""
    snr: float | None = None
    """Signal-to-noise ratio in the frame (see `astropolis.models.simulator.psf.snr_definition`)."""
    mag: float | None = None
    """Magnitude (same band and zero point as the field)."""
    host: str | None = None
    """Name of the host galaxy, if any (recorded in the truth)."""

    def __post_init__(self) -> None:
        if (self.snr is None) == (self.mag is None):
            raise ValueError("give exactly one of snr and mag")
        if self.snr is not None and not self.snr > 0:
            raise ValueError("snr must be positive")


@dataclass(frozen=True)
class SimFrame:
    """A rendered frame: pixels (float32 ADU; rows=y, north up, east left), its FITS header and ground truth."""

    data: np.ndarray
    """Pixel values, ADU, float32, FITS orientation."""
    header: Any
    """astropy.io.fits.Header with the observing keywords and a TAN WCS."""
    truth: dict[str, Any] = field(default_factory=dict)
    """What was put in: stars, galaxies, defects, transients, trails, hot pixels, cosmic rays, PSF, sky."""

    @property
    def wcs(self) -> Any:
        """The frame's celestial WCS (astropy)."""
        from astropy.wcs import WCS

        return WCS(self.header, naxis=2)
