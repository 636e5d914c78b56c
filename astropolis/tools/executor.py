"""The executor: runs one site's jobs through its driver, every frame into the lake, every step in the ledger
and the audit log.

A job's exposures have deterministic command ids (`job<ID>-exp<N>`), so an executor that restarts — or a job
that is re-planned to another site — never repeats an exposure that already completed anywhere: the command
journal hands back the stored frame instead. Refusals (unsafe, weather, Sun) park the telescope and hand the
job back to the scheduler; a driver failure marks the site dead and hands its job back too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from astropolis.lake import Lake
from astropolis.lake.clock import Clock
from astropolis.memory import AuditLog, IllegalTransition, Job, JobState, Ledger
from astropolis.tools.drivers import Driver, ExposureRequest
from astropolis.tools.errors import DriverError, Refused


def command_id(job_id: int, exposure_index: int) -> str:
    """The command id of exposure `exposure_index` of job `job_id` (the same at every site and attempt)."""
    return f"job{job_id}-exp{exposure_index}"


@dataclass
class ExposureOutcome:
    """What one exposure step did."""

    job_id: int
    index: int
    frame_id: str | None
    replayed: bool
    error: str | None = None
    refusal: str | None = None


@dataclass
class SiteHealth:
    """What the executor believes about its site."""

    alive: bool = True
    open: bool = True  # False while parked for weather/safety
    reason: str | None = None
    frames: list[str] = field(default_factory=list)


class SiteExecutor:
    """Runs jobs at one site. Stateless between calls apart from `health`: the ledger and journal hold truth."""

    def __init__(
        self, driver: Driver, *, lake: Lake, ledger: Ledger, audit: AuditLog, clock: Clock, lease_s: float = 3600.0
    ) -> None:
        self.driver = driver
        self.site = driver.site.name
        self.lake = lake
        self.ledger = ledger
        self.audit = audit
        self.clock = clock
        self.lease_s = lease_s
        self.actor = f"executor:{self.site}"
        self.health = SiteHealth()

    # ------------------------------------------------------------------------------------------- audit
    def _audit(self, tool: str, arguments: dict[str, Any], started: float, *, result: Any = None,
               error: str | None = None, policy: Literal["allowed", "refused"] = "allowed") -> None:
        self.audit.append(
            actor=self.actor, tool=tool, arguments=arguments, result=result, error=error, policy=policy,
            tier="actuate", duration_ms=(time.perf_counter() - started) * 1000.0,
        )

    # -------------------------------------------------------------------------------------------- steps
    def start(self, job: Job) -> Job:
        """SCHEDULED → IN_PROGRESS on this site, holding a lease."""
        started = time.perf_counter()
        job = self.ledger.start(job.id, actor=self.actor, lease_s=self.lease_s, reason=f"starting at {self.site}")
        self._audit("executor.start", {"job_id": job.id}, started, result={"state": job.state.value})
        return job

    def expose(self, job: Job, index: int) -> ExposureOutcome:
        """Take (or recover) exposure `index` of a job and catalogue its frame."""
        request = job.request
        assert request.target is not None and request.exposure is not None
        command = command_id(job.id, index)
        arguments = {"job_id": job.id, "command_id": command, "ra_deg": request.target.ra_deg,
                     "dec_deg": request.target.dec_deg, "exposure_s": request.exposure.exposure_s,
                     "filter": request.exposure.filter}
        started = time.perf_counter()
        done = self.driver.journal.completed_anywhere(command)
        try:
            if done is not None and done.frame_id is not None:
                fits_bytes, frame_id, replayed = self.driver.frames.read_bytes(done.frame_id), done.frame_id, True
            else:
                exposure = self.driver.expose(
                    ExposureRequest(
                        command_id=command, ra_deg=request.target.ra_deg, dec_deg=request.target.dec_deg,
                        exposure_s=request.exposure.exposure_s, filter=request.exposure.filter,
                        object_name=request.target.name, job_id=job.id,
                    )
                )
                fits_bytes, frame_id, replayed = exposure.fits, exposure.frame_id, exposure.replayed
        except Refused as refusal:
            self._audit("executor.expose", arguments, started, error=str(refusal), policy="refused")
            return ExposureOutcome(job.id, index, None, False, error=str(refusal), refusal=refusal.code)
        except DriverError as error:
            self._audit("executor.expose", arguments, started, error=str(error))
            return ExposureOutcome(job.id, index, None, False, error=str(error))
        ingested = self.lake.ingest_bytes(fits_bytes, name=f"{self.site}-{command}.fits")
        self.health.frames.append(frame_id)
        self.ledger.renew(job.id, actor=self.actor, lease_s=self.lease_s)
        self._audit("executor.expose", arguments, started,
                    result={"frame_id": frame_id, "replayed": replayed, "catalogued": ingested.created})
        return ExposureOutcome(job.id, index, frame_id, replayed)

    def complete(self, job: Job, frames: list[str]) -> Job:
        """IN_PROGRESS → COMPLETED, citing the frames."""
        started = time.perf_counter()
        reason = f"{len(frames)} frame(s): " + ", ".join(f[:19] for f in frames)
        job = self.ledger.complete(job.id, actor=self.actor, reason=reason[:500])
        self._audit("executor.complete", {"job_id": job.id}, started, result={"frames": frames})
        return job

    def hand_back(self, job: Job, reason: str) -> Job:
        """Give a job back to the scheduler: an unstarted one to PENDING, a started one through `fail`
        (PENDING while attempts remain, else FAILURE_LIMIT_REACHED)."""
        started = time.perf_counter()
        current = self.ledger.get(job.id)
        try:
            if current.state == JobState.SCHEDULED:
                current = self.ledger.transition(job.id, JobState.PENDING, actor=self.actor, reason=reason)
            elif current.state == JobState.IN_PROGRESS:
                current = self.ledger.fail(job.id, actor=self.actor, reason=reason, retry=True)
        except IllegalTransition as error:
            self._audit("executor.hand_back", {"job_id": job.id, "reason": reason}, started, error=str(error))
            return self.ledger.get(job.id)
        self._audit("executor.hand_back", {"job_id": job.id, "reason": reason}, started,
                    result={"state": current.state.value})
        return current

    def close_up(self, reason: str) -> None:
        """Park for weather or safety (the site stays alive and reopens when conditions allow)."""
        started = time.perf_counter()
        self.health.open = False
        self.health.reason = reason
        try:
            self.driver.park(f"park-{self.site}-{self.clock.now().strftime('%Y%m%dT%H%M%S')}")
        except DriverError as error:
            self.mark_dead(str(error))
            self._audit("executor.park", {"reason": reason}, started, error=str(error))
            return
        self._audit("executor.park", {"reason": reason}, started, result={"parked": True})

    def mark_dead(self, reason: str) -> None:
        """The site stopped answering: no more work goes to it this night."""
        self.health.alive = False
        self.health.open = False
        self.health.reason = reason

    def run_job(self, job: Job) -> Job:
        """Run every exposure of a SCHEDULED job at this site now (used when time is not being simulated)."""
        assert job.request.exposure is not None
        count = job.request.exposure.count
        job = self.start(job)
        frames: list[str] = []
        for index in range(count):
            outcome = self.expose(job, index)
            if outcome.frame_id is None:
                if outcome.refusal in ("unsafe", "weather", "sun_up"):
                    self.close_up(outcome.error or "refused")
                elif outcome.refusal is None:
                    self.mark_dead(outcome.error or "driver error")
                return self.hand_back(job, outcome.error or "exposure failed")
            frames.append(outcome.frame_id)
        return self.complete(job, frames)
