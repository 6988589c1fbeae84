"""The HTTP server: OpenAI-compatible routes, the admin API, health; built by ``create_app``."""

from __future__ import annotations

from llmos.server.app import create_app
from llmos.server.lifecycle import Lifecycle

__all__ = ["Lifecycle", "create_app"]
