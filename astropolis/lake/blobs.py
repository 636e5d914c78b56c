"""Content-addressed blob store on a local filesystem.

Writes are atomic and never overwrite: bytes go to a private temp file, are fsynced, made read-only and then
hard-linked into place (a link fails rather than replace an existing name), and the directory is fsynced.
Every read re-hashes and raises `CorruptObject` instead of returning bad bytes. There is deliberately no
method that changes, renames or removes a stored object.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import itertools
import os
import secrets
import struct
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from astropolis.lake.errors import CorruptObject, LakeError, ObjectNotFound
from astropolis.lake.ids import PREFIX, id_from_digest, validate_object_id

CHUNK_BYTES = 8 << 20
_TEMP_SUFFIX = ".part"

# Linux ioctls for inode flags (include/uapi/linux/fs.h). The immutable flag stops even root from writing,
# renaming or unlinking a file; only CAP_LINUX_IMMUTABLE can clear it.
_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_FS_IMMUTABLE_FL = 0x00000010

BlobStatus = Literal["ok", "corrupt", "missing"]


@dataclass(frozen=True)
class PutResult:
    """The outcome of storing bytes: their id, their size, and whether this call stored anything new."""

    id: str
    size: int
    created: bool


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs_durable(path: Path, stop: Path) -> None:
    """Create `path` and any missing parents below `stop`, fsyncing each parent that gained an entry."""
    missing: list[Path] = []
    probe = path
    while not probe.exists() and probe != stop:
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o755)
        _fsync_dir(directory.parent)


def set_immutable_flag(path: Path) -> None:
    """Set the Linux immutable inode flag on `path` (raises OSError where the filesystem or user cannot)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        flags = struct.unpack("i", fcntl.ioctl(fd, _FS_IOC_GETFLAGS, struct.pack("i", 0)))[0]
        fcntl.ioctl(fd, _FS_IOC_SETFLAGS, struct.pack("i", flags | _FS_IMMUTABLE_FL))
    finally:
        os.close(fd)


def has_immutable_flag(path: Path) -> bool:
    """Whether `path` carries the Linux immutable inode flag."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        flags = struct.unpack("i", fcntl.ioctl(fd, _FS_IOC_GETFLAGS, struct.pack("i", 0)))[0]
    finally:
        os.close(fd)
    return bool(flags & _FS_IMMUTABLE_FL)


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StagedBlob:
    """Bytes hashed and fsynced into a private temp file: parse them at `path`, then `commit()` or discard."""

    def __init__(self, store: BlobStore, temp_path: Path, object_id: str, size: int) -> None:
        self._store = store
        self.path = temp_path
        self.id = object_id
        self.size = size
        self._done = False

    def commit(self) -> PutResult:
        """Publish the staged bytes under their id (idempotent: an existing object is left untouched)."""
        if self._done:
            raise LakeError(f"staged blob {self.id} was already committed or discarded")
        self._done = True
        return self._store._publish(self.path, self.id, self.size)

    def discard(self) -> None:
        """Drop the staged temp file; nothing becomes visible."""
        if not self._done:
            self._done = True
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)

    def __enter__(self) -> StagedBlob:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


class BlobStore:
    """Immutable blobs under `root/objects/sha256/ab/cd/<hex>`; temp files under `root/tmp`."""

    def __init__(self, root: Path, *, harden: bool = False) -> None:
        self.root = Path(root).absolute()
        self.objects_dir = self.root / "objects" / "sha256"
        self.temp_dir = self.root / "tmp"
        self.harden = harden
        for directory in (self.objects_dir, self.temp_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._sweep_dead_temp_files()
        if harden:
            self._probe_immutable_flag()

    # ----------------------------------------------------------------- layout
    def path_for(self, object_id: str) -> Path:
        """Where the object with this id lives (whether or not it exists)."""
        hexdigest = validate_object_id(object_id)[len(PREFIX) :]
        return self.objects_dir / hexdigest[:2] / hexdigest[2:4] / hexdigest

    def exists(self, object_id: str) -> bool:
        """Whether an object with this id is stored (no hash check)."""
        return self.path_for(object_id).is_file()

    def size(self, object_id: str) -> int:
        """Stored size in bytes."""
        try:
            return self.path_for(object_id).stat().st_size
        except FileNotFoundError:
            raise ObjectNotFound(f"{object_id}: no such object in the lake") from None

    def iter_ids(self) -> Iterator[str]:
        """Every stored object id, in sorted order."""
        for first in sorted(p for p in self.objects_dir.iterdir() if p.is_dir()):
            for second in sorted(p for p in first.iterdir() if p.is_dir()):
                for blob in sorted(second.iterdir()):
                    yield id_from_digest(blob.name)

    # ----------------------------------------------------------------- writes
    def _new_temp(self) -> tuple[Path, int]:
        name = f"{os.getpid()}.{secrets.token_hex(8)}{_TEMP_SUFFIX}"
        path = self.temp_dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        return path, fd

    def stage_bytes(self, data: bytes | bytearray | memoryview) -> StagedBlob:
        """Write `data` to a fsynced temp file and hash it; nothing is visible until `commit()`."""
        return self.stage_stream(io.BytesIO(data))

    def stage_stream(self, source: BinaryIO) -> StagedBlob:
        """Copy a binary stream into a fsynced temp file, hashing in the same pass.

        Hashing a chunk overlaps with writing it (a worker thread writes; hashlib and os.write both release the
        GIL), and reading the next chunk overlaps with that write, so a large frame costs about the slower of
        hash and disk rather than their sum.
        """
        path, fd = self._new_temp()
        digest = hashlib.sha256()
        buffers = (memoryview(bytearray(CHUNK_BYTES)), memoryview(bytearray(CHUNK_BYTES)))
        size = 0
        writing: Future[None] | None = None
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="blob-write") as writer:
                for turn in itertools.count():
                    buffer = buffers[turn % 2]  # the other buffer may still be being written
                    count = source.readinto(buffer)  # type: ignore[attr-defined]
                    if not count:
                        break
                    chunk = buffer[:count]
                    if writing is not None:
                        writing.result()
                    writing = writer.submit(_write_all, fd, chunk)
                    digest.update(chunk)
                    size += count
                if writing is not None:
                    writing.result()
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.remove(path)
            raise
        os.close(fd)
        return StagedBlob(self, path, id_from_digest(digest.hexdigest()), size)

    def stage_file(self, source: Path) -> StagedBlob:
        """Stage the contents of a file on disk."""
        with open(source, "rb", buffering=0) as handle:
            return self.stage_stream(handle)

    def put_bytes(self, data: bytes | bytearray | memoryview) -> PutResult:
        """Store `data`; storing the same bytes again returns the same id and writes nothing."""
        object_id = id_from_digest(hashlib.sha256(data).hexdigest())
        if self.exists(object_id):
            return PutResult(object_id, len(data), created=False)
        return self.stage_bytes(data).commit()

    def put_file(self, source: Path) -> PutResult:
        """Store the contents of a file (single read pass: hash and copy together)."""
        with self.stage_file(source) as staged:
            return staged.commit()

    def _publish(self, temp_path: Path, object_id: str, size: int) -> PutResult:
        final = self.path_for(object_id)
        try:
            if final.exists():
                return PutResult(object_id, size, created=False)
            _make_dirs_durable(final.parent, self.objects_dir)
            os.chmod(temp_path, 0o444)
            try:
                os.link(temp_path, final)  # never replaces an existing name, unlike rename
                created = True
            except FileExistsError:
                created = False
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(temp_path)
        _fsync_dir(final.parent)
        if created and self.harden:
            set_immutable_flag(final)
        return PutResult(object_id, size, created=created)

    # ------------------------------------------------------------------ reads
    def read_bytes(self, object_id: str) -> bytes:
        """Return the object's bytes after checking they still hash to its id."""
        path = self.path_for(object_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(f"{object_id}: no such object in the lake") from None
        actual = id_from_digest(hashlib.sha256(data).hexdigest())
        if actual != object_id:
            raise CorruptObject(object_id, actual)
        return data

    def check(self, object_id: str) -> BlobStatus:
        """Re-hash one stored object: 'ok', 'corrupt' or 'missing'."""
        try:
            with open(self.path_for(object_id), "rb") as handle:
                actual = id_from_digest(hashlib.file_digest(handle, "sha256").hexdigest())
        except FileNotFoundError:
            return "missing"
        return "ok" if actual == object_id else "corrupt"

    # ------------------------------------------------------------ temp files
    def stray_temp_files(self) -> list[Path]:
        """Temp files left by writers that are still running (dead writers' leftovers are swept on open)."""
        return sorted(self.temp_dir.glob(f"*{_TEMP_SUFFIX}"))

    def _sweep_dead_temp_files(self) -> None:
        # A temp file is never an object: removing a dead writer's leftovers deletes nothing from the lake.
        for path in self.temp_dir.glob(f"*{_TEMP_SUFFIX}"):
            pid_text = path.name.split(".", 1)[0]
            if pid_text.isdigit() and not _pid_alive(int(pid_text)):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)

    def _probe_immutable_flag(self) -> None:
        path, fd = self._new_temp()
        os.close(fd)
        try:
            set_immutable_flag(path)
        except OSError as error:
            os.remove(path)
            hint = (
                "run as root with CAP_LINUX_IMMUTABLE on ext4/xfs/btrfs"
                if error.errno in (errno.EPERM, errno.ENOTTY, errno.EOPNOTSUPP)
                else "see the error"
            )
            raise LakeError(
                f"harden_blobs is on but {self.root} cannot take the immutable flag ({error.strerror}); {hint}"
            ) from error
        # The probe file is ours and not an object; lift the flag again so it can be removed.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            flags = struct.unpack("i", fcntl.ioctl(fd, _FS_IOC_GETFLAGS, struct.pack("i", 0)))[0]
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, struct.pack("i", flags & ~_FS_IMMUTABLE_FL))
        finally:
            os.close(fd)
        os.remove(path)
