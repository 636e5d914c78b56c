"""A scheduling problem compiled to plain floats (seconds from `now`), shared by every planner, and the
independent checker `validate_schedule` that tests and benchmarks run on every plan.

Setup rule, used by all planners and by the checker: before each job the site pays its overhead plus the
slew from where it last pointed (great-circle separation / slew rate). Where the pointing is unknown (no
pointing given at free_from, or after a commitment that gives none) the slew is charged as 180°. Nothing is
charged before a commitment: reserved time includes its own setup. The slew may begin before the job's
window opens; only the exposure [start, end] must lie inside a window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

import numpy as np

from astropolis.tools.scheduler_models import (
    Assignment,
    Commitment,
    Reason,
    Schedule,
    ScheduleSummary,
    SchedulingProblem,
    Unscheduled,
)

T = TypeVar("T", float, datetime)
UNKNOWN_SLEW_DEG = 180.0
TOLERANCE_S = 1e-3


@dataclass
class SiteFacts:
    """One site in seconds from `now`."""

    name: str
    """Site name."""
    available: bool
    """False: the site gets no work."""
    free: float
    """free_from, clipped to the horizon, s."""
    overhead: float
    """Overhead per pointing, s."""
    inv_rate: float
    """Seconds per degree of slew (0 for the overhead-only model)."""
    start_point: int
    """Row of `Instance.sep` for the pointing at free_from (the last row: unknown)."""
    blocks: list[tuple[float, float, int]]
    """Commitments as (start, end, pointing row), merged and clipped."""


@dataclass
class Instance:
    """A problem in floats. Jobs are in id order and sites in name order, whatever order they came in."""

    problem: SchedulingProblem
    """The problem as given."""
    horizon: float
    """End of the horizon, s from now."""
    ids: list[int]
    """Job ids; a job's index in these lists is its row in `sep`."""
    priority: list[int]
    """Priority per job."""
    duration: list[float]
    """Duration per job, s."""
    rapid: list[bool]
    """True for rapid-lane jobs."""
    sites: list[SiteFacts]
    """Sites in name order."""
    windows: list[dict[int, list[tuple[float, float]]]]
    """Per job: site index -> usable windows (allowed, available, after free_from, long enough), s."""
    sep: list[list[float]]
    """Separation between pointings, degrees (jobs first, then site and commitment pointings, then unknown)."""
    excluded: dict[int, tuple[Reason, str]] = field(default_factory=dict)
    """Jobs no site can take, with the reason."""

    def setup(self, site: int, point: int, job: int) -> float:
        """Overhead plus slew at `site` from `point` to job `job`, s."""
        facts = self.sites[site]
        return facts.overhead + self.sep[point][job] * facts.inv_rate

    def to_datetime(self, seconds: float) -> datetime:
        """Seconds from now back to UTC."""
        return self.problem.now + timedelta(seconds=seconds)


def _unit(ra_deg: float, dec_deg: float) -> tuple[float, float, float]:
    ra, dec = math.radians(ra_deg), math.radians(dec_deg)
    return math.cos(dec) * math.cos(ra), math.cos(dec) * math.sin(ra), math.sin(dec)


def separation_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Great-circle separation of two ICRS positions, degrees."""
    a, b = _unit(ra1, dec1), _unit(ra2, dec2)
    dot = max(-1.0, min(1.0, a[0] * b[0] + a[1] * b[1] + a[2] * b[2]))
    return math.degrees(math.acos(dot))


def commitment_order(c: Commitment) -> tuple[datetime, datetime, bool, float, float]:
    """Commitments by time, then pointing, so their input order never matters."""
    return c.start, c.end, c.ra_deg is None, c.ra_deg or 0.0, c.dec_deg or 0.0


def _merge(spans: list[tuple[T, T]]) -> list[tuple[T, T]]:
    merged: list[tuple[T, T]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def compile_problem(problem: SchedulingProblem) -> Instance:
    """Turn the problem into floats, clip windows to what each site can still use, and set aside jobs that
    cannot be placed anywhere (with their reason)."""
    now = problem.now
    horizon = (problem.end - now).total_seconds()
    jobs = sorted(problem.jobs, key=lambda j: j.id)
    states = sorted(problem.sites, key=lambda s: s.name)
    points = [_unit(j.ra_deg, j.dec_deg) for j in jobs]
    unknown = -1  # rows/columns for "pointing unknown" are filled with UNKNOWN_SLEW_DEG below

    def point_of(ra: float | None, dec: float | None) -> int:
        """Row of a pointing in the separation matrix."""
        if ra is None or dec is None:
            return unknown
        points.append(_unit(ra, dec))
        return len(points) - 1

    sites = []
    for state in states:
        free = min(max((state.free_from - now).total_seconds(), 0.0), horizon)
        blocks: list[tuple[float, float, int]] = []
        for c in sorted(state.commitments, key=commitment_order):
            a, b = max((c.start - now).total_seconds(), free), min((c.end - now).total_seconds(), horizon)
            if b <= a:
                continue
            point = point_of(c.ra_deg, c.dec_deg)
            if blocks and a <= blocks[-1][1]:  # overlapping reservations merge; the later end's pointing wins
                prev = blocks.pop()
                a, point = prev[0], point if b >= prev[1] else prev[2]
                b = max(b, prev[1])
            blocks.append((a, b, point))
        inv_rate = 1.0 / state.slew_rate_deg_s if problem.slew_model == "great_circle" else 0.0
        start_point = point_of(state.pointing_ra_deg, state.pointing_dec_deg)
        sites.append(SiteFacts(state.name, state.available, free, state.overhead_s, inv_rate, start_point, blocks))
    unknown_index = len(points)
    vectors = np.array([*points, (0.0, 0.0, 1.0)], dtype=float)
    sep = np.degrees(np.arccos(np.clip(vectors @ vectors.T, -1.0, 1.0)))
    sep[unknown_index, :] = UNKNOWN_SLEW_DEG
    sep[:, unknown_index] = UNKNOWN_SLEW_DEG
    for facts in sites:
        facts.start_point = unknown_index if facts.start_point == unknown else facts.start_point
        facts.blocks = [(a, b, unknown_index if p == unknown else p) for a, b, p in facts.blocks]
    index = {facts.name: k for k, facts in enumerate(sites)}
    instance = Instance(
        problem=problem,
        horizon=horizon,
        ids=[j.id for j in jobs],
        priority=[j.priority for j in jobs],
        duration=[j.duration_s for j in jobs],
        rapid=[j.lane == "rapid" for j in jobs],
        sites=sites,
        windows=[],
        sep=sep.tolist(),
    )
    for n, job in enumerate(jobs):
        usable: dict[int, list[tuple[float, float]]] = {}
        closed: list[str] = []
        for name, spans in sorted(job.windows.items()):
            k = index.get(name)
            if k is None or (job.sites and name not in job.sites):
                continue
            facts = sites[k]
            lo = facts.free if facts.available else 0.0
            clipped = [
                (max((w.start - now).total_seconds(), lo), min((w.end - now).total_seconds(), horizon)) for w in spans
            ]
            fits = [(a, b) for a, b in _merge(clipped) if b - a >= job.duration_s]
            if fits and facts.available:
                usable[k] = fits
            elif fits:
                closed.append(f"{name} ({states[k].unavailable_reason or 'unavailable'})")
        instance.windows.append(usable)
        if not usable and closed:
            detail = "observable only at unavailable sites: " + ", ".join(closed)
            instance.excluded[n] = (Reason.SITE_UNAVAILABLE, detail)
        elif not usable:
            where = f" among allowed sites {', '.join(job.sites)}" if job.sites else ""
            instance.excluded[n] = (
                Reason.NO_WINDOW,
                f"no window{where} long enough for {job.duration_s:.0f} s before the night ends",
            )
    return instance


def build_schedule(
    instance: Instance, algorithm: str, placed: dict[int, list[tuple[int, float, float, float]]]
) -> Schedule:
    """The output model from per-site lists of (job index, setup_s, start, end) in seconds."""
    sites: dict[str, tuple[Assignment, ...]] = {}
    done: set[int] = set()
    for k, facts in enumerate(instance.sites):
        rows = sorted(placed.get(k, []), key=lambda row: row[2])
        done.update(row[0] for row in rows)
        sites[facts.name] = tuple(
            Assignment(
                job_id=instance.ids[j],
                site=facts.name,
                lane="rapid" if instance.rapid[j] else "queue",
                priority=instance.priority[j],
                setup_s=round(setup, 3),
                start=instance.to_datetime(start),
                end=instance.to_datetime(end),
            )
            for j, setup, start, end in rows
        )
    unscheduled = []
    for j, job_id in enumerate(instance.ids):
        if j in done:
            continue
        reason, detail = instance.excluded.get(
            j, (Reason.NO_ROOM, "its windows are taken by rapid or higher-value work")
        )
        unscheduled.append(Unscheduled(job_id=job_id, reason=reason, detail=detail))
    summary = ScheduleSummary(
        priority_sum=sum(instance.priority[j] for j in done),
        jobs_placed=len(done),
        jobs_total=len(instance.ids),
        rapid_placed=sum(1 for j in done if instance.rapid[j]),
        rapid_total=sum(instance.rapid),
    )
    return Schedule(algorithm=algorithm, sites=sites, unscheduled=tuple(unscheduled), summary=summary)


def validate_schedule(problem: SchedulingProblem, schedule: Schedule) -> list[str]:
    """Every way `schedule` breaks the rules of `problem`, one line each; empty when it is valid.

    Written apart from the planners (datetimes and trigonometry, no compiled instance) so it checks them.
    """
    errors: list[str] = []
    jobs = {job.id: job for job in problem.jobs}
    states = {site.name: site for site in problem.sites}
    seen: dict[int, str] = {}
    tol = timedelta(seconds=TOLERANCE_S)
    for name, rows in schedule.sites.items():
        state = states.get(name)
        if state is None:
            errors.append(f"site {name!r} is not in the problem")
            continue
        if rows and not state.available:
            errors.append(f"site {name} is unavailable but has {len(rows)} assignments")
        free_from = max(state.free_from, problem.now)
        ra, dec = state.pointing_ra_deg, state.pointing_dec_deg
        cursor = free_from
        work_end: datetime | None = None
        events: list[tuple[datetime, int, Assignment | Commitment]] = [(r.start, 1, r) for r in rows]
        events += [(c.start, 0, c) for c in sorted(state.commitments, key=commitment_order)]
        for _, _, item in sorted(events, key=lambda e: e[:2]):
            if isinstance(item, Commitment):
                if item.end <= free_from:
                    continue
                if work_end is not None and item.start + tol < work_end:
                    errors.append(f"{name}: work overlaps commitment {item.label!r}")
                if item.end >= cursor:  # the pointing after reserved time is that of the one ending last
                    cursor, ra, dec = item.end, item.ra_deg, item.dec_deg
                continue
            row = item
            job = jobs.get(row.job_id)
            if job is None:
                errors.append(f"{name}: job {row.job_id} is not in the problem")
                continue
            if row.job_id in seen:
                errors.append(f"job {row.job_id} is placed twice ({seen[row.job_id]} and {name})")
            seen[row.job_id] = name
            if row.site != name:
                errors.append(f"job {row.job_id} is listed under {name} but names site {row.site}")
            if job.sites and name not in job.sites:
                errors.append(f"job {row.job_id} runs at {name}, outside its allowed sites {job.sites}")
            if abs((row.end - row.start).total_seconds() - job.duration_s) > TOLERANCE_S:
                errors.append(f"job {row.job_id} lasts {(row.end - row.start).total_seconds()} s, not {job.duration_s}")
            spans = _merge([(w.start, w.end) for w in job.windows.get(name, ())])  # touching windows are one
            if not any(a - tol <= row.start and row.end <= b + tol for a, b in spans):
                errors.append(f"job {row.job_id} at {name} [{row.start}, {row.end}] is outside its windows")
            if row.end > problem.end + tol:
                errors.append(f"job {row.job_id} ends after the horizon")
            slew = UNKNOWN_SLEW_DEG if ra is None or dec is None else separation_deg(ra, dec, job.ra_deg, job.dec_deg)
            setup = state.overhead_s + (slew / state.slew_rate_deg_s if problem.slew_model == "great_circle" else 0)
            if row.start + tol < cursor + timedelta(seconds=setup):
                errors.append(
                    f"job {row.job_id} at {name} starts {row.start} before the site is free and set up "
                    f"({cursor} + {setup:.1f} s)"
                )
            cursor = work_end = row.end
            ra, dec = job.ra_deg, job.dec_deg
    reasons = {u.job_id for u in schedule.unscheduled}
    if set(seen) & reasons:
        errors.append(f"jobs both placed and unscheduled: {sorted(set(seen) & reasons)}")
    if set(seen) | reasons != set(jobs):
        errors.append(f"jobs neither placed nor unscheduled: {sorted(set(jobs) - set(seen) - reasons)}")
    placed = [jobs[i] for i in seen if i in jobs]
    if schedule.summary.priority_sum != sum(j.priority for j in placed) or schedule.summary.jobs_placed != len(seen):
        errors.append("summary figures do not match the assignments")
    return errors
