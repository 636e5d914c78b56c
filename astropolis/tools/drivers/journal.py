"""The command journal: every driver command by id, so a re-issued command returns its stored result.

Append-only (started, completed or failed events per command). A command that started but never completed
(the process died mid-exposure) is simply run again; a completed one never is.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Column, Integer, Text, select
from sqlmodel import Field, SQLModel

from astropolis.lake.clock import Clock, SystemClock
from astropolis.lake.db import UtcText, make_append_only, make_engine, read_transaction, write_transaction

CommandKind = Literal["slew", "expose", "park", "unpark"]


class CommandEventRow(SQLModel, table=True):
    """One event of one driver command."""

    __tablename__ = "driver_commands"

    site: str = Field(primary_key=True, max_length=64)
    command_id: str = Field(primary_key=True, max_length=128)
    seq: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    kind: str = Field(max_length=16)
    state: str = Field(max_length=16)
    at: datetime = Field(sa_column=Column(UtcText(), nullable=False))
    result_json: str = Field(sa_column=Column(Text, nullable=False))


_TABLE = CommandEventRow.__table__  # type: ignore[attr-defined]


class CommandResult(BaseModel):
    """What a completed command produced."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    site: str
    command_id: str
    kind: CommandKind
    completed_at: datetime
    frame_id: str | None = None
    detail: dict[str, Any] = {}


class CommandJournal:
    """Per-site record of driver commands by id (SQLite by default, any SQLAlchemy URL)."""

    def __init__(self, url: str, *, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self.engine = make_engine(url)
        with write_transaction(self.engine) as connection:
            SQLModel.metadata.create_all(connection, tables=[_TABLE])
            make_append_only(connection, [_TABLE.name])

    def close(self) -> None:
        """Release database connections."""
        self.engine.dispose()

    def completed(self, site: str, command_id: str) -> CommandResult | None:
        """The stored result of a command that completed, else None."""
        with read_transaction(self.engine) as connection:
            row = connection.execute(
                select(_TABLE)
                .where(_TABLE.c.site == site, _TABLE.c.command_id == command_id, _TABLE.c.state == "completed")
                .limit(1)
            ).one_or_none()
        if row is None:
            return None
        return CommandResult.model_validate({**json.loads(row.result_json), "completed_at": row.at})

    def completed_anywhere(self, command_id: str) -> CommandResult | None:
        """The stored result of a command that completed at any site (a job re-planned to another site
        keeps the exposures it already has)."""
        with read_transaction(self.engine) as connection:
            row = connection.execute(
                select(_TABLE)
                .where(_TABLE.c.command_id == command_id, _TABLE.c.state == "completed")
                .order_by(_TABLE.c.at, _TABLE.c.site)
                .limit(1)
            ).one_or_none()
        if row is None:
            return None
        return CommandResult.model_validate({**json.loads(row.result_json), "completed_at": row.at})

    def history(self, site: str, command_id: str) -> list[tuple[str, datetime]]:
        """(state, time) of every event of a command, oldest first."""
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(_TABLE.c.state, _TABLE.c.at)
                .where(_TABLE.c.site == site, _TABLE.c.command_id == command_id)
                .order_by(_TABLE.c.seq)
            ).all()
        return [(r.state, r.at) for r in rows]

    def record(
        self,
        site: str,
        command_id: str,
        kind: CommandKind,
        state: Literal["started", "completed", "failed"],
        *,
        frame_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> CommandResult | None:
        """Append one event; returns the result for 'completed'."""
        now = self.clock.now()
        result = {"site": site, "command_id": command_id, "kind": kind, "frame_id": frame_id, "detail": detail or {}}
        with write_transaction(self.engine) as connection:
            last = connection.execute(
                select(_TABLE.c.seq, _TABLE.c.state)
                .where(_TABLE.c.site == site, _TABLE.c.command_id == command_id)
                .order_by(_TABLE.c.seq.desc())
                .limit(1)
            ).one_or_none()
            if last is not None and last.state == "completed":
                raise ValueError(f"command {command_id} at {site} already completed; it is never run twice")
            connection.execute(
                _TABLE.insert().values(
                    site=site,
                    command_id=command_id,
                    seq=0 if last is None else last.seq + 1,
                    kind=kind,
                    state=state,
                    at=now,
                    result_json=json.dumps(result, sort_keys=True),
                )
            )
        if state != "completed":
            return None
        return CommandResult.model_validate({**result, "completed_at": now})
