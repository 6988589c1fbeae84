"""What the scheduler is asked to run: a sequence to generate, and the class it belongs to."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmos.engine.base import SequenceSpec
from llmos.errors import InvalidRequest
from llmos.types import TenantId

URGENCY_MIN = 0
URGENCY_MAX = 9
DEFAULT_URGENCY = 5

_SERVICE_TIERS: dict[str, int] = {"priority": 8, "default": 5, "auto": 5, "flex": 2}


def urgency_for_service_tier(tier: str | None) -> int:
    """Map OpenAI's ``service_tier`` to an urgency: priority → 8, default/auto/None → 5, flex → 2.

    Raises InvalidRequest for an unknown tier.
    """
    if tier is None:
        return DEFAULT_URGENCY
    try:
        return _SERVICE_TIERS[tier]
    except KeyError:
        raise InvalidRequest(
            f"unknown service_tier {tier!r}; expected one of {sorted(_SERVICE_TIERS)}", param="service_tier"
        ) from None


@dataclass(frozen=True)
class RequestClass:
    """Who asks and how badly: tenant, urgency (0..9, higher is more urgent), optional deadline.

    ``deadline`` is an absolute time on the scheduler's clock (monotonic seconds), or None.
    """

    tenant: TenantId
    urgency: int = DEFAULT_URGENCY
    deadline: float | None = None

    def __post_init__(self) -> None:
        if not URGENCY_MIN <= self.urgency <= URGENCY_MAX:
            raise InvalidRequest(
                f"urgency must be between {URGENCY_MIN} and {URGENCY_MAX}, got {self.urgency}",
                param="priority",
            )
        if not self.tenant:
            raise InvalidRequest("the tenant must not be empty", param="user")


@dataclass(frozen=True)
class GenerationRequest:
    """One sequence to generate. ``arrival`` is on the scheduler's clock; None: stamped at submit."""

    request_id: str
    spec: SequenceSpec
    cls: RequestClass
    arrival: float | None = field(default=None)

    def check_fits(self, n_ctx: int) -> None:
        """Raises InvalidRequest when the prompt is empty or can never fit ``n_ctx`` KV cells."""
        n = len(self.spec.prompt)
        if not n:
            raise InvalidRequest("the prompt is empty", param="prompt")
        if n + 1 > n_ctx:
            raise InvalidRequest(
                f"the prompt has {n} tokens; this model's context holds {n_ctx}", param="prompt"
            )
