"""Job requests, jobs and the job state machine (states named as in the LCO observation portal)."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from astropolis.lake.ids import canonical_json


class JobKind(StrEnum):
    """What a job asks for."""

    OBSERVE = "observe"
    REOBSERVE = "reobserve"
    CALIBRATE = "calibrate"
    REVIEW = "review"
    REPROCESS = "reprocess"


class JobState(StrEnum):
    """Where a job is in its life."""

    PENDING = "PENDING"
    SCHEDULED = "SCHEDULED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    WINDOW_EXPIRED = "WINDOW_EXPIRED"
    CANCELED = "CANCELED"
    FAILURE_LIMIT_REACHED = "FAILURE_LIMIT_REACHED"


TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset({JobState.SCHEDULED, JobState.CANCELED, JobState.WINDOW_EXPIRED}),
    JobState.SCHEDULED: frozenset({JobState.IN_PROGRESS, JobState.PENDING, JobState.CANCELED, JobState.WINDOW_EXPIRED}),
    # An exposure in progress is never interrupted: no CANCELED from here. It ends, fails, or its lease lapses.
    JobState.IN_PROGRESS: frozenset(
        {
            JobState.COMPLETED,
            JobState.FAILED,
            JobState.PENDING,
            JobState.FAILURE_LIMIT_REACHED,
            JobState.WINDOW_EXPIRED,
        }
    ),
    JobState.COMPLETED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.WINDOW_EXPIRED: frozenset(),
    JobState.CANCELED: frozenset(),
    JobState.FAILURE_LIMIT_REACHED: frozenset(),
}
TERMINAL_STATES = frozenset(state for state, nxt in TRANSITIONS.items() if not nxt)
SITE_STATES = frozenset({JobState.SCHEDULED, JobState.IN_PROGRESS, JobState.COMPLETED, JobState.FAILED})

_NAME = r"^[A-Za-z0-9][A-Za-z0-9 ._+\-]{0,63}$"
_SITE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_OBJECT_ID = re.compile(r"^sha256:[0-9a-f]{64}$")


class Model(BaseModel):
    """Base of the ledger's contracts: frozen, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Target(Model):
    """Where to point, in ICRS."""

    name: str | None = Field(default=None, pattern=_NAME, description="Catalogue name, e.g. 'M13' (informational).")
    ra_deg: float = Field(ge=0.0, lt=360.0, description="ICRS right ascension, degrees.")
    dec_deg: float = Field(ge=-90.0, le=90.0, description="ICRS declination, degrees.")


class Window(Model):
    """When the job may run: [start, end), UTC."""

    start: AwareDatetime = Field(description="Earliest start, UTC.")
    end: AwareDatetime = Field(description="Latest end, UTC.")

    @field_validator("start", "end")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end <= self.start:
            raise ValueError(f"window end {self.end.isoformat()} is not after its start {self.start.isoformat()}")
        return self


class Constraints(Model):
    """Observing constraints the scheduler must respect."""

    max_airmass: float = Field(default=2.0, ge=1.0, le=10.0, description="Highest airmass allowed.")
    min_moon_separation_deg: float = Field(default=30.0, ge=0.0, le=180.0, description="Closest approach to the Moon.")
    max_seeing_arcsec: float | None = Field(default=None, gt=0.0, le=20.0, description="Worst seeing accepted.")
    sites: tuple[str, ...] = Field(default=(), max_length=10, description="Sites allowed to run it; empty means any.")

    @field_validator("sites")
    @classmethod
    def _site_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for site in value:
            if not re.match(_SITE, site):
                raise ValueError(f"site {site!r} is not a site name (letters, digits, '.', '_', '-')")
        return value


class Exposure(Model):
    """What to take once pointed."""

    filter: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_'+\-]{1,16}$", description="Filter name.")
    exposure_s: float = Field(default=60.0, gt=0.0, le=3600.0, description="Seconds per exposure.")
    count: int = Field(default=1, ge=1, le=100, description="Number of exposures.")


class Origin(Model):
    """Who or what asked for the job."""

    kind: Literal["product", "agent", "person", "scheduler", "night"] = Field(description="Kind of requester.")
    ref: str = Field(min_length=1, max_length=128, description="Product id, agent thread, person name, run id.")

    @model_validator(mode="after")
    def _product_ref(self) -> Origin:
        if self.kind == "product" and not _OBJECT_ID.match(self.ref):
            raise ValueError(f"origin product ref {self.ref!r} is not a lake id (sha256:<64 hex>)")
        return self


class JobRequest(Model):
    """A request for work: what, where on the sky, when, under which constraints, why and for whom."""

    schema_version: Literal[1] = 1
    kind: JobKind = Field(description="observe / reobserve / calibrate / review / reprocess.")
    target: Target | None = Field(default=None, description="Sky position; required to observe or reobserve.")
    subject: str | None = Field(default=None, description="Lake id the job is about (frame to review, reprocess…).")
    window: Window = Field(description="When it may run.")
    constraints: Constraints = Field(default_factory=Constraints, description="Observing constraints.")
    exposure: Exposure | None = Field(default=None, description="Exposure plan for observe/reobserve/calibrate.")
    priority: int = Field(default=50, ge=1, le=100, description="1 (lowest) to 100 (highest).")
    lane: Literal["queue", "rapid"] = Field(default="queue", description="'rapid' pre-empts the queue.")
    reason: str = Field(min_length=1, max_length=500, description="Why this job exists (data, not instructions).")
    origin: Origin = Field(description="Who asked.")
    max_attempts: int = Field(default=3, ge=1, le=10, description="Attempts before FAILURE_LIMIT_REACHED.")
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[\x21-\x7e]+$",
        description="Same key, same job; derived from the request when omitted.",
    )

    @field_validator("subject")
    @classmethod
    def _subject_id(cls, value: str | None) -> str | None:
        if value is not None and not _OBJECT_ID.match(value):
            raise ValueError(f"subject {value!r} is not a lake id (sha256:<64 hex>)")
        return value

    @model_validator(mode="after")
    def _needs(self) -> JobRequest:
        if self.kind in (JobKind.OBSERVE, JobKind.REOBSERVE) and self.target is None:
            raise ValueError(f"a {self.kind} job needs a target (ra_deg, dec_deg)")
        if self.kind in (JobKind.REVIEW, JobKind.REPROCESS) and self.subject is None and self.target is None:
            raise ValueError(f"a {self.kind} job needs a subject (lake id) or a target")
        return self

    def key(self) -> str:
        """The idempotency key: the one given, or a hash of the request's content."""
        if self.idempotency_key is not None:
            return self.idempotency_key
        return "auto:" + self.content_hash()[len("sha256:") :][:40]

    def content_hash(self) -> str:
        """sha256 of the canonical request without its idempotency key."""
        body = self.model_dump(mode="json", exclude={"idempotency_key"})
        return "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()


class Transition(Model):
    """One entry of a job's history."""

    seq: int = Field(description="1 for creation, then +1 per change.")
    from_state: JobState | None = Field(description="State before (None at creation).")
    to_state: JobState = Field(description="State after.")
    at: datetime = Field(description="When (UTC, run clock).")
    actor: str = Field(description="Who changed it: person:NAME, scheduler, executor:SITE, reaper, agent:THREAD.")
    reason: str = Field(description="Why.")
    site: str | None = Field(default=None, description="Site holding the job after this change.")
    lease_expires_at: datetime | None = Field(default=None, description="Lease expiry while IN_PROGRESS.")


class Job(Model):
    """A request plus where it stands. Derived entirely from its append-only history."""

    id: int
    idempotency_key: str
    request: JobRequest
    created_at: datetime
    history: tuple[Transition, ...]

    @property
    def state(self) -> JobState:
        """Current state."""
        return self.history[-1].to_state

    @property
    def updated_at(self) -> datetime:
        """Time of the last change."""
        return self.history[-1].at

    @property
    def site(self) -> str | None:
        """Site holding the job, if any."""
        return self.history[-1].site

    @property
    def attempts(self) -> int:
        """How many times it has started executing."""
        return sum(
            1 for t in self.history if t.to_state == JobState.IN_PROGRESS and t.from_state != JobState.IN_PROGRESS
        )

    @property
    def lease_expires_at(self) -> datetime | None:
        """Lease expiry while IN_PROGRESS."""
        return self.history[-1].lease_expires_at if self.state == JobState.IN_PROGRESS else None

    @property
    def terminal(self) -> bool:
        """True once the job can change no more."""
        return self.state in TERMINAL_STATES

    def summary(self) -> dict[str, object]:
        """The JSON shape of a job used by the CLI and tools."""
        return {
            "id": self.id,
            "state": self.state.value,
            "kind": self.request.kind.value,
            "priority": self.request.priority,
            "lane": self.request.lane,
            "site": self.site,
            "attempts": self.attempts,
            "lease_expires_at": self.lease_expires_at.isoformat() if self.lease_expires_at else None,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "idempotency_key": self.idempotency_key,
            "request": self.request.model_dump(mode="json"),
            "history": [t.model_dump(mode="json") for t in self.history],
        }
