"""Semantic memory: one suite that every store (in-memory, LanceDB) must pass, plus the MiniLM embedder."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from pydantic import ValidationError

from astropolis.memory.embedding import MiniLMEmbedder, reference_embed
from astropolis.memory.errors import EmbedderMismatch, InvalidMemory, MemoryNotFound
from astropolis.memory.lance import IndexSettings, LanceStore, memory_store
from astropolis.memory.semantic import MAX_TEXT_CHARS, InMemoryStore, Memory, MemoryStore, memory_id, parse_memory

T0 = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)
FRAME = "sha256:" + "ab" * 32


class HashEmbedder:
    """Random unit vectors seeded by the text: enough for store mechanics, no model needed."""

    dim = 32
    model_id = "test/hash-32"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One seeded random unit vector per text."""
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            vector = np.random.default_rng(seed).normal(size=self.dim)
            rows.append(vector / np.linalg.norm(vector))
        return np.array(rows, dtype=np.float32).reshape(len(texts), self.dim)


def unit_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """`n` random unit vectors."""
    vectors = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def memory(text: str, *, kind: str = "episode", minutes: int = 0, refs: Sequence[str] = (), **extra: object) -> Memory:
    """A memory written `minutes` after the test night's start."""
    return Memory(
        kind=kind,  # type: ignore[arg-type]
        text=text,
        refs=tuple(refs),
        actor=str(extra.pop("actor", "night:2026-11-25")),
        created_at=T0 + timedelta(minutes=minutes),
        **extra,  # type: ignore[arg-type]
    )


StoreFactory = Callable[..., MemoryStore]


@pytest.fixture(params=["memory", "lance"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Builds a store of the parametrised kind (same folder each call, for the Lance store)."""

    def build(embedder: object | None = None) -> MemoryStore:
        chosen = embedder or HashEmbedder()
        if request.param == "memory":
            return InMemoryStore(chosen)  # type: ignore[arg-type]
        return LanceStore(tmp_path / "memory.lance", chosen)  # type: ignore[arg-type]

    return build


@pytest.fixture
def store(make_store: StoreFactory) -> MemoryStore:
    """An empty store with the hash embedder."""
    return make_store()


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    """The real embedder, loaded once for the session."""
    embedder = MiniLMEmbedder()
    embedder.embed(["warm-up"])
    return embedder


# The memory record.


def test_memory_id_is_the_content_address() -> None:
    first = memory("Dome closed for cloud", refs=["job:7", FRAME])
    assert first.id == memory_id("episode", "Dome closed for cloud", sorted(["job:7", FRAME]), None, T0)
    assert first.refs == ("job:7", FRAME)
    assert memory("Dome closed for cloud", refs=[FRAME, "job:7", "job:7"]).id == first.id
    assert memory("Dome closed for cloud", refs=["job:7", FRAME], actor="person:ana").id == first.id
    assert memory("Dome closed for rain", refs=["job:7", FRAME]).id != first.id
    assert memory("Dome closed for cloud", refs=["job:7", FRAME], minutes=1).id != first.id
    assert Memory.model_validate(first.model_dump()) == first
    with pytest.raises(InvalidMemory, match="colour: Extra inputs"):
        parse_memory({**first.model_dump(), "colour": "red"})
    with pytest.raises(ValidationError, match="does not match the content"):
        Memory.model_validate({**first.model_dump(), "text": "Dome open"})


def test_created_at_is_stored_in_utc() -> None:
    local = T0.astimezone(ZoneInfo("America/Santiago"))
    stored = Memory(kind="note", text="x", actor="person:ana", created_at=local)
    assert stored.created_at.tzinfo is UTC and stored.created_at == T0
    assert stored.id == memory(text="x", kind="note").id


# The store contract, run against every store.


def test_same_memory_twice_is_stored_once(store: MemoryStore) -> None:
    first = memory("M13 frames from Tenerife were sharp", refs=["job:3"])
    assert store.put(first) is True
    assert store.put(first) is False
    assert store.put_many([first, memory("M13 frames from Tenerife were sharp", refs=["job:3", "job:3"])]) == 0
    assert store.put_many([memory("other", minutes=1), memory("other", minutes=1)]) == 1
    assert store.count() == len(store) == 2
    assert store.get(first.id) == first


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"text": ""}, "text"),
        ({"text": "   \n"}, "blank"),
        ({"text": "x" * (MAX_TEXT_CHARS + 1)}, "at most 2000"),
        ({"kind": "rumour"}, "kind"),
        ({"refs": ["job:seven"]}, "ref"),
        ({"refs": ["sha256:abc"]}, "ref"),
        ({"actor": ""}, "actor"),
        ({"created_at": datetime(2026, 11, 25, 21, 0)}, "timezone"),  # noqa: DTZ001 - the naive time under test
    ],
)
def test_bad_memories_are_refused_and_nothing_is_stored(
    store: MemoryStore, fields: dict[str, object], problem: str
) -> None:
    good = {"kind": "note", "text": "Focus drifts on cold nights", "actor": "person:ana", "created_at": T0}
    with pytest.raises(InvalidMemory, match=problem):
        store.remember(**{**good, **fields})  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Memory.model_validate({**good, **fields})
    assert store.count() == 0
    assert store.recent() == []


def test_a_bad_batch_stores_nothing(store: MemoryStore) -> None:
    batch = [memory("one"), memory("two", minutes=1)]
    with pytest.raises(InvalidMemory, match="shape"):
        store.put_many(batch, unit_vectors(1, 32))
    with pytest.raises(InvalidMemory, match="norm 1"):
        store.put_many(batch, unit_vectors(2, 32) * 2)
    with pytest.raises(InvalidMemory, match="NaN"):
        store.put_many(batch, np.full((2, 32), np.nan, dtype=np.float32))
    with pytest.raises(InvalidMemory, match="Memory objects"):
        store.put_many([batch[0], {"kind": "note"}])  # type: ignore[list-item]
    assert store.count() == 0


def test_search_is_best_first_and_matches_brute_force(store: MemoryStore) -> None:
    vectors = unit_vectors(300, 32, seed=1)
    memories = [memory(f"item {i}", minutes=i) for i in range(300)]
    assert store.put_many(memories, vectors) == 300
    for probe in (0, 17, 299):
        hits = store.search(vectors[probe], k=5)
        assert hits[0].memory == memories[probe]
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)
        expected = np.argsort(-(vectors @ vectors[probe]))[:5]
        assert [h.memory.id for h in hits] == [memories[i].id for i in expected]
        assert [h.score for h in hits] == pytest.approx(list((vectors @ vectors[probe])[expected]), abs=1e-5)
    assert len(store.search(vectors[0], k=1000)) == 300


def test_search_filters_by_kinds_and_refs(store: MemoryStore) -> None:
    store.put_many(
        [
            memory("seeing was poor", kind="episode", refs=["job:1"]),
            memory("Ana says the focuser sticks", kind="note", refs=["job:2", FRAME], minutes=1),
            memory("the transient is a flare star", kind="hypothesis", refs=["hypothesis:4"], minutes=2),
            memory("night summary", kind="digest", minutes=3),
        ]
    )
    query = "focuser"
    assert {h.memory.kind for h in store.search(query, k=10)} == {"episode", "note", "hypothesis", "digest"}
    assert {h.memory.kind for h in store.search(query, k=10, kinds=["note", "digest"])} == {"note", "digest"}
    assert [h.memory.text for h in store.search(query, kinds="hypothesis")] == ["the transient is a flare star"]
    assert {h.memory.text for h in store.search(query, refs=["job:1", FRAME])} == {
        "seeing was poor",
        "Ana says the focuser sticks",
    }
    assert store.search(query, refs=["job:2"], kinds=["episode"]) == []
    assert store.search(query, refs=["job:99"]) == []


def test_recent_about_and_get(store: MemoryStore) -> None:
    for i in range(6):
        store.put(memory(f"episode {i}", minutes=i, refs=[f"job:{i % 2}"], thread="night-1" if i < 3 else "chat-9"))
    assert [m.text for m in store.recent(3)] == ["episode 5", "episode 4", "episode 3"]
    assert [m.text for m in store.recent(thread="night-1")] == ["episode 2", "episode 1", "episode 0"]
    assert [m.text for m in store.about("job:1")] == ["episode 5", "episode 3", "episode 1"]
    assert [m.text for m in store.about("job:1", limit=1)] == ["episode 5"]
    assert store.recent(kinds=["note"]) == []
    newest = store.recent(1)[0]
    assert store.get(newest.id) == newest
    assert store.select(ids=[newest.id, "sha256:" + "0" * 64]) == [newest]
    with pytest.raises(MemoryNotFound, match="no memory"):
        store.get("sha256:" + "0" * 64)


def test_memories_come_back_exactly_as_stored(store: MemoryStore) -> None:
    original = memory("O'Brien's note: check the 'dark' frames", kind="note", refs=[FRAME, "job:12"], thread="a'b")
    store.put(original)
    assert store.recent() == [original]
    assert store.recent(thread="a'b") == [original]
    assert store.search("dark frames")[0].memory == original


def test_bad_queries_are_refused(store: MemoryStore) -> None:
    store.put(memory("something"))
    for query, problem in [("  ", "blank"), (np.zeros(32), "zeros"), (np.ones(8), "32 finite")]:
        with pytest.raises(InvalidMemory, match=problem):
            store.search(query)
    with pytest.raises(InvalidMemory, match="k must"):
        store.search("something", k=0)
    with pytest.raises(InvalidMemory, match="kinds"):
        store.search("something", kinds=["rumour"])
    with pytest.raises(InvalidMemory, match="refs"):
        store.search("something", refs=["frame 12"])
    with pytest.raises(InvalidMemory, match="limit"):
        store.recent(0)


def test_an_empty_store_finds_nothing(store: MemoryStore) -> None:
    assert store.search("anything") == []
    assert store.recent() == []
    assert store.count() == 0


def test_memory_is_append_only(store: MemoryStore) -> None:
    assert not [name for name in dir(store) if name.startswith(("update", "delete", "remove", "edit", "clear"))]


# Semantics, with the real model.


NIGHT_NOTES = [
    ("Cloud rolled in over Cerro Pachón at 02:10 UTC; the dome closed and 14 frames were flagged.", "episode"),
    ("Job 41 completed: 20 frames of M31 in the r band from Siding Spring, median seeing 1.4 arcsec.", "episode"),
    ("Ana: the focuser on the Tenerife scope sticks below 5 °C, refocus every hour.", "note"),
    ("The brightening in NGC 4656 is a dwarf nova outburst; a second epoch in g and r would confirm it.", "hypothesis"),
    ("Quiet night: all three sites observed, 212 frames, no transients above S/N 10.", "digest"),
]


def test_text_search_finds_by_meaning(make_store: StoreFactory, minilm: MiniLMEmbedder) -> None:
    store = make_store(minilm)
    store.put_many([memory(text, kind=kind, minutes=i) for i, (text, kind) in enumerate(NIGHT_NOTES)])
    assert store.recall("clouds over Chile")[0].memory.text.startswith("Cloud rolled in over Cerro Pachón")
    assert store.recall("why is the focus bad in the cold?")[0].memory.kind == "note"
    assert store.recall("what was that supernova-like event in the galaxy?")[0].memory.kind == "hypothesis"
    hits = store.recall("clouds over Chile", k=5)
    assert hits[0].score > hits[1].score + 0.1
    assert store.recall("clouds over Chile", kinds=["digest"])[0].memory.kind == "digest"


# LanceDB specifics.


def test_lance_store_persists_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "memory.lance"
    first = LanceStore(path, HashEmbedder())
    kept = [memory(f"night {i}", minutes=i, refs=["job:5"]) for i in range(3)]
    first.put_many(kept)
    again = LanceStore(path, HashEmbedder())
    assert again.count() == 3
    assert again.recent() == kept[::-1]
    assert again.put(kept[0]) is False
    assert again.search(HashEmbedder().embed(["night 1"])[0], k=1)[0].memory == kept[1]


def test_lance_store_refuses_another_embedder(tmp_path: Path) -> None:
    class Other(HashEmbedder):
        model_id = "test/other"

    LanceStore(tmp_path / "m.lance", HashEmbedder()).put(memory("x"))
    with pytest.raises(EmbedderMismatch, match="test/hash-32"):
        LanceStore(tmp_path / "m.lance", Other())


@pytest.mark.parametrize("index_type", ["IVF_HNSW_SQ", "IVF_PQ"])
def test_lance_builds_an_index_when_large_and_still_finds_everything(tmp_path: Path, index_type: str) -> None:
    settings = IndexSettings(
        index_type=index_type,  # type: ignore[arg-type]
        min_rows=600,
        rows_per_partition=300,
        num_sub_vectors=8,
        nprobes=2,
        optimize_after=100,
    )
    store = LanceStore(tmp_path / "m.lance", HashEmbedder(), index=settings)
    vectors = unit_vectors(700, 32, seed=2)
    kinds = ["episode", "note"]
    memories = [memory(f"item {i}", kind=kinds[i % 2], minutes=i, refs=[f"job:{i % 7}"]) for i in range(700)]
    store.put_many(memories[:500], vectors[:500])
    assert not store.has_index()
    store.put_many(memories[500:650], vectors[500:650])
    assert store.has_index()
    store.put_many(memories[650:], vectors[650:])  # after the index: scanned flat until optimized
    for probe in (3, 640, 699):
        hits = store.search(vectors[probe], k=3)
        assert hits[0].memory == memories[probe]
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)
        filtered = store.search(vectors[probe], k=5, kinds=["note"], refs=["job:1", "job:2"])
        assert len(filtered) == 5
        assert all(h.memory.kind == "note" and {"job:1", "job:2"} & set(h.memory.refs) for h in filtered)
    assert store._vector_index().num_unindexed_rows == 50
    store.optimize()
    assert store._vector_index().num_unindexed_rows == 0
    assert store.search(vectors[699], k=1)[0].memory == memories[699]
    assert store.count() == 700


def test_memory_store_lives_in_home(tmp_path: Path) -> None:
    store = memory_store(tmp_path / "home", HashEmbedder())
    store.put(memory("x"))
    assert (tmp_path / "home" / "memory.lance").is_dir()
    assert memory_store(tmp_path / "home", HashEmbedder()).count() == 1


# The embedder.


def test_minilm_vectors_are_unit_float32_and_deterministic(minilm: MiniLMEmbedder) -> None:
    import torch

    threads = torch.get_num_threads()
    texts = [text for text, _ in NIGHT_NOTES] + ["a", "x " * 600]
    vectors = minilm.embed(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (len(texts), 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert minilm.embed(texts).tobytes() == vectors.tobytes()
    # A text's vector does not depend on what else is in the call, or on the thread count.
    assert np.stack([minilm.embed([t])[0] for t in texts]).tobytes() == vectors.tobytes()
    assert MiniLMEmbedder(threads=2, batch_size=64).embed(texts[::-1]).tobytes() == vectors[::-1].tobytes()
    assert minilm.embed([]).shape == (0, 384)
    assert torch.get_num_threads() == threads  # the pinned inference thread count is put back
    with pytest.raises(TypeError, match="not one string"):
        minilm.embed("one string")  # type: ignore[arg-type]


def test_minilm_loads_once(minilm: MiniLMEmbedder) -> None:
    from astropolis.memory import embedding

    before = dict(embedding._LOADED)
    MiniLMEmbedder().embed(["again"])
    assert embedding._LOADED == before and len(before) == 1


@pytest.mark.slow
def test_minilm_matches_sentence_transformers(minilm: MiniLMEmbedder) -> None:
    texts = [text for text, _ in NIGHT_NOTES] + ["a", "x " * 600, "M13, NGC 6205; α=250.42°"]
    assert np.abs(minilm.embed(texts) - reference_embed(texts)).max() < 1e-5
