"""Frozen examples of every persisted record's schema version 1 must keep loading (and hashing) as written."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import M13

from astropolis.lake import Frame, Lake
from astropolis.memory import JobRequest, verify_chain
from astropolis.memory.audit import entry_hash, parse_entry

DATA = Path(__file__).parent / "data" / "v1"


def test_v1_job_request_loads_and_keeps_its_idempotency_key() -> None:
    request = JobRequest.model_validate(json.loads((DATA / "job_request.json").read_text()))
    assert request.schema_version == 1 and request.lane == "rapid" and request.exposure is not None
    assert request.key() == "follow-up:ngc4656:2026-11-25"
    # The derived key of a keyless request is part of the contract: the same request must map to the same job.
    keyless = request.model_copy(update={"idempotency_key": None})
    assert keyless.key() == "auto:" + keyless.content_hash()[7:47]


def test_v1_frame_loads_and_matches_a_fresh_ingest(tmp_path: Path) -> None:
    frozen = Frame.model_validate(json.loads((DATA / "frame.json").read_text()))
    with Lake(tmp_path) as lake:
        fresh = lake.ingest(M13, site="skyview-dss").frame
    assert fresh.model_dump(exclude={"ingested_at"}) == frozen.model_dump(exclude={"ingested_at"})


def test_v1_audit_body_still_chains_and_parses() -> None:
    body = (DATA / "audit_body.json").read_text().strip()
    digest = entry_hash(1, "sha256:" + "0" * 64, body.encode())
    assert verify_chain([(1, "sha256:" + "0" * 64, body, digest)]).ok
    entry = parse_entry(1, "sha256:" + "0" * 64, body, digest)
    assert entry.tool == "cli.lake.ingest" and entry.result["created"] is True
