"""The greedy dispatch baseline (as LCO's and ACP's dispatchers work): each site, whenever it becomes free,
takes the highest-priority job (rapid lane first, ties by id) it can start now — target observable after the
slew, exposure finished before the window closes — and idles until the next window opens when none fits.

It uses the same compiled instance and setup rule as `schedule`, so the two are compared like for like.
"""

from __future__ import annotations

import heapq

from astropolis.tools.scheduler_instance import build_schedule, compile_problem
from astropolis.tools.scheduler_models import Schedule, SchedulingProblem

EPS = 1e-6


def dispatch_greedy(problem: SchedulingProblem) -> Schedule:
    """Plan the night by simulating greedy dispatch at every site; deterministic, like `schedule`."""
    instance = compile_problem(problem)
    n_jobs = len(instance.ids)
    order = sorted(
        (j for j in range(n_jobs) if j not in instance.excluded),
        key=lambda j: (not instance.rapid[j], -instance.priority[j], instance.ids[j]),
    )
    done = [False] * n_jobs
    rows: dict[int, list[tuple[int, float, float, float]]] = {k: [] for k in range(len(instance.sites))}
    # Per site: the free stretches between free_from, commitments and the end of night, with the pointing
    # at the start of each.
    stretches: list[list[tuple[float, float, int]]] = []
    for facts in instance.sites:
        spans, t, point = [], facts.free, facts.start_point
        for a, b, p in facts.blocks:
            spans.append((t, a, point))
            t, point = b, p
        spans.append((t, instance.horizon, point))
        stretches.append([s for s in spans if s[1] > s[0]])
    local = [[j for j in order if k in instance.windows[j]] for k in range(len(instance.sites))]
    heap = [(stretches[k][0][0], k, 0, stretches[k][0][2]) for k in range(len(instance.sites)) if stretches[k]]
    heapq.heapify(heap)
    while heap:
        t, k, stretch, point = heapq.heappop(heap)
        limit = stretches[k][stretch][1]
        pick = None
        wake = limit
        for j in local[k]:
            if done[j]:
                continue
            setup = instance.setup(k, point, j)
            s = t + setup
            d = instance.duration[j]
            for a, b in instance.windows[j][k]:
                if a <= s + EPS and s + d <= min(b, limit) + EPS:
                    pick = (j, setup, s, s + d)
                    break
                if a > s:
                    wake = min(wake, a - setup)
                    break
            if pick:
                break
        if pick is not None:
            j, setup, s, e = pick
            done[j] = True
            rows[k].append(pick)
            heapq.heappush(heap, (e, k, stretch, j))
        elif wake < limit:
            heapq.heappush(heap, (max(wake, t + EPS), k, stretch, point))
        elif stretch + 1 < len(stretches[k]):
            nxt = stretches[k][stretch + 1]
            heapq.heappush(heap, (nxt[0], k, stretch + 1, nxt[2]))
    return build_schedule(instance, "greedy-dispatch", rows)
