"""Reading FITS headers into catalog facts, and refusing what is not a usable image."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from helpers import M13, frame_bytes, write_frame

from astropolis.lake import InvalidFrame, Lake
from astropolis.lake.fitsmeta import read_frame_facts, scan_structure


def test_real_m13_frame_ingests_with_shape_and_coordinates(lake: Lake) -> None:
    result = lake.ingest(M13, site="skyview-dss")
    frame = result.frame
    assert (frame.width, frame.height) == (300, 300)
    assert frame.bitpix == 16 and frame.pointing_source == "WCS"
    # M13 (NGC 6205): RA 16h41m41.6s = 250.4235 deg, Dec +36d27m41s = 36.4613 deg; the DSS cutout is centred on it.
    assert frame.ra_deg == pytest.approx(250.4226, abs=2e-4)
    assert frame.dec_deg == pytest.approx(36.4602, abs=2e-4)
    assert abs(frame.ra_deg - 250.4235) < 0.01 and abs(frame.dec_deg - 36.4613) < 0.01
    # 300 px at 1.0 arcsec/px: centre-to-corner radius is 150*sqrt(2) arcsec.
    assert frame.fov_radius_deg == pytest.approx(300 * 0.00027770002 * 2**0.5 / 2, rel=1e-3)
    assert frame.observed_at is None and any("DATE-OBS" in note for note in result.notes)
    assert lake.read(frame.id) == M13.read_bytes()


def test_header_facts(tmp_path: Path) -> None:
    path = write_frame(
        tmp_path / "f.fits",
        ra=10.5,
        dec=-20.25,
        site="chile",
        date_obs="2026-11-25T03:04:05.5",
        exptime=45.0,
        filter_name="V",
    )
    facts = read_frame_facts(path, source="f.fits")
    assert facts.site == "chile" and facts.site_source == "header:OBSERVAT"
    assert facts.observed_at == datetime(2026, 11, 25, 3, 4, 5, 500000, tzinfo=UTC)
    assert facts.exptime_s == 45.0 and facts.filter == "V"
    assert facts.ra_deg == pytest.approx(10.5) and facts.dec_deg == pytest.approx(-20.25)
    assert (facts.width, facts.height) == (80, 64)
    assert facts.header_digest.startswith("sha256:")


@pytest.mark.parametrize(
    ("extra", "drop", "expected"),
    [
        ({"RA": 150.25, "DEC": 2.5}, (), (150.25, 2.5, "RA/DEC")),
        ({"RA": "10:01:00", "DEC": "+02:30:00"}, (), (150.25, 2.5, "RA/DEC")),
        ({"OBJCTRA": "10 01 00", "OBJCTDEC": "+02 30 00"}, (), (150.25, 2.5, "OBJCTRA/OBJCTDEC")),
    ],
)
def test_keyword_pointing_without_wcs(tmp_path: Path, extra: dict, drop: tuple, expected: tuple) -> None:
    data = frame_bytes(wcs=False, drop=("RA", "DEC", *drop), extra=extra)
    path = tmp_path / "k.fits"
    path.write_bytes(data)
    facts = read_frame_facts(path, source="k.fits")
    assert (round(facts.ra_deg, 6), round(facts.dec_deg, 6), facts.pointing_source) == expected


def test_date_variants(tmp_path: Path) -> None:
    path = write_frame(tmp_path / "a.fits", date_obs="2026-11-25", extra={"TIME-OBS": "22:30:00"})
    assert read_frame_facts(path, source="a").observed_at == datetime(2026, 11, 25, 22, 30, tzinfo=UTC)
    path = write_frame(tmp_path / "b.fits", date_obs=None, extra={"MJD-OBS": 61004.5})
    assert read_frame_facts(path, source="b").observed_at == datetime(
        2025, 11, 25, 12, 0, tzinfo=UTC
    )  # MJD 60000 = 2023-02-25


def test_site_override_wins_and_is_recorded(tmp_path: Path) -> None:
    path = write_frame(tmp_path / "s.fits", site="header-site")
    facts = read_frame_facts(path, source="s", site="siding-spring")
    assert (facts.site, facts.site_source) == ("siding-spring", "--site")


def test_compressed_image_extension(tmp_path: Path) -> None:
    header = fits.Header(
        {"OBSERVAT": "lapalma", "DATE-OBS": "2026-11-25T21:00:00", "EXPTIME": 10.0, "RA": 83.8, "DEC": -5.4}
    )
    data = np.arange(40 * 50, dtype=np.int16).reshape(40, 50)
    hdul = fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header)])
    path = tmp_path / "c.fits"
    hdul.writeto(path)
    facts = read_frame_facts(path, source="c.fits")
    assert (facts.width, facts.height, facts.hdu_index) == (50, 40, 1)
    assert facts.ra_deg == pytest.approx(83.8)


# --------------------------------------------------------------------------------------------- bad input
def _bad(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.fits", b"", "not a FITS file"),
        ("notes.txt", b"observing log\n" * 300, "not a FITS file"),
        ("trunc.fits", frame_bytes()[:5000], "truncated FITS"),
        ("nohead.fits", frame_bytes()[:2880], "truncated FITS"),
        ("noimage.fits", b"", "no 2-D image HDU"),
        ("nosite.fits", frame_bytes(site=None), "missing TELESCOP/OBSERVAT"),
        ("nopointing.fits", frame_bytes(wcs=False, drop=("RA", "DEC")), "missing RA/DEC"),
        ("baddate.fits", frame_bytes(date_obs="25/11/26"), "DATE-OBS '25/11/26' is not an ISO-8601 date"),
        ("badexp.fits", frame_bytes(exptime=None, extra={"EXPTIME": "long"}), "EXPTIME 'long' is not a number"),
        ("baddec.fits", frame_bytes(wcs=False, extra={"DEC": 123.0}), "outside -90..+90"),
    ],
)
def test_bad_frames_name_file_and_problem_and_leave_nothing(
    lake: Lake, tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    if name == "noimage.fits":
        table = fits.BinTableHDU.from_columns([fits.Column(name="flux", format="E", array=np.ones(3))])
        buffer = io.BytesIO()
        fits.HDUList([fits.PrimaryHDU(), table]).writeto(buffer)
        content = buffer.getvalue()
    path = _bad(tmp_path, name, content)
    with pytest.raises(InvalidFrame) as caught:
        lake.ingest(path)
    assert str(caught.value).startswith(str(path) + ": ")
    assert message in str(caught.value)
    assert lake.objects() == []
    assert list(lake.blobs.iter_ids()) == []
    assert list(lake.blobs.temp_dir.iterdir()) == []


def test_bad_site_override(lake: Lake, tmp_path: Path) -> None:
    path = write_frame(tmp_path / "x.fits")
    with pytest.raises(InvalidFrame, match="is not a site name"):
        lake.ingest(path, site="../etc")


def test_scan_structure_spans(tmp_path: Path) -> None:
    path = write_frame(tmp_path / "s.fits", shape=(10, 10))
    (span,) = scan_structure(path, "s")
    assert span.data_offset % 2880 == 0 and span.data_bytes == 10 * 10 * 4
