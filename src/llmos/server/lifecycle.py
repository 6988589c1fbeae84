"""The server's readiness: starting → ready → draining."""

from __future__ import annotations

from typing import Literal

Phase = Literal["starting", "ready", "draining"]


class Lifecycle:
    def __init__(self) -> None:
        self.phase: Phase = "starting"
        self.detail = "starting"

    @property
    def ready(self) -> bool:
        return self.phase == "ready"

    def mark_ready(self) -> None:
        if self.phase == "starting":
            self.phase = "ready"
            self.detail = "ready"

    def mark_starting(self, detail: str) -> None:
        if self.phase == "starting":
            self.detail = detail

    def mark_draining(self) -> None:
        self.phase = "draining"
        self.detail = "draining: finishing in-flight requests"
