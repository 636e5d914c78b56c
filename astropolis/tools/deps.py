"""The handles every tool works with, in one typed object the model never sees."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from astropolis.lake import Lake
from astropolis.lake.clock import Clock, SystemClock
from astropolis.memory import AuditLog, Ledger
from astropolis.tools.sites import Site, SiteRegistry

if TYPE_CHECKING:
    from astropolis.memory.hypotheses import HypothesisBook
    from astropolis.memory.semantic import MemoryStore


@dataclass
class ToolDeps:
    """Lake, ledger, audit log, sites, memory and clock: passed to every tool call, never chosen by a model."""

    lake: Lake
    ledger: Ledger
    audit: AuditLog
    sites: SiteRegistry
    clock: Clock = field(default_factory=SystemClock)
    memory: MemoryStore | None = None
    hypotheses: HypothesisBook | None = None
    actor: str = "agent:unknown"
    """Who the current call is for (set by the dispatcher per call; written into the jobs it creates)."""
    site_probe: Callable[[Site], tuple[Any, str | None]] | None = None
    """Asks a site's driver for its live status (None: no driver connections in this run)."""
    said: str | None = None
    """The person's own words this turn (set per call): the only free text an agent's note may repeat."""
