"""What the quality resident reads from a header besides the pixels: exposure, camera constants, plate scale.

Every value may be missing (frames from other observatories, calibration frames): each has a documented
fallback, so the pixels can always be judged.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

GAIN_KEYS = ("GAIN", "EGAIN", "CCDGAIN", "HIERARCH ESO DET OUT1 GAIN")
READ_NOISE_KEYS = ("RDNOISE", "READNOIS", "RON", "HIERARCH ESO DET OUT1 RON")
BIAS_KEYS = ("BIASLEV", "PEDESTAL")
SATURATION_KEYS = ("SATURATE", "SATLEVEL", "MAXADU")
SCALE_KEYS = ("PIXSCALE", "SECPIX", "PIXSCAL1")


def _number(header: Any, keys: tuple[str, ...]) -> float | None:
    for key in keys:
        try:
            value = header.get(key) if header is not None else None
        except Exception:
            value = None
        if isinstance(value, bool) or value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            return number
    return None


@dataclass(frozen=True)
class FrameMeta:
    """Header facts the features use; None where the header does not say."""

    exposure_s: float | None = None
    gain_e_per_adu: float | None = None
    read_noise_e: float | None = None
    bias_adu: float | None = None
    saturation_adu: float | None = None
    pixel_scale_arcsec: float | None = None
    filter: str | None = None

    @classmethod
    def from_header(cls, header: Any, *, pixel_scale_arcsec: float | None = None) -> FrameMeta:
        """Read the facts from a FITS header; the plate scale from PIXSCALE-like keys or else the WCS."""
        gain = _number(header, GAIN_KEYS)
        scale = pixel_scale_arcsec or _number(header, SCALE_KEYS) or wcs_scale_arcsec(header)
        text = header.get("FILTER") if header is not None else None
        return cls(
            exposure_s=_number(header, ("EXPTIME", "EXPOSURE")),
            gain_e_per_adu=gain if gain is not None and gain > 0 else None,
            read_noise_e=_number(header, READ_NOISE_KEYS),
            bias_adu=_number(header, BIAS_KEYS),
            saturation_adu=_number(header, SATURATION_KEYS),
            pixel_scale_arcsec=scale if scale is not None and 0.01 < scale < 100 else None,
            filter=str(text) if text not in (None, "") else None,
        )


def wcs_scale_arcsec(header: Any) -> float | None:
    """Mean pixel scale of a header's celestial WCS, arcsec per pixel (None without one)."""
    if header is None:
        return None
    try:
        from astropy.wcs import WCS
        from astropy.wcs.utils import proj_plane_pixel_scales

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs = WCS(header, naxis=2)
            if not wcs.has_celestial:
                return None
            scales = proj_plane_pixel_scales(wcs.celestial)
        value = float(math.sqrt(abs(scales[0] * scales[1]))) * 3600.0
        return value if math.isfinite(value) and value > 0 else None
    except Exception:
        return None
