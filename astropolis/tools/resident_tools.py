"""The resident tool: run one of the ML residents on lake frames. Residents are deterministic and their products
are keyed by (resident, version, inputs), so a run derives data, never changes any, and a rerun adds nothing. Run
from here it files no job: asking for work stays with the proposal tools and their policy."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from astropolis.tools.deps import ToolDeps
from astropolis.tools.lake_tools import LAKE_ID, Verdict, verdict_of
from astropolis.tools.registry import Tool, ToolInput, ToolOutput


class RunResidentInput(ToolInput):
    """Which resident on which frames."""

    resident: Literal["quality", "transients", "anomaly"] = Field(description="quality, transients or anomaly.")
    frame: str = Field(pattern=LAKE_ID, description="The frame (for transients: the new epoch).")
    reference: str | None = Field(default=None, pattern=LAKE_ID, description="transients only: the reference frame.")


class ResidentResult(ToolOutput):
    """What the resident said."""

    created: bool = Field(description="False when this product already existed (nothing was added).")
    verdict: Verdict = Field(description="The product in brief.")


def run_resident(deps: ToolDeps, args: RunResidentInput) -> ResidentResult:
    """Run a resident on lake frames and store its product (idempotent); files no job."""
    from astropolis.tools.residents import ResidentRunner

    runner = ResidentRunner(deps.lake, ledger=None, audit=deps.audit, clock=deps.clock, sites=deps.sites)
    inputs = [args.frame] if args.reference is None else [args.frame, args.reference]
    run = runner.run(args.resident, inputs, file_jobs=False)
    return ResidentResult(created=run.created, verdict=verdict_of(run.product))


TOOLS: list[Tool[Any, Any]] = [
    Tool(
        "run_resident",
        "read",
        "Run a resident (quality, transients with a reference, anomaly) on lake frames; "
        "stores its product, files no job.",
        RunResidentInput,
        ResidentResult,
        run_resident,
    ),
]
