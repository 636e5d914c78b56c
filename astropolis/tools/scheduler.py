"""The deterministic network scheduler: PENDING observe jobs + site states → per-site plans.

`schedule(problem)` is a pure function (no clock, no I/O, only a fixed-seed generator): re-planning after a
weather change, a safety trip, a site fault or a new job is calling it again with the changed problem, and
identical problems (in any input order) give identical plans. Jobs are handled in id order internally and
every tie is broken by job id, then by site name.

The plan, in three steps:
1. Rapid-lane jobs, highest priority first, each at its earliest feasible start on any site that delays no
   rapid job already placed (only when there is none may one move later, or to another site, so that this
   one fits too), then pinned: queue work is planned around them, whatever it costs the queue. Nothing
   starts before a site's free_from, so an exposure in progress is never interrupted: pre-emption applies
   to the plan only.
2. Queue jobs inserted one by one into every gap of every allowed, available site where they fit, pushing
   later queue jobs right within their slack (see `scheduler_timeline`). A few fixed strategies (insertion
   order x slot choice, `STRATEGIES`) each build a plan; the one with the highest priority sum is kept.
3. A bounded, seeded ruin-and-recreate search: clear a stretch of time at one site or all of them, refill it
   with the removed and the left-out jobs in a perturbed order, keep the result unless it is worse.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Literal

from astropolis.tools.scheduler_instance import Instance, build_schedule, compile_problem, validate_schedule
from astropolis.tools.scheduler_models import (
    Assignment,
    Commitment,
    Reason,
    SchedJob,
    Schedule,
    ScheduleSummary,
    SchedulingProblem,
    SiteState,
    Unscheduled,
)
from astropolis.tools.scheduler_timeline import Timeline

__all__ = [
    "STRATEGIES",
    "Assignment",
    "Commitment",
    "Reason",
    "SchedJob",
    "Schedule",
    "ScheduleSummary",
    "SchedulingProblem",
    "SiteState",
    "Unscheduled",
    "schedule",
    "validate_schedule",
]

Order = Literal["priority", "density", "sqrt_density"]
Choice = Literal["finish", "push", "setup"]
# Insertion order x slot choice; measured on synthetic nights (evals/bench_scheduler.py), no single one wins.
STRATEGIES: tuple[tuple[Order, Choice], ...] = (
    ("priority", "finish"),
    ("priority", "push"),
    ("density", "push"),
    ("sqrt_density", "setup"),
)
CHOICES: tuple[Choice, ...] = ("finish", "push", "setup")
# Ruin-and-recreate effort: about SEARCH_WORK / queue size iterations, so small nights get searched hard and
# 500 jobs stay well inside the 1 s re-plan budget. Counted in iterations, never in seconds: deterministic.
SEARCH_WORK = 20_000
SEARCH_ITERATIONS = (20, 1000)
SEARCH_SPAN_S = 1800.0  # a ruin clears up to this much either side of the chosen job
SEARCH_ONE_SITE = 0.5  # chance a ruin stays on one site (else it clears the same hours at every site)
SEARCH_NOISE = 0.5  # refill order: strategy rank * (1 + up to this much noise)
SEARCH_OUTSIDERS_FIRST = 0.5  # chance the refill tries left-out jobs before the ones it removed
SEARCH_SAME_CHOICE = 0.5  # chance the refill keeps the winning slot choice (else one at random)
SEARCH_SEED = 0
LATE = 1e9  # s; added to the score of a slot that would delay an already placed job

Slot = tuple[float, float, int, int, float, float]  # score, tie-break, site, gap, start, end


def _order_key(instance: Instance, order: Order) -> Callable[[int], tuple[float, int]]:
    priority, duration, ids = instance.priority, instance.duration, instance.ids
    if order == "density":  # priority per second of the site's time (60 s stands for setup)
        return lambda j: (-priority[j] / (duration[j] + 60.0), ids[j])
    if order == "sqrt_density":
        return lambda j: (-priority[j] / (duration[j] + 60.0) ** 0.5, ids[j])
    return lambda j: (-priority[j], ids[j])


class _Plan:
    """All sites' timelines for one instance, and which site holds each job."""

    def __init__(self, instance: Instance, lines: list[Timeline] | None = None) -> None:
        self.instance = instance
        self.lines = lines if lines is not None else [Timeline(instance, k) for k in range(len(instance.sites))]
        self.where: dict[int, int] = {j: line.site for line in self.lines for j in line.jobs()}
        self.value = sum(instance.priority[j] for j in self.where)

    def copy(self) -> _Plan:
        """An independent copy."""
        return _Plan(self.instance, [line.copy() for line in self.lines])

    def best(
        self, job: int, choice: Choice | Literal["earliest"], lines: Sequence[Timeline] | None = None
    ) -> Slot | None:
        """The best slot for `job` over the given timelines (default: all), by `choice`:
        earliest start (not delaying others); earliest finish; least push of the next job plus added setup;
        least added setup."""
        best: Slot | None = None
        windows = self.instance.windows[job]
        sep_job = self.instance.sep[job]
        for line in lines if lines is not None else self.lines:
            spans = windows.get(line.site)
            if spans is None:
                continue
            overhead, rate, sep = line.overhead, line.rate, line.sep
            for k, s, e in line.slots(job, spans, first=choice == "finish"):  # the first gap finishes first
                nxt = line.job[k + 1]
                prev = line.point[k]
                # Added setup: what the detour costs the site beyond the exposure itself.
                added = overhead + sep[prev][job] * rate
                push = 0.0
                if nxt >= 0:
                    added += overhead + (sep_job[nxt] - sep[prev][nxt]) * rate
                    push = max(0.0, e + overhead + sep_job[nxt] * rate - line.start[k + 1])
                if choice == "earliest":  # a slot that delays the next job ranks after every one that does not
                    slot = (s + (LATE if push > 0.0 else 0.0), e, line.site, k, s, e)
                elif choice == "finish":
                    slot = (e, added, line.site, k, s, e)
                elif choice == "push":
                    slot = (push + added, e, line.site, k, s, e)
                else:
                    slot = (added, e, line.site, k, s, e)
                if best is None or slot < best:
                    best = slot
        return best

    def put(self, job: int, slot: Slot) -> None:
        """Insert `job` at `slot`."""
        site = slot[2]
        self.lines[site].insert(job, slot[3], slot[4], slot[5], self.instance.windows[job][site])
        self.where[job] = site
        self.value += self.instance.priority[job]

    def place(self, jobs: Sequence[int], choice: Choice | Literal["earliest"]) -> None:
        """Insert each job in turn at its best slot; jobs that fit nowhere stay out."""
        for job in jobs:
            slot = self.best(job, choice)
            if slot is not None:
                self.put(job, slot)

    def place_rapid(self, rapid: Sequence[int]) -> None:
        """The rapid lane: by priority, each as early as it can go without delaying the ones already placed;
        failing that, one of those may move later or to another site to make room. Then all are pinned."""
        instance = self.instance
        self.place(rapid, "earliest")
        for job in rapid:
            if job in self.where:
                continue
            for q in sorted(self.where, key=lambda j: instance.ids[j]):
                trial = self.copy()
                trial.lines[trial.where.pop(q)].remove(q)
                trial.value -= instance.priority[q]
                slot = trial.best(job, "earliest")
                if slot is None:
                    continue
                trial.put(job, slot)
                moved = trial.best(q, "earliest")
                if moved is not None:
                    trial.put(q, moved)
                    self.lines, self.where, self.value = trial.lines, trial.where, trial.value
                    break
        for line in self.lines:
            line.pin_all()

    def search(self, queue: Sequence[int], choice: Choice, iterations: int, seed: int) -> None:
        """Ruin and recreate: clear a stretch of time around a random placed job, at its site or at every site,
        and refill it (with any left-out job that could use it) in a perturbed order; keep the result unless
        it is worse. Seeded, so deterministic."""
        instance = self.instance
        rng = random.Random(seed)
        rank = {j: n for n, j in enumerate(queue)}
        best = (self._ranking(), self.lines, self.where, self.value)
        for _ in range(iterations):
            placed = sorted(j for j in self.where if not instance.rapid[j])
            if not placed:
                break
            centre = placed[rng.randrange(len(placed))]
            line = self.lines[self.where[centre]]
            at = line.job.index(centre)
            span = rng.uniform(0.0, SEARCH_SPAN_S)
            t0, t1 = line.start[at] - span, line.end[at] + span
            sites = [line.site] if rng.random() < SEARCH_ONE_SITE else [x.site for x in self.lines]
            ruined = [
                (k, j)
                for k in sites
                for i, j in enumerate(self.lines[k].job)
                if self.lines[k].movable[i] and self.lines[k].end[i] > t0 and self.lines[k].start[i] < t1
            ]
            refill = [
                j
                for j in queue
                if j not in self.where
                and any(a < t1 and b > t0 for k in sites for a, b in instance.windows[j].get(k, ()))
            ]
            trial = self.copy()
            for k, j in ruined:
                trial.lines[k].remove(j)
                del trial.where[j]
                trial.value -= instance.priority[j]
            jobs = [j for _, j in ruined] + refill
            noise = {j: rank[j] * (1 + rng.random() * SEARCH_NOISE) for j in jobs}
            if rng.random() < SEARCH_OUTSIDERS_FIRST:
                for j in refill:
                    noise[j] -= len(queue) * 10
            jobs.sort(key=lambda j: (noise[j], instance.ids[j]))
            trial.place(jobs, choice if rng.random() < SEARCH_SAME_CHOICE else CHOICES[rng.randrange(3)])
            if (trial.value, len(trial.where)) >= (self.value, len(self.where)):  # sideways moves explore
                self.lines, self.where, self.value = trial.lines, trial.where, trial.value
                ranking = self._ranking()
                if ranking > best[0]:
                    best = (ranking, self.lines, self.where, self.value)
        self.lines, self.where, self.value = best[1:]

    def _ranking(self) -> tuple[int, int, tuple[int, ...]]:
        # Higher is better: priority sum, then jobs placed, then the lowest job ids (ties go to the lower id).
        return self.value, len(self.where), tuple(-self.instance.ids[j] for j in sorted(self.where))

    def rows(self) -> dict[int, list[tuple[int, float, float, float]]]:
        """Per-site (job, setup_s, start, end) rows for the output."""
        return {
            line.site: [
                (j, line.setup_into(i - 1, j), line.start[i], line.end[i]) for i, j in enumerate(line.job) if j >= 0
            ]
            for line in self.lines
        }


def schedule(
    problem: SchedulingProblem,
    *,
    strategies: Sequence[tuple[Order, Choice]] = STRATEGIES,
    search: bool = True,
) -> Schedule:
    """Plan the night: per-site assignments that maximise the priority sum of placed jobs, rapid lane first.

    Every assignment lies inside one of its job's windows at its site, starts after the site's free_from plus
    setup, and leaves slew + overhead between consecutive targets (`validate_schedule` checks all of it).
    `strategies` and `search` are there to compare variants; the defaults are the planner.
    """
    instance = compile_problem(problem)
    candidates = [j for j in range(len(instance.ids)) if j not in instance.excluded]
    base = _Plan(instance)
    rapid = sorted((j for j in candidates if instance.rapid[j]), key=_order_key(instance, "priority"))
    base.place_rapid(rapid)
    best: tuple[_Plan, list[int], Order, Choice] | None = None
    for order, choice in strategies:
        queue = sorted((j for j in candidates if not instance.rapid[j]), key=_order_key(instance, order))
        plan = base.copy()
        plan.place(queue, choice)
        if len(plan.where) == len(candidates):  # everything fits: no other plan can be worth more
            return build_schedule(instance, f"insertion:{order}/{choice}", plan.rows())
        # Strictly better only, so the first strategy listed wins ties: the result never depends on luck.
        if best is None or (plan.value, len(plan.where)) > (best[0].value, len(best[0].where)):
            best = (plan, queue, order, choice)
    if best is None:
        return build_schedule(instance, "insertion:rapid-only", base.rows())
    plan, queue, order, choice = best
    if search and queue:
        low, high = SEARCH_ITERATIONS
        plan.search(queue, choice, min(high, max(low, SEARCH_WORK // len(queue))), SEARCH_SEED)
    return build_schedule(instance, f"insertion:{order}/{choice}" + ("+search" if search else ""), plan.rows())
