"""Usage metering and limits for HTTP requests: one usage row per metered request.

A route that spends tokens says so where it is declared, with the :func:`metered` dependency
(``@router.post(..., dependencies=[metered("chat")])``); the app's tests enumerate the routes
and fail for one that reaches a token-spending kernel operation without it.

:class:`MeteringMiddleware` wraps the app. For every request to a metered route it writes one
usage row when the response has ended (streams included): tenant, key prefix, model, digest,
tokens, latency and the status the caller got, rejected and failed requests included (a stream
that fails after its headers went out is booked with its error's status, not the 200 already
sent). A rejected request (4xx, see :func:`is_rejected`) is booked with no tokens. It also gives
back the limits slot that :func:`admit` took. Requests that never got past authentication leave
no row (they belong to no tenant).

Routes call :func:`admit` (scope, model, limits) and report what they know through
:func:`meter`; see the :mod:`llmos.security` docstring for the recipe.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import Depends
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmos.domain.tenancy import UsageRecord
from llmos.errors import LLMOSError, Overloaded
from llmos.kernel.answer import Answer
from llmos.kernel.kernel import Kernel
from llmos.security.principal import Principal
from llmos.security.service import Grant
from llmos.server.errors import mapping_for
from llmos.server.meta import TENANT_HEADER
from llmos.server.state import kernel as kernel_of
from llmos.server.state import server_state

log = logging.getLogger(__name__)

DRAIN_RETRY_S = 5.0
"""Retry-After for requests a draining server refuses (a replacement usually answers by then)."""


@dataclass
class Meter:
    """What one request used; filled by its route, written by the middleware at the end."""

    operation: str | None = None
    """None: not metered (no usage row)."""
    model: str = ""
    digest: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    principal: Principal | None = None
    """The caller the row is charged to (set by :func:`admit`; else the authenticated caller)."""
    grant: Grant | None = None
    source: Answer | None = None
    extra_prompt_tokens: int = 0
    """Tokens spent beside the main operation (e.g. embedding a RAG query), added to the prompt's."""
    failed_status: int | None = None
    """The status of an error that ended a response after its headers went out (a stream)."""

    def charge(self, tokens: int) -> None:
        """Add ``tokens`` spent on the caller's behalf (embedding documents or a query)."""
        self.extra_prompt_tokens += max(0, tokens)

    def fail(self, exc: LLMOSError) -> None:
        """Book the request with ``exc``'s status: it failed after a 200 was sent (mid-stream)."""
        self.failed_status = mapping_for(exc).status

    def report(
        self,
        *,
        model: str | None = None,
        digest: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
    ) -> None:
        """Record what the request used (call again to update; the last values win)."""
        if model is not None:
            self.model = model
        if digest is not None:
            self.digest = digest
        if prompt_tokens is not None:
            self.prompt_tokens = prompt_tokens
        if completion_tokens is not None:
            self.completion_tokens = completion_tokens

    def follow(self, answer: Answer) -> None:
        """Read the tokens from ``answer.usage`` when the response ends (streams included), with
        the tokens its retrieval spent, booked against the model version that answers.

        Its prompt is tokenized by now, so a budget reservation narrows to the exact prompt."""
        self.source = answer
        self.digest = answer.digest
        self.charge(answer.retrieval_tokens)
        if self.grant is not None and self.grant.reserved:
            try:
                prompt = answer.usage.prompt_tokens
            except Exception:  # accounting must not fail the request; the wider reservation stays
                log.debug("usage source failed", exc_info=True)
                return
            self.grant.refine(prompt, max(1, answer.n_choices))

    def tokens(self) -> tuple[int, int]:
        if self.source is not None:
            try:
                u = self.source.usage
                return u.prompt_tokens + self.extra_prompt_tokens, u.completion_tokens
            except Exception:  # usage is for accounting; a broken source must not fail the request
                log.debug("usage source failed", exc_info=True)
        return self.prompt_tokens + self.extra_prompt_tokens, self.completion_tokens


def meter(request: Request) -> Meter:
    """The request's meter (a detached one if the app runs without the middleware)."""
    found = request.scope.setdefault("state", {}).get("meter")
    if isinstance(found, Meter):
        return found
    m = Meter()
    request.scope["state"]["meter"] = m
    return m


class Metered:
    """The dependency that marks a route as spending tokens: its requests get usage rows under
    ``operation`` (a route may refine it, e.g. ``task:summarize``)."""

    def __init__(self, operation: str) -> None:
        self.operation = operation

    def __call__(self, request: Request) -> None:
        meter(request).operation = self.operation


def metered(operation: str) -> Any:
    """``dependencies=[metered("chat")]``: this route spends tokens (see :class:`Metered`)."""
    return Depends(Metered(operation))


def is_metered(dependencies: Any) -> bool:
    """Whether a route's dependencies include the :func:`metered` marker."""
    return any(isinstance(getattr(d, "dependency", None), Metered) for d in dependencies)


async def admit(
    request: Request,
    principal: Principal,
    *,
    scope: str,
    model: str | None = None,
    max_tokens: int | None = None,
    user: str | None = None,
    generates: bool = True,
    upper_bound_tokens: int | None = None,
) -> Grant:
    """Check the caller may do this (scope, model pattern) and is within its limits.

    ``user`` (OpenAI's field) re-points an anonymous or admin caller that sent no
    ``X-LLMOS-Tenant`` to the tenant it names, if there is one (else it is only an end-user's
    label). ``generates``: the request generates text (its budget reservation covers
    ``max_tokens`` per choice); ``upper_bound_tokens``: the most tokens it may use, when the route
    knows better than the request body's size. Returns the grant (its ``max_tokens``: the
    tightest per-request cap, to apply when the body names none). Raises Forbidden,
    InvalidRequest, RateLimited or BudgetExhausted.
    """
    m = meter(request)
    if model:
        m.model = model
    if server_state(request).lifecycle.draining:
        raise Overloaded(
            "the server is shutting down and takes no new requests; retry on another replica "
            "or once it is back",
            retry_after=DRAIN_RETRY_S,
        )
    security = kernel_of(request).security
    if user and not request.headers.get(TENANT_HEADER) and (principal.is_anonymous or principal.is_admin):
        principal = await asyncio.to_thread(security.acting_for_user, principal, user)
    m.principal = principal
    principal.require(scope)
    if model:
        principal.require_model(model)
    raw = b""
    if upper_bound_tokens is None:
        try:
            raw = await request.body()  # already read (and kept) by the route's body parsing
        except RuntimeError:
            raw = b""

    def estimate(allowance: int) -> int:
        if upper_bound_tokens is not None:
            return upper_bound_tokens
        return upper_bound(raw, allowance if generates else 0)

    try:
        grant = await asyncio.to_thread(security.admit, principal, max_tokens=max_tokens, estimate=estimate)
    except LLMOSError as exc:
        kernel_of(request).metrics.limit_rejected(principal.tenant, exc.code)
        raise
    m.grant = grant
    return grant


def upper_bound(body: bytes, allowance: int) -> int:
    """The most tokens a request with JSON ``body`` may use, before its prompt is tokenized:
    every prompt token stands for at least one byte of the body, and each sequence it runs
    (``n`` per prompt) generates at most ``allowance`` tokens."""
    if allowance <= 0:
        return len(body)
    try:
        fields = json.loads(body) if body else {}
    except ValueError:
        fields = {}
    if not isinstance(fields, dict):
        fields = {}
    n = fields.get("n")
    choices = n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1
    prompt = fields.get("prompt")
    if isinstance(prompt, list) and prompt and not all(isinstance(t, int) for t in prompt):
        choices *= len(prompt)  # several prompts, each with its n choices
    return len(body) + choices * allowance


CLIENT_CLOSED = 499


def is_rejected(status: int) -> bool:
    """A 4xx: the request was refused (bad input, no permission, over a limit) and books no
    tokens; except 499, a client that went away while it was being served."""
    return 400 <= status < 500 and status != CLIENT_CLOSED


class MeteringMiddleware:
    """Pure ASGI (streams pass through): meters requests and releases their limits slot."""

    def __init__(self, app: ASGIApp, kernel: Kernel) -> None:
        self.app = app
        self.kernel = kernel

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        m = Meter()
        state["meter"] = m
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            with anyio.CancelScope(shield=True):
                await self._finish(state, m, status, time.perf_counter() - started)

    async def _finish(self, state: dict[str, Any], m: Meter, status: int, elapsed: float) -> None:
        prompt, completion = m.tokens()
        if is_rejected(m.failed_status or status):
            # Refused for the caller's input or limits: nothing is charged, even a prompt the
            # engine tokenized before refusing it.
            prompt = completion = 0
        try:
            await self._record(state, m, status, elapsed, prompt, completion)
        finally:
            # Only now, with the tokens in the database, may the budget reservation go.
            if m.grant is not None:
                m.grant.finish(prompt + completion)

    async def _record(
        self, state: dict[str, Any], m: Meter, status: int, elapsed: float, prompt: int, completion: int
    ) -> None:
        who = m.principal or state.get("principal")
        if m.operation is None or not isinstance(who, Principal):
            return
        security = self.kernel.security
        record = UsageRecord(
            request_id=str(state.get("request_id") or ""),
            tenant=who.tenant,
            operation=m.operation,
            status=m.failed_status or status,
            time=security.now(),
            key_id=who.key_id,
            key_prefix=who.key_prefix,
            model=m.model,
            digest=m.digest,
            prompt_tokens=prompt,
            completion_tokens=completion,
            latency_ms=int(elapsed * 1000),
        )
        try:
            await asyncio.to_thread(security.record_usage, record)
        except Exception as exc:  # accounting must never fail the request it accounts for
            log.warning("could not record usage of request %s: %s", record.request_id, exc)
