"""Test helpers: synthetic FITS frames with chosen headers, and the real M13 frame."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import astropy
import numpy as np
from astropy.io import fits

M13 = Path(astropy.__file__).parent / "io" / "fits" / "hdu" / "compressed" / "tests" / "data" / "m13.fits"


def frame_bytes(
    *,
    seed: int = 0,
    shape: tuple[int, int] = (64, 80),
    ra: float = 250.0,
    dec: float = 36.0,
    site: str | None = "lapalma",
    date_obs: str | None = "2026-11-25T21:00:00.000",
    exptime: float | None = 30.0,
    filter_name: str | None = "R",
    wcs: bool = True,
    extra: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
) -> bytes:
    """A small FITS image with a realistic header; every field can be changed or dropped."""
    rng = np.random.default_rng(seed)
    data = rng.normal(1000.0, 10.0, shape).astype(np.float32)
    header = fits.Header()
    if site is not None:
        header["OBSERVAT"] = site
        header["TELESCOP"] = f"{site}-0.4m"
    header["INSTRUME"] = "testcam"
    if date_obs is not None:
        header["DATE-OBS"] = date_obs
    if exptime is not None:
        header["EXPTIME"] = exptime
    if filter_name is not None:
        header["FILTER"] = filter_name
    header["OBJECT"] = "field"
    if wcs:
        header.update(
            {
                "CTYPE1": "RA---TAN",
                "CTYPE2": "DEC--TAN",
                "CUNIT1": "deg",
                "CUNIT2": "deg",
                "CRVAL1": ra,
                "CRVAL2": dec,
                "CRPIX1": (shape[1] + 1) / 2,
                "CRPIX2": (shape[0] + 1) / 2,
                "CDELT1": -1.0 / 3600,
                "CDELT2": 1.0 / 3600,
                "RADESYS": "ICRS",
            }
        )
    else:
        header["RA"] = ra
        header["DEC"] = dec
    for key in drop:
        header.remove(key, ignore_missing=True)
    header.update(extra or {})
    buffer = io.BytesIO()
    fits.PrimaryHDU(data, header).writeto(buffer)
    return buffer.getvalue()


def write_frame(path: Path, **kwargs: Any) -> Path:
    """Write `frame_bytes(**kwargs)` to `path`."""
    path.write_bytes(frame_bytes(**kwargs))
    return path
