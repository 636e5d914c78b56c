"""Read what the catalog needs from a FITS file, and refuse anything that is not a usable image.

The byte structure is checked first with our own block scanner (so a truncated or non-FITS file is named as
such before astropy sees it), then astropy reads the image header: time, exposure, pointing, filter, site,
shape and WCS.
"""

from __future__ import annotations

import hashlib
import math
import re
import warnings
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from astropolis.lake.errors import InvalidFrame

BLOCK = 2880
CARD = 80
_MJD_EPOCH = datetime(1858, 11, 17, tzinfo=UTC)
_SITE_OVERRIDE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class HduSpan:
    """Where one HDU's header and data lie in the file."""

    index: int
    header_offset: int
    data_offset: int
    data_bytes: int


@dataclass(frozen=True)
class FrameFacts:
    """Catalog facts about one FITS image, as read from its header."""

    site: str
    site_source: str
    telescope: str | None
    instrument: str | None
    observed_at: datetime | None
    exptime_s: float | None
    ra_deg: float
    dec_deg: float
    pointing_source: str
    fov_radius_deg: float | None
    filter: str | None
    object_name: str | None
    width: int
    height: int
    bitpix: int
    hdu_index: int
    header_digest: str
    notes: tuple[str, ...] = field(default=())


def _card_value(card: str) -> str:
    value = card[10:].split("/", 1)[0].strip()
    return value.strip("'").strip()


def scan_structure(path: Path, source: str) -> list[HduSpan]:
    """Walk the FITS block structure; raise `InvalidFrame` for non-FITS or truncated files."""
    size = path.stat().st_size
    spans: list[HduSpan] = []
    with open(path, "rb") as handle:
        offset = 0
        while offset + BLOCK <= size:
            handle.seek(offset)
            first = handle.read(CARD).decode("ascii", errors="replace")
            if not spans:
                if not (first.startswith("SIMPLE  =") and _card_value(first) == "T"):
                    raise InvalidFrame(source, "not a FITS file (it does not begin with 'SIMPLE  = T')")
            elif not first.startswith("XTENSION="):
                break  # trailing bytes after the last HDU: ignored, as astropy does
            keys: dict[str, str] = {}
            header_end = None
            block_offset = offset
            while header_end is None:
                if block_offset + BLOCK > size:
                    raise InvalidFrame(source, f"truncated FITS: header of HDU {len(spans)} has no END card")
                handle.seek(block_offset)
                block = handle.read(BLOCK).decode("ascii", errors="replace")
                for start in range(0, BLOCK, CARD):
                    card = block[start : start + CARD]
                    keyword = card[:8].strip()
                    if keyword == "END":
                        header_end = block_offset + BLOCK
                        break
                    if card[8:10] == "= " and keyword not in keys:
                        keys[keyword] = _card_value(card)
                block_offset += BLOCK
            data_bytes = _data_bytes(keys, len(spans), source)
            if header_end + data_bytes > size:
                raise InvalidFrame(
                    source,
                    f"truncated FITS: HDU {len(spans)} needs {data_bytes} data bytes from offset {header_end}"
                    f" but the file has {size} bytes",
                )
            spans.append(HduSpan(len(spans), offset, header_end, data_bytes))
            offset = header_end + math.ceil(data_bytes / BLOCK) * BLOCK
    if not spans:
        raise InvalidFrame(source, f"not a FITS file ({size} bytes, less than one 2880-byte FITS block)")
    return spans


def _data_bytes(keys: dict[str, str], index: int, source: str) -> int:
    try:
        bitpix = int(keys["BITPIX"])
        naxis = int(keys["NAXIS"])
        axes = [int(keys[f"NAXIS{n}"]) for n in range(1, naxis + 1)]
        pcount = int(keys.get("PCOUNT", "0"))
        gcount = int(keys.get("GCOUNT", "1"))
    except (KeyError, ValueError) as error:
        raise InvalidFrame(source, f"HDU {index} header is malformed (bad or missing {error})") from None
    if bitpix not in (8, 16, 32, 64, -32, -64) or any(n < 0 for n in axes):
        raise InvalidFrame(source, f"HDU {index} header is malformed (BITPIX={bitpix}, NAXISn={axes})")
    if naxis == 0:
        return 0
    if index == 0 and keys.get("GROUPS") == "T" and axes[0] == 0:
        axes = axes[1:]
    return abs(bitpix) // 8 * gcount * (pcount + math.prod(axes))


# ----------------------------------------------------------------------------- header interpretation
def _text(header: Any, *keys: str) -> tuple[str | None, str | None]:
    for key in keys:
        value = header.get(key)
        if value is not None and str(value).strip():
            return str(value).strip()[:128], key
    return None, None


def _observed_at(header: Any, source: str) -> datetime | None:
    for key in ("DATE-OBS", "DATE-BEG"):
        raw = header.get(key)
        if raw is None or not str(raw).strip():
            continue
        text = str(raw).strip()
        if "T" not in text and len(text) == 10:
            clock = header.get("TIME-OBS") or header.get("UT") or header.get("UTSTART")
            if clock:
                text = f"{text}T{str(clock).strip()}"
        try:
            moment = datetime.fromisoformat(text.replace("Z", ""))
        except ValueError:
            raise InvalidFrame(source, f"{key} {raw!r} is not an ISO-8601 date (YYYY-MM-DDThh:mm:ss)") from None
        if moment.tzinfo is not None:
            raise InvalidFrame(source, f"{key} {raw!r} carries a zone offset; FITS times are UTC without one")
        return moment.replace(tzinfo=UTC)
    mjd = header.get("MJD-OBS")
    if mjd is not None:
        try:
            return _MJD_EPOCH + timedelta(days=float(mjd))
        except (TypeError, ValueError, OverflowError):
            raise InvalidFrame(source, f"MJD-OBS {mjd!r} is not a number") from None
    return None


def _exptime(header: Any, source: str) -> float | None:
    for key in ("EXPTIME", "EXPOSURE", "ITIME"):
        raw = header.get(key)
        if raw is None:
            continue
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise InvalidFrame(source, f"{key} {raw!r} is not a number of seconds") from None
        if not math.isfinite(value) or value < 0:
            raise InvalidFrame(source, f"{key} {raw!r} is not a non-negative number of seconds")
        return value
    return None


def _angle_deg(raw: Any, *, hours: bool) -> float:
    from astropy.coordinates import Angle

    if isinstance(raw, int | float):
        return float(raw)
    text = str(raw).strip()
    try:
        return float(text)
    except ValueError:
        pass
    unit = "hourangle" if hours else "deg"
    return float(Angle(text.replace(" ", ":") if ":" not in text and " " in text else text, unit=unit).deg)


def _keyword_pointing(header: Any, source: str) -> tuple[float, float, str] | None:
    for ra_key, dec_key, ra_hours in (("RA", "DEC", False), ("OBJCTRA", "OBJCTDEC", True)):
        if header.get(ra_key) is None or header.get(dec_key) is None:
            continue
        # A string RA with separators is sexagesimal hours; a bare number is degrees (FITS convention).
        raw_ra = header[ra_key]
        is_sexagesimal = isinstance(raw_ra, str) and any(c in raw_ra for c in ": hH")
        try:
            ra = _angle_deg(raw_ra, hours=ra_hours or is_sexagesimal)
            dec = _angle_deg(header[dec_key], hours=False)
        except (ValueError, TypeError):
            raise InvalidFrame(
                source, f"{ra_key}/{dec_key} {header[ra_key]!r}/{header[dec_key]!r} are not coordinates"
            ) from None
        if not (math.isfinite(ra) and math.isfinite(dec)) or not -90.0 <= dec <= 90.0:
            raise InvalidFrame(source, f"{dec_key} {header[dec_key]!r} is outside -90..+90 degrees")
        return ra % 360.0, dec, f"{ra_key}/{dec_key}"
    return None


def _wcs_pointing(header: Any, width: int, height: int) -> tuple[float, float, float] | None:
    from astropy.wcs import WCS
    from astropy.wcs.utils import proj_plane_pixel_scales

    try:
        wcs = WCS(header, naxis=2, relax=True).celestial
    except Exception:  # a broken WCS is not fatal: keyword pointing may still place the frame
        return None
    if not wcs.has_celestial or wcs.naxis != 2:
        return None
    try:
        center = wcs.pixel_to_world((width - 1) / 2.0, (height - 1) / 2.0).icrs
        ra, dec = float(center.ra.deg), float(center.dec.deg)
        scale = float(np.max(proj_plane_pixel_scales(wcs)))
    except Exception:
        return None
    if not (math.isfinite(ra) and math.isfinite(dec) and math.isfinite(scale)) or scale <= 0:
        return None
    radius = scale * math.hypot(width, height) / 2.0
    return ra % 360.0, dec, radius


def read_frame_facts(path: Path, *, source: str, site: str | None = None) -> FrameFacts:
    """Validate a FITS file and read the catalog facts of its first 2-D image HDU."""
    from astropy.io import fits

    if site is not None and not _SITE_OVERRIDE.match(site):
        raise InvalidFrame(source, f"--site {site!r} is not a site name (letters, digits, '.', '_', '-')")
    scan_structure(path, source)
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with fits.open(path, memmap=False, lazy_load_hdus=False) as hdul:
                facts = _facts_from_hdul(hdul, source=source, site=site, notes=notes)
        except InvalidFrame:
            raise
        except (OSError, ValueError, KeyError, IndexError) as error:
            raise InvalidFrame(source, f"unreadable FITS ({error})") from None
    # astropy's own complaints about the header (non-standard cards, fixed WCS keywords) travel as notes.
    astropy_notes = sorted({str(w.message).splitlines()[0][:160] for w in caught})
    return replace(facts, notes=facts.notes + tuple(astropy_notes))


def _facts_from_hdul(hdul: Any, *, source: str, site: str | None, notes: list[str]) -> FrameFacts:
    from astropy.io import fits

    image_index = None
    for index, hdu in enumerate(hdul):
        if isinstance(hdu, fits.PrimaryHDU | fits.ImageHDU | fits.CompImageHDU):
            naxis = int(hdu.header.get("NAXIS", 0))
            axes = [int(hdu.header.get(f"NAXIS{n}", 0)) for n in range(1, naxis + 1)]
            if naxis >= 2 and axes[0] > 0 and axes[1] > 0 and all(n == 1 for n in axes[2:]):
                image_index = index
                break
    if image_index is None:
        kinds = ", ".join(f"{i}:{type(h).__name__}" for i, h in enumerate(hdul))
        raise InvalidFrame(source, f"no 2-D image HDU (HDUs {kinds})")
    hdu = hdul[image_index]
    header = hdu.header
    width, height = int(header["NAXIS1"]), int(header["NAXIS2"])

    if site is not None:
        site_name, site_source = site, "--site"
    else:
        found, site_key = _text(header, "OBSERVAT", "SITENAME", "TELESCOP")
        if found is None:
            found, site_key = _text(hdul[0].header, "OBSERVAT", "SITENAME", "TELESCOP")
        if found is None:
            raise InvalidFrame(source, "missing TELESCOP/OBSERVAT header keyword; pass --site NAME")
        site_name, site_source = found, f"header:{site_key}"

    wcs_pointing = _wcs_pointing(header, width, height)
    keyword_pointing = _keyword_pointing(header, source) or _keyword_pointing(hdul[0].header, source)
    if wcs_pointing is not None:
        ra, dec, radius = wcs_pointing
        pointing_source: str = "WCS"
    elif keyword_pointing is not None:
        ra, dec, pointing_source = keyword_pointing
        radius = None
    else:
        raise InvalidFrame(source, "missing RA/DEC: no RA/DEC, OBJCTRA/OBJCTDEC or celestial WCS in the header")

    observed_at = _observed_at(header, source) or _observed_at(hdul[0].header, source)
    if observed_at is None:
        notes.append("no DATE-OBS/MJD-OBS: the frame has no observation time")
    exptime = _exptime(header, source)
    if exptime is None:
        exptime = _exptime(hdul[0].header, source)
    telescope, _ = _text(header, "TELESCOP")
    instrument, _ = _text(header, "INSTRUME")
    filter_name, _ = _text(header, "FILTER", "FILTNAM", "FILTER1")
    object_name, _ = _text(header, "OBJECT")
    digest = "sha256:" + hashlib.sha256(header.tostring().encode("ascii", errors="replace")).hexdigest()
    return FrameFacts(
        site=site_name,
        site_source=site_source,
        telescope=telescope,
        instrument=instrument,
        observed_at=observed_at,
        exptime_s=exptime,
        ra_deg=ra,
        dec_deg=dec,
        pointing_source=pointing_source,
        fov_radius_deg=radius,
        filter=filter_name,
        object_name=object_name,
        width=width,
        height=height,
        bitpix=int(header["BITPIX"]),
        hdu_index=image_index,
        header_digest=digest,
        notes=tuple(notes),
    )
