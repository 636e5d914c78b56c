"""Semantic memory in LanceDB: one table in a local folder (object storage later, same code).

Rows are appended with a merge on `id`, so a memory put twice is stored once. Below `IndexSettings.min_rows`
search is an exact flat scan; at that size an ANN index is built, and rows added after it are scanned flat
and merged in by LanceDB until `optimize` folds them into the index, so no memory is ever invisible.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from astropolis.memory.embedding import Embedder
from astropolis.memory.errors import EmbedderMismatch
from astropolis.memory.semantic import SCHEMA_VERSION, Memory, MemoryFilter, MemoryHit, MemoryStore

if TYPE_CHECKING:
    import pyarrow as pa

TABLE = "memories"
_META_MODEL = b"astropolis.embedder"
_META_DIM = b"astropolis.dim"
_META_SCHEMA = b"astropolis.schema_version"
_COLUMNS = ["id", "kind", "text", "refs", "thread", "actor", "created_at"]


class IndexSettings(BaseModel):
    """When and how the ANN index is built, and how it is searched (defaults measured by bench_memory)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index_type: Literal["IVF_HNSW_SQ", "IVF_PQ"] = Field(default="IVF_HNSW_SQ", description="LanceDB index type.")
    min_rows: int | None = Field(
        default=10_000, ge=256, description="Build the index once the table has this many rows; None: never auto."
    )
    rows_per_partition: int = Field(default=8_192, ge=256, description="IVF partitions = rows / this (at least 1).")
    num_sub_vectors: int = Field(default=48, ge=1, description="PQ sub-vectors (IVF_PQ only; must divide dim).")
    m: int = Field(default=20, ge=4, description="HNSW graph degree (IVF_HNSW_SQ only).")
    ef_construction: int = Field(default=150, ge=16, description="HNSW build beam (IVF_HNSW_SQ only).")
    nprobes: int = Field(default=8, ge=1, description="IVF partitions searched per query.")
    ef: int = Field(default=80, ge=10, description="HNSW search beam (IVF_HNSW_SQ only).")
    refine_factor: int | None = Field(
        default=2, ge=1, description="Re-rank k × this candidates with exact vectors (exact scores); None: off."
    )
    optimize_after: int = Field(
        default=10_000, ge=1, description="Fold rows into the index (optimize) once this many are unindexed."
    )


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _in_list(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(_quote(v) for v in sorted(values))})"


class LanceStore(MemoryStore):
    """Semantic memory in a LanceDB folder: flat exact search when small, an ANN index when large."""

    def __init__(self, path: Path, embedder: Embedder, *, index: IndexSettings | None = None) -> None:
        import lancedb

        super().__init__(embedder)
        self.path = Path(path)
        self.index = index or IndexSettings()
        self.path.mkdir(parents=True, exist_ok=True)
        self._db = lancedb.connect(str(self.path))
        self._table: Any = None
        self._indexed = False
        if TABLE in self._db.list_tables().tables:
            self._table = self._db.open_table(TABLE)
            self._check_embedder(self._table.schema)

    def _schema(self) -> pa.Schema:
        import pyarrow as pa

        return pa.schema(
            [
                pa.field("id", pa.string(), nullable=False),
                pa.field("kind", pa.string(), nullable=False),
                pa.field("text", pa.string(), nullable=False),
                pa.field("refs", pa.list_(pa.string()), nullable=False),
                pa.field("thread", pa.string()),
                pa.field("actor", pa.string(), nullable=False),
                pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
                pa.field("schema_version", pa.int32(), nullable=False),
                pa.field("vector", pa.list_(pa.float32(), self.embedder.dim), nullable=False),
            ],
            metadata={
                _META_MODEL: self.embedder.model_id.encode(),
                _META_DIM: str(self.embedder.dim).encode(),
                _META_SCHEMA: str(SCHEMA_VERSION).encode(),
            },
        )

    def _check_embedder(self, schema: pa.Schema) -> None:
        meta = schema.metadata or {}
        stored = (meta.get(_META_MODEL, b"?").decode(), meta.get(_META_DIM, b"?").decode())
        if stored != (self.embedder.model_id, str(self.embedder.dim)):
            raise EmbedderMismatch(
                f"{self.path} holds vectors of {stored[0]} (dim {stored[1]}), not {self.embedder.model_id} "
                f"(dim {self.embedder.dim}); open it with that embedder or use another folder"
            )

    def _rows(self, memories: Sequence[Memory], vectors: np.ndarray) -> pa.Table:
        import pyarrow as pa

        schema = self._schema()
        columns = {
            "id": [m.id for m in memories],
            "kind": [m.kind for m in memories],
            "text": [m.text for m in memories],
            "refs": [list(m.refs) for m in memories],
            "thread": [m.thread for m in memories],
            "actor": [m.actor for m in memories],
            "created_at": [m.created_at for m in memories],
            "schema_version": [SCHEMA_VERSION] * len(memories),
        }
        arrays = [pa.array(columns[f.name], f.type) for f in schema if f.name != "vector"]
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), pa.float32())
        arrays.append(pa.FixedSizeListArray.from_arrays(flat, self.embedder.dim))
        return pa.Table.from_arrays(arrays, schema=schema)

    def _put(self, memories: list[Memory], vectors: np.ndarray) -> int:
        rows = self._rows(memories, vectors)
        if self._table is None:
            self._table = self._db.create_table(TABLE, schema=self._schema(), exist_ok=True)
            self._check_embedder(self._table.schema)
        # One atomic merge on id: rows already there are skipped, so a retried batch adds nothing twice.
        result = self._table.merge_insert("id").when_not_matched_insert_all().execute(rows)
        self._maintain_index()
        return int(result.num_inserted_rows)

    def has_index(self) -> bool:
        """Whether the ANN index exists."""
        # An index, once built, is never dropped (append-only), so one sighting is enough: no lookup per search.
        if not self._indexed:
            self._indexed = self._vector_index() is not None
        return self._indexed

    def _vector_index(self) -> Any:
        if self._table is None:
            return None
        return next((i for i in self._table.list_indices() if i.columns == ["vector"]), None)

    def build_index(self) -> None:
        """Build (or rebuild) the ANN index over every row now, whatever the table's size."""
        if self._table is None:
            return
        rows = self._table.count_rows()
        settings = self.index
        partitions = max(1, rows // settings.rows_per_partition)
        from lancedb.index import IvfHnswSq, IvfPq

        config: IvfHnswSq | IvfPq
        if settings.index_type == "IVF_PQ":
            config = IvfPq(distance_type="dot", num_partitions=partitions, num_sub_vectors=settings.num_sub_vectors)
        else:
            config = IvfHnswSq(
                distance_type="dot", num_partitions=partitions, m=settings.m, ef_construction=settings.ef_construction
            )
        self._table.create_index("vector", config=config, replace=True)

    def optimize(self) -> None:
        """Fold rows added since the index was built into it, and compact small files (content is unchanged)."""
        if self._table is not None:
            self._table.optimize()

    def _maintain_index(self) -> None:
        settings = self.index
        if settings.min_rows is None:
            return
        index = self._vector_index()
        if index is None:
            if self._table.count_rows() >= settings.min_rows:
                self.build_index()
        elif index.num_unindexed_rows >= settings.optimize_after:
            self.optimize()

    def _search(self, vector: np.ndarray, k: int, where: MemoryFilter) -> list[MemoryHit]:
        if self._table is None:
            return []
        builder = self._table.search(vector).distance_type("dot").select([*_COLUMNS, "_distance"]).limit(k)
        if self.has_index():
            settings = self.index
            builder = builder.nprobes(settings.nprobes)
            if settings.index_type == "IVF_HNSW_SQ":
                builder = builder.ef(settings.ef)
            if settings.refine_factor is not None:
                builder = builder.refine_factor(settings.refine_factor)
        sql = _sql(where)
        if sql is not None:
            # Filter first, then rank: k hits whenever k memories pass the filter, however rare they are.
            builder = builder.where(sql, prefilter=True)
        found = builder.to_arrow().to_pylist()
        # LanceDB's dot distance is 1 - dot product; on unit vectors that is 1 - cosine similarity.
        return [MemoryHit(memory=_memory(row), score=1.0 - float(row["_distance"])) for row in found]

    def _select(self, where: MemoryFilter, limit: int | None) -> list[Memory]:
        if self._table is None:
            return []
        sql = _sql(where)
        if limit is not None and self._table.count_rows(sql) > limit:
            # Many match: sort on the two small columns, then read full rows only for the ones returned.
            keys = self._scan(["id", "created_at"], sql).sort_by([("created_at", "descending"), ("id", "ascending")])
            sql = _in_list("id", keys.column("id").to_pylist()[:limit])
        rows = self._scan(_COLUMNS, sql).sort_by([("created_at", "descending"), ("id", "ascending")])
        return [_memory(row) for row in rows.to_pylist()]

    def _scan(self, columns: list[str], where: str | None) -> pa.Table:
        query = self._table.search().select(columns)
        if where is not None:
            query = query.where(where)
        return query.limit(None).to_arrow()

    def count(self) -> int:
        """How many memories are stored."""
        return 0 if self._table is None else int(self._table.count_rows())


def _sql(where: MemoryFilter) -> str | None:
    """The filter as a LanceDB SQL predicate (values are validated, and quoted anyway)."""
    clauses = []
    if where.ids is not None:
        clauses.append(_in_list("id", where.ids))
    if where.kinds is not None:
        clauses.append(_in_list("kind", where.kinds))
    if where.refs is not None:
        clauses.append(f"array_has_any(refs, [{', '.join(_quote(r) for r in sorted(where.refs))}])")
    if where.thread is not None:
        clauses.append(f"thread = {_quote(where.thread)}")
    return " AND ".join(clauses) or None


def _memory(row: dict[str, Any]) -> Memory:
    """A stored row back as a Memory; validation re-derives the id, so an altered row is refused, not served."""
    created: datetime = row["created_at"]
    return Memory(
        id=row["id"],
        kind=row["kind"],
        text=row["text"],
        refs=tuple(row["refs"]),
        thread=row["thread"],
        actor=row["actor"],
        created_at=created,
    )


def memory_store(home: Path, embedder: Embedder, *, index: IndexSettings | None = None) -> LanceStore:
    """The agent's memory: a LanceStore in `home`/memory.lance (home is ASTROPOLIS_HOME from settings)."""
    return LanceStore(Path(home) / "memory.lance", embedder, index=index)
