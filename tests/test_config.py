from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from llmos.config import DEFAULT_PORT, Settings, load_config


def test_defaults_live_under_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLMOS_HOME", str(tmp_path / "h"))
    monkeypatch.delenv("LLMOS_DATABASE_URL", raising=False)
    config = load_config()
    assert config.paths.home == tmp_path / "h"
    assert config.paths.blobs == tmp_path / "h" / "blobs"
    assert config.database_url == f"sqlite:///{tmp_path / 'h' / 'llmos.db'}"
    assert (config.host, config.port) == ("127.0.0.1", DEFAULT_PORT)


def test_environment_and_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLMOS_HOME", str(tmp_path))
    monkeypatch.setenv("LLMOS_DATABASE_URL", "postgresql+psycopg://u:p@127.0.0.1/db")
    monkeypatch.setenv("LLMOS_N_SLOTS", "4")
    monkeypatch.setenv("LLMOS_SCHEDULER_POLICY", "fair")
    config = load_config(port=9999, host=None)
    assert config.database_url.startswith("postgresql+psycopg://")
    assert config.engine.n_slots == 4
    assert config.scheduler.policy == "fair"
    assert config.port == 9999
    assert config.host == "127.0.0.1"


def test_config_is_frozen(llmos_home: Path) -> None:
    config = load_config()
    with pytest.raises(AttributeError):
        config.port = 1  # type: ignore[misc]


def test_bad_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOS_PORT", "70000")
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.setenv("LLMOS_PORT", "8470")
    monkeypatch.setenv("LLMOS_SCHEDULER_POLICY", "lottery")
    with pytest.raises(ValidationError):
        Settings()


def test_toml_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    toml = tmp_path / "llmos.toml"
    toml.write_text('port = 1234\nscheduler_policy = "priority"\n')
    monkeypatch.setenv("LLMOS_CONFIG", str(toml))
    monkeypatch.setenv("LLMOS_HOME", str(tmp_path))
    monkeypatch.delenv("LLMOS_PORT", raising=False)
    config = load_config()
    assert config.port == 1234
    assert config.scheduler.policy == "priority"


def test_scheduler_default_policy_and_aging(monkeypatch: pytest.MonkeyPatch, llmos_home: Path) -> None:
    monkeypatch.delenv("LLMOS_SCHEDULER_POLICY", raising=False)
    config = load_config()
    assert config.scheduler.policy == "tiered" and config.scheduler.aging_seconds == 10.0
    monkeypatch.setenv("LLMOS_SCHEDULER_AGING_SECONDS", "2.5")
    assert load_config().scheduler.aging_seconds == 2.5
    for bad in ("0", "-1", "soon"):
        monkeypatch.setenv("LLMOS_SCHEDULER_AGING_SECONDS", bad)
        with pytest.raises(ValidationError):
            Settings()
