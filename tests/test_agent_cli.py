"""`astropolis ask / chat / agent / memory` end to end on a copy of the simulated city, with the real LanceDB
memory and the router alone (--llm none)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from astropolis.agent.cli import app

runner = CliRunner()


@pytest.fixture
def city(world_template: tuple[Path, dict[str, Any]], home: Path) -> dict[str, Any]:
    template, ids = world_template
    shutil.copytree(template, home)
    return ids


def run_json(*args: str, code: int = 0) -> Any:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == code, f"{args} -> {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)


def test_ask_answers_from_the_stores_and_shows_its_tools(city: dict[str, Any]) -> None:
    out = run_json("ask", f"why was frame {str(city['cloudy'])[7:17]} flagged?", "--llm", "none")
    (turn,) = out["turns"]
    assert turn["mode"] == "constrained" and turn["route"]["source"] == "router"
    (call,) = turn["tools"]
    assert call["tool"] == "explain_frame" and call["policy"] == "allowed" and call["tier"] == "read"
    assert "It was flagged." in turn["reply"]
    entry = run_json("audit", "show", str(call["audit_seq"]))["entry"]
    assert entry["tool"] == "tool.explain_frame" and entry["actor"] == "agent:default"
    text = runner.invoke(app, ["ask", "what is pending?", "--llm", "none"])
    assert text.exit_code == 0 and "→ list_jobs(" in text.stdout and "[read, ok, audit #" in text.stdout


def test_chat_keeps_a_thread_across_processes(city: dict[str, Any]) -> None:
    first = runner.invoke(app, ["chat", "--thread", "review", "--llm", "none"], input="what is pending?\nexit\n")
    assert first.exit_code == 0 and "0 earlier turn(s)" in first.stdout and "2 PENDING" in first.stdout
    second = runner.invoke(app, ["chat", "--thread", "review", "--llm", "none"], input="what hypotheses are open?\n")
    assert second.exit_code == 0 and "1 earlier turn(s)" in second.stdout
    history = run_json("agent", "history", "--thread", "review")
    assert [t["question"] for t in history["turns"]] == ["what is pending?", "what hypotheses are open?"]
    assert history["interrupted"] is False


def test_notes_from_people_are_found_by_meaning_and_used_by_the_agent(city: dict[str, Any]) -> None:
    noted = run_json("memory", "note", "Dome 2 shutter sticks when it is below 5 C", "--ref", "job:1")
    assert noted["memory"]["kind"] == "note" and noted["memory"]["refs"] == ["job:1"]
    hits = run_json("memory", "search", "problems with the shutter")["hits"]
    assert "shutter" in hits[0]["memory"]["text"]
    out = run_json("ask", "do we have notes about the dome shutter?", "--llm", "none")
    assert "Dome 2 shutter" in out["turns"][0]["reply"]
    assert run_json("audit", "list")["entries"][0]["tool"] != "memory.note"  # the ask was audited after the note


def test_bad_input_exits_2_with_one_line(city: dict[str, Any]) -> None:
    bad_thread = runner.invoke(app, ["ask", "hi", "--thread", "../x", "--llm", "none"])
    assert bad_thread.exit_code == 2 and "thread" in bad_thread.stderr
    assert run_json("ask", "   ", "--llm", "none", code=2)["error"]["message"] == "empty question"
    assert runner.invoke(app, ["ask", "hi", "--llm", "gpt"]).exit_code == 2


def test_agent_tools_lists_every_tool_with_its_tier() -> None:
    tools = {t["name"]: t for t in run_json("agent", "tools")["tools"]}
    assert tools["list_jobs"]["tier"] == "read" and tools["propose_observation"]["tier"] == "propose"
    assert all(t["schema_hash"].startswith("sha256:") for t in tools.values())
