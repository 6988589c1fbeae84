"""What llmos tells its operators: Prometheus metrics, structured logs with request ids, the access log.

Sits below the kernel: the kernel holds a :class:`Metrics` (injected through ``build_kernel``)
and reports events to it where they happen; the server exposes it at ``/metrics``.
"""

from __future__ import annotations

from llmos.observability.logging import (
    RequestLog,
    bind_request,
    configure_logging,
    current_request,
    reset_request,
)
from llmos.observability.metrics import Metrics, RequestObservation

__all__ = [
    "Metrics",
    "RequestLog",
    "RequestObservation",
    "bind_request",
    "configure_logging",
    "current_request",
    "reset_request",
]
