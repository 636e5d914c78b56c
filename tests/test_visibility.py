"""Offline visibility: night bounds, constraints and observable windows, checked against astroplan."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import AltAz, SkyCoord, get_body
from astropy.time import Time

from astropolis.tools.errors import BadArguments, Refused
from astropolis.tools.sites import Site, demo_sites
from astropolis.tools.visibility import (
    AtNight,
    Constraint,
    MoonSeparationConstraint,
    NoAstronomicalNight,
    SiteSky,
    night_bounds,
    observable_windows,
    sun_altitude_deg,
    windows_for_constraints,
)

SITES = {site.name: site for site in demo_sites()}
LAPALMA = SITES["lapalma"]
STEP = timedelta(minutes=5)


def local_noon(site: Site, day: int = 25, month: int = 11, year: int = 2026) -> datetime:
    """Roughly local noon at the site, in UTC."""
    return datetime(year, month, day, 12, tzinfo=UTC) - timedelta(hours=site.longitude_deg / 15.0)


def lapalma_night() -> tuple[datetime, datetime]:
    """The La Palma night starting 2026-11-25, padded by an hour each side, on whole minutes."""
    night = night_bounds(LAPALMA, local_noon(LAPALMA))
    return night.dusk.replace(second=0, microsecond=0) - timedelta(hours=1), night.dawn + timedelta(hours=1)


def positions(ra_deg: list[float] | np.ndarray, dec_deg: list[float] | np.ndarray) -> SkyCoord:
    return SkyCoord(np.asarray(ra_deg) * u.deg, np.asarray(dec_deg) * u.deg, frame="icrs")


# --- night bounds ---


@pytest.mark.parametrize("name", sorted(SITES))
def test_night_bounds_agree_with_astroplan_within_a_minute(name: str) -> None:
    from astroplan import Observer

    site = SITES[name]
    when = local_noon(site)
    night = night_bounds(site, when)
    observer = Observer(location=site.location())
    dusk = observer.twilight_evening_astronomical(Time(when), which="next").to_datetime(timezone=UTC)
    dawn = observer.twilight_morning_astronomical(Time(when), which="next").to_datetime(timezone=UTC)
    assert night.site == name
    assert when < night.dusk < night.dawn
    assert abs((night.dusk - dusk).total_seconds()) < 60
    assert abs((night.dawn - dawn).total_seconds()) < 60
    assert night.dusk.utcoffset() == timedelta(0)
    assert sun_altitude_deg(site, night.dusk) == pytest.approx(-18.0, abs=0.02)
    assert sun_altitude_deg(site, night.dawn) == pytest.approx(-18.0, abs=0.02)


def test_night_bounds_inside_a_night_give_that_night() -> None:
    evening = night_bounds(LAPALMA, local_noon(LAPALMA))
    middle = evening.dusk + evening.duration / 2
    same = night_bounds(LAPALMA, middle)
    assert abs(same.dusk - evening.dusk) < timedelta(seconds=1) and abs(same.dawn - evening.dawn) < timedelta(seconds=1)
    after_dawn = night_bounds(LAPALMA, evening.dawn + timedelta(minutes=5))
    assert after_dawn.dusk > evening.dawn
    assert timedelta(hours=23) < after_dawn.dusk - evening.dusk < timedelta(hours=25)


def test_no_astronomical_night_is_a_typed_refusal() -> None:
    north = LAPALMA.model_copy(update={"name": "north", "latitude_deg": 60.0})
    with pytest.raises(NoAstronomicalNight, match="does not reach -18") as white:
        night_bounds(north, datetime(2026, 6, 21, 12, tzinfo=UTC))
    assert isinstance(white.value, Refused) and white.value.code == "sun_up"
    polar = LAPALMA.model_copy(update={"name": "polar", "latitude_deg": 88.0})
    with pytest.raises(NoAstronomicalNight, match="stays below"):
        night_bounds(polar, datetime(2026, 12, 21, 12, tzinfo=UTC))


def test_far_future_dates_need_no_tables_and_raise_no_warnings() -> None:
    # Past the bundled IERS and leap-second tables astropy extrapolates and warns; pytest turns warnings into errors.
    night = night_bounds(LAPALMA, datetime(2035, 6, 1, 12, tzinfo=UTC))
    assert night.dusk.year == 2035
    table = observable_windows(LAPALMA, positions([0.0], [85.0]), night.dusk, night.dawn, max_airmass=3.0)
    assert table.observable["lapalma"].any()


# --- windows ---


def test_identical_windows_to_astroplan_on_the_same_grid() -> None:
    from astroplan import (
        AirmassConstraint,
        AltitudeConstraint,
        AtNightConstraint,
        MoonSeparationConstraint,
        Observer,
    )
    from astropy.coordinates.errors import NonRotationTransformationWarning

    rng = np.random.default_rng(7)
    count = 20
    targets = positions(rng.uniform(0, 360, count), np.degrees(np.arcsin(rng.uniform(-1, 1, count))))
    max_airmass, min_moon = rng.uniform(1.3, 3.0, count), rng.uniform(10.0, 60.0, count)
    start = datetime(2026, 11, 25, 10, tzinfo=UTC)
    table = observable_windows(
        SITES.values(),
        targets,
        start,
        start + timedelta(hours=22),
        max_airmass=max_airmass,
        min_moon_separation_deg=min_moon,
    )
    for site in SITES.values():
        observer = Observer(location=site.location())
        constraints = [
            AtNightConstraint.twilight_astronomical(),
            AltitudeConstraint(min=site.horizon_deg * u.deg),
            AirmassConstraint(max=max_airmass[:, None]),
            MoonSeparationConstraint(min=min_moon[:, None] * u.deg),
        ]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=NonRotationTransformationWarning)  # astroplan's Moon frame
            masks = [c(observer, targets, times=table.grid, grid_times_targets=True) for c in constraints]
        expected = np.logical_and.reduce(masks)
        assert expected.shape == (count, len(table.grid_utc))
        assert 0 < expected.sum() < expected.size  # a comparison that could fail
        np.testing.assert_array_equal(table.observable[site.name], expected)


def test_a_never_rising_target_has_no_windows_and_a_circumpolar_one_spans_the_night() -> None:
    night = night_bounds(LAPALMA, local_noon(LAPALMA))
    start, end = lapalma_night()
    targets = positions([10.0, 120.0], [-80.0, 85.0])
    table = observable_windows(LAPALMA, targets, start, end, max_airmass=3.0, min_moon_separation_deg=0.0)
    assert table.windows_of(0, "lapalma") == ()
    assert (table.altitude_deg["lapalma"][0] < 0).all() and np.isinf(table.airmass["lapalma"][0]).all()
    (window,) = table.windows_of(1, "lapalma")
    assert abs(window.start - night.dusk) < STEP and abs(window.end - night.dawn) < STEP
    assert window.start.utcoffset() == timedelta(0)
    nautical = windows_for_constraints([AtNight.nautical()], LAPALMA, targets, start, end, step=STEP)
    assert nautical.windows_of(1, "lapalma")[0].duration > window.duration + timedelta(minutes=30)


def test_windows_follow_the_mask_and_are_clipped_at_the_end() -> None:
    start = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
    end = start + timedelta(minutes=62)  # 13 samples, the last one covering only 2 minutes
    table = observable_windows(LAPALMA, positions([120.0], [85.0]), start, end, max_airmass=3.0)
    assert len(table.grid_utc) == 13 and table.grid_utc[-1] == start + timedelta(minutes=60)
    assert table.windows_of(0, "lapalma")[0].start == start
    assert table.windows_of(0, "lapalma")[-1].end == end


def test_per_target_airmass_limits_are_honoured() -> None:
    start, end = lapalma_night()
    limits = np.array([1.2, 2.5])
    targets = positions([60.0, 60.0], [10.0, 10.0])  # the same position twice, under two limits
    table = observable_windows(LAPALMA, targets, start, end, max_airmass=limits, min_moon_separation_deg=0.0)
    airmass, observable = table.airmass["lapalma"], table.observable["lapalma"]
    assert (airmass[0][observable[0]] <= 1.2).all() and (airmass[1][observable[1]] <= 2.5).all()
    assert observable[1].sum() > observable[0].sum() > 0
    assert not (observable[0] & ~observable[1]).any()
    assert (airmass[1][observable[1]] > 1.2).any()


def test_a_target_next_to_the_moon_is_excluded() -> None:
    start, end = lapalma_night()
    grid = observable_windows(LAPALMA, positions([0.0], [0.0]), start, end).grid
    moon = get_body("moon", grid, location=LAPALMA.location())
    moon_alt_deg = moon.transform_to(AltAz(obstime=grid, location=LAPALMA.location())).alt.deg
    night = SiteSky(LAPALMA, grid, positions([0.0], [0.0])).sun_altitude_deg <= -18.0
    best = int(np.argmax(np.where(night, moon_alt_deg, -90.0)))
    assert moon_alt_deg[best] > 40.0  # full Moon on 2026-11-25: high in La Palma's night
    near_moon = positions([moon[best].ra.deg], [moon[best].dec.deg])
    free = observable_windows(LAPALMA, near_moon, start, end, max_airmass=3.0, min_moon_separation_deg=0.0)
    kept = observable_windows(LAPALMA, near_moon, start, end, max_airmass=3.0, min_moon_separation_deg=10.0)
    assert free.observable["lapalma"][0, best]
    assert not kept.observable["lapalma"][0, best]
    separation = SiteSky(LAPALMA, kept.grid, near_moon).moon_separation_deg[0]
    assert separation[best] < 2.0
    assert (separation[kept.observable["lapalma"][0]] >= 10.0).all()


# --- bad inputs ---


def test_bad_inputs_are_clear_errors() -> None:
    start = datetime(2026, 11, 25, 20, tzinfo=UTC)
    one = positions([10.0], [20.0])
    with pytest.raises(BadArguments, match="is not after start"):
        observable_windows(LAPALMA, one, start, start - timedelta(hours=1))
    with pytest.raises(BadArguments, match="no targets"):
        observable_windows(LAPALMA, positions([], []), start, start + timedelta(hours=1))
    with pytest.raises(BadArguments, match="one astropy SkyCoord"):
        observable_windows(LAPALMA, [one, one], start, start + timedelta(hours=1))
    with pytest.raises(BadArguments, match="timezone-aware"):
        observable_windows(LAPALMA, one, start.replace(tzinfo=None), start + timedelta(hours=1))
    with pytest.raises(BadArguments, match="timezone-aware"):
        night_bounds(LAPALMA, start.replace(tzinfo=None))
    with pytest.raises(BadArguments, match="2 values for 1 targets"):
        observable_windows(LAPALMA, one, start, start + timedelta(hours=1), max_airmass=[2.0, 3.0])
    with pytest.raises(BadArguments, match=r"max_airmass must lie in \[1.0, inf\]; 1 value\(s\) do not, e.g. 0.5"):
        observable_windows(LAPALMA, one, start, start + timedelta(hours=1), max_airmass=0.5)
    with pytest.raises(BadArguments, match="positive timedelta"):
        observable_windows(LAPALMA, one, start, start + timedelta(hours=1), step=timedelta(0))
    with pytest.raises(BadArguments, match="no sites"):
        observable_windows([], one, start, start + timedelta(hours=1))
    table = observable_windows(LAPALMA, one, start, start + timedelta(hours=1))
    with pytest.raises(BadArguments, match="no site named"):
        table.windows_of(0, "chile")
    with pytest.raises(BadArguments, match="out of range"):
        table.windows_of(1, "lapalma")


def test_constraints_are_small_strategy_objects() -> None:
    assert (AtNight.astronomical().max_sun_altitude_deg, AtNight.nautical().max_sun_altitude_deg) == (-18.0, -12.0)

    class EastOnly(Constraint):
        """Targets east of the meridian (azimuth below 180 deg): a user-defined condition."""

        def compute_mask(self, sky: SiteSky) -> np.ndarray:
            return np.asarray(sky.altaz.az.deg) < 180.0

    class Broken(Constraint):
        def compute_mask(self, sky: SiteSky) -> np.ndarray:
            return np.ones(3, dtype=bool)

    start, end = lapalma_night()
    targets = positions([120.0], [85.0])
    east = windows_for_constraints([AtNight.astronomical(), EastOnly()], LAPALMA, targets, start, end)
    night = windows_for_constraints([AtNight.astronomical()], LAPALMA, targets, start, end)
    assert 0 < east.observable["lapalma"].sum() < night.observable["lapalma"].sum()
    by_site = east.windows_by_site(0)
    assert set(by_site) == {"lapalma"}
    first_start, first_end = by_site["lapalma"][0]  # plain (start, end) pairs, as the scheduler takes them
    assert first_start < first_end
    with pytest.raises(ValueError, match="Broken gave shape"):
        windows_for_constraints([Broken()], LAPALMA, targets, start, end)
    with pytest.raises(BadArguments, match="min_moon_separation_deg must lie in"):
        MoonSeparationConstraint([10.0, float("nan")])
