"""What the app holds for every request: the kernel and the server's lifecycle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from fastapi import Request

from llmos.kernel.kernel import Kernel
from llmos.server.lifecycle import Lifecycle


@dataclass(frozen=True)
class ServerState:
    kernel: Kernel
    lifecycle: Lifecycle


def server_state(request: Request) -> ServerState:
    return cast(ServerState, request.app.state.llmos)


def kernel(request: Request) -> Kernel:
    return server_state(request).kernel
