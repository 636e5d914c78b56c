"""The network planner: visibility windows (computed once per job, as one vector) fed to the scheduler; and the
demo night's span and its seeded observe jobs on real OpenNGC galaxies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from random import Random

from astropolis.memory import Job, JobRequest, parse_request
from astropolis.tools.scheduler import schedule
from astropolis.tools.scheduler_models import Assignment, SchedJob, SchedulingProblem, SiteState
from astropolis.tools.sites import SiteRegistry
from astropolis.tools.visibility import NoAstronomicalNight, TimeWindow, night_bounds, observable_windows

READOUT_S = 2.0


class NetworkPlanner:
    """Plans PENDING observe jobs over the network until `end`, re-planning from scratch on every call."""

    def __init__(self, sites: SiteRegistry, end: datetime, *, step: timedelta = timedelta(minutes=5)) -> None:
        self.sites = sites
        self.end = end
        self.step = step
        self._windows: dict[int, dict[str, tuple[TimeWindow, ...]]] = {}
        self.last_plan: dict[str, tuple[Assignment, ...]] = {}

    def windows(self, jobs: Sequence[Job], now: datetime) -> dict[int, dict[str, tuple[TimeWindow, ...]]]:
        """Observable windows of each job at each site, from the first time the job was seen until `end`."""
        new = [job for job in jobs if job.id not in self._windows and job.request.target is not None]
        if new and now < self.end:
            from astropy import units as u
            from astropy.coordinates import SkyCoord

            targets = SkyCoord(
                [j.request.target.ra_deg for j in new] * u.deg,  # type: ignore[union-attr]
                [j.request.target.dec_deg for j in new] * u.deg,  # type: ignore[union-attr]
            )
            table = observable_windows(
                self.sites, targets, now, self.end, step=self.step,
                max_airmass=[j.request.constraints.max_airmass for j in new],
                min_moon_separation_deg=[j.request.constraints.min_moon_separation_deg for j in new],
            )
            for index, job in enumerate(new):
                self._windows[job.id] = table.windows_by_site(index)
        return {job.id: self._windows.get(job.id, {}) for job in jobs}

    def plan(
        self, jobs: Sequence[Job], sites: Sequence[SiteState], now: datetime
    ) -> Mapping[str, Sequence[Assignment]]:
        """Per-site assignments of the jobs that have a target and an exposure plan."""
        if now >= self.end:
            return {}
        windows = self.windows(jobs, now)
        schedulable = [
            SchedJob.from_job(
                job, duration_s=SchedJob.duration_of(job.request.exposure, READOUT_S), windows=windows[job.id]
            )
            for job in jobs
            if job.request.target is not None and job.request.exposure is not None
        ]
        problem = SchedulingProblem(jobs=tuple(schedulable), sites=tuple(sites), now=now, end=self.end)
        self.last_plan = dict(schedule(problem).sites)
        return self.last_plan


def network_night(sites: SiteRegistry, start: datetime) -> dict[str, tuple[datetime, datetime]]:
    """Each site's (dusk, dawn) for its first night that begins at or after `start`: the network's night
    follows the Earth's turn from site to site (sites with no astronomical night are left out)."""
    nights = {}
    for site in sites:
        try:
            night = night_bounds(site, start)
            if night.dusk < start:
                night = night_bounds(site, night.dawn + timedelta(minutes=1))
        except NoAstronomicalNight:
            continue
        nights[site.name] = (night.dusk, night.dawn)
    return nights


# Bright galaxies from OpenNGC, spread over the sky so every demo site has targets all night. Their fields
# carry seeded faint stars in the demo sky (astropolis.tools.simulators.alpaca.DEMO_FIELDS).
DEMO_GALAXIES = ("NGC0224", "NGC0253", "NGC0598", "NGC1068", "NGC1365", "NGC3031", "NGC4594", "NGC5128",
                 "NGC5194", "NGC5236", "NGC5457", "NGC7793")


def demo_requests(
    sites: SiteRegistry,
    start: datetime,
    end: datetime,
    *,
    seed: int = 1,
    exposure_s: float = 3.0,
    count: int = 2,
    epochs: int = 2,
) -> list[JobRequest]:
    """Seeded monitoring requests for the demo galaxies (real OpenNGC coordinates, names and Hubble types):
    one job per galaxy per epoch, the night cut into `epochs` equal windows, so the work follows the dark
    around the network. Only galaxies observable from some site within an epoch get a job for it."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord
    from pyongc import ongc

    rng = Random(seed)
    galaxies = [ongc.Dso(name) for name in DEMO_GALAXIES]
    coords = SkyCoord([g.rad_coords[0] for g in galaxies] * u.rad, [g.rad_coords[1] for g in galaxies] * u.rad)
    span = (end - start) / epochs
    requests = []
    for epoch in range(epochs):
        lo, hi = start + epoch * span, start + (epoch + 1) * span
        table = observable_windows(sites, coords, lo, hi, max_airmass=2.5, min_moon_separation_deg=20.0)
        for index, galaxy in enumerate(galaxies):
            longest = max((w.duration for ws in table.windows_by_site(index).values() for w in ws), default=None)
            if longest is None or longest < timedelta(minutes=20):
                continue
            label = _label(galaxy)
            requests.append(parse_request({
                "kind": "observe",
                "target": {
                    "name": label, "ra_deg": float(coords[index].ra.deg), "dec_deg": float(coords[index].dec.deg)
                },
                "window": {"start": lo.isoformat(), "end": hi.isoformat()},
                "exposure": {"filter": "R", "exposure_s": exposure_s, "count": count},
                "constraints": {"max_airmass": 2.5, "min_moon_separation_deg": 20.0},
                "priority": rng.randint(10, 90),
                "reason": f"demo night: monitor {label} ({galaxy.hubble or galaxy.type}), "
                f"epoch {epoch + 1} of {epochs}",
                "origin": {"kind": "night", "ref": f"demo-{start:%Y-%m-%d}"},
                "idempotency_key": f"demo-night:{start:%Y-%m-%d}:{galaxy.name}:{epoch + 1}",
            }))
    return requests


def _label(galaxy: object) -> str:
    """'M31' style for Messier objects, else 'NGC 253'."""
    name = str(galaxy.name)  # type: ignore[attr-defined]
    messier = galaxy.identifiers[0]  # type: ignore[attr-defined]
    ngc = f"NGC {int(name[3:])}" if name.startswith("NGC") else name
    return f"M{int(messier[1:])}" if messier else ngc
