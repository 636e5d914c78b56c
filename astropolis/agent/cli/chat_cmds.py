"""`astropolis ask`, `astropolis chat` and `astropolis agent …`: talk to the agent, list its tools, score it.

Every answer shows which tools ran, with the policy decision and the audit entry of each call.
"""

from __future__ import annotations

import sys
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from astropolis.agent.cli.lake_cmds import JsonFlag
from astropolis.agent.cli.output import CliInputError, emit_json, handles_errors, stderr, stdout
from astropolis.agent.session import AgentSession, SessionError, Turn, open_session, open_stores
from astropolis.settings import load_settings
from astropolis.tools.site_tools import probe
from astropolis.tools.sites import SiteRegistry, demo_sites

agent_app = typer.Typer(
    help="The agent: its tools and its threads (its scores: python -m astropolis.evals.agent_eval).",
    no_args_is_help=True,
)

ThreadOption = Annotated[str, typer.Option("--thread", "-t", help="Conversation thread (resumes where it was).")]
LlmOption = Annotated[
    str,
    typer.Option(
        "--llm",
        help="auto (OPENAI_BASE_URL if set, else the embedded model if installed), embedded, remote, or none "
        "(the deterministic router only).",
    ),
]
ModeOption = Annotated[str | None, typer.Option("--mode", help="native or constrained (default: from the probe).")]
SitesOption = Annotated[Path | None, typer.Option("--sites", help="Site registry TOML (default: the demo sites).")]


class LazyEmbedded:
    """The embedded model, loaded only when the router abstains (most questions never need it)."""

    def __init__(self, settings: Any) -> None:
        from astropolis.agent.llm import embedded_model_id

        self.settings = settings
        self.model_id = embedded_model_id()
        self.tool_mode = "native" if settings.tool_mode == "native" else "constrained"

    @cached_property
    def chat(self) -> Any:
        """The chat model, built on first use."""
        from astropolis.agent.llm import build_chat_model

        return build_chat_model(self.settings, run_probe=False).chat


def endpoint_for(choice: str) -> Any:
    """The LLM endpoint for --llm (None for the router alone)."""
    if choice not in ("auto", "embedded", "remote", "none"):
        raise CliInputError(f"--llm {choice!r}: use auto, embedded, remote or none")
    if choice == "none":
        return None
    from astropolis.agent.llm import LLMError, build_chat_model, load_llm_settings

    settings = load_llm_settings()
    if choice == "remote" or (choice == "auto" and not settings.embedded):
        if settings.embedded:
            raise CliInputError("--llm remote needs OPENAI_BASE_URL (and OPENAI_API_KEY if the endpoint wants one)")
        return build_chat_model(settings)
    try:
        return LazyEmbedded(settings)
    except LLMError as error:
        if choice == "embedded":
            raise CliInputError(str(error)) from None
        stderr.print(f"[yellow]note:[/] no LLM ({error}); answering with the router alone", markup=True)
        return None


def _sites(path: Path | None) -> SiteRegistry:
    return SiteRegistry.from_toml(path) if path is not None else demo_sites()


def _call_line(call: dict[str, Any]) -> str:
    arguments = ", ".join(f"{k}={v!r}" for k, v in call["arguments"].items() if k != "idempotency_key")
    status = call["policy"] if call["policy"] == "refused" else ("ok" if not call.get("error") else "failed")
    return f"→ {call['tool']}({arguments}) [{call['tier']}, {status}, audit #{call['audit_seq']}]"


def _show(turn: Turn, *, verbose: bool = True) -> None:
    if turn.resumed:
        stdout.print(f"[dim](finished interrupted turn {turn.turn}: {turn.question!r})[/]")
    if verbose:
        for call in turn.calls:
            stdout.print(f"[dim]{escape(_call_line(call))}[/]", markup=True, highlight=False)
        if turn.route and turn.route.get("source") == "llm":
            stdout.print("[dim](tool chosen by the model, backed by your words)[/]")
    stdout.print(turn.reply, markup=False, highlight=False)


def _turn_json(turn: Turn, session: AgentSession) -> dict[str, Any]:
    return {
        "thread": session.core.thread,
        "turn": turn.turn,
        "question": turn.question,
        "reply": turn.reply,
        "mode": session.core.mode,
        "model_id": session.core.caller.model_id,
        "route": turn.route,
        "tools": turn.calls,
        "memories": turn.memories,
        "resumed": turn.resumed,
    }


def _open(thread: str, llm: str, mode: str | None, sites: Path | None) -> Any:
    settings = load_settings()
    if mode not in (None, "native", "constrained"):
        raise CliInputError(f"--mode {mode!r}: use native or constrained")
    endpoint = endpoint_for(llm)
    deps = open_stores(settings, sites=_sites(sites))
    deps.site_probe = lambda site: probe(site, connect=False)
    try:
        return open_session(settings, thread=thread, deps=deps, endpoint=endpoint, mode=mode)
    except SessionError as error:
        raise CliInputError(str(error)) from None


def ask(
    question: Annotated[str, typer.Argument(help="The question, in quotes.")],
    thread: ThreadOption = "default",
    llm: LlmOption = "auto",
    mode: ModeOption = None,
    sites: SitesOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Ask the agent one question; shows the tools it ran."""
    _ask(question, thread, llm, mode, sites, as_json=as_json)


@handles_errors
def _ask(question: str, thread: str, llm: str, mode: str | None, sites: Path | None, as_json: bool) -> None:
    try:
        with _open(thread, llm, mode, sites) as session:
            turns = []
            resumed = session.resume()
            if resumed is not None:
                turns.append(resumed)
            turns.append(session.ask(question))
            if as_json:
                emit_json({"turns": [_turn_json(t, session) for t in turns]})
                return
            for turn in turns:
                _show(turn)
    except SessionError as error:
        raise CliInputError(str(error)) from None


def chat(
    thread: ThreadOption = "default",
    llm: LlmOption = "auto",
    mode: ModeOption = None,
    sites: SitesOption = None,
) -> None:
    """A plain terminal conversation (type 'exit' to leave); each step is shown as it happens."""
    _chat(thread, llm, mode, sites)


@handles_errors
def _chat(thread: str, llm: str, mode: str | None, sites: Path | None) -> None:
    with _open(thread, llm, mode, sites) as session:
        stdout.print(
            f"[bold]Astropolis[/] — thread {thread!r}, {session.turns} earlier turn(s), "
            f"{session.core.mode} tools, model {session.core.caller.model_id}. 'exit' leaves."
        )

        def step(node: str, values: dict[str, Any]) -> None:
            for call in values.get("calls") or []:
                if node in ("act", "tools"):
                    stdout.print(f"[dim]{escape(_call_line(call))}[/]", markup=True, highlight=False)

        resumed = session.resume(on_step=step)
        if resumed is not None:
            _show(resumed, verbose=False)
        while True:
            try:
                question = input("you> " if sys.stdin.isatty() else "")
            except (EOFError, KeyboardInterrupt):
                stdout.print()
                return
            if question.strip().lower() in ("exit", "quit", ":q"):
                return
            if not question.strip():
                continue
            try:
                turn = session.ask(question, on_step=step)
            except SessionError as error:
                stderr.print(f"[bold red]error:[/] {error}", markup=True)
                continue
            stdout.print(turn.reply, markup=False, highlight=False)


@agent_app.command("tools")
@handles_errors
def tools(as_json: JsonFlag = False) -> None:
    """Every tool: name, tier (read / propose / actuate / admin), schema hash, description."""
    from astropolis.tools.toolbox import TOOLS

    rows = TOOLS.describe()
    if as_json:
        emit_json({"tools": [dict(r) for r in rows]})
        return
    for row in rows:
        stdout.print(f"{row['name']:<22} {row['tier']:<8} {row['schema_hash'][:19]}  {row['description']}")


@agent_app.command("history")
@handles_errors
def history(thread: ThreadOption = "default", as_json: JsonFlag = False) -> None:
    """The transcript of one thread: each question, the tools used, the reply."""
    settings = load_settings()
    with open_session(settings, thread=thread, deps=open_stores(settings, memory=None)) as session:
        rows = session.transcript()
        if as_json:
            emit_json({"thread": thread, "interrupted": session.interrupted, "turns": rows})
            return
        for row in rows:
            stdout.print(f"[bold]{row['turn']}. {row['question']}[/] [dim]({', '.join(row['tools']) or 'no tool'})[/]")
            stdout.print(row["reply"], markup=False, highlight=False)
        if session.interrupted:
            stdout.print("[yellow]the last turn was interrupted; `astropolis ask` or `chat` finishes it[/]")
