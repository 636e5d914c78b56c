"""The one way a tool is called: look it up, validate its arguments, ask the policy, run it, audit it.

Every call — unknown tool, bad arguments, refused, failed or done — appends exactly one audit entry with the
policy decision, the tier, the schema hash and the model id. Only `ToolError`s (and the stores' own typed
errors) come back as failures the caller can adapt to; anything else is a bug and is raised after auditing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from astropolis.lake.errors import LakeError
from astropolis.memory.errors import MemoryStoreError
from astropolis.models.errors import ResidentError
from astropolis.tools.deps import ToolDeps
from astropolis.tools.errors import ToolError
from astropolis.tools.policy import Caller, Decision, Policy
from astropolis.tools.registry import Registry, Tool

EXPECTED_ERRORS = (ToolError, LakeError, MemoryStoreError, ResidentError)


class CallError(BaseModel):
    """Why a call did not produce a result."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = Field(description="unknown_tool, bad_arguments, refused_by_policy, or a tool error kind.")
    message: str = Field(description="What is wrong and what to do next.")


class ToolCall(BaseModel):
    """One call as it happened: decision, result or error, and the audit entry that records it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tool: str = Field(description="Tool name as asked for.")
    tier: str | None = Field(description="Tier of the tool (None for an unknown tool).")
    arguments: dict[str, Any] = Field(description="Arguments as given.")
    policy: Literal["allowed", "refused"] = Field(description="The policy decision.")
    decision: str = Field(description="Why the policy decided so.")
    result: dict[str, Any] | None = Field(default=None, description="The tool's output (JSON).")
    error: CallError | None = Field(default=None, description="Why there is no result.")
    audit_seq: int = Field(description="Seq of the audit entry of this call.")
    duration_ms: float = Field(description="Wall time of the call.")

    @property
    def ok(self) -> bool:
        """True when the tool ran and returned a result."""
        return self.error is None and self.result is not None


class Dispatcher:
    """Calls tools for one caller through the registry and the policy."""

    def __init__(self, registry: Registry, deps: ToolDeps, policy: Policy | None = None) -> None:
        self.registry = registry
        self.deps = deps
        self.policy = policy or Policy()

    def call(
        self, caller: Caller, name: str, arguments: Mapping[str, Any] | None, *, said: str | None = None
    ) -> ToolCall:
        """Run one call and audit it; never raises for bad input, refusals or tool errors. `said` is the
        person's words behind the call (the policy lets an agent's note repeat only those)."""
        deps = replace(self.deps, actor=caller.actor, said=said)
        started = time.perf_counter()
        raw = dict(arguments or {}) if isinstance(arguments, Mapping) else {"_not_an_object": repr(arguments)[:200]}
        tool = self.registry.get(name) if isinstance(name, str) else None
        if tool is None:
            known = ", ".join(self.registry.names(("read", "propose")))
            return self._finish(
                caller,
                str(name)[:64],
                None,
                raw,
                started,
                Decision(False, "no such tool"),
                error=CallError(kind="unknown_tool", message=f"no tool {str(name)[:64]!r}; tools: {known}"),
            )
        try:
            parsed = tool.input.model_validate(raw)
        except ValidationError as invalid:
            return self._finish(
                caller,
                name,
                tool,
                raw,
                started,
                Decision(False, "arguments do not validate"),
                error=CallError(kind="bad_arguments", message=_validation_message(invalid)),
            )
        decision = self.policy.decide(tool, parsed, caller, deps)
        if not decision.allowed:
            return self._finish(
                caller,
                name,
                tool,
                raw,
                started,
                decision,
                error=CallError(kind="refused_by_policy", message=decision.reason),
            )
        try:
            output = tool.run(deps, parsed)
        except EXPECTED_ERRORS as failure:
            kind = getattr(failure, "kind", type(failure).__name__)
            return self._finish(
                caller, name, tool, raw, started, decision, error=CallError(kind=str(kind), message=str(failure)[:1000])
            )
        except Exception as bug:
            self._finish(
                caller,
                name,
                tool,
                raw,
                started,
                decision,
                error=CallError(kind="internal", message=f"{type(bug).__name__}: {bug}"[:1000]),
            )
            raise
        return self._finish(caller, name, tool, raw, started, decision, result=output.model_dump(mode="json"))

    def refuse(self, caller: Caller, name: str, arguments: Mapping[str, Any] | None, reason: str) -> ToolCall:
        """Record a call that was stopped before dispatch (e.g. a model's choice its words do not back)."""
        tool = self.registry.get(name) if isinstance(name, str) else None
        raw = dict(arguments) if isinstance(arguments, Mapping) else {"_not_an_object": repr(arguments)[:200]}
        return self._finish(
            caller,
            str(name)[:64],
            tool,
            raw,
            time.perf_counter(),
            Decision(False, reason),
            error=CallError(kind="refused_by_policy", message=reason),
        )

    def _finish(
        self,
        caller: Caller,
        name: str,
        tool: Tool[Any, Any] | None,
        arguments: dict[str, Any],
        started: float,
        decision: Decision,
        *,
        result: dict[str, Any] | None = None,
        error: CallError | None = None,
    ) -> ToolCall:
        duration = (time.perf_counter() - started) * 1000.0
        entry = self.deps.audit.append(
            actor=caller.actor,
            tool=f"tool.{name}",
            arguments=arguments,
            result=result,
            error=None if error is None else f"{error.kind}: {error.message}",
            policy="allowed" if decision.allowed else "refused",
            tier=None if tool is None else tool.tier,
            schema_hash=None if tool is None else tool.schema_hash(),
            approval="person" if caller.role == "person" else None,
            model_id=caller.model_id if caller.tool_mode is None else f"{caller.model_id} ({caller.tool_mode})",
            duration_ms=round(duration, 3),
        )
        return ToolCall(
            tool=name,
            tier=None if tool is None else tool.tier,
            arguments=arguments,
            policy="allowed" if decision.allowed else "refused",
            decision=decision.reason,
            result=result,
            error=error,
            audit_seq=entry.seq,
            duration_ms=round(duration, 3),
        )


def _validation_message(invalid: ValidationError) -> str:
    """pydantic's errors as one line per field, without echoing the (possibly huge or hostile) input."""
    parts = []
    for problem in invalid.errors(include_input=False)[:5]:
        where = ".".join(str(p) for p in problem["loc"]) or "arguments"
        parts.append(f"{where}: {problem['msg']}")
    return "; ".join(parts)
