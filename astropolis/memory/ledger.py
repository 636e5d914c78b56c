"""The job ledger: every job request tracked to its end, as an append-only event history.

A job's row (the request) is written once; every state change appends one event. The current state is the
last event, so nothing is ever updated in place and the whole life of a job can be replayed. Transitions run
inside a write transaction that re-reads the job's last event, so concurrent writers cannot race a job into
an illegal state; (job_id, seq) is the primary key, so even a database without write locks would reject the
loser.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from pydantic import ValidationError
from sqlalchemy import Column, ForeignKey, Integer, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel

from astropolis.lake.clock import Clock, SystemClock
from astropolis.lake.db import UtcText, make_append_only, make_engine, read_transaction, write_transaction
from astropolis.memory.errors import IdempotencyConflict, IllegalTransition, InvalidJobRequest, JobNotFound
from astropolis.memory.jobs import SITE_STATES, TRANSITIONS, Job, JobKind, JobRequest, JobState, Transition


class JobRow(SQLModel, table=True):
    """A job request, written once."""

    __tablename__ = "ledger_jobs"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    idempotency_key: str = Field(unique=True, max_length=128)
    request_hash: str = Field(max_length=71)
    request_json: str
    kind: str = Field(index=True, max_length=16)
    priority: int
    window_start: datetime = Field(sa_column=Column(UtcText(), nullable=False))
    window_end: datetime = Field(sa_column=Column(UtcText(), nullable=False, index=True))
    created_at: datetime = Field(sa_column=Column(UtcText(), nullable=False))
    schema_version: int = 1


class JobEventRow(SQLModel, table=True):
    """One state change of a job, appended."""

    __tablename__ = "ledger_events"

    job_id: int = Field(sa_column=Column(Integer, ForeignKey("ledger_jobs.id"), primary_key=True))
    seq: int = Field(primary_key=True)
    from_state: str | None = Field(default=None, max_length=24)
    to_state: str = Field(index=True, max_length=24)
    at: datetime = Field(sa_column=Column(UtcText(), nullable=False))
    actor: str = Field(max_length=128)
    reason: str
    site: str | None = Field(default=None, max_length=64)
    lease_expires_at: datetime | None = Field(default=None, sa_column=Column(UtcText()))


_JOBS = JobRow.__table__  # type: ignore[attr-defined]
_EVENTS = JobEventRow.__table__  # type: ignore[attr-defined]


class SubmitResult:
    """The job a submission maps to, and whether this submission created it."""

    __slots__ = ("created", "job")

    def __init__(self, job: Job, created: bool) -> None:
        self.job = job
        self.created = created


def parse_request(data: object) -> JobRequest:
    """Validate a job request from plain data, turning pydantic's report into one clear message."""
    try:
        return JobRequest.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "request"
        more = f" (and {error.error_count() - 1} more problems)" if error.error_count() > 1 else ""
        raise InvalidJobRequest(f"job request field {where}: {first['msg']}{more}") from None


class Ledger:
    """Tracks every job request to its end. All times come from the run clock."""

    def __init__(self, url: str, *, clock: Clock | None = None, lease_s: float = 900.0) -> None:
        self.clock: Clock = clock or SystemClock()
        self.lease = timedelta(seconds=lease_s)
        self.engine = make_engine(url)
        with write_transaction(self.engine) as connection:
            SQLModel.metadata.create_all(connection, tables=[_JOBS, _EVENTS])
            make_append_only(connection, [_JOBS.name, _EVENTS.name])

    def close(self) -> None:
        """Release database connections."""
        self.engine.dispose()

    # ------------------------------------------------------------------ submit
    def submit(self, request: JobRequest, *, actor: str) -> SubmitResult:
        """Create a PENDING job, or return the job this idempotency key already made."""
        now = self.clock.now()
        if request.window.end <= now:
            raise InvalidJobRequest(
                f"job request window ended at {request.window.end.isoformat()}, before now ({now.isoformat()})"
            )
        key = request.key()
        content = request.content_hash()
        try:
            with write_transaction(self.engine) as connection:
                existing = self._by_key(connection, key)
                if existing is None:
                    inserted = connection.execute(
                        _JOBS.insert().values(
                            idempotency_key=key,
                            request_hash=content,
                            request_json=request.model_dump_json(),
                            kind=request.kind.value,
                            priority=request.priority,
                            window_start=request.window.start,
                            window_end=request.window.end,
                            created_at=now,
                        )
                    ).inserted_primary_key
                    assert inserted is not None
                    job_id = inserted[0]
                    connection.execute(
                        _EVENTS.insert().values(
                            job_id=job_id,
                            seq=1,
                            from_state=None,
                            to_state=JobState.PENDING.value,
                            at=now,
                            actor=actor,
                            reason=request.reason,
                        )
                    )
                    return SubmitResult(self._load(connection, [job_id])[0], created=True)
        except IntegrityError:
            # Lost a race on the unique key (databases without BEGIN IMMEDIATE): the winner's job is ours.
            with read_transaction(self.engine) as connection:
                existing = self._by_key(connection, key)
            if existing is None:
                raise
        assert existing is not None
        if existing.request.content_hash() != content:
            raise IdempotencyConflict(
                f"idempotency key {key!r} already belongs to job {existing.id} with a different request"
            )
        return SubmitResult(existing, created=False)

    def _by_key(self, connection: Connection, key: str) -> Job | None:
        job_id = connection.execute(select(_JOBS.c.id).where(_JOBS.c.idempotency_key == key)).scalar()
        return None if job_id is None else self._load(connection, [job_id])[0]

    # ------------------------------------------------------------------- reads
    def get(self, job_id: int) -> Job:
        """One job with its whole history."""
        with read_transaction(self.engine) as connection:
            jobs = self._load(connection, [job_id])
        if not jobs:
            raise JobNotFound(f"job {job_id}: no such job in the ledger")
        return jobs[0]

    def jobs(
        self,
        *,
        states: Iterable[JobState] | None = None,
        kind: JobKind | None = None,
        limit: int | None = None,
    ) -> list[Job]:
        """Jobs (oldest first), optionally only those in `states` and of `kind`."""
        last = select(_EVENTS.c.job_id, func.max(_EVENTS.c.seq).label("seq")).group_by(_EVENTS.c.job_id).subquery()
        query = (
            select(_JOBS.c.id)
            .join(last, last.c.job_id == _JOBS.c.id)
            .join(_EVENTS, (_EVENTS.c.job_id == last.c.job_id) & (_EVENTS.c.seq == last.c.seq))
            .order_by(_JOBS.c.id)
        )
        if states is not None:
            query = query.where(_EVENTS.c.to_state.in_([JobState(s).value for s in states]))
        if kind is not None:
            query = query.where(_JOBS.c.kind == JobKind(kind).value)
        if limit is not None:
            query = query.limit(limit)
        with read_transaction(self.engine) as connection:
            ids = list(connection.execute(query).scalars())
            return self._load(connection, ids)

    def _load(self, connection: Connection, job_ids: Sequence[int]) -> list[Job]:
        if not job_ids:
            return []
        rows = {r.id: r for r in connection.execute(select(_JOBS).where(_JOBS.c.id.in_(list(job_ids)))).all()}
        history: dict[int, list[Transition]] = {job_id: [] for job_id in rows}
        events = connection.execute(
            select(_EVENTS).where(_EVENTS.c.job_id.in_(list(rows))).order_by(_EVENTS.c.job_id, _EVENTS.c.seq)
        ).all()
        for event in events:
            history[event.job_id].append(
                Transition(
                    seq=event.seq,
                    from_state=None if event.from_state is None else JobState(event.from_state),
                    to_state=JobState(event.to_state),
                    at=event.at,
                    actor=event.actor,
                    reason=event.reason,
                    site=event.site,
                    lease_expires_at=event.lease_expires_at,
                )
            )
        return [
            Job(
                id=job_id,
                idempotency_key=rows[job_id].idempotency_key,
                request=JobRequest.model_validate(json.loads(rows[job_id].request_json)),
                created_at=rows[job_id].created_at,
                history=tuple(history[job_id]),
            )
            for job_id in job_ids
            if job_id in rows
        ]

    # ------------------------------------------------------------- transitions
    def transition(
        self,
        job_id: int,
        to_state: JobState,
        *,
        actor: str,
        reason: str,
        site: str | None = None,
        expect: JobState | None = None,
        lease_expires_at: datetime | None = None,
    ) -> Job:
        """Move a job to `to_state` if the state machine allows it (and it is still `expect`, if given)."""
        to_state = JobState(to_state)
        with write_transaction(self.engine) as connection:
            jobs = self._load(connection, [job_id])
            if not jobs:
                raise JobNotFound(f"job {job_id}: no such job in the ledger")
            job = jobs[0]
            current = job.state
            allowed = TRANSITIONS[current]
            if (expect is not None and current != expect) or to_state not in allowed:
                raise IllegalTransition(job_id, current.value, to_state.value, tuple(sorted(s.value for s in allowed)))
            if to_state == JobState.SCHEDULED and not site:
                raise IllegalTransition(job_id, current.value, to_state.value, ("SCHEDULED needs a site",))
            if to_state == JobState.IN_PROGRESS and lease_expires_at is None:
                lease_expires_at = self.clock.now() + self.lease  # no job runs without a lease to reclaim it
            self._append(connection, job, to_state, actor, reason, site, lease_expires_at)
            return self._load(connection, [job_id])[0]

    def _append(
        self,
        connection: Connection,
        job: Job,
        to_state: JobState,
        actor: str,
        reason: str,
        site: str | None,
        lease_expires_at: datetime | None,
    ) -> None:
        keeps_site = to_state in SITE_STATES
        connection.execute(
            _EVENTS.insert().values(
                job_id=job.id,
                seq=job.history[-1].seq + 1,
                from_state=job.state.value,
                to_state=to_state.value,
                at=self.clock.now(),
                actor=actor,
                reason=reason,
                site=(site or job.site) if keeps_site else None,
                lease_expires_at=lease_expires_at if to_state == JobState.IN_PROGRESS else None,
            )
        )

    def schedule(self, job_id: int, site: str, *, actor: str, reason: str = "scheduled") -> Job:
        """PENDING → SCHEDULED on `site`."""
        return self.transition(job_id, JobState.SCHEDULED, actor=actor, reason=reason, site=site)

    def start(self, job_id: int, *, actor: str, lease_s: float | None = None, reason: str = "started") -> Job:
        """SCHEDULED → IN_PROGRESS, holding a lease that must be renewed or completed before it expires."""
        lease = timedelta(seconds=lease_s) if lease_s is not None else self.lease
        return self.transition(
            job_id, JobState.IN_PROGRESS, actor=actor, reason=reason, lease_expires_at=self.clock.now() + lease
        )

    def renew(self, job_id: int, *, actor: str, lease_s: float | None = None) -> Job:
        """Extend the lease of an IN_PROGRESS job (appends a history entry)."""
        lease = timedelta(seconds=lease_s) if lease_s is not None else self.lease
        with write_transaction(self.engine) as connection:
            jobs = self._load(connection, [job_id])
            if not jobs:
                raise JobNotFound(f"job {job_id}: no such job in the ledger")
            job = jobs[0]
            if job.state != JobState.IN_PROGRESS:
                raise IllegalTransition(job_id, job.state.value, "IN_PROGRESS (lease renewal)", ())
            self._append(connection, job, JobState.IN_PROGRESS, actor, "lease renewed", None, self.clock.now() + lease)
            return self._load(connection, [job_id])[0]

    def complete(self, job_id: int, *, actor: str, reason: str = "completed") -> Job:
        """IN_PROGRESS → COMPLETED."""
        return self.transition(job_id, JobState.COMPLETED, actor=actor, reason=reason)

    def fail(self, job_id: int, *, actor: str, reason: str, retry: bool = True) -> Job:
        """End an attempt that failed: back to PENDING while attempts remain, else FAILURE_LIMIT_REACHED.

        `retry=False` marks a failure no retry can fix (FAILED).
        """
        job = self.get(job_id)
        if not retry:
            target = JobState.FAILED
        elif job.attempts < job.request.max_attempts:
            target = JobState.PENDING
        else:
            target = JobState.FAILURE_LIMIT_REACHED
        return self.transition(job_id, target, actor=actor, reason=reason, expect=JobState.IN_PROGRESS)

    def cancel(self, job_id: int, *, actor: str, reason: str) -> Job:
        """PENDING or SCHEDULED → CANCELED (an exposure in progress is never interrupted)."""
        return self.transition(job_id, JobState.CANCELED, actor=actor, reason=reason)

    # ------------------------------------------------------------------- reaper
    def reap(self, *, actor: str = "reaper") -> list[Job]:
        """Expire passed windows and reclaim lapsed leases; returns the jobs it changed."""
        now = self.clock.now()
        changed: list[Job] = []
        live = (JobState.PENDING, JobState.SCHEDULED, JobState.IN_PROGRESS)
        for job in self.jobs(states=live):
            lease_lapsed = (
                job.state == JobState.IN_PROGRESS and job.lease_expires_at is not None and (job.lease_expires_at <= now)
            )
            if job.state == JobState.IN_PROGRESS and not lease_lapsed:
                continue  # a live exposure keeps running even past its window; the executor ends it
            if job.request.window.end <= now:
                target, why = JobState.WINDOW_EXPIRED, f"window ended {job.request.window.end.isoformat()}"
            elif lease_lapsed and job.attempts >= job.request.max_attempts:
                target, why = (
                    JobState.FAILURE_LIMIT_REACHED,
                    f"lease lapsed on attempt {job.attempts} of {job.request.max_attempts}",
                )
            elif lease_lapsed:
                target, why = JobState.PENDING, f"lease lapsed on attempt {job.attempts}; back to the queue"
            else:
                continue
            try:
                changed.append(self.transition(job.id, target, actor=actor, reason=why, expect=job.state))
            except IllegalTransition:
                continue  # someone else moved it meanwhile; their change stands
        return changed
