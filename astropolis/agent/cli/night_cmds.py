"""`astropolis night`: one night on the network on a simulated clock — seeded observe jobs on real OpenNGC
galaxies, planned by visibility and the scheduler, executed by real drivers, every frame into the lake."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from astropolis.agent.cli.lake_cmds import JsonFlag
from astropolis.agent.cli.output import CliInputError, emit_json, handles_errors, stderr, stdout
from astropolis.agent.cli.runtime import Runtime
from astropolis.lake import Lake
from astropolis.lake.clock import ManualClock
from astropolis.memory import AuditLog, Ledger
from astropolis.tools.drivers import CommandJournal, Driver, open_driver
from astropolis.tools.errors import DriverError
from astropolis.tools.night import Fault, NightEvent, NightRunner, SiteControls, SkyEvent
from astropolis.tools.night_residents import NightResidents
from astropolis.tools.planning import NetworkPlanner, demo_requests, network_night
from astropolis.tools.residents import ResidentRunner
from astropolis.tools.sites import SiteRegistry, demo_sites


class _FakeControls:
    """Fault switches of in-process fake sites."""

    def __init__(self, drivers: dict[str, Driver]) -> None:
        self.drivers = drivers

    def set_safe(self, site: str, safe: bool) -> None:
        self.drivers[site].safe = safe  # type: ignore[attr-defined]

    def set_cloud_cover(self, site: str, percent: float) -> None:
        self.drivers[site].cloud_cover_pct = percent  # type: ignore[attr-defined]

    def kill(self, site: str) -> None:
        self.drivers[site].dead = True  # type: ignore[attr-defined]

    def add_source(self, ra_deg: float, dec_deg: float, mag: float, label: str) -> None:
        for driver in self.drivers.values():
            driver.new_sources.append((ra_deg, dec_deg, mag))  # type: ignore[attr-defined]


class _SimulatorControls:
    """Fault switches of simulator processes (Alpaca or INDI) and the shared demo sky they render."""

    def __init__(self, simulators: Any, sky: Any) -> None:
        self.simulators = simulators
        self.sky = sky

    def set_safe(self, site: str, safe: bool) -> None:
        self.simulators.set_safe(site, safe)

    def set_cloud_cover(self, site: str, percent: float) -> None:
        self.simulators.set_cloud_cover(site, percent)

    def kill(self, site: str) -> None:
        self.simulators.kill(site)

    def add_source(self, ra_deg: float, dec_deg: float, mag: float, label: str) -> None:
        self.sky.add_source(ra_deg, dec_deg, mag, label=label)


class _IndiSimulators:
    """INDI simulators started for this night, addressed by site name."""

    def __init__(self, simulators: dict[str, Any]) -> None:
        self.simulators = simulators

    def set_safe(self, site: str, safe: bool) -> None:
        self.simulators[site].set_safe(safe)

    def set_cloud_cover(self, site: str, percent: float) -> None:
        self.simulators[site].set_cloud_cover(percent)

    def kill(self, site: str) -> None:
        self.simulators[site].kill()


@contextlib.contextmanager
def simulated_sites(home: Path, registry: SiteRegistry, backend: str) -> Iterator[SiteControls | None]:
    """Start the demo sites' simulators if they are not running; stop afterwards those started here."""
    if backend == "fake":
        yield None
        return
    from astropolis.tools.simulators.alpaca import demo_sky

    sky = demo_sky(home)
    if backend == "alpaca":
        from astropolis.tools.simulators.alpaca import AlpacaSimulators

        simulators = AlpacaSimulators(home)
        started = [r.record.site for r in simulators.up(registry.sites, sky) if r.action != "running"]
        try:
            yield _SimulatorControls(simulators, sky)
        finally:
            for name in started:
                simulators.stop(name)
        return
    from astropolis.tools.simulators.indi import IndiSimulator

    running: dict[str, Any] = {}
    try:
        for site in registry.sites:
            running[site.name] = IndiSimulator(site, sky, home / "sites" / "indi" / site.name).start()
        yield _SimulatorControls(_IndiSimulators(running), sky)
    finally:
        for simulator in running.values():
            simulator.stop()


def _when(text: str | None) -> datetime:
    try:
        day = date.fromisoformat(text) if text else datetime.now(UTC).date()
    except ValueError:
        raise CliInputError(f"--date {text!r} is not a date (YYYY-MM-DD)") from None
    return datetime.combine(day, time(12, 0), tzinfo=UTC)


def _demo_faults(nights: dict[str, tuple[datetime, datetime]]) -> list[Fault]:
    """Clouds roll over Chile two hours into its night and clear an hour and a half later."""
    if "chile" not in nights:
        return []
    dusk = nights["chile"][0]
    return [
        Fault(dusk + timedelta(hours=2), "chile", "clouds", 85.0),
        Fault(dusk + timedelta(hours=3.5), "chile", "clear"),
    ]


# A supernova in M77 (NGC 1068), 21" east and 10" north of the nucleus, appearing five hours after the first
# dusk: after La Palma's first epoch of M77 and before the second epoch, taken later in the night elsewhere.
DEMO_SUPERNOVA = (40.67541, -0.01052, "SN 2026demo in M77")
DEMO_SUPERNOVA_MAG = {"alpaca": 13.5, "indi": 13.5, "fake": -8.5}  # the fake sky counts in instrumental mags


def _demo_sky_events(first_dusk: datetime, backend: str) -> list[SkyEvent]:
    ra_deg, dec_deg, label = DEMO_SUPERNOVA
    return [SkyEvent(first_dusk + timedelta(hours=5), ra_deg, dec_deg, DEMO_SUPERNOVA_MAG[backend], label)]


def _print_event(event: NightEvent) -> None:
    job = f" job {event.job_id}" if event.job_id is not None else ""
    stderr.print(f"{event.at:%m-%d %H:%M:%S} {event.site:>13} {event.kind:<11}{job} {event.detail}", markup=False)


def _print_report(report: dict[str, Any]) -> None:
    jobs = Table("job", "target", "pri", "state", "site", "frames", "attempts", "last reason")
    for row in report["jobs"]:
        jobs.add_row(
            str(row["id"]),
            row["target"] or "—",
            str(row["priority"]),
            row["state"],
            row["site"] or "—",
            str(len(row["frames"])),
            str(row["attempts"]),
            row["last_reason"][:60],
        )
    stdout.print(jobs)
    sites = Table("site", "dusk (UTC)", "dawn (UTC)", "frames", "completed", "state")
    for row in report["sites"]:
        state = (
            "[green]ok[/]"
            if row["alive"] and not row["closed_reason"]
            else (f"[red]dead[/]: {row['closed_reason']}" if not row["alive"] else f"closed: {row['closed_reason']}")
        )
        sites.add_row(
            row["name"],
            row["dusk"][5:16].replace("T", " "),
            row["dawn"][5:16].replace("T", " "),
            str(row["frames"]),
            str(row["completed"]),
            state,
        )
    stdout.print(sites)
    for event in report["events"]:
        if event["kind"] in (
            "closed",
            "dead",
            "refused",
            "handed-back",
            "fault",
            "reopened",
            "sky",
            "job",
            "transients",
            "review",
        ) and not (event["kind"] == "transients" and event["detail"].endswith(", 0 real")):
            job = f" job {event['job_id']}" if event["job_id"] is not None else ""
            stdout.print(
                f"  {event['at'][5:19].replace('T', ' ')} {event['site']}{job}: {event['kind']} — {event['detail']}",
                markup=False,
            )
    for row in report.get("follow_ups", []):
        frames = len(row["follow_up_frames"])
        stdout.print(
            f"  follow-up job {row['job']} ({row['kind']}, {row['lane']}): {row['resident']} on {row['frame_site']} "
            f"frame {row['frame'][7:19]} → product {row['product'][7:19]} → {row['follow_up_site'] or 'no site yet'}, "
            f"{frames} frame(s), {row['state']}"
            + (f"; {row['confirmation']['summary']}" if row.get("confirmation") else ""),
            markup=False,
        )
    totals = report["totals"]
    residents = ", ".join(f"{name} {count}" for name, count in report.get("residents", {}).items())
    stdout.print(
        f"[bold]{totals['completed']} of {totals['jobs']} jobs completed[/], {totals['frames']} frames; "
        f"{totals['pending']} pending, {totals['expired']} expired, {totals['failed']} failed"
        + (f"; products: {residents}" if residents else "")
    )


@handles_errors
def night(
    sites: Annotated[str, typer.Option("--sites", help="'demo', or a site registry TOML file.")] = "demo",
    backend: Annotated[str, typer.Option(help="Demo sites' backend: alpaca, indi or fake.")] = "alpaca",
    agent: Annotated[bool, typer.Option("--agent/--no-agent", help="Let the agent run the night.")] = False,
    night_date: Annotated[str | None, typer.Option("--date", help="Night starting on this UTC date.")] = None,
    speed: Annotated[float | None, typer.Option(min=1.0, help="Pace idle time at N x real time.")] = None,
    fault: Annotated[list[str] | None, typer.Option(help="SITE:ACTION[=VALUE]@+HOURSh after the first dusk.")] = None,
    demo_faults: Annotated[bool, typer.Option("--demo-faults/--no-demo-faults", help="Clouds over Chile.")] = True,
    demo_transient: Annotated[
        bool, typer.Option("--demo-transient/--no-demo-transient", help="A supernova appears in M77.")
    ] = True,
    residents: Annotated[
        bool, typer.Option("--residents/--no-residents", help="Run quality, transients and anomaly on every frame.")
    ] = True,
    exposure: Annotated[float, typer.Option(min=0.01, max=600.0, help="Seconds per demo exposure.")] = 3.0,
    base_port: Annotated[
        int | None, typer.Option("--base-port", min=1024, max=65000, help="First port of the demo sites.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Print the night's events as they happen.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Run one night on the network: what was observed where, what failed and why."""
    if agent:
        raise CliInputError("the agent does not run nights yet; use --no-agent")
    if backend not in ("alpaca", "indi", "fake"):
        raise CliInputError(f"--backend {backend!r} must be alpaca, indi or fake")
    runtime = Runtime.load()
    settings = runtime.settings
    demo = sites == "demo"
    if base_port is not None and not demo:
        raise CliInputError("--base-port only applies to --sites demo (a registry file names its own ports)")
    registry = (
        demo_sites(backend, base_port=base_port) if demo else SiteRegistry.from_toml(Path(sites))  # type: ignore[arg-type]
    )
    start = _when(night_date)
    nights = network_night(registry, start)
    if not nights:
        raise CliInputError(f"no site has an astronomical night after {start:%Y-%m-%d %H:%M} UTC")
    first_dusk = min(d for d, _ in nights.values())
    last_dawn = max(d for _, d in nights.values())
    faults = [Fault.parse(text, first_dusk) for text in fault or []]
    if demo and demo_faults:
        faults.extend(_demo_faults(nights))
    clock = ManualClock(start)
    lake = Lake(settings.lake_dir, catalog_url=settings.url("catalog"), clock=clock, harden=settings.harden_blobs)
    ledger = Ledger(settings.url("ledger"), clock=clock, lease_s=settings.lease_s)
    audit = AuditLog(settings.url("audit"), clock=clock)
    journal = CommandJournal(f"sqlite:///{settings.home / 'commands.db'}", clock=clock)
    actor = f"night:{start:%Y-%m-%d}"
    arguments = {"sites": sites, "backend": backend, "date": f"{start:%Y-%m-%d}", "faults": [str(f) for f in faults]}
    with (
        runtime.audited("cli.night", night, arguments) as call,
        simulated_sites(settings.home, registry, backend if demo else "none") as controls,
    ):
        if demo:
            for request in demo_requests(registry, first_dusk, last_dawn, exposure_s=exposure):
                ledger.submit(request, actor=actor)
        drivers: dict[str, Driver] = {}
        for site in registry.sites:
            if site.name in nights:
                drivers[site.name] = open_driver(site, journal=journal, frames=lake.blobs, clock=clock)
        if controls is None and demo and backend == "fake":
            controls = _FakeControls(drivers)
        night_residents = (
            NightResidents(ResidentRunner(lake, ledger=ledger, audit=audit, clock=clock, sites=registry))
            if residents
            else None
        )
        sky_events = _demo_sky_events(first_dusk, backend) if demo and demo_transient else []
        runner = NightRunner(
            sites=registry,
            drivers=drivers,
            lake=lake,
            ledger=ledger,
            audit=audit,
            clock=clock,
            planner=NetworkPlanner(registry, last_dawn),
            nights={n: nights[n] for n in drivers},
            controls=controls,
            faults=faults,
            speed=speed,
            on_event=_print_event if verbose else None,
            residents=night_residents,
            sky_events=sky_events,
        )
        for name, driver in drivers.items():
            try:
                driver.connect()
            except DriverError as error:
                runner.executors[name].mark_dead(str(error))
        try:
            runner.run()
        finally:
            for driver in drivers.values():
                driver.close()
        report = {"date": f"{start:%Y-%m-%d}", "backend": backend if demo else "registry", **runner.report()}
        call.result = {"totals": report["totals"]}
    if as_json:
        emit_json(report)
    else:
        stderr.print(
            f"night of {report['date']}: {first_dusk:%m-%d %H:%M} → {last_dawn:%m-%d %H:%M} UTC on "
            f"{', '.join(drivers)} ({report['backend']})"
        )
        _print_report(report)
