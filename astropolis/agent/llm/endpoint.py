"""What the agent holds once the LLM is set up: the chat model, its audit name, and how tools are called."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field

from astropolis.agent.llm.settings import ResolvedToolMode


class ProbeResult(BaseModel):
    """What the start-up probe saw: did the endpoint answer a one-tool question with a valid tool call."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_id: str = Field(description="The endpoint probed, as recorded in audit entries.")
    embedded: bool = Field(description="True for the in-process model.")
    tool_call: bool = Field(description="The reply held at least one tool call.")
    valid: bool = Field(description="The probe tool was called with arguments that match its schema.")
    tool_name: str | None = Field(default=None, description="Name of the first tool called, if any.")
    arguments: dict[str, Any] | None = Field(default=None, description="Arguments of the first tool call, if any.")
    text: str = Field(default="", description="Text the model replied with (first 200 characters).")
    duration_s: float = Field(ge=0, description="Wall time of the probe request, seconds.")
    error: str | None = Field(default=None, description="Why the request failed, if it did.")


@dataclass(frozen=True)
class ChatEndpoint:
    """A ready chat model plus what every audit entry needs to know about it."""

    chat: BaseChatModel
    """LangChain chat model (ChatOpenAI on the real `openai` client); use `bind_tools(...).invoke(...)`."""
    model_id: str
    """`embedded:<gguf>@sha256:<12 hex>` or `openai:<base_url>/<model>`: goes into every audit entry."""
    tool_mode: ResolvedToolMode
    """`native`: trust the model's own tool calls; `constrained`: the agent constrains the choice itself."""
    embedded: bool
    """True for the in-process model."""
    max_tokens: int
    """Tokens per reply by default (a hard cap for the embedded model)."""
    probe: ProbeResult | None = None
    """The start-up probe, when one ran (for the audit log)."""

    def audit_fields(self) -> dict[str, Any]:
        """The endpoint as the audit log records it: model id, tool mode, and the probe."""
        return {
            "llm_model_id": self.model_id,
            "tool_mode": self.tool_mode,
            "probe": self.probe.model_dump(mode="json") if self.probe else None,
        }


def complete(endpoint: ChatEndpoint, system: str, user: str, *, max_tokens: int = 64) -> str:
    """One free-text reply to `user` under `system`, no tools, at most `max_tokens` tokens."""
    reply = endpoint.chat.invoke([SystemMessage(system), HumanMessage(user)], max_tokens=max_tokens)
    return reply.text.strip()
