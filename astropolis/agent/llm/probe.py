"""The start-up probe: one tiny question with one trivial tool bound, and the tool mode it implies."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from astropolis.agent.llm.endpoint import ChatEndpoint, ProbeResult
from astropolis.agent.llm.settings import LLMSettings, ResolvedToolMode

PROBE_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "report_status",
        "description": "Report whether the telescope network is ready.",
        "parameters": {
            "type": "object",
            "properties": {"status": {"type": "string", "enum": ["ready", "not_ready"], "description": "The status."}},
            "required": ["status"],
            "additionalProperties": False,
        },
    },
}
PROBE_SYSTEM = "You operate a telescope network. Answer by calling a tool."
PROBE_QUESTION = "The network is ready. Report its status."


def _valid(name: str | None, arguments: dict[str, Any] | None) -> bool:
    schema = PROBE_TOOL["function"]["parameters"]
    if name != PROBE_TOOL["function"]["name"] or arguments is None:
        return False
    allowed = schema["properties"]["status"]["enum"]
    return set(arguments) == {"status"} and arguments["status"] in allowed


def probe(endpoint: ChatEndpoint, *, max_tokens: int = 32) -> ProbeResult:
    """Ask the endpoint the probe question with PROBE_TOOL bound; never raises for endpoint failures."""
    bound = endpoint.chat.bind_tools([PROBE_TOOL])
    started = time.perf_counter()
    try:
        reply = bound.invoke([SystemMessage(PROBE_SYSTEM), HumanMessage(PROBE_QUESTION)], max_tokens=max_tokens)
    except (openai.OpenAIError, httpx.HTTPError, ValueError) as error:
        return ProbeResult(
            model_id=endpoint.model_id,
            embedded=endpoint.embedded,
            tool_call=False,
            valid=False,
            duration_s=time.perf_counter() - started,
            error=f"{type(error).__name__}: {error}"[:500],
        )
    duration = time.perf_counter() - started
    assert isinstance(reply, AIMessage)
    calls = reply.tool_calls
    first = calls[0] if calls else None
    name = first["name"] if first else (reply.invalid_tool_calls[0]["name"] if reply.invalid_tool_calls else None)
    arguments = dict(first["args"]) if first else None
    return ProbeResult(
        model_id=endpoint.model_id,
        embedded=endpoint.embedded,
        tool_call=bool(calls or reply.invalid_tool_calls),
        valid=_valid(name, arguments),
        tool_name=name,
        arguments=arguments,
        text=reply.text[:200],
        duration_s=duration,
    )


def resolve_mode(settings: LLMSettings, result: ProbeResult | None) -> ResolvedToolMode:
    """`native` when configured so, or under auto when a non-embedded endpoint passed the probe; else constrained."""
    if settings.tool_mode != "auto":
        return settings.tool_mode
    # The embedded 135M model picked the right tool 60% of the time on its own: never trusted under auto.
    if result is None or result.embedded:
        return "constrained"
    return "native" if result.valid else "constrained"
