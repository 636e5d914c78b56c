"""`astropolis sites …`: start the simulated sites (one alpaca-simulators process per site, on loopback), show
every site's devices through its driver, and stop exactly the processes that were started."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from astropolis.agent.cli.lake_cmds import JsonFlag
from astropolis.agent.cli.output import CliInputError, emit_json, handles_errors, stderr, stdout
from astropolis.agent.cli.runtime import Runtime
from astropolis.tools.simulators.alpaca import AlpacaSimulators, demo_sky
from astropolis.tools.site_tools import probe
from astropolis.tools.sites import Site, SiteRegistry, demo_sites

sites_app = typer.Typer(
    help="Telescope sites: start the simulated demo sites, check every site's devices, stop them.",
    no_args_is_help=True,
)

REGISTRY = Path("sites") / "registry.toml"

SitesOption = Annotated[Path | None, typer.Option("--sites", help="Site registry file (TOML of [[site]] tables).")]


def _registry(home: Path, sites_file: Path | None) -> SiteRegistry:
    if sites_file is not None:
        return SiteRegistry.from_toml(sites_file)
    recorded = home / REGISTRY
    if not recorded.is_file():
        raise CliInputError("no sites recorded here; run `astropolis sites up --demo` or pass --sites FILE")
    return SiteRegistry.from_toml(recorded)


def _report(site: Site, simulators: AlpacaSimulators, *, connect: bool) -> dict[str, Any]:
    record = simulators.records().get(site.name)
    process = None
    if record is not None:
        process = {"pid": record.pid, "alive": simulators.alive(record), "log": str(record.log)}
    status, error = probe(site, connect=connect)
    return {
        "site": site.name,
        "endpoint": f"{site.driver.host}:{site.driver.port}",
        "process": process,
        "status": status.model_dump(mode="json") if status else None,
        "error": error,
    }


def _yes(value: object) -> str:
    return "—" if value is None else ("yes" if value else "no")


def _number(value: object, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def _table(reports: list[dict[str, Any]], actions: Mapping[str, str] | None = None) -> Table:
    columns = ["site", "endpoint", "process", "connected", "safe", "cloud %", "wind m/s", "humid %"]
    table = Table(*columns, "parked", "slewing", "camera", *(["action"] if actions else []), "note")
    for report in reports:
        process = report["process"]
        if process is None:
            running = "none"
        else:
            running = f"[green]up[/] {process['pid']}" if process["alive"] else f"[red]dead[/] {process['pid']}"
        status = report["status"] or {}
        weather = status.get("weather") or {}
        table.add_row(
            report["site"],
            report["endpoint"],
            running,
            _yes(status.get("connected")),
            _yes(status.get("safe")),
            _number(weather.get("cloud_cover_pct"), ".0f"),
            _number(weather.get("wind_mps"), ".1f"),
            _number(weather.get("humidity_pct"), ".0f"),
            _yes(status.get("parked")),
            _yes(status.get("slewing")),
            status.get("camera_state", "—"),
            *([actions.get(report["site"], "—")] if actions else []),
            f"[red]{report['error']}[/]" if report["error"] else "",
        )
    return table


@sites_app.command("up")
@handles_errors
def up(
    demo: Annotated[bool, typer.Option("--demo", help="The three demo sites, each on its own simulator.")] = False,
    sites_file: SitesOption = None,
    base_port: Annotated[
        int | None, typer.Option("--base-port", min=1024, max=65000, help="First port of the demo sites.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Start a simulator per local Alpaca site (idempotent: running ones are left alone), connect, report."""
    if demo == (sites_file is not None):
        raise CliInputError("pass exactly one of --demo or --sites FILE")
    if base_port is not None and not demo:
        raise CliInputError("--base-port only applies to --demo (a registry file names its own ports)")
    runtime = Runtime.load()
    home = runtime.settings.home
    registry = demo_sites("alpaca", base_port=base_port) if sites_file is None else SiteRegistry.from_toml(sites_file)
    local = [s for s in registry if s.driver.kind == "alpaca" and s.driver.host in ("127.0.0.1", "localhost", "::1")]
    arguments = {"demo": demo, "sites": str(sites_file) if sites_file else None, "base_port": base_port}
    simulators = AlpacaSimulators(home)
    with runtime.audited("cli.sites.up", up, arguments) as call:
        sky = demo_sky(home)
        results = simulators.up(local, sky)
        (home / REGISTRY).write_text(registry.to_toml())
        call.result = {r.record.site: {"pid": r.record.pid, "port": r.record.port, "action": r.action} for r in results}
    actions = {r.record.site: r.action for r in results}
    reports = [_report(site, simulators, connect=True) for site in local]
    if as_json:
        emit_json(
            {
                "home": str(home),
                "sky": str(sky.path),
                "sites": [{**report, "action": actions.get(report["site"])} for report in reports],
            }
        )
    else:
        stdout.print(_table(reports, actions))
        started = [r for r in results if r.action != "running"]
        if started:
            slowest = max(r.record.startup_s for r in started)
            stderr.print(
                f"{len(started)} simulator(s) started (slowest answered after {slowest:.1f} s); sky {sky.path}"
            )
        skipped = [s.name for s in registry if s not in local]
        if skipped:
            stderr.print(f"not simulated here (not a loopback Alpaca site): {', '.join(skipped)}")
    if any(report["error"] for report in reports):
        raise typer.Exit(2)


@sites_app.command("status")
@handles_errors
def status(sites_file: SitesOption = None, as_json: JsonFlag = False) -> None:
    """Each site's process, connection, safety, weather, mount and camera, read through its driver."""
    home = Runtime.load().settings.home
    registry = _registry(home, sites_file)
    simulators = AlpacaSimulators(home)
    reports = [_report(site, simulators, connect=False) for site in registry]
    if as_json:
        emit_json({"sites": reports})
        return
    stdout.print(_table(reports))


@sites_app.command("down")
@handles_errors
def down(as_json: JsonFlag = False) -> None:
    """Stop exactly the simulator processes `sites up` started here (by their recorded PIDs)."""
    runtime = Runtime.load()
    simulators = AlpacaSimulators(runtime.settings.home)
    with runtime.audited("cli.sites.down", down, {}) as call:
        stopped = simulators.down()
        call.result = {r.site: {"pid": r.pid, "was_running": running} for r, running in stopped}
    if as_json:
        emit_json(
            {
                "simulators": [
                    {"site": r.site, "pid": r.pid, "port": r.port, "action": "stopped" if running else "already gone"}
                    for r, running in stopped
                ]
            }
        )
        return
    if not stopped:
        stderr.print("no simulators were recorded here")
    for record, running in stopped:
        done = "stopped" if running else "forgot (already gone)"
        stdout.print(f"[green]✓[/] {done} {record.site} (pid {record.pid}, port {record.port})")
