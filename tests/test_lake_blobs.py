"""The blob store: content addressing, atomic idempotent writes, read-only files, verified reads."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from astropolis.lake.blobs import BlobStore, has_immutable_flag
from astropolis.lake.errors import CorruptObject, InvalidObjectId, ObjectNotFound
from astropolis.lake.ids import canonical_json, id_prefix, object_id, validate_object_id


def test_put_returns_sha256_id_and_reads_back(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    put = store.put_bytes(b"first light")
    assert put.id == "sha256:" + hashlib.sha256(b"first light").hexdigest()
    assert put.created and put.size == 11
    assert store.read_bytes(put.id) == b"first light"


def test_same_bytes_twice_store_nothing_new(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    first = store.put_bytes(b"x" * 1000)
    path = store.path_for(first.id)
    before = path.stat()
    second = store.put_bytes(b"x" * 1000)
    source = tmp_path / "same.bin"
    source.write_bytes(b"x" * 1000)
    third = store.put_file(source)
    assert second.id == third.id == first.id
    assert not second.created and not third.created
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert list(store.iter_ids()) == [first.id]
    assert list(store.temp_dir.iterdir()) == []


def test_stored_files_are_read_only(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    put = store.put_bytes(b"immutable")
    mode = store.path_for(put.id).stat().st_mode
    assert not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


def test_put_file_streams_large_input(tmp_path: Path) -> None:
    data = os.urandom(3 * (8 << 20) + 17)  # spans several copy chunks
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    store = BlobStore(tmp_path / "lake")
    put = store.put_file(source)
    assert put.id == object_id(data) and put.size == len(data)
    assert store.read_bytes(put.id) == data


def test_corrupt_read_raises_instead_of_serving(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    put = store.put_bytes(b"good bytes")
    path = store.path_for(put.id)
    os.chmod(path, 0o644)
    path.write_bytes(b"bad bytes!")
    with pytest.raises(CorruptObject) as caught:
        store.read_bytes(put.id)
    assert caught.value.object_id == put.id
    assert store.check(put.id) == "corrupt"


def test_missing_and_malformed_ids(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    absent = object_id(b"never stored")
    with pytest.raises(ObjectNotFound, match="no such object"):
        store.read_bytes(absent)
    assert store.check(absent) == "missing"
    for bad in ("sha256:XYZ", "md5:abcd", "", "sha256:" + "0" * 63):
        with pytest.raises(InvalidObjectId):
            store.read_bytes(bad)


def test_id_prefix_normalises_and_rejects() -> None:
    assert id_prefix("ABCD12") == "sha256:abcd12"
    assert id_prefix("sha256:abcd") == "sha256:abcd"
    for bad in ("abc", "sha256:", "zzzz", "sha1:abcd"):
        with pytest.raises(InvalidObjectId):
            id_prefix(bad)
    assert validate_object_id("sha256:" + "a" * 64)


def test_canonical_json_is_order_independent_and_strict() -> None:
    assert canonical_json({"b": 1, "a": [1, 2]}) == canonical_json({"a": [1, 2], "b": 1}) == b'{"a":[1,2],"b":1}'
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_dead_writers_temp_files_are_swept_live_ones_kept(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    dead = store.temp_dir / "999999999.deadbeef.part"  # no such pid
    live = store.temp_dir / f"{os.getpid()}.cafe.part"
    dead.write_bytes(b"partial")
    live.write_bytes(b"in flight")
    BlobStore(tmp_path)
    assert not dead.exists() and live.exists()
    assert store.stray_temp_files() == [live]


def test_staged_blob_is_invisible_until_commit(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with store.stage_bytes(b"staged") as staged:
        assert not store.exists(staged.id)
        assert staged.path.read_bytes() == b"staged"
    assert not store.exists(staged.id)
    assert list(store.temp_dir.iterdir()) == []


def test_harden_sets_immutable_flag_even_root_cannot_write(tmp_path: Path) -> None:
    try:
        store = BlobStore(tmp_path, harden=True)
    except Exception as error:  # filesystem or user without CAP_LINUX_IMMUTABLE
        pytest.skip(f"immutable flag unsupported here: {error}")
    put = store.put_bytes(b"sealed")
    path = store.path_for(put.id)
    try:
        assert has_immutable_flag(path)
        with pytest.raises(PermissionError):
            open(path, "r+b")
        with pytest.raises(PermissionError):
            os.remove(path)
        with pytest.raises(PermissionError):
            os.rename(path, path.with_name("moved"))
        assert store.read_bytes(put.id) == b"sealed"
    finally:
        _clear_immutable(path)


def _clear_immutable(path: Path) -> None:
    import fcntl
    import struct

    fd = os.open(path, os.O_RDONLY)
    try:
        flags = struct.unpack("i", fcntl.ioctl(fd, 0x80086601, struct.pack("i", 0)))[0]
        fcntl.ioctl(fd, 0x40086602, struct.pack("i", flags & ~0x10))
    finally:
        os.close(fd)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blobs=st.lists(st.binary(max_size=2048), max_size=12))
def test_property_put_read_roundtrip_and_dedup(tmp_path_factory: pytest.TempPathFactory, blobs: list[bytes]) -> None:
    store = BlobStore(tmp_path_factory.mktemp("blobs"))
    ids = [store.put_bytes(b).id for b in blobs]
    for data, oid in zip(blobs, ids, strict=True):
        assert oid == object_id(data)
        assert store.read_bytes(oid) == data
    assert sorted(set(ids)) == list(store.iter_ids())
