"""Per-sequence state: tokens, KV position, incremental detokenization, stop strings, limits.

A sequence's tokens are ``prompt + generated``; the first ``n_past`` of them are in the KV
cache (the first ``n_kv`` in the main context's slot, the rest in the solo lane's context while
it decodes there, see ``solo.py``). Prefill and decode are the same operation: feed the unfed
tail, and sample once the last fed token is the last token of the sequence.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from llmos.engine.base import SequenceSpec
from llmos.engine.llamacpp.sampling import SamplerChain
from llmos.types import FinishReason, TokenId


class StopMatcher:
    """Finds stop strings in streamed text, holding back any tail that may begin one."""

    def __init__(self, stops: tuple[str, ...], held: str = "") -> None:
        self.stops = tuple(s for s in stops if s)
        self.held = held

    def feed(self, text: str) -> tuple[str, bool]:
        """Returns (text safe to emit, whether a stop string was found)."""
        if not self.stops:
            return text, False
        buf = self.held + text
        cut = -1
        for s in self.stops:
            i = buf.find(s)
            if i >= 0 and (cut < 0 or i < cut):
                cut = i
        if cut >= 0:
            self.held = ""
            return buf[:cut], True
        keep = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(buf)), keep, -1):
                if buf.endswith(s[:k]):
                    keep = k
                    break
        self.held = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep], False

    def flush(self) -> str:
        out, self.held = self.held, ""
        return out


@dataclass
class TokenEvent:
    text: str
    finish: FinishReason | None


class Sequence:
    """One admitted sequence in one slot (a llama.cpp seq id)."""

    def __init__(
        self,
        spec: SequenceSpec,
        slot: int,
        sampler: SamplerChain,
        *,
        order: int,
        tokens: list[TokenId] | None = None,
        n_past: int = 0,
        cached_tokens: int = 0,
        pending_text: str = "",
        pending_bytes: bytes = b"",
    ) -> None:
        self.spec = spec
        self.slot = slot
        self.sampler = sampler
        self.order = order
        self.n_prompt = len(spec.prompt)
        self.tokens: list[TokenId] = list(spec.prompt) if tokens is None else tokens
        self.n_past = n_past
        self.cached_tokens = cached_tokens
        self.reported_cached = False
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        if pending_bytes:
            self._decoder.setstate((pending_bytes, 0))
        self.stop = StopMatcher(spec.params.stop, pending_text)
        self.finish_reason: FinishReason | None = None
        self.n_main: int | None = None
        """While the solo lane decodes this sequence: how many of its ``n_past`` cells its main
        slot still holds (None: all of them)."""

    @property
    def seq_id(self) -> str:
        return self.spec.seq_id

    @property
    def n_generated(self) -> int:
        return len(self.tokens) - self.n_prompt

    @property
    def generated(self) -> list[TokenId]:
        return self.tokens[self.n_prompt :]

    @property
    def n_kv(self) -> int:
        """The cells of this sequence's KV held in its slot of the main context."""
        return self.n_past if self.n_main is None else self.n_main

    @property
    def unfed(self) -> int:
        return len(self.tokens) - self.n_past

    @property
    def in_prefill(self) -> bool:
        return self.n_past < self.n_prompt

    @property
    def pending_bytes(self) -> bytes:
        return bytes(self._decoder.getstate()[0])

    def next_chunk(self, limit: int) -> tuple[list[TokenId], bool]:
        """The next tokens to feed (at most ``limit``) and whether the step will sample after them."""
        n = min(limit, self.unfed)
        chunk = self.tokens[self.n_past : self.n_past + n]
        return chunk, self.n_past + n == len(self.tokens)

    def push(self, token: TokenId, *, is_eog: bool, piece: bytes) -> TokenEvent:
        """Record a sampled token; returns the text it releases and the finish reason, if any."""
        self.tokens.append(token)
        params = self.spec.params
        if is_eog and not params.ignore_eos:
            return TokenEvent(self._final_text(), "stop")
        text, stopped = self.stop.feed(self._decoder.decode(piece))
        if stopped:
            return TokenEvent(text, "stop")
        if self.n_generated >= params.max_tokens:
            return TokenEvent(text + self._final_text(), "length")
        return TokenEvent(text, None)

    def finish_text(self) -> str:
        """The text still held back (partial UTF-8, a possible stop-string start), on a finish
        decided outside :meth:`push` (the sequence's KV is full)."""
        return self._final_text()

    def _final_text(self) -> str:
        tail, stopped = self.stop.feed(self._decoder.decode(b"", final=True))
        return tail if stopped else tail + self.stop.flush()
