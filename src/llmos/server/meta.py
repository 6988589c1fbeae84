"""Who asks, how urgently and by when: read from headers and OpenAI fields, into RequestMeta."""

from __future__ import annotations

from starlette.requests import Request

from llmos.errors import InvalidRequest
from llmos.kernel.types import RequestMeta
from llmos.scheduler.request import URGENCY_MAX, URGENCY_MIN, urgency_for_service_tier
from llmos.security.principal import Principal
from llmos.server.schemas.common import SamplingFields

TENANT_HEADER = "x-llmos-tenant"
PRIORITY_HEADER = "x-llmos-priority"
DEADLINE_HEADER = "x-llmos-deadline-ms"


def request_id(request: Request) -> str:
    rid = getattr(request.state, "request_id", None)
    return str(rid) if rid else "unknown"


def request_meta(request: Request, body: SamplingFields, anonymous_tenant: str) -> RequestMeta:
    """Tenant: an API key's own tenant; for anonymous callers (auth off) and admins,
    ``X-LLMOS-Tenant``, else ``user``, else their tenant (the anonymous one). Urgency:
    ``X-LLMOS-Priority``, else ``priority``, else ``service_tier``. Deadline: ``X-LLMOS-Deadline-Ms``."""
    caller = getattr(request.state, "principal", None)
    if isinstance(caller, Principal) and not (caller.is_anonymous or caller.is_admin):
        tenant = caller.tenant
    else:
        fallback = caller.tenant if isinstance(caller, Principal) else anonymous_tenant
        tenant = request.headers.get(TENANT_HEADER) or body.user or fallback
    urgency = urgency_for_service_tier(body.service_tier)
    if body.priority is not None:
        urgency = body.priority
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
    return RequestMeta(
        request_id=request_id(request),
        tenant=tenant,
        urgency=urgency,
        deadline_s=deadline_s,
        keep_alive=body.keep_alive,
    )


def _int_header(name: str, value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer", param=name) from None
