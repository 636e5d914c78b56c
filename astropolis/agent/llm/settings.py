"""Which LLM the agent talks to and how, read from the environment at the entry point.

`OPENAI_BASE_URL` (and `OPENAI_API_KEY`) select any OpenAI-compatible endpoint — OpenAI itself
(`https://api.openai.com/v1`), vLLM, llama.cpp's llama-server, Ollama. Without a base URL the embedded
model runs in-process: offline first, so there is no implicit fallback to api.openai.com.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from astropolis.settings import SettingsError

ToolMode = Literal["auto", "native", "constrained"]
ResolvedToolMode = Literal["native", "constrained"]

EMBEDDED_MODEL_NAME = "smollm2-135m-instruct"


def _env(name: str, field: str) -> AliasChoices:
    return AliasChoices(name, field)


class LLMSettings(BaseSettings):
    """The LLM endpoint, model and sampling settings; the environment names are given per field."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    base_url: str | None = Field(
        default=None,
        validation_alias=_env("OPENAI_BASE_URL", "base_url"),
        description="OPENAI_BASE_URL: an OpenAI-compatible endpoint; unset means the embedded model.",
    )
    api_key: SecretStr | None = Field(
        default=None, validation_alias=_env("OPENAI_API_KEY", "api_key"), description="OPENAI_API_KEY."
    )
    model: str | None = Field(
        default=None,
        validation_alias=_env("ASTROPOLIS_LLM_MODEL", "model"),
        description="ASTROPOLIS_LLM_MODEL: default the endpoint's first listed model, or the embedded one.",
    )
    tool_mode: ToolMode = Field(
        default="auto",
        validation_alias=_env("ASTROPOLIS_TOOL_MODE", "tool_mode"),
        description="ASTROPOLIS_TOOL_MODE: native tool calls, constrained decoding, or auto (decided by the probe).",
    )
    max_tokens: int = Field(
        default=256,
        gt=0,
        le=8192,
        validation_alias=_env("ASTROPOLIS_LLM_MAX_TOKENS", "max_tokens"),
        description="ASTROPOLIS_LLM_MAX_TOKENS: tokens per reply; a hard cap for the embedded model.",
    )
    temperature: float = Field(
        default=0.0,
        ge=0.0,
        le=2.0,
        validation_alias=_env("ASTROPOLIS_LLM_TEMPERATURE", "temperature"),
        description="ASTROPOLIS_LLM_TEMPERATURE: 0 makes replies repeatable.",
    )
    seed: int = Field(
        default=0, validation_alias=_env("ASTROPOLIS_LLM_SEED", "seed"), description="ASTROPOLIS_LLM_SEED."
    )
    timeout_s: float = Field(
        default=120.0,
        gt=0,
        validation_alias=_env("ASTROPOLIS_LLM_TIMEOUT_S", "timeout_s"),
        description="ASTROPOLIS_LLM_TIMEOUT_S: per request; a busy 2-core machine needs tens of seconds.",
    )
    max_retries: int = Field(
        default=1,
        ge=0,
        le=10,
        validation_alias=_env("ASTROPOLIS_LLM_MAX_RETRIES", "max_retries"),
        description="ASTROPOLIS_LLM_MAX_RETRIES: retries of a failed request to a remote endpoint.",
    )
    context_tokens: int = Field(
        default=4096,  # the tool schemas alone take ~1,500 tokens; SmolLM2 was trained to 8,192
        ge=512,
        validation_alias=_env("ASTROPOLIS_LLM_CONTEXT_TOKENS", "context_tokens"),
        description="ASTROPOLIS_LLM_CONTEXT_TOKENS: the embedded model's context window.",
    )
    threads: int = Field(
        default=2,
        ge=1,
        validation_alias=_env("ASTROPOLIS_LLM_THREADS", "threads"),
        description="ASTROPOLIS_LLM_THREADS: CPU threads of the embedded model.",
    )

    @field_validator("base_url", "model", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        # `OPENAI_BASE_URL= astropolis …` should mean "unset", not "an empty URL".
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip().rstrip("/") if isinstance(value, str) else value

    @property
    def embedded(self) -> bool:
        """True when no endpoint is configured and the in-process model answers."""
        return self.base_url is None


def load_llm_settings(overrides: Mapping[str, Any] | None = None) -> LLMSettings:
    """Build LLM settings from the environment, then `overrides` (CLI flags, by field name)."""
    values = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        return LLMSettings(**values)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SettingsError(f"LLM setting {where!r}: {first['msg']}") from None
