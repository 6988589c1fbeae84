"""The solo lane: a lone decoding sequence runs on the model file's own weights.

With ``cpu_weights="auto"`` the engine maps a Q4_1/Q5_1 file as its Q8_0 re-encoding, because
llama.cpp multiplies a batch of sequences by Q8_0 weights with batched kernels and by Q4_1 weights
one row-vector product at a time (``llmos.engine.cpu_weights``). One sequence's decode is a
matrix-vector product either way, and its time is the weight bytes it reads: SmolLM2-135M decodes
one sequence at ~90 tok/s from its Q4_1 file and ~75 tok/s from the Q8_0 re-encoding
(``bench/results/cpu_weight_types.md``) — the one place where the re-encoding loses.

So the engine keeps a second, small context over the file as stored (its weights mapped from the
same file, its KV one slot's worth of cells), the *lane*. When exactly one sequence is resident
and decoding, its KV moves into the lane (llama.cpp's per-sequence state, rewritten from the main
context's per-slot streams to the lane's one stream, ``seq_state.restream``) and it decodes there;
the moment anything else needs the main context (another sequence arrives, a restore, a
preemption) it moves back, with the tokens it decoded meanwhile. Its main slot keeps the first
``Seq.n_main`` cells throughout, so the prefix cache still finds its prompt after it finishes.

The lane is off for LoRA adapters (applied per context), the unified KV layout (a sequence may
use every cell), GPU offload and any KV whose state does not move (sliding-window caches): those
sequences decode in the main context as before.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import llama_cpp

from llmos.engine.base import LoadSpec
from llmos.engine.llamacpp.batch import Batch
from llmos.engine.llamacpp.model import LlamaModel
from llmos.engine.llamacpp.seq_state import read_seq_state, restream, write_seq_state
from llmos.engine.llamacpp.sequence import Sequence as Seq

logger = logging.getLogger(__name__)

MIN_TOKENS_LEFT = 16
"""A sequence enters the lane only with at least this many tokens still to generate: moving its
KV in and out costs about as much as a few decode steps save."""

_LANE_SEQ = 0


def lane_wanted(spec: LoadSpec, main: LlamaModel) -> bool:
    """Whether a load of ``spec`` (whose main context is ``main``) gets a solo lane."""
    return (
        spec.cpu_weights == "auto"
        and main.weights.converted_to is not None
        and not main.shape.kv_unified
        and not spec.embedding
    )


class SoloLane:
    """The lane of one loaded model (see the module docstring). Not thread-safe."""

    def __init__(self, main: LlamaModel, spec: LoadSpec) -> None:
        self._main = main
        lane_spec = dataclasses.replace(
            spec,
            cpu_weights="native",
            n_slots=1,
            n_ctx=main.shape.n_ctx_seq,
            n_batch=1,
            extra={**spec.extra, "kv_unified": True, "n_gpu_layers": 0},
        )
        self.model = LlamaModel(lane_spec, n_seq_max=1)
        self._batch = Batch(1)
        self._n_stream = main.shape.n_seq_max
        self.holds: Seq | None = None
        """The sequence whose KV is in the lane now."""
        self.broken = False
        """A move failed once: the lane stays unused (it would fail again)."""
        self.tokens = 0
        """Tokens decoded in the lane (a counter)."""

    @property
    def ctx(self) -> Any:
        return self.model.ctx

    @property
    def description(self) -> str:
        return self.model.weights.description

    def can_take(self, seq: Seq) -> bool:
        """Whether ``seq`` may decode in the lane (it must also be the only resident sequence)."""
        if self.holds is seq:
            return True
        if self.holds is not None or self.broken or seq.spec.adapters or seq.n_past == 0:
            return False
        return seq.spec.params.max_tokens - seq.n_generated >= MIN_TOKENS_LEFT

    def enter(self, seq: Seq) -> bool:
        """Move ``seq``'s KV from its main slot into the lane; whether it moved."""
        if self.holds is seq:
            return True
        state = restream(read_seq_state(self._main.ctx, seq.slot), 1, 0)
        llama_cpp.llama_memory_seq_rm(self.model.memory, _LANE_SEQ, -1, -1)
        if state is None or not write_seq_state(self.ctx, _LANE_SEQ, state):
            self._fail(f"the KV state of {seq.seq_id} does not move into the lane")
            return False
        seq.n_main = seq.n_past
        self.holds = seq
        return True

    def decode(self, seq: Seq, token: int) -> bool:
        """Feed ``seq``'s next ``token`` in the lane, logits at batch index 0; whether it ran."""
        batch = self._batch
        batch.clear()
        batch.add_run([token], seq.n_past, _LANE_SEQ, logits_last=True)
        rc = int(llama_cpp.llama_decode(self.ctx, batch.raw))
        if rc != 0:
            llama_cpp.llama_memory_seq_rm(self.model.memory, _LANE_SEQ, seq.n_past, -1)
            self._fail(f"llama_decode returned {rc} in the lane")
            return False
        self.tokens += 1
        return True

    def leave(self) -> None:
        """Move the held sequence's KV back into its main slot. Should that fail, the sequence
        feeds again the tokens whose KV its slot no longer holds (correct, only slower)."""
        seq = self.holds
        if seq is None:
            return
        self.holds = None
        n_main, seq.n_main = seq.n_main or 0, None
        state = restream(read_seq_state(self.ctx, _LANE_SEQ), self._n_stream, seq.slot)
        llama_cpp.llama_memory_seq_rm(self.model.memory, _LANE_SEQ, -1, -1)
        if state is not None and write_seq_state(self._main.ctx, seq.slot, state):
            return
        self._fail(f"the KV state of {seq.seq_id} does not move back from the lane")
        # A refused write has emptied the slot; an unparsed state left its first n_main cells.
        seq.n_past = n_main if state is None else 0
        llama_cpp.llama_memory_seq_rm(self._main.memory, seq.slot, seq.n_past, -1)

    def drop(self, seq: Seq) -> None:
        """``seq`` is gone (finished, aborted): forget its KV in the lane."""
        if self.holds is seq:
            self.holds = None
            seq.n_main = None
            llama_cpp.llama_memory_seq_rm(self.model.memory, _LANE_SEQ, -1, -1)

    def _fail(self, why: str) -> None:
        if not self.broken:
            logger.warning("solo lane off: %s", why)
        self.broken = True

    def close(self) -> None:
        self.holds = None
        self._batch.close()
        self.model.close()
