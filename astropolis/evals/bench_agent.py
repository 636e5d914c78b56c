"""Agent framework overhead per graph step, without any LLM: `python -m astropolis.evals.bench_agent [--json]`.

Three figures, all in one process on the same machine:
- a LangGraph of five no-op nodes with no checkpointer, an in-memory one, and SQLite (durability "sync", WAL,
  synchronous=NORMAL as the agent uses it, and FULL for comparison): the cost LangGraph itself adds per step;
- a whole constrained agent turn ("show me job 1": recall, decide, act, respond, remember) on real SQLite stores
  with memory off, minus the time of its one tool call as the dispatcher measured it (the tool's own work, which
  is the ledger and audit log, not framework): the framework's share per step.
Target (issue 5): at most 5 ms per step with the SQLite checkpointer.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypedDict

STEPS = 5


class _State(TypedDict, total=False):
    n: int


def _noop_graph(checkpointer: Any) -> Any:
    from langgraph.graph import END, START, StateGraph

    graph = StateGraph(_State)
    names = [f"n{i}" for i in range(STEPS)]
    for name in names:
        graph.add_node(name, lambda state: {"n": state.get("n", 0) + 1})
    graph.add_edge(START, names[0])
    for a, b in itertools.pairwise(names):
        graph.add_edge(a, b)
    graph.add_edge(names[-1], END)
    return graph.compile(checkpointer=checkpointer)


def _sqlite_saver(path: Path, synchronous: str = "NORMAL") -> Any:
    from langgraph.checkpoint.sqlite import SqliteSaver

    connection = sqlite3.connect(str(path), check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    return SqliteSaver(connection)


def bench_noop(root: Path, runs: int) -> dict[str, float]:
    """Median ms per step of a 5-node no-op graph under each checkpointer."""
    from langgraph.checkpoint.memory import InMemorySaver

    out: dict[str, float] = {}
    savers = (
        ("none", None),
        ("memory", InMemorySaver()),
        ("sqlite WAL synchronous=NORMAL (the agent's)", _sqlite_saver(root / "normal.db")),
        ("sqlite WAL synchronous=FULL", _sqlite_saver(root / "full.db", "FULL")),
    )
    for label, saver in savers:
        graph = _noop_graph(saver)
        times = []
        for run in range(runs):
            config = {"configurable": {"thread_id": f"t{run % 10}"}}
            started = time.perf_counter()
            graph.invoke({"n": 0}, config, durability="sync") if saver is not None else graph.invoke({"n": 0})
            times.append(time.perf_counter() - started)
        out[label] = round(statistics.median(times[3:]) * 1000.0 / STEPS, 3)
    return out


def bench_turn(root: Path, runs: int) -> dict[str, float]:
    """A whole agent turn on real SQLite stores, memory off: ms per step, with and without the tool's own time."""
    from astropolis.agent.session import open_session, open_stores
    from astropolis.lake.clock import ManualClock
    from astropolis.memory import parse_request
    from astropolis.settings import Settings

    settings = Settings(home=root / "home", actor="person:bench")
    clock = ManualClock(datetime(2026, 11, 25, 21, tzinfo=UTC))
    deps = open_stores(settings, clock=clock, memory=None)
    now = clock.now()
    deps.ledger.submit(
        parse_request(
            {
                "kind": "observe",
                "target": {"name": "M77", "ra_deg": 40.67, "dec_deg": -0.01},
                "window": {"start": now.isoformat(), "end": (now + timedelta(hours=8)).isoformat()},
                "exposure": {"filter": "R", "exposure_s": 60, "count": 1},
                "reason": "bench",
                "origin": {"kind": "person", "ref": "bench"},
            }
        ),
        actor="person:bench",
    )
    totals, tools = [], []
    with open_session(settings, thread="bench", deps=deps) as agent:
        for _ in range(runs):
            started = time.perf_counter()
            turn = agent.ask("show me job 1")
            totals.append(time.perf_counter() - started)
            tools.append(sum(c["duration_ms"] for c in turn.calls) / 1000.0)
    total = statistics.median(totals[3:])
    framework = statistics.median([t - u for t, u in zip(totals[3:], tools[3:], strict=True)])
    return {
        "turn_ms": round(total * 1000.0, 3),
        "tool_ms": round(statistics.median(tools[3:]) * 1000.0, 3),
        "framework_ms_per_step": round(framework * 1000.0 / STEPS, 3),
        "turns": runs,
    }


def main() -> None:
    """Run both benches and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        noop = bench_noop(root, args.runs)
        turn = bench_turn(root, args.runs)
    report = {"noop_graph_ms_per_step": noop, "agent_turn": turn, "target_ms_per_step": 5.0}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"5-node no-op graph, ms per step (median of {args.runs - 3}): "
        + ", ".join(f"{k} checkpointer {v}" for k, v in noop.items())
    )
    print(
        f"agent turn 'show me job 1' (constrained, SQLite checkpointer, memory off): {turn['turn_ms']} ms, of "
        f"which the tool call {turn['tool_ms']} ms; framework {turn['framework_ms_per_step']} ms per step "
        f"(target <= 5 ms)"
    )


if __name__ == "__main__":
    main()
