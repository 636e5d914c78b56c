"""Score the agent's tool choices on the shipped prompt sets: valid call, right tool, right arguments, latency.

    python -m astropolis.evals.agent_eval --half heldout --llm embedded            # router + model, as users get it
    python -m astropolis.evals.agent_eval --half both --llm embedded --mode native  # the native graph's first call
    python -m astropolis.evals.agent_eval --half both --llm embedded --mode model   # the model alone, no router
    python -m astropolis.evals.agent_eval --llm none --json                        # the router alone, as JSON

A small real city is built once in a temporary folder (astropolis/evals/agent_city.py); each prompt gets a fresh
copy of it and a fresh session, so no answer depends on an earlier one. Modes: `constrained` scores the agent's
decision as a whole (the router, and the model where the router abstains: what a person gets); `native` the
native graph's first tool call (every read and propose tool offered in full, as the graph offers them); `model`
the model's own first call with no router (the compact read and propose schemas). A turn that fails is scored
as no call, with the reason on its row. Only the expected argument keys are compared: strings
case-insensitively (a `sha256:` prefix ignored), numbers within 1e-3, lists as sets.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

HALVES = ("build", "heldout")
INVALID = ("unknown_tool", "bad_arguments")
MODES = ("constrained", "native", "model")
TOLERANCE = 1e-3


@dataclass(frozen=True)
class Prompt:
    """One line of a prompt set: what the person types and the tool call that should follow."""

    id: str
    prompt: str
    tool: str | None
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Score:
    """How the agent did on one prompt."""

    id: str
    prompt: str
    expected_tool: str | None
    expected_arguments: dict[str, Any]
    tool: str | None
    arguments: dict[str, Any]
    source: str
    valid: bool | None
    right_tool: bool
    right_arguments: bool
    latency_s: float
    error: str | None = None
    mismatched: list[str] = field(default_factory=list)


class StopAtFirstCall(Exception):
    """Raised from the step callback once the model's first tool call has run (native mode)."""


def load_prompts(half: str) -> list[Prompt]:
    """The prompts of one half (`build` or `heldout`), as shipped in the package."""
    if half not in HALVES:
        raise ValueError(f"half {half!r}: use build or heldout")
    text = resources.files("astropolis.evals").joinpath("agent_prompts", f"{half}.jsonl").read_text("utf-8")
    return parse_prompts(text)


def parse_prompts(text: str) -> list[Prompt]:
    """Prompts from JSONL text (blank lines and lines starting with '#' are skipped)."""
    prompts = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        row = json.loads(line)
        unknown = set(row) - {"id", "prompt", "tool", "arguments"}
        if unknown:
            raise ValueError(f"line {number}: unknown keys {sorted(unknown)}")
        prompts.append(Prompt(str(row["id"]), str(row["prompt"]), row["tool"], dict(row.get("arguments") or {})))
    return prompts


def placeholders(ids: Mapping[str, Any]) -> dict[str, Any]:
    """What each `{name}` in a prompt stands for in the evaluation city: short hex ids, job numbers."""
    values: dict[str, Any] = {}
    for name in ("reference", "new", "cloudy"):
        values[name] = str(ids[name]).removeprefix("sha256:")[:10]
    for name in ("quality_product", "transients_product"):
        values[name] = str(ids[name]).removeprefix("sha256:")[:12]
    for name in ("follow_up_job", "reobserve_job"):
        values[name] = int(ids[name])
    return values


def fill(prompt: Prompt, values: Mapping[str, Any]) -> Prompt:
    """The prompt with its placeholders replaced (an argument that is just a placeholder takes its type)."""
    text = prompt.prompt
    for name, value in values.items():
        text = text.replace("{" + name + "}", str(value))

    def one(value: Any) -> Any:
        if isinstance(value, str):
            if value.startswith("{") and value.endswith("}") and value[1:-1] in values:
                return values[value[1:-1]]
            for name, filled in values.items():
                value = value.replace("{" + name + "}", str(filled))
            return value
        if isinstance(value, list):
            return [one(v) for v in value]
        return value

    return Prompt(prompt.id, text, prompt.tool, {k: one(v) for k, v in prompt.arguments.items()})


def same(expected: Any, actual: Any) -> bool:
    """One argument compared the harness's way."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected == actual
    if isinstance(expected, int | float) and not isinstance(actual, list | dict):
        try:
            return abs(float(expected) - float(actual)) <= TOLERANCE
        except (TypeError, ValueError):
            return False
    if isinstance(expected, str):
        return isinstance(actual, str) and _text(expected) == _text(actual)
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return False
        return len(expected) == len(actual) and all(any(same(e, a) for a in actual) for e in expected)
    return bool(expected == actual)


def _text(value: str) -> str:
    return " ".join(value.strip().lower().removeprefix("sha256:").split())


def score(
    prompt: Prompt, call: Mapping[str, Any] | None, *, source: str, latency_s: float, failure: str | None = None
) -> Score:
    """Score one decision: `call` is the dispatcher's record of the call made (None when no tool was called);
    `failure` says why the turn itself failed, when it did."""
    tool = call["tool"] if call else None
    arguments = {k: v for k, v in dict(call.get("arguments") or {}).items() if k != "idempotency_key"} if call else {}
    error = (call.get("error") or {}) if call else {}
    valid = None if call is None else error.get("kind") not in INVALID
    right_tool = tool == prompt.tool and failure is None  # a turn that failed is wrong, even where no tool was due
    mismatched = [
        key for key, value in prompt.arguments.items() if key not in arguments or not same(value, arguments[key])
    ]
    return Score(
        id=prompt.id,
        prompt=prompt.prompt,
        expected_tool=prompt.tool,
        expected_arguments=prompt.arguments,
        tool=tool,
        arguments=arguments,
        source=source,
        valid=valid,
        right_tool=right_tool,
        right_arguments=right_tool and bool(valid is not False) and not mismatched,
        latency_s=round(latency_s, 4),
        error=failure or (f"{error.get('kind')}: {error.get('message', '')}"[:200] if error else None),
        mismatched=mismatched if right_tool else [],
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def totals(scores: Sequence[Score]) -> dict[str, Any]:
    """The figures of a list of scores: percentages, latency median and p95, decisions by source."""
    n = len(scores)
    calls = [s for s in scores if s.valid is not None]
    latencies = [s.latency_s for s in scores]

    def pct(k: int, of: int) -> float:
        return round(100.0 * k / of, 1) if of else 0.0

    return {
        "prompts": n,
        "calls": len(calls),
        "valid_calls_pct": pct(sum(1 for s in calls if s.valid), len(calls)),
        "right_tool_pct": pct(sum(1 for s in scores if s.right_tool), n),
        "right_arguments_pct": pct(sum(1 for s in scores if s.right_arguments), n),
        "latency_median_s": round(statistics.median(latencies), 4) if latencies else 0.0,
        "latency_p95_s": round(percentile(latencies, 95), 4),
        "sources": dict(Counter(s.source for s in scores)),
        "failed_turns": sum(1 for s in scores if s.valid is None and s.error),
    }


@dataclass
class City:
    """A built evaluation city: the folder to copy for each prompt, and its ids."""

    template: Path
    ids: dict[str, Any]


def build_eval_city(root: Path) -> City:
    """Build the evaluation city under `root`/template."""
    from astropolis.evals.agent_city import build_city

    template = root / "template"
    template.mkdir(parents=True)
    return City(template, build_city(template))


def _embedder() -> Any:
    from astropolis.memory.embedding import MiniLMEmbedder

    return MiniLMEmbedder()


def _ask(city: City, prompt: Prompt, home: Path, endpoint: Any, mode: str, embedder: Any) -> Score:
    """One fresh copy of the city, one fresh session, one turn; the decision scored."""
    from astropolis.agent.session import open_session
    from astropolis.lake import Lake
    from astropolis.lake.clock import ManualClock
    from astropolis.memory import AuditLog, Ledger
    from astropolis.memory.hypotheses import HypothesisBook
    from astropolis.memory.semantic import InMemoryStore
    from astropolis.settings import Settings
    from astropolis.tools.deps import ToolDeps
    from astropolis.tools.sites import demo_sites

    shutil.copytree(city.template, home)
    clock = ManualClock(city.ids["now"])
    url = f"sqlite:///{home / 'ledger.db'}"
    deps = ToolDeps(
        lake=Lake(home / "lake", clock=clock),
        ledger=Ledger(url, clock=clock),
        audit=AuditLog(f"sqlite:///{home / 'audit.db'}", clock=clock),
        sites=demo_sites("fake"),
        clock=clock,
        memory=InMemoryStore(embedder) if embedder is not None else None,
        hypotheses=HypothesisBook(url, clock=clock),
    )
    if deps.memory is not None:
        deps.memory.remember(
            "note",
            "Clouds over Cerro Pachon most evenings this week; prefer La Palma.",
            actor="person:ana",
            created_at=clock.now(),
        )
    if mode == "model":
        try:
            return _model_alone(prompt, deps, endpoint)
        finally:
            for store in (deps.lake, deps.ledger, deps.audit):
                store.close()
    first: list[dict[str, Any]] = []
    failure: str | None = None

    def step(node: str, values: dict[str, Any]) -> None:
        if mode == "native" and node == "tools":
            first.extend(values.get("calls") or [])
            raise StopAtFirstCall

    settings = Settings(home=home, actor="person:eval")
    try:
        with open_session(settings, thread=f"eval-{prompt.id}"[:64], deps=deps, endpoint=endpoint, mode=mode) as agent:
            started = time.perf_counter()
            try:
                turn = agent.ask(prompt.prompt, on_step=step)
                calls, chosen = turn.calls, turn.route or {}
            except StopAtFirstCall:
                calls, chosen = first, {}
            except Exception as error:  # a turn that fails is scored as no call, with the reason on the row
                calls, chosen, failure = first, {}, f"{type(error).__name__}: {error}"[:300]
            latency = time.perf_counter() - started
    finally:
        for store in (deps.lake, deps.ledger, deps.audit):
            store.close()
    source = "llm" if mode == "native" else str(chosen.get("source", "router"))
    if mode != "native" and not calls:
        source = "none"  # the router abstained and the model (if any) chose nothing that was kept
    return score(prompt, calls[0] if calls else None, source=source, latency_s=latency, failure=failure)


def _model_alone(prompt: Prompt, deps: Any, endpoint: Any) -> Score:
    """The model's own first tool call, with no router and no backing check: offered the compact schemas of the
    read and propose tools (the tiers native mode offers, in the short form the small model's context holds),
    dispatched through the same registry, validation and policy."""
    from langchain_core.messages import HumanMessage, SystemMessage

    from astropolis.agent.graph import SYSTEM_PROMPT
    from astropolis.tools.dispatch import Dispatcher
    from astropolis.tools.policy import Caller
    from astropolis.tools.toolbox import TOOLS

    caller = Caller(actor="agent:eval", role="agent", model_id=str(endpoint.model_id), tool_mode="native")
    started = time.perf_counter()
    try:
        reply = endpoint.chat.bind_tools(TOOLS.compact_schemas(("read", "propose")), tool_choice="auto").invoke(
            [SystemMessage(SYSTEM_PROMPT), HumanMessage(prompt.prompt)]
        )
    except Exception as error:
        failure = f"{type(error).__name__}: {error}"[:300]
        return score(prompt, None, source="llm", latency_s=time.perf_counter() - started, failure=failure)
    requests = getattr(reply, "tool_calls", None) or []
    latency = time.perf_counter() - started
    if not requests:
        return score(prompt, None, source="llm", latency_s=latency)
    name, arguments = str(requests[0]["name"]), dict(requests[0].get("args") or {})
    found = TOOLS.get(name)
    if found is not None and "idempotency_key" in found.input.model_fields:
        arguments.setdefault("idempotency_key", f"agent:eval:{prompt.id}")  # code adds it, as in the graphs
    call = Dispatcher(TOOLS, deps).call(caller, name, arguments, said=prompt.prompt)
    return score(prompt, call.model_dump(mode="json"), source="llm", latency_s=latency)


def evaluate(
    half: str,
    endpoint: Any = None,
    mode: str = "constrained",
    *,
    prompts: Sequence[Prompt] | None = None,
    city: City | None = None,
    memory: bool = True,
    on_score: Any = None,
) -> dict[str, Any]:
    """The report of one half under one endpoint (None: the router alone) and mode: every prompt and totals.
    `prompts` replaces the shipped half; `city` reuses a built city; `memory` gives each session a MiniLM
    memory (as in use) or none (faster)."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: use constrained, native or model")
    if mode != "constrained" and endpoint is None:
        raise ValueError(f"{mode} mode scores a model's own tool calls: it needs an LLM endpoint")
    chosen = list(prompts) if prompts is not None else load_prompts(half)
    embedder = _embedder() if memory else None
    with tempfile.TemporaryDirectory(prefix="astropolis-eval-") as scratch:
        root = Path(scratch)
        built = city or build_eval_city(root / "city")
        values = placeholders(built.ids)
        scores = []
        for index, prompt in enumerate(chosen):
            result = _ask(built, fill(prompt, values), root / f"p{index:03d}", endpoint, mode, embedder)
            scores.append(result)
            if on_score is not None:
                on_score(result)
    return {
        "half": half,
        "mode": mode,
        "model_id": getattr(endpoint, "model_id", None) or "none (router only)",
        "totals": totals(scores),
        "prompts": [asdict(s) for s in scores],
    }


def table(report: Mapping[str, Any]) -> str:
    """A report as a plain-text table, one row per prompt, then the totals."""
    lines = [f"{report['half']} · {report['mode']} · {report['model_id']}"]
    lines.append("ok: v valid call (· no call), t right tool, a right arguments")
    lines.append(f"{'id':<5} {'ok':<4} {'expected':<20} {'got':<20} {'source':<7} {'s':>6}  prompt")
    for row in report["prompts"]:
        flags = {True: "v", False: "-", None: "·"}[row["valid"]] + ("t" if row["right_tool"] else "-")
        flags += "a" if row["right_arguments"] else "-"
        got = str(row["tool"])
        if row["right_tool"] and row["mismatched"]:
            got += " !" + ",".join(row["mismatched"])
        lines.append(
            f"{row['id']:<5} {flags:<4} {row['expected_tool']!s:<20.20} {got:<20.20} {row['source']:<7} "
            f"{row['latency_s']:>6.2f}  {row['prompt'][:60]}"
        )
    t = report["totals"]
    sources = ", ".join(f"{k} {v}" for k, v in sorted(t["sources"].items()))
    lines.append(
        f"totals: {t['prompts']} prompts, valid {t['valid_calls_pct']}% of {t['calls']} calls, right tool "
        f"{t['right_tool_pct']}%, right arguments {t['right_arguments_pct']}%, latency median "
        f"{t['latency_median_s']:.3f} s p95 {t['latency_p95_s']:.3f} s; decided by: {sources}; failed turns "
        f"{t['failed_turns']}"
    )
    return "\n".join(lines)


def endpoint_for(llm: str) -> Any:
    """The endpoint for --llm none | embedded | remote (the same choice as `astropolis ask`)."""
    if llm not in ("none", "embedded", "remote"):
        raise ValueError(f"--llm {llm!r}: use none, embedded or remote")
    from astropolis.agent.cli.chat_cmds import endpoint_for as cli_endpoint

    return cli_endpoint(llm)


def run(half: str, llm: str, mode: str, *, as_json: bool, memory: bool = True) -> dict[str, Any]:
    """Evaluate one half or both and print a table per half (or one JSON document); returns the document."""
    halves = HALVES if half == "both" else (half,)
    if half not in (*HALVES, "both"):
        raise ValueError(f"--half {half!r}: use build, heldout or both")
    endpoint = endpoint_for(llm)

    def progress(row: Score) -> None:  # one line per prompt on stderr, so a slow endpoint shows it is working
        flags = ("v" if row.valid else "·" if row.valid is None else "-") + ("t" if row.right_tool else "-")
        print(f"{row.id} {flags}{'a' if row.right_arguments else '-'} {row.latency_s:.2f}s", file=sys.stderr)

    reports = [evaluate(h, endpoint, mode, memory=memory, on_score=progress) for h in halves]
    document = {"reports": reports}
    if as_json:
        print(json.dumps(document, indent=2, default=str))
    else:
        print("\n\n".join(table(r) for r in reports))
    return document


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: python -m astropolis.evals.agent_eval [--half] [--llm] [--mode] [--json]."""
    parser = argparse.ArgumentParser(prog="python -m astropolis.evals.agent_eval", description=__doc__.split("\n")[0])
    parser.add_argument("--half", choices=(*HALVES, "both"), default="both")
    parser.add_argument("--llm", choices=("none", "embedded", "remote"), default="none")
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="constrained",
        help="constrained: the agent's turn (router, then the model where it abstains); native: the native graph's "
        "first tool call; model: the model's own first call on the compact schemas, no router.",
    )
    parser.add_argument("--no-memory", action="store_true", help="Sessions without a semantic memory (faster).")
    parser.add_argument("--json", action="store_true", help="One JSON document instead of tables.")
    options = parser.parse_args(argv)
    try:
        run(options.half, options.llm, options.mode, as_json=options.json, memory=not options.no_memory)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
