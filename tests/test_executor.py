"""The executor against the fake site: frames into the lake, jobs through the ledger, audit entries, no
repeated exposures after a restart or a re-plan, and faults handed back to the scheduler."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from astropolis.lake import Lake
from astropolis.lake.clock import ManualClock
from astropolis.memory import AuditLog, JobState, Ledger, parse_request
from astropolis.tools.drivers import CommandJournal
from astropolis.tools.drivers.fake import FakeDriver
from astropolis.tools.executor import SiteExecutor, command_id
from astropolis.tools.sites import demo_sites

NIGHT = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)  # dark at both La Palma and Chile


class World:
    def __init__(self, root: Path) -> None:
        self.clock = ManualClock(NIGHT)
        self.lake = Lake(root / "lake", clock=self.clock)
        self.ledger = Ledger(f"sqlite:///{root / 'ledger.db'}", clock=self.clock)
        self.audit = AuditLog(f"sqlite:///{root / 'audit.db'}", clock=self.clock)
        self.journal = CommandJournal(f"sqlite:///{root / 'commands.db'}", clock=self.clock)
        self.sites = demo_sites("fake")

    def executor(self, site: str) -> SiteExecutor:
        driver = FakeDriver(self.sites.get(site), journal=self.journal, frames=self.lake.blobs, clock=self.clock)
        driver.connect()
        return SiteExecutor(driver, lake=self.lake, ledger=self.ledger, audit=self.audit, clock=self.clock)

    def job(self, count: int = 3, key: str = "m31") -> int:
        request = parse_request({
            "kind": "observe", "target": {"name": "NGC 1637", "ra_deg": 70.3671, "dec_deg": -2.8578},
            "window": {"start": "2026-11-25T20:00:00Z", "end": "2026-11-26T06:00:00Z"},
            "exposure": {"filter": "R", "exposure_s": 5, "count": count}, "reason": "test",
            "origin": {"kind": "person", "ref": "t"}, "idempotency_key": key,
        })
        return self.ledger.submit(request, actor="person:t").job.id


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield World(tmp_path)


def test_a_job_runs_to_completion_with_frames_in_the_lake(world: World) -> None:
    executor = world.executor("lapalma")
    job_id = world.job()
    job = world.ledger.schedule(job_id, "lapalma", actor="scheduler")
    done = executor.run_job(job)
    assert done.state == JobState.COMPLETED and done.site == "lapalma" and done.attempts == 1
    frames = world.lake.frames(site="lapalma")
    assert len(frames) == 3 and all(f.object_name == "NGC 1637" and f.exptime_s == 5 for f in frames)
    assert {f.id[:19] for f in frames} <= set(done.history[-1].reason.replace(",", " ").split())
    tools = [e.tool for e in world.audit.entries(limit=20)]
    assert tools.count("executor.expose") == 3 and "executor.complete" in tools and "executor.start" in tools
    assert world.audit.verify().ok and world.lake.verify().ok


def test_restart_or_replan_never_repeats_a_completed_exposure(world: World) -> None:
    first = world.executor("lapalma")
    job_id = world.job(count=3)
    job = first.start(world.ledger.schedule(job_id, "lapalma", actor="scheduler"))
    assert first.expose(job, 0).frame_id is not None  # then the executor process "dies"
    assert first.driver.exposures_taken == 1  # type: ignore[attr-defined]
    first.hand_back(job, "executor restarted")  # what the reaper does when the lease lapses
    # Re-planned to Chile: exposure 0 is recovered from the journal, only 1 and 2 are taken there.
    second = world.executor("chile")
    done = second.run_job(world.ledger.schedule(job_id, "chile", actor="scheduler"))
    assert done.state == JobState.COMPLETED and done.attempts == 2
    assert second.driver.exposures_taken == 2  # type: ignore[attr-defined]
    assert len(world.lake.frames()) == 3
    assert world.journal.completed_anywhere(command_id(job_id, 0)).site == "lapalma"  # type: ignore[union-attr]


def test_unsafe_site_parks_and_hands_the_job_back(world: World) -> None:
    executor = world.executor("lapalma")
    executor.driver.safe = False  # type: ignore[attr-defined]
    job_id = world.job()
    job = executor.run_job(world.ledger.schedule(job_id, "lapalma", actor="scheduler"))
    assert job.state == JobState.PENDING and job.site is None and "unsafe" in job.history[-1].reason
    assert executor.health.alive and not executor.health.open
    assert executor.driver.status().parked
    refused = [e for e in world.audit.entries(limit=10) if e.policy == "refused"]
    assert refused and refused[0].tool == "executor.expose"


def test_dead_site_is_marked_and_its_job_handed_back(world: World) -> None:
    executor = world.executor("chile")
    job_id = world.job()
    executor.driver.dead = True  # type: ignore[attr-defined]
    job = executor.run_job(world.ledger.schedule(job_id, "chile", actor="scheduler"))
    assert job.state == JobState.PENDING and not executor.health.alive
    assert world.lake.frames() == []
