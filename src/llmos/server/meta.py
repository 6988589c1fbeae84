"""Who asks, how urgently and by when: read from headers and OpenAI fields, into RequestMeta."""

from __future__ import annotations

from dataclasses import replace

from starlette.requests import Request

from llmos.errors import InvalidRequest
from llmos.kernel.inference_request import URGENCY_MAX, URGENCY_MIN, requested_urgency
from llmos.kernel.types import RequestMeta
from llmos.security.principal import Principal
from llmos.server.schemas.common import SamplingFields

TENANT_HEADER = "x-llmos-tenant"
PRIORITY_HEADER = "x-llmos-priority"
DEADLINE_HEADER = "x-llmos-deadline-ms"
PRIORITY_LOWERED_HEADER = "x-llmos-priority-lowered"
"""Sent when a request asked for more urgency than its tenant's ceiling: the urgency it ran at."""


def request_id(request: Request) -> str:
    """The id the kernel and scheduler know this request by: unique on this server, even when
    the client chose its ``X-Request-Id`` (which another tenant may choose too)."""
    rid = getattr(request.state, "request_key", None) or getattr(request.state, "request_id", None)
    return str(rid) if rid else "unknown"


def capped(meta: RequestMeta, ceiling: int | None) -> tuple[RequestMeta, dict[str, str]]:
    """``meta`` with its urgency lowered to ``ceiling`` (its tenant's; None: none), and the
    response header that says so when it was lowered. A request above its ceiling is served,
    not refused."""
    if ceiling is None or meta.urgency <= ceiling:
        return meta, {}
    return replace(meta, urgency=ceiling), {PRIORITY_LOWERED_HEADER: str(ceiling)}


def request_meta(
    request: Request, body: SamplingFields, caller: Principal, ceiling: int | None
) -> tuple[RequestMeta, dict[str, str]]:
    """The request's meta and the response headers it implies (see :func:`capped`).

    Tenant: the admitted ``caller``'s (a key's own; for anonymous callers and admins the one
    ``X-LLMOS-Tenant`` or ``user`` picked at admission). Urgency: ``X-LLMOS-Priority``, else
    ``priority``, else ``service_tier``, lowered to the tenant's ``ceiling``. Deadline:
    ``X-LLMOS-Deadline-Ms``."""
    urgency = requested_urgency(body.priority, body.service_tier)
    header = request.headers.get(PRIORITY_HEADER)
    if header is not None:
        urgency = _int_header(PRIORITY_HEADER, header)
        if not URGENCY_MIN <= urgency <= URGENCY_MAX:
            raise InvalidRequest(
                f"{PRIORITY_HEADER} must be between {URGENCY_MIN} and {URGENCY_MAX}", param=PRIORITY_HEADER
            )
    deadline_s = None
    raw_deadline = request.headers.get(DEADLINE_HEADER)
    if raw_deadline is not None:
        ms = _int_header(DEADLINE_HEADER, raw_deadline)
        if ms <= 0:
            raise InvalidRequest(
                f"{DEADLINE_HEADER} must be a positive number of milliseconds", param=DEADLINE_HEADER
            )
        deadline_s = ms / 1000.0
    meta = RequestMeta(
        request_id=request_id(request),
        tenant=caller.tenant,
        urgency=urgency,
        deadline_s=deadline_s,
        keep_alive=body.keep_alive,
    )
    return capped(meta, ceiling)


def _int_header(name: str, value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer", param=name) from None
