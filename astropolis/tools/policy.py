"""The policy layer: who may call which tier, and the limits on proposals — enforced in code, outside the model.

- `read` is always allowed.
- `propose` (create or re-prioritise jobs, hypotheses) is allowed to agents and people within limits: a rate per
  actor per hour (counted from the audit log, so a restart does not reset it), a priority cap for agents, a
  target that some site can observe within the coming week, an idempotency key, and a free-text note that
  neither carries a link nor repeats stored memory (the exfiltration path of a compromised model).
- `actuate` (slew, expose, dome) is never granted here: only the scheduler and executor actuate, with their
  own preconditions, and they do not call tools through this layer.
- `admin` is for people, from the CLI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from astropolis.tools.deps import ToolDeps
from astropolis.tools.registry import Tier, Tool

Role = Literal["agent", "person", "night"]
ROLE_TIERS: dict[Role, frozenset[Tier]] = {
    "agent": frozenset({"read", "propose"}),
    "night": frozenset({"read", "propose"}),
    "person": frozenset({"read", "propose", "admin"}),
}
# Words an agent's note may always use; any other word must come from the person's own request this turn, so
# a compromised model cannot carry what it read (memories, headers, reasons) into the ledger.
NOTE_VOCABULARY = frozenset(
    "follow up followup follow-up transient candidate candidates confirm confirmation monitor monitoring light curve "
    "supernova nova variable variability colour color photometry epoch epochs check repeat reobserve requested "
    "another site sites second independent faint bright new source sources galaxy field deeper longer exposure "
    "exposures filter test hypothesis fading rising brightening the a an of for and to in on at from with by".split()
)
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
_LINK = re.compile(r"(https?://|www\.|[\w.+-]+@[\w-]+\.[\w.]+|\b[a-z0-9-]+\.(com|net|org|io|ru|cn)\b)", re.I)


class Caller(BaseModel):
    """Who is calling: the audit log's actor, their role, and for agents the model and tool mode."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    actor: str = Field(pattern=r"^[a-z]+:[\x21-\x7e]{1,100}$", description="agent:THREAD, person:NAME, night:RUN.")
    role: Role = Field(description="What kind of caller this is; decides the tiers it may use.")
    model_id: str | None = Field(default=None, description="LLM model id behind an agent call.")
    tool_mode: str | None = Field(default=None, description="native or constrained, for agent calls.")


class PolicyLimits(BaseModel):
    """Limits on what non-people may propose."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    proposals_per_hour: int = Field(default=10, ge=0, description="Allowed proposals per actor per rolling hour.")
    agent_priority_cap: int = Field(default=80, ge=1, le=100, description="Highest priority an agent may ask for.")
    observable_within_days: float = Field(default=7.0, gt=0, le=30, description="A target must be observable soon.")
    note_overlap_chars: int = Field(default=32, ge=8, description="A note may not repeat this much stored memory.")


@dataclass(frozen=True)
class Decision:
    """The policy's verdict on one call."""

    allowed: bool
    reason: str


class Policy:
    """Decides every tool call before it runs."""

    def __init__(self, limits: PolicyLimits | None = None) -> None:
        self.limits = limits or PolicyLimits()

    def decide(self, tool: Tool[Any, Any], arguments: BaseModel, caller: Caller, deps: ToolDeps) -> Decision:
        """Allowed, or refused with a reason that says what would be allowed."""
        if tool.tier == "actuate":
            return Decision(False, f"{tool.name} actuates hardware: only the scheduler and executor do that")
        if tool.tier not in ROLE_TIERS[caller.role]:
            return Decision(
                False,
                f"{tool.name} is a {tool.tier} tool; a {caller.role} may use only "
                + ", ".join(sorted(ROLE_TIERS[caller.role])),
            )
        if tool.tier != "propose" or caller.role == "person":
            return Decision(True, f"{tool.tier} tool")
        return self._proposal(tool, arguments, caller, deps)

    def _proposal(self, tool: Tool[Any, Any], arguments: BaseModel, caller: Caller, deps: ToolDeps) -> Decision:
        limits = self.limits
        used = self.proposals_in_last_hour(caller.actor, deps)
        if used >= limits.proposals_per_hour:
            return Decision(
                False,
                f"rate limit: {used} proposals by {caller.actor} in the last hour "
                f"(at most {limits.proposals_per_hour}); ask a person to submit more",
            )
        owner = getattr(arguments, "owner", None)
        if callable(owner):
            asked_by = owner(deps)
            if asked_by is not None and asked_by != caller.actor:
                return Decision(
                    False,
                    f"that job was asked for by {asked_by}; an agent may change only its own "
                    "proposals (a person can, from the CLI)",
                )
        priority = getattr(arguments, "priority", None)
        if isinstance(priority, int) and priority > limits.agent_priority_cap:
            return Decision(False, f"priority {priority} is above the agent cap {limits.agent_priority_cap}")
        for field in ("note", "statement"):
            text = getattr(arguments, field, None)
            if isinstance(text, str) and text:
                problem = self._text_problem(field, text, deps)
                if problem:
                    return Decision(False, problem)
        position = getattr(arguments, "sky_position", None)
        if callable(position):
            where = position(deps)
            if where is not None and not self._observable_soon(where, deps):
                return Decision(
                    False,
                    f"target at RA {where[0]:.4f} Dec {where[1]:+.4f} is not observable from any "
                    f"site within {limits.observable_within_days:g} days",
                )
        return Decision(True, f"proposal {used + 1} of {limits.proposals_per_hour} this hour")

    def proposals_in_last_hour(self, actor: str, deps: ToolDeps) -> int:
        """Allowed proposals by `actor` in the rolling hour, from the audit log (survives restarts)."""
        since = deps.clock.now() - timedelta(hours=1)
        count = 0
        for entry in deps.audit.entries(limit=10_000, actor=actor):
            if entry.at < since:
                break
            if entry.tier == "propose" and entry.policy == "allowed" and entry.error is None:
                count += 1
        return count

    def _text_problem(self, field: str, note: str, deps: ToolDeps) -> str | None:
        if _LINK.search(note):
            return f"a {field} may not carry links or addresses"
        if field == "note":
            said = set(_WORD.findall((deps.said or "").lower()))
            foreign = [w for w in _WORD.findall(note.lower()) if w not in said and w not in NOTE_VOCABULARY]
            if foreign:
                return (
                    f"the note uses words the person did not say ({', '.join(sorted(set(foreign))[:5])}); "
                    "cite evidence ids instead"
                )
        if deps.memory is None:
            return None
        span = self.limits.note_overlap_chars
        folded = " ".join(note.lower().split())
        if len(folded) < span:
            return None
        for hit in deps.memory.search(note, k=5):
            text = " ".join(hit.memory.text.lower().split())
            if any(folded[i : i + span] in text for i in range(0, len(folded) - span + 1)):
                return f"the {field} repeats stored memory ({hit.memory.id[:19]}); cite its id instead"
        return None

    def _observable_soon(self, where: tuple[float, float], deps: ToolDeps) -> bool:
        from astropy import units as u
        from astropy.coordinates import SkyCoord

        from astropolis.tools.visibility import observable_windows

        start = deps.clock.now()
        end = start + timedelta(days=self.limits.observable_within_days)
        table = observable_windows(
            tuple(deps.sites),
            SkyCoord([where[0]] * u.deg, [where[1]] * u.deg),
            start,
            end,
            max_airmass=2.5,
            min_moon_separation_deg=10.0,
            step=timedelta(hours=1),
        )
        return any(table.windows_by_site(0).values())
