"""The scheduler's contracts: what it is given (jobs, site states, the night) and what it returns.

Plain data only — windows arrive already computed (by the visibility module or anything else), so the
scheduler depends on neither astropy nor the ledger. All times are timezone-aware and normalised to UTC.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from astropolis.memory.jobs import Window

if TYPE_CHECKING:
    from astropolis.memory.jobs import Exposure, Job
    from astropolis.tools.sites import Site

_SITE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class Model(BaseModel):
    """Frozen, strict base of the scheduler's contracts."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


class SchedJob(Model):
    """One PENDING observe job as the scheduler sees it."""

    id: int = Field(description="Ledger job id; also the final tie-breaker, so equal inputs give equal plans.")
    priority: int = Field(ge=1, le=100, description="1 (lowest) to 100 (highest); the objective sums these.")
    lane: Literal["queue", "rapid"] = Field(default="queue", description="'rapid' is planned before the queue.")
    duration_s: float = Field(gt=0, le=86_400, description="Open-shutter time plus readouts, s (no slew/settle).")
    ra_deg: float = Field(ge=0.0, lt=360.0, description="ICRS right ascension of the target, degrees.")
    dec_deg: float = Field(ge=-90.0, le=90.0, description="ICRS declination of the target, degrees.")
    windows: dict[str, tuple[Window, ...]] = Field(
        default_factory=dict, description="Site name → times the target is observable there (exposure must fit)."
    )
    sites: tuple[str, ...] = Field(default=(), description="Sites allowed to run it (Constraints.sites); empty: any.")

    @field_validator("windows", mode="before")
    @classmethod
    def _pairs(cls, value: object) -> object:
        # Accept (start, end) pairs as well as Window models: the visibility module hands out plain pairs.
        if not isinstance(value, Mapping):
            return value
        return {
            site: [
                {"start": w[0], "end": w[1]} if isinstance(w, Sequence) and not isinstance(w, str) else w for w in spans
            ]
            for site, spans in value.items()
        }

    @staticmethod
    def duration_of(exposure: Exposure, readout_s: float) -> float:
        """Time a job's exposures hold the site: count x (exposure + readout), s."""
        return exposure.count * (exposure.exposure_s + readout_s)

    @classmethod
    def from_job(
        cls, job: Job, *, duration_s: float, windows: Mapping[str, Sequence[tuple[datetime, datetime]]]
    ) -> SchedJob:
        """Build from a ledger job (windows as the visibility module gives them: site -> (start, end) pairs),
        clipped to the job's own request window. `duration_of` gives duration_s from its exposure plan."""
        request = job.request
        if request.target is None:
            raise ValueError(f"job {job.id} has no target; only observe jobs can be scheduled")
        lo, hi = request.window.start, request.window.end
        clipped = {
            site: tuple((max(a, lo), min(b, hi)) for a, b in spans if min(b, hi) > max(a, lo))
            for site, spans in windows.items()
        }
        return cls(
            id=job.id,
            priority=request.priority,
            lane=request.lane,
            duration_s=duration_s,
            ra_deg=request.target.ra_deg,
            dec_deg=request.target.dec_deg,
            windows={site: spans for site, spans in clipped.items() if spans},
            sites=request.constraints.sites,
        )


class Commitment(Model):
    """Time a site has already promised elsewhere (calibration, maintenance, a forecast closure)."""

    start: AwareDatetime = Field(description="Start of the reserved time, UTC.")
    end: AwareDatetime = Field(description="End of the reserved time, UTC.")
    label: str = Field(default="reserved", max_length=128, description="What the time is for.")
    ra_deg: float | None = Field(default=None, ge=0.0, lt=360.0, description="Where the mount points at the end.")
    dec_deg: float | None = Field(default=None, ge=-90.0, le=90.0, description="Declination at the end, degrees.")

    _utc_times = field_validator("start", "end")(_utc)

    @model_validator(mode="after")
    def _ordered(self) -> Commitment:
        if self.end <= self.start:
            raise ValueError(f"commitment {self.label!r} ends before it starts")
        return self


class SiteState(Model):
    """A site as the scheduler needs it right now: can it work, from when, and how fast it moves."""

    name: str = Field(description="Site name, as used in the jobs' windows.")
    available: bool = Field(default=True, description="False when unsafe, clouded out or faulted: gets no work.")
    unavailable_reason: str | None = Field(default=None, max_length=200, description="Why it is unavailable.")
    free_from: AwareDatetime = Field(description="When it can start new work (the exposure in progress ends).")
    overhead_s: float = Field(default=10.0, ge=0, description="Settle and readout overhead per pointing, s.")
    slew_rate_deg_s: float = Field(default=5.0, gt=0, le=100, description="Slew speed used for planning.")
    pointing_ra_deg: float | None = Field(default=None, ge=0.0, lt=360.0, description="Where it points at free_from.")
    pointing_dec_deg: float | None = Field(default=None, ge=-90.0, le=90.0, description="Declination at free_from.")
    commitments: tuple[Commitment, ...] = Field(default=(), description="Reserved time no job may overlap.")

    _utc_free = field_validator("free_from")(_utc)

    @field_validator("name")
    @classmethod
    def _site_name(cls, value: str) -> str:
        if not _SITE.match(value):
            raise ValueError(f"site {value!r} is not a site name (letters, digits, '.', '_', '-')")
        return value

    @classmethod
    def from_site(cls, site: Site, *, free_from: datetime, **state: object) -> SiteState:
        """The state of a registry site: its overhead and slew rate, plus the given live state."""
        return cls.model_validate(
            {
                "name": site.name,
                "free_from": free_from,
                "overhead_s": site.overhead_s,
                "slew_rate_deg_s": site.slew_rate_deg_s,
                **state,
            }
        )


class SchedulingProblem(Model):
    """Everything one planning call needs; the scheduler is a pure function of this."""

    jobs: tuple[SchedJob, ...] = Field(description="Jobs to place (PENDING observe jobs).")
    sites: tuple[SiteState, ...] = Field(min_length=1, description="Every site of the network, available or not.")
    now: AwareDatetime = Field(description="Start of the planning horizon (nothing is placed before it), UTC.")
    end: AwareDatetime = Field(description="End of the planning horizon (end of night), UTC.")
    slew_model: Literal["great_circle", "overhead_only"] = Field(
        default="great_circle",
        description="'great_circle': setup = overhead + separation / slew rate; 'overhead_only': setup = overhead "
        "(the simplification shared with the exact solver).",
    )

    _utc_times = field_validator("now", "end")(_utc)

    @model_validator(mode="after")
    def _consistent(self) -> SchedulingProblem:
        if self.end <= self.now:
            raise ValueError("the planning horizon ends before it starts")
        ids = [job.id for job in self.jobs]
        if len(set(ids)) != len(ids):
            raise ValueError(f"job ids repeat: {sorted({i for i in ids if ids.count(i) > 1})}")
        names = [site.name for site in self.sites]
        if len(set(names)) != len(names):
            raise ValueError(f"site names repeat: {sorted({n for n in names if names.count(n) > 1})}")
        return self


class Assignment(Model):
    """One job placed at one site: slew and settle for setup_s, then expose from start to end."""

    job_id: int = Field(description="Ledger job id.")
    site: str = Field(description="Site that runs it.")
    lane: Literal["queue", "rapid"] = Field(description="Lane of the job.")
    priority: int = Field(description="Priority of the job.")
    setup_s: float = Field(description="Slew plus overhead charged before start, s.")
    start: datetime = Field(description="First exposure starts, UTC (inside one of the job's windows).")
    end: datetime = Field(description="Last readout ends, UTC.")


class Reason(StrEnum):
    """Why a job was left out of the plan."""

    NO_WINDOW = "no_window"
    SITE_UNAVAILABLE = "site_unavailable"
    NO_ROOM = "no_room"


class Unscheduled(Model):
    """A job left out, and why."""

    job_id: int = Field(description="Ledger job id.")
    reason: Reason = Field(description="no_window / site_unavailable / no_room.")
    detail: str = Field(description="One line for people.")


class ScheduleSummary(Model):
    """Headline figures of a plan."""

    priority_sum: int = Field(description="Sum of the priorities of placed jobs (the objective).")
    jobs_placed: int = Field(description="Jobs placed.")
    jobs_total: int = Field(description="Jobs given.")
    rapid_placed: int = Field(description="Rapid-lane jobs placed.")
    rapid_total: int = Field(description="Rapid-lane jobs given.")


class Schedule(Model):
    """Per-site ordered assignments, the jobs left out, and the figures."""

    algorithm: str = Field(description="Which planner produced it.")
    sites: dict[str, tuple[Assignment, ...]] = Field(description="Site name → assignments in time order.")
    unscheduled: tuple[Unscheduled, ...] = Field(description="Jobs left out, by job id.")
    summary: ScheduleSummary = Field(description="Headline figures.")

    @property
    def assignments(self) -> list[Assignment]:
        """Every assignment, by site name then start."""
        return [a for name in sorted(self.sites) for a in self.sites[name]]

    @property
    def unscheduled_ids(self) -> frozenset[int]:
        """Ids of the jobs left out."""
        return frozenset(u.job_id for u in self.unscheduled)
