"""Scripted chat models for agent tests: a LangChain chat model whose replies are a function of the messages."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field


class ScriptedChat(BaseChatModel):
    """Replies with `script(messages, tools)`; records every request."""

    script: Callable[[list[BaseMessage], list[dict[str, Any]]], AIMessage]
    tools: list[dict[str, Any]] = Field(default_factory=list)
    requests: list[list[BaseMessage]] = Field(default_factory=list)
    bound: list[list[dict[str, Any]]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChat:  # type: ignore[override]
        self.bound.append(list(tools))  # shared with every copy, like `requests`
        return self.model_copy(update={"tools": list(tools)})

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        self.requests.append(list(messages))
        return ChatResult(generations=[ChatGeneration(message=self.script(messages, self.tools))])


class Endpoint:
    """What the agent needs of an LLM endpoint."""

    def __init__(self, chat: ScriptedChat, mode: str = "native") -> None:
        self.chat = chat
        self.model_id = "scripted:test"
        self.tool_mode = mode


def tool_call(name: str, arguments: dict[str, Any], index: int = 0) -> dict[str, Any]:
    """One tool call in LangChain's shape."""
    return {"name": name, "args": arguments, "id": f"call_{index}", "type": "tool_call"}
