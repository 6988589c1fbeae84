"""The generation half of the engine protocol for engines that only embed: every call that would
generate text raises InvalidRequest (the kernel refuses such requests before they get here; an
engine used directly says the same)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llmos.engine.base import Admission, SeqSnapshot, SeqStatus, SequenceSpec, StepPlan, StepResult
from llmos.errors import InvalidRequest
from llmos.types import ChatMessage, SeqId


class EmbeddingOnly:
    """Mix-in: the generation methods of :class:`llmos.engine.base.Engine`, refusing."""

    def _refuse(self) -> InvalidRequest:
        return InvalidRequest("this model is an embedding model; it cannot generate text", param="model")

    def render_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        add_generation_prompt: bool = True,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> str:
        raise self._refuse()

    def can_admit(self, n_prompt_tokens: int) -> bool:
        return False

    def admit(self, spec: SequenceSpec) -> Admission:
        raise self._refuse()

    def step(self, plan: StepPlan | None = None) -> StepResult:
        if plan is not None and plan.tokens:
            raise self._refuse()
        return StepResult(outputs=(), n_tokens=0, elapsed_s=0.0)

    def abort(self, seq_id: SeqId) -> None:
        return None

    def preempt(self, seq_id: SeqId) -> SeqSnapshot:
        raise self._refuse()

    def restore(self, snapshot: SeqSnapshot) -> Admission:
        raise self._refuse()

    def sequences(self) -> list[SeqStatus]:
        return []
