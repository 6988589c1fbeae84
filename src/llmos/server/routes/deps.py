"""What every route reaches through the app, as FastAPI dependencies: the kernel and the
server's state (:mod:`llmos.server.state`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from llmos.kernel.kernel import Kernel
from llmos.server.state import ServerState, kernel, server_state

KernelDep = Annotated[Kernel, Depends(kernel)]
StateDep = Annotated[ServerState, Depends(server_state)]

__all__ = ["KernelDep", "ServerState", "StateDep", "kernel", "server_state"]
