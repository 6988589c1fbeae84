"""What every route reaches through the app: the kernel and the server's settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Request

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


KernelDep = Annotated[Kernel, Depends(kernel)]
StateDep = Annotated[ServerState, Depends(server_state)]
