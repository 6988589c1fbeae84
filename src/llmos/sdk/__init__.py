"""The llmos Python SDK: ``Client`` and ``AsyncClient`` over the server's HTTP API (httpx).

It imports nothing from the server, the engine or storage. One core (``_core``: requests,
answers, errors, retries, pagination, streams) under two thin shells (``Client``, ``AsyncClient``).
"""

from __future__ import annotations

from llmos.sdk._core import RetryPolicy
from llmos.sdk.async_client import AsyncClient, AsyncModelHandle, AsyncModels
from llmos.sdk.client import Client, ModelHandle, Models
from llmos.sdk.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    LLMOSClientError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
)
from llmos.sdk.types import Generation, Model, ModelDetail, Progress, RunningModel, Usage

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncModelHandle",
    "AsyncModels",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConflictError",
    "Generation",
    "LLMOSClientError",
    "Model",
    "ModelDetail",
    "ModelHandle",
    "Models",
    "NotFoundError",
    "PermissionDeniedError",
    "Progress",
    "RateLimitError",
    "RetryPolicy",
    "RunningModel",
    "ServerError",
    "ServiceUnavailableError",
    "Usage",
]
