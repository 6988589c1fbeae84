"""Shapes shared by the OpenAI-compatible routes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ServiceTier = Literal["auto", "default", "flex", "priority", "scale"]


class RequestModel(BaseModel):
    """Unknown fields are ignored, as OpenAI does."""

    model_config = ConfigDict(extra="ignore")


class DomainView(BaseModel):
    """A response read from a domain object's attributes (``View.model_validate(obj)``); a field
    whose attribute is named otherwise says so with ``Field(validation_alias=...)`` (an
    :class:`~pydantic.AliasPath` for a nested one). Its own field names validate too, as FastAPI
    checks what a route returns."""

    model_config = ConfigDict(from_attributes=True, populate_by_name=True)


class StreamOptions(RequestModel):
    include_usage: bool = False


class SamplingFields(RequestModel):
    """The sampling fields chat and text completions share."""

    model: str = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=128)
    stop: str | list[str] | None = None
    seed: int | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    user: str | None = Field(default=None, max_length=256)
    service_tier: ServiceTier | None = None
    priority: int | None = Field(default=None, ge=0, le=9)
    """llmos extension: urgency 0-9, higher is more urgent."""
    keep_alive: str | float | None = None
    """llmos extension (Ollama's meaning): how long the model stays loaded after this request."""
    ignore_eos: bool = False
    """llmos extension (vLLM's name): generate past end-of-sequence, until max_tokens or a stop string
    (benchmarks use it for exact output lengths)."""
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = Field(
        default=None, max_length=1024
    )
    """Token id (as a string) → bias added to its logit before sampling, from -100 (never) to 100."""

    @field_validator("logit_bias")
    @classmethod
    def _token_ids(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None:
            for key in value:
                if not key.isdigit() or len(key) > 9:
                    raise ValueError(f"keys must be token ids (non-negative integers), not {key[:20]!r}")
        return value

    def logit_bias_pairs(self) -> tuple[tuple[int, float], ...]:
        return tuple(sorted((int(k), float(v)) for k, v in (self.logit_bias or {}).items()))


class PromptTokensDetails(BaseModel):
    cached_tokens: int = 0


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails = Field(default_factory=PromptTokensDetails)


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
