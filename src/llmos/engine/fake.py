"""A deterministic engine with no model, for tests of everything above the engine.

``FakeEngine`` keeps the engine protocol's promises with real bookkeeping, so a scheduler or a
server driving it meets the same constraints as on llama.cpp:

* **Tokens.** Ids 0–4 are specials (``<pad>``, ``<s>`` = BOS, ``</s>`` = EOS, ``<|im_start|>``,
  ``<|im_end|>``); every other token is one UTF-8 byte ``b`` with id ``16 + b``. Tokenizing is
  therefore reversible: ``detokenize(tokenize(t, add_special=False)) == t``.
* **Chat.** ChatML: ``<|im_start|>{role}\\n{content}<|im_end|>\\n`` per message, then
  ``<|im_start|>assistant\\n`` when a generation prompt is asked for.
* **Generation.** The i-th generated token is the byte at ``(offset + i) mod len(LOREM)`` of a fixed
  lorem text, where ``offset`` hashes the prompt tokens (and the seed unless ``temperature == 0``).
  Output is a pure function of (prompt, seed, position): a preempted and restored sequence
  continues exactly as an uninterrupted one. ``logit_bias`` applies to pretend logits: the lorem
  byte due scores 16, the 15 after it 15 down to 1, every other token 0; the highest biased
  score wins (so -100 on the due byte gives the next one, +100 on any token forces it). ``max_tokens``, stop strings (held back while they
  might still match), ``ignore_eos`` and logprobs are honoured; with ``LoadSpec.extra["eos_after"]
  = n`` the sequence samples EOS after ``n`` tokens.
* **Slots and KV.** ``n_slots`` slots and ``n_ctx`` KV cells shared by all sequences; a sequence
  holds one cell per prompt token read and per generated token fed back. A new sequence whose
  prompt shares a prefix with a resident one reports that prefix as ``cached_tokens`` and skips
  reading it (its cells are still counted against the owner, conservatively, as a copy).
* **Steps.** ``step(plan)`` feeds ``plan.tokens[seq]`` prompt tokens to a prefilling sequence (the
  chunk that completes the prompt also samples the first token) or one token to a decoding one;
  the plan's total must fit ``n_batch``. Every plan is appended to :attr:`FakeEngine.plans`.
* **Cost.** Each step "costs" ``step_cost_s + token_cost_s * n_tokens`` (``LoadSpec.extra``
  keys), spent through the injected ``sleep`` (real ``time.sleep`` by default; tests inject one
  that advances a fake clock). Both default to 0.
* **Failures.** :meth:`kill` makes every later call raise ``EngineDeadError`` (as a dead worker
  does); ``extra["die_after_steps"]`` does so after that many steps; :meth:`fail_sequence` makes
  one sequence end with ``finish_reason="error"`` at its next step.

Constructible with no arguments; ``load(LoadSpec(...))`` configures it (the model path is not read).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmos.engine.base import (
    AdapterSet,
    Admission,
    EngineHealth,
    EngineInfo,
    LoadSpec,
    SeqOutput,
    SeqSnapshot,
    SeqStatus,
    SequenceSpec,
    StepPlan,
    StepResult,
    TokenLogprob,
)
from llmos.errors import EngineDeadError, EngineError, EngineGenerateError, InvalidRequest
from llmos.types import ChatMessage, FinishReason, SeqId, TokenId

logger = logging.getLogger(__name__)

PAD, BOS, EOS, IM_START, IM_END = 0, 1, 2, 3, 4
SPECIALS: dict[int, str] = {
    PAD: "<pad>",
    BOS: "<s>",
    EOS: "</s>",
    IM_START: "<|im_start|>",
    IM_END: "<|im_end|>",
}
BYTE_OFFSET = 16
N_VOCAB = BYTE_OFFSET + 256

LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore "
    "et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut "
    "aliquip ex ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse cillum "
    "dolore eu fugiat nulla pariatur. Excepteur sint occaecat cupidatat non proident, sunt in culpa qui "
    "officia deserunt mollit anim id est laborum. "
)


def _biased(at: int, bias: Mapping[TokenId, float]) -> TokenId:
    """The token the fake's pretend logits (see the module) pick at lorem position ``at``."""
    base: dict[TokenId, float] = {}
    for k in range(16):
        base.setdefault(BYTE_OFFSET + ord(LOREM[(at + k) % len(LOREM)]), 16.0 - k)
    scores = {t: base.get(t, 0.0) + bias.get(t, 0.0) for t in {*base, *bias}}
    due = BYTE_OFFSET + ord(LOREM[at])
    return max(scores, key=lambda t: (scores[t], t == due, -t))


def _digest(*parts: object) -> int:
    h = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(h[:8], "little")


@dataclass
class _Seq:
    spec: SequenceSpec
    slot: int
    cached_tokens: int
    prompt_done: int
    generated: list[TokenId] = field(default_factory=list)
    fed_generated: int = 0
    text: str = ""
    emitted: int = 0
    fail: str | None = None
    order: int = 0

    @property
    def kv_used(self) -> int:
        return self.prompt_done + self.fed_generated

    @property
    def prefilling(self) -> bool:
        return self.prompt_done < len(self.spec.prompt)


class FakeEngine:
    """The deterministic engine described in the module docstring. Not thread-safe."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._info: EngineInfo | None = None
        self._seqs: dict[SeqId, _Seq] = {}
        self._dead: str | None = None
        self._steps = 0
        self._step_cost = 0.0
        self._token_cost = 0.0
        self._eos_after: int | None = None
        self._die_after: int | None = None
        self._order = 0
        self.plans: list[dict[SeqId, int]] = []
        """Every plan stepped, in order (``seq_id -> tokens fed``), for tests."""

    # -- lifecycle ---------------------------------------------------------------------------

    def load(self, spec: LoadSpec) -> EngineInfo:
        extra = dict(spec.extra)
        if spec.n_slots < 1 or spec.n_ctx < 1 or spec.n_batch < 1:
            raise InvalidRequest("n_slots, n_ctx and n_batch must be positive", param="spec")
        self._step_cost = float(extra.get("step_cost_s", 0.0))
        self._token_cost = float(extra.get("token_cost_s", 0.0))
        eos_after = extra.get("eos_after")
        self._eos_after = None if eos_after is None else int(eos_after)
        die_after = extra.get("die_after_steps")
        self._die_after = None if die_after is None else int(die_after)
        dim = int(extra.get("embedding_dim", 32))
        self._info = EngineInfo(
            model_path=str(spec.model_path),
            n_ctx=spec.n_ctx,
            n_slots=spec.n_slots,
            n_batch=spec.n_batch,
            n_vocab=N_VOCAB,
            n_ctx_train=max(spec.n_ctx, 8192),
            eos_token_ids=(EOS, IM_END),
            bos_token=SPECIALS[BOS],
            eos_token=SPECIALS[EOS],
            chat_template=spec.chat_template,
            embedding_dim=dim,
            backend="fake",
        )
        return self._info

    @property
    def info(self) -> EngineInfo:
        if self._info is None:
            raise EngineError("the fake engine is not loaded")
        return self._info

    def unload(self) -> None:
        self._seqs.clear()
        self._info = None

    def kill(self, reason: str = "fake engine killed") -> None:
        """From now on every call raises EngineDeadError, as a dead worker would."""
        self._dead = reason

    def fail_sequence(self, seq_id: SeqId, message: str = "fake generation failure") -> None:
        """The sequence ends with ``finish_reason="error"`` at its next step."""
        self._live(seq_id).fail = message

    # -- text --------------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[TokenId]:
        out: list[TokenId] = [BOS] if add_special else []
        i = 0
        while i < len(text):
            if parse_special:
                hit = next((tid for tid, s in SPECIALS.items() if text.startswith(s, i)), None)
                if hit is not None:
                    out.append(hit)
                    i += len(SPECIALS[hit])
                    continue
            out.extend(BYTE_OFFSET + b for b in text[i].encode("utf-8"))
            i += 1
        return out

    def detokenize(self, tokens: Sequence[TokenId]) -> str:
        parts: list[str] = []
        buf = bytearray()
        for t in tokens:
            if t >= BYTE_OFFSET:
                buf.append(t - BYTE_OFFSET)
                continue
            if buf:
                parts.append(buf.decode("utf-8", errors="replace"))
                buf.clear()
            parts.append(SPECIALS.get(t, ""))
        if buf:
            parts.append(buf.decode("utf-8", errors="replace"))
        return "".join(parts)

    def render_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        add_generation_prompt: bool = True,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> str:
        parts: list[str] = []
        if tools:
            parts.append(f"<|im_start|>tools\n{json.dumps(list(tools), sort_keys=True)}<|im_end|>\n")
        for m in messages:
            content = m.get("content") or ""
            if isinstance(content, list):
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            parts.append(f"<|im_start|>{m.get('role', 'user')}\n{content}<|im_end|>\n")
        if add_generation_prompt:
            parts.append("<|im_start|>assistant\n")
        return "".join(parts)

    # -- slots -------------------------------------------------------------------------------

    def _kv_free(self) -> int:
        return self.info.n_ctx - sum(s.kv_used + self._reserved(s) for s in self._seqs.values())

    @staticmethod
    def _reserved(s: _Seq) -> int:
        # A prefilling sequence's unread prompt is reserved up front, as admission promised it.
        return len(s.spec.prompt) - s.prompt_done

    def _free_slot(self) -> int | None:
        used = {s.slot for s in self._seqs.values()}
        return next((i for i in range(self.info.n_slots) if i not in used), None)

    def can_admit(self, n_prompt_tokens: int) -> bool:
        self._check_alive()
        return self._free_slot() is not None and self._kv_free() >= n_prompt_tokens

    def admit(self, spec: SequenceSpec) -> Admission:
        self._check_alive()
        if not spec.prompt:
            raise InvalidRequest("the prompt is empty", param="prompt")
        if spec.seq_id in self._seqs:
            raise InvalidRequest(f"sequence {spec.seq_id!r} is already resident", param="seq_id")
        for t in spec.prompt:
            if not 0 <= t < N_VOCAB:
                raise InvalidRequest(f"token id {t} is outside the vocabulary", param="prompt")
        for t, _ in spec.params.logit_bias:
            if not 0 <= t < N_VOCAB:
                raise InvalidRequest(
                    f"logit_bias names token id {t}; this model's vocabulary has ids 0 to {N_VOCAB - 1}",
                    param="logit_bias",
                )
        slot = self._free_slot()
        if slot is None or self._kv_free() < len(spec.prompt):
            raise EngineGenerateError("no free slot or KV cells for the sequence; ask can_admit first")
        cached = self._shared_prefix(spec.prompt, spec.adapters)
        self._order += 1
        self._seqs[spec.seq_id] = _Seq(
            spec=spec, slot=slot, cached_tokens=cached, prompt_done=cached, order=self._order
        )
        return Admission(seq_id=spec.seq_id, slot=slot, cached_tokens=cached)

    def _shared_prefix(self, prompt: tuple[TokenId, ...], adapters: AdapterSet) -> int:
        best = 0
        for s in self._seqs.values():
            if s.spec.adapters != adapters:  # KV made under another adapter set is not reusable
                continue
            kv = s.spec.prompt[: s.prompt_done] + tuple(s.generated[: s.fed_generated])
            n = 0
            for a, b in zip(kv, prompt, strict=False):
                if a != b:
                    break
                n += 1
            best = max(best, n)
        # At least one prompt token is always read, so the first sample has logits.
        return min(best, len(prompt) - 1)

    def abort(self, seq_id: SeqId) -> None:
        self._seqs.pop(seq_id, None)

    def sequences(self) -> list[SeqStatus]:
        self._check_alive()
        return [
            SeqStatus(
                seq_id=sid,
                slot=s.slot,
                phase="prefill" if s.prefilling else "decode",
                prompt_tokens=len(s.spec.prompt),
                prompt_remaining=len(s.spec.prompt) - s.prompt_done,
                completion_tokens=len(s.generated),
                kv_tokens=s.kv_used,
            )
            for sid, s in self._seqs.items()
        ]

    # -- preemption --------------------------------------------------------------------------

    def preempt(self, seq_id: SeqId) -> SeqSnapshot:
        self._check_alive()
        s = self._live(seq_id)
        state = json.dumps(
            {
                "cached_tokens": s.cached_tokens,
                "prompt_done": s.prompt_done,
                "generated": s.generated,
                "fed_generated": s.fed_generated,
                "text": s.text,
                "emitted": s.emitted,
            }
        ).encode()
        del self._seqs[seq_id]
        kv = s.spec.prompt[: s.prompt_done] + tuple(s.generated[: s.fed_generated])
        return SeqSnapshot(
            spec=s.spec,
            cached_tokens=s.cached_tokens,
            state=state,
            kv_tokens=kv,
            generated=tuple(s.generated),
            pending_text=s.text[s.emitted :],
        )

    def restore(self, snapshot: SeqSnapshot) -> Admission:
        self._check_alive()
        spec = snapshot.spec
        if spec.seq_id in self._seqs:
            raise InvalidRequest(f"sequence {spec.seq_id!r} is already resident", param="seq_id")
        try:
            st = json.loads(snapshot.state)
            seq = _Seq(
                spec=spec,
                slot=-1,
                cached_tokens=int(st["cached_tokens"]),
                prompt_done=int(st["prompt_done"]),
                generated=[int(t) for t in st["generated"]],
                fed_generated=int(st["fed_generated"]),
                text=str(st["text"]),
                emitted=int(st["emitted"]),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise EngineGenerateError(f"not a fake engine snapshot: {e}") from e
        slot = self._free_slot()
        if slot is None or self._kv_free() < seq.kv_used + self._reserved(seq):
            raise EngineGenerateError("no free slot or KV cells to restore the sequence")
        seq.slot = slot
        self._order += 1
        seq.order = self._order
        self._seqs[spec.seq_id] = seq
        return Admission(seq_id=spec.seq_id, slot=slot, cached_tokens=seq.cached_tokens)

    # -- stepping ----------------------------------------------------------------------------

    def step(self, plan: StepPlan | None = None) -> StepResult:
        self._check_alive()
        info = self.info
        if self._die_after is not None and self._steps >= self._die_after:
            self.kill(f"fake engine died after {self._steps} steps")
            self._check_alive()
        tokens = dict(plan.tokens) if plan is not None else self._default_plan()
        for sid, n in tokens.items():
            if sid not in self._seqs:
                raise InvalidRequest(f"sequence {sid!r} is not resident", param="plan")
            if n < 1:
                raise InvalidRequest(f"sequence {sid!r} is planned {n} tokens", param="plan")
        planned = sum(tokens.values())
        if planned > info.n_batch:
            raise InvalidRequest(
                f"the plan feeds {planned} tokens, over n_batch={info.n_batch}", param="plan"
            )
        fed = {sid: self._feed(self._seqs[sid], n) for sid, n in tokens.items()}
        preempted = self._make_room(fed)
        n_tokens = sum(fed.values())
        self.plans.append(dict(fed))
        started = self._clock()
        cost = self._step_cost + self._token_cost * n_tokens
        if cost > 0:
            self._sleep(cost)
        outputs = [self._advance(sid, n) for sid, n in fed.items()]
        self._steps += 1
        for out in outputs:
            if out.finish_reason is not None:
                self._seqs.pop(out.seq_id, None)
        return StepResult(
            outputs=tuple(outputs),
            n_tokens=n_tokens,
            elapsed_s=max(self._clock() - started, cost),
            preempted=tuple(preempted),
        )

    def _make_room(self, fed: dict[SeqId, int]) -> list[SeqSnapshot]:
        """As llama.cpp's backend does when KV runs out: preempt the newest sequence until decodes fit."""
        preempted: list[SeqSnapshot] = []
        while len(self._seqs) > 1:
            decoding = sum(1 for sid in fed if not self._seqs[sid].prefilling)
            if self._kv_free() >= decoding:
                break
            newest = max(self._seqs.values(), key=lambda s: s.order)
            logger.debug("fake KV full: preempting %s", newest.spec.seq_id)
            preempted.append(self.preempt(newest.spec.seq_id))
            fed.pop(newest.spec.seq_id, None)
        return preempted

    @staticmethod
    def _feed(s: _Seq, n: int) -> int:
        return min(n, len(s.spec.prompt) - s.prompt_done) if s.prefilling else 1

    def _default_plan(self) -> dict[SeqId, int]:
        budget = self.info.n_batch
        plan: dict[SeqId, int] = {}
        for sid, s in sorted(self._seqs.items(), key=lambda kv: kv[1].slot):
            if not s.prefilling and budget > 0:
                plan[sid] = 1
                budget -= 1
        for sid, s in sorted(self._seqs.items(), key=lambda kv: kv[1].slot):
            if s.prefilling and budget > 0:
                n = min(budget, len(s.spec.prompt) - s.prompt_done)
                plan[sid] = n
                budget -= n
        return plan

    def _advance(self, sid: SeqId, n: int) -> SeqOutput:
        s = self._seqs[sid]
        if s.fail is not None:
            return self._output(s, finish_reason="error", error=s.fail)
        if s.prefilling:
            s.prompt_done += n
            if s.prefilling:
                return self._output(s)
        else:
            if self._kv_free() < 1:
                return self._output(s, finish_reason="error", error="the KV cache is full")
            s.fed_generated += 1
        return self._sample(s)

    def _sample(self, s: _Seq) -> SeqOutput:
        p = s.spec.params
        pos = len(s.generated)
        seed = 0 if p.temperature == 0 else (p.seed or 0)
        if self._eos_after is not None and pos >= self._eos_after and not p.ignore_eos:
            return self._finish(s, "stop", (), ())
        applied = tuple((a.path, a.scale) for a in s.spec.adapters if a.scale != 0)
        # An adapter at scale 0 leaves the model as it is; any other makes it say something else.
        offset = (_digest(s.spec.prompt, seed, applied) if applied else _digest(s.spec.prompt, seed)) % len(
            LOREM
        )
        char = LOREM[(offset + pos) % len(LOREM)]
        tok = BYTE_OFFSET + ord(char)
        if p.logit_bias:
            tok = _biased((offset + pos) % len(LOREM), dict(p.logit_bias))
            if tok == EOS and not p.ignore_eos:
                return self._finish(s, "stop", (), ())
            char = SPECIALS.get(tok) or chr(tok - BYTE_OFFSET)
        s.generated.append(tok)
        s.text += char
        lps: tuple[TokenLogprob, ...] = ()
        if p.logprobs is not None:
            lps = (self._logprob(s.spec.prompt, seed, pos, char, tok, p.logprobs),)
        # A stop string ends the sequence; the text before it is emitted, the stop itself is not.
        for stop in p.stop:
            idx = s.text.find(stop, s.emitted) if stop else -1
            if idx >= 0:
                s.text = s.text[:idx]
                return self._finish(s, "stop", (tok,), lps)
        if len(s.generated) >= p.max_tokens:
            return self._finish(s, "length", (tok,), lps)
        hold = max((self._held(s.text, stop) for stop in p.stop), default=0)
        upto = max(s.emitted, len(s.text) - hold)
        text, s.emitted = s.text[s.emitted : upto], upto
        return self._output(s, token_ids=(tok,), text=text, logprobs=lps)

    @staticmethod
    def _held(text: str, stop: str) -> int:
        """Length of the longest suffix of ``text`` that is a proper prefix of ``stop``."""
        for k in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:k]):
                return k
        return 0

    def _finish(
        self, s: _Seq, reason: FinishReason, toks: tuple[TokenId, ...], lps: tuple[TokenLogprob, ...]
    ) -> SeqOutput:
        text = s.text[s.emitted :]
        s.emitted = len(s.text)
        return self._output(s, token_ids=toks, text=text, logprobs=lps, finish_reason=reason)

    @staticmethod
    def _output(
        s: _Seq,
        *,
        token_ids: tuple[TokenId, ...] = (),
        text: str = "",
        logprobs: tuple[TokenLogprob, ...] = (),
        finish_reason: FinishReason | None = None,
        error: str | None = None,
    ) -> SeqOutput:
        return SeqOutput(
            seq_id=s.spec.seq_id,
            token_ids=token_ids,
            text=text,
            logprobs=logprobs,
            finish_reason=finish_reason,
            prompt_tokens=len(s.spec.prompt),
            completion_tokens=len(s.generated),
            cached_tokens=s.cached_tokens,
            error=error,
        )

    @staticmethod
    def _logprob(
        prompt: tuple[TokenId, ...], seed: int, pos: int, char: str, tok: TokenId, k: int
    ) -> TokenLogprob:
        lp = -0.01 - (_digest(prompt, seed, pos, "lp") % 1000) / 1000.0
        top: list[tuple[str, float]] = []
        if k > 0:
            top.append((char, lp))
            alts = [c for c in "etaoinshrdlu" if c != char]
            top.extend((alts[i % len(alts)], lp - 0.5 * (i + 1)) for i in range(k - 1))
        return TokenLogprob(token=char, token_id=tok, logprob=lp, top=tuple(top))

    # -- embeddings and health ---------------------------------------------------------------

    def embed(
        self, inputs: Sequence[str | Sequence[TokenId]], *, normalize: bool = True
    ) -> list[list[float]]:
        self._check_alive()
        dim = self.info.embedding_dim
        out: list[list[float]] = []
        for item in inputs:
            key = item if isinstance(item, str) else repr(tuple(item))
            vec: list[float] = []
            block = 0
            while len(vec) < dim:
                h = hashlib.sha256(f"{block}:{key}".encode()).digest()
                vec.extend((v / 2**31) - 1.0 for v in struct.unpack("<8I", h))
                block += 1
            vec = vec[:dim]
            if normalize:
                norm = sum(v * v for v in vec) ** 0.5 or 1.0
                vec = [v / norm for v in vec]
            out.append(vec)
        return out

    def health(self) -> EngineHealth:
        if self._info is None:
            return EngineHealth(ok=False, detail="not loaded", pid=os.getpid())
        return EngineHealth(
            ok=self._dead is None,
            detail=self._dead or "",
            slots_used=len(self._seqs),
            slots_total=self._info.n_slots,
            kv_used=self._info.n_ctx - self._kv_free(),
            kv_total=self._info.n_ctx,
            pid=os.getpid(),
        )

    # -- helpers -----------------------------------------------------------------------------

    def _check_alive(self) -> None:
        if self._dead is not None:
            raise EngineDeadError(self._dead)

    def _live(self, seq_id: SeqId) -> _Seq:
        s = self._seqs.get(seq_id)
        if s is None:
            raise InvalidRequest(f"sequence {seq_id!r} is not resident", param="seq_id")
        return s
