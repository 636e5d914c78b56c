"""Errors of the ledger and the audit log. Each message names the job or entry and says what to do next."""

from __future__ import annotations


class MemoryStoreError(Exception):
    """Base class of every error the memory package raises on purpose."""


class InvalidJobRequest(MemoryStoreError, ValueError):
    """A job request that does not validate (names the field and the problem)."""


class JobNotFound(MemoryStoreError, KeyError):
    """No job has this id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "job not found"


class IllegalTransition(MemoryStoreError):
    """A state change the job state machine does not allow; nothing was changed."""

    def __init__(self, job_id: int, current: str, target: str, allowed: tuple[str, ...]) -> None:
        options = ", ".join(allowed) if allowed else f"nothing: {current} is final"
        super().__init__(f"job {job_id} is {current}; it cannot become {target} (allowed next: {options})")
        self.job_id = job_id
        self.current = current
        self.target = target


class IdempotencyConflict(MemoryStoreError):
    """The idempotency key was already used for a different request."""


class AuditError(MemoryStoreError):
    """An audit log operation failed (bad seq, bad head)."""


class InvalidMemory(MemoryStoreError, ValueError):
    """A memory, query or vector that does not validate; nothing was stored (names the field and the problem)."""


class MemoryNotFound(MemoryStoreError, KeyError):
    """No memory has this id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "memory not found"


class EmbedderMismatch(MemoryStoreError):
    """The store was filled by a different embedding model or dimension than the one it was opened with."""
