"""Task pipelines: summarize, translate, classify, sentiment, extract_entities.

Pre-processing (:mod:`.text`: HTML stripping, NFKC and whitespace normalization, length
limits), the task definitions (:mod:`.definitions`: prompt, JSON Schema, formatting) and the
pipeline (:mod:`.pipeline`) that runs them over an injected ``generate`` callable. Nothing here
imports the kernel; :mod:`llmos.kernel.tasks` injects the kernel's chat path.
"""

from __future__ import annotations

from llmos.tasks.definitions import TASKS, TaskDefinition, TaskSpec, get_task
from llmos.tasks.pipeline import (
    Generate,
    GenerateCall,
    Generated,
    InputReport,
    Measure,
    PromptSize,
    TaskRequest,
    TaskResult,
    run_task,
)
from llmos.tasks.text import (
    InputFormat,
    PreparedText,
    looks_like_html,
    normalize,
    prepare,
    strip_html,
    truncate,
)

__all__ = [
    "TASKS",
    "Generate",
    "GenerateCall",
    "Generated",
    "InputFormat",
    "InputReport",
    "Measure",
    "PreparedText",
    "PromptSize",
    "TaskDefinition",
    "TaskRequest",
    "TaskResult",
    "TaskSpec",
    "get_task",
    "looks_like_html",
    "normalize",
    "prepare",
    "run_task",
    "strip_html",
    "truncate",
]
