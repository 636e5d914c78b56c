"""kill -9 at random moments of a conversation with side effects, then run again until it is done: the thread
ends where an uninterrupted run ends — the same turns, the same tools, the same jobs, none twice."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from astropolis.agent.session import open_session, open_stores
from astropolis.settings import Settings

WORKER = Path(__file__).parent / "agent_worker.py"


def questions(ids: dict[str, Any]) -> list[str]:
    product = str(ids["transients_product"])[7:19]
    return [
        "what is pending?",
        "observe M77 in B please",
        f"follow up candidate {product}#0 with high priority",
        f"why was frame {str(ids['cloudy'])[7:17]} flagged?",
        "observe the Andromeda galaxy with low priority",
        "what is pending?",
        f"cancel job {ids['follow_up_job']} because not needed",
        "what hypotheses are open?",
    ]


def run(home: Path, script: Path, *, kill_after: float | None = None) -> bool:
    """Run the worker; kill -9 it after `kill_after` seconds. True when it finished the conversation."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent.parent), str(WORKER.parent)])}
    process = subprocess.Popen(
        [sys.executable, str(WORKER), str(home), "night-review", str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    if kill_after is not None:
        try:
            process.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.communicate()
            return False
    out, _ = process.communicate(timeout=600)
    assert process.returncode == 0, out
    return "done" in out


def outcome(home: Path) -> dict[str, Any]:
    settings = Settings(home=home, actor="person:tester")
    deps = open_stores(settings, memory=None)
    with open_session(settings, thread="night-review", deps=deps) as agent:
        transcript = agent.transcript()
        interrupted = agent.interrupted
    jobs = deps.ledger.jobs()
    return {
        "interrupted": interrupted,
        "turns": [(t["turn"], t["question"], t["tools"]) for t in transcript],
        "jobs": sorted((j.idempotency_key, j.request.kind.value, j.state.value) for j in jobs),
        "lake_ok": deps.lake.verify().ok,
        "audit_ok": deps.audit.verify().ok,
    }


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume_matches_an_uninterrupted_run(
    world_template: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    template, ids = world_template
    script = tmp_path / "questions.json"
    script.write_text(json.dumps(questions(ids)))
    calm, killed = tmp_path / "calm", tmp_path / "killed"
    shutil.copytree(template, calm)
    shutil.copytree(template, killed)
    started = time.perf_counter()
    assert run(calm, script)
    duration = time.perf_counter() - started
    rng = random.Random(7)
    kills = 0
    for _ in range(6):
        if run(killed, script, kill_after=rng.uniform(0.3, 1.0) * duration):
            break
        kills += 1
    while not run(killed, script):
        pass
    expected, got = outcome(calm), outcome(killed)
    assert kills >= 3
    assert got == expected
    assert not got["interrupted"] and len(got["turns"]) == len(questions(ids))
    created = [key for key, _, _ in got["jobs"] if key.startswith("agent:")]
    assert len(created) == len(set(created)) == 3  # two observations and one follow-up, none twice
