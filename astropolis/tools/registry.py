"""The one registry of typed tools the agent sees, and the tiers that say who may call what.

A tool maps a frozen pydantic input to a frozen pydantic output; its handles (lake, ledger, memory, clock)
arrive in one `ToolDeps`, never in the arguments, so the model can neither see nor choose them. The schema a
model is shown is derived from the input model and snapshot-tested, so a change to what the model sees is a
reviewed change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from astropolis.lake.ids import canonical_json

if TYPE_CHECKING:
    from astropolis.tools.deps import ToolDeps

Tier = Literal["read", "propose", "actuate", "admin"]
TIERS: tuple[Tier, ...] = ("read", "propose", "actuate", "admin")

In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)


class ToolInput(BaseModel):
    """Base of every tool input: frozen, unknown fields refused, every string bounded."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class ToolOutput(BaseModel):
    """Base of every tool output."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True)
class Tool(Generic[In, Out]):
    """One typed tool: a name, a tier, a description for the model, and a pure function of (deps, input)."""

    name: str
    tier: Tier
    description: str
    input: type[In]
    output: type[Out]
    run: Callable[[ToolDeps, In], Out]

    def parameters(self) -> dict[str, Any]:
        """The JSON schema of the arguments, as a model is shown it."""
        return self.input.model_json_schema()

    def llm_schema(self) -> dict[str, Any]:
        """The OpenAI function-calling description of this tool."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters()},
        }

    def schema_hash(self) -> str:
        """sha256 of what the model is shown (changes whenever the interface does); recorded in the audit log."""
        body = {"tier": self.tier, **self.llm_schema()}
        return "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()


class Registry:
    """Tools by name. Built once; lookups never create anything."""

    def __init__(self, tools: Iterable[Tool[Any, Any]]) -> None:
        self._tools: dict[str, Tool[Any, Any]] = {}
        for tool in tools:
            if tool.name in self._tools:
                raise ValueError(f"tool {tool.name!r} is registered twice")
            if tool.tier not in TIERS:
                raise ValueError(f"tool {tool.name!r} has unknown tier {tool.tier!r}")
            self._tools[tool.name] = tool

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool[Any, Any]]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def get(self, name: str) -> Tool[Any, Any] | None:
        """The tool of that name, or None."""
        return self._tools.get(name)

    def names(self, tiers: Iterable[Tier] | None = None) -> list[str]:
        """Tool names, optionally only of some tiers, in registration order."""
        wanted = set(tiers) if tiers is not None else set(TIERS)
        return [t.name for t in self._tools.values() if t.tier in wanted]

    def llm_schemas(self, tiers: Iterable[Tier] = ("read", "propose")) -> list[dict[str, Any]]:
        """What a model is shown: only tools of the tiers it may call (never actuate or admin)."""
        wanted = set(tiers)
        return [t.llm_schema() for t in self._tools.values() if t.tier in wanted]

    def compact_schemas(self, tiers: Iterable[Tier] = ("read",)) -> list[dict[str, Any]]:
        """The same tools without per-field titles and descriptions: for a small model's short context (its
        arguments are validated against the full schema anyway)."""
        return [_compact(schema) for schema in self.llm_schemas(tiers)]

    def describe(self) -> list[Mapping[str, Any]]:
        """Name, tier, description and schema hash of every tool (for `astropolis agent tools`)."""
        return [
            {"name": t.name, "tier": t.tier, "description": t.description, "schema_hash": t.schema_hash()}
            for t in self._tools.values()
        ]


def _compact(node: Any, *, keep_description: bool = True) -> Any:
    """A schema without titles, and without descriptions below the function level."""
    if isinstance(node, list):
        return [_compact(item, keep_description=False) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "title" or (key == "description" and not keep_description):
            continue
        out[key] = _compact(value, keep_description=key == "function")
    return out
