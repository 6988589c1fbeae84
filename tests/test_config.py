from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from llmos.config import DEFAULT_PORT, ConfigError, Settings, load_config, parse_size


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


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("512", 512),
        ("50MB", 50_000_000),
        ("50 mb", 50_000_000),
        ("1.5GB", 1_500_000_000),
        ("4GiB", 4 * 1024**3),
        ("512MiB", 512 * 1024**2),
        ("2g", 2 * 1024**3),
        ("64k", 64 * 1024),
        (1024, 1024),
    ],
)
def test_sizes_take_units(value: object, expected: int) -> None:
    assert parse_size(value) == expected


def test_the_memory_budget_takes_units_or_a_share_of_ram(
    monkeypatch: pytest.MonkeyPatch, llmos_home: Path
) -> None:
    monkeypatch.setenv("LLMOS_MEMORY_BUDGET", "50MB")
    assert load_config().memory_budget == 50_000_000
    monkeypatch.setenv("LLMOS_MEMORY_BUDGET", "40%")
    config = load_config()
    assert config.memory_budget is None and config.memory_budget_share == 0.4
    monkeypatch.setenv("LLMOS_MAX_BODY_BYTES", "8MiB")
    assert load_config().limits.max_body_bytes == 8 * 1024**2


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [
        ("LLMOS_MEMORY_BUDGET", "lots", "512MB, 1.5GB, 4GiB, 2g, or a share of RAM: 50%"),
        ("LLMOS_MEMORY_BUDGET", "150%", "at most 100%"),
        ("LLMOS_MAX_BODY_BYTES", "4 bananas", "512MB"),
        ("LLMOS_SCHEDULER_POLICY", "lottery", "'fcfs', 'priority', 'round_robin' or 'fair'"),
        ("LLMOS_PORT", "eighty", "integer"),
    ],
)
def test_an_invalid_setting_is_one_line_naming_it_its_value_and_the_accepted_forms(
    monkeypatch: pytest.MonkeyPatch, llmos_home: Path, name: str, value: str, accepted: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_config()
    message = str(info.value)
    assert message.count("\n") == 0 and message.startswith(f"{name}={value!r} is not valid: ")
    assert accepted in message


def test_the_cli_reports_a_bad_setting_in_one_line_without_a_traceback(llmos_home: Path) -> None:
    import os
    import subprocess
    import sys

    for command in (["serve", "--no-default-model"], ["list"], ["keys", "list"]):
        env = {**os.environ, "LLMOS_MEMORY_BUDGET": "50XB", "LLMOS_HOME": str(llmos_home)}
        done = subprocess.run(
            [sys.executable, "-m", "llmos", *command], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 2, (command, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert lines == [lines[0]] and "LLMOS_MEMORY_BUDGET='50XB' is not valid" in lines[0], done.stderr
        assert "Traceback" not in done.stderr


def test_cluster_mode_is_off_unless_asked_and_parses_its_settings() -> None:
    from llmos.config import parse_replicas

    assert not load_config().cluster.enabled
    cfg = load_config(cluster="auto", replicas="1..4", target_wait=0.5, scale_down_after=30).cluster
    assert cfg.enabled and cfg.address == "auto"
    assert (cfg.min_replicas, cfg.max_replicas, cfg.target_wait_s, cfg.quiet_period_s) == (1, 4, 0.5, 30)
    assert load_config(cluster="ray://10.0.0.5:10001").cluster.address == "ray://10.0.0.5:10001"
    assert load_config(cluster="10.0.0.5:6379").cluster.address == "10.0.0.5:6379"
    assert load_config(cluster="off").cluster.address is None
    assert parse_replicas("3") == (3, 3)
    for bad in ("0", "4..2", "x", "1..y"):
        with pytest.raises(ValueError):
            parse_replicas(bad)


def test_bad_cluster_settings_say_how_to_fix_them() -> None:
    with pytest.raises(ConfigError, match="ray://HOST:PORT"):
        load_config(cluster="somewhere")
    with pytest.raises(ConfigError, match="MIN <= MAX"):
        load_config(cluster="auto", replicas="5..2")
    with pytest.raises(ConfigError, match="needs cluster mode"):
        load_config(replicas="2")
    cfg = load_config(cluster="auto", cluster_token="s3cret")
    assert cfg.cluster.auth_token == "s3cret" and "s3cret" not in repr(cfg)
