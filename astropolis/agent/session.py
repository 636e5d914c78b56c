"""An agent session: one thread of one graph over the city's stores, built once from Settings.

    with open_session(settings, thread="night-review") as agent:
        turn = agent.ask("what is pending?")
        print(turn.reply, [c["tool"] for c in turn.calls])

A thread is a LangGraph thread in `$ASTROPOLIS_HOME/agent.db` (SQLite checkpointer, durability "sync"): after a
restart or a kill -9, the same thread carries on from its last completed step, and `resume()` finishes a turn
that was cut short.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astropolis.agent.graph import AgentCore, build_graph
from astropolis.lake import Lake
from astropolis.lake.clock import Clock, SystemClock
from astropolis.memory import AuditLog, Ledger
from astropolis.memory.hypotheses import HypothesisBook
from astropolis.settings import Settings
from astropolis.tools.deps import ToolDeps
from astropolis.tools.dispatch import Dispatcher
from astropolis.tools.policy import Caller, Policy
from astropolis.tools.sites import SiteRegistry, demo_sites
from astropolis.tools.toolbox import TOOLS

THREAD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class SessionError(ValueError):
    """A bad thread name, or a session that cannot start (names what to fix)."""


@dataclass(frozen=True)
class Turn:
    """One answered question: the reply, the tool calls behind it (with their audit seqs), where it came from."""

    turn: int
    question: str
    reply: str
    calls: list[dict[str, Any]]
    route: dict[str, Any] | None
    memories: list[dict[str, Any]] = field(default_factory=list)
    resumed: bool = False


class AgentSession:
    """One thread: ask questions, resume an interrupted turn, read the transcript."""

    def __init__(self, core: AgentCore, checkpointer: Any) -> None:
        self.core = core
        self.graph = build_graph(core, checkpointer)
        self.config = {"configurable": {"thread_id": core.thread}}

    @property
    def state(self) -> dict[str, Any]:
        """The thread's latest checkpointed values."""
        return dict(self.graph.get_state(self.config).values)

    @property
    def interrupted(self) -> bool:
        """True when the last turn stopped before its end (a crash or a kill).

        The live state is not enough: a kill after a step's nodes saved their writes but before the step's
        checkpoint leaves a live view with no next node (the finished nodes drop out of it and their successors
        are only known once the checkpoint is written), as if the turn were over. The checkpoint as recorded
        still lists the step's nodes, and running the thread on from it skips the finished ones."""
        latest = self.graph.get_state(self.config)
        if latest.next:
            return True
        if latest.config is None or not latest.tasks:
            return False
        return bool(self.graph.get_state(latest.config).next)

    @property
    def turns(self) -> int:
        """How many questions this thread has been asked (answered or in progress)."""
        return int(self.state.get("turn", 0))

    def transcript(self) -> list[dict[str, Any]]:
        """Every answered turn: question, reply, tools, audit seqs."""
        return list(self.state.get("transcript") or [])

    def ask(self, question: str, *, on_step: Any = None) -> Turn:
        """Answer one question (finishing an interrupted turn first)."""
        question = " ".join(str(question).split())
        if not question:
            raise SessionError("empty question")
        if len(question) > 2000:
            raise SessionError(f"question of {len(question)} characters; at most 2000")
        if self.interrupted:
            self.resume(on_step=on_step)
        turn = self.turns + 1
        return self._run({"turn": turn, "question": question}, on_step=on_step)

    def resume(self, *, on_step: Any = None) -> Turn | None:
        """Finish a turn that was cut short, from its last checkpoint; None when nothing was pending."""
        if not self.interrupted:
            return None
        result = self._run(None, on_step=on_step)
        return Turn(**{**result.__dict__, "resumed": True})

    def _run(self, payload: dict[str, Any] | None, *, on_step: Any) -> Turn:
        for update in self.graph.stream(payload, self.config, stream_mode="updates", durability="sync"):
            if on_step is not None:
                for node, values in update.items():
                    on_step(node, values or {})
        values = self.state
        return Turn(
            turn=int(values.get("turn", 0)),
            question=str(values.get("question", "")),
            reply=str(values.get("reply", "")),
            calls=list(values.get("calls") or []),
            route=values.get("route"),
            memories=list(values.get("memories") or []),
        )


def open_stores(
    settings: Settings, *, clock: Clock | None = None, sites: SiteRegistry | None = None, memory: Any = "default"
) -> ToolDeps:
    """The tools' handles from Settings (memory: a store, None for none, or "default" for LanceDB in home)."""
    clock = clock or SystemClock()
    settings.home.mkdir(parents=True, exist_ok=True)
    if memory == "default":
        from astropolis.memory.embedding import MiniLMEmbedder
        from astropolis.memory.lance import memory_store

        memory = memory_store(settings.home, MiniLMEmbedder())
    return ToolDeps(
        lake=Lake(settings.lake_dir, catalog_url=settings.url("catalog"), harden=settings.harden_blobs, clock=clock),
        ledger=Ledger(settings.url("ledger"), clock=clock, lease_s=settings.lease_s),
        audit=AuditLog(settings.url("audit"), clock=clock),
        sites=sites or demo_sites(),
        clock=clock,
        memory=memory,
        hypotheses=HypothesisBook(settings.url("ledger"), clock=clock),
    )


@contextmanager
def open_session(
    settings: Settings,
    *,
    thread: str,
    deps: ToolDeps | None = None,
    endpoint: Any = None,
    mode: str | None = None,
    policy: Policy | None = None,
    role: str = "agent",
) -> Iterator[AgentSession]:
    """An agent session on `thread` (checkpoints in $ASTROPOLIS_HOME/agent.db)."""
    if not THREAD.match(thread):
        raise SessionError(f"thread {thread!r}: use 1-64 letters, digits, '.', '_' or '-'")
    deps = deps or open_stores(settings)
    chosen_mode = mode or (endpoint.tool_mode if endpoint is not None else "constrained")
    if chosen_mode == "native" and endpoint is None:
        raise SessionError("native tool mode needs an LLM endpoint (set OPENAI_BASE_URL or use the embedded model)")
    model_id = endpoint.model_id if endpoint is not None else "none (router only)"
    caller = Caller(actor=f"{role}:{thread}", role=role, model_id=model_id, tool_mode=chosen_mode)
    core = AgentCore(Dispatcher(TOOLS, deps, policy), caller, thread, endpoint=endpoint, mode=chosen_mode)
    # Which model, which tool mode and what the start-up probe saw: on the record before the first answer.
    fields = endpoint.audit_fields() if hasattr(endpoint, "audit_fields") else {"llm_model_id": model_id}
    deps.audit.append(
        actor=caller.actor,
        tool="agent.session",
        arguments={"thread": thread, "mode": chosen_mode},
        result=fields,
        model_id=model_id,
        tier="read",
    )
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = Path(settings.home) / "agent.db"
    connection = sqlite3.connect(str(path), check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode survives a kill -9 (the WAL is in the OS cache); a power cut may lose the last step,
    # which then reruns — harmless, since every side effect carries an idempotency key. FULL costs ~5 ms a step.
    connection.execute("PRAGMA synchronous=NORMAL")
    try:
        yield AgentSession(core, SqliteSaver(connection))
    finally:
        connection.close()
