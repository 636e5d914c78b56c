"""Hypotheses as first-class records: a statement, its evidence, its test (the observe jobs that would confirm
or refute it) and a status that only moves open → supported | refuted, each change appended with its reason.

Stored beside the job ledger (same database, append-only tables), because a hypothesis's test *is* jobs.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import Column, ForeignKey, Integer, func, select
from sqlmodel import Field as SqlField
from sqlmodel import SQLModel

from astropolis.lake.clock import Clock, SystemClock
from astropolis.lake.db import UtcText, make_append_only, make_engine, read_transaction, write_transaction
from astropolis.lake.ids import canonical_json
from astropolis.memory.errors import MemoryStoreError

Status = Literal["open", "supported", "refuted"]
HYPOTHESIS_TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"supported", "refuted"}),
    "supported": frozenset(),
    "refuted": frozenset(),
}
EVIDENCE_PATTERN = r"^(sha256:[0-9a-f]{64}|job:\d{1,9})$"


class HypothesisError(MemoryStoreError):
    """No such hypothesis, or a status change the state machine does not allow."""


class HypothesisRow(SQLModel, table=True):
    """A hypothesis, written once."""

    __tablename__ = "hypotheses"

    id: int | None = SqlField(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    key: str = SqlField(unique=True, max_length=128)
    statement: str
    evidence_json: str
    test_jobs_json: str
    actor: str = SqlField(max_length=128)
    created_at: datetime = SqlField(sa_column=Column(UtcText(), nullable=False))


class HypothesisEventRow(SQLModel, table=True):
    """One status change, appended."""

    __tablename__ = "hypothesis_events"

    hypothesis_id: int = SqlField(sa_column=Column(Integer, ForeignKey("hypotheses.id"), primary_key=True))
    seq: int = SqlField(primary_key=True)
    status: str = SqlField(max_length=16)
    at: datetime = SqlField(sa_column=Column(UtcText(), nullable=False))
    actor: str = SqlField(max_length=128)
    reason: str


_H = HypothesisRow.__table__  # type: ignore[attr-defined]
_E = HypothesisEventRow.__table__  # type: ignore[attr-defined]


class StatusChange(BaseModel):
    """One entry of a hypothesis's history."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int = Field(description="1 at creation, then +1 per change.")
    status: Status = Field(description="Status after this change.")
    at: AwareDatetime = Field(description="When (UTC, run clock).")
    actor: str = Field(description="Who changed it.")
    reason: str = Field(description="Why (cites jobs and products).")


class Hypothesis(BaseModel):
    """A testable claim about the sky, with what supports it and what would decide it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int = Field(description="Hypothesis number.")
    statement: str = Field(description="The claim, in words.")
    evidence: tuple[str, ...] = Field(description="Lake ids and job:N references that motivated it.")
    test_jobs: tuple[int, ...] = Field(description="Observe jobs whose products confirm or refute it.")
    actor: str = Field(description="Who proposed it.")
    created_at: AwareDatetime = Field(description="When it was proposed.")
    history: tuple[StatusChange, ...] = Field(description="Status changes, oldest first.")

    @property
    def status(self) -> Status:
        """Current status."""
        return self.history[-1].status


class HypothesisBook:
    """Append-only store of hypotheses and their status changes."""

    def __init__(self, url: str, *, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self.engine = make_engine(url)
        with write_transaction(self.engine) as connection:
            SQLModel.metadata.create_all(connection, tables=[_H, _E])
            make_append_only(connection, [_H.name, _E.name])

    def close(self) -> None:
        """Release database connections."""
        self.engine.dispose()

    def propose(
        self,
        statement: str,
        *,
        evidence: tuple[str, ...],
        test_jobs: tuple[int, ...],
        actor: str,
        key: str | None = None,
    ) -> tuple[Hypothesis, bool]:
        """Record an open hypothesis; the same key (default: its content) returns the existing one."""
        statement = statement.strip()
        if not 8 <= len(statement) <= 300:
            raise HypothesisError(f"a hypothesis statement needs 8-300 characters, got {len(statement)}")
        content = {"statement": statement, "evidence": sorted(evidence), "test_jobs": sorted(test_jobs)}
        key = key or "auto:" + hashlib.sha256(canonical_json(content)).hexdigest()[:40]
        now = self.clock.now()
        with write_transaction(self.engine) as connection:
            existing = connection.execute(select(_H.c.id).where(_H.c.key == key)).scalar()
            if existing is not None:
                return self._load(connection, [existing])[0], False
            inserted = connection.execute(
                _H.insert().values(
                    key=key,
                    statement=statement,
                    evidence_json=json.dumps(list(evidence)),
                    test_jobs_json=json.dumps(list(test_jobs)),
                    actor=actor,
                    created_at=now,
                )
            ).inserted_primary_key
            assert inserted is not None
            connection.execute(
                _E.insert().values(
                    hypothesis_id=inserted[0], seq=1, status="open", at=now, actor=actor, reason="proposed"
                )
            )
            return self._load(connection, [inserted[0]])[0], True

    def get(self, hypothesis_id: int) -> Hypothesis:
        """One hypothesis with its history."""
        with read_transaction(self.engine) as connection:
            found = self._load(connection, [hypothesis_id])
        if not found:
            raise HypothesisError(f"hypothesis {hypothesis_id}: no such hypothesis")
        return found[0]

    def all(self, *, status: Status | None = None) -> list[Hypothesis]:
        """Every hypothesis (oldest first), optionally only those with one status."""
        with read_transaction(self.engine) as connection:
            ids = list(connection.execute(select(_H.c.id).order_by(_H.c.id)).scalars())
            found = self._load(connection, ids)
        return [h for h in found if status is None or h.status == status]

    def set_status(self, hypothesis_id: int, status: Status, *, actor: str, reason: str) -> Hypothesis:
        """Append a status change allowed by the state machine."""
        with write_transaction(self.engine) as connection:
            found = self._load(connection, [hypothesis_id])
            if not found:
                raise HypothesisError(f"hypothesis {hypothesis_id}: no such hypothesis")
            current = found[0]
            if status not in HYPOTHESIS_TRANSITIONS[current.status]:
                raise HypothesisError(
                    f"hypothesis {hypothesis_id} is {current.status}; it cannot become {status}"
                    + (" (it is decided)" if not HYPOTHESIS_TRANSITIONS[current.status] else "")
                )
            seq = connection.execute(select(func.max(_E.c.seq)).where(_E.c.hypothesis_id == hypothesis_id)).scalar()
            connection.execute(
                _E.insert().values(
                    hypothesis_id=hypothesis_id,
                    seq=int(seq or 0) + 1,
                    status=status,
                    at=self.clock.now(),
                    actor=actor,
                    reason=reason[:500],
                )
            )
            return self._load(connection, [hypothesis_id])[0]

    def _load(self, connection: object, ids: list[int]) -> list[Hypothesis]:
        if not ids:
            return []
        rows = connection.execute(select(_H).where(_H.c.id.in_(ids)).order_by(_H.c.id)).all()  # type: ignore[attr-defined]
        events = connection.execute(  # type: ignore[attr-defined]
            select(_E).where(_E.c.hypothesis_id.in_(ids)).order_by(_E.c.hypothesis_id, _E.c.seq)
        ).all()
        history: dict[int, list[StatusChange]] = {row.id: [] for row in rows}
        for event in events:
            history[event.hypothesis_id].append(
                StatusChange(seq=event.seq, status=event.status, at=event.at, actor=event.actor, reason=event.reason)
            )
        return [
            Hypothesis(
                id=row.id,
                statement=row.statement,
                evidence=tuple(json.loads(row.evidence_json)),
                test_jobs=tuple(json.loads(row.test_jobs_json)),
                actor=row.actor,
                created_at=row.created_at,
                history=tuple(history[row.id]),
            )
            for row in rows
        ]
