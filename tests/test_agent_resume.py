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


def run(home: Path, script: Path, *, kill_after_answer: float | None = None) -> bool:
    """Run the worker; with `kill_after_answer`, kill -9 it that many seconds after its first new answer (so it
    dies mid-turn or between turns, never before doing anything). True when it finished the conversation."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent.parent), str(WORKER.parent)])}
    process = subprocess.Popen(
        [sys.executable, str(WORKER), str(home), "night-review", str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if kill_after_answer is not None and line.startswith("answered"):
            time.sleep(kill_after_answer)
            os.kill(process.pid, signal.SIGKILL)
            break
    rest, _ = process.communicate(timeout=600)
    out = "".join(lines) + (rest or "")
    if kill_after_answer is not None and process.returncode == -signal.SIGKILL:
        return False
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
    assert run(calm, script)
    rng = random.Random(7)
    kills = 0
    for _ in range(3):  # each run answers at least one more question, then dies 0-0.5 s later
        if run(killed, script, kill_after_answer=rng.uniform(0.0, 0.5)):
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
