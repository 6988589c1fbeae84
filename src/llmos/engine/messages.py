"""Typed messages between a :class:`~llmos.engine.worker.WorkerEngine` and its worker process.

One frozen dataclass per request kind and per reply kind; they cross the process boundary
pickled over a ``multiprocessing`` pipe. Every request gets exactly one reply: its typed
result, or :class:`ErrorReply` carrying the llmos error to re-raise in the parent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmos.engine.base import (
    Admission,
    EngineHealth,
    EngineInfo,
    LoadSpec,
    SeqSnapshot,
    SeqStatus,
    SequenceSpec,
    StepPlan,
    StepResult,
)
from llmos.types import ChatMessage, SeqId, TokenId

# --- requests -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadRequest:
    spec: LoadSpec


@dataclass(frozen=True)
class TokenizeRequest:
    text: str
    add_special: bool
    parse_special: bool


@dataclass(frozen=True)
class DetokenizeRequest:
    tokens: tuple[TokenId, ...]


@dataclass(frozen=True)
class RenderChatRequest:
    messages: tuple[ChatMessage, ...]
    add_generation_prompt: bool
    tools: tuple[Mapping[str, Any], ...] | None


@dataclass(frozen=True)
class CanAdmitRequest:
    n_prompt_tokens: int


@dataclass(frozen=True)
class AdmitRequest:
    spec: SequenceSpec


@dataclass(frozen=True)
class StepRequest:
    plan: StepPlan | None


@dataclass(frozen=True)
class AbortRequest:
    seq_id: SeqId


@dataclass(frozen=True)
class PreemptRequest:
    seq_id: SeqId


@dataclass(frozen=True)
class RestoreRequest:
    snapshot: SeqSnapshot


@dataclass(frozen=True)
class SequencesRequest:
    pass


@dataclass(frozen=True)
class EmbedRequest:
    inputs: tuple[str | tuple[TokenId, ...], ...]
    normalize: bool


@dataclass(frozen=True)
class HealthRequest:
    pass


@dataclass(frozen=True)
class UnloadRequest:
    pass


@dataclass(frozen=True)
class ShutdownRequest:
    """Unload and exit the worker process."""


Request = (
    LoadRequest
    | TokenizeRequest
    | DetokenizeRequest
    | RenderChatRequest
    | CanAdmitRequest
    | AdmitRequest
    | StepRequest
    | AbortRequest
    | PreemptRequest
    | RestoreRequest
    | SequencesRequest
    | EmbedRequest
    | HealthRequest
    | UnloadRequest
    | ShutdownRequest
)

# --- replies ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InfoReply:
    info: EngineInfo


@dataclass(frozen=True)
class TokensReply:
    tokens: tuple[TokenId, ...]


@dataclass(frozen=True)
class TextReply:
    text: str


@dataclass(frozen=True)
class BoolReply:
    value: bool


@dataclass(frozen=True)
class AdmissionReply:
    admission: Admission


@dataclass(frozen=True)
class StepReply:
    result: StepResult


@dataclass(frozen=True)
class SnapshotReply:
    snapshot: SeqSnapshot


@dataclass(frozen=True)
class SequencesReply:
    sequences: tuple[SeqStatus, ...]


@dataclass(frozen=True)
class EmbedReply:
    vectors: tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class HealthReply:
    health: EngineHealth


@dataclass(frozen=True)
class DoneReply:
    pass


@dataclass(frozen=True)
class ErrorReply:
    """A failure inside the worker. ``error_type`` names a class in :mod:`llmos.errors`."""

    error_type: str
    message: str
    param: str | None = None
    retry_after: float | None = None


Reply = (
    InfoReply
    | TokensReply
    | TextReply
    | BoolReply
    | AdmissionReply
    | StepReply
    | SnapshotReply
    | SequencesReply
    | EmbedReply
    | HealthReply
    | DoneReply
    | ErrorReply
)


def freeze_inputs(inputs: Sequence[str | Sequence[TokenId]]) -> tuple[str | tuple[TokenId, ...], ...]:
    return tuple(x if isinstance(x, str) else tuple(x) for x in inputs)
