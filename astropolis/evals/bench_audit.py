"""Audit log rates: `verify` over a large log (target >= 100,000 entries/s), plus append rates for context.

python -m astropolis.evals.bench_audit [--entries 200000]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from astropolis.memory import AuditLog, verify_chain


def calls(start: int, count: int) -> list[dict[str, object]]:
    """Entries shaped like real tool calls (a few hundred bytes of body each)."""
    return [
        {
            "actor": f"agent:thread-{i % 7}",
            "tool": ("lake.frames", "jobs.propose", "visibility.windows")[i % 3],
            "arguments": {"target": "NGC 4656", "ra_deg": 190.99 + i * 1e-6, "dec_deg": 32.17, "limit": 20},
            "result": {"job_id": i, "state": "PENDING", "frames": [f"sha256:{i:064x}"]},
            "policy": "allowed" if i % 13 else "refused",
            "tier": "propose",
            "model_id": "smollm2-135m-instruct",
            "duration_ms": 3.25,
        }
        for i in range(start, start + count)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="astropolis-bench-audit-") as work:
        path = Path(work) / "audit.db"
        log = AuditLog(f"sqlite:///{path}")
        started = time.perf_counter()
        single = 300
        for call in calls(0, single):
            log.append(**call)  # type: ignore[arg-type]
        append_rate = single / (time.perf_counter() - started)
        started = time.perf_counter()
        batch = 10_000
        for offset in range(single, args.entries, batch):
            log.append_many(calls(offset, min(batch, args.entries - offset)))
        batch_rate = (args.entries - single) / (time.perf_counter() - started)
        _, head = log.head()
        verify_times = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            report = log.verify(head=head)
            verify_times.append(time.perf_counter() - started)
            assert report.ok and report.entries == args.entries, report
        with sqlite3.connect(path) as connection:
            rows = connection.execute("SELECT seq, prev_hash, body, entry_hash FROM audit_log ORDER BY seq").fetchall()
        started = time.perf_counter()
        assert verify_chain(rows, head).ok
        chain_rate = len(rows) / (time.perf_counter() - started)
        body_bytes = sum(len(r[2]) for r in rows) / len(rows)
        log.close()
    verify_rate = args.entries / statistics.median(verify_times)
    figures = {
        "entries": args.entries,
        "mean_body_bytes": round(body_bytes),
        "verify_entries_per_s": round(verify_rate),
        "verify_chain_in_memory_entries_per_s": round(chain_rate),
        "append_entries_per_s_fsync_each": round(append_rate),
        "append_many_entries_per_s": round(batch_rate),
        "target_verify_entries_per_s": 100_000,
    }
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"audit log of {args.entries:,} entries ({figures['mean_body_bytes']} B bodies), median of {args.rounds}")
    print(f"  verify (SQLite read + re-hash)   : {verify_rate:,.0f} entries/s  (target >= 100,000)")
    print(f"  verify_chain on rows in memory   : {chain_rate:,.0f} entries/s")
    print(f"  append, one fsynced tx per entry : {append_rate:,.0f} entries/s")
    print(f"  append_many, 10,000 per tx       : {batch_rate:,.0f} entries/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
