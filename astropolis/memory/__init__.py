"""Persistent state that only ever grows: the job ledger and the audit log (semantic memory comes later).

Imports only `astropolis.lake`.
"""

from astropolis.memory.audit import GENESIS, AuditEntry, AuditLog, AuditVerifyReport, verify_chain
from astropolis.memory.embedding import Embedder, MiniLMEmbedder
from astropolis.memory.errors import (
    AuditError,
    EmbedderMismatch,
    IdempotencyConflict,
    IllegalTransition,
    InvalidJobRequest,
    InvalidMemory,
    JobNotFound,
    MemoryNotFound,
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
from astropolis.memory.lance import IndexSettings, LanceStore, memory_store
from astropolis.memory.ledger import Ledger, SubmitResult, parse_request
from astropolis.memory.semantic import InMemoryStore, Memory, MemoryHit, MemoryKind, MemoryStore, parse_memory

__all__ = [
    "GENESIS",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "AuditEntry",
    "AuditError",
    "AuditLog",
    "AuditVerifyReport",
    "Constraints",
    "Embedder",
    "EmbedderMismatch",
    "Exposure",
    "IdempotencyConflict",
    "IllegalTransition",
    "InMemoryStore",
    "IndexSettings",
    "InvalidJobRequest",
    "InvalidMemory",
    "Job",
    "JobKind",
    "JobNotFound",
    "JobRequest",
    "JobState",
    "LanceStore",
    "Ledger",
    "Memory",
    "MemoryHit",
    "MemoryKind",
    "MemoryNotFound",
    "MemoryStore",
    "MemoryStoreError",
    "MiniLMEmbedder",
    "Origin",
    "SubmitResult",
    "Target",
    "Transition",
    "Window",
    "memory_store",
    "parse_memory",
    "parse_request",
    "verify_chain",
]
