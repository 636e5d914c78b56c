"""Typed configuration, built once at an entry point and passed down: file < environment < CLI flags.

The file is `$ASTROPOLIS_HOME/config.toml`; environment variables are `ASTROPOLIS_<FIELD>`.
"""

from __future__ import annotations

import getpass
import os
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

_FILE_VALUES: ContextVar[Mapping[str, Any]] = ContextVar("astropolis_file_values", default=MappingProxyType({}))


class SettingsError(ValueError):
    """The configuration file or an environment variable holds a bad value."""


def default_home() -> Path:
    """`$XDG_DATA_HOME/astropolis`, or `~/.local/share/astropolis`."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "astropolis"


class _FileSource(PydanticBaseSettingsSource):
    """Values read from config.toml, the lowest-priority source."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return _FILE_VALUES.get().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FILE_VALUES.get())


class Settings(BaseSettings):
    """Where Astropolis keeps its data and how its stores behave."""

    model_config = SettingsConfigDict(env_prefix="ASTROPOLIS_", extra="forbid", frozen=True)

    home: Path = Field(default_factory=default_home, description="Data directory; everything written goes here.")
    catalog_url: str | None = Field(default=None, description="Lake catalog database URL (default: SQLite in home).")
    ledger_url: str | None = Field(default=None, description="Job ledger database URL (default: SQLite in home).")
    audit_url: str | None = Field(default=None, description="Audit log database URL (default: SQLite in home).")
    harden_blobs: bool = Field(
        default=False, description="Also set the Linux immutable flag on stored blobs (needs CAP_LINUX_IMMUTABLE)."
    )
    lease_s: float = Field(default=900.0, gt=0, description="Lease of an IN_PROGRESS job, seconds.")
    actor: str = Field(
        default_factory=lambda: f"person:{getpass.getuser()}",
        pattern=r"^[a-z]+:[\x21-\x7e]{1,100}$",
        description="Who the audit log says ran a CLI command.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _FileSource(settings_cls))

    @property
    def lake_dir(self) -> Path:
        """Blob store and default catalog location."""
        return self.home / "lake"

    def url(self, store: str) -> str:
        """The database URL of 'catalog', 'ledger' or 'audit'."""
        explicit = {"catalog": self.catalog_url, "ledger": self.ledger_url, "audit": self.audit_url}[store]
        if explicit:
            return explicit
        path = self.lake_dir / "catalog.db" if store == "catalog" else self.home / f"{store}.db"
        return f"sqlite:///{path.absolute()}"


def load_settings(overrides: Mapping[str, Any] | None = None) -> Settings:
    """Build settings from config.toml, then the environment, then `overrides` (CLI flags)."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    home = Path(overrides.get("home") or os.environ.get("ASTROPOLIS_HOME") or default_home())
    config_file = home / "config.toml"
    file_values: dict[str, Any] = {}
    if config_file.is_file():
        try:
            file_values = tomllib.loads(config_file.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise SettingsError(f"{config_file}: not valid TOML ({error})") from None
    token = _FILE_VALUES.set(file_values)
    try:
        return Settings(**overrides)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SettingsError(f"setting {where!r} (config.toml or ASTROPOLIS_{where.upper()}): {first['msg']}") from None
    finally:
        _FILE_VALUES.reset(token)
