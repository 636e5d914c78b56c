"""One site's plan as a chain of entries kept at their earliest starts, with insertion by pushing later work.

Each entry is a job or a fixed block (the free_from sentinel, a commitment, the end-of-night sentinel). Queue
jobs sit at the earliest start their predecessor and window allow; `latest` is how late each entry could
start without breaking anything after it, so whether a job fits in a gap is one comparison, and inserting it
pushes the following jobs right by no more than they can take. Pinned entries (rapid jobs, once the rapid
lane is planned) never move: their latest start is their start.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from astropolis.tools.scheduler_instance import Instance

EPS = 1e-6
_LISTS = ("job", "movable", "point", "start", "end", "wa", "wb", "latest")


class Timeline:
    """The plan of one site (parallel lists, index 0 and -1 are sentinels)."""

    __slots__ = (
        "d",
        "end",
        "job",
        "latest",
        "movable",
        "overhead",
        "point",
        "rate",
        "sep",
        "site",
        "start",
        "wa",
        "wb",
    )

    def __init__(self, instance: Instance, site: int) -> None:
        facts = instance.sites[site]
        unknown = len(instance.sep) - 1
        self.site = site
        self.sep = instance.sep
        self.d = instance.duration
        self.overhead = facts.overhead
        self.rate = facts.inv_rate
        self.job: list[int] = [-1]
        self.movable: list[bool] = [False]
        self.point: list[int] = [facts.start_point]
        self.start: list[float] = [facts.free]
        self.end: list[float] = [facts.free]
        self.wa: list[float] = [facts.free]
        self.wb: list[float] = [facts.free]
        for a, b, p in facts.blocks:
            self._append_fixed(a, b, p)
        self._append_fixed(instance.horizon, instance.horizon, unknown)
        self.end[-1] = max(self.end[-1], self.end[-2])
        self.start[-1] = self.end[-1]
        self.latest: list[float] = list(self.start)

    def _append_fixed(self, a: float, b: float, point: int) -> None:
        self.job.append(-1)
        self.movable.append(False)
        self.point.append(point)
        self.start.append(a)
        self.end.append(b)
        self.wa.append(a)
        self.wb.append(b)

    def copy(self) -> Timeline:
        """An independent copy, for tentative moves."""
        other = Timeline.__new__(Timeline)
        for name in ("site", "sep", "d", "overhead", "rate"):
            setattr(other, name, getattr(self, name))
        for name in _LISTS:
            setattr(other, name, list(getattr(self, name)))
        return other

    def setup_into(self, i: int, job: int) -> float:
        """Setup from entry i's pointing to `job`, s."""
        return self.overhead + self.sep[self.point[i]][job] * self.rate

    def jobs(self) -> list[int]:
        """Job indices in time order."""
        return [j for j in self.job if j >= 0]

    def slots(
        self, job: int, windows: list[tuple[float, float]], first: bool = False
    ) -> list[tuple[int, float, float]]:
        """Every gap `job` fits in, or only the earliest when `first`: (gap index k, start, end) for insertion
        after entry k."""
        d = self.d[job]
        lo = bisect_left(self.latest, windows[0][0] + d) - 1
        hi = bisect_right(self.end, windows[-1][1] - d)
        found = []
        sep, rate, overhead = self.sep[job], self.rate, self.overhead
        end, latest, following_jobs, point = self.end, self.latest, self.job, self.point
        room = d + overhead - EPS  # no gap narrower than this can take the job, whatever the slews
        for k in range(max(lo, 0), min(hi, len(following_jobs) - 1)):
            nxt = k + 1
            if latest[nxt] - end[k] < room:
                continue
            t0 = end[k] + overhead + self.sep[point[k]][job] * rate
            for a, b in windows:
                if b - d >= t0:
                    s = a if a > t0 else t0
                    break
            else:
                break  # later gaps start later still
            e = s + d
            following = following_jobs[nxt]
            arrive = e if following < 0 else e + overhead + sep[following] * rate
            if arrive <= latest[nxt] + EPS:
                found.append((k, s, e))
                if first:
                    break
        return found

    def insert(self, job: int, k: int, s: float, e: float, windows: list[tuple[float, float]]) -> None:
        """Put `job` after entry k, starting at s, and push later jobs as far as needed."""
        wa, wb = next((a, b) for a, b in windows if a <= s + EPS and s + self.d[job] <= b + EPS)
        at = k + 1
        self.job.insert(at, job)
        self.movable.insert(at, True)
        self.point.insert(at, job)
        self.start.insert(at, s)
        self.end.insert(at, e)
        self.wa.insert(at, wa)
        self.wb.insert(at, wb)
        self.latest.insert(at, s)
        self._push(at + 1)
        self._relax(at, force=True)

    def remove(self, job: int) -> None:
        """Take `job` out and pull later queue jobs back to their earliest starts."""
        at = self.job.index(job)
        for name in _LISTS:
            del getattr(self, name)[at]
        self._pull(at)
        self._relax(at - 1)

    def pin_all(self) -> None:
        """Fix every entry where it stands (used once the rapid lane is planned)."""
        self.movable = [False] * len(self.job)
        self.latest = list(self.start)

    def _push(self, i: int) -> None:
        while i < len(self.job) - 1:
            j = self.job[i]
            if not self.movable[i]:
                return
            ready = self.end[i - 1] + self.setup_into(i - 1, j)
            if ready <= self.start[i]:
                return
            self.start[i] = ready
            self.end[i] = ready + self.d[j]
            i += 1

    def _pull(self, i: int) -> None:
        # Back to the earliest start inside the window the job already uses; fixed entries stay put.
        while i < len(self.job) - 1:
            if self.movable[i]:
                j = self.job[i]
                ready = self.end[i - 1] + self.setup_into(i - 1, j)
                new = ready if ready > self.wa[i] else self.wa[i]
                if new >= self.start[i] - EPS:
                    return
                self.start[i] = new
                self.end[i] = new + self.d[j]
            i += 1

    def _relax(self, i: int, force: bool = False) -> None:
        """Recompute `latest` from entry i back towards the start, until nothing changes."""
        job, movable, latest, start, wb, d = self.job, self.movable, self.latest, self.start, self.wb, self.d
        overhead, rate, sep = self.overhead, self.rate, self.sep
        first = force
        while i >= 0:
            j = job[i]
            if movable[i]:
                following = job[i + 1]
                arrive = 0.0 if following < 0 else overhead + sep[j][following] * rate
                value = min(wb[i], latest[i + 1] - arrive) - d[j]
            else:
                value = start[i]
            if value == latest[i] and not first:
                return
            latest[i] = value
            first = False
            i -= 1
