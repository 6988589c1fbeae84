"""Server-sent events and NDJSON framing."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

DONE = b"data: [DONE]\n\n"


def _json(payload: BaseModel | dict[str, Any]) -> str:
    if isinstance(payload, BaseModel):
        return payload.model_dump_json(exclude_none=False)
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def sse_event(payload: BaseModel | dict[str, Any]) -> bytes:
    """One ``data:`` event carrying ``payload`` as JSON."""
    return f"data: {_json(payload)}\n\n".encode()


def ndjson_line(payload: BaseModel | dict[str, Any]) -> bytes:
    return (_json(payload) + "\n").encode()
