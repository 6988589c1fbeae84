"""Configuration, parsed once at the edge.

``Settings`` reads ``LLMOS_*`` environment variables (and an optional TOML file named by
``LLMOS_CONFIG``); :meth:`Settings.freeze` turns them into the frozen :class:`Config` that is
passed down. Nothing below this module reads ``os.environ``.

Sizes take units (``LLMOS_MEMORY_BUDGET=512MB``, ``4GiB``, ``2g``, or ``50%`` of the machine's
RAM); an invalid setting makes :func:`load_config` raise :class:`ConfigError`, whose message
names each bad variable, its value and the accepted forms, one line each.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from llmos.errors import ConfigError

DEFAULT_PORT = 8470
"""llmos listens on 127.0.0.1:8470 by default: clear of 8000/8080 (dev servers), 11434 (Ollama)."""

AuthMode = Literal["auto", "required", "off"]
PolicyName = Literal["tiered", "fcfs", "priority", "round_robin", "fair"]
"""``tiered`` (the default): urgency tiers with aging, weighted fair share between tenants within a
tier; ``fcfs``: submission order; ``priority``: urgency with aging; ``round_robin``: tenants in
turn; ``fair``: weighted fair share (VTC) only."""
LogFormat = Literal["text", "json"]
CpuWeightsMode = Literal["auto", "converted", "native"]
"""``auto``: Q4_1/Q5_1 GGUF files run on the CPU from a Q8_0 re-encoding (``llmos.engine.cpu_weights``),
and a sequence decoding alone from the file as stored (the solo lane, ``engine/llamacpp/solo.py``);
``converted``: the re-encoding only; ``native``: every file as stored."""


SIZE_FORMS = "a number of bytes or a size with a unit: 512MB, 1.5GB, 4GiB, 2g"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)(b?)\s*$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def parse_size(value: Any) -> int:
    """Bytes from ``value``: an integer, or a number with a unit. ``KB``/``MB``/``GB`` are
    decimal (1000), ``KiB``/``MiB``/``GiB`` and the bare letters ``k``/``m``/``g`` binary (1024),
    as in ``docker run -m 2g``. Raises ValueError naming the accepted forms."""
    if isinstance(value, bool):
        raise ValueError(f"expected {SIZE_FORMS}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"must not be negative; expected {SIZE_FORMS}")
        return value
    match = _SIZE.match(str(value))
    if match is None:
        raise ValueError(f"expected {SIZE_FORMS}")
    number, prefix, binary, byte = match.groups()
    base = 1000 if prefix and byte and not binary else 1024
    if binary and not prefix:
        raise ValueError(f"expected {SIZE_FORMS}")
    return int(float(number) * base ** _POWERS[prefix.lower()])


def parse_share(value: Any) -> float | None:
    """``50%`` → 0.5; None for anything else (a size). Raises ValueError for a percentage
    outside (0, 100]."""
    if not isinstance(value, str) or not value.strip().endswith("%"):
        return None
    try:
        percent = float(value.strip()[:-1])
    except ValueError:
        raise ValueError("expected a percentage such as 50%") from None
    if not 0 < percent <= 100:
        raise ValueError("a share of RAM must be more than 0% and at most 100%")
    return percent / 100


def _memory_budget(value: Any) -> int | str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if parse_share(value) is not None:
        return str(value).strip()
    try:
        return parse_size(value)
    except ValueError:
        raise ValueError(f"expected {SIZE_FORMS}, or a share of RAM: 50%") from None


Size = Annotated[int, BeforeValidator(parse_size)]
MemoryBudgetSetting = Annotated[int | str | None, BeforeValidator(_memory_budget)]


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
    policy: PolicyName = "tiered"
    max_queue: int = 256
    max_queue_per_tenant: int = 64
    aging_seconds: float = 10.0
    """Queue time worth one urgency level (``tiered``, ``priority``): a ``flex`` request behind
    sustained ``priority`` work gets a slot after about 6 of these."""
    tenant_weights: dict[str, float] = field(default_factory=dict)


TrainingYield = Literal["pause", "threads", "none"]


@dataclass(frozen=True)
class TrainingConfig:
    max_jobs: int = 1
    """Fine-tuning jobs running at once (``LLMOS_TRAINING_MAX_JOBS``); the rest wait queued."""
    yield_policy: TrainingYield = "pause"
    """What a running job does while inference requests are queued (``LLMOS_TRAINING_YIELD``):
    ``pause`` between optimizer steps, drop to one thread (``threads``), or nothing (``none``)."""
    threads: int = 0
    """Threads a job trains with (``LLMOS_TRAINING_THREADS``); 0: half the cores, at least one."""


@dataclass(frozen=True)
class ClusterConfig:
    """Cluster mode (``llmos serve --cluster``): model replicas as Ray actors.

    ``address`` None: one machine, nothing of Ray imported. ``auto``: a Ray head started here on
    127.0.0.1 (dashboard off). ``ray://HOST:PORT``: join a cluster through the Ray Client;
    ``HOST:PORT``: join as a driver through the cluster's GCS address."""

    address: str | None = None
    min_replicas: int = 1
    """Replicas each loaded model starts with (``--replicas MIN..MAX``)."""
    max_replicas: int = 1
    """Replicas the autoscaler may grow a model to; equal to ``min_replicas``: no autoscaling."""
    replica_cpus: float = 1.0
    """CPUs each replica's actor asks Ray for (its engine threads)."""
    replica_gpus: float = 0.0
    target_wait_s: float = 2.0
    """The queue wait the autoscaler keeps each model under (the queueing model's prediction)."""
    quiet_period_s: float = 60.0
    """How long a model's load must stay low before the autoscaler removes a replica."""
    head_cpus: int | None = None
    """CPUs the local head offers (``auto`` only); None: the machine's."""
    auth_token: str | None = field(default=None, repr=False)
    """Ray's token (``RAY_AUTH_MODE=token``), required to join a cluster beyond loopback."""

    @property
    def enabled(self) -> bool:
        return self.address is not None


def parse_replicas(value: str) -> tuple[int, int]:
    """``N`` or ``MIN..MAX`` → (min, max). Raises ValueError naming the accepted forms."""
    text = value.strip()
    low, sep, high = text.partition("..")
    try:
        lo = int(low)
        hi = int(high) if sep else lo
    except ValueError:
        raise ValueError(f"replicas {value!r}: expected a number (2) or a range MIN..MAX (1..4)") from None
    if lo < 1 or hi < lo:
        raise ValueError(f"replicas {value!r}: need 1 <= MIN <= MAX")
    return lo, hi


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
    """Bytes of RAM resident models may hold; None: :attr:`memory_budget_share`, else a safe share."""
    memory_budget_share: float | None = None
    """The RAM budget as a share of the machine's RAM (``LLMOS_MEMORY_BUDGET=50%``)."""
    import_dir: Path | None = None
    """The folder whose files keys without ``admin`` may import as models (``LLMOS_IMPORT_DIR``);
    None: only admins import server files."""
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
    training: TrainingConfig = field(default_factory=TrainingConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)


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
    memory_budget: MemoryBudgetSetting = None
    import_dir: Path | None = None
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
    scheduler_policy: PolicyName = "tiered"
    scheduler_aging_seconds: float = Field(default=10.0, gt=0)
    max_queue: int = Field(default=256, ge=1)
    max_queue_per_tenant: int = Field(default=64, ge=1)
    max_body_bytes: Size = Field(default=4 * 1024 * 1024, ge=1024)
    max_tokens: int = Field(default=8192, ge=1)
    training_max_jobs: int = Field(default=1, ge=1, le=64)
    training_yield: TrainingYield = "pause"
    training_threads: int = Field(default=0, ge=0)
    cluster: str | None = None
    replicas: str = "1"
    replica_cpus: float = Field(default=1.0, gt=0)
    replica_gpus: float = Field(default=0.0, ge=0)
    target_wait: float = Field(default=2.0, gt=0)
    scale_down_after: float = Field(default=60.0, ge=0)
    cluster_head_cpus: int | None = Field(default=None, ge=1)
    cluster_token: str | None = None

    @field_validator("replicas", mode="after")
    @classmethod
    def _replicas(cls, v: str) -> str:
        parse_replicas(v)
        return v

    @field_validator("cluster", mode="after")
    @classmethod
    def _cluster(cls, v: str | None) -> str | None:
        if v is None or not v.strip() or v.strip().lower() in ("off", "none", "0"):
            return None
        text = v.strip()
        if text == "auto" or text.startswith("ray://") or re.fullmatch(r"[\w.\-\[\]:]+:\d+", text):
            return text
        raise ValueError("cluster must be auto, ray://HOST:PORT (Ray Client) or HOST:PORT (a GCS address)")

    @field_validator("home", mode="after")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser().absolute()

    @field_validator("import_dir", mode="after")
    @classmethod
    def _expand_import_dir(cls, v: Path | None) -> Path | None:
        return v.expanduser().absolute() if v is not None else None

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
            memory_budget=self.memory_budget if isinstance(self.memory_budget, int) else None,
            memory_budget_share=parse_share(self.memory_budget),
            import_dir=self.import_dir,
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
                aging_seconds=self.scheduler_aging_seconds,
                max_queue=self.max_queue,
                max_queue_per_tenant=self.max_queue_per_tenant,
            ),
            training=TrainingConfig(
                max_jobs=self.training_max_jobs,
                yield_policy=self.training_yield,
                threads=self.training_threads,
            ),
            cluster=self._cluster_config(),
        )

    def _cluster_config(self) -> ClusterConfig:
        lo, hi = parse_replicas(self.replicas)
        if self.cluster is None and (lo, hi) != (1, 1):
            raise ConfigError(
                f"LLMOS_REPLICAS={self.replicas!r} needs cluster mode: add --cluster auto (or LLMOS_CLUSTER)"
            )
        return ClusterConfig(
            address=self.cluster,
            min_replicas=lo,
            max_replicas=hi,
            replica_cpus=self.replica_cpus,
            replica_gpus=self.replica_gpus,
            target_wait_s=self.target_wait,
            quiet_period_s=self.scale_down_after,
            head_cpus=self.cluster_head_cpus,
            auth_token=self.cluster_token or os.environ.get("RAY_AUTH_TOKEN") or None,
        )


def load_config(**overrides: Any) -> Config:
    """Parse the environment (plus explicit overrides such as CLI flags) into a frozen Config.

    Raises ConfigError (one line per invalid setting) instead of pydantic's report."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean).freeze()
    except ValidationError as exc:
        raise ConfigError(describe_invalid(exc)) from None


def describe_invalid(exc: ValidationError) -> str:
    """One line per error: ``LLMOS_X='value' is not valid: <why and the accepted forms>``."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err.get("loc", ()) if not isinstance(p, int)]
        name = "LLMOS_" + (loc[0] if loc else "?").upper()
        value = err.get("input")
        why = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        if err.get("type") in ("literal_error", "enum") and "expected" in err.get("ctx", {}):
            why = f"expected one of {err['ctx']['expected']}"
        shown = value if isinstance(value, str | int | float) and not isinstance(value, bool) else None
        lines.append(f"{name}={shown!r} is not valid: {why}" if shown is not None else f"{name}: {why}")
    return "\n".join(dict.fromkeys(lines))
