"""Shared fixtures. No test may reach the network: a guard refuses any socket to a non-loopback address."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from astropolis.lake import Lake
from astropolis.lake.clock import ManualClock
from astropolis.memory import AuditLog, Ledger

_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _is_loopback(host: object) -> bool:
    if not isinstance(host, str):
        return False
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _check(sock: socket.socket, address: object) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0] if isinstance(address, tuple) else address
        if not _is_loopback(host):
            raise RuntimeError(f"test tried to reach the network: {address!r} (only loopback is allowed)")


def _guarded_connect(self: socket.socket, address: object) -> None:
    _check(self, address)
    return _connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _check(self, address)
    return _connect_ex(self, address)


def _guarded_getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
    if host is not None and not _is_loopback(host):
        raise RuntimeError(f"test tried to resolve {host!r} (no network in tests)")
    return _getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
socket.getaddrinfo = _guarded_getaddrinfo  # type: ignore[assignment]


NIGHT = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    """A run clock at 21:00 UTC on the test night."""
    return ManualClock(NIGHT)


@pytest.fixture
def lake(tmp_path: Path, clock: ManualClock) -> Iterator[Lake]:
    """A fresh lake in a temporary directory."""
    with Lake(tmp_path / "lake", clock=clock) as opened:
        yield opened


@pytest.fixture
def ledger(tmp_path: Path, clock: ManualClock) -> Iterator[Ledger]:
    """A fresh ledger (SQLite file) with a 60 s lease."""
    opened = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", clock=clock, lease_s=60)
    yield opened
    opened.close()


@pytest.fixture
def audit(tmp_path: Path, clock: ManualClock) -> Iterator[AuditLog]:
    """A fresh audit log (SQLite file)."""
    opened = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}", clock=clock)
    yield opened
    opened.close()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ASTROPOLIS_HOME for CLI tests."""
    path = tmp_path / "home"
    monkeypatch.setenv("ASTROPOLIS_HOME", str(path))
    monkeypatch.setenv("ASTROPOLIS_ACTOR", "person:tester")
    return path


@pytest.fixture(scope="session")
def world_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    """A city built once per session: real frames, real resident products and jobs (see tests/agent_world.py)."""
    from agent_world import build_world

    root = tmp_path_factory.mktemp("world")
    return root, build_world(root)


@pytest.fixture
def world(world_template: tuple[Path, dict[str, object]], tmp_path: Path):  # type: ignore[no-untyped-def]
    """A private copy of the session's city, with an in-memory memory store holding two memories."""
    from agent_world import open_world

    template, ids = world_template
    return open_world(template, ids, tmp_path / "world")
