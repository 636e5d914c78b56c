"""The agent's LLM: settings from the environment, one factory, a start-up probe, and a free-text helper.

    settings = load_llm_settings()
    endpoint = build_chat_model(settings)          # loads the embedded model or connects; probes once
    reply = endpoint.chat.bind_tools(tools).invoke(messages)
    audit_entry["llm_model_id"] = endpoint.model_id

Nothing is loaded at import time.
"""

from astropolis.agent.llm.embedded import embedded_model_id, gguf_path, shape_embedded_request
from astropolis.agent.llm.endpoint import ChatEndpoint, ProbeResult, complete
from astropolis.agent.llm.errors import LLMError
from astropolis.agent.llm.factory import build_chat_model, connect_remote, serve_in_process, with_probe
from astropolis.agent.llm.probe import PROBE_TOOL, probe, resolve_mode
from astropolis.agent.llm.settings import LLMSettings, ResolvedToolMode, ToolMode, load_llm_settings

__all__ = [
    "PROBE_TOOL",
    "ChatEndpoint",
    "LLMError",
    "LLMSettings",
    "ProbeResult",
    "ResolvedToolMode",
    "ToolMode",
    "build_chat_model",
    "complete",
    "connect_remote",
    "embedded_model_id",
    "gguf_path",
    "load_llm_settings",
    "probe",
    "resolve_mode",
    "serve_in_process",
    "shape_embedded_request",
    "with_probe",
]
