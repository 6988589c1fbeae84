"""``LlamaCppEngine``: continuous batching over llama.cpp's low-level API.

One ``step`` is one ``llama_decode`` over a batch holding, for every sequence in the plan,
its next tokens (one for a decoding sequence, a chunk for one still reading its prompt);
logits are requested only for the last token of each sequence that samples in this step.

Slots are llama.cpp sequence ids ``0..n_slots-1`` (handed out by ``slots.py``). Two KV layouts
(``LoadSpec.extra["kv_unified"]``):

* per-slot streams (the default): each slot owns ``n_ctx / n_slots`` cells and attends over its
  own cells only. A finished sequence leaves its KV in its slot as the prefix cache: a new
  sequence takes the free slot whose leftover tokens share the longest prefix with its prompt,
  or gets a running sequence's prefix copied across streams (a whole-stream copy, trimmed).
* unified: all sequences share ``n_ctx`` cells of one buffer; ids ``n_slots..`` hold the KV of
  recently finished sequences as a small prefix cache (evicted first whenever room is needed).

LoRA adapters (``SequenceSpec.adapters``) load onto this model on first use (``adapters.py``).
llama.cpp applies adapters per context, so a step runs one decode per adapter set among its
sequences (the set the context already has first) and samples each set's sequences right after
its decode (``step_work.py`` plans and groups a step's work). Every KV cell range remembers the
adapter set that computed it, and a sequence reuses a prefix only from its own set (KV made
under another adapter is another model's KV).

When the weights are a re-encoding (``cpu_weights="auto"``), a sequence decoding alone runs in a
second context over the file as stored, the solo lane (``solo.py``), and moves back the moment
another sequence needs the main context.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import llama_cpp

from llmos.engine.base import (
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
from llmos.engine.chat_formats import guess_chat_format
from llmos.engine.llamacpp.adapters import Adapters
from llmos.engine.llamacpp.batch import Batch
from llmos.engine.llamacpp.embedding import EmbeddingContext
from llmos.engine.llamacpp.model import LlamaModel, kv_unified_option
from llmos.engine.llamacpp.sampling import SamplerChain, logprobs_at, validate
from llmos.engine.llamacpp.seq_state import read_seq_state, write_seq_state
from llmos.engine.llamacpp.sequence import Sequence as Seq
from llmos.engine.llamacpp.shared_prefill import DEFAULT_MIN_TOKENS as DEFAULT_SHARE_MIN
from llmos.engine.llamacpp.shared_prefill import group_shared_prefixes
from llmos.engine.llamacpp.slots import KvSlots
from llmos.engine.llamacpp.solo import SoloLane, lane_wanted
from llmos.engine.llamacpp.step_work import Work, by_adapter_set, plan_work
from llmos.engine.templates import ChatTemplate, max_chars_for_context
from llmos.errors import (
    Conflict,
    EngineError,
    InvalidRequest,
    NotFound,
    Overloaded,
    PayloadTooLarge,
)
from llmos.types import ChatMessage, SeqId, TokenId

logger = logging.getLogger(__name__)

BACKEND = "llamacpp"


class LlamaCppEngine:
    """The llama.cpp backend of :class:`llmos.engine.base.Engine`. Not thread-safe."""

    def __init__(self) -> None:
        self._model: LlamaModel | None = None
        self._info: EngineInfo | None = None
        self._template: ChatTemplate | None = None
        self._batch: Batch | None = None
        self._seqs: dict[SeqId, Seq] = {}
        self._slots: KvSlots | None = None
        self._adapters: Adapters | None = None
        self._order = 0
        self._spec: LoadSpec | None = None
        self._last_error = ""
        self._embedder: EmbeddingContext | None = None
        self._lane: SoloLane | None = None
        self._share_min = DEFAULT_SHARE_MIN
        self.shared_prefill_tokens = 0
        """Prompt tokens followers did not compute, thanks to shared prefill (a counter)."""

    # --- lifecycle ---------------------------------------------------------------------------

    def load(self, spec: LoadSpec) -> EngineInfo:
        if self._model is not None:
            raise Conflict("a model is already loaded; unload it first")
        unified = kv_unified_option(spec)
        n_cache = int(spec.extra.get("prefix_cache_slots", 4))
        self._share_min = int(spec.extra.get("shared_prefill_min", DEFAULT_SHARE_MIN))
        if self._share_min < 0:
            raise InvalidRequest(
                "shared_prefill_min must be >= 0 (0 turns it off)", param="shared_prefill_min"
            )
        keep_residue = n_cache > 0
        if spec.embedding or not unified:
            n_cache = 0
        model = LlamaModel(spec, n_seq_max=spec.n_slots + n_cache)
        bos = int(llama_cpp.llama_vocab_bos(model.vocab))
        eos = int(llama_cpp.llama_vocab_eos(model.vocab))
        template = spec.chat_template if spec.chat_template is not None else model.chat_template()
        if template is None and not spec.embedding:
            guess = guess_chat_format(model.has_control_token)
            template = guess.format.template
            logger.warning(
                "%s carries no chat template and none was given: answering in the %s format, a guess",
                spec.model_path,
                guess.reason,
            )
        bos_text, eos_text = model.token_text(bos), model.token_text(eos)
        self._template = ChatTemplate(
            template, bos_token=bos_text, eos_token=eos_text, max_chars=max_chars_for_context(spec.n_ctx)
        )
        self._model = model
        self._spec = spec
        self._batch = Batch(spec.n_batch)
        self._adapters = Adapters(model.handle)
        self._slots = KvSlots(model, spec.n_slots, n_cache, keep_residue=keep_residue)
        weights = model.weights.description
        if lane_wanted(spec, model):
            try:
                self._lane = SoloLane(model, spec)
                weights += f"; one sequence alone: {self._lane.description}"
            except (EngineError, InvalidRequest) as exc:
                logger.warning("no solo lane for %s: %s", spec.model_path, exc)
        self._info = EngineInfo(
            model_path=str(spec.model_path),
            n_ctx=spec.n_ctx,
            n_slots=spec.n_slots,
            n_batch=spec.n_batch,
            n_vocab=model.n_vocab,
            n_ctx_train=model.n_ctx_train,
            eos_token_ids=model.eos_token_ids(),
            bos_token=bos_text,
            eos_token=eos_text,
            chat_template=template,
            embedding_dim=model.n_embd,
            backend=BACKEND,
            weights_path=str(model.weights.path),
            weights=weights,
        )
        logger.info(
            "loaded %s, weights %s (n_ctx=%d, slots=%d)",
            spec.model_path,
            weights,
            spec.n_ctx,
            spec.n_slots,
        )
        return self._info

    @property
    def info(self) -> EngineInfo:
        if self._info is None:
            raise EngineError("no model loaded")
        return self._info

    def _m(self) -> LlamaModel:
        if self._model is None:
            raise EngineError("no model loaded")
        return self._model

    def _b(self) -> Batch:
        if self._batch is None:
            raise EngineError("no model loaded")
        return self._batch

    def _ad(self) -> Adapters:
        if self._adapters is None:
            raise EngineError("no model loaded")
        return self._adapters

    def _sl(self) -> KvSlots:
        if self._slots is None:
            raise EngineError("no model loaded")
        return self._slots

    @property
    def solo_tokens(self) -> int | None:
        """Tokens decoded in the solo lane (a counter; None when this load has no lane)."""
        return None if self._lane is None else self._lane.tokens

    @property
    def adapters_loaded(self) -> list[str]:
        """The adapter files loaded onto the model."""
        return self._ad().loaded

    def unload(self) -> None:
        for seq in list(self._seqs.values()):
            seq.sampler.close()
        self._seqs.clear()
        if self._lane is not None:
            self._lane.close()
            self._lane = None
        self._slots = None
        self._adapters = None  # llama.cpp frees them with the model
        if self._batch is not None:
            self._batch.close()
            self._batch = None
        if self._embedder is not None:
            self._embedder.close()
            self._embedder = None
        if self._model is not None:
            self._model.close()
            self._model = None
        self._info = None

    # --- tokenizer and templates -----------------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[TokenId]:
        return self._m().tokenize(text, add_special=add_special, parse_special=parse_special)

    def detokenize(self, tokens: Sequence[TokenId]) -> str:
        return self._m().detokenize(tokens)

    def render_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        add_generation_prompt: bool = True,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> str:
        if self._template is None:
            raise EngineError("no model loaded")
        return self._template.render(messages, add_generation_prompt=add_generation_prompt, tools=tools)

    # --- admission -------------------------------------------------------------------------------

    def _reserved(self) -> int:
        return sum(len(s.tokens) for s in self._seqs.values())

    def _fits(self, n_tokens: int) -> bool:
        """Whether a sequence of ``n_tokens`` cells fits beside the resident ones."""
        m = self._m()
        if m.shape.kv_unified:
            return self._reserved() + n_tokens <= m.shape.n_ctx
        return n_tokens <= m.shape.n_ctx_seq

    def can_admit(self, n_prompt_tokens: int) -> bool:
        m = self._m()
        if m.shape.embedding or not self._sl().free:
            return False
        return self._fits(n_prompt_tokens + 1)

    def admit(self, spec: SequenceSpec) -> Admission:
        m = self._m()
        if m.shape.embedding:
            raise InvalidRequest("this model is loaded for embeddings only")
        if spec.seq_id in self._seqs:
            raise Conflict(f"sequence {spec.seq_id!r} is already admitted", param="seq_id")
        self._check_prompt(spec.prompt)
        self._leave_lane()
        if not self._sl().free:
            raise Overloaded("no free slot in this engine", retry_after=1.0)
        if not self._fits(len(spec.prompt) + 1):
            raise Overloaded("not enough free KV cells for this prompt", retry_after=1.0)
        self._ad().load(spec.adapters)
        sampler = SamplerChain(spec.params, m.vocab, m.n_vocab)
        slot, cached = self._sl().take(spec.prompt, spec.adapters, self._seqs.values(), self._reserved())
        self._order += 1
        seq = Seq(spec, slot, sampler, order=self._order, n_past=cached, cached_tokens=cached)
        self._seqs[spec.seq_id] = seq
        return Admission(seq_id=spec.seq_id, slot=slot, cached_tokens=cached)

    def _check_prompt(self, prompt: Sequence[TokenId]) -> None:
        m = self._m()
        if not prompt:
            raise InvalidRequest("the prompt is empty", param="prompt")
        if len(prompt) >= m.shape.n_ctx_seq:
            raise PayloadTooLarge(
                f"prompt of {len(prompt)} tokens does not fit the context of one sequence "
                f"({m.shape.n_ctx_seq})",
                param="prompt",
            )
        if min(prompt) < 0 or max(prompt) >= m.n_vocab:
            raise InvalidRequest("prompt holds a token id outside the vocabulary", param="prompt")

    # --- stepping --------------------------------------------------------------------------------

    def step(self, plan: StepPlan | None = None) -> StepResult:
        t0 = time.perf_counter()
        m = self._m()
        work = plan_work(self._seqs, plan, m.shape.n_batch)
        outputs: list[SeqOutput] = []
        preempted: list[SeqSnapshot] = []
        lane = self._lane
        if lane is not None and lane.holds is not None and not self._solo(work):
            lane.leave()
        if not m.shape.kv_unified:
            if lane is None or lane.holds is None:  # the lane's sequence is the only resident one
                self._sl().compact(self._seqs.values())
            work = self._within_slot(work, outputs)
        if self._solo(work) and self._decode_solo(work[0], outputs):
            return StepResult(outputs=tuple(outputs), n_tokens=1, elapsed_s=time.perf_counter() - t0)
        self._leave_lane()
        n_tokens = 0
        for adapters, group in by_adapter_set(work, self._ad().active):
            # an earlier decode of this step may have preempted one of them to make room
            group = [w for w in group if self._seqs.get(w.seq.seq_id) is w.seq]
            if group:
                self._ad().apply(m.ctx, adapters)
                n_tokens += self._decode(group, outputs, preempted)
        return StepResult(
            outputs=tuple(outputs),
            n_tokens=n_tokens,
            elapsed_s=time.perf_counter() - t0,
            preempted=tuple(preempted),
        )

    def _decode(self, work: list[Work], outputs: list[SeqOutput], preempted: list[SeqSnapshot]) -> int:
        """One decode of ``work`` (sequences of one adapter set, applied already), shrinking it
        while the KV is full, then sampling those that sample. Returns the tokens fed."""
        m, batch = self._m(), self._b()
        work = sorted(work, key=lambda w: w.seq.slot)  # one ubatch per run of consecutive slots
        shared = self._prefill_shared(work)
        while work:
            batch.clear()
            for w in work:
                w.index = batch.add_run(w.chunk, w.seq.n_past, w.seq.slot, logits_last=w.sample)
            rc = int(llama_cpp.llama_decode(m.ctx, batch.raw))
            if rc == 0:
                self._sl().copies_applied()  # llama.cpp applies queued copies before a decode
                break
            for w in work:  # whatever a failed decode left in the KV beyond n_past is not ours
                llama_cpp.llama_memory_seq_rm(m.memory, w.seq.slot, w.seq.n_past, -1)
            if rc == 1:
                work = self._shrink(work, preempted, outputs)
                continue
            self._last_error = f"llama_decode failed with code {rc}"
            logger.error("%s; failing %d sequences", self._last_error, len(work))
            for w in work:
                outputs.append(self._finish_error(w.seq, self._last_error))
            work = []
        for w in work:
            seq = w.seq
            seq.n_past += len(w.chunk)
            if w.sample:
                outputs.append(self._sample(seq, w.index))
        return shared + sum(len(w.chunk) for w in work)

    def _solo(self, work: list[Work]) -> bool:
        """Whether this step's work is one sequence decoding alone, which the lane may take."""
        lane = self._lane
        if lane is None or len(work) != 1 or len(self._seqs) != 1:
            return False
        w = work[0]
        if not w.sample or len(w.chunk) != 1 or not lane.can_take(w.seq):
            return False
        return lane.holds is w.seq or not self._sl().pending(w.seq.slot)

    def _decode_solo(self, w: Work, outputs: list[SeqOutput]) -> bool:
        """Decode ``w`` in the solo lane and sample it; False (nothing done) when the lane cannot."""
        lane = self._lane
        seq = w.seq
        if lane is None or not lane.enter(seq) or not lane.decode(seq, w.chunk[0]):
            return False
        seq.n_past += 1
        outputs.append(self._sample(seq, 0, lane.ctx))
        return True

    def _leave_lane(self) -> None:
        if self._lane is not None:
            self._lane.leave()

    def _prefill_shared(self, work: list[Work]) -> int:
        """Feed the common start of fresh prompts in this step once, in a decode of its own,
        and copy it to the other sequences that share it (``shared_prefill.py``); their works
        keep what is left. Returns the tokens fed (0 when nothing is shared or the decode fails:
        the step then feeds every chunk whole)."""
        if self._share_min <= 0:
            return 0
        fresh = [(i, w.chunk) for i, w in enumerate(work) if w.seq.n_past == 0]
        groups = group_shared_prefixes(fresh, self._share_min) if len(fresh) > 1 else []
        if not groups:
            return 0
        m, batch = self._m(), self._b()
        batch.clear()
        for g in sorted(groups, key=lambda g: work[g.donor].seq.slot):
            donor = work[g.donor]
            batch.add_run(donor.chunk[: g.run], 0, donor.seq.slot, logits_last=False)
        rc = int(llama_cpp.llama_decode(m.ctx, batch.raw))
        if rc != 0:
            for g in groups:
                llama_cpp.llama_memory_seq_rm(m.memory, work[g.donor].seq.slot, 0, -1)
            logger.debug("shared prefill decode returned %d; prefilling each prompt whole", rc)
            return 0
        self._sl().copies_applied()  # llama.cpp applied queued copies before that decode
        fed = 0
        for g in groups:
            donor = work[g.donor]
            donor.chunk = donor.chunk[g.run :]
            donor.seq.n_past = g.run
            fed += g.run
            for i, n in g.followers:
                follower = work[i]
                self._sl().copy_prefix(donor.seq.slot, follower.seq.slot, n)
                follower.chunk = follower.chunk[n:]
                follower.seq.n_past = n
                self.shared_prefill_tokens += n
        return fed

    def _within_slot(self, work: list[Work], outputs: list[SeqOutput]) -> list[Work]:
        """Per-slot layout: a sequence whose slot is full ends with ``length``."""
        cap = self._m().shape.n_ctx_seq
        kept = []
        for w in work:
            if w.seq.n_past + len(w.chunk) <= cap:
                kept.append(w)
                continue
            seq = w.seq
            out = SeqOutput(
                seq_id=seq.seq_id,
                text=seq.finish_text(),
                finish_reason="length",
                prompt_tokens=seq.n_prompt,
                completion_tokens=seq.n_generated,
                cached_tokens=seq.cached_tokens,
            )
            self._release(seq, keep_prefix=True)
            outputs.append(out)
        return kept

    def _shrink(self, work: list[Work], preempted: list[SeqSnapshot], outputs: list[SeqOutput]) -> list[Work]:
        """No KV slot for this batch: free cache, then drop prefill, then preempt the newest."""
        slots = self._sl()
        if slots.cached:
            slots.evict_all()
            return work
        decodes = [w for w in work if len(w.chunk) == 1]
        if 0 < len(decodes) < len(work):
            return decodes
        if len(self._seqs) > 1:
            newest = max(self._seqs.values(), key=lambda s: s.order)
            logger.warning("KV cache full: preempting sequence %s", newest.seq_id)
            preempted.append(self.preempt(newest.seq_id))
            return [w for w in work if w.seq is not newest]
        for w in work:
            outputs.append(
                self._finish_error(w.seq, "the KV cache is full (context too small for this sequence)")
            )
        return []

    def _sample(self, seq: Seq, index: int, ctx: Any = None) -> SeqOutput:
        """Sample ``seq`` from the logits at batch ``index`` of ``ctx`` (the main context's by default)."""
        m = self._m()
        ctx = m.ctx if ctx is None else ctx
        token = seq.sampler.sample(ctx, index)
        logprobs: tuple[TokenLogprob, ...] = ()
        k = seq.spec.params.logprobs
        if k is not None:
            logprobs = (logprobs_at(ctx, index, m.n_vocab, token, k, m.token_text),)
        event = seq.push(token, is_eog=m.is_eog(token), piece=m.piece(token))
        out = SeqOutput(
            seq_id=seq.seq_id,
            token_ids=(token,),
            text=event.text,
            logprobs=logprobs,
            finish_reason=event.finish,
            prompt_tokens=seq.n_prompt,
            completion_tokens=seq.n_generated,
            cached_tokens=seq.cached_tokens,
        )
        if event.finish is not None:
            self._release(seq, keep_prefix=True)
        return out

    def _finish_error(self, seq: Seq, message: str) -> SeqOutput:
        self._release(seq, keep_prefix=False)
        return SeqOutput(
            seq_id=seq.seq_id,
            finish_reason="error",
            prompt_tokens=seq.n_prompt,
            completion_tokens=seq.n_generated,
            cached_tokens=seq.cached_tokens,
            error=message,
        )

    def _release(self, seq: Seq, *, keep_prefix: bool) -> None:
        self._sl().release(seq, keep_prefix=keep_prefix)  # keeps its main slot's n_kv cells
        if self._lane is not None:
            self._lane.drop(seq)
        seq.sampler.close()
        self._seqs.pop(seq.seq_id, None)

    def abort(self, seq_id: SeqId) -> None:
        seq = self._seqs.get(seq_id)
        if seq is not None:
            self._release(seq, keep_prefix=False)

    # --- preemption ------------------------------------------------------------------------------

    def preempt(self, seq_id: SeqId) -> SeqSnapshot:
        m = self._m()
        seq = self._seqs.get(seq_id)
        if seq is None:
            raise NotFound(f"no resident sequence {seq_id!r}", param="seq_id")
        self._leave_lane()
        state = b""
        # A cross-stream copy not yet applied (no decode since): the buffer is not the KV yet.
        if seq.n_past > 0 and not self._sl().pending(seq.slot):
            state = read_seq_state(m.ctx, seq.slot)
        snap = SeqSnapshot(
            spec=seq.spec,
            state=state,
            kv_tokens=tuple(seq.tokens[: seq.n_past]),
            generated=tuple(seq.generated),
            pending_text=seq.stop.held,
            pending_bytes=seq.pending_bytes,
            cached_tokens=seq.cached_tokens,
        )
        self._release(seq, keep_prefix=False)
        return snap

    def restore(self, snapshot: SeqSnapshot) -> Admission:
        m = self._m()
        spec = snapshot.spec
        if spec.seq_id in self._seqs:
            raise Conflict(f"sequence {spec.seq_id!r} is already admitted", param="seq_id")
        self._check_prompt(spec.prompt)
        tokens = list(spec.prompt) + list(snapshot.generated)
        if list(snapshot.kv_tokens) != tokens[: len(snapshot.kv_tokens)]:
            raise InvalidRequest("snapshot is inconsistent: KV tokens are not a prefix of its tokens")
        self._leave_lane()
        slots = self._sl()
        if not slots.free:
            raise Overloaded("no free slot in this engine", retry_after=1.0)
        if not self._fits(len(tokens) + 1):
            if not m.shape.kv_unified:
                raise PayloadTooLarge(
                    f"the sequence ({len(tokens)} tokens) does not fit a slot ({m.shape.n_ctx_seq})"
                )
            raise Overloaded("not enough free KV cells to restore this sequence", retry_after=1.0)
        validate(spec.params)
        self._ad().load(spec.adapters)
        sampler = SamplerChain(spec.params, m.vocab, m.n_vocab)
        sampler.accept_history(snapshot.generated)
        slot = slots.take_empty(spec.adapters, len(tokens) + 1, self._reserved())
        n_past = 0
        if snapshot.state and snapshot.kv_tokens and not slots.pending(slot):
            if write_seq_state(m.ctx, slot, snapshot.state):
                n_past = len(snapshot.kv_tokens)
            else:
                logger.warning("could not restore KV state of %s; recomputing it", spec.seq_id)
                llama_cpp.llama_memory_seq_rm(m.memory, slot, -1, -1)
        self._order += 1
        seq = Seq(
            spec,
            slot,
            sampler,
            order=self._order,
            tokens=tokens,
            n_past=n_past,
            cached_tokens=snapshot.cached_tokens,
            pending_text=snapshot.pending_text,
            pending_bytes=snapshot.pending_bytes,
        )
        self._seqs[spec.seq_id] = seq
        return Admission(seq_id=spec.seq_id, slot=slot, cached_tokens=n_past)

    # --- queries ---------------------------------------------------------------------------------

    def sequences(self) -> list[SeqStatus]:
        return [
            SeqStatus(
                seq_id=s.seq_id,
                slot=s.slot,
                phase="prefill" if s.in_prefill else "decode",
                prompt_tokens=s.n_prompt,
                prompt_remaining=max(0, s.n_prompt - s.n_past),
                completion_tokens=s.n_generated,
                kv_tokens=s.n_past,
            )
            for s in self._seqs.values()
        ]

    def health(self) -> EngineHealth:
        if self._model is None or self._info is None:
            return EngineHealth(ok=False, detail="no model loaded", pid=os.getpid(), rss_bytes=_rss())
        return EngineHealth(
            ok=True,
            detail=self._last_error,
            slots_used=len(self._seqs),
            slots_total=self._info.n_slots,
            kv_used=sum(s.n_past for s in self._seqs.values()),
            kv_total=self._m().shape.n_ctx,
            rss_bytes=_rss(),
            pid=os.getpid(),
        )

    # --- embeddings ------------------------------------------------------------------------------

    def embed(
        self, inputs: Sequence[str | Sequence[TokenId]], *, normalize: bool = True
    ) -> list[list[float]]:
        """Pooled embeddings from a context of their own (see ``embedding.py``), made on first use."""
        if self._embedder is None:
            if self._spec is None:
                raise EngineError("no model loaded")
            self._embedder = EmbeddingContext(self._m(), self._spec)
        return self._embedder.embed(inputs, normalize=normalize)


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
