"""`astropolis night` end to end: the demo night on fake sites (fast) and on real Alpaca simulators (slow)."""

from __future__ import annotations

import json
import socket
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from astropolis.agent.cli import app
from astropolis.lake import Lake
from astropolis.lake.clock import ManualClock
from astropolis.memory import AuditLog, JobState, Ledger
from astropolis.tools.deps import ToolDeps
from astropolis.tools.recall_tools import NightInput, summarize_night
from astropolis.tools.sites import demo_sites

runner = CliRunner()


def night(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, ["night", "--date", "2026-11-25", "--json", *args])
    assert result.exit_code == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_demo_night_on_fake_sites_follows_the_dark_and_survives_a_rerun(home: Path) -> None:
    report = night("--backend", "fake", "--exposure", "2")
    totals = report["totals"]
    assert totals["jobs"] >= 10 and totals["completed"] == totals["jobs"]
    assert totals["frames"] == sum(len(row["frames"]) for row in report["jobs"])
    worked = {row["site"] for row in report["jobs"] if row["state"] == "COMPLETED"}
    assert worked == {"lapalma", "chile", "siding-spring"}  # the second epoch goes where it is dark later
    # The residents graded every frame, and the supernova that appears in M77 was found on the second epoch
    # and followed up from another site: frame -> product -> job -> follow-up frames.
    assert report["residents"]["quality"] == report["residents"]["anomaly"] == totals["frames"]
    (loop,) = [row for row in report["follow_ups"] if row["resident"] == "transients"]
    assert loop["kind"] == "observe" and loop["lane"] == "rapid" and loop["state"] == "COMPLETED"
    assert loop["follow_up_site"] != loop["frame_site"] and len(loop["follow_up_frames"]) == 3
    # ... and the follow-up frames, each against the field's reference, called it real again.
    assert loop["confirmation"]["verdict"] == "confirmed" and loop["confirmation"]["real"] >= 2, loop["confirmation"]
    assert abs(loop["target"]["ra_deg"] - 40.67541) < 2 / 3600 and abs(loop["target"]["dec_deg"] + 0.01052) < 2 / 3600
    sky_at = next(e["at"] for e in report["events"] if e["kind"] == "sky")
    assert loop["frame_at"] > sky_at
    kinds = [(e["site"], e["kind"]) for e in report["events"]]
    assert ("chile", "fault") in kinds and ("chile", "reopened") in kinds
    # Every frame was taken at its site's night, and is in the lake with its job's target.
    with Lake(home / "lake") as lake:
        frames = lake.frames()
        assert len(frames) == totals["frames"] and lake.verify().ok
    sites = {row["name"]: row for row in report["sites"]}
    for frame in frames:
        assert sites[frame.site]["dusk"] <= frame.observed_at.isoformat() <= sites[frame.site]["dawn"]
    # The agent's account of the night says the same: the follow-up was confirmed.
    with Lake(home / "lake") as lake:
        clock = ManualClock(datetime.fromisoformat(report["end"]))
        deps = ToolDeps(
            lake,
            Ledger(f"sqlite:///{home / 'ledger.db'}"),
            AuditLog(f"sqlite:///{home / 'audit.db'}"),
            demo_sites("fake"),
            clock=clock,
        )
        summary = summarize_night(deps, NightInput(hours=30))
    (line,) = [f for f in summary.follow_ups if f.startswith(f"job {loop['job']} ")]
    assert "COMPLETED at " in line and "; confirmed: real in" in line, line
    shown = runner.invoke(app, ["jobs", "show", str(loop["job"]), "--json"])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["confirmation"]["verdict"] == "confirmed", shown.stdout
    planned = runner.invoke(app, ["jobs", "show", "1", "--json"])  # not a follow-up: no verdict
    assert planned.exit_code == 0 and "confirmation" not in json.loads(planned.stdout)
    # Running the same night again submits nothing new and takes no new exposure.
    again = night("--backend", "fake", "--exposure", "2")
    assert again["totals"]["jobs"] == totals["jobs"] and not [e for e in again["events"] if e["kind"] == "frame"]
    with Lake(home / "lake") as lake:
        assert len(lake.frames()) == totals["frames"]


def test_a_dead_site_is_reported_and_its_jobs_move(home: Path) -> None:
    report = night("--backend", "fake", "--no-demo-faults", "--fault", "lapalma:kill@+0.02h")
    lapalma = next(s for s in report["sites"] if s["name"] == "lapalma")
    assert lapalma["alive"] is False and "no answer" in lapalma["closed_reason"]
    killed_at = next(e["at"] for e in report["events"] if e["kind"] == "fault")
    ledger = Ledger(f"sqlite:///{home / 'ledger.db'}")
    jobs = ledger.jobs()
    # Nothing ran at La Palma after it died; first-epoch work it would have done moved to Chile.
    assert all(j.history[-1].at.isoformat() <= killed_at for j in jobs if j.site == "lapalma")
    moved = [j for j in jobs if j.site == "chile" and "epoch 1" in j.request.reason]
    assert moved and all(j.state == JobState.COMPLETED for j in moved)


def test_bad_night_options(home: Path) -> None:
    assert runner.invoke(app, ["night", "--agent"]).exit_code == 2
    assert "not a date" in runner.invoke(app, ["night", "--date", "tomorrow"]).stderr
    assert "fault" in runner.invoke(app, ["night", "--backend", "fake", "--fault", "chile:storm"]).stderr


def _free_base_port() -> int:
    for base in range(23100, 24000, 10):
        ports = []
        for offset in range(3):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", base + offset)) == 0:
                    break
                ports.append(base + offset)
        if len(ports) == 3:
            return base
    raise RuntimeError("no free ports")


@pytest.mark.slow
def test_demo_night_on_real_alpaca_simulators(home: Path) -> None:
    report = night("--backend", "alpaca", "--exposure", "0.5", "--base-port", str(_free_base_port()))
    totals = report["totals"]
    planned = [row for row in report["jobs"] if row["id"] <= 15]  # the demo's two epochs of 12 galaxies
    assert len(planned) == 15 and all(row["state"] == "COMPLETED" for row in planned)
    assert totals["failed"] == 0 and totals["frames"] == sum(len(row["frames"]) for row in report["jobs"])
    # The supernova in M77 was found on a real simulator frame and followed up from another site.
    (loop,) = [row for row in report["follow_ups"] if row["resident"] == "transients"]
    assert loop["state"] == "COMPLETED" and loop["follow_up_site"] != loop["frame_site"] and loop["follow_up_frames"]
    assert loop["confirmation"]["verdict"] == "confirmed", loop["confirmation"]  # seen again from the other site
    assert abs(loop["target"]["ra_deg"] - 40.67541) < 3 / 3600 and abs(loop["target"]["dec_deg"] + 0.01052) < 3 / 3600
    with Lake(home / "lake") as lake:
        frames = lake.frames()
        assert {f.site for f in frames} == {"lapalma", "chile", "siding-spring"}
        assert all(f.width == 512 and f.pointing_source == "WCS" for f in frames)
        assert lake.verify().ok
    from astropolis.tools.simulators.alpaca import AlpacaSimulators

    simulators = AlpacaSimulators(home)  # the night started them, so the night stopped them
    assert not any(simulators.alive(record) for record in simulators.records().values())
