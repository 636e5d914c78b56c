"""`astropolis residents …`: list the residents, run one on lake objects, retrain one from its seed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from astropolis.agent.cli.lake_cmds import JsonFlag
from astropolis.agent.cli.output import CliInputError, emit_json, handles_errors, stderr, stdout
from astropolis.agent.cli.runtime import Runtime
from astropolis.tools.residents import (
    RESIDENTS,
    ResidentError,
    ResidentRunner,
    describe_residents,
    train_resident,
)

residents_app = typer.Typer(
    help="The ML residents: list them, run one on lake objects, retrain one.", no_args_is_help=True
)


def _known(name: str) -> None:
    if name not in RESIDENTS:
        raise CliInputError(f"no resident named {name!r}; residents: {', '.join(RESIDENTS)}")


@residents_app.command("list")
@handles_errors
def list_residents(as_json: JsonFlag = False) -> None:
    """Every resident: version, input kind, weights sha256 and its model card."""
    try:
        rows = describe_residents()
    except ResidentError as error:
        raise CliInputError(str(error)) from None
    if as_json:
        emit_json({"residents": rows})
        return
    table = Table("name", "version", "input", "output", "weights sha256", "model card")
    for row in rows:
        table.add_row(
            row["name"],
            row["version"],
            row["input_kind"],
            row["output"],
            row["weights_sha256"][:23],
            row["model_card"] or "—",
        )
    stdout.print(table)


@residents_app.command("run")
@handles_errors
def run(
    name: Annotated[str, typer.Argument(help="Resident name (see `residents list`).")],
    object_ids: Annotated[
        list[str], typer.Argument(metavar="ID...", help="Input frame id(s): new frame, then reference.")
    ],
    as_json: JsonFlag = False,
) -> None:
    """Run a resident on lake frames; the output is stored as a product (a rerun adds nothing) and any
    job requests it raises go into the ledger."""
    _known(name)
    runtime = Runtime.load()
    from astropolis.tools.sites import demo_sites

    runner = ResidentRunner(runtime.lake, ledger=runtime.ledger, audit=runtime.audit, sites=demo_sites())
    try:
        result = runner.run(name, object_ids)
    except ResidentError as error:
        raise CliInputError(str(error)) from None
    if as_json:
        emit_json(
            {
                "created": result.created,
                "product": result.product.model_dump(mode="json"),
                "jobs": [job.summary() for job in result.jobs],
            }
        )
        return
    state = "new product" if result.created else "stored product (already run on this input)"
    stdout.print(f"{name} {result.product.version}: {state} {result.product.id}")
    emit_json(result.product.output)
    for job in result.jobs:
        stdout.print(
            f"job {job.id} {job.request.kind.value} (priority {job.request.priority}): {job.request.reason}",
            markup=False,
        )


@residents_app.command("train")
@handles_errors
def train(
    name: Annotated[str, typer.Argument(help="Resident name.")],
    seed: Annotated[int, typer.Option(help="Training seed (the committed weights used 0).")] = 0,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default $ASTROPOLIS_HOME/training/NAME/seedN).")
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="A small, fast run to check the pipeline.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Retrain a resident from its seed (reproducible); prints its held-out metrics and the weights' sha256."""
    _known(name)
    if out is None:
        out = Runtime.load().settings.home / "training" / name / f"seed{seed}{'-quick' if quick else ''}"
    started = time.perf_counter()
    stderr.print(f"training {name} (seed {seed}{', quick' if quick else ''}) into {out}…")
    metrics = train_resident(name, seed=seed, out_dir=out, quick=quick)
    committed = next(row["weights_sha256"] for row in describe_residents() if row["name"] == name)
    metrics = {
        **metrics,
        "out": str(out),
        "wall_s": round(time.perf_counter() - started, 1),
        "reproduces_committed_weights": metrics["weights_sha256"] == committed,
    }
    if as_json:
        emit_json({"resident": name, "seed": seed, "metrics": metrics})
        return
    for key, value in metrics.items():
        stdout.print(f"  {key:<32} {value}")
