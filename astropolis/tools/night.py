"""One night on the network, on a simulated clock: seeded jobs, a planner, per-site executors and faults.

The night is a discrete-event simulation over real drivers: every site's next action is an event at a
simulated time; events run in time order on one `ManualClock`, so DATE-OBS, ledger history and audit entries
all carry simulated times and a night replays identically given the same sky. Real simulators still take
their real exposure time; idle time between events costs nothing (or 1/speed of it with `speed`).
"""

from __future__ import annotations

import heapq
import itertools
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from astropolis.lake import Lake
from astropolis.lake.clock import ManualClock
from astropolis.memory import AuditLog, IllegalTransition, Job, JobKind, JobState, Ledger
from astropolis.tools.drivers import Driver
from astropolis.tools.errors import BadArguments, DriverError, Refused
from astropolis.tools.executor import SiteExecutor
from astropolis.tools.followups import confirm_in_lake
from astropolis.tools.night_residents import NightResidents
from astropolis.tools.scheduler_models import Assignment, SiteState
from astropolis.tools.sites import SiteRegistry

RECHECK = timedelta(minutes=15)
READOUT_S = 2.0
EventKind = Literal["dispatch", "expose", "complete", "fault", "sky"]
FaultAction = Literal["clouds", "clear", "unsafe", "safe", "kill"]


class SiteControls(Protocol):
    """Fault switches of simulated sites (the demo sky is ours to change)."""

    def set_safe(self, site: str, safe: bool) -> None:
        """Make a site's safety monitor report safe or unsafe."""

    def set_cloud_cover(self, site: str, percent: float) -> None:
        """Set a site's cloud cover."""

    def kill(self, site: str) -> None:
        """Kill a site's device process (a dead site)."""

    def add_source(self, ra_deg: float, dec_deg: float, mag: float, label: str) -> None:
        """Put a new source on the sky every site renders (a transient)."""


@dataclass(frozen=True)
class SkyEvent:
    """A new source appearing on the sky at a simulated time (a supernova in a galaxy, say)."""

    at: datetime
    ra_deg: float
    dec_deg: float
    mag: float
    label: str


@dataclass(frozen=True)
class Fault:
    """A scripted change of a site's conditions at a simulated time."""

    at: datetime
    site: str
    action: FaultAction
    value: float | None = None

    @classmethod
    def parse(cls, text: str, start: datetime) -> Fault:
        """`SITE:ACTION[=VALUE]@+HOURS`, e.g. `chile:clouds=80@+5h`, `siding-spring:kill@+14.5h`."""
        match = re.fullmatch(r"([a-z0-9._-]+):(clouds|clear|unsafe|safe|kill)(?:=([0-9.]+))?@\+([0-9.]+)h", text)
        if match is None:
            raise BadArguments(f"fault {text!r} must look like SITE:ACTION[=VALUE]@+HOURSh, e.g. chile:clouds=80@+5h")
        site, action, value, hours = match.groups()
        return cls(start + timedelta(hours=float(hours)), site, action, float(value) if value else None)  # type: ignore[arg-type]


class Planner(Protocol):
    """Turns PENDING jobs and site states into per-site ordered assignments (earliest first)."""

    def plan(
        self, jobs: Sequence[Job], sites: Sequence[SiteState], now: datetime
    ) -> Mapping[str, Sequence[Assignment]]:
        """Per-site assignments; an assignment's setup (slew + overhead) ends at its `start`."""
        ...


class NightEvent(BaseModel):
    """One line of the night's story."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    site: str
    kind: str
    job_id: int | None = None
    detail: str = ""


@dataclass(order=True)
class _Queued:
    at: datetime
    order: int
    kind: EventKind = field(compare=False)
    site: str = field(compare=False)
    job_id: int | None = field(compare=False, default=None)
    index: int = field(compare=False, default=0)
    fault: Fault | None = field(compare=False, default=None)
    sky: SkyEvent | None = field(compare=False, default=None)


@dataclass
class _Running:
    job: Job
    frames: list[str] = field(default_factory=list)


class NightRunner:
    """Runs the network from the first dusk to the last dawn."""

    def __init__(
        self,
        *,
        sites: SiteRegistry,
        drivers: Mapping[str, Driver],
        lake: Lake,
        ledger: Ledger,
        audit: AuditLog,
        clock: ManualClock,
        planner: Planner,
        nights: Mapping[str, tuple[datetime, datetime]],
        controls: SiteControls | None = None,
        faults: Sequence[Fault] = (),
        speed: float | None = None,
        on_event: Callable[[NightEvent], None] | None = None,
        residents: NightResidents | None = None,
        sky_events: Sequence[SkyEvent] = (),
    ) -> None:
        self.sites = sites
        self.clock = clock
        self.ledger = ledger
        self.audit = audit
        self.planner = planner
        self.nights = dict(nights)
        self.controls = controls
        self.speed = speed
        self.on_event = on_event
        self.residents = residents
        self.executors = {
            name: SiteExecutor(driver, lake=lake, ledger=ledger, audit=audit, clock=clock)
            for name, driver in drivers.items()
        }
        self.running: dict[str, _Running | None] = {name: None for name in drivers}
        self.busy_until: dict[str, datetime] = {}
        self.pointing: dict[str, tuple[float, float]] = {}
        self.events: list[NightEvent] = []
        self._queue: list[_Queued] = []
        self._order = itertools.count()
        self.start = min(dusk for dusk, _ in self.nights.values())
        self.end = max(dawn for _, dawn in self.nights.values())
        for fault in faults:
            if fault.site not in self.executors:
                raise BadArguments(f"fault names unknown site {fault.site!r}; sites: {', '.join(self.executors)}")
            if fault.action != "kill" and controls is None:
                raise BadArguments("faults need simulated sites with fault switches")
            self._push(fault.at, "fault", fault.site, fault=fault)
        for event in sky_events:
            if controls is None:
                raise BadArguments("sky events need simulated sites whose sky can be changed")
            self._push(event.at, "sky", "sky", sky=event)

    # ---------------------------------------------------------------------------------------- plumbing
    def _push(
        self,
        at: datetime,
        kind: EventKind,
        site: str,
        job_id: int | None = None,
        index: int = 0,
        fault: Fault | None = None,
        sky: SkyEvent | None = None,
    ) -> None:
        heapq.heappush(self._queue, _Queued(at, next(self._order), kind, site, job_id, index, fault, sky))

    def _log(self, site: str, kind: str, detail: str, job_id: int | None = None) -> None:
        event = NightEvent(at=self.clock.now(), site=site, kind=kind, job_id=job_id, detail=detail)
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def _pace(self, moment: datetime, real_start: float) -> None:
        if not self.speed:
            return
        due = (moment - self.start).total_seconds() / self.speed
        lag = due - (time.monotonic() - real_start)
        if lag > 0:
            time.sleep(min(lag, 5.0))

    # ------------------------------------------------------------------------------------------ the night
    def run(self) -> None:
        """Run every event up to the last dawn, then close every site."""
        for name, (dusk, _) in self.nights.items():
            self._push(max(dusk, self.clock.now()), "dispatch", name)
        real_start = time.monotonic()
        while self._queue:
            item = heapq.heappop(self._queue)
            if item.at > self.end:
                break
            self._pace(item.at, real_start)
            if item.at > self.clock.now():
                self.clock.advance_to(item.at)
            self.ledger.reap(actor="reaper")
            handler = {
                "dispatch": self._dispatch,
                "expose": self._expose,
                "complete": self._complete,
                "fault": self._fault,
                "sky": self._sky,
            }[item.kind]
            handler(item)
        if self.clock.now() < self.end:
            self.clock.advance_to(self.end)
        for name, executor in self.executors.items():
            if executor.health.alive and executor.health.open:
                executor.close_up("dawn")
                self._log(name, "closed", "dawn: parked")
        if self.residents is not None:
            for note in self.residents.at_dawn():
                for job in note.jobs:
                    self._log("network", "review", note.detail, job.id)
        for job in self.ledger.reap(actor="reaper"):
            self._log(job.site or "-", "expired", job.history[-1].reason, job.id)

    def site_states(self, now: datetime) -> list[SiteState]:
        """Availability, earliest free time and pointing of every site, as the planner sees them."""
        states = []
        for name, executor in self.executors.items():
            dusk, dawn = self.nights[name]
            alive, open_ = executor.health.alive, executor.health.open
            reason = None if alive and open_ else (executor.health.reason or "closed")[:200]
            if now >= dawn:
                reason = "past dawn"
            free_from = max(now, dusk, self.busy_until.get(name, now))
            pointing = self.pointing.get(name)
            states.append(
                SiteState.from_site(
                    self.sites.get(name),
                    free_from=free_from,
                    available=reason is None,
                    unavailable_reason=reason,
                    pointing_ra_deg=pointing[0] if pointing else None,
                    pointing_dec_deg=pointing[1] if pointing else None,
                )
            )
        return states

    def _pending_observations(self) -> list[Job]:
        return [
            job
            for job in self.ledger.jobs(states=[JobState.PENDING])
            if job.request.kind in (JobKind.OBSERVE, JobKind.REOBSERVE)
        ]

    def _dispatch(self, item: _Queued) -> None:
        site, now = item.site, self.clock.now()
        executor = self.executors[site]
        _, dawn = self.nights[site]
        if not executor.health.alive or self.running[site] is not None or now >= dawn:
            return
        try:
            executor.driver.check_site(now)
        except Refused as refusal:
            if executor.health.open:
                executor.close_up(str(refusal))
                self._log(site, "closed", str(refusal))
            if now + RECHECK < dawn:
                self._push(now + RECHECK, "dispatch", site)
            return
        except DriverError as error:
            executor.mark_dead(str(error))
            self._log(site, "dead", str(error))
            self._replan_others(site, now)
            return
        if not executor.health.open:
            executor.health.open, executor.health.reason = True, None
            self._log(site, "reopened", "conditions within limits again")
        plan = self.planner.plan(self._pending_observations(), self.site_states(now), now)
        mine = plan.get(site, [])
        if not mine:
            if now + RECHECK < dawn:
                self._push(now + RECHECK, "dispatch", site)
            return
        first = mine[0]
        begin = first.start - timedelta(seconds=first.setup_s)
        if begin > now + timedelta(seconds=1):
            self._push(begin, "dispatch", site)
            return
        try:
            job = self.ledger.schedule(
                first.job_id,
                site,
                actor="scheduler",
                reason=f"planned at {site} {first.start:%H:%M}-{first.end:%H:%M} UTC",
            )
        except IllegalTransition:
            self._push(now, "dispatch", site)
            return
        job = executor.start(job)
        self.running[site] = _Running(job)
        self.busy_until[site] = max(first.end, now + timedelta(seconds=first.setup_s))
        target = job.request.target
        if target is not None:
            self.pointing[site] = (target.ra_deg, target.dec_deg)
        name = target.name if target and target.name else f"job {job.id}"
        self._log(site, "start", f"{name} (priority {job.request.priority}, {job.request.lane})", job.id)
        self._push(now + timedelta(seconds=first.setup_s), "expose", site, job.id, 0)

    def _expose(self, item: _Queued) -> None:
        site, now = item.site, self.clock.now()
        executor = self.executors[site]
        running = self.running[site]
        assert running is not None and running.job.id == item.job_id
        job = running.job
        outcome = executor.expose(job, item.index)
        if outcome.frame_id is None:
            self.running[site] = None
            self.busy_until.pop(site, None)
            handed = executor.hand_back(job, outcome.error or "exposure failed")
            if outcome.refusal in ("unsafe", "weather", "sun_up"):
                executor.close_up(outcome.error or "refused")
                self._log(site, "closed", outcome.error or "refused", job.id)
                self._push(now + RECHECK, "dispatch", site)
            elif outcome.refusal is not None:
                self._log(site, "refused", outcome.error or "refused", job.id)
                self._push(now, "dispatch", site)
            else:
                executor.mark_dead(outcome.error or "driver error")
                self._log(site, "dead", outcome.error or "driver error", job.id)
                self._replan_others(site, now)
            self._log(site, "handed-back", f"job now {handed.state.value}", job.id)
            return
        running.frames.append(outcome.frame_id)
        self._log(site, "frame", f"{outcome.frame_id[:19]}" + (" (recovered)" if outcome.replayed else ""), job.id)
        if self.residents is not None:
            filed = False
            for note in self.residents.on_frame(outcome.frame_id):
                self._log(site, note.kind, note.detail, job.id)
                for new in note.jobs:
                    filed = True
                    self._log(site, "job", f"{new.request.kind.value} {new.request.lane}: {new.request.reason}", new.id)
            if filed:
                self._replan_others(site, now)
        assert job.request.exposure is not None
        following = now + timedelta(seconds=job.request.exposure.exposure_s + READOUT_S)
        if item.index + 1 < job.request.exposure.count:
            self._push(following, "expose", site, job.id, item.index + 1)
        else:
            self._push(following, "complete", site, job.id)

    def _complete(self, item: _Queued) -> None:
        site = item.site
        running = self.running[site]
        assert running is not None
        job = self.executors[site].complete(running.job, running.frames)
        self.running[site] = None
        self.busy_until.pop(site, None)
        self._log(site, "completed", f"{len(running.frames)} frame(s)", job.id)
        self._push(self.clock.now(), "dispatch", site)

    def _fault(self, item: _Queued) -> None:
        fault = item.fault
        assert fault is not None
        if fault.action == "kill":
            if self.controls is not None:
                self.controls.kill(fault.site)
            else:
                self.executors[fault.site].driver.close()
        elif self.controls is not None:
            if fault.action in ("clouds", "clear"):
                cover = (fault.value if fault.value is not None else 80.0) if fault.action == "clouds" else 0.0
                self.controls.set_cloud_cover(fault.site, cover)
            else:
                self.controls.set_safe(fault.site, fault.action == "safe")
        suffix = f"={fault.value:g}" if fault.value is not None else ""
        self._log(fault.site, "fault", f"{fault.action}{suffix}")
        if self.running[fault.site] is None:
            self._push(self.clock.now(), "dispatch", fault.site)

    def _sky(self, item: _Queued) -> None:
        event = item.sky
        assert event is not None and self.controls is not None
        self.controls.add_source(event.ra_deg, event.dec_deg, event.mag, event.label)
        self._log(
            "sky", "sky", f"{event.label} appears at RA {event.ra_deg:.5f} Dec {event.dec_deg:+.5f}, mag {event.mag:g}"
        )

    def _replan_others(self, dead_site: str, now: datetime) -> None:
        for name in self.executors:
            if name != dead_site and self.running[name] is None:
                self._push(now, "dispatch", name)

    # ------------------------------------------------------------------------------------------ report
    def report(self) -> dict[str, Any]:
        """What was observed where, what failed and why: the night's JSON document."""
        jobs = self.ledger.jobs()
        frames_by_job: dict[int, list[str]] = {}
        for event in self.events:
            if event.kind == "frame" and event.job_id is not None:
                frames_by_job.setdefault(event.job_id, []).append(event.detail.split()[0])
        sites: list[dict[str, Any]] = []
        for name, executor in self.executors.items():
            dusk, dawn = self.nights[name]
            sites.append(
                {
                    "name": name,
                    "dusk": dusk.isoformat(),
                    "dawn": dawn.isoformat(),
                    "alive": executor.health.alive,
                    "frames": len(executor.health.frames),
                    "completed": sum(1 for j in jobs if j.state == JobState.COMPLETED and j.site == name),
                    "closed_reason": executor.health.reason,
                }
            )
        job_rows = []
        for job in jobs:
            target = job.request.target
            job_rows.append(
                {
                    "id": job.id,
                    "target": target.name if target else None,
                    "priority": job.request.priority,
                    "lane": job.request.lane,
                    "state": job.state.value,
                    "site": job.site,
                    "attempts": job.attempts,
                    "frames": frames_by_job.get(job.id, []),
                    "last_reason": job.history[-1].reason,
                }
            )
        states = [row["state"] for row in job_rows]
        follow_ups = self._follow_ups(jobs, frames_by_job)
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "speed": self.speed,
            "sites": sites,
            "jobs": job_rows,
            "totals": {
                "jobs": len(job_rows),
                "completed": states.count("COMPLETED"),
                "pending": states.count("PENDING"),
                "expired": states.count("WINDOW_EXPIRED"),
                "failed": states.count("FAILED") + states.count("FAILURE_LIMIT_REACHED"),
                "frames": sum(int(site["frames"]) for site in sites),
                "products": sum(self.residents.products.values()) if self.residents is not None else 0,
                "follow_ups": len(follow_ups),
            },
            "residents": dict(sorted(self.residents.products.items())) if self.residents is not None else {},
            "follow_ups": follow_ups,
            "events": [event.model_dump(mode="json") for event in self.events],
        }

    def _follow_ups(self, jobs: Sequence[Job], frames_by_job: dict[int, list[str]]) -> list[dict[str, Any]]:
        """The residents' loop, one row per job they filed: frame -> product -> job -> follow-up frames."""
        if self.residents is None:
            return []
        lake = self.residents.runner.lake
        rows = []
        for job in jobs:
            origin = job.request.origin
            if origin.kind != "product":
                continue
            product = lake.product(origin.ref)
            frame = lake.frame(product.inputs[0])
            target = job.request.target
            rows.append(
                {
                    "job": job.id,
                    "kind": job.request.kind.value,
                    "lane": job.request.lane,
                    "state": job.state.value,
                    "resident": product.resident,
                    "product": product.id,
                    "frame": frame.id,
                    "frame_site": frame.site,
                    "frame_at": frame.observed_at.isoformat() if frame.observed_at else None,
                    "reference": product.inputs[1] if len(product.inputs) > 1 else None,
                    "target": {"name": target.name, "ra_deg": target.ra_deg, "dec_deg": target.dec_deg}
                    if target
                    else None,
                    "filed_at": job.history[0].at.isoformat(),
                    "follow_up_site": job.site,
                    "follow_up_frames": frames_by_job.get(job.id, []),
                    "reason": job.request.reason,
                    # Did the follow-up frames see the candidate again (transients against the field's reference)?
                    "confirmation": confirm_in_lake(lake, target.ra_deg, target.dec_deg, frames_by_job.get(job.id, []))
                    if product.resident == "transients" and target is not None
                    else None,
                }
            )
        return rows
