"""Persistent state that only ever grows: the job ledger and the audit log (semantic memory comes later).

Imports only `astropolis.lake`.
"""

from astropolis.memory.audit import GENESIS, AuditEntry, AuditLog, AuditVerifyReport, verify_chain
from astropolis.memory.errors import (
    AuditError,
    IdempotencyConflict,
    IllegalTransition,
    InvalidJobRequest,
    JobNotFound,
    MemoryStoreError,
)
from astropolis.memory.jobs import (
    TERMINAL_STATES,
    TRANSITIONS,
    Constraints,
    Exposure,
    Job,
    JobKind,
    JobRequest,
    JobState,
    Origin,
    Target,
    Transition,
    Window,
)
from astropolis.memory.ledger import Ledger, SubmitResult, parse_request

__all__ = [
    "GENESIS",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "AuditEntry",
    "AuditError",
    "AuditLog",
    "AuditVerifyReport",
    "Constraints",
    "Exposure",
    "IdempotencyConflict",
    "IllegalTransition",
    "InvalidJobRequest",
    "Job",
    "JobKind",
    "JobNotFound",
    "JobRequest",
    "JobState",
    "Ledger",
    "MemoryStoreError",
    "Origin",
    "SubmitResult",
    "Target",
    "Transition",
    "Window",
    "parse_request",
    "verify_chain",
]
