"""INDI-specific tests: the JNow conversion, the `gsc` lookup INDI's CCD simulator runs, the simulator's
process handling, and the driver against a real indiserver (registry checks, weather, faults, timing)."""

from __future__ import annotations

import ctypes
import math
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from astropolis.lake.blobs import BlobStore
from astropolis.lake.clock import ManualClock
from astropolis.tools.drivers import CommandJournal
from astropolis.tools.drivers.indi import CameraOrientation, IndiDriver, icrs_to_jnow, jnow_to_icrs
from astropolis.tools.errors import DriverError, Refused
from astropolis.tools.simulators.catalogue import StarCatalogue
from astropolis.tools.simulators.gsc import Query, libindi_nutation_error, lines, write_script
from astropolis.tools.simulators.indi import IndiSimulator, free_port, live_processes
from astropolis.tools.sites import Site, demo_sites

FIELD = (61.70, 18.69)
WHEN = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


def _site(port: int, **camera: object) -> Site:
    demo = demo_sites("indi").get("lapalma")
    return demo.model_copy(
        update={
            "driver": demo.driver.model_copy(update={"port": port}),
            "camera": demo.camera.model_copy(update=camera),
        }
    )


def _sscanf(line: str) -> tuple[str, float, float, float] | None:
    """What INDI's `sscanf(line, "%10s %f %f %f %f %f %d %d %4s %2s %f %d")` accepts as a star: id, ra, dec, mag."""
    tokens = line.split()
    patterns = [r"\S{1,10}", *[r"[-+]?[0-9.]+"] * 5, r"[-+]?\d+", r"[-+]?\d+", r"\S{1,4}", r"\S{1,2}", r"[-+]?[0-9.]+"]
    patterns.append(r"[-+]?\d+")
    if len(tokens) != 12 or not all(re.fullmatch(p, t) for p, t in zip(patterns, tokens, strict=True)):
        return None
    return tokens[0], float(tokens[1]), float(tokens[2]), float(tokens[4])


@pytest.fixture(scope="module")
def sky(tmp_path_factory: pytest.TempPathFactory) -> StarCatalogue:
    return StarCatalogue.build(tmp_path_factory.mktemp("sky") / "sky.db", fields=[FIELD], field_radius_deg=0.3)


# ------------------------------------------------------------------------------------------------ JNow
@pytest.mark.parametrize(("ra", "dec"), [(0.0, 0.0), (61.7, 18.69), (185.7, 30.0), (300.0, -65.0), (10.0, 89.5)])
def test_jnow_round_trip_and_erfa_agreement(ra: float, dec: float) -> None:
    import erfa

    ra_now, dec_now = icrs_to_jnow(ra, dec, WHEN)
    back = jnow_to_icrs(ra_now, dec_now, WHEN)
    assert 3600 * math.hypot((back[0] - ra + 180) % 360 - 180, back[1] - dec) < 0.001
    # Independent: ERFA's CIRS place less the equation of the origins is the equinox-based apparent place.
    jd = 2440587.5 + WHEN.timestamp() / 86400.0
    rc, dc, eo = erfa.atci13(math.radians(ra), math.radians(dec), 0, 0, 0, 0, jd, 0.0)
    ra_erfa, dec_erfa = math.degrees(erfa.anp(rc - eo)), math.degrees(dc)
    d_ra = ((ra_now - ra_erfa + 180) % 360 - 180) * math.cos(math.radians(dec_now))
    assert 3600 * math.hypot(d_ra, dec_now - dec_erfa) < 0.05
    assert 0.2 < math.hypot((ra_now - ra + 180) % 360 - 180, dec_now - dec) or abs(dec) > 89  # 27 years of precession


# ------------------------------------------------------------------------------------------------- gsc
def test_gsc_script_answers_the_ccd_simulators_command_line(sky: StarCatalogue, tmp_path: Path) -> None:
    script = write_script(tmp_path / "bin", sky.path)
    command = "gsc -c %8.6f %+8.6f -r %4.1f -m 0 %4.2f -n 3000" % (*FIELD, 4.0, 17.0)  # noqa: UP031 - the C format
    result = subprocess.run([str(script), *command.split()[1:]], capture_output=True, text=True, timeout=60, check=True)
    out = result.stdout.splitlines()
    assert _sscanf(out[0]) is None  # the header is skipped, as the real tool's is
    stars = [_sscanf(line) for line in out[1:]]
    assert stars and all(star is not None for star in stars)
    expected = sky.cone(*FIELD, 4.0 / 60.0, max_mag=17.0)
    assert len(stars) == len(expected) >= 5
    for got, want in zip(stars, expected, strict=True):
        assert got is not None
        assert got[1:3] == pytest.approx((want.ra_deg, want.dec_deg), abs=1e-5)
        assert got[3] == pytest.approx(want.mag, abs=0.006)
    assert [s[3] for s in stars if s] == sorted(s[3] for s in stars if s)  # brightest first


def test_gsc_honours_magnitudes_count_and_southern_centres(sky: StarCatalogue) -> None:
    some = lines(sky, Query(*FIELD, 4.0, 14.0, 18.0, 3))
    assert len(some) == 4 and all(14.0 <= (_sscanf(line) or ("", 0, 0, 99))[3] <= 18.0 for line in some[1:])
    south = lines(sky, Query(101.2875, -16.7161, 30.0, -2.0, 2.0))  # Sirius
    parsed = [_sscanf(line) for line in south[1:]]
    assert any(p is not None and p[3] < 0 and abs(p[2] + 16.716) < 0.01 for p in parsed)


def test_gsc_undoes_libindi_nutation_by_moving_the_field() -> None:
    class Sky:
        def cone(self, ra: float, dec: float, radius: float, *, max_mag: float) -> list[object]:
            from astropolis.tools.simulators.catalogue import Star

            return [Star(ra, dec, 10.0, "test", None)]  # one star exactly at the centre asked of the catalogue

    asked = (185.7, 30.0)
    out = lines(Sky(), Query(*asked, 4.0, undo_libindi_nutation=True), when=WHEN)  # type: ignore[arg-type]
    star = _sscanf(out[1])
    assert star is not None
    # The star at the true pointing is drawn where the simulator puts the centre it believes in.
    assert star[1:3] == pytest.approx(asked, abs=1e-6)
    d_ra, d_dec = libindi_nutation_error(*asked, WHEN)
    assert 5 < 3600 * math.hypot(d_ra * math.cos(math.radians(30)), d_dec) < 40


def test_nutation_model_matches_libindi() -> None:
    try:
        library = ctypes.CDLL("libindidriver.so.1")
        to_observed = library._ZN4INDI15J2000toObservedEPNS_22IEquatorialCoordinatesEdS1_
    except (OSError, AttributeError):
        pytest.skip("libindidriver 1.9 is not loadable here")

    class Coordinates(ctypes.Structure):
        _fields_ = [("ra_hours", ctypes.c_double), ("dec_deg", ctypes.c_double)]

    to_observed.argtypes = [ctypes.POINTER(Coordinates), ctypes.c_double, ctypes.POINTER(Coordinates)]
    now = datetime.now(UTC)
    for ra, dec in [(0.0, 0.0), (90.0, 60.0), (185.7, 30.0), (277.0, -10.0)]:
        source, observed = Coordinates(ra / 15.0, dec), Coordinates()
        to_observed(ctypes.byref(source), 2440587.5 + now.timestamp() / 86400.0, ctypes.byref(observed))
        true_ra, true_dec = icrs_to_jnow(ra, dec, now)
        d_ra, d_dec = libindi_nutation_error(ra, dec, now)
        cos_dec = math.cos(math.radians(dec))
        error_ra = ((observed.ra_hours * 15.0 - true_ra + 180) % 360 - 180 - d_ra) * cos_dec
        assert 3600 * math.hypot(error_ra, observed.dec_deg - true_dec - d_dec) < 0.3


def test_camera_orientation_turns_the_simulators_frame() -> None:
    raw = np.arange(12).reshape(3, 4)
    east = CameraOrientation().apply(raw, pier_west=False)
    assert np.array_equal(east, raw.T)
    assert np.array_equal(CameraOrientation().apply(raw, pier_west=True), raw.T[::-1, ::-1])
    assert np.array_equal(CameraOrientation(transpose=False, flip_rows=True).apply(raw, pier_west=False), raw[::-1])


# ------------------------------------------------------------------------------------------ processes
@pytest.mark.slow
def test_simulators_stop_by_pid_and_leave_no_process(sky: StarCatalogue, tmp_path: Path) -> None:
    first = IndiSimulator(_site(free_port()), sky, tmp_path / "a").start()
    second = IndiSimulator(_site(free_port()), sky, tmp_path / "b").start()  # its own port and local socket
    try:
        assert first.pid is not None and second.pid is not None
        assert len(live_processes(first.pid)) == 5  # indiserver and its four drivers, in the group we made
        first.stop()
        assert live_processes(first.pid) == []
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", first.port), timeout=2).close()
        assert len(live_processes(second.pid)) == 5  # the other site is untouched
    finally:
        first.stop()
        second.stop()
    assert live_processes(second.pid) == []


def test_unreachable_server_is_a_quick_driver_error(tmp_path: Path, clock: ManualClock) -> None:
    journal = CommandJournal(f"sqlite:///{tmp_path / 'c.db'}", clock=clock)
    driver = IndiDriver(_site(free_port()), journal=journal, frames=BlobStore(tmp_path / "lake"), clock=clock)
    started = time.monotonic()
    with pytest.raises(DriverError, match="lapalma: cannot reach indiserver"):
        driver.connect()
    assert time.monotonic() - started < 2.0
    journal.close()


# ------------------------------------------------------------------------------------- running server
@pytest.fixture(scope="module")
def simulator(sky: StarCatalogue, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndiSimulator]:
    running = IndiSimulator(_site(free_port()), sky, tmp_path_factory.mktemp("indi")).start()
    yield running
    running.stop()


@pytest.fixture
def driver(simulator: IndiSimulator, tmp_path: Path, clock: ManualClock) -> Iterator[IndiDriver]:
    journal = CommandJournal(f"sqlite:///{tmp_path / 'c.db'}", clock=clock)
    connected = IndiDriver(simulator.site, journal=journal, frames=BlobStore(tmp_path / "lake"), clock=clock)
    connected.connect()
    yield connected
    connected.close()
    journal.close()


@pytest.mark.slow
def test_camera_that_differs_from_the_registry_is_refused(simulator: IndiSimulator, tmp_path: Path) -> None:
    clock = ManualClock(WHEN)
    journal = CommandJournal(f"sqlite:///{tmp_path / 'c.db'}", clock=clock)
    wrong = _site(simulator.port, width_px=1024)
    driver = IndiDriver(wrong, journal=journal, frames=BlobStore(tmp_path / "lake"), clock=clock)
    with pytest.raises(DriverError, match=r"512x512 px of 9 um but the site registry says 1024x512"):
        driver.connect()
    journal.close()


@pytest.mark.slow
def test_weather_station_and_safety_reach_the_preconditions(simulator: IndiSimulator, driver: IndiDriver) -> None:
    status = driver.status()
    assert status.safe and status.weather.cloud_cover_pct == 0.0
    assert status.weather.humidity_pct == pytest.approx(50.0) and status.weather.wind_mps == pytest.approx(3.0)
    try:
        simulator.set_weather(humidity_pct=95.0, wind_mps=20.0)
        with pytest.raises(Refused, match=r"wind 20\.0 m/s"):
            driver.check_site()
        simulator.set_weather(wind_mps=3.0)
        with pytest.raises(Refused, match="humidity 95%"):
            driver.check_site()
        simulator.set_weather(humidity_pct=50.0)
        simulator.set_safe(False)
        with pytest.raises(Refused) as caught:
            driver.check_site()
        assert caught.value.code == "unsafe"
    finally:
        simulator.set_safe(True)
        simulator.set_weather(humidity_pct=50.0, wind_mps=3.0)
    assert driver.check_site().safe


@pytest.mark.slow
def test_exposure_comes_back_oriented_and_camera_faults_name_the_cause(
    simulator: IndiSimulator, driver: IndiDriver
) -> None:
    driver._unpark()
    driver._slew(*FIELD)
    status = driver.status()
    assert status.tracking and not status.slewing
    assert 3600 * math.hypot((status.ra_deg or 0) - FIELD[0], (status.dec_deg or 0) - FIELD[1]) < 1.5
    started = time.monotonic()
    pixels = driver._expose_pixels(1.0, "V")
    assert 1.0 <= time.monotonic() - started < 5.0
    assert pixels.shape == (512, 512) and pixels.dtype == np.uint16
    slot = driver.session.vector(driver.wheel or "", "FILTER_SLOT")
    assert slot is not None and slot.number("FILTER_SLOT_VALUE") == 2  # V is the second filter of the site
    simulator.break_camera()
    with pytest.raises(DriverError, match="reported an error during the exposure"):
        driver._expose_pixels(1.0, None)
    assert driver.status().camera_state == "error"
    driver.abort()
    assert driver.status().camera_state == "idle"
    assert driver._expose_pixels(1.0, None).shape == (512, 512)


@pytest.mark.slow
def test_killed_server_fails_the_driver_at_once(sky: StarCatalogue, tmp_path: Path) -> None:
    clock = ManualClock(WHEN)
    simulator = IndiSimulator(_site(free_port()), sky, tmp_path / "indi").start()
    journal = CommandJournal(f"sqlite:///{tmp_path / 'c.db'}", clock=clock)
    driver = IndiDriver(simulator.site, journal=journal, frames=BlobStore(tmp_path / "lake"), clock=clock)
    try:
        driver.connect()
        assert driver.status().connected
        simulator.kill()
        started = time.monotonic()
        with pytest.raises(DriverError, match="lapalma"):
            driver.status()
        assert time.monotonic() - started < 1.0
        clock.advance(timedelta(minutes=1))
        with pytest.raises(DriverError):
            driver.park("park-after-crash")
    finally:
        driver.close()
        journal.close()
        simulator.stop()
