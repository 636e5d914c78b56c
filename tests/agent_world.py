"""A small, real city for agent tests: simulated frames in a real lake, real resident products (a cloudy frame
graded by quality, a supernova found by transients), jobs in a real ledger, memories, a hypothesis."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path

from astropolis.evals.agent_city import build_city
from astropolis.lake import Lake
from astropolis.lake.clock import ManualClock
from astropolis.memory import AuditLog, Ledger, parse_request
from astropolis.memory.hypotheses import HypothesisBook
from astropolis.memory.semantic import InMemoryStore
from astropolis.tools.deps import ToolDeps
from astropolis.tools.sites import demo_sites


@cache
def embedder():  # type: ignore[no-untyped-def]
    """The real MiniLM embedder, loaded once per test session."""
    from astropolis.memory.embedding import MiniLMEmbedder

    return MiniLMEmbedder()


@dataclass
class World:
    """The stores and the ids the tests ask about."""

    deps: ToolDeps
    clock: ManualClock
    reference: str
    new: str
    cloudy: str
    quality_product: str
    transients_product: str
    reobserve_job: int
    follow_up_job: int


def build_world(root: Path) -> dict[str, object]:
    """The evaluation city (astropolis/evals/agent_city.py) built under `root`; returns its ids."""
    return build_city(root)


def open_world(template: Path, ids: dict[str, object], root: Path, *, memory: bool = True) -> World:
    """A private copy of a built world, opened (each test gets its own stores)."""
    import shutil

    shutil.copytree(template, root, dirs_exist_ok=True)
    lake_clock = ManualClock(ids["now"])  # type: ignore[arg-type]
    lake = Lake(root / "lake", clock=lake_clock)
    ledger = Ledger(f"sqlite:///{root / 'ledger.db'}", clock=lake_clock)
    audit = AuditLog(f"sqlite:///{root / 'audit.db'}", clock=lake_clock)
    store = InMemoryStore(embedder()) if memory else None
    if store is not None:
        now = lake_clock.now()
        store.remember(
            "note",
            "Clouds over Cerro Pachon most evenings this week; prefer La Palma for M77.",
            actor="person:ana",
            created_at=now,
        )
        store.remember(
            "episode",
            "Night of 2026-11-24: NGC 253 monitoring completed at Siding Spring, 6 frames.",
            actor="night:demo",
            created_at=now,
        )
    book = HypothesisBook(f"sqlite:///{root / 'ledger.db'}", clock=lake_clock)
    deps = ToolDeps(
        lake=lake, ledger=ledger, audit=audit, sites=demo_sites("fake"), clock=lake_clock, memory=store, hypotheses=book
    )
    return World(
        deps=deps,
        clock=lake_clock,
        reference=str(ids["reference"]),
        new=str(ids["new"]),
        cloudy=str(ids["cloudy"]),
        quality_product=str(ids["quality_product"]),
        transients_product=str(ids["transients_product"]),
        reobserve_job=int(ids["reobserve_job"]),  # type: ignore[call-overload]
        follow_up_job=int(ids["follow_up_job"]),  # type: ignore[call-overload]
    )


def person_job(deps: ToolDeps, name: str, ra: float, dec: float, *, reason: str | None = None) -> int:
    """A job a person submitted (for the agent to read, and not to cancel)."""
    now = deps.clock.now()
    request = parse_request(
        {
            "kind": "observe",
            "target": {"name": name, "ra_deg": ra, "dec_deg": dec},
            "window": {"start": now.isoformat(), "end": (now + timedelta(hours=10)).isoformat()},
            "exposure": {"filter": "R", "exposure_s": 60, "count": 2},
            "reason": reason or f"monitor {name}",
            "origin": {"kind": "person", "ref": "ana"},
        }
    )
    return deps.ledger.submit(request, actor="person:ana").job.id
