"""The `astropolis` command line (typer + rich)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from astropolis import __version__
from astropolis.agent.cli import audit_cmds, lake_cmds
from astropolis.agent.cli.audit_cmds import audit_app
from astropolis.agent.cli.chat_cmds import agent_app, ask, chat
from astropolis.agent.cli.jobs_cmds import jobs_app
from astropolis.agent.cli.lake_cmds import JsonFlag, lake_app
from astropolis.agent.cli.memory_cmds import memory_app
from astropolis.agent.cli.night_cmds import night
from astropolis.agent.cli.output import CliInputError, emit_json, handles_errors, stdout
from astropolis.agent.cli.residents_cmds import residents_app
from astropolis.agent.cli.runtime import Runtime
from astropolis.agent.cli.sites_cmds import sites_app

app = typer.Typer(
    help="Astropolis: run a small network of robotic telescopes as one instrument.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(lake_app, name="lake")
app.add_typer(jobs_app, name="jobs")
app.add_typer(audit_app, name="audit")
app.add_typer(sites_app, name="sites")
app.command("night")(night)
app.add_typer(residents_app, name="residents")
app.command("ask")(ask)
app.command("chat")(chat)
app.add_typer(agent_app, name="agent")
app.add_typer(memory_app, name="memory")


def m13_frame() -> Path:
    """The real DSS image of M13 that astropy ships in its test data."""
    import astropy

    path = Path(astropy.__file__).parent / "io" / "fits" / "hdu" / "compressed" / "tests" / "data" / "m13.fits"
    if not path.is_file():
        raise CliInputError(f"{path}: astropy's M13 test frame is missing (reinstall astropy)")
    return path


@app.command("version")
def version(as_json: JsonFlag = False) -> None:
    """Print the Astropolis version."""
    if as_json:
        emit_json({"version": __version__})
    else:
        stdout.print(__version__)


@app.command("demo")
@handles_errors
def demo(
    preview: Annotated[bool, typer.Option("--preview/--no-preview", help="Draw the frame.")] = True,
    as_json: JsonFlag = False,
) -> None:
    """Ingest the real M13 frame into the lake, show it, and verify the lake and the audit log."""
    runtime = Runtime.load()
    path = m13_frame()
    if as_json:
        result = runtime.lake.ingest(path, site="skyview-dss")
        emit_json(
            {
                "home": str(runtime.settings.home),
                "frame": result.frame.model_dump(mode="json"),
                "created": result.created,
                "lake_verify": runtime.lake.verify().model_dump(mode="json"),
                "audit_verify": runtime.audit.verify().model_dump(mode="json"),
            }
        )
        return
    stdout.print(f"[bold]Astropolis demo[/] — data in {runtime.settings.home} (set ASTROPOLIS_HOME to move it)\n")
    stdout.print("1. ingest the real DSS frame of M13 shipped with astropy")
    lake_cmds.ingest(paths=[path], site="skyview-dss", as_json=False)
    frame_id = runtime.lake.frames(cone=(250.4235, 36.4613, 0.1), site="skyview-dss")[0].id
    stdout.print(f"\n2. lake show {frame_id[:19]}")
    lake_cmds.show(object_id=frame_id, preview=preview, header=False, as_json=False)
    stdout.print("\n3. lake verify")
    lake_cmds.verify(sample=None, seed=None, as_json=False)
    stdout.print("\n4. audit verify")
    audit_cmds.verify(head_hash=None, as_json=False)
    stdout.print(
        "\nNext: astropolis lake list · astropolis lake provenance ID · astropolis jobs submit --help ·"
        " astropolis audit list"
    )


def main() -> None:
    """Console-script entry point."""
    app(prog_name="astropolis")
