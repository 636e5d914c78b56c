"""The camera: its flat field (vignetting, pixel response, dust), noise and digitisation, and the FITS header
our drivers write (astropolis.tools.drivers.base), with the same keywords and a TAN WCS."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np

from astropolis.models.simulator.spec import FieldSpec, SimFrame

VIGNETTING = 0.05  # fractional loss in the frame's corners
PIXEL_RESPONSE_RMS = 0.004
NORTH_DEG = 90.0  # north is up: +y, counter-clockwise from +x


def _site_seed(site: str) -> int:
    return int.from_bytes(hashlib.sha256(f"astropolis-sim-camera:{site}".encode()).digest()[:4], "big")


@lru_cache(maxsize=8)
def flat_field(site: str, width: int, height: int) -> np.ndarray:
    """The site camera's relative response (mean near 1): radial vignetting, 0.4% pixel-to-pixel response and a
    few dust donuts. Seeded by the site name, so every frame of one site shares it."""
    rng = np.random.default_rng(_site_seed(site))
    y = np.arange(height, dtype=np.float64)[:, None] - (height - 1) / 2
    x = np.arange(width, dtype=np.float64)[None, :] - (width - 1) / 2
    r2 = (x**2 + y**2) / ((width / 2) ** 2 + (height / 2) ** 2)
    flat = (1.0 - VIGNETTING * r2) * (1.0 + PIXEL_RESPONSE_RMS * rng.standard_normal((height, width)))
    donuts = max(1, round(3 * width * height / 512**2))
    for _ in range(min(donuts, 40)):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        radius, depth = rng.uniform(6.0, 20.0), rng.uniform(0.01, 0.03)
        x0, x1 = max(0, int(cx - radius - 3)), min(width, int(cx + radius + 4))
        y0, y1 = max(0, int(cy - radius - 3)), min(height, int(cy + radius + 4))
        if x0 >= x1 or y0 >= y1:
            continue
        rr = np.hypot(np.arange(x0, x1)[None, :] - cx, np.arange(y0, y1)[:, None] - cy)
        ring = np.exp(-0.5 * ((rr - 0.75 * radius) / (0.2 * radius)) ** 2)
        flat[y0:y1, x0:x1] *= 1.0 - depth * ring
    flat.setflags(write=False)
    return flat


def digitise(electrons: np.ndarray, field: FieldSpec, noise: np.ndarray) -> np.ndarray:
    """ADU the camera writes: shot and read noise (Gaussian, variance = expected electrons + read noise²,
    drawn from the fixed standard-normal field `noise`), gain, bias, integer rounding and clipping."""
    expected = np.clip(electrons, 0.0, None)
    counts = expected + np.sqrt(expected + field.read_noise_e**2) * noise
    adu = np.rint(field.bias_adu + counts / field.gain_e_per_adu)
    return np.clip(adu, 0.0, field.saturation_adu).astype(np.float32)


def mjd(moment: datetime) -> float:
    """Modified Julian Date of a UTC time (as FITS MJD-OBS)."""
    return (moment - datetime(1858, 11, 17, tzinfo=UTC)).total_seconds() / 86400.0


def make_header(field: FieldSpec, object_name: str, psf: dict[str, float]) -> Any:
    """The FITS header of a simulated frame: the drivers' keywords, a TAN WCS (north up, east left) and the
    camera and PSF facts."""
    from astropy.io import fits

    scale = field.pixel_scale_arcsec / 3600.0
    header = fits.Header()
    cards: list[tuple[str, object, str]] = [
        ("DATE-OBS", field.date_obs.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3], "UTC start of exposure"),
        ("MJD-OBS", round(mjd(field.date_obs), 8), "[d] MJD (UTC) at start of exposure"),
        ("EXPTIME", float(field.exposure_s), "[s] exposure time"),
        ("OBSERVAT", field.site, "Astropolis site"),
        ("TELESCOP", f"{field.site}-sim", "telescope"),
        ("INSTRUME", "astropolis-simulator", "camera and driver backend"),
        ("IMAGETYP", "LIGHT", "frame type"),
        ("FILTER", field.filter, "filter"),
        ("OBJECT", object_name[:64], "target name"),
        ("RA", field.ra_deg % 360.0, "[deg] ICRS pointing"),
        ("DEC", field.dec_deg, "[deg] ICRS pointing"),
        ("PIXSCALE", round(field.pixel_scale_arcsec, 6), "[arcsec/px] plate scale"),
        ("GAIN", field.gain_e_per_adu, "[e-/ADU] gain"),
        ("RDNOISE", field.read_noise_e, "[e-] read noise"),
        ("BIASLEV", field.bias_adu, "[ADU] bias level"),
        ("SATURATE", field.saturation_adu, "[ADU] saturation level"),
        ("SEEING", round(field.seeing_arcsec, 4), "[arcsec] simulated atmospheric seeing FWHM"),
        ("PSFBETA", round(psf["beta"], 4), "simulated Moffat beta"),
        ("SIMULATD", True, "rendered by astropolis.models.simulator"),
        ("SIMSEED", field.seed, "simulator seed"),
        ("JOBID", -1, "Astropolis job id (-1: none)"),
        ("RADESYS", "ICRS", ""),
        ("EQUINOX", 2000.0, ""),
        ("CTYPE1", "RA---TAN", ""),
        ("CTYPE2", "DEC--TAN", ""),
        ("CUNIT1", "deg", ""),
        ("CUNIT2", "deg", ""),
        ("CRVAL1", field.ra_deg % 360.0, "[deg] pointing"),
        ("CRVAL2", field.dec_deg, "[deg] pointing"),
        ("CRPIX1", (field.width + 1) / 2.0, "image centre"),
        ("CRPIX2", (field.height + 1) / 2.0, "image centre"),
        ("CDELT1", -scale, "[deg/px] east to the left"),
        ("CDELT2", scale, "[deg/px] north up"),
    ]
    for key, value, comment in cards:
        header[key] = (value, comment)
    return header


def header_wcs(header: Any) -> Any:
    """The celestial WCS of a header."""
    from astropy.wcs import WCS

    return WCS(header, naxis=2)


def to_fits_bytes(frame: SimFrame) -> bytes:
    """The frame as a FITS file (BITPIX 16 with BZERO 32768 when the pixels are whole ADU in 0..65535, which is
    how the cameras write them; otherwise float32)."""
    from astropy.io import fits

    data = frame.data
    finite = np.isfinite(data).all()
    whole = bool(finite and np.all(data == np.rint(data)) and data.min() >= 0 and data.max() <= 65535)
    buffer = io.BytesIO()
    fits.PrimaryHDU(data.astype(np.uint16) if whole else data.astype(np.float32), frame.header.copy()).writeto(buffer)
    return buffer.getvalue()
