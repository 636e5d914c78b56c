"""Sanity checks of the quality resident on real frames shipped in installed packages.

    python -m astropolis.models.quality.realframes

Science frames: the DSS image of M13 in astropy's test data; from Debian's eso-midas-testdata the VLT/ISAAC
and NTT/EMMI frames, the MIDAS demo CCD frame (NGC 5194/5195) and three DSS plate scans. Calibration frames:
the NOT/ALFOSC twilight flat, the Danish 1.54 m/DFOSC sky flat and the VLT/VIMOS dome flats. A flat must not
be graded as a good science frame.

Several of these files have no celestial WCS, so the lake's loader (astropolis.models.base.load_frame) would
refuse them before any resident runs; here they go straight to `assess`, which needs only pixels and, for
arcsec, a plate scale (read from the WCS where there is one, else given below from the instruments' manuals).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MIDAS = Path("/usr/lib/eso-midas/22FEB/test/prim")


def m13_path() -> Path:
    """The DSS image of M13 in astropy's test data."""
    import astropy

    return Path(astropy.__file__).parent / "io" / "fits" / "hdu" / "compressed" / "tests" / "data" / "m13.fits"


@dataclass(frozen=True)
class RealFrame:
    """One real frame to grade."""

    label: str
    path: Path
    hdu: int
    kind: str  # "science" or "flat"
    pixel_scale_arcsec: float | None = None  # for files without a usable WCS


def real_frames() -> list[RealFrame]:
    """The real frames that are installed here."""
    frames = [
        RealFrame("M13 (DSS, astropy test data)", m13_path(), 0, "science"),
        RealFrame("VLT ISAAC PSR J1740-3052", MIDAS / "ISAAC.2006-04-13T06:32:38.944.fits", 0, "science"),
        RealFrame("NTT EMMI average frame", MIDAS / "hbo.fits", 0, "science", 0.166),
        RealFrame("MIDAS demo CCD (NGC 5194)", MIDAS / "ccd.fits", 0, "science", 1.0),
        RealFrame("DSS plate dss23357", MIDAS / "dss_test1.fits", 0, "science"),
        RealFrame("DSS plate dss23509", MIDAS / "dss_test2.fits", 0, "science"),
        RealFrame("DSS plate dss495", MIDAS / "wcstest.mt", 0, "science"),
        RealFrame("NOT ALFOSC twilight flat", MIDAS / "NOT.fits", 1, "flat"),
        RealFrame("DK1.54 DFOSC sky flat", MIDAS / "badfitskeys.mt", 0, "flat"),
        RealFrame("VLT VIMOS dome flat, chip 1", MIDAS / "vimos.fits", 1, "flat"),
        RealFrame("VLT VIMOS dome flat, chip 2", MIDAS / "vimos.fits", 2, "flat"),
    ]
    return [frame for frame in frames if frame.path.is_file()]


def load(frame: RealFrame) -> tuple[np.ndarray, Any]:
    """Pixels (float64, 2-D) and header of one real frame."""
    from astropy.io import fits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(frame.path, memmap=False, ignore_missing_end=True) as hdul:
            hdu = hdul[frame.hdu]
            data = np.asarray(hdu.data, dtype=np.float64)
            header = hdu.header.copy()
    if data.ndim > 2:
        data = data.reshape(data.shape[-2:])
    return data, header


def grade(frame: RealFrame) -> dict[str, Any]:
    """The quality report of one real frame, in brief."""
    from astropolis.models.quality.resident import assess

    data, header = load(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = assess(data, header, pixel_scale_arcsec=frame.pixel_scale_arcsec)
    return {
        "label": frame.label,
        "file": f"{frame.path.name}[{frame.hdu}]",
        "kind": frame.kind,
        "shape": list(data.shape),
        "score": result.score,
        "raised": result.raised,
        "star_count": result.star_count,
        "seeing_arcsec": result.seeing_arcsec,
        "elongation": result.elongation,
    }


def main() -> None:
    """Print the grades of every installed real frame as JSON lines."""
    rows = [grade(frame) for frame in real_frames()]
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
