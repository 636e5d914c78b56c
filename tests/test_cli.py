"""The CLI end to end: JSON output, one-line errors with exit status 2, audited writes, verify exit status 1."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import M13, write_frame
from typer.testing import CliRunner

from astropolis.agent.cli import app

runner = CliRunner()


def run(*args: str, code: int = 0) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, f"{args} -> {result.exit_code}\nstdout:{result.stdout}\nstderr:{result.stderr}"
    return result


def run_json(*args: str, code: int = 0) -> Any:
    return json.loads(run(*args, "--json", code=code).stdout)


def test_ingest_list_show_cat_provenance(home: Path, tmp_path: Path) -> None:
    paths = [str(write_frame(tmp_path / f"{i}.fits", seed=i, site=s)) for i, s in enumerate(["lapalma", "chile"])]
    out = run_json("lake", "ingest", *paths, str(M13), "--site", "lapalma")
    assert [item["created"] for item in out["ingested"]] == [True, True, True] and out["failed"] == []
    m13_id = out["ingested"][2]["frame"]["id"]
    again = run_json("lake", "ingest", str(M13), "--site", "lapalma")
    assert again["ingested"][0]["created"] is False
    frames = run_json("lake", "list", "--cone", "250.42,36.46,0.1")["frames"]
    assert [f["id"] for f in frames] == [m13_id]
    assert len(run_json("lake", "list", "--site", "lapalma")["frames"]) == 3
    shown = run_json("lake", "show", m13_id[:14])
    assert shown["frame"]["width"] == 300 and shown["object"]["kind"] == "frame" and shown["products"] == []
    header = run_json("lake", "show", m13_id, "--header")["header"]
    assert "CRVAL1  =             250.4226" in header
    assert runner.invoke(app, ["lake", "cat", m13_id]).stdout_bytes == M13.read_bytes()
    provenance = run_json("lake", "provenance", m13_id)
    assert provenance["ancestors"] == [] and provenance["derived"] == []
    human = run("lake", "list")
    assert "skyview" not in human.stdout and m13_id[:19] in human.stdout


def test_bad_input_one_line_error_exit_2_nothing_left(home: Path, tmp_path: Path) -> None:
    notfits = tmp_path / "log.txt"
    notfits.write_text("not a frame\n" * 400)
    trunc = tmp_path / "trunc.fits"
    trunc.write_bytes(M13.read_bytes()[:10000])
    nosite = write_frame(tmp_path / "nosite.fits", site=None)
    for path, message in [
        (notfits, "not a FITS file"),
        (trunc, "truncated FITS"),
        (nosite, "missing TELESCOP/OBSERVAT"),
        (tmp_path / "absent.fits", "no such file"),
    ]:
        result = run("lake", "ingest", str(path), code=2)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0] and message in lines[0], result.stderr
    assert run_json("lake", "list")["frames"] == []
    assert list((home / "lake" / "objects" / "sha256").iterdir()) == []
    assert list((home / "lake" / "tmp").iterdir()) == []
    error = run_json("lake", "show", "abcdef", code=2)["error"]
    assert error["type"] == "ObjectNotFound" and "abcdef" in error["message"]
    assert "not an object id" in run("lake", "show", "xyz!", code=2).stderr
    assert "RA,DEC,RADIUS" in run("lake", "list", "--cone", "1,2", code=2).stderr
    assert "no timezone" in run("lake", "list", "--since", "2026-11-25T10:00", code=2).stderr


def test_batch_ingest_continues_past_a_bad_file(home: Path, tmp_path: Path) -> None:
    good = [str(write_frame(tmp_path / f"g{i}.fits", seed=i)) for i in range(3)]
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"SIMPLE  =                    T" + b" " * 50)
    out = run_json("lake", "ingest", good[0], str(bad), *good[1:], code=2)
    assert len(out["ingested"]) == 3 and [f["path"] for f in out["failed"]] == [str(bad)]


M13_JOB = (
    *("jobs", "submit", "--ra", "16:41:41.6", "--dec", "+36:27:41", "--name", "M13"),
    *("--reason", "cluster monitoring", "--priority", "70", "--filter", "R", "--exposure", "30"),
    *("--start", "2030-01-01T00:00:00Z", "--hours", "8"),
)


def test_jobs_lifecycle_and_errors(home: Path) -> None:
    submitted = run_json(*M13_JOB)
    job = submitted["job"]
    assert submitted["created"] and job["state"] == "PENDING" and job["priority"] == 70
    assert job["request"]["target"]["ra_deg"] == pytest.approx(250.42333, abs=1e-4)
    again = run_json(*M13_JOB)
    assert not again["created"] and again["job"]["id"] == job["id"]
    assert [j["id"] for j in run_json("jobs", "list", "--state", "pending")["jobs"]] == [job["id"]]
    canceled = run_json("jobs", "cancel", str(job["id"]), "--reason", "clouds all week")["job"]
    assert canceled["state"] == "CANCELED" and canceled["history"][-1]["reason"] == "clouds all week"
    illegal = run("jobs", "cancel", str(job["id"]), code=2)
    assert "is CANCELED; it cannot become CANCELED" in illegal.stderr
    assert "no such job" in run("jobs", "show", "404", code=2).stderr
    assert "needs a target" in run("jobs", "submit", "--reason", "x", code=2).stderr
    assert "--reason is required" in run("jobs", "submit", "--ra", "1", "--dec", "2", code=2).stderr
    assert "not an angle" in run("jobs", "submit", "--ra", "north", "--dec", "2", "--reason", "x", code=2).stderr
    assert "states are" in run("jobs", "list", "--state", "LOST", code=2).stderr


def test_jobs_submit_from_json(home: Path, tmp_path: Path) -> None:
    request = {
        "kind": "observe",
        "target": {"ra_deg": 10.68, "dec_deg": 41.27, "name": "M31"},
        "window": {"start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z"},
        "reason": "from a script",
        "origin": {"kind": "person", "ref": "script"},
        "idempotency_key": "m31-1",
    }
    path = tmp_path / "req.json"
    path.write_text(json.dumps(request))
    job = run_json("jobs", "submit", "--from-json", str(path))["job"]
    assert job["idempotency_key"] == "m31-1"
    path.write_text("{not json")
    assert "--from-json" in run("jobs", "submit", "--from-json", str(path), code=2).stderr


def test_every_write_is_audited_and_verifiable(home: Path, tmp_path: Path) -> None:
    frame = write_frame(tmp_path / "a.fits")
    run("lake", "ingest", str(frame))
    run("lake", "ingest", str(tmp_path / "missing.fits"), code=2)
    job_id = run_json(
        "jobs", "submit", "--ra", "10", "--dec", "20", "--reason", "r", "--start", "2030-01-01T00:00:00Z"
    )["job"]["id"]
    run("jobs", "cancel", str(job_id))
    run("jobs", "reap")
    run("lake", "list")  # reads are not audited
    entries = run_json("audit", "list")["entries"]
    assert [e["tool"] for e in entries] == [
        "cli.jobs.reap",
        "cli.jobs.cancel",
        "cli.jobs.submit",
        "cli.lake.ingest",
        "cli.lake.ingest",
    ]
    assert all(e["actor"] == "person:tester" and e["schema_hash"].startswith("sha256:") for e in entries)
    assert entries[3]["error"] is not None and entries[4]["result"]["created"] is True
    assert run_json("audit", "show", "2")["entry"]["seq"] == 2
    head = run_json("audit", "head")
    assert head["seq"] == 5
    assert run_json("audit", "verify", "--head", head["hash"])["ok"]
    assert run("audit", "head").stdout.strip() == head["hash"]
    with sqlite3.connect(home / "audit.db") as connection:
        connection.execute("DROP TRIGGER audit_log_no_update")
        connection.execute("UPDATE audit_log SET body = replace(body, 'person:tester', 'person:nobody') WHERE seq = 3")
    report = run_json("audit", "verify", code=1)
    assert report["first_bad_seq"] == 3
    assert "FAILED at seq 3" in run("audit", "verify", code=1).stdout


def test_lake_verify_exit_status_names_corrupt_ids(home: Path, tmp_path: Path) -> None:
    ids = [
        run_json("lake", "ingest", str(write_frame(tmp_path / f"{i}.fits", seed=i)))["ingested"][0]["frame"]["id"]
        for i in range(3)
    ]
    assert run_json("lake", "verify")["ok"]
    hexdigest = ids[1][7:]
    blob = home / "lake" / "objects" / "sha256" / hexdigest[:2] / hexdigest[2:4] / hexdigest
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0x01
    blob.write_bytes(bytes(data))
    report = run_json("lake", "verify", code=1)
    assert report["corrupt"] == [ids[1]]
    assert f"corrupt {ids[1]}" in run("lake", "verify", code=1).stdout
    assert "is corrupt" in run("lake", "cat", ids[1], code=2).stderr
    sampled = runner.invoke(app, ["lake", "verify", "--sample", "0.5", "--seed", "3", "--json"])
    report = json.loads(sampled.stdout)
    assert report["mode"] == "sample" and report["objects_checked"] == 2 and report["seed"] == 3
    assert sampled.exit_code == (1 if ids[1] in report["corrupt"] else 0)
    assert "fraction" in run("lake", "verify", "--sample", "2", code=2).stderr


def test_demo_runs_from_a_clean_home(home: Path) -> None:
    result = run("demo", "--no-preview")
    assert "lake verify (full)" in result.stdout and "OK" in result.stdout
    out = run_json("demo")
    assert out["frame"]["width"] == 300 and out["lake_verify"]["corrupt"] == [] and out["audit_verify"]["ok"]


@pytest.mark.slow
def test_console_script_in_a_real_process(home: Path, tmp_path: Path) -> None:
    env = {**os.environ, "ASTROPOLIS_HOME": str(home)}
    command = [sys.executable, "-m", "astropolis", "lake", "ingest", str(M13), "--site", "dss", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ingested"][0]["frame"]["height"] == 300
    bad = subprocess.run(
        [sys.executable, "-m", "astropolis", "lake", "ingest", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "is a directory" in bad.stderr
