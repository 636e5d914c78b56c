"""The closed error taxonomy of tools. Only these reach a model or a person; anything else is a bug.

Each message says what is wrong and what to do next.
"""

from __future__ import annotations

from typing import Literal


class ToolError(Exception):
    """Base of every error a tool raises on purpose."""

    kind: str = "tool_error"


class BadArguments(ToolError):
    """Arguments that do not validate; the caller may fix them and retry."""

    kind = "bad_arguments"


RefusalCode = Literal[
    "below_horizon",
    "sun_up",
    "unsafe",
    "weather",
    "exposure_limits",
    "site_unavailable",
    "busy",
    "filter_unknown",
]


class Refused(ToolError):
    """A precondition failed (target below the horizon, sun up, unsafe, weather, limits); adapt, do not retry."""

    kind = "refused"

    def __init__(self, code: RefusalCode, message: str) -> None:
        super().__init__(message)
        self.code: RefusalCode = code


class ApprovalRequired(ToolError):
    """The action needs a person's approval first."""

    kind = "approval_required"


class Deferred(ToolError):
    """The action continues in the background (a long exposure); follow it through the given job id."""

    kind = "deferred"

    def __init__(self, message: str, job_id: int | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id


class OperatorError(ToolError):
    """Configuration or hardware trouble a person has to look at (bad site file, driver down)."""

    kind = "operator_error"


class DriverError(OperatorError):
    """A device failed: connection lost, camera in error, simulator process gone."""

    kind = "driver_error"
