"""Security and tenancy: tenants, hashed API keys with scopes, limits, budgets, usage and audit.

The pieces:

* :mod:`llmos.security.principal`: :class:`Principal`, who is calling (tenant, scopes, model
  patterns, key prefix). Routes get one from ``llmos.server.auth.PrincipalDep`` and call
  ``principal.require("inference")`` / ``principal.require_model(name)``. Data a tenant owns is
  always filtered by ``principal.tenant``; another tenant's object is a NotFound (404), not 403.
* :mod:`llmos.security.service`: :class:`Security` (``kernel.security``): authentication,
  tenants, keys, limits (``admit``), usage rows and audit events, over the database.
* :mod:`llmos.security.redact`: secrets never reach a log line (installed by the server).

Recording usage from a route (embeddings, tasks, ...): a route that spends tokens declares it
with ``dependencies=[metered("operation")]``; every request to it then leaves one usage row
*automatically*, written by the server's metering middleware when the response ends, with the
status the caller got (rejected and failed requests included; a rejected one books no tokens),
its latency, tenant and key prefix. A route only adds what it knows, through
:mod:`llmos.server.metering`::

    from llmos.server.metering import admit, meter, metered

    @router.post("/v1/embeddings", dependencies=[metered("embedding")])
    async def create_embeddings(...):
        grant = await admit(request, principal, scope="embeddings", model=body.model)  # limits, 429s
        ...
        meter(request).report(model=body.model, digest=result.digest, prompt_tokens=result.prompt_tokens)

``admit`` checks the scope, the model pattern and the limits of the tenant, the key and the keys
that made it (rate, concurrency, budget), and gives the tenant's urgency ceiling; the slot it
takes is given back when the response ends. Outside HTTP, call
``kernel.security.record_usage(UsageRecord(...))`` directly.
"""

from __future__ import annotations

from llmos.domain.tenancy import ApiKey, AuditEvent, Quota, Tenant, UsageRecord, UsageSummary
from llmos.security.principal import ALL_SCOPES, ParentKey, Principal, Scope, anonymous

__all__ = [
    "ALL_SCOPES",
    "ApiKey",
    "AuditEvent",
    "ParentKey",
    "Principal",
    "Quota",
    "Scope",
    "Tenant",
    "UsageRecord",
    "UsageSummary",
    "anonymous",
]
