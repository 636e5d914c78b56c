"""Deciding hypotheses from the products of their test jobs — by code, never by the model.

A hypothesis's test is its observe jobs. Once every test job has ended and the transients resident has looked at
the frames a completed one took, the hypothesis is *supported* when a real candidate lies within MATCH_ARCSEC of
the test target, and *refuted* when none does. Jobs that all ended without a frame leave it open.
"""

from __future__ import annotations

from astropolis.memory import JobState
from astropolis.memory.jobs import TERMINAL_STATES
from astropolis.tools.deps import ToolDeps
from astropolis.tools.scheduler_instance import separation_deg

MATCH_ARCSEC = 5.0


def review_hypotheses(deps: ToolDeps, *, actor: str) -> list[str]:
    """Move open hypotheses whose tests have ended to supported or refuted; return what changed, in words."""
    book = deps.hypotheses
    if book is None:
        return []
    changes = []
    for hypothesis in book.all(status="open"):
        jobs = [deps.ledger.get(job_id) for job_id in hypothesis.test_jobs]
        if not jobs or any(job.state not in TERMINAL_STATES for job in jobs):
            continue
        seen, found = [], []
        for job in jobs:
            if job.state != JobState.COMPLETED or job.request.target is None:
                continue
            target = job.request.target
            frames = deps.lake.frames(
                cone=(target.ra_deg, target.dec_deg, 0.25), since=job.created_at, until=job.updated_at
            )
            for frame in frames:
                for product in deps.lake.products_of(frame.id):
                    if product.resident != "transients" or product.inputs[0] != frame.id:
                        continue
                    seen.append(product.id)
                    for c in product.output.get("candidates", []):
                        close = separation_deg(target.ra_deg, target.dec_deg, c["ra_deg"], c["dec_deg"])
                        if c.get("real") and close * 3600.0 <= MATCH_ARCSEC:
                            found.append(product.id)
        if found:
            book.set_status(
                hypothesis.id,
                "supported",
                actor=actor,
                reason=f"a real transient at the test position in {', '.join(p[:19] for p in found[:3])}",
            )
            changes.append(f"hypothesis {hypothesis.id} supported")
        elif seen:
            book.set_status(
                hypothesis.id,
                "refuted",
                actor=actor,
                reason=f"no real transient at the test position in {', '.join(p[:19] for p in seen[:3])}",
            )
            changes.append(f"hypothesis {hypothesis.id} refuted")
    return changes
