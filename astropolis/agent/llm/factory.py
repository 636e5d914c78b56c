"""Build the agent's chat model from LLMSettings: a remote OpenAI-compatible endpoint, or the embedded model."""

from __future__ import annotations

import dataclasses
import threading

import openai
from langchain_openai import ChatOpenAI

from astropolis.agent.llm.bridge import ASGIApp, ASGIBridge, bridge_clients
from astropolis.agent.llm.embedded import EmbeddedChatOpenAI, embedded_model_id, load_embedded_app
from astropolis.agent.llm.endpoint import ChatEndpoint
from astropolis.agent.llm.errors import LLMError
from astropolis.agent.llm.probe import probe, resolve_mode
from astropolis.agent.llm.settings import EMBEDDED_MODEL_NAME, LLMSettings

# The host is never resolved: the bridge's transports answer every request in-process.
IN_PROCESS_BASE_URL = "http://embedded/v1"
# Local servers (vLLM, llama-server, Ollama) accept any key, and the openai client insists on one.
_NO_KEY = "not-needed"


def _api_key(settings: LLMSettings) -> str:
    return settings.api_key.get_secret_value() if settings.api_key else _NO_KEY


def first_model(settings: LLMSettings) -> str:
    """The first model the endpoint lists at /models (used when ASTROPOLIS_LLM_MODEL is unset)."""
    client = openai.OpenAI(
        base_url=settings.base_url,
        api_key=_api_key(settings),
        timeout=settings.timeout_s,
        max_retries=settings.max_retries,
    )
    try:
        models = [model.id for model in client.models.list()]
    except openai.OpenAIError as error:
        raise LLMError(
            f"cannot list the models of {settings.base_url} ({type(error).__name__}: {error}); "
            "check OPENAI_BASE_URL or set ASTROPOLIS_LLM_MODEL"
        ) from None
    if not models:
        raise LLMError(f"{settings.base_url} lists no models; set ASTROPOLIS_LLM_MODEL")
    return models[0]


def connect_remote(settings: LLMSettings) -> ChatEndpoint:
    """ChatOpenAI against OPENAI_BASE_URL (OpenAI, vLLM, llama.cpp llama-server, Ollama …); no probe yet."""
    if settings.base_url is None:
        raise LLMError("connect_remote needs OPENAI_BASE_URL")
    model = settings.model or first_model(settings)
    chat = ChatOpenAI(
        model=model,
        base_url=settings.base_url,
        api_key=_api_key(settings),
        temperature=settings.temperature,
        seed=settings.seed,
        max_tokens=settings.max_tokens,
        timeout=settings.timeout_s,
        max_retries=settings.max_retries,
        use_responses_api=False,
    )
    return ChatEndpoint(
        chat=chat,
        model_id=f"openai:{settings.base_url}/{model}",
        tool_mode=resolve_mode(settings, None),
        embedded=False,
        max_tokens=settings.max_tokens,
    )


_BRIDGES_LOCK = threading.Lock()
_BRIDGES: dict[int, tuple[ASGIApp, ASGIBridge]] = {}


def _bridge(app: ASGIApp) -> ASGIBridge:
    # One loop per app (held here, so its id stays unique): its asyncio state must never span two loops.
    with _BRIDGES_LOCK:
        known = _BRIDGES.get(id(app))
        if known is None:
            known = _BRIDGES[id(app)] = (app, ASGIBridge(app, name="in-process-llm"))
        return known[1]


def serve_in_process(app: ASGIApp, settings: LLMSettings, *, model_id: str) -> ChatEndpoint:
    """An endpoint on an OpenAI-compatible ASGI app in this process, shaped for the embedded backend; no probe."""
    sync_client, async_client = bridge_clients(_bridge(app), timeout_s=settings.timeout_s)
    chat = EmbeddedChatOpenAI(
        model=settings.model or EMBEDDED_MODEL_NAME,
        base_url=IN_PROCESS_BASE_URL,
        api_key=_NO_KEY,
        http_client=sync_client,
        http_async_client=async_client,
        temperature=settings.temperature,
        seed=settings.seed,
        max_tokens=settings.max_tokens,
        max_tokens_cap=settings.max_tokens,
        timeout=settings.timeout_s,
        # A deterministic local model fails the same way twice.
        max_retries=0,
        use_responses_api=False,
        disable_streaming="tool_calling",
    )
    return ChatEndpoint(
        chat=chat,
        model_id=model_id,
        tool_mode=resolve_mode(settings, None),
        embedded=True,
        max_tokens=settings.max_tokens,
    )


def with_probe(endpoint: ChatEndpoint, settings: LLMSettings) -> ChatEndpoint:
    """The endpoint after the start-up probe, its tool mode resolved from what the probe saw."""
    result = probe(endpoint)
    return dataclasses.replace(endpoint, probe=result, tool_mode=resolve_mode(settings, result))


def build_chat_model(settings: LLMSettings, *, run_probe: bool = True) -> ChatEndpoint:
    """The agent's chat endpoint: remote when OPENAI_BASE_URL is set, else the embedded model (loaded once)."""
    if settings.embedded:
        endpoint = serve_in_process(load_embedded_app(settings), settings, model_id=embedded_model_id())
    else:
        endpoint = connect_remote(settings)
    return with_probe(endpoint, settings) if run_probe else endpoint
