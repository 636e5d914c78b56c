"""`astropolis memory …`: people's notes into the agent's memory, and searching it."""

from __future__ import annotations

from typing import Annotated

import typer

from astropolis.agent.cli.lake_cmds import JsonFlag
from astropolis.agent.cli.output import emit_json, handles_errors, stdout
from astropolis.agent.cli.runtime import Runtime
from astropolis.memory.lance import LanceStore, memory_store

memory_app = typer.Typer(help="The agent's memory: add a note, search by meaning.", no_args_is_help=True)


def _store(runtime: Runtime) -> LanceStore:
    from astropolis.memory.embedding import MiniLMEmbedder

    runtime.settings.home.mkdir(parents=True, exist_ok=True)
    return memory_store(runtime.settings.home, MiniLMEmbedder())


@memory_app.command("note")
@handles_errors
def note(
    text: Annotated[str, typer.Argument(help="The note, in quotes (kept as data; never read as an instruction).")],
    refs: Annotated[
        list[str] | None, typer.Option("--ref", help="A lake id, job:N or hypothesis:N it is about.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Add a person's note to memory (append-only; audited)."""
    runtime = Runtime.load()
    store = _store(runtime)
    resolved = [r if ":" in r and not r.startswith("sha256:") else runtime.lake.resolve(r) for r in refs or []]
    with runtime.audited("memory.note", note, {"text": text, "refs": resolved}) as call:
        memory = store.remember(
            "note", text, actor=runtime.settings.actor, created_at=runtime.lake.clock.now(), refs=resolved
        )
        call.result = {"id": memory.id}
    if as_json:
        emit_json({"memory": memory.model_dump(mode="json")})
    else:
        stdout.print(f"noted {memory.id[:19]}")


@memory_app.command("search")
@handles_errors
def search(
    query: Annotated[str, typer.Argument(help="What to look for (by meaning).")],
    k: Annotated[int, typer.Option("--k", min=1, max=50, help="How many.")] = 5,
    as_json: JsonFlag = False,
) -> None:
    """The memories closest in meaning to the query."""
    hits = _store(Runtime.load()).recall(query, k=k)
    if as_json:
        emit_json({"hits": [{"score": h.score, "memory": h.memory.model_dump(mode="json")} for h in hits]})
        return
    for hit in hits:
        m = hit.memory
        stdout.print(f"{hit.score:.3f} [{m.kind}] {m.created_at:%Y-%m-%d %H:%M} {m.actor}: {m.text}", markup=False)
