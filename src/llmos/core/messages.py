"""Typed messages between the server and a model's engine core.

Everything that crosses the boundary is one of these frozen dataclasses (pickled over a pipe by
the process host; handed over as objects by the in-process host). Three kinds travel to the core:

* **commands**, answered by nothing: :class:`AddRequest`, :class:`AbortRequests`,
  :class:`SetTenantWeights`, :class:`SetPolicy`, :class:`AbortAll`, :class:`Shutdown`;
* **calls**, each with a ``call_id`` the answer repeats: :class:`RenderPrompt` and
  :class:`Tokenize` (answered by the core's frontend thread at once, never behind a decode step),
  :class:`Embed`, :class:`GetStats`, :class:`GetHealth`, :class:`GetSequences` (answered by the
  core's loop between two steps);
* :class:`CoreSpec`, the first message, which says what to load.

From the core come :class:`CoreReady` (the answer to ``CoreSpec``), one :class:`StepOutputs` per
step that produced anything, the answers to calls (a typed reply, or :class:`CallFailed`), and
:class:`CoreDead` as its last word when its engine died.

Sizes: a step's outputs are a tuple of ``(request_id, SeqOutput)`` pairs; pickling one batch of
16 decode outputs costs about as much as building it (``bench/core_messages.py`` measures pickle
against msgspec; see ``docs/engine.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmos import errors
from llmos.config import SchedulerConfig
from llmos.engine.base import EngineHealth, EngineInfo, LoadSpec, SeqOutput, SeqStatus, SequenceSpec
from llmos.scheduler.request_events import SchedulerEvent
from llmos.scheduler.stats import QueuePosition, SchedulerCounts, SchedulerStats
from llmos.types import ChatMessage, TenantId, TokenId

# --- errors across the boundary -------------------------------------------------------------


@dataclass(frozen=True)
class ErrorInfo:
    """An llmos error as data: ``error_type`` names a class in :mod:`llmos.errors`."""

    error_type: str
    message: str
    param: str | None = None
    retry_after: float | None = None

    @classmethod
    def of(cls, exc: BaseException) -> ErrorInfo:
        if isinstance(exc, errors.LLMOSError):
            retry_after = exc.retry_after if isinstance(exc, errors.RetryLater) else None
            return cls(type(exc).__name__, exc.message, exc.param, retry_after)
        return cls("EngineGenerateError", f"{type(exc).__name__}: {exc}")

    def to_error(self) -> errors.LLMOSError:
        """The error to raise on this side (EngineGenerateError for a name llmos does not know)."""
        kind = getattr(errors, self.error_type, None)
        if not (isinstance(kind, type) and issubclass(kind, errors.LLMOSError)):
            return errors.EngineGenerateError(self.message, param=self.param)
        if issubclass(kind, errors.RetryLater):
            return kind(self.message, retry_after=self.retry_after or 0.0, param=self.param)
        return kind(self.message, param=self.param)


# --- to the core: what to load --------------------------------------------------------------


@dataclass(frozen=True)
class CoreSpec:
    """The first message to a core: the backend to run, the model to load, how to schedule it."""

    backend: str
    load: LoadSpec
    model: str
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    tenant_weights: Mapping[TenantId, float] = field(default_factory=dict)


# --- to the core: commands ------------------------------------------------------------------


@dataclass(frozen=True)
class AddRequest:
    """Queue one sequence. ``seqno`` numbers the adds of one client (1, 2, ...); the core echoes
    the last it has taken in every :class:`StepOutputs`. ``deadline_s`` is relative to when the
    request was sent (the core puts it on its own clock)."""

    seqno: int
    request_id: str
    spec: SequenceSpec
    tenant: TenantId
    urgency: int
    deadline_s: float | None = None


@dataclass(frozen=True)
class AbortRequests:
    """Drop these requests at the next step (unknown ids are ignored)."""

    request_ids: tuple[str, ...]


@dataclass(frozen=True)
class SetTenantWeights:
    weights: Mapping[TenantId, float]


@dataclass(frozen=True)
class SetPolicy:
    """Schedule with this policy (by name, see ``llmos.scheduler.policies``) from the next step."""

    name: str


@dataclass(frozen=True)
class AbortAll:
    """Stop accepting; running requests end with ``abort``, queued ones fail with Overloaded."""


@dataclass(frozen=True)
class Shutdown:
    """Unload the engine and exit."""


# --- to the core: calls ---------------------------------------------------------------------


@dataclass(frozen=True)
class RenderPrompt:
    """Render chat messages with the model's template and tokenize the result (frontend thread)."""

    call_id: int
    messages: tuple[ChatMessage, ...]
    tools: tuple[Mapping[str, Any], ...] | None = None
    add_generation_prompt: bool = True


@dataclass(frozen=True)
class Tokenize:
    """Tokenize each text (frontend thread)."""

    call_id: int
    texts: tuple[str, ...]
    add_special: bool = True
    parse_special: bool = False


@dataclass(frozen=True)
class Embed:
    """Embed token lists (between two steps)."""

    call_id: int
    inputs: tuple[tuple[TokenId, ...], ...]
    normalize: bool = True


@dataclass(frozen=True)
class GetStats:
    call_id: int


@dataclass(frozen=True)
class GetHealth:
    call_id: int


@dataclass(frozen=True)
class GetSequences:
    call_id: int


Command = AddRequest | AbortRequests | SetTenantWeights | SetPolicy | AbortAll | Shutdown
Call = RenderPrompt | Tokenize | Embed | GetStats | GetHealth | GetSequences
ToCore = CoreSpec | Command | Call

FRONTEND_CALLS = (RenderPrompt, Tokenize)
"""Calls the core answers on its frontend thread, beside a running step."""

# --- from the core --------------------------------------------------------------------------


@dataclass(frozen=True)
class CoreReady:
    info: EngineInfo
    pid: int


@dataclass(frozen=True)
class StepOutputs:
    """Everything one step produced, for every request: new outputs in order (token ids, text
    already detokenized with stop strings handled, logprobs, finish reasons, usage counts),
    requests that ended with an error, what the scheduler did (events), and the counts admission
    control needs. ``positions`` is set when queue positions changed (None: as before)."""

    outputs: tuple[tuple[str, SeqOutput], ...]
    failed: tuple[tuple[str, ErrorInfo], ...]
    events: tuple[SchedulerEvent, ...]
    counts: SchedulerCounts
    added: int
    """The ``seqno`` of the last :class:`AddRequest` the core has taken."""
    positions: tuple[QueuePosition, ...] | None = None


@dataclass(frozen=True)
class TokensReply:
    call_id: int
    tokens: tuple[tuple[TokenId, ...], ...]


@dataclass(frozen=True)
class EmbedReply:
    call_id: int
    vectors: tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class StatsReply:
    call_id: int
    stats: SchedulerStats


@dataclass(frozen=True)
class HealthReply:
    call_id: int
    health: EngineHealth


@dataclass(frozen=True)
class SequencesReply:
    call_id: int
    sequences: tuple[SeqStatus, ...]


@dataclass(frozen=True)
class CallFailed:
    call_id: int
    error: ErrorInfo


@dataclass(frozen=True)
class CoreDead:
    """The core's last message: its engine died (or it could not load), and why."""

    reason: str
    error: ErrorInfo | None = None


Reply = TokensReply | EmbedReply | StatsReply | HealthReply | SequencesReply | CallFailed
FromCore = CoreReady | StepOutputs | Reply | CoreDead
