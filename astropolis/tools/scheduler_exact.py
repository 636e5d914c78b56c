"""An exact reference for small instances: OR-Tools CP-SAT with one optional interval per (job, site, window),
no overlap per site, maximising the priority sum.

Sequence-dependent slews do not fit this model, so it needs `slew_model="overhead_only"`: each job occupies
its site for overhead + duration (the overhead before the exposure), which is the rule every planner then
follows on the same problem. Times are whole seconds: instances with integer times are solved exactly;
otherwise windows are rounded inwards and durations up, so the model is never looser than the problem.
Rapid-lane placements are policy, not optimisation: pass the heuristic's as `pinned` to optimise the queue
around them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from astropolis.tools.scheduler_instance import build_schedule, compile_problem
from astropolis.tools.scheduler_models import Assignment, Schedule, SchedulingProblem


@dataclass(frozen=True)
class ExactResult:
    """The solver's plan, whether it is proven optimal, and the bound it proved."""

    schedule: Schedule
    """The solver's plan (algorithm 'cp-sat'), in the same shape as the heuristic's."""
    optimal: bool
    """True when CP-SAT proved it optimal within the time limit."""
    objective: int
    """Priority sum of the plan, pinned jobs included."""
    bound: int
    """Best upper bound CP-SAT proved, pinned jobs included (== objective when optimal)."""
    wall_s: float
    """Solver wall time, s."""


def solve_exact(
    problem: SchedulingProblem,
    *,
    pinned: Sequence[Assignment] = (),
    time_limit_s: float = 10.0,
    workers: int = 2,
) -> ExactResult:
    """Maximise the priority sum with CP-SAT; `pinned` assignments are kept exactly as given."""
    from ortools.sat.python import cp_model

    if problem.slew_model != "overhead_only":
        raise ValueError("the exact model needs slew_model='overhead_only' (no sequence-dependent slews)")
    instance = compile_problem(problem)
    index = {job_id: j for j, job_id in enumerate(instance.ids)}
    site_index = {facts.name: k for k, facts in enumerate(instance.sites)}
    fixed = {index[a.job_id]: a for a in pinned}
    model = cp_model.CpModel()
    per_site: dict[int, list[cp_model.IntervalVar]] = {k: [] for k in range(len(instance.sites))}
    for k, facts in enumerate(instance.sites):
        for a, b, _ in facts.blocks:
            lo, hi = math.floor(a), math.ceil(b)
            per_site[k].append(model.new_fixed_size_interval_var(lo, hi - lo, f"block_{k}_{lo}"))
    choices: dict[int, list[tuple[int, cp_model.IntVar, cp_model.IntVar]]] = {}
    objective: list[cp_model.LinearExprT] = []
    pinned_value = 0
    for j, assignment in fixed.items():
        k = site_index[assignment.site]
        begin = math.floor((assignment.start - problem.now).total_seconds() - instance.sites[k].overhead)
        size = math.ceil(instance.sites[k].overhead + instance.duration[j])
        per_site[k].append(model.new_fixed_size_interval_var(begin, size, f"pinned_{j}"))
        pinned_value += instance.priority[j]
    for j in range(len(instance.ids)):
        if j in fixed:
            continue
        options = []
        for k, spans in sorted(instance.windows[j].items()):
            overhead = instance.sites[k].overhead
            size = math.ceil(overhead + instance.duration[j])
            for w, (a, b) in enumerate(spans):
                lo = max(math.ceil(a - overhead), math.ceil(instance.sites[k].free))
                hi = math.floor(b) - size
                if hi < lo:
                    continue
                present = model.new_bool_var(f"x_{j}_{k}_{w}")
                begin_var = model.new_int_var(lo, hi, f"s_{j}_{k}_{w}")
                interval = model.new_optional_fixed_size_interval_var(begin_var, size, present, f"i_{j}_{k}_{w}")
                per_site[k].append(interval)
                options.append((k, present, begin_var))
        if options:
            model.add_at_most_one(p for _, p, _ in options)
            objective.extend(instance.priority[j] * p for _, p, _ in options)
            choices[j] = options
    for intervals in per_site.values():
        model.add_no_overlap(intervals)
    model.maximize(sum(objective))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = 0
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise RuntimeError(f"CP-SAT found no solution ({solver.status_name(status)})")
    rows: dict[int, list[tuple[int, float, float, float]]] = {k: [] for k in range(len(instance.sites))}
    for j, assignment in fixed.items():
        k = site_index[assignment.site]
        at = (assignment.start - problem.now).total_seconds()
        rows[k].append((j, instance.sites[k].overhead, at, at + instance.duration[j]))
    for j, options in choices.items():
        for k, present, start_var in options:
            if solver.boolean_value(present):
                overhead = instance.sites[k].overhead
                at = solver.value(start_var) + overhead
                rows[k].append((j, overhead, at, at + instance.duration[j]))
    schedule = build_schedule(instance, "cp-sat", rows)
    return ExactResult(
        schedule=schedule,
        optimal=status == cp_model.OPTIMAL,
        objective=round(solver.objective_value) + pinned_value,
        bound=round(solver.best_objective_bound) + pinned_value,
        wall_s=solver.wall_time,
    )
