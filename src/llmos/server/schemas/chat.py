"""``POST /v1/chat/completions`` request and response shapes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmos.server.schemas.common import RequestModel, SamplingFields, Usage

Role = Literal["system", "developer", "user", "assistant", "tool"]
MAX_TOOLS = 128
"""Tools one request may define (OpenAI's bound too): each becomes grammar rules and prompt text."""


class ContentPart(RequestModel):
    type: str
    text: str | None = None


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None

    def to_domain(self) -> dict[str, Any]:
        """A plain message for the chat template: text parts joined, extra fields kept."""
        out = self.model_dump(exclude_none=True)
        if isinstance(self.content, list):
            out["content"] = "".join(p.text or "" for p in self.content if p.type == "text")
        elif self.content is None:
            out["content"] = ""
        return out


class RetrievalOptions(RequestModel):
    top_k: int = Field(default=4, ge=1, le=20)
    mode: Literal["hybrid", "vector", "keyword"] = "hybrid"
    filters: dict[str, Any] | None = None
    """Document metadata that must match: ``{"key": value}`` or ``{"key": [one, of]}``."""


class Citation(BaseModel):
    """A retrieved chunk that went into the prompt (llmos extension)."""

    document: str
    document_id: int
    chunk: int
    score: float
    collection: str
    version: int


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessageIn] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    collections: list[str] | None = Field(default=None, min_length=1, max_length=16)
    """llmos extension: answer from these collections of the caller's tenant (retrieval-augmented)."""
    retrieval: RetrievalOptions | None = None
    """llmos extension: how to retrieve from ``collections``."""


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class ContentLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(BaseModel):
    content: list[ContentLogprob] | None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[dict[str, Any]] | None = None


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str | None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[ChatChoice]
    usage: Usage
    citations: list[Citation] | None = None
    """llmos extension, present when the request named ``collections``."""


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: Delta
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[ChunkChoice]
    usage: Usage | None = None
    citations: list[Citation] | None = None
    """llmos extension: on the chunks that finish a choice, when the request named ``collections``."""
