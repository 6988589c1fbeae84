"""What the kernel's operations take and give: plain frozen values, no HTTP shapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from llmos.engine.base import TokenLogprob
from llmos.structured.tool_parser import StreamDelta, ToolCall
from llmos.types import FinishReason

DEFAULT_URGENCY = 5
"""Urgency of a request that names none (0-9, higher is more urgent)."""


@dataclass(frozen=True)
class RequestMeta:
    """Who asks, how urgently, and by when."""

    request_id: str
    tenant: str
    urgency: int = DEFAULT_URGENCY
    deadline_s: float | None = None
    """Seconds from arrival until the request must have finished, if bounded."""
    keep_alive: str | float | None = None


@dataclass(frozen=True)
class GenerationParams:
    """OpenAI's sampling fields, before translation to the engine's SamplingParams.

    ``None`` means "not given": the model's defaults (its manifest's parameters), then llmos's.
    """

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: int | None = None
    """None: none; 0: the chosen token's; k > 0: and the top k alternatives."""
    n: int = 1
    grammar: str | None = None
    """A GBNF grammar constraining the output (structured output, tool calls)."""
    ignore_eos: bool = False
    """Generate past end-of-sequence, until max_tokens or a stop string."""
    logit_bias: tuple[tuple[int, float], ...] = ()
    """``(token id, bias)`` pairs, bias in [-100, 100], added to the logits (OpenAI's ``logit_bias``)."""


@dataclass(frozen=True)
class ChoiceDelta:
    """New output of one choice: text, its tokens' logprobs, and the finish reason on the last."""

    index: int
    text: str = ""
    logprobs: tuple[TokenLogprob, ...] = ()
    finish_reason: FinishReason | None = None
    pieces: tuple[StreamDelta, ...] | None = None
    """Of a tool-calling choice: ``text`` read as content and tool-call deltas (what a client
    sees; markup never becomes content); None when ``text`` is the content as it is."""


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ChoiceResult:
    index: int
    text: str
    finish_reason: FinishReason
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class GenerationResult:
    choices: tuple[ChoiceResult, ...]
    usage: Usage


@dataclass(frozen=True)
class Citation:
    """A retrieved chunk that went into the prompt."""

    document: str
    document_id: int
    chunk: int
    score: float
    collection: str
    version: int


@dataclass(frozen=True)
class AnswerChoice:
    """One choice of a finished answer: its raw ``text``, read back as ``content`` or tool calls."""

    index: int
    text: str
    content: str | None
    tool_calls: tuple[ToolCall, ...]
    finish_reason: FinishReason
    """``tool_calls`` when the model stopped after calling tools, else the engine's reason."""
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class AnswerResult:
    """A finished answer: every choice read back, the usage, and what retrieval cited (None
    when the request named no collections)."""

    choices: tuple[AnswerChoice, ...]
    usage: Usage
    citations: tuple[Citation, ...] | None = None


@dataclass(frozen=True)
class ModelSummary:
    """A registered model as listed by ``/v1/models`` and ``/api/models``."""

    name: str
    digest: str
    size: int
    format: str
    quantization: str
    parameter_count: int
    context_length: int
    modified_at: datetime | None
    details: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class PullEvent:
    """Progress of a pull or an import: a status line and, while bytes move, counts."""

    status: str
    completed: int | None = None
    total: int | None = None
    digest: str | None = None
    done: bool = False


@dataclass(frozen=True)
class ResidentModel:
    """A loaded model as shown by ``ps``."""

    name: str
    digest: str
    state: str
    size_bytes: int
    estimated_bytes: int
    measured_bytes: int | None
    in_flight: int
    pinned: bool
    keep_alive: float
    expires_at: float | None
    running: int = 0
    queued: int = 0
    weights: str = ""
    """How the engine holds the weights, e.g. ``q8_0 (converted from q4_1)`` ("" if unknown)."""
    pid: int = 0
    """The process of the model's engine core (0 while it loads)."""
    restarts: int = 0
    """Engine cores of this model that died (and were replaced) since the server started."""
    last_death: str = ""
    """Why the last one died ("" if none did)."""


@dataclass(frozen=True)
class Embeddings:
    """One vector per input, in input order, L2-normalized; ``prompt_tokens`` counts every input's tokens."""

    model: str
    digest: str
    vectors: list[list[float]]
    prompt_tokens: int
