"""The handles a CLI command works with, opened lazily from one Settings, and the audit of what it writes."""

from __future__ import annotations

import hashlib
import inspect
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from astropolis.lake import Lake
from astropolis.lake.ids import canonical_json
from astropolis.memory import AuditLog, Ledger
from astropolis.settings import Settings, load_settings


def command_schema_hash(command: Callable[..., Any]) -> str:
    """sha256 of a command's parameters (names, types, defaults): changes whenever its interface does."""
    parameters = [
        {"name": p.name, "annotation": str(p.annotation), "default": repr(p.default)}
        for p in inspect.signature(command).parameters.values()
    ]
    return "sha256:" + hashlib.sha256(canonical_json(parameters)).hexdigest()


@dataclass
class AuditedCall:
    """What a command reports back for its audit entry."""

    result: Any = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Runtime:
    """Lazily opened lake, ledger and audit log for one CLI invocation."""

    settings: Settings

    @classmethod
    def load(cls) -> Runtime:
        """Build the runtime from config.toml and the environment."""
        return cls(load_settings())

    @cached_property
    def lake(self) -> Lake:
        """The lake under $ASTROPOLIS_HOME/lake."""
        return Lake(self.settings.lake_dir, catalog_url=self.settings.url("catalog"), harden=self.settings.harden_blobs)

    @cached_property
    def ledger(self) -> Ledger:
        """The job ledger."""
        return Ledger(self.settings.url("ledger"), lease_s=self.settings.lease_s)

    @cached_property
    def audit(self) -> AuditLog:
        """The audit log."""
        return AuditLog(self.settings.url("audit"))

    @contextmanager
    def audited(self, tool: str, command: Callable[..., Any], arguments: dict[str, Any]) -> Iterator[AuditedCall]:
        """Append one audit entry for a writing command, whether it succeeds or fails."""
        call = AuditedCall()
        started = time.perf_counter()
        try:
            yield call
        except Exception as error:
            call.error = call.error or str(error)
            raise
        finally:
            self.audit.append(
                actor=self.settings.actor,
                tool=tool,
                schema_hash=command_schema_hash(command),
                arguments=arguments,
                result=call.result,
                error=call.error,
                policy="allowed",
                tier="admin",
                duration_ms=(time.perf_counter() - started) * 1000.0,
            )
