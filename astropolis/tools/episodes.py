"""Episodes: what happened to each job, remembered once it has ended, so the agent can be asked about it later
("did we ever get M77 from Chile?"). Each episode is content-addressed with the job's end time, so recording the
same outcome again adds nothing; only new outcomes are embedded."""

from __future__ import annotations

from datetime import timedelta

from astropolis.memory.jobs import TERMINAL_STATES, Job
from astropolis.memory.semantic import Memory
from astropolis.tools.deps import ToolDeps

LOOKBACK = timedelta(days=7)


def episode_of(job: Job) -> Memory:
    """The episode of an ended job: what it was, where it ran, how it ended and why."""
    request, last = job.request, job.history[-1]
    target = "no target"
    if request.target is not None:
        target = request.target.name or f"RA {request.target.ra_deg:.4f} Dec {request.target.dec_deg:+.4f}"
    where = f" at {job.site}" if job.site else ""
    text = (
        f"Job {job.id} ({request.kind.value} {target}, asked by {request.origin.kind}) ended {last.to_state.value}"
        f"{where} after {job.attempts} attempt(s): {last.reason}"
    )
    return Memory(
        kind="episode", text=text[:2000], refs=(f"job:{job.id}",), actor="ledger", thread=None, created_at=last.at
    )


def record_job_outcomes(deps: ToolDeps) -> int:
    """Remember every job that ended in the last week and is not remembered yet; return how many were new."""
    if deps.memory is None:
        return 0
    since = deps.clock.now() - LOOKBACK
    episodes = [episode_of(job) for job in deps.ledger.jobs(states=TERMINAL_STATES) if job.updated_at >= since]
    if not episodes:
        return 0
    known = {m.id for m in deps.memory.select(ids=[e.id for e in episodes])}
    return deps.memory.put_many([e for e in episodes if e.id not in known])
