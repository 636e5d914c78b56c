"""Offline visibility: night bounds, observing constraints, and observable windows of many targets at many sites.

`configure_offline()` switches off every IERS and leap-second download and stops stale bundled tables from
raising; every function here calls it first. For times past the bundled tables astropy falls back to predictions
(arcsecond-level error, irrelevant to scheduling); the warnings saying so are silenced where they arise
(`_tolerating_stale_tables`), so they never turn into errors under `-W error`.

Definitions follow astroplan, so windows match its constraints exactly on the same time grid: altitudes without
refraction (pressure 0), airmass = sec(z) (infinite at or below the horizon), night = Sun's centre (`get_sun`) at
or below the twilight altitude, Moon separation measured in the Moon's frame (`get_body('moon')`, GCRS at the
site), every limit inclusive.
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from astropolis.tools.errors import BadArguments, Refused
from astropolis.tools.sites import Site

ASTRONOMICAL_TWILIGHT_DEG = -18.0
NAUTICAL_TWILIGHT_DEG = -12.0
CIVIL_TWILIGHT_DEG = -6.0
MAX_GRID_POINTS = 100_000  # per site and target row; a night at 1 s steps still fits

Floats = NDArray[np.float64]
Mask = NDArray[np.bool_]


@functools.cache
def configure_offline() -> None:
    """Make astropy use only the tables it ships: no downloads, no staleness errors."""
    from astropy.utils import iers
    from astropy.utils.exceptions import AstropyWarning

    iers.conf.auto_download = False
    iers.conf.auto_max_age = None  # bundled tables may be old; never treat that as an error
    iers.conf.iers_degraded_accuracy = "ignore"  # times past the table: use predictions, do not raise
    iers.conf.remote_timeout = 0.0
    warnings.filterwarnings("ignore", category=iers.IERSStaleWarning)
    warnings.filterwarnings("ignore", message=".*leap-second.*", category=AstropyWarning)


@contextlib.contextmanager
def _tolerating_stale_tables() -> Iterator[None]:
    """Silence only the warnings astropy/erfa give for times past the bundled IERS and leap-second tables.

    The global filters of `configure_offline` do not survive `warnings.catch_warnings` (pytest resets filters per
    test), so each computation here installs them again for its own duration.
    """
    from astropy.utils import iers
    from astropy.utils.exceptions import AstropyWarning
    from erfa import ErfaWarning

    configure_offline()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=iers.IERSStaleWarning)
        warnings.filterwarnings("ignore", message=".*leap-second.*", category=AstropyWarning)
        warnings.filterwarnings("ignore", message=".*after IERS data is valid.*", category=AstropyWarning)
        warnings.filterwarnings("ignore", message=".*dubious year.*", category=ErfaWarning)
        yield


def _altaz(site: Site, when: datetime | list[datetime] | np.ndarray) -> Any:
    from astropy.coordinates import AltAz
    from astropy.time import Time

    configure_offline()
    return AltAz(obstime=Time(when, scale="utc"), location=site.location())


def sun_altitude_deg(site: Site, when: datetime) -> float:
    """Altitude of the Sun's centre at `site` at `when`, degrees (no refraction)."""
    from astropy.coordinates import get_sun

    with _tolerating_stale_tables():
        frame = _altaz(site, when)
        return float(get_sun(frame.obstime).transform_to(frame).alt.deg)


def target_altitude_deg(site: Site, ra_deg: float, dec_deg: float, when: datetime) -> float:
    """Altitude of an ICRS position at `site` at `when`, degrees (no refraction)."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    with _tolerating_stale_tables():
        frame = _altaz(site, when)
        return float(SkyCoord(ra_deg * u.deg, dec_deg * u.deg, frame="icrs").transform_to(frame).alt.deg)


def _utc(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise BadArguments(f"{name} must be a timezone-aware datetime (UTC), got {value!r}")
    return value.astimezone(UTC)


def _time_grid(start: datetime, offsets_s: Floats) -> Any:
    """astropy Time (UTC) at `start` + offsets, built from datetime64 so it agrees with datetime arithmetic."""
    from astropy.time import Time

    base = np.datetime64(start.replace(tzinfo=None), "us")
    with _tolerating_stale_tables():
        return Time(base + np.round(offsets_s * 1e6).astype("timedelta64[us]"), scale="utc")


def _sun_altitudes_deg(site: Site, times: Any) -> Floats:
    from astropy.coordinates import AltAz, get_sun

    with _tolerating_stale_tables():
        return np.asarray(get_sun(times).transform_to(AltAz(obstime=times, location=site.location())).alt.deg)


# --- night bounds -------------------------------------------------------------------------------------------------


class NoAstronomicalNight(Refused):
    """The Sun does not cross the twilight altitude near the asked time (white nights, or continuous darkness)."""

    def __init__(self, message: str) -> None:
        super().__init__("sun_up", message)


class Night(BaseModel):
    """One night at one site: from dusk (Sun sinking through the twilight altitude) to dawn (Sun rising through it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    site: str = Field(description="Site name.")
    dusk: AwareDatetime = Field(description="Sun crosses the twilight altitude going down, UTC.")
    dawn: AwareDatetime = Field(description="Sun crosses the twilight altitude going up, UTC.")
    twilight_deg: float = Field(default=ASTRONOMICAL_TWILIGHT_DEG, description="Sun altitude defining night, deg.")

    @property
    def duration(self) -> timedelta:
        """Length of the night."""
        return self.dawn - self.dusk


_SEARCH_BACK = timedelta(hours=26)
_SEARCH_AHEAD = timedelta(hours=50)
_COARSE_S = 600.0
_FINE_POINTS = 41  # 15 s spacing inside a 10 min bracket; linear interpolation then errs well under a second


def night_bounds(site: Site, when: datetime, *, twilight_deg: float = ASTRONOMICAL_TWILIGHT_DEG) -> Night:
    """The night at `site` that contains `when` (Sun at or below `twilight_deg`), else the next one.

    Raises `NoAstronomicalNight` (a `Refused`, code "sun_up") when the Sun never gets that low within the next
    day (white nights) or never rises back through it within the search span (continuous darkness).
    """
    when = _utc(when, "when")
    if not -90.0 < twilight_deg < 90.0:
        raise BadArguments(f"twilight_deg must lie strictly between -90 and 90, got {twilight_deg}")
    first = -_SEARCH_BACK.total_seconds()
    offsets = np.arange(first, _SEARCH_AHEAD.total_seconds() + _COARSE_S, _COARSE_S)
    dark = _sun_altitudes_deg(site, _time_grid(when, offsets)) <= twilight_deg
    now = round(-first / _COARSE_S)  # offsets[now] == 0
    falls = np.flatnonzero(~dark[:-1] & dark[1:])  # bracket i: dark begins between i and i + 1
    rises = np.flatnonzero(dark[:-1] & ~dark[1:])
    where = f"{site.name} around {when.isoformat()}"
    if dark[now]:
        dusk_i, dawn_i = falls[falls < now], rises[rises >= now]
        if not len(dusk_i) or not len(dawn_i):
            raise NoAstronomicalNight(f"{where}: the Sun stays below {twilight_deg} deg all day; no dusk or dawn")
        dusk_at, dawn_at = int(dusk_i[-1]), int(dawn_i[0])
    else:
        dusk_i = falls[(falls >= now) & (offsets[falls] < 86_400)]
        if not len(dusk_i):
            raise NoAstronomicalNight(f"{where}: the Sun does not reach {twilight_deg} deg in the next 24 h")
        dusk_at = int(dusk_i[0])
        dawn_i = rises[rises > dusk_at]
        if not len(dawn_i):
            raise NoAstronomicalNight(f"{where}: after dusk the Sun stays below {twilight_deg} deg for over a day")
        dawn_at = int(dawn_i[0])
    dusk_s, dawn_s = _refine_crossings(site, when, offsets[[dusk_at, dawn_at]], twilight_deg)
    return Night(
        site=site.name,
        dusk=when + timedelta(seconds=dusk_s),
        dawn=when + timedelta(seconds=dawn_s),
        twilight_deg=twilight_deg,
    )


def _refine_crossings(site: Site, when: datetime, brackets_s: Floats, twilight_deg: float) -> tuple[float, float]:
    """Crossing times (s after `when`) inside each coarse bracket: one fine grid for all, then linear interpolation."""
    fine = brackets_s[:, None] + np.linspace(0.0, _COARSE_S, _FINE_POINTS)[None, :]
    excess = _sun_altitudes_deg(site, _time_grid(when, fine.ravel())).reshape(fine.shape) - twilight_deg
    found = []
    for row_s, row in zip(fine, excess, strict=True):
        sign = row <= 0
        j = int(np.flatnonzero(sign[:-1] != sign[1:])[0])
        found.append(float(row_s[j] + (row_s[j + 1] - row_s[j]) * row[j] / (row[j] - row[j + 1])))
    return found[0], found[1]


# --- constraints ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SiteSky:
    """The sky of one site on the shared time grid, for all targets; each quantity is computed once, on first use.

    Arrays are (targets, times) except `sun_altitude_deg`, which is (times,).
    """

    site: Site
    """The site."""
    times: Any = field(repr=False)
    """The grid, an astropy Time of shape (times,)."""
    targets: Any = field(repr=False)
    """The targets, one astropy SkyCoord of shape (targets,)."""

    @property
    def shape(self) -> tuple[int, int]:
        """(number of targets, number of grid times)."""
        return int(self.targets.shape[0]), int(self.times.shape[0])

    @functools.cached_property
    def _location(self) -> Any:
        return self.site.location()

    @functools.cached_property
    def altaz(self) -> Any:
        """The targets in the site's AltAz frame (no refraction), a SkyCoord of shape (targets, times)."""
        from astropy.coordinates import AltAz

        # One transform of the whole (target x time) grid: the targets as a column against the times as a row.
        with _tolerating_stale_tables():
            return self.targets[:, np.newaxis].transform_to(AltAz(obstime=self.times, location=self._location))

    @functools.cached_property
    def altitude_deg(self) -> Floats:
        """Target altitudes, degrees, no refraction."""
        return np.asarray(self.altaz.alt.deg)

    @functools.cached_property
    def airmass(self) -> Floats:
        """sec(z) where the target is up, infinity at or below the horizon."""
        with np.errstate(divide="ignore"):
            secz = np.asarray(self.altaz.secz.value)
        return np.where(self.altitude_deg > 0.0, secz, np.inf)

    @functools.cached_property
    def sun_altitude_deg(self) -> Floats:
        """Altitude of the Sun's centre, degrees, no refraction."""
        return _sun_altitudes_deg(self.site, self.times)

    @functools.cached_property
    def moon_separation_deg(self) -> Floats:
        """Angle from the Moon (as seen from the site) to each target, degrees."""
        from astropy.coordinates import get_body

        with _tolerating_stale_tables():
            moon = get_body("moon", self.times, location=self._location)
            # Measured in the Moon's GCRS frame, as astroplan does; the ICRS->GCRS step is not a pure rotation,
            # which is the point, so astropy's warning about that is declined rather than silenced.
            return np.asarray(moon.separation(self.targets[:, np.newaxis], origin_mismatch="ignore").deg)


def _limits(values: ArrayLike, name: str, low: float, high: float) -> Floats:
    """A read-only float copy of a scalar or per-target limit, checked against [low, high]."""
    try:
        array = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise BadArguments(f"{name} must be a number or a sequence of numbers, got {type(values).__name__}") from None
    if array.ndim > 1 or array.size == 0:
        raise BadArguments(f"{name} must be one number or one per target, got shape {array.shape}")
    bad = array[~((array >= low) & (array <= high))]  # NaN fails both comparisons
    if bad.size:
        raise BadArguments(f"{name} must lie in [{low}, {high}]; {bad.size} value(s) do not, e.g. {bad[0]}")
    array.flags.writeable = False
    return array


class Constraint(ABC):
    """One observing condition, evaluated for every target and grid time at a site in one vectorised step.

    Subclasses implement `compute_mask`; `__call__` checks and broadcasts its result to (targets, times).
    """

    def __call__(self, sky: SiteSky) -> Mask:
        """Boolean (targets, times) mask: True where the condition holds."""
        mask = np.asarray(self.compute_mask(sky), dtype=bool)
        try:
            return np.broadcast_to(mask, sky.shape)
        except ValueError:  # a constraint that ignores the grid's shape is a bug, not a caller's mistake
            raise ValueError(f"{type(self).__name__} gave shape {mask.shape}, expected {sky.shape}") from None

    @abstractmethod
    def compute_mask(self, sky: SiteSky) -> Mask:
        """The mask, in any shape that broadcasts to (targets, times)."""

    @staticmethod
    def per_target(limits: Floats, sky: SiteSky, name: str) -> Floats:
        """A limit as a (targets, 1) column, or the scalar itself, so it broadcasts over the grid."""
        if limits.ndim == 0:
            return limits
        if limits.shape[0] != sky.shape[0]:
            raise BadArguments(f"{name} has {limits.shape[0]} values for {sky.shape[0]} targets")
        return limits[:, np.newaxis]


@dataclass(frozen=True, eq=False)
class AtNight(Constraint):
    """The Sun's centre at or below `max_sun_altitude_deg`."""

    max_sun_altitude_deg: float
    """Highest Sun altitude that still counts as night, degrees."""

    @classmethod
    def astronomical(cls) -> AtNight:
        """Between astronomical twilights (Sun at or below -18 deg)."""
        return cls(ASTRONOMICAL_TWILIGHT_DEG)

    @classmethod
    def nautical(cls) -> AtNight:
        """Between nautical twilights (Sun at or below -12 deg)."""
        return cls(NAUTICAL_TWILIGHT_DEG)

    @classmethod
    def civil(cls) -> AtNight:
        """Between civil twilights (Sun at or below -6 deg)."""
        return cls(CIVIL_TWILIGHT_DEG)

    def compute_mask(self, sky: SiteSky) -> Mask:
        """Per grid time; the same for every target."""
        return sky.sun_altitude_deg <= self.max_sun_altitude_deg


@dataclass(frozen=True, eq=False)
class AltitudeConstraint(Constraint):
    """Target altitude within [min_deg, max_deg]; `min_deg=None` means the site's own horizon limit."""

    min_deg: float | None = None
    """Lowest altitude, degrees; None: the site's `horizon_deg`."""
    max_deg: float = 90.0
    """Highest altitude, degrees."""

    @classmethod
    def above_site_horizon(cls) -> AltitudeConstraint:
        """At or above each site's `horizon_deg`."""
        return cls(None)

    def compute_mask(self, sky: SiteSky) -> Mask:
        """Per target and time."""
        low = sky.site.horizon_deg if self.min_deg is None else self.min_deg
        altitude = sky.altitude_deg
        return (altitude >= low) & (altitude <= self.max_deg)


@dataclass(frozen=True, eq=False)
class AirmassConstraint(Constraint):
    """Airmass (sec z) at most `max_airmass`: one number, or one per target (the jobs' own limits)."""

    max_airmass: ArrayLike
    """Highest airmass: a number, or one per target."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_airmass", _limits(self.max_airmass, "max_airmass", 1.0, math.inf))

    def compute_mask(self, sky: SiteSky) -> Mask:
        """Per target and time; never true below the horizon."""
        return sky.airmass <= self.per_target(np.asarray(self.max_airmass), sky, "max_airmass")


@dataclass(frozen=True, eq=False)
class MoonSeparationConstraint(Constraint):
    """At least `min_deg` from the Moon: one number, or one per target."""

    min_deg: ArrayLike
    """Smallest angle from the Moon, degrees: a number, or one per target."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "min_deg", _limits(self.min_deg, "min_moon_separation_deg", 0.0, 180.0))

    def compute_mask(self, sky: SiteSky) -> Mask:
        """Per target and time."""
        return sky.moon_separation_deg >= self.per_target(np.asarray(self.min_deg), sky, "min_moon_separation_deg")


def default_constraints(
    max_airmass: ArrayLike = 2.0, min_moon_separation_deg: ArrayLike = 30.0
) -> tuple[Constraint, ...]:
    """Astronomical night, above the site's horizon limit, airmass and Moon limits (scalars or per target)."""
    return (
        AtNight.astronomical(),
        AltitudeConstraint.above_site_horizon(),
        AirmassConstraint(max_airmass),
        MoonSeparationConstraint(min_moon_separation_deg),
    )


# --- observable windows ---------------------------------------------------------------------------------------


class TimeWindow(NamedTuple):
    """A contiguous observable interval [start, end), UTC; a plain (start, end) pair to the scheduler."""

    start: datetime
    """First instant, UTC."""
    end: datetime
    """First instant after the window, UTC."""

    @property
    def duration(self) -> timedelta:
        """Length of the window."""
        return self.end - self.start


@dataclass(frozen=True, eq=False)
class WindowTable:
    """When each target is observable at each site, on one time grid shared by all sites.

    Grid sample k stands for [grid_utc[k], grid_utc[k] + step), the last one clipped at `end`; each run of
    observable samples is one window. Arrays are (targets, times), keyed by site name; target i is `targets[i]`.
    """

    site_names: tuple[str, ...]
    """Sites, in the order given."""
    n_targets: int
    """Number of targets; target i is `targets[i]`."""
    grid: Any = field(repr=False)
    """The grid as an astropy Time (UTC), shape (times,)."""
    grid_utc: tuple[datetime, ...] = field(repr=False)
    """The same grid as aware UTC datetimes."""
    step: timedelta
    """Grid spacing."""
    end: datetime
    """End of the span (exclusive), UTC."""
    observable: Mapping[str, Mask] = field(repr=False)
    """Per site: True where every constraint holds."""
    altitude_deg: Mapping[str, Floats] = field(repr=False)
    """Per site: target altitude, degrees, no refraction."""
    airmass: Mapping[str, Floats] = field(repr=False)
    """Per site: sec z, infinity at or below the horizon (for scoring)."""

    @functools.cached_property
    def windows(self) -> Mapping[tuple[int, str], tuple[TimeWindow, ...]]:
        """Windows of every (target index, site name) pair; an empty tuple where there are none."""
        edges = (*self.grid_utc, self.end)
        found: dict[tuple[int, str], list[TimeWindow]] = {}
        for site in self.site_names:
            mask = self.observable[site]
            padded = np.zeros((mask.shape[0], mask.shape[1] + 2), dtype=np.int8)
            padded[:, 1:-1] = mask
            change = np.diff(padded, axis=1)  # +1 where a run starts at sample k, -1 where it stops before k
            rows, opens = np.nonzero(change == 1)
            _, closes = np.nonzero(change == -1)  # row-major order: pairs up with `opens`
            for row, first, stop in zip(rows.tolist(), opens.tolist(), closes.tolist(), strict=True):
                found.setdefault((row, site), []).append(TimeWindow(edges[first], edges[stop]))
        return {
            (target, site): tuple(found.get((target, site), ()))
            for target in range(self.n_targets)
            for site in self.site_names
        }

    def windows_by_site(self, target: int) -> dict[str, tuple[TimeWindow, ...]]:
        """Windows of target index `target` at every site (what `SchedJob.from_job` takes)."""
        return {site: self.windows_of(target, site) for site in self.site_names}

    def windows_of(self, target: int, site: str) -> tuple[TimeWindow, ...]:
        """Windows of target index `target` at site `site`."""
        if site not in self.site_names:
            raise BadArguments(f"no site named {site!r} in this table; sites: {', '.join(self.site_names)}")
        if not 0 <= target < self.n_targets:
            raise BadArguments(f"target index {target} is out of range (0..{self.n_targets - 1})")
        return self.windows[(target, site)]


def observable_windows(
    sites: Site | Iterable[Site],
    targets: Any,
    start: datetime,
    end: datetime,
    *,
    max_airmass: ArrayLike = 2.0,
    min_moon_separation_deg: ArrayLike = 30.0,
    step: timedelta = timedelta(minutes=5),
) -> WindowTable:
    """Windows of many targets (one vector SkyCoord) at many sites between `start` and `end` (UTC).

    A target is observable at a grid time when the Sun is at or below -18 deg, the target is at or above the
    site's `horizon_deg`, its airmass is at most `max_airmass` and it is at least `min_moon_separation_deg` from
    the Moon. The two limits are one number or one value per target.
    """
    return windows_for_constraints(
        default_constraints(max_airmass, min_moon_separation_deg), sites, targets, start, end, step=step
    )


def windows_for_constraints(
    constraints: Sequence[Constraint],
    sites: Site | Iterable[Site],
    targets: Any,
    start: datetime,
    end: datetime,
    *,
    step: timedelta = timedelta(minutes=5),
) -> WindowTable:
    """Windows where every one of `constraints` holds; see `observable_windows` for the usual set."""
    site_list = _site_list(sites)
    coords = _target_vector(targets)
    start, end = _utc(start, "start"), _utc(end, "end")
    if not isinstance(step, timedelta) or step <= timedelta(0):
        raise BadArguments(f"step must be a positive timedelta, got {step!r}")
    if end <= start:
        raise BadArguments(f"end {end.isoformat()} is not after start {start.isoformat()}")
    count = -((start - end) // step)  # ceil: the last sample's interval is clipped at `end`
    if count > MAX_GRID_POINTS:
        raise BadArguments(f"{count} grid points from {start} to {end} at {step}; use a coarser step")
    times = _time_grid(start, np.arange(count, dtype=np.float64) * step.total_seconds())
    observable: dict[str, Mask] = {}
    altitude: dict[str, Floats] = {}
    airmass: dict[str, Floats] = {}
    for site in site_list:
        sky = SiteSky(site, times, coords)
        mask = np.ones(sky.shape, dtype=bool)
        for constraint in constraints:
            mask &= constraint(sky)
        observable[site.name], altitude[site.name], airmass[site.name] = mask, sky.altitude_deg, sky.airmass
    return WindowTable(
        site_names=tuple(site.name for site in site_list),
        n_targets=sky.shape[0],
        grid=times,
        grid_utc=tuple(start + k * step for k in range(count)),
        step=step,
        end=end,
        observable=observable,
        altitude_deg=altitude,
        airmass=airmass,
    )


def _site_list(sites: Site | Iterable[Site]) -> tuple[Site, ...]:
    listed = (sites,) if isinstance(sites, Site) else tuple(sites)
    if not listed:
        raise BadArguments("no sites given; pass a Site, a list of them or a SiteRegistry")
    names = [site.name for site in listed]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise BadArguments(f"site names must be unique; repeated: {', '.join(repeated)}")
    return listed


def _target_vector(targets: Any) -> Any:
    from astropy.coordinates import SkyCoord

    if not isinstance(targets, SkyCoord):
        raise BadArguments(f"targets must be one astropy SkyCoord holding a vector of positions, got {type(targets)}")
    if targets.isscalar:
        targets = targets.reshape((1,))
    if targets.ndim != 1:
        raise BadArguments(f"targets must be a 1-d SkyCoord, got shape {targets.shape}")
    if targets.shape[0] == 0:
        raise BadArguments("no targets given; pass a SkyCoord with at least one position")
    return targets
