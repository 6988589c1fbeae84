"""The one typed request the kernel composes: a chat or a text completion, whoever asks.

The OpenAI routes, the task pipelines and ``llmos run`` all build an :class:`InferenceRequest`
and hand it to :meth:`llmos.kernel.Kernel.submit`, which does, once and in this order:
retrieval (``retrieval``), tool and response-format planning (``output``), residency,
submission to the model's engine core, and answer parsing (:class:`llmos.kernel.answer.Answer`).
Nothing here knows HTTP: a route maps its request body onto these values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmos.domain.data import Filters, SearchMode
from llmos.errors import InvalidRequest
from llmos.kernel.types import GenerationParams, RequestMeta
from llmos.scheduler.request import URGENCY_MAX, URGENCY_MIN, urgency_for_service_tier
from llmos.security.principal import Principal
from llmos.types import ChatMessage

__all__ = [
    "DEFAULT_TOP_K",
    "URGENCY_MAX",
    "URGENCY_MIN",
    "InferenceRequest",
    "OutputSpec",
    "RetrievalSpec",
    "requested_urgency",
]

DEFAULT_TOP_K = 4


def requested_urgency(priority: int | None, service_tier: str | None) -> int:
    """The urgency a request asks for (``URGENCY_MIN`` to ``URGENCY_MAX``): its ``priority``, else
    what its OpenAI ``service_tier`` means. Raises InvalidRequest for an unknown tier."""
    tier = urgency_for_service_tier(service_tier)
    return tier if priority is None else priority


@dataclass(frozen=True)
class RetrievalSpec:
    """Answer from these collections of the tenant's: the best ``top_k`` chunks for the last
    user message go into the system message, and the answer carries citations."""

    collections: tuple[str, ...]
    top_k: int = DEFAULT_TOP_K
    mode: SearchMode = "hybrid"
    filters: Filters | None = None


@dataclass(frozen=True)
class OutputSpec:
    """OpenAI's structured-output and tool-calling fields, as the client sent them (checked by
    :func:`llmos.structured.plan_chat`, which raises InvalidRequest naming the field)."""

    response_format: Mapping[str, Any] | None = None
    tools: Sequence[Mapping[str, Any]] | None = None
    tool_choice: str | Mapping[str, Any] | None = None
    parallel_tool_calls: bool | None = None


@dataclass(frozen=True)
class InferenceRequest:
    """One request for text: ``messages`` (a chat) or ``prompts`` (a text completion, ``n``
    choices per prompt), never both.

    ``meta``: tenant, urgency, deadline and keep-alive. ``principal``: the caller, when one is
    authenticated; retrieval then needs its ``data`` scope and hides the collections' embedding
    models it may not use (in-process callers pass None and may use everything).
    """

    model: str
    meta: RequestMeta
    messages: tuple[ChatMessage, ...] | None = None
    prompts: tuple[str, ...] | None = None
    sampling: GenerationParams = field(default_factory=GenerationParams)
    output: OutputSpec = field(default_factory=OutputSpec)
    retrieval: RetrievalSpec | None = None
    principal: Principal | None = None

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompts is None):
            raise InvalidRequest("a request has either messages (chat) or a prompt (completion)")
        if self.messages is not None and not self.messages:
            raise InvalidRequest("messages must not be empty", param="messages")
        if self.prompts is not None and not self.prompts:
            raise InvalidRequest("prompt must not be empty", param="prompt")
        if self.prompts is not None and (self.retrieval is not None or self.output != OutputSpec()):
            raise InvalidRequest("retrieval, tools and response formats apply to chats only")

    @property
    def is_chat(self) -> bool:
        return self.messages is not None
