"""Read tools over the sites: where each is, whether it is dark, its night, its jobs and frames, and — when its
driver answers — its devices (connection, safety, weather, park, camera). Also the status-only driver probe the
`sites status` command uses."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field

from astropolis.lake.blobs import PutResult
from astropolis.memory import JobState
from astropolis.tools.deps import ToolDeps
from astropolis.tools.drivers import CommandJournal, SiteStatus
from astropolis.tools.errors import BadArguments, DriverError, OperatorError, Refused
from astropolis.tools.registry import Tool, ToolInput, ToolOutput
from astropolis.tools.sites import Site

STATUS_TIMEOUT_S = 2.0


class _NoFrames:
    """The frame store of a status-only driver: it never exposes, so nothing is ever stored."""

    def put_bytes(self, data: bytes) -> PutResult:
        """Refuse: status checks take no frames."""
        raise OperatorError("a status check takes no frames")

    def read_bytes(self, object_id: str) -> bytes:
        """Refuse: status checks read no frames."""
        raise OperatorError("a status check reads no frames")


def probe(site: Site, *, connect: bool) -> tuple[SiteStatus | None, str | None]:
    """A site's status through its driver (after connecting its devices when `connect`), or the error."""
    if site.driver.kind != "alpaca":
        return None, f"{site.driver.kind} sites are not probed yet"
    from astropolis.tools.drivers.alpaca import AlpacaDriver

    journal = CommandJournal("sqlite:///:memory:")
    driver = AlpacaDriver(site, journal=journal, frames=_NoFrames(), timeout_s=STATUS_TIMEOUT_S)
    try:
        if connect:
            driver.connect()
        return driver.status(), None
    except DriverError as error:
        return None, str(error)
    finally:
        driver.close()
        journal.close()


Prober = Callable[[Site], tuple[SiteStatus | None, str | None]]


class SiteStatusInput(ToolInput):
    """Which site (default: all)."""

    site: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,63}$", description="Site name.")


class SiteRow(ToolOutput):
    """One site now."""

    site: str = Field(description="Site name.")
    latitude_deg: float = Field(description="Latitude, degrees north.")
    longitude_deg: float = Field(description="Longitude, degrees east.")
    dark_now: bool = Field(description="Sun below -18 degrees now.")
    sun_altitude_deg: float = Field(description="Sun altitude now, degrees.")
    night: tuple[datetime, datetime] | None = Field(description="The current or next astronomical night, UTC.")
    active_jobs: list[str] = Field(description="Jobs scheduled or in progress there.")
    frames_last_24h: int = Field(description="Frames it took in the last 24 hours.")
    devices: dict[str, Any] | None = Field(description="Live driver status, when it answered.")
    devices_error: str | None = Field(description="Why there is no live status.")


class SiteReportOutput(ToolOutput):
    """The sites now."""

    at: datetime = Field(description="When, UTC.")
    sites: list[SiteRow] = Field(description="One row per site.")


def site_status(deps: ToolDeps, args: SiteStatusInput) -> SiteReportOutput:
    """Each site: dark or not, its night, its active jobs and recent frames, and its devices if they answer."""
    from astropolis.tools.visibility import night_bounds, sun_altitude_deg

    wanted = None if args.site is None else args.site.strip().lower().replace(" ", "-")
    sites = [s for s in deps.sites if wanted is None or s.name == wanted]
    if not sites:
        raise BadArguments(f"no site {args.site!r}; sites: {', '.join(deps.sites.names)}")
    now = deps.clock.now()
    active = deps.ledger.jobs(states=[JobState.SCHEDULED, JobState.IN_PROGRESS])
    prober: Prober | None = deps.site_probe
    rows = []
    for site in sites:
        try:
            night = night_bounds(site, now)
            bounds: tuple[datetime, datetime] | None = (night.dusk, night.dawn)
        except Refused:
            bounds = None
        sun = sun_altitude_deg(site, now)
        devices: dict[str, Any] | None = None
        error: str | None = "not probed (no driver connection in this run)"
        if prober is not None:
            status, error = prober(site)
            devices = status.model_dump(mode="json") if status is not None else None
        rows.append(
            SiteRow(
                site=site.name,
                latitude_deg=site.latitude_deg,
                longitude_deg=site.longitude_deg,
                dark_now=sun <= -18.0,
                sun_altitude_deg=round(sun, 1),
                night=bounds,
                active_jobs=[f"job {j.id} {j.state.value}" for j in active if j.site == site.name],
                frames_last_24h=len(deps.lake.frames(site=site.name, since=now - timedelta(hours=24), until=now)),
                devices=devices,
                devices_error=error,
            )
        )
    return SiteReportOutput(at=now, sites=rows)


TOOLS: list[Tool[Any, Any]] = [
    Tool(
        "site_status",
        "read",
        "Each site now: dark or not, its night, jobs running there, recent frames, and its "
        "devices (safety, weather, camera) when they answer.",
        SiteStatusInput,
        SiteReportOutput,
        site_status,
    ),
]
