"""The kernel: the composition root that the server, the tests and ``llmos run`` hold."""

from __future__ import annotations

from llmos.kernel.answer import Answer
from llmos.kernel.factory import build_kernel
from llmos.kernel.generation import Generation
from llmos.kernel.inference_request import InferenceRequest, OutputSpec, RetrievalSpec
from llmos.kernel.kernel import Kernel, ModelDetails
from llmos.kernel.types import (
    AnswerChoice,
    AnswerResult,
    ChoiceDelta,
    ChoiceResult,
    Citation,
    GenerationParams,
    GenerationResult,
    PullEvent,
    RequestMeta,
    ResidentModel,
    Usage,
)

__all__ = [
    "Answer",
    "AnswerChoice",
    "AnswerResult",
    "ChoiceDelta",
    "ChoiceResult",
    "Citation",
    "Generation",
    "GenerationParams",
    "GenerationResult",
    "InferenceRequest",
    "Kernel",
    "ModelDetails",
    "OutputSpec",
    "PullEvent",
    "RequestMeta",
    "ResidentModel",
    "RetrievalSpec",
    "Usage",
    "build_kernel",
]
