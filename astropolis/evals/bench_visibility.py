"""Observable windows: one vectorised pass vs astroplan's per-target constraint loop (target >= 10x, identical).

python -m astropolis.evals.bench_visibility [--targets 1000] [--night 2026-11-25] [--step-min 5] [--json]

Both sides get the same seeded targets (uniform on the sphere), the same per-target airmass and Moon limits, the
three demo sites and one shared time grid spanning that night at every site. The baseline builds astroplan's
`Observer` from each site's EarthLocation and evaluates AtNightConstraint.twilight_astronomical(),
AltitudeConstraint(min=horizon), AirmassConstraint(max) and MoonSeparationConstraint(min) one target at a time
(what `is_observable` does, keeping the per-time mask); windows come from both masks through the same code.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from astropolis.tools.sites import Site, demo_sites
from astropolis.tools.visibility import WindowTable, configure_offline, night_bounds, observable_windows

SEED = 20261125


def random_targets(count: int, seed: int = SEED) -> Any:
    """`count` ICRS positions uniform on the sphere, as one vector SkyCoord."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    rng = np.random.default_rng(seed)
    ra_deg = rng.uniform(0.0, 360.0, count)
    dec_deg = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, count)))
    return SkyCoord(ra_deg * u.deg, dec_deg * u.deg, frame="icrs")


def random_limits(count: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Per-target max airmass in [1.3, 3] and min Moon separation in [10, 60] deg, as jobs would carry."""
    rng = np.random.default_rng(seed + 1)
    return rng.uniform(1.3, 3.0, count), rng.uniform(10.0, 60.0, count)


def night_span(sites: list[Site], night: date, step: timedelta) -> tuple[datetime, datetime]:
    """From the earliest dusk to the latest dawn of the night starting on `night` (local noon) at each site."""
    nights = []
    for site in sites:
        local_noon = datetime(night.year, night.month, night.day, 12, tzinfo=UTC)
        nights.append(night_bounds(site, local_noon - timedelta(hours=site.longitude_deg / 15.0)))
    start = min(n.dusk for n in nights)
    start = start - timedelta(seconds=start.timestamp() % step.total_seconds())
    return start, max(n.dawn for n in nights)


def astroplan_masks(
    sites: list[Site],
    targets: Any,
    grid: Any,
    max_airmass: np.ndarray,
    min_moon_deg: np.ndarray,
    *,
    per_target: bool = True,
) -> dict[str, np.ndarray]:
    """astroplan's constraints on the same grid; (targets, times) masks per site. The baseline evaluates them
    target by target (`per_target`); given all targets at once it is shown only for context."""
    from astroplan import (
        AirmassConstraint,
        AltitudeConstraint,
        AtNightConstraint,
        MoonSeparationConstraint,
        Observer,
    )
    from astropy import units as u
    from astropy.coordinates.errors import NonRotationTransformationWarning

    def evaluate(observer: Any, chosen: Any, airmass: Any, moon_deg: Any, horizon_deg: float) -> np.ndarray:
        constraints = [
            AtNightConstraint.twilight_astronomical(),
            AltitudeConstraint(min=horizon_deg * u.deg),
            AirmassConstraint(max=airmass),
            MoonSeparationConstraint(min=moon_deg * u.deg),
        ]
        with warnings.catch_warnings():
            # astroplan measures Moon separations in the Moon's GCRS frame on purpose; astropy warns about it.
            warnings.filterwarnings("ignore", category=NonRotationTransformationWarning)
            results = [c(observer, chosen, times=grid, grid_times_targets=True) for c in constraints]
        return np.logical_and.reduce(results)

    masks = {}
    for site in sites:
        observer = Observer(location=site.location(), name=site.name)
        if per_target:
            mask = np.zeros((len(targets), len(grid)), dtype=bool)
            for i in range(len(targets)):
                mask[i] = evaluate(
                    observer, targets[i], float(max_airmass[i]), float(min_moon_deg[i]), site.horizon_deg
                )[0]
        else:
            mask = evaluate(
                observer, targets, max_airmass[:, np.newaxis], min_moon_deg[:, np.newaxis], site.horizon_deg
            )
        masks[site.name] = mask
    return masks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--night", type=date.fromisoformat, default=date(2026, 11, 25))
    parser.add_argument("--step-min", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the vectorised pass (best is reported)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    configure_offline()
    sites = list(demo_sites())
    step = timedelta(minutes=args.step_min)
    targets = random_targets(args.targets)
    max_airmass, min_moon_deg = random_limits(args.targets)
    start, end = night_span(sites, args.night, step)

    def run() -> WindowTable:
        table = observable_windows(
            sites, targets, start, end, max_airmass=max_airmass, min_moon_separation_deg=min_moon_deg, step=step
        )
        _ = table.windows  # deriving the windows is part of the job
        return table

    run()  # warm astropy's caches (ephemerides, IERS tables) so neither side pays for them
    ours_s = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        table = run()
        ours_s.append(time.perf_counter() - started)
    started = time.perf_counter()
    masks = astroplan_masks(sites, targets, table.grid, max_airmass, min_moon_deg)
    reference = WindowTable(
        site_names=table.site_names,
        n_targets=table.n_targets,
        grid=table.grid,
        grid_utc=table.grid_utc,
        step=table.step,
        end=table.end,
        observable=masks,
        altitude_deg=table.altitude_deg,
        airmass=table.airmass,
    )
    _ = reference.windows
    astroplan_s = time.perf_counter() - started
    started = time.perf_counter()
    vector_masks = astroplan_masks(sites, targets, table.grid, max_airmass, min_moon_deg, per_target=False)
    vector_s = time.perf_counter() - started
    differing_pairs = sum(table.windows[key] != reference.windows[key] for key in table.windows)
    differing_points = sum(int(np.count_nonzero(table.observable[s] != masks[s])) for s in table.site_names)
    figures = {
        "targets": args.targets,
        "sites": len(sites),
        "grid_points": len(table.grid_utc),
        "grid_start": start.isoformat(),
        "grid_end": end.isoformat(),
        "step_min": args.step_min,
        "observable_windows_s": round(min(ours_s), 4),
        "astroplan_loop_s": round(astroplan_s, 3),
        "speed_ratio": round(astroplan_s / min(ours_s), 1),
        "differing_pairs": differing_pairs,
        "astroplan_vectorised_s": round(vector_s, 3),
        "astroplan_vectorised_differing_points": sum(
            int(np.count_nonzero(table.observable[s] != vector_masks[s])) for s in table.site_names
        ),
        "differing_grid_points": differing_points,
        "windows": sum(len(w) for w in table.windows.values()),
        "pairs_with_windows": sum(bool(w) for w in table.windows.values()),
        "target_speed_ratio": 10,
    }
    if args.json:
        print(json.dumps(figures))
        return 0
    pairs = args.targets * len(sites)
    grid = f"{figures['grid_points']} grid points at {args.step_min:g} min"
    print(f"{args.targets:,} targets x {len(sites)} sites, {grid}")
    print(f"  grid: {start.isoformat()} .. {end.isoformat()}")
    print(f"  observable_windows (vectorised, best of {args.rounds}) : {figures['observable_windows_s']:.3f} s")
    print(f"  astroplan per-target loop                 : {figures['astroplan_loop_s']:.1f} s")
    print(f"  speed ratio                               : {figures['speed_ratio']:.1f}x  (target >= 10x)")
    print(f"  (target, site) pairs whose windows differ : {differing_pairs} of {pairs:,}  (target 0)")
    print(f"  grid points that differ                   : {differing_points}")
    print(
        f"  for context, astroplan given all targets at once: {vector_s:.2f} s, "
        f"{figures['astroplan_vectorised_differing_points']} grid points differ"
    )
    print(f"  windows found: {figures['windows']:,} over {figures['pairs_with_windows']:,} pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
