"""Read tools over the sky: resolve a target name offline, and when it is observable from which site."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from pydantic import Field, model_validator

from astropolis.tools.deps import ToolDeps
from astropolis.tools.errors import BadArguments
from astropolis.tools.registry import Tool, ToolInput, ToolOutput
from astropolis.tools.targets import ResolvedTarget, resolve_name

TARGET_NAME = r"^[A-Za-z0-9][A-Za-z0-9 '._+\-]{0,47}$"


class TargetInput(ToolInput):
    """A target by catalogue or common name, or by ICRS coordinates."""

    name: str | None = Field(default=None, pattern=TARGET_NAME, description="e.g. 'M51', 'NGC 4656', 'Andromeda'.")
    ra_deg: float | None = Field(default=None, ge=0, lt=360, description="ICRS RA, degrees (instead of a name).")
    dec_deg: float | None = Field(default=None, ge=-90, le=90, description="ICRS Dec, degrees (instead of a name).")

    @model_validator(mode="after")
    def _one_way(self) -> TargetInput:
        if self.name is None and (self.ra_deg is None or self.dec_deg is None):
            raise ValueError("give a target name, or both ra_deg and dec_deg")
        return self

    def position(self) -> tuple[str, float, float]:
        """(label, ra_deg, dec_deg), resolving the name offline."""
        if self.name is not None:
            found = resolve_name(self.name)
            return found.name, found.ra_deg, found.dec_deg
        assert self.ra_deg is not None and self.dec_deg is not None
        return f"RA {self.ra_deg:.4f} Dec {self.dec_deg:+.4f}", self.ra_deg, self.dec_deg


class ResolveInput(ToolInput):
    """A target name."""

    name: str = Field(pattern=TARGET_NAME, description="e.g. 'M51', 'NGC 4656', 'Crab Nebula'.")


def resolve_target(deps: ToolDeps, args: ResolveInput) -> ResolvedTarget:
    """Position and type of a named target from OpenNGC (offline)."""
    return resolve_name(args.name)


class VisibilityInput(TargetInput):
    """Is a target observable, from which sites, on which night."""

    site: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,63}$", description="One site (default: every site)."
    )
    night: date | None = Field(default=None, description="Night starting on this UTC date (default: tonight).")
    max_airmass: float = Field(default=2.0, ge=1.0, le=5.0, description="Highest airmass accepted.")


class SiteVisibility(ToolOutput):
    """A target's visibility from one site on one night."""

    site: str = Field(description="Site name.")
    observable: bool = Field(
        description="Some time that night with Sun < -18 deg, above the horizon limit, airmass ok."
    )
    windows: list[tuple[datetime, datetime]] = Field(description="Observable intervals, UTC.")
    observable_hours: float = Field(description="Total observable time, hours.")
    best_at: datetime | None = Field(description="When it is highest while observable, UTC.")
    max_altitude_deg: float | None = Field(description="Its highest altitude while observable, degrees.")
    min_airmass: float | None = Field(description="Its lowest airmass while observable.")
    peak_altitude_deg: float = Field(description="Its highest altitude over the whole span, dark or not, degrees.")
    horizon_deg: float = Field(description="The site's lowest observing altitude, degrees.")


class Visibility(ToolOutput):
    """A target's visibility over the network for one night."""

    target: str = Field(description="The target as resolved.")
    ra_deg: float = Field(description="ICRS RA, degrees.")
    dec_deg: float = Field(description="ICRS Dec, degrees.")
    start: datetime = Field(description="Start of the span checked, UTC.")
    end: datetime = Field(description="End of the span checked, UTC.")
    sites: list[SiteVisibility] = Field(description="One entry per site checked.")


def check_visibility(deps: ToolDeps, args: VisibilityInput) -> Visibility:
    """When a target is observable from each site during one night (offline astroplan-style constraints)."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    from astropolis.tools.visibility import observable_windows

    label, ra, dec = args.position()
    sites = [s for s in deps.sites if args.site is None or s.name == args.site.strip().lower().replace(" ", "-")]
    if not sites:
        raise BadArguments(f"no site {args.site!r}; sites: {', '.join(deps.sites.names)}")
    now = deps.clock.now()
    if args.night is None:
        # "Tonight": the coming 24 hours from now, which holds every site's next night.
        start = now
    else:
        start = datetime(args.night.year, args.night.month, args.night.day, 12, tzinfo=now.tzinfo)
    end = start + timedelta(hours=24)
    table = observable_windows(
        tuple(sites),
        SkyCoord([ra] * u.deg, [dec] * u.deg),
        start,
        end,
        max_airmass=args.max_airmass,
        min_moon_separation_deg=0.0,
    )
    rows = []
    for site in sites:
        windows = table.windows_of(0, site.name)
        mask = table.observable[site.name][0]
        altitude = table.altitude_deg[site.name][0]
        best = int(altitude.argmax() if not mask.any() else (altitude * mask - 1e9 * ~mask).argmax())
        rows.append(
            SiteVisibility(
                site=site.name,
                observable=bool(windows),
                windows=[(w.start, w.end) for w in windows],
                observable_hours=round(sum(w.duration.total_seconds() for w in windows) / 3600.0, 2),
                best_at=table.grid_utc[best] if mask.any() else None,
                max_altitude_deg=round(float(altitude[best]), 1) if mask.any() else None,
                min_airmass=round(float(table.airmass[site.name][0][best]), 3) if mask.any() else None,
                peak_altitude_deg=round(float(altitude.max()), 1),
                horizon_deg=site.horizon_deg,
            )
        )
    return Visibility(target=label, ra_deg=ra, dec_deg=dec, start=start, end=end, sites=rows)


TOOLS: list[Tool[Any, Any]] = [
    Tool(
        "resolve_target",
        "read",
        "Look up a target by name (Messier, NGC, IC or common name) in OpenNGC.",
        ResolveInput,
        ResolvedTarget,
        resolve_target,
    ),
    Tool(
        "check_visibility",
        "read",
        "Is a target observable tonight (or on a given night), from which sites, when and how high.",
        VisibilityInput,
        Visibility,
        check_visibility,
    ),
]
