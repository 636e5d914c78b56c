"""The audit log: chained appends, verify, and a tamper fuzz that must name the first bad seq every time."""

from __future__ import annotations

import random
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from astropolis.lake.clock import ManualClock
from astropolis.memory import GENESIS, AuditError, AuditLog, verify_chain
from astropolis.memory.audit import MAX_VALUE_BYTES


def fill(audit: AuditLog, count: int) -> None:
    for i in range(count):
        audit.append(
            actor="agent:thread-7" if i % 3 else "person:ann",
            tool="jobs.propose" if i % 2 else "lake.frames",
            arguments={"i": i, "target": "M13"},
            result={"ok": True, "n": i},
            policy="refused" if i % 11 == 0 else "allowed",
            tier="propose",
            duration_ms=1.5,
        )


def rows(path: Path) -> list[tuple[int, str, str, str]]:
    with sqlite3.connect(path) as connection:
        return list(connection.execute("SELECT seq, prev_hash, body, entry_hash FROM audit_log ORDER BY seq"))


def test_append_chain_and_read_back(audit: AuditLog, clock: ManualClock) -> None:
    assert audit.head() == (0, GENESIS)
    first = audit.append(
        actor="person:ann",
        tool="cli.jobs.submit",
        arguments={"ra": 1},
        result={"job": 1},
        schema_hash="sha256:" + "1" * 64,
        duration_ms=12.3456,
    )
    clock.advance(5)
    second = audit.append(
        actor="agent:t",
        tool="jobs.propose",
        arguments={},
        error="priority above cap",
        policy="refused",
        tier="propose",
        model_id="smollm2-135m",
    )
    assert (first.seq, first.prev_hash) == (1, GENESIS)
    assert second.prev_hash == first.entry_hash
    assert audit.head() == (2, second.entry_hash)
    stored = audit.get(2)
    assert stored == second
    assert (stored.policy, stored.error, stored.model_id) == ("refused", "priority above cap", "smollm2-135m")
    assert audit.get(1).duration_ms == 12.346 and audit.get(1).at == clock.now() - timedelta(seconds=5)
    assert [e.seq for e in audit.entries(limit=10)] == [2, 1]
    assert [e.seq for e in audit.entries(actor="agent:t")] == [2]
    assert audit.verify().ok
    with pytest.raises(AuditError, match="no such seq"):
        audit.get(3)


def test_huge_results_are_summarised_not_stored(audit: AuditLog) -> None:
    entry = audit.append(actor="a:b", tool="lake.frames", arguments={}, result={"rows": ["x" * 100] * 1000})
    assert entry.result["omitted_bytes"] > MAX_VALUE_BYTES and entry.result["sha256"].startswith("sha256:")


def test_unserialisable_entry_is_refused(audit: AuditLog) -> None:
    with pytest.raises(AuditError, match="JSON"):
        audit.append(actor="a:b", tool="t", arguments={"x": object()})
    assert audit.head()[0] == 0


def test_verify_with_saved_head_detects_truncation(audit: AuditLog, tmp_path: Path) -> None:
    fill(audit, 20)
    _, head = audit.head()
    assert audit.verify(head=head).ok
    fill(audit, 5)  # growth after a saved head is fine
    assert audit.verify(head=head).ok
    with pytest.raises(AuditError, match="not an entry hash"):
        audit.verify(head="deadbeef")
    path = tmp_path / "audit.db"
    with sqlite3.connect(path) as connection:
        connection.execute("DROP TRIGGER audit_log_no_delete")
        connection.execute("DELETE FROM audit_log WHERE seq > 12")
    assert audit.verify().ok  # a cut tail looks like a shorter log...
    report = audit.verify(head=head)  # ...until it is checked against a head saved elsewhere
    assert not report.ok and report.first_bad_seq == 13 and "truncated" in (report.problem or "")


def test_tampering_in_the_database_file_is_found(audit: AuditLog, tmp_path: Path) -> None:
    fill(audit, 30)
    path = tmp_path / "audit.db"
    with sqlite3.connect(path) as connection:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            connection.execute("UPDATE audit_log SET body = replace(body, 'M13', 'M31') WHERE seq = 17")
        connection.execute("DROP TRIGGER audit_log_no_update")
        connection.execute("UPDATE audit_log SET body = replace(body, 'M13', 'M31') WHERE seq = 17")
    report = audit.verify()
    assert not report.ok and report.first_bad_seq == 17 and report.head_seq == 16


# ------------------------------------------------------------------------------------------ tamper fuzz
def _mutate(original: list[tuple[int, str, str, str]], rng: random.Random) -> tuple[str, list, int]:
    """Apply one random edit, deletion, swap or truncation; return it with the seq that must be named."""
    data = [list(row) for row in original]
    n = len(data)
    kind = rng.choice(["edit-body", "edit-hash", "edit-prev", "edit-seq", "delete", "swap", "truncate"])
    k = rng.randrange(n)  # index; seq is k + 1
    if kind == "edit-body":
        body = data[k][2]
        position = rng.randrange(len(body))
        replacement = chr((ord(body[position]) + rng.randrange(1, 20)) % 0x7E or 0x41)
        if replacement == body[position]:
            replacement = "#" if body[position] != "#" else "$"
        data[k][2] = body[:position] + replacement + body[position + 1 :]
        expected = k + 1
    elif kind == "edit-hash":
        data[k][3] = "sha256:" + format(rng.getrandbits(256), "064x")
        expected = k + 1
    elif kind == "edit-prev":
        data[k][1] = "sha256:" + format(rng.getrandbits(256), "064x")
        expected = k + 1
    elif kind == "edit-seq":
        # Renumber one entry to an unused seq past the end (a primary key allows nothing else).
        data[k][0] = n + rng.randrange(1, 5)
        data.sort(key=lambda row: row[0])
        expected = k + 1
    elif kind == "delete":
        del data[k]
        expected = k + 1
    elif kind == "swap":
        j = rng.randrange(n)
        while j == k:
            j = rng.randrange(n)
        i, j = min(k, j), max(k, j)
        # Swap the rows' contents, keeping the seq column in order (what ORDER BY seq would then return).
        data[i][1:], data[j][1:] = data[j][1:], data[i][1:]
        expected = i + 1
    else:  # truncate: keep the first k entries
        data = data[:k]
        expected = k + 1
    return kind, [tuple(row) for row in data], expected


def test_tamper_fuzz_1000_mutations_each_found_at_the_right_seq(audit: AuditLog, tmp_path: Path) -> None:
    fill(audit, 120)
    original = rows(tmp_path / "audit.db")
    head = original[-1][3]
    assert verify_chain(original, head).ok
    rng = random.Random(20261125)
    kinds: dict[str, int] = {}
    for trial in range(1000):
        kind, tampered, expected = _mutate(original, rng)
        kinds[kind] = kinds.get(kind, 0) + 1
        report = verify_chain(tampered, head)
        assert not report.ok, f"trial {trial}: {kind} went unnoticed"
        assert report.first_bad_seq == expected, (
            f"trial {trial}: {kind} named seq {report.first_bad_seq}, not {expected}"
        )
    assert set(kinds) == {"edit-body", "edit-hash", "edit-prev", "edit-seq", "delete", "swap", "truncate"}
    assert min(kinds.values()) > 80


def test_rewriting_the_whole_tail_is_caught_by_the_saved_head(audit: AuditLog, tmp_path: Path) -> None:
    """An attacker who recomputes every later hash defeats the chain alone, not a head kept elsewhere."""
    from astropolis.memory.audit import entry_hash

    fill(audit, 10)
    original = rows(tmp_path / "audit.db")
    head = original[-1][3]
    forged = list(original[:4])
    previous = forged[-1][3]
    for seq, _, body, _ in original[4:]:
        body = body.replace("M13", "M31")
        digest = entry_hash(seq, previous, body.encode())
        forged.append((seq, previous, body, digest))
        previous = digest
    assert verify_chain(forged).ok
    assert not verify_chain(forged, head).ok


def test_append_many_continues_the_chain_atomically(audit: AuditLog) -> None:
    first = audit.append(actor="person:ann", tool="cli.lake.ingest", arguments={})
    batch = audit.append_many(
        [{"actor": "night:run-1", "tool": "executor.expose", "arguments": {"frame": i}} for i in range(5)]
    )
    assert [e.seq for e in batch] == [2, 3, 4, 5, 6] and batch[0].prev_hash == first.entry_hash
    assert audit.verify().ok
    with pytest.raises(AuditError, match="takes only"):
        audit.append_many(
            [
                {"actor": "a:b", "tool": "t", "arguments": {}},
                {"actor": "a:b", "tool": "t", "arguments": {}, "colour": "red"},
            ]
        )
    assert audit.head()[0] == 6  # the bad batch wrote nothing, not even its good first entry
