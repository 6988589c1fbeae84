"""Requests that load the server itself (not the model): shared by tests and ``bench/``."""

from __future__ import annotations

from typing import Any

from llmos.server.schemas.chat import MAX_TOOLS

TOOL_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 40},
        "days": {"type": "integer", "minimum": 1, "maximum": 14},
        "units": {"enum": ["metric", "imperial"]},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 4},
        "when": {"type": "object", "properties": {"from": {"type": "string"}, "to": {"type": "string"}}},
    },
    "required": ["city", "days"],
}


def tools(n: int = MAX_TOOLS) -> list[dict[str, Any]]:
    """``n`` function tools with a parameters schema each: the most a chat request may carry is
    the heaviest one the server plans."""
    return [
        {
            "type": "function",
            "function": {"name": f"tool_{i}", "description": f"Tool {i}.", "parameters": TOOL_PARAMETERS},
        }
        for i in range(n)
    ]
