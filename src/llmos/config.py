"""Configuration, parsed once at the edge.

``Settings`` reads ``LLMOS_*`` environment variables (and an optional TOML file named by
``LLMOS_CONFIG``); :meth:`Settings.freeze` turns them into the frozen :class:`Config` that is
passed down. Nothing below this module reads ``os.environ``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_PORT = 8470
"""llmos listens on 127.0.0.1:8470 by default: clear of 8000/8080 (dev servers), 11434 (Ollama)."""

AuthMode = Literal["auto", "required", "off"]
PolicyName = Literal["fcfs", "priority", "round_robin", "fair"]
LogFormat = Literal["text", "json"]
CpuWeightsMode = Literal["auto", "native"]
"""``auto``: Q4_1/Q5_1 GGUF files run on the CPU from a Q8_0 re-encoding (``llmos.engine.weights``);
``native``: every file as stored."""


@dataclass(frozen=True)
class Paths:
    home: Path

    @property
    def blobs(self) -> Path:
        return self.home / "blobs"

    @property
    def models(self) -> Path:
        """Multi-file models presented as folders of their blobs (``sha256-<digest>/<path>``)."""
        return self.home / "models"

    @property
    def tmp(self) -> Path:
        """Scratch space on the same filesystem as the blobs, so a rename is atomic."""
        return self.home / "tmp"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def derived(self) -> Path:
        """Files the engine derives from blobs (CPU re-encodings of weights), named
        ``sha256-<digest>.<variant>`` and deleted with their blob."""
        return self.home / "derived"


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 4 * 1024 * 1024
    max_messages: int = 512
    max_prompts: int = 64
    """Prompts in one ``/v1/completions`` request (each runs ``n`` sequences)."""
    max_tokens: int = 8192
    max_n: int = 8
    max_logprobs: int = 20
    max_stop: int = 8
    max_stop_chars: int = 256


@dataclass(frozen=True)
class EngineConfig:
    n_ctx: int = 8192
    """Total KV cells of one model; each slot owns ``n_ctx / n_slots`` of them."""
    n_slots: int = 16
    """Sequences decoded together in one batch."""
    n_threads: int = 0
    """0: use every physical core the resource manager grants."""
    n_batch: int = 512
    """Per-step token budget: prefill chunks plus one token per decoding sequence."""
    backend: str = "llamacpp"
    cpu_weights: CpuWeightsMode = "auto"
    """``auto``: Q4_1/Q5_1 GGUF files run on the CPU from a one-time Q8_0 re-encoding, which
    llama.cpp multiplies in batches (``LLMOS_CPU_WEIGHTS``); ``native``: as stored."""


@dataclass(frozen=True)
class SchedulerConfig:
    policy: PolicyName = "fcfs"
    max_queue: int = 256
    max_queue_per_tenant: int = 64
    aging_seconds: float = 10.0
    tenant_weights: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    paths: Paths
    database_url: str
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    default_model: str = "smollm2:135m"
    log_level: str = "INFO"
    log_json: bool = False
    log_format: LogFormat = "text"
    """``json``: one JSON object per log line (``LLMOS_LOG_FORMAT``; ``LLMOS_LOG_JSON=1`` also)."""
    metrics_require_admin: bool = False
    """``/metrics`` answers only admin keys (when auth is on); open by default, like a scrape target."""
    keep_alive: str = "5m"
    memory_budget: int | None = None
    auth: AuthMode = "auto"
    admin_key: str | None = None
    anonymous_tenant: str = "local"
    base_url: str | None = None
    api_key: str | None = None
    pip_command: tuple[str, ...] = ()
    """How to fetch catalog packages; empty means ``python -m pip`` of this interpreter."""
    hf_endpoint: str = "https://huggingface.co"
    limits: Limits = field(default_factory=Limits)
    engine: EngineConfig = field(default_factory=EngineConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)


class Settings(BaseSettings):
    """The environment's view of :class:`Config`: ``LLMOS_HOME``, ``LLMOS_DATABASE_URL``, ..."""

    model_config = SettingsConfigDict(env_prefix="LLMOS_", extra="ignore", frozen=True)

    home: Path = Field(default_factory=lambda: Path.home() / ".llmos")
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535)
    default_model: str = "smollm2:135m"
    log_level: str = "INFO"
    log_json: bool = False
    log_format: LogFormat = "text"
    metrics_require_admin: bool = False
    keep_alive: str = "5m"
    memory_budget: int | None = Field(default=None, ge=0)
    auth: AuthMode = "auto"
    admin_key: str | None = None
    anonymous_tenant: str = "local"
    base_url: str | None = None
    api_key: str | None = None
    pip_command: str | None = None
    hf_endpoint: str = "https://huggingface.co"
    n_ctx: int = Field(default=8192, ge=256)
    n_slots: int = Field(default=16, ge=1, le=256)
    n_threads: int = Field(default=0, ge=0)
    n_batch: int = Field(default=512, ge=16)
    engine_backend: str = "llamacpp"
    cpu_weights: CpuWeightsMode = "auto"
    scheduler_policy: PolicyName = "fcfs"
    max_queue: int = Field(default=256, ge=1)
    max_queue_per_tenant: int = Field(default=64, ge=1)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_tokens: int = Field(default=8192, ge=1)

    @field_validator("home", mode="after")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser().absolute()

    @field_validator("log_level", mode="after")
    @classmethod
    def _level(cls, v: str) -> str:
        level = v.strip().upper()
        if level == "WARN":
            level = "WARNING"
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("log_level must be one of debug, info, warning, error, critical")
        return level

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml = os.environ.get("LLMOS_CONFIG")
        if toml:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
        return tuple(sources)

    def freeze(self) -> Config:
        """The frozen configuration passed down to every subsystem."""
        database_url = self.database_url or f"sqlite:///{self.home / 'llmos.db'}"
        return Config(
            paths=Paths(home=self.home),
            database_url=database_url,
            host=self.host,
            port=self.port,
            default_model=self.default_model,
            log_level=self.log_level,
            log_json=self.log_json or self.log_format == "json",
            log_format="json" if self.log_json else self.log_format,
            metrics_require_admin=self.metrics_require_admin,
            keep_alive=self.keep_alive,
            memory_budget=self.memory_budget,
            auth=self.auth,
            admin_key=self.admin_key,
            anonymous_tenant=self.anonymous_tenant,
            base_url=self.base_url,
            api_key=self.api_key,
            pip_command=tuple(self.pip_command.split()) if self.pip_command else (),
            hf_endpoint=self.hf_endpoint,
            limits=Limits(max_body_bytes=self.max_body_bytes, max_tokens=self.max_tokens),
            engine=EngineConfig(
                n_ctx=self.n_ctx,
                n_slots=self.n_slots,
                n_threads=self.n_threads,
                n_batch=self.n_batch,
                backend=self.engine_backend,
                cpu_weights=self.cpu_weights,
            ),
            scheduler=SchedulerConfig(
                policy=self.scheduler_policy,
                max_queue=self.max_queue,
                max_queue_per_tenant=self.max_queue_per_tenant,
            ),
        )


def load_config(**overrides: Any) -> Config:
    """Parse the environment (plus explicit overrides such as CLI flags) into a frozen Config."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean).freeze()
