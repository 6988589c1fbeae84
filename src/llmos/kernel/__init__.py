"""The kernel: the composition root that the server, the tests and ``llmos run`` hold."""

from __future__ import annotations

from llmos.kernel.factory import build_kernel
from llmos.kernel.generation import Generation
from llmos.kernel.kernel import Kernel, ModelDetails
from llmos.kernel.types import (
    ChoiceDelta,
    ChoiceResult,
    GenerationParams,
    GenerationResult,
    PullEvent,
    RequestMeta,
    ResidentModel,
    Usage,
)

__all__ = [
    "ChoiceDelta",
    "ChoiceResult",
    "Generation",
    "GenerationParams",
    "GenerationResult",
    "Kernel",
    "ModelDetails",
    "PullEvent",
    "RequestMeta",
    "ResidentModel",
    "Usage",
    "build_kernel",
]
