"""`astropolis lake …`: ingest frames, list, show, cat, provenance, verify. There is no command that
changes or removes anything in the lake, by design."""

from __future__ import annotations

import base64
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from astropolis.agent.cli.output import (
    EXIT_BAD_INPUT,
    EXIT_CHECK_FAILED,
    CliInputError,
    emit_json,
    handles_errors,
    stderr,
    stdout,
)
from astropolis.agent.cli.preview import fits_header_text, image_array, render
from astropolis.agent.cli.runtime import Runtime
from astropolis.lake import Frame, IngestResult, Lake, LakeError, Product

lake_app = typer.Typer(
    help="The immutable lake: ingest frames; list, show, cat, trace and verify objects.", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]


def short(object_id: str) -> str:
    """An id abbreviated for tables (still accepted anywhere an id is)."""
    return object_id[:19]


def parse_when(text: str | None, option: str) -> datetime | None:
    """An ISO-8601 UTC time or a date (midnight UTC) from a CLI option."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CliInputError(f"{option} {text!r} is not an ISO-8601 time (e.g. 2026-11-25T21:00:00Z)") from None
    if moment.tzinfo is None:
        if len(text) == 10:
            return moment.replace(tzinfo=UTC)
        raise CliInputError(f"{option} {text!r} has no timezone; add Z for UTC")
    return moment.astimezone(UTC)


def parse_cone(text: str | None) -> tuple[float, float, float] | None:
    """`RA,DEC,RADIUS` in degrees."""
    if text is None:
        return None
    try:
        ra, dec, radius = (float(part) for part in text.split(","))
    except ValueError:
        raise CliInputError(f"--cone {text!r} must be RA,DEC,RADIUS in degrees, e.g. 250.42,36.46,0.5") from None
    if not (-90 <= dec <= 90 and 0 < radius <= 180):
        raise CliInputError(f"--cone {text!r}: DEC must be within -90..90 and RADIUS within 0..180 degrees")
    return ra % 360.0, dec, radius


def _frame_line(result: IngestResult) -> str:
    frame = result.frame
    when = frame.observed_at.isoformat() if frame.observed_at else "no time"
    status = "new" if result.created else "already in the lake"
    return (
        f"[green]✓[/] {short(frame.id)}  {frame.source_name}  site [bold]{frame.site}[/]  {frame.width}×{frame.height}"
        f"  RA {frame.ra_deg:.4f} Dec {frame.dec_deg:+.4f}  {when}  ({status})"
    )


@lake_app.command("ingest")
@handles_errors
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="FITS files to store and catalogue.")],
    site: Annotated[
        str | None, typer.Option("--site", help="Site name when the header has no TELESCOP/OBSERVAT.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Store FITS frames in the lake and catalogue their headers (same bytes twice: nothing new)."""
    runtime = Runtime.load()
    done: list[IngestResult] = []
    failed: list[dict[str, str]] = []
    progress = Progress(
        TextColumn("ingest"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
        disable=len(paths) < 2 or as_json,
    )
    with progress:
        task = progress.add_task("ingest", total=len(paths))
        for path in paths:
            arguments = {"path": str(path.absolute()), "site": site}
            with runtime.audited("cli.lake.ingest", ingest, arguments) as call:
                try:
                    result = runtime.lake.ingest(path, site=site)
                except LakeError as error:
                    call.error = str(error)
                    failed.append({"path": str(path), "error": str(error)})
                    if not as_json:
                        progress.console.print(f"[bold red]error:[/] {error}")
                else:
                    call.result = {"id": result.frame.id, "created": result.created}
                    done.append(result)
                    if not as_json:
                        progress.console.print(_frame_line(result))
                        for note in result.notes:
                            progress.console.print(f"  [dim]note: {note}[/]")
            progress.advance(task)
    if as_json:
        emit_json(
            {
                "ingested": [
                    {"created": r.created, "notes": list(r.notes), "frame": r.frame.model_dump(mode="json")}
                    for r in done
                ],
                "failed": failed,
            }
        )
    elif len(paths) > 1:
        stderr.print(f"{len(done)} ingested ({sum(r.created for r in done)} new), {len(failed)} failed")
    if failed:
        raise typer.Exit(EXIT_BAD_INPUT)


@lake_app.command("list")
@handles_errors
def list_objects(
    site: Annotated[str | None, typer.Option(help="Only frames from this site.")] = None,
    since: Annotated[str | None, typer.Option(help="Frames observed at or after this UTC time.")] = None,
    until: Annotated[str | None, typer.Option(help="Frames observed before this UTC time.")] = None,
    cone: Annotated[str | None, typer.Option(help="RA,DEC,RADIUS in degrees.")] = None,
    kind: Annotated[str, typer.Option(help="frame or product.")] = "frame",
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows.")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """List frames by site, time range and cone, or list products."""
    lake = Runtime.load().lake
    if kind == "product":
        if site or since or until or cone:
            raise CliInputError("--site/--since/--until/--cone select frames; drop them with --kind product")
        products = [lake.product(o.id) for o in lake.objects(kind="product", limit=limit)]
        if as_json:
            emit_json({"products": [p.model_dump(mode="json") for p in products]})
            return
        table = Table("id", "resident", "version", "output", "inputs", "created (UTC)")
        for p in products:
            table.add_row(
                short(p.id),
                p.resident,
                p.version,
                p.output_kind,
                str(len(p.inputs)),
                p.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            )
        stdout.print(table)
        return
    if kind != "frame":
        raise CliInputError(f"--kind {kind!r} must be 'frame' or 'product'")
    frames = lake.frames(
        site=site,
        since=parse_when(since, "--since"),
        until=parse_when(until, "--until"),
        cone=parse_cone(cone),
        limit=limit,
    )
    if as_json:
        emit_json({"frames": [f.model_dump(mode="json") for f in frames]})
        return
    table = Table("id", "site", "observed (UTC)", "exp s", "filter", "RA°", "Dec°", "size", "object", "file")
    for f in frames:
        table.add_row(
            short(f.id),
            f.site,
            f.observed_at.strftime("%Y-%m-%d %H:%M:%S") if f.observed_at else "—",
            "—" if f.exptime_s is None else f"{f.exptime_s:g}",
            f.filter or "—",
            f"{f.ra_deg:.4f}",
            f"{f.dec_deg:+.4f}",
            f"{f.width}×{f.height}",
            f.object_name or "—",
            f.source_name,
        )
    stdout.print(table)
    stderr.print(f"{len(frames)} frame(s)")


def _frame_table(frame: Frame) -> Table:
    table = Table(show_header=False, box=None)
    for name, value in frame.model_dump().items():
        table.add_row(f"[bold]{name}[/]", "—" if value is None else str(value))
    return table


@lake_app.command("show")
@handles_errors
def show(
    object_id: Annotated[str, typer.Argument(metavar="ID", help="Object id or unique prefix.")],
    preview: Annotated[
        bool | None, typer.Option("--preview/--no-preview", help="Draw the image (default: on a terminal).")
    ] = None,
    header: Annotated[bool, typer.Option("--header", help="Also print the full FITS header.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Show one object: a frame's header facts and products, or a product's output and inputs."""
    lake = Runtime.load().lake
    obj = lake.object(object_id)
    if obj.kind == "product":
        _show_product(lake, lake.product(obj.id), as_json)
        return
    frame = lake.frame(obj.id)
    products = lake.products_of(obj.id)
    draw = not as_json and (preview if preview is not None else stdout.is_terminal)
    data = lake.read(obj.id) if header or draw else b""
    header_text = fits_header_text(data, frame.hdu_index) if header else None
    if as_json:
        emit_json(
            {
                "object": obj.model_dump(mode="json"),
                "frame": frame.model_dump(mode="json"),
                "products": [p.model_dump(mode="json") for p in products],
                "header": header_text,
            }
        )
        return
    stdout.print(_frame_table(frame))
    if products:
        stdout.print(f"\n[bold]products[/] ({len(products)})")
        for p in products:
            stdout.print(f"  {short(p.id)}  {p.resident} {p.version}  {p.output_kind}")
    if header_text:
        stdout.print("\n" + header_text, markup=False)
    if draw:
        stdout.print()
        stdout.print(
            render(
                image_array(data, frame.hdu_index),
                width=min(72, stdout.width - 2),
                color=stdout.color_system is not None,
            )
        )


def _show_product(lake: Lake, product: Product, as_json: bool) -> None:
    inputs = lake.inputs_of(product.id)
    if as_json:
        emit_json(
            {
                "object": lake.object(product.id).model_dump(mode="json"),
                "product": product.model_dump(mode="json"),
                "inputs": [i.model_dump(mode="json") for i in inputs],
            }
        )
        return
    table = Table(show_header=False, box=None)
    for name, value in product.model_dump(exclude={"output", "inputs"}).items():
        table.add_row(f"[bold]{name}[/]", str(value))
    table.add_row("[bold]inputs[/]", "\n".join(f"{i.id} ({i.kind})" for i in inputs))
    stdout.print(table)
    emit_json(product.output)


@lake_app.command("cat")
@handles_errors
def cat(
    object_id: Annotated[str, typer.Argument(metavar="ID", help="Object id or unique prefix.")],
    as_json: JsonFlag = False,
) -> None:
    """Write an object's verified bytes to stdout (a corrupt object is refused, never served)."""
    lake = Runtime.load().lake
    full_id = lake.resolve(object_id)
    data = lake.read(full_id)
    if as_json:
        emit_json({"id": full_id, "size_bytes": len(data), "data_base64": base64.b64encode(data).decode()})
        return
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


@lake_app.command("provenance")
@handles_errors
def provenance(
    object_id: Annotated[str, typer.Argument(metavar="ID", help="Object id or unique prefix.")],
    as_json: JsonFlag = False,
) -> None:
    """Where an object came from and everything made from it, transitively."""
    lake = Runtime.load().lake
    obj = lake.object(object_id)
    inputs = lake.inputs_of(obj.id) if obj.kind == "product" else []
    ancestors = lake.ancestors_of(obj.id)
    derived = lake.derived_from(obj.id)
    if as_json:
        emit_json(
            {
                "object": obj.model_dump(mode="json"),
                "inputs": [i.model_dump(mode="json") for i in inputs],
                "ancestors": [a.model_dump(mode="json") for a in ancestors],
                "derived": [d.model_dump(mode="json") for d in derived],
            }
        )
        return
    stdout.print(f"[bold]{obj.id}[/] ({obj.kind}, {obj.size_bytes} bytes)")
    stdout.print("made from:" if ancestors else "made from: nothing (an original)")
    for a in ancestors:
        stdout.print(f"{'  ' * a.depth}↑ {a.id} ({a.kind})")
    stdout.print("used by:" if derived else "used by: nothing yet")
    for d in derived:
        stdout.print(f"{'  ' * d.depth}↓ {d.id} ({d.kind})")


@lake_app.command("verify")
@handles_errors
def verify(
    sample: Annotated[
        float | None, typer.Option(help="Re-hash only this random fraction of objects, e.g. 0.05.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the random sample (printed, so a run can be repeated).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Re-hash blobs and cross-check the catalog; exit status 1 names anything corrupt or missing."""
    if sample is not None and not 0 < sample <= 1:
        raise CliInputError(f"--sample {sample} must be a fraction in (0, 1]")
    report = Runtime.load().lake.verify(sample=sample, seed=seed)
    if as_json:
        emit_json({"ok": report.ok, **report.model_dump(mode="json")})
    else:
        scope = f"sample {report.sample_fraction:g} (seed {report.seed})" if report.mode == "sample" else "full"
        stdout.print(
            f"lake verify ({scope}): {report.objects_checked} of {report.objects_catalogued} objects re-hashed"
        )
        for object_id in report.corrupt:
            stdout.print(f"[bold red]corrupt[/] {object_id}")
        for object_id in report.missing:
            stdout.print(f"[bold red]missing[/] {object_id}")
        for problem in report.catalog_errors:
            stdout.print(f"[bold red]catalog[/] {problem}")
        if report.unregistered:
            stdout.print(
                f"[yellow]{len(report.unregistered)} stored blob(s) not yet catalogued[/] "
                "(a writer stopped between storing and cataloguing; ingesting the file again adopts it)"
            )
        stdout.print("[green]OK[/]" if report.ok else "[bold red]FAILED[/]")
    if not report.ok:
        raise typer.Exit(EXIT_CHECK_FAILED)
