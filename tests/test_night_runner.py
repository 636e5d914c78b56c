"""The night's event loop against fake sites: jobs flow PENDING → COMPLETED with frames in the lake, clouds
close a site and hand its job back, a dead site's work moves elsewhere, and nothing is observed twice."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from astropolis.lake import Lake
from astropolis.lake.clock import ManualClock
from astropolis.memory import AuditLog, Job, JobState, Ledger, parse_request
from astropolis.tools.drivers import CommandJournal
from astropolis.tools.drivers.fake import FakeDriver
from astropolis.tools.night import Fault, NightRunner, SkyEvent
from astropolis.tools.night_residents import NightResidents
from astropolis.tools.residents import ResidentRunner
from astropolis.tools.scheduler_models import Assignment, SiteState
from astropolis.tools.sites import demo_sites
from astropolis.tools.visibility import target_altitude_deg

START = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
END = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)


class NowPlanner:
    """Test planner: each available site takes the highest-priority job that is above its horizon now."""

    def __init__(self, sites: object) -> None:
        self.sites = sites

    def plan(self, jobs: Sequence[Job], sites: Sequence[SiteState], now: datetime) -> dict[str, list[Assignment]]:
        plan: dict[str, list[Assignment]] = {}
        taken: set[int] = set()
        for state in sites:
            if not state.available:
                continue
            site = self.sites.get(state.name)  # type: ignore[attr-defined]
            for job in sorted(jobs, key=lambda j: (-j.request.priority, j.id)):
                target = job.request.target
                allowed = job.request.constraints.sites
                if job.id in taken or target is None or (allowed and state.name not in allowed):
                    continue
                if job.request.window.start > state.free_from:
                    continue
                if target_altitude_deg(site, target.ra_deg, target.dec_deg, state.free_from) >= site.horizon_deg:
                    taken.add(job.id)
                    plan[state.name] = [Assignment(
                        job_id=job.id, site=state.name, lane=job.request.lane, priority=job.request.priority,
                        setup_s=10.0, start=state.free_from + timedelta(seconds=10),
                        end=state.free_from + timedelta(minutes=2),
                    )]
                    break
        return plan


def build(
    tmp_path: Path, faults: Sequence[Fault] = (), *, residents: bool = False, sky: Sequence[SkyEvent] = ()
) -> tuple[NightRunner, Ledger, Lake, dict[str, FakeDriver]]:
    clock = ManualClock(START)
    lake = Lake(tmp_path / "lake", clock=clock)
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", clock=clock)
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}", clock=clock)
    journal = CommandJournal(f"sqlite:///{tmp_path / 'commands.db'}", clock=clock)
    registry = demo_sites("fake")
    sites = registry.sites[:2]  # La Palma and Chile share the dark hours 01:00-05:00 UTC
    drivers = {s.name: FakeDriver(s, journal=journal, frames=lake.blobs, clock=clock) for s in sites}
    for driver in drivers.values():
        driver.connect()

    class Controls:
        def set_safe(self, site: str, safe: bool) -> None:
            drivers[site].safe = safe

        def set_cloud_cover(self, site: str, percent: float) -> None:
            drivers[site].cloud_cover_pct = percent

        def kill(self, site: str) -> None:
            drivers[site].dead = True

        def add_source(self, ra_deg: float, dec_deg: float, mag: float, label: str) -> None:
            for driver in drivers.values():
                driver.new_sources.append((ra_deg, dec_deg, mag))

    runner = NightRunner(
        sites=registry, drivers=drivers, lake=lake, ledger=ledger, audit=audit, clock=clock,
        planner=NowPlanner(registry), nights={s.name: (START, END) for s in sites}, controls=Controls(),
        faults=faults, sky_events=sky,
        residents=NightResidents(ResidentRunner(lake, ledger=ledger, audit=audit, clock=clock, sites=registry))
        if residents
        else None,
    )
    for index, (ra, dec) in enumerate([(70.4, -2.9), (60.0, -10.0), (80.0, 5.0), (50.0, -20.0)]):
        ledger.submit(parse_request({
            "kind": "observe", "target": {"name": f"field-{index}", "ra_deg": ra, "dec_deg": dec},
            "window": {"start": START.isoformat(), "end": END.isoformat()},
            "exposure": {"filter": "R", "exposure_s": 10, "count": 2}, "priority": 50 + index,
            "reason": "test night", "origin": {"kind": "night", "ref": "test"},
        }), actor="night:test")
    return runner, ledger, lake, drivers


def test_a_quiet_night_completes_every_job(tmp_path: Path) -> None:
    runner, ledger, lake, _ = build(tmp_path)
    runner.run()
    jobs = ledger.jobs()
    assert [j.state for j in jobs] == [JobState.COMPLETED] * 4
    assert len(lake.frames()) == 8
    assert {j.site for j in jobs} == {"lapalma", "chile"}  # both sites worked
    report = runner.report()
    assert report["totals"]["completed"] == 4 and report["totals"]["frames"] == 8
    frame_times = sorted(f.observed_at for f in lake.frames() if f.observed_at)
    assert frame_times[0] >= START and frame_times[-1] < END


def test_clouds_close_a_site_and_it_reopens(tmp_path: Path) -> None:
    faults = [Fault(START, "chile", "clouds", 90.0), Fault(START + timedelta(hours=1), "chile", "clear")]
    runner, ledger, _, _ = build(tmp_path, faults)
    runner.run()
    kinds = [(e.site, e.kind) for e in runner.events]
    assert ("chile", "closed") in kinds and ("chile", "reopened") in kinds
    closed_at = next(e.at for e in runner.events if e.site == "chile" and e.kind == "closed")
    reopened_at = next(e.at for e in runner.events if e.site == "chile" and e.kind == "reopened")
    assert reopened_at >= START + timedelta(hours=1) > closed_at
    assert all(j.state == JobState.COMPLETED for j in ledger.jobs())


def test_a_dead_site_hands_its_job_to_the_other_site(tmp_path: Path) -> None:
    faults = [Fault(START + timedelta(seconds=15), "lapalma", "kill")]
    runner, ledger, lake, drivers = build(tmp_path, faults)
    runner.run()
    report = runner.report()
    lapalma = next(s for s in report["sites"] if s["name"] == "lapalma")
    assert lapalma["alive"] is False
    jobs = ledger.jobs()
    assert all(j.state == JobState.COMPLETED for j in jobs)
    moved = [j for j in jobs if j.attempts == 2]
    assert moved and all(j.site == "chile" for j in moved)
    # Exposures completed at La Palma before it died were not taken again at Chile.
    total_taken = sum(d.exposures_taken for d in drivers.values())
    assert total_taken == len(lake.frames()) == 8


def test_residents_find_a_new_star_and_another_site_follows_it_up(tmp_path: Path) -> None:
    """The whole loop: frame -> quality and transients products -> observe job -> follow-up frame elsewhere."""
    ra, dec = 70.4 + 40 / 3600, -2.9 + 25 / 3600  # 47" from field-0's centre
    sky = [SkyEvent(START + timedelta(hours=1), ra, dec, -8.5, "SN test")]  # unsaturated in 30 s
    runner, ledger, lake, _ = build(tmp_path, residents=True, sky=sky)
    ledger.submit(parse_request({
        "kind": "observe", "target": {"name": "field-0", "ra_deg": 70.4, "dec_deg": -2.9},
        "window": {"start": (START + timedelta(hours=1.5)).isoformat(), "end": END.isoformat()},
        "exposure": {"filter": "R", "exposure_s": 10, "count": 2}, "priority": 50,
        "reason": "test night, epoch 2", "origin": {"kind": "night", "ref": "test"},
    }), actor="night:test")
    runner.run()
    report = runner.report()
    # Every frame was graded; each second-epoch frame was compared with the field's first good epoch.
    assert report["residents"]["quality"] == report["totals"]["frames"] == report["residents"]["anomaly"]
    assert report["residents"]["transients"] >= 2
    follow = [row for row in report["follow_ups"] if row["resident"] == "transients"]
    assert len(follow) == 1, report["follow_ups"]  # one follow-up per source, not one per frame
    row = follow[0]
    assert row["kind"] == "observe" and row["state"] == "COMPLETED"
    assert row["follow_up_site"] != row["frame_site"] and row["follow_up_frames"]
    assert abs(row["target"]["ra_deg"] - ra) * 3600 < 3 and abs(row["target"]["dec_deg"] - dec) * 3600 < 3
    assert row["product"][:19] in row["reason"]
    # The product records its inputs: the new frame and the field's reference from before the star appeared.
    product = lake.product(row["product"])
    new, reference = (lake.frame(i) for i in product.inputs)
    assert new.observed_at is not None and reference.observed_at is not None
    assert reference.observed_at < START + timedelta(hours=1) < new.observed_at
    # The follow-up frame, from the other site, shows the star against the same reference.
    follow_frame = lake.frame(row["follow_up_frames"][0])
    assert follow_frame.site == row["follow_up_site"] and follow_frame.observed_at is not None
    assert follow_frame.observed_at > new.observed_at
    assert runner.residents is not None
    check = runner.residents.runner.run("transients", [follow_frame.id, reference.id], file_jobs=False)
    found = [c for c in check.product.output["candidates"] if c["real"]]
    assert any(abs(c["ra_deg"] - ra) * 3600 < 3 and abs(c["dec_deg"] - dec) * 3600 < 3 for c in found), found
    assert row["frame_site"] not in ledger.get(row["job"]).request.constraints.sites
    # The night ran the same comparison on its own and reports the follow-up as confirmed.
    assert row["confirmation"]["verdict"] == "confirmed" and row["confirmation"]["compared"] >= 1, row["confirmation"]
