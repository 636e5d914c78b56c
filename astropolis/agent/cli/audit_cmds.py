"""`astropolis audit …`: read and verify the hash-chained audit log (it has no command that writes to it)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from astropolis.agent.cli.lake_cmds import JsonFlag
from astropolis.agent.cli.output import EXIT_CHECK_FAILED, emit_json, handles_errors, stdout
from astropolis.agent.cli.runtime import Runtime
from astropolis.lake.ids import canonical_json

audit_app = typer.Typer(help="The audit log: list, show, verify, head.", no_args_is_help=True)


@audit_app.command("list")
@handles_errors
def list_entries(
    limit: Annotated[int, typer.Option(min=1, help="At most this many entries (newest first).")] = 50,
    actor: Annotated[str | None, typer.Option(help="Only this actor, e.g. person:ann.")] = None,
    tool: Annotated[str | None, typer.Option(help="Only this tool, e.g. cli.lake.ingest.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The newest audit entries."""
    entries = Runtime.load().audit.entries(limit=limit, actor=actor, tool=tool)
    if as_json:
        emit_json({"entries": [e.model_dump(mode="json") for e in entries]})
        return
    table = Table("seq", "at (UTC)", "actor", "tool", "policy", "ms", "outcome")
    for e in entries:
        outcome = f"[red]error:[/] {e.error}" if e.error else canonical_json(e.result).decode()[:60]
        table.add_row(
            str(e.seq), e.at.strftime("%Y-%m-%d %H:%M:%S"), e.actor, e.tool, e.policy, f"{e.duration_ms:.1f}", outcome
        )
    stdout.print(table)


@audit_app.command("show")
@handles_errors
def show(
    seq: Annotated[int, typer.Argument(help="Entry number.")],
    as_json: JsonFlag = False,
) -> None:
    """One audit entry in full."""
    entry = Runtime.load().audit.get(seq)
    if as_json:
        emit_json({"entry": entry.model_dump(mode="json")})
        return
    table = Table(show_header=False, box=None)
    for name, value in entry.model_dump(mode="json").items():
        rendered = canonical_json(value).decode() if isinstance(value, dict | list) else str(value)
        table.add_row(f"[bold]{name}[/]", rendered)
    stdout.print(table)


@audit_app.command("head")
@handles_errors
def head(as_json: JsonFlag = False) -> None:
    """The hash of the newest entry: save it elsewhere; `verify --head` then proves nothing was cut off."""
    seq, digest = Runtime.load().audit.head()
    if as_json:
        emit_json({"seq": seq, "hash": digest})
        return
    stdout.print(digest)


@audit_app.command("verify")
@handles_errors
def verify(
    head_hash: Annotated[str | None, typer.Option("--head", help="A head hash saved earlier by `audit head`.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Re-derive the hash chain; exit status 1 names the first edited, missing, reordered or cut-off seq."""
    report = Runtime.load().audit.verify(head=head_hash)
    if as_json:
        emit_json(report.model_dump(mode="json"))
    elif report.ok:
        stdout.print(f"[green]OK[/] {report.entries} entries, head {report.head_hash}")
    else:
        stdout.print(f"[bold red]FAILED[/] at seq {report.first_bad_seq}: {report.problem}")
    if not report.ok:
        raise typer.Exit(EXIT_CHECK_FAILED)
