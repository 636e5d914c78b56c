"""Clocks. Everything that stamps a time takes a `Clock`, so replays and tests control time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """A source of timezone-aware UTC datetimes."""

    def now(self) -> datetime:
        """Return the current time (timezone-aware, UTC)."""
        ...


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        """Return the current wall-clock time in UTC."""
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to (tests, replays, simulated nights)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        """Return the clock's current time."""
        return self._now

    def advance(self, delta: timedelta | float) -> datetime:
        """Move the clock forward by `delta` (a timedelta or seconds) and return the new time."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        if step < timedelta(0):
            raise ValueError("clocks do not run backwards")
        self._now += step
        return self._now

    def advance_to(self, moment: datetime) -> datetime:
        """Move the clock forward to `moment` (never backwards)."""
        return self.advance(moment.astimezone(UTC) - self._now)


def utc_iso(moment: datetime) -> str:
    """Format an aware datetime as fixed-width ISO-8601 UTC (`2026-11-25T10:00:00.000000Z`), sortable as text."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: Astropolis only stores timezone-aware UTC times")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc_iso(text: str) -> datetime:
    """Parse an ISO-8601 time; a time without a zone is rejected rather than guessed."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no timezone; write it in UTC, e.g. {text}Z")
    return moment.astimezone(UTC)
