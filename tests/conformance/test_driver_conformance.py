"""Every driver backend — the fake, Alpaca against alpaca-simulators, INDI against indiserver — passes this
same suite: status, validation, FITS with a correct WCS, command ids, park, and fault injection."""

from __future__ import annotations

import importlib
import io
import math
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from astropolis.lake import Lake
from astropolis.lake.clock import ManualClock
from astropolis.tools.drivers import ExposureRequest
from astropolis.tools.errors import DriverError, Refused

from .harness import Harness, backends, night_clock, zenith_target

pytestmark = pytest.mark.conformance


@pytest.fixture(params=backends())
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if request.param != "fake":
        request.applymarker(pytest.mark.slow)
    module = importlib.import_module(f"tests.conformance.harness_{request.param}")
    with module.make_harness(tmp_path, night_clock()) as made:
        yield made


def _request(harness: Harness, command_id: str, **changes: object) -> ExposureRequest:
    ra, dec = zenith_target(harness.driver)
    values: dict[str, object] = {
        "command_id": command_id,
        "ra_deg": ra,
        "dec_deg": dec,
        "exposure_s": 1.0,
        "filter": "R",
        "object_name": "conformance",
    }
    values.update(changes)
    return ExposureRequest.model_validate(values)


def test_status_reports_a_connected_safe_idle_site(harness: Harness) -> None:
    status = harness.driver.status()
    assert status.site == "lapalma" and status.connected and status.safe
    assert status.camera_state == "idle" and not status.slewing
    assert status.weather.cloud_cover_pct is not None


def test_exposure_is_a_fits_frame_with_header_and_wcs(harness: Harness, tmp_path: Path) -> None:
    request = _request(harness, "conf-expose-1")
    exposure = harness.driver.expose(request)
    assert not exposure.replayed
    with Lake(tmp_path / "ingest", clock=harness.driver.clock) as lake:
        frame = lake.ingest_bytes(exposure.fits, name="conf.fits").frame
    site = harness.driver.site
    assert (frame.width, frame.height) == (site.camera.width_px, site.camera.height_px)
    assert frame.site == "lapalma" and frame.filter == "R" and frame.exptime_s == pytest.approx(1.0)
    assert frame.observed_at == harness.driver.clock.now()
    separation_arcsec = 3600 * math.hypot(
        (frame.ra_deg - request.ra_deg) * math.cos(math.radians(request.dec_deg)), frame.dec_deg - request.dec_deg
    )
    assert separation_arcsec <= request.dither_arcsec + 0.01  # dithered, but never by more than asked
    header = fits.getheader(io.BytesIO(exposure.fits))
    assert header["CMDID"] == "conf-expose-1" and header["PIXSCALE"] == pytest.approx(site.pixel_scale_arcsec, rel=1e-4)
    data = fits.getdata(io.BytesIO(exposure.fits)).astype(float)
    assert data.max() > np.median(data) + 20 * np.std(data[data < np.percentile(data, 90)])  # stars, not a blank


def test_stars_land_where_the_wcs_says(harness: Harness) -> None:
    request = _request(harness, "conf-wcs-1", exposure_s=2.0)
    stars = harness.expected_stars(request.ra_deg, request.dec_deg, 0.05)
    if stars is None:
        pytest.skip("this backend's sky is not a catalogue")
    exposure = harness.driver.expose(request)
    import sep

    with fits.open(io.BytesIO(exposure.fits)) as hdul:
        data = hdul[0].data.astype(np.float64)
        wcs = WCS(hdul[0].header)
    background = sep.Background(data)
    found = sep.extract(data - background, 10, err=background.globalrms)
    assert len(found) >= 3
    bright = sorted(stars, key=lambda s: s[2])[:15]
    xy = np.column_stack(wcs.world_to_pixel_values([s[0] for s in bright], [s[1] for s in bright]))
    inside = [(x, y) for x, y in xy if 10 < x < data.shape[1] - 10 and 10 < y < data.shape[0] - 10]
    assert len(inside) >= 3
    offsets = [np.min(np.hypot(found["x"] - x, found["y"] - y)) for x, y in inside]
    assert np.median(offsets) < 3.0, offsets  # pixels


def test_a_completed_command_is_never_run_twice(harness: Harness) -> None:
    request = _request(harness, "conf-idem-1")
    first = harness.driver.expose(request)
    again = harness.driver.expose(request)
    assert again.replayed and again.frame_id == first.frame_id and again.fits == first.fits
    states = [state for state, _ in harness.driver.journal.history("lapalma", "conf-idem-1")]
    assert states == ["started", "completed"]
    other = harness.driver.expose(_request(harness, "conf-idem-2"))
    assert other.frame_id != first.frame_id  # a new command dithers elsewhere: a genuinely new frame


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"dec_deg": -80.0}, "below_horizon"),
        ({"exposure_s": 7200.0}, "exposure_limits"),
        ({"filter": "Halpha"}, "filter_unknown"),
    ],
)
def test_validate_refuses_with_a_reason(harness: Harness, changes: dict[str, object], code: str) -> None:
    request = _request(harness, "conf-refuse", **changes)
    with pytest.raises(Refused) as caught:
        harness.driver.validate(request)
    assert caught.value.code == code and "lapalma" in str(caught.value)
    with pytest.raises(Refused):
        harness.driver.expose(request)
    assert harness.driver.journal.history("lapalma", "conf-refuse") == []


def test_daylight_is_refused(harness: Harness) -> None:
    clock = harness.driver.clock
    assert isinstance(clock, ManualClock)
    clock.advance(timedelta(hours=13))  # 14:00 UTC: early afternoon at La Palma
    with pytest.raises(Refused) as caught:
        harness.driver.check_site()
    assert caught.value.code == "sun_up"


def test_unsafe_and_cloud_are_refused_light_cloud_is_flagged(harness: Harness) -> None:
    harness.set_safe(False)
    with pytest.raises(Refused) as caught:
        harness.driver.expose(_request(harness, "conf-unsafe"))
    assert caught.value.code == "unsafe"
    harness.set_safe(True)
    harness.set_cloud_cover(80.0)
    with pytest.raises(Refused) as caught:
        harness.driver.expose(_request(harness, "conf-cloud"))
    assert caught.value.code == "weather" and "cloud cover" in str(caught.value)
    harness.set_cloud_cover(20.0)  # inside the limit, but the frame must say it was taken under cloud
    exposure = harness.driver.expose(_request(harness, "conf-light-cloud"))
    header = fits.getheader(io.BytesIO(exposure.fits))
    assert header["CLOUDY"] is True and header["CLOUDCVR"] == pytest.approx(20.0)


def test_camera_error_is_reported_and_recovered(harness: Harness) -> None:
    harness.break_camera()
    with pytest.raises(DriverError):
        harness.driver.expose(_request(harness, "conf-camera-error"))
    assert [s for s, _ in harness.driver.journal.history("lapalma", "conf-camera-error")] == ["started", "failed"]
    harness.driver.abort()  # recovers a camera in error state
    retry = harness.driver.expose(_request(harness, "conf-camera-error"))  # the same command, never completed
    assert not retry.replayed


def test_process_killed_mid_exposure_fails_cleanly(harness: Harness) -> None:
    harness.kill_during_exposure()
    outcome: dict[str, BaseException | None] = {"error": None}

    def run() -> None:
        try:
            harness.driver.expose(_request(harness, "conf-killed", exposure_s=3.0))
        except BaseException as error:
            outcome["error"] = error

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "expose hung after the device process died"
    assert isinstance(outcome["error"], DriverError)
    assert [s for s, _ in harness.driver.journal.history("lapalma", "conf-killed")][-1] == "failed"
    with pytest.raises(DriverError):
        harness.driver.status()


def test_park_is_idempotent(harness: Harness) -> None:
    harness.driver.expose(_request(harness, "conf-before-park"))
    first = harness.driver.park("conf-park-1")
    again = harness.driver.park("conf-park-1")
    assert first == again
    assert harness.driver.status().parked
