"""Configuration precedence: config.toml < environment < CLI flags; bad values name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from astropolis.settings import SettingsError, load_settings


def test_precedence_file_env_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASTROPOLIS_HOME", str(tmp_path))
    monkeypatch.delenv("ASTROPOLIS_LEASE_S", raising=False)
    (tmp_path / "config.toml").write_text('lease_s = 120\nactor = "person:file"\n')
    settings = load_settings()
    assert settings.lease_s == 120 and settings.actor == "person:file" and settings.home == tmp_path
    monkeypatch.setenv("ASTROPOLIS_LEASE_S", "300")
    assert load_settings().lease_s == 300
    assert load_settings({"lease_s": 45}).lease_s == 45
    assert load_settings().url("ledger") == f"sqlite:///{tmp_path / 'ledger.db'}"
    assert load_settings().url("catalog") == f"sqlite:///{tmp_path / 'lake' / 'catalog.db'}"
    monkeypatch.setenv("ASTROPOLIS_LEDGER_URL", "postgresql://astro@127.0.0.1/ledger")
    assert load_settings().url("ledger") == "postgresql://astro@127.0.0.1/ledger"


def test_bad_values_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASTROPOLIS_HOME", str(tmp_path))
    monkeypatch.setenv("ASTROPOLIS_LEASE_S", "soon")
    with pytest.raises(SettingsError, match="lease_s"):
        load_settings()
    monkeypatch.delenv("ASTROPOLIS_LEASE_S")
    (tmp_path / "config.toml").write_text("lease_s = [")
    with pytest.raises(SettingsError, match=r"config\.toml"):
        load_settings()
    (tmp_path / "config.toml").write_text("colour = 'blue'\n")
    with pytest.raises(SettingsError, match="colour"):
        load_settings()
