"""The audit log: append-only and hash-chained, so any edit, deletion, reordering or truncation is found.

Entry n stores seq n, the previous entry's hash, a canonical-JSON body, and
`sha256(seq "|" prev_hash "|" body)`. `verify` re-derives every hash and names the first bad seq; a head
hash saved elsewhere (`audit head`) also catches a cut-off tail, which no chain can see on its own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Column, Integer, Text, select
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from astropolis.lake.clock import Clock, SystemClock, parse_utc_iso, utc_iso
from astropolis.lake.db import make_append_only, make_engine, read_transaction, write_transaction
from astropolis.lake.ids import canonical_json
from astropolis.memory.errors import AuditError

GENESIS = "sha256:" + "0" * 64
BODY_SCHEMA = 1
MAX_VALUE_BYTES = 16_384
_CALL_FIELDS = frozenset(
    {
        "actor",
        "tool",
        "arguments",
        "result",
        "error",
        "policy",
        "tier",
        "schema_hash",
        "approval",
        "model_id",
        "duration_ms",
    }
)


class AuditRow(SQLModel, table=True):
    """One chained entry."""

    __tablename__ = "audit_log"

    seq: int = SQLField(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    prev_hash: str = SQLField(max_length=71)
    body: str = SQLField(sa_column=Column(Text, nullable=False))
    entry_hash: str = SQLField(max_length=71, unique=True)


_LOG = AuditRow.__table__  # type: ignore[attr-defined]


class AuditEntry(BaseModel):
    """One audited action: who did what with which arguments, what came of it, and whether policy allowed it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int = Field(description="Position in the log, from 1.")
    prev_hash: str = Field(description="Hash of the entry before (GENESIS for seq 1).")
    entry_hash: str = Field(description="sha256 over seq, prev_hash and the canonical body.")
    at: datetime = Field(description="When (UTC, run clock).")
    actor: str = Field(description="person:NAME, agent:THREAD, night:RUN, scheduler, executor:SITE…")
    tool: str = Field(description="Tool or command, e.g. 'cli.lake.ingest'.")
    schema_hash: str | None = Field(description="sha256 of the tool's argument schema.")
    arguments: Any = Field(description="Arguments as given.")
    result: Any = Field(description="Result summary (None on error).")
    error: str | None = Field(description="Error message, if it failed.")
    policy: Literal["allowed", "refused"] = Field(description="The policy decision.")
    tier: str | None = Field(description="Permission tier the call was judged at: read/propose/actuate/admin.")
    approval: str | None = Field(description="Who approved it, where approval was needed.")
    model_id: str | None = Field(description="LLM model id, for agent calls.")
    duration_ms: float = Field(description="Wall time the action took.")


class AuditVerifyReport(BaseModel):
    """The outcome of re-deriving the chain."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ok: bool
    entries: int = Field(description="Entries read.")
    head_seq: int = Field(description="Seq of the last good entry read.")
    head_hash: str = Field(description="Hash of the last good entry read.")
    first_bad_seq: int | None = Field(description="First seq that is edited, missing, reordered or cut off.")
    problem: str | None = Field(description="What is wrong at first_bad_seq.")


def entry_hash(seq: int, prev_hash: str, body: bytes) -> str:
    """The chained hash of one entry."""
    return "sha256:" + hashlib.sha256(b"%d|%s|%s" % (seq, prev_hash.encode("ascii"), body)).hexdigest()


def _bounded(value: Any) -> Any:
    """Keep huge results out of the log: beyond MAX_VALUE_BYTES keep a hash and the size, not the bytes."""
    encoded = canonical_json(value)
    if len(encoded) <= MAX_VALUE_BYTES:
        return value
    return {"omitted_bytes": len(encoded), "sha256": "sha256:" + hashlib.sha256(encoded).hexdigest()}


def verify_chain(rows: Iterable[tuple[int, str, str, str]], expected_head: str | None = None) -> AuditVerifyReport:
    """Check (seq, prev_hash, body, entry_hash) rows in seq order; pure, so it can be fuzzed in memory."""
    expected_seq = 1
    previous = GENESIS
    head_found = expected_head is None or expected_head == GENESIS
    sha256 = hashlib.sha256

    def bad(seq: int, problem: str) -> AuditVerifyReport:
        return AuditVerifyReport(
            ok=False,
            entries=expected_seq - 1,
            head_seq=expected_seq - 1,
            head_hash=previous,
            first_bad_seq=seq,
            problem=problem,
        )

    for seq, prev_hash, body, stored in rows:
        if seq != expected_seq:
            return bad(min(seq, expected_seq), f"expected seq {expected_seq}, found {seq}: entries missing or moved")
        if prev_hash != previous:
            return bad(seq, "prev_hash does not match the entry before: an entry was removed, moved or edited")
        derived = "sha256:" + sha256(b"%d|%s|%s" % (seq, prev_hash.encode(), body.encode())).hexdigest()
        if derived != stored:
            return bad(seq, "entry hash does not match its contents: the entry was edited")
        if stored == expected_head:
            head_found = True
        previous = stored
        expected_seq += 1
    if not head_found:
        return bad(
            expected_seq,
            f"saved head {expected_head} is not in the log, which ends at seq {expected_seq - 1}: "
            "the log was truncated or rewritten",
        )
    return AuditVerifyReport(
        ok=True,
        entries=expected_seq - 1,
        head_seq=expected_seq - 1,
        head_hash=previous,
        first_bad_seq=None,
        problem=None,
    )


class AuditLog:
    """Append-only, hash-chained record of every action, stored in SQL (append-only triggers too)."""

    def __init__(self, url: str, *, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self.engine = make_engine(url)
        with write_transaction(self.engine) as connection:
            SQLModel.metadata.create_all(connection, tables=[_LOG])
            make_append_only(connection, ["audit_log"])

    def close(self) -> None:
        """Release database connections."""
        self.engine.dispose()

    def append(
        self,
        *,
        actor: str,
        tool: str,
        arguments: Any,
        result: Any = None,
        error: str | None = None,
        policy: Literal["allowed", "refused"] = "allowed",
        tier: str | None = None,
        schema_hash: str | None = None,
        approval: str | None = None,
        model_id: str | None = None,
        duration_ms: float = 0.0,
    ) -> AuditEntry:
        """Append one entry and return it with its seq and hash."""
        return self.append_many(
            [
                {
                    "actor": actor,
                    "tool": tool,
                    "arguments": arguments,
                    "result": result,
                    "error": error,
                    "policy": policy,
                    "tier": tier,
                    "schema_hash": schema_hash,
                    "approval": approval,
                    "model_id": model_id,
                    "duration_ms": duration_ms,
                }
            ]
        )[0]

    def append_many(self, calls: Iterable[Mapping[str, Any]]) -> list[AuditEntry]:
        """Append several entries in one transaction (one fsync); each mapping takes `append`'s arguments."""
        bodies = [self._body(call) for call in calls]
        rows: list[tuple[int, str, str, str]] = []
        with write_transaction(self.engine) as connection:
            last = connection.execute(
                select(_LOG.c.seq, _LOG.c.entry_hash).order_by(_LOG.c.seq.desc()).limit(1)
            ).one_or_none()
            seq, prev = (0, GENESIS) if last is None else (last.seq, last.entry_hash)
            for body in bodies:
                seq += 1
                digest = entry_hash(seq, prev, body)
                rows.append((seq, prev, body.decode(), digest))
                prev = digest
            if rows:
                connection.execute(
                    _LOG.insert(), [{"seq": r[0], "prev_hash": r[1], "body": r[2], "entry_hash": r[3]} for r in rows]
                )
        return [parse_entry(*row) for row in rows]

    def _body(self, call: Mapping[str, Any]) -> bytes:
        unknown = set(call) - _CALL_FIELDS
        if unknown or not {"actor", "tool", "arguments"} <= set(call):
            raise AuditError(f"audit entry needs actor, tool, arguments and takes only {sorted(_CALL_FIELDS)}")
        tool = call["tool"]
        try:
            return canonical_json(
                {
                    "v": BODY_SCHEMA,
                    "at": utc_iso(self.clock.now()),
                    "actor": call["actor"],
                    "tool": tool,
                    "schema_hash": call.get("schema_hash"),
                    "arguments": _bounded(call["arguments"]),
                    "result": _bounded(call.get("result")),
                    "error": call.get("error"),
                    "policy": call.get("policy", "allowed"),
                    "tier": call.get("tier"),
                    "approval": call.get("approval"),
                    "model_id": call.get("model_id"),
                    "duration_ms": round(float(call.get("duration_ms", 0.0)), 3),
                }
            )
        except (TypeError, ValueError) as problem:
            raise AuditError(f"audit entry for {tool} is not JSON-serialisable: {problem}") from None

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last entry; (0, GENESIS) for an empty log."""
        with read_transaction(self.engine) as connection:
            last = connection.execute(
                select(_LOG.c.seq, _LOG.c.entry_hash).order_by(_LOG.c.seq.desc()).limit(1)
            ).one_or_none()
        return (0, GENESIS) if last is None else (last.seq, last.entry_hash)

    def get(self, seq: int) -> AuditEntry:
        """One entry by seq."""
        with read_transaction(self.engine) as connection:
            row = connection.execute(select(_LOG).where(_LOG.c.seq == seq)).one_or_none()
        if row is None:
            raise AuditError(f"audit entry {seq}: no such seq (the log has {self.head()[0]} entries)")
        return parse_entry(row.seq, row.prev_hash, row.body, row.entry_hash)

    def entries(
        self, *, limit: int = 50, actor: str | None = None, tool: str | None = None, before_seq: int | None = None
    ) -> list[AuditEntry]:
        """The newest `limit` entries (newest first), optionally of one actor or tool."""
        found: list[AuditEntry] = []
        for entry in self._newest_first(before_seq):
            if (actor is None or entry.actor == actor) and (tool is None or entry.tool == tool):
                found.append(entry)
                if len(found) >= limit:
                    break
        return found

    def _newest_first(self, before_seq: int | None) -> Iterator[AuditEntry]:
        upper = before_seq if before_seq is not None else self.head()[0] + 1
        while upper > 1:
            with read_transaction(self.engine) as connection:
                rows = connection.execute(
                    select(_LOG).where(_LOG.c.seq < upper).order_by(_LOG.c.seq.desc()).limit(500)
                ).all()
            if not rows:
                return
            for row in rows:
                yield parse_entry(row.seq, row.prev_hash, row.body, row.entry_hash)
            upper = rows[-1].seq

    def verify(self, *, head: str | None = None) -> AuditVerifyReport:
        """Re-derive the whole chain; with `head`, also prove the log still reaches that saved head."""
        if head is not None and not (head.startswith("sha256:") and len(head) == 71):
            raise AuditError(f"--head {head!r} is not an entry hash (sha256:<64 hex>, as printed by `audit head`)")
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("SELECT seq, prev_hash, body, entry_hash FROM audit_log ORDER BY seq")
            return verify_chain(_fetch(cursor), head)
        finally:
            raw.close()


def _fetch(cursor: Any) -> Iterator[tuple[int, str, str, str]]:
    while batch := cursor.fetchmany(20_000):
        yield from batch


def parse_entry(seq: int, prev_hash: str, body: str, digest: str) -> AuditEntry:
    """Build an AuditEntry from a stored row (no hash check: that is `verify`'s job)."""
    value = json.loads(body)
    return AuditEntry(
        seq=seq,
        prev_hash=prev_hash,
        entry_hash=digest,
        at=parse_utc_iso(value["at"]),
        actor=value["actor"],
        tool=value["tool"],
        schema_hash=value.get("schema_hash"),
        arguments=value.get("arguments"),
        result=value.get("result"),
        error=value.get("error"),
        policy=value.get("policy", "allowed"),
        tier=value.get("tier"),
        approval=value.get("approval"),
        model_id=value.get("model_id"),
        duration_ms=value.get("duration_ms", 0.0),
    )
