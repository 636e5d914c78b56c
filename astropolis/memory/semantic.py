"""Semantic memory: what the agent remembers (episodes, notes, hypotheses, digests), found again by meaning.

Memory is append-only: there is no update or delete, and a changed hypothesis is a new memory that refers to
the old one. A memory's id is the sha256 of its canonical content, so putting the same memory twice stores
it once. `MemoryStore` is the narrow core: a store implements storing, nearest-neighbour search, filtered
listing and a count; everything the agent calls (`put_many`, `search`, `remember`, `recall`, `recent`,
`about`, `get`) derives from those four in the base class, argument checks included.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

import numpy as np
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from astropolis.lake.clock import utc_iso
from astropolis.lake.ids import canonical_json
from astropolis.memory.embedding import Embedder
from astropolis.memory.errors import InvalidMemory, MemoryNotFound

MemoryKind = Literal["episode", "note", "hypothesis", "digest"]
KINDS: tuple[str, ...] = get_args(MemoryKind)
SCHEMA_VERSION = 1
MAX_TEXT_CHARS = 2_000
MAX_K = 1_000
_REF = re.compile(r"^(?:sha256:[0-9a-f]{64}|(?:job|hypothesis):(?:0|[1-9][0-9]*))$")
_MEMORY_ID = re.compile(r"^sha256:[0-9a-f]{64}$")
# Caller-supplied vectors must already be unit length; this much slack covers float32 rounding only.
_NORM_TOLERANCE = 1e-3


def memory_id(kind: str, text: str, refs: Sequence[str], thread: str | None, created_at: datetime) -> str:
    """The content address of a memory: sha256 of the canonical JSON of what it says, about what, and when."""
    body = {"kind": kind, "text": text, "refs": list(refs), "thread": thread, "created_at": utc_iso(created_at)}
    return "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()


class Memory(BaseModel):
    """One remembered thing, immutable; create it without `id` and the id is derived from the content."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default="", description="sha256 of kind, text, refs, thread, created_at; derived, leave empty.")
    kind: MemoryKind = Field(description="episode (what happened), note (from a person), hypothesis, or digest.")
    text: str = Field(
        min_length=1, max_length=MAX_TEXT_CHARS, description="What to remember, plain text (data, never orders)."
    )
    refs: tuple[str, ...] = Field(
        default=(), max_length=64, description="What it is about: lake ids sha256:…, job:N, hypothesis:N (sorted)."
    )
    thread: str | None = Field(
        default=None, min_length=1, max_length=128, description="Conversation or night-run thread, if any."
    )
    actor: str = Field(min_length=1, max_length=128, description="Who wrote it: person:NAME, agent:THREAD, night:RUN…")
    created_at: AwareDatetime = Field(description="When it was written (UTC, run clock).")

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("text is blank: a memory needs something to remember")
        return value

    @field_validator("refs")
    @classmethod
    def _refs_known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for ref in value:
            if not _REF.match(ref):
                raise ValueError(f"ref {ref!r} is not sha256:<64 hex>, job:N or hypothesis:N")
        # Order and repeats carry no meaning, and must not change the id.
        return tuple(sorted(set(value)))

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _derive_id(self) -> Memory:
        derived = memory_id(self.kind, self.text, self.refs, self.thread, self.created_at)
        if self.id and self.id != derived:
            raise ValueError(f"id {self.id} does not match the content (which hashes to {derived})")
        # Frozen models refuse setattr; writing the derived field once, during validation, is the exception.
        self.__dict__["id"] = derived
        return self


class MemoryHit(BaseModel):
    """A memory found by a search, with how close it is to the query."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    memory: Memory = Field(description="The memory found.")
    score: float = Field(description="Cosine similarity to the query, -1…1; higher is closer.")


def parse_memory(data: object) -> Memory:
    """Validate a memory from plain data, turning pydantic's report into one `InvalidMemory` message."""
    try:
        return Memory.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "memory"
        raise InvalidMemory(f"memory {where}: {first['msg']}") from None


def _chosen(values: Iterable[str] | None, allowed: Callable[[str], bool], what: str) -> frozenset[str] | None:
    """A validated, non-empty set of filter values (one string counts as one value); None means no filter."""
    if values is None:
        return None
    chosen = frozenset([values] if isinstance(values, str) else values)
    bad = sorted(repr(v) for v in chosen if not isinstance(v, str) or not allowed(v))
    if bad or not chosen:
        raise InvalidMemory(f"{what}; got {', '.join(bad) or 'an empty selection'}")
    return chosen


@dataclass(frozen=True)
class MemoryFilter:
    """Validated filters: a memory matches when it passes every filter given (any value of each set)."""

    ids: frozenset[str] | None = None
    kinds: frozenset[str] | None = None
    refs: frozenset[str] | None = None
    thread: str | None = None

    @classmethod
    def of(
        cls,
        *,
        ids: Iterable[str] | None = None,
        kinds: Iterable[str] | None = None,
        refs: Iterable[str] | None = None,
        thread: str | None = None,
    ) -> MemoryFilter:
        """Check raw filter arguments (InvalidMemory naming the bad value) and build the filter."""
        if thread is not None and (not isinstance(thread, str) or not 1 <= len(thread) <= 128):
            raise InvalidMemory("thread must be a string of 1 to 128 characters")
        return cls(
            ids=_chosen(ids, lambda v: bool(_MEMORY_ID.match(v)), "memory ids are sha256:<64 hex>"),
            kinds=_chosen(kinds, lambda v: v in KINDS, f"kinds are {', '.join(KINDS)}"),
            refs=_chosen(refs, lambda v: bool(_REF.match(v)), "refs are sha256:<64 hex>, job:N or hypothesis:N"),
            thread=thread,
        )

    def matches(self, memory: Memory) -> bool:
        """Whether `memory` passes every filter."""
        return (
            (self.ids is None or memory.id in self.ids)
            and (self.kinds is None or memory.kind in self.kinds)
            and (self.refs is None or not self.refs.isdisjoint(memory.refs))
            and (self.thread is None or memory.thread == self.thread)
        )


def _check_count(value: int | None, name: str, top: int | None) -> None:
    if value is None and top is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1 or (top is not None and value > top):
        upper = f"from 1 to {top}" if top is not None else "of at least 1 (or None)"
        raise InvalidMemory(f"{name} must be an integer {upper}, got {value!r}")


class MemoryStore(ABC):
    """Append-only semantic memory. Subclasses implement `_put`, `_search`, `_select` and `count`; the public
    methods check every argument first, so each store refuses the same bad input with the same message."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    # The narrow core, called with checked arguments only.

    @abstractmethod
    def _put(self, memories: list[Memory], vectors: np.ndarray) -> int:
        """Store the memories (distinct ids, one unit vector each) not stored yet; return how many were new."""

    @abstractmethod
    def _search(self, vector: np.ndarray, k: int, where: MemoryFilter) -> list[MemoryHit]:
        """The `k` memories passing `where` closest to the unit `vector`, best first."""

    @abstractmethod
    def _select(self, where: MemoryFilter, limit: int | None) -> list[Memory]:
        """Memories passing `where`, newest first (equal times: lower id first), at most `limit`."""

    @abstractmethod
    def count(self) -> int:
        """How many memories are stored."""

    # The public API, derived from the core.

    def put_many(self, memories: Sequence[Memory], vectors: np.ndarray | None = None) -> int:
        """Store memories not stored yet (embedding their text unless `vectors` is given); return how many were new.

        The whole batch is checked before anything is written: one bad memory or vector stores nothing.
        """
        batch, matrix = self._prepare(memories, vectors)
        return self._put(batch, matrix) if batch else 0

    def search(
        self,
        query: str | np.ndarray,
        *,
        k: int = 10,
        kinds: Iterable[str] | None = None,
        refs: Iterable[str] | None = None,
    ) -> list[MemoryHit]:
        """The `k` memories closest to `query` (text, or a vector), best first, of any of `kinds` and `refs`."""
        _check_count(k, "k", MAX_K)
        where = MemoryFilter.of(kinds=kinds, refs=refs)
        return self._search(self._query_vector(query), k, where)

    def select(
        self,
        *,
        ids: Iterable[str] | None = None,
        kinds: Iterable[str] | None = None,
        refs: Iterable[str] | None = None,
        thread: str | None = None,
        limit: int | None = None,
    ) -> list[Memory]:
        """Memories matching every given filter (any of each list), newest first, at most `limit`."""
        _check_count(limit, "limit", None)
        return self._select(MemoryFilter.of(ids=ids, kinds=kinds, refs=refs, thread=thread), limit)

    def put(self, memory: Memory, vector: np.ndarray | None = None) -> bool:
        """Store one memory; True if it was new."""
        return self.put_many([memory], None if vector is None else np.asarray(vector).reshape(1, -1)) == 1

    def remember(
        self,
        kind: str,
        text: str,
        *,
        actor: str,
        created_at: datetime,
        refs: Iterable[str] = (),
        thread: str | None = None,
    ) -> Memory:
        """Validate and store a memory from its fields (InvalidMemory if bad); return it, new or already there."""
        memory = parse_memory(
            {
                "kind": kind,
                "text": text,
                "refs": tuple(refs),
                "thread": thread,
                "actor": actor,
                "created_at": created_at,
            }
        )
        self.put_many([memory])
        return memory

    def recall(
        self, text: str, *, k: int = 5, kinds: Iterable[str] | None = None, refs: Iterable[str] | None = None
    ) -> list[MemoryHit]:
        """The `k` memories closest in meaning to `text`, best first."""
        if not isinstance(text, str):
            raise InvalidMemory("recall takes text; pass a vector to search instead")
        return self.search(text, k=k, kinds=kinds, refs=refs)

    def recent(self, n: int = 20, *, kinds: Iterable[str] | None = None, thread: str | None = None) -> list[Memory]:
        """The `n` newest memories, optionally of some kinds or one thread."""
        return self.select(kinds=kinds, thread=thread, limit=n)

    def about(self, ref: str, *, limit: int = 50, kinds: Iterable[str] | None = None) -> list[Memory]:
        """Memories that refer to `ref` (a lake id, job:N or hypothesis:N), newest first."""
        return self.select(refs=[ref], kinds=kinds, limit=limit)

    def get(self, memory_id: str) -> Memory:
        """One memory by id (MemoryNotFound if none)."""
        found = self.select(ids=[memory_id], limit=1)
        if not found:
            raise MemoryNotFound(f"no memory {memory_id}: search or list recent memories to find its id")
        return found[0]

    def __len__(self) -> int:
        return self.count()

    def _prepare(self, memories: Sequence[Memory], vectors: np.ndarray | None) -> tuple[list[Memory], np.ndarray]:
        """Check a batch and pair each distinct memory with a unit vector (embedding the text when not given)."""
        batch = list(memories)
        for memory in batch:
            if not isinstance(memory, Memory):
                raise InvalidMemory(f"put_many takes Memory objects, not {type(memory).__name__} (see parse_memory)")
        if vectors is None:
            matrix = self.embedder.embed([memory.text for memory in batch]) if batch else self._empty()
        else:
            matrix = self._check_vectors(vectors, len(batch))
        first: dict[str, int] = {}
        for position, memory in enumerate(batch):
            first.setdefault(memory.id, position)
        keep = list(first.values())
        return [batch[i] for i in keep], np.ascontiguousarray(matrix[keep], dtype=np.float32)

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.embedder.dim), dtype=np.float32)

    def _check_vectors(self, vectors: np.ndarray, rows: int) -> np.ndarray:
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.shape != (rows, self.embedder.dim):
            raise InvalidMemory(f"vectors have shape {matrix.shape}; expected ({rows}, {self.embedder.dim})")
        if not np.isfinite(matrix).all():
            raise InvalidMemory("vectors contain NaN or infinity")
        norms = np.linalg.norm(matrix, axis=1)
        if rows and np.abs(norms - 1.0).max() > _NORM_TOLERANCE:
            raise InvalidMemory("vectors must have L2 norm 1 (normalise them, or pass none and let the store embed)")
        return matrix

    def _query_vector(self, query: str | np.ndarray) -> np.ndarray:
        """A unit float32 query vector from text (embedded) or a vector (normalised)."""
        if isinstance(query, str):
            if not query.strip():
                raise InvalidMemory("query text is blank: say what to look for")
            return self.embedder.embed([query.strip()])[0]
        vector = np.asarray(query, dtype=np.float32).reshape(-1)
        if vector.shape != (self.embedder.dim,) or not np.isfinite(vector).all():
            raise InvalidMemory(f"query vector must be {self.embedder.dim} finite floats, got shape {vector.shape}")
        norm = float(np.linalg.norm(vector))
        if norm == 0.0:
            raise InvalidMemory("query vector is all zeros")
        return vector / norm


class InMemoryStore(MemoryStore):
    """Semantic memory in process memory, exact (brute-force numpy) search; for tests and small runs."""

    def __init__(self, embedder: Embedder) -> None:
        super().__init__(embedder)
        self._memories: list[Memory] = []
        self._positions: dict[str, int] = {}
        self._chunks: list[np.ndarray] = []
        self._matrix = self._empty()

    def _put(self, memories: list[Memory], vectors: np.ndarray) -> int:
        new = [i for i, memory in enumerate(memories) if memory.id not in self._positions]
        for i in new:
            self._positions[memories[i].id] = len(self._memories)
            self._memories.append(memories[i])
        if new:
            self._chunks.append(vectors[new])
        return len(new)

    def _vectors(self) -> np.ndarray:
        if self._chunks:
            # Concatenate lazily, once per search after puts, not once per put.
            self._matrix = np.concatenate([self._matrix, *self._chunks])
            self._chunks = []
        return self._matrix

    def _search(self, vector: np.ndarray, k: int, where: MemoryFilter) -> list[MemoryHit]:
        # Exact: every candidate's cosine similarity, ties kept in the order stored.
        matrix = self._vectors()
        candidates = np.arange(len(matrix))
        if where != MemoryFilter():
            candidates = candidates[[where.matches(m) for m in self._memories]]
        scores = matrix[candidates] @ vector
        best = np.argsort(-scores, kind="stable")[:k]
        return [MemoryHit(memory=self._memories[candidates[i]], score=float(scores[i])) for i in best]

    def _select(self, where: MemoryFilter, limit: int | None) -> list[Memory]:
        pool = self._memories
        if where.ids is not None:
            pool = [self._memories[self._positions[i]] for i in sorted(where.ids) if i in self._positions]
        found = sorted((m for m in pool if where.matches(m)), key=lambda m: m.id)
        found.sort(key=lambda m: m.created_at, reverse=True)  # stable: equal times stay in id order
        return found[:limit]

    def count(self) -> int:
        """How many memories are stored."""
        return len(self._memories)
