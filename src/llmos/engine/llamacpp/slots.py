"""Where sequences' KV lives in a llama.cpp context: slots, prefix reuse and the prefix cache.

Slots are llama.cpp sequence ids ``0..n_slots-1``; :class:`KvSlots` hands them out and takes
them back, for the two KV layouts ``engine.py`` describes:

* per-slot streams: a free slot keeps its last sequence's KV as *residue*; a new sequence takes
  the lowest free slot and the longest prefix of its prompt found in a free slot's residue or a
  running sequence, copied across streams when it lies elsewhere (a whole-stream copy, trimmed,
  applied by llama.cpp at the next decode: such slots are *pending* until then). Resident
  sequences are kept in the lowest slots (:meth:`KvSlots.compact`);
* unified: ids ``n_slots..`` hold the KV of recently finished sequences (the prefix cache,
  evicted oldest first whenever room is needed), and a new sequence gets the longest matching
  prefix of a resident or cached sequence copied into its slot.

Every slot and cache id remembers the adapter set whose decodes made its KV: a sequence reuses a
prefix only from its own set.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence

import llama_cpp

from llmos.engine.base import AdapterSet
from llmos.engine.llamacpp.model import LlamaModel
from llmos.engine.llamacpp.sequence import Sequence as Seq
from llmos.engine.llamacpp.shared_prefill import common_prefix
from llmos.types import TokenId


class KvSlots:
    """The slots and prefix cache of one loaded model (see the module docstring). ``keep_residue``:
    whether a finished sequence's KV stays behind for reuse (per-slot layout)."""

    def __init__(self, model: LlamaModel, n_slots: int, n_cache: int, *, keep_residue: bool) -> None:
        self._model = model
        self.free: list[int] = list(range(n_slots))
        self._cache: OrderedDict[int, list[TokenId]] = OrderedDict()
        self._free_cache_ids: list[int] = list(range(n_slots, n_slots + n_cache))
        self._owner: dict[int, AdapterSet] = {}
        """The adapter set whose decodes made the KV a slot or cache id holds."""
        self._residue: dict[int, list[TokenId]] = {}
        """Per-slot layout: tokens whose KV a free slot still holds (its last sequence's prefix)."""
        self._pending: set[int] = set()
        """Slots on either side of a cross-stream copy that llama.cpp applies at the next decode."""
        self._keep_residue = keep_residue

    # --- the prefix cache (unified layout) -------------------------------------------------------

    @property
    def cached(self) -> bool:
        """Whether the prefix cache holds anything."""
        return bool(self._cache)

    def _cache_cells(self) -> int:
        return sum(len(t) for t in self._cache.values())

    def make_room(self, need: int, reserved: int) -> None:
        """Evict prefix-cache entries (oldest first) until ``need`` more cells fit beside the
        ``reserved`` cells of resident sequences and the cache."""
        n_ctx = self._model.shape.n_ctx
        while self._cache and reserved + self._cache_cells() + need > n_ctx:
            self.evict_oldest()

    def evict_oldest(self) -> None:
        cid, _ = self._cache.popitem(last=False)
        llama_cpp.llama_memory_seq_rm(self._model.memory, cid, -1, -1)
        self._free_cache_ids.append(cid)

    def evict_all(self) -> None:
        while self._cache:
            self.evict_oldest()

    # --- taking a slot -----------------------------------------------------------------------------

    def take(
        self, prompt: Sequence[TokenId], adapters: AdapterSet, resident: Iterable[Seq], reserved: int
    ) -> tuple[int, int]:
        """A free slot for a new sequence of ``prompt`` under ``adapters``, holding the longest
        KV prefix found for it. ``resident``: the sequences running now, holding ``reserved``
        cells. Returns (slot, reused tokens). A free slot must exist."""
        if self._model.shape.kv_unified:
            slot = self.free.pop(0)
            self.make_room(len(prompt) + 1, reserved)
            cached = self._reuse_prefix(prompt, slot, adapters, resident)
        else:
            slot, cached = self._reuse_prefix_per_slot(prompt, adapters, resident)
        self._owner[slot] = adapters
        return slot, cached

    def take_empty(self, adapters: AdapterSet, need: int, reserved: int) -> int:
        """An emptied free slot for a restored sequence of ``need`` cells, one that no queued
        copy touches when there is such a slot (writing a state there would race the copy)."""
        ready = [s for s in self.free if s not in self._pending] or self.free
        slot = min(ready)
        self.free.remove(slot)
        self._residue.pop(slot, None)
        self._owner[slot] = adapters
        self.make_room(need, reserved)
        llama_cpp.llama_memory_seq_rm(self._model.memory, slot, -1, -1)
        return slot

    def _reuse_prefix(
        self, prompt: Sequence[TokenId], slot: int, adapters: AdapterSet, resident: Iterable[Seq]
    ) -> int:
        """Copy the KV of the longest matching resident/cached prefix made under ``adapters``
        into ``slot``."""
        best_src, best_n = -1, 0
        limit = len(prompt) - 1  # at least one token must be fed to get logits
        candidates: list[tuple[int, Sequence[TokenId], int]] = [
            (s.slot, s.tokens, s.n_kv) for s in resident if s.spec.adapters == adapters
        ]
        candidates += [
            (cid, toks, len(toks))
            for cid, toks in self._cache.items()
            if self._owner.get(cid, ()) == adapters
        ]
        for src, toks, n_kv in candidates:
            n = common_prefix(prompt, toks, min(limit, n_kv))
            if n > best_n:
                best_src, best_n = src, n
        self.copy_prefix(best_src, slot, best_n)
        if best_n > 0 and best_src in self._cache:
            self._cache.move_to_end(best_src)
        return best_n

    def _reuse_prefix_per_slot(
        self, prompt: Sequence[TokenId], adapters: AdapterSet, resident: Iterable[Seq]
    ) -> tuple[int, int]:
        """Take the lowest free slot for ``prompt`` (see :meth:`compact`) and give it the longest
        KV prefix made under ``adapters``: the slot's own leftover, trimmed in place, or the cells
        of another free slot's leftover or of a running sequence, copied across. Returns (slot,
        reused tokens)."""
        mem = self._model.memory
        limit = len(prompt) - 1  # at least one token must be fed to get logits
        slot = min(self.free)
        src, best_n = -1, 0
        for free in sorted(self.free):
            if self._owner.get(free, ()) != adapters:
                continue
            n = common_prefix(prompt, self._residue.get(free, ()), limit)
            if n > best_n or (n == best_n and free == slot and n > 0):
                src, best_n = free, n
        for s in resident:
            if s.spec.adapters != adapters:
                continue
            n = common_prefix(prompt, s.tokens, min(limit, s.n_kv))
            if n > best_n:
                src, best_n = s.slot, n
        if src == slot:
            if len(self._residue.get(slot, ())) > best_n:
                self._vacate(slot)  # keep a copy of all of it; the slot keeps what it shares
            self.free.remove(slot)
            self._residue.pop(slot, None)
            llama_cpp.llama_memory_seq_rm(mem, slot, best_n, -1)
            return slot, best_n
        self._vacate(slot, keep=src)
        self.free.remove(slot)
        self.copy_prefix(src, slot, best_n)
        return slot, best_n

    def _vacate(self, slot: int, *, keep: int = -1) -> None:
        """Per-slot layout, before free ``slot`` is taken: copy its leftover prefix into the least
        recently freed other free slot (not ``keep``), so that the prefix cache loses its oldest
        leftover rather than this one (a whole-stream copy, applied at the next decode, before
        anything is written to ``slot``)."""
        tokens = self._residue.pop(slot, None)
        spare = next((s for s in self.free if s not in (slot, keep)), None)
        if not tokens or spare is None:
            return
        self.copy_prefix(slot, spare, len(tokens))
        self._residue[spare] = tokens
        self._owner[spare] = self._owner.get(slot, ())
        self.free.remove(spare)
        self.free.append(spare)

    def compact(self, resident: Iterable[Seq]) -> None:
        """Per-slot layout: keep the ``resident`` sequences in the lowest slots.

        llama.cpp decodes a batch over per-sequence streams in ubatches of *consecutive*
        sequence ids (``split_equal`` in sequential mode), one forward pass each. Sequences in
        scattered slots (as finishes and admissions leave them) turn one decode into several:
        16 decoding sequences in shuffled batch order took 3.4x the time of the same 16 in slot
        order, 4 in slots 0, 4, 8, 12 took 2.5x the time of 4 in slots 0-3
        (``bench/ubatch_split.py``), and a server got slower the longer it ran
        (``bench/server_aging.py``). So a sequence above a free slot moves down into it
        (a whole-stream copy, applied at the next decode; it changes ``Seq.slot``), and the
        engine builds its batches in slot order.
        """
        seqs = list(resident)
        while self.free and seqs:
            hole = min(self.free)
            top = max(seqs, key=lambda s: s.slot)
            if top.slot < hole or hole in self._pending or top.slot in self._pending:
                return
            self._vacate(hole)
            self.copy_prefix(top.slot, hole, top.n_kv)
            llama_cpp.llama_memory_seq_rm(self._model.memory, top.slot, -1, -1)
            self.free.remove(hole)
            self.free.append(top.slot)
            self._owner[hole] = top.spec.adapters
            top.slot = hole

    def copy_prefix(self, src: int, dst: int, n: int) -> None:
        """Empty ``dst``, then make its first ``n`` cells a copy of those of ``src`` (none if n <= 0)."""
        mem = self._model.memory
        llama_cpp.llama_memory_seq_rm(mem, dst, -1, -1)
        if n <= 0:
            return
        if self._model.shape.kv_unified:
            llama_cpp.llama_memory_seq_cp(mem, src, dst, 0, n)
            return
        # Across streams llama.cpp copies only whole buffers (a partial range aborts the
        # process): copy everything, then drop the cells past the shared prefix. The copy is
        # applied at the next decode.
        llama_cpp.llama_memory_seq_cp(mem, src, dst, -1, -1)
        llama_cpp.llama_memory_seq_rm(mem, dst, n, -1)
        self._pending.update((src, dst))

    # --- queued copies -----------------------------------------------------------------------------

    def pending(self, slot: int) -> bool:
        """Whether a cross-stream copy from or to ``slot`` waits for the next decode."""
        return slot in self._pending

    def copies_applied(self) -> None:
        """A decode ran: llama.cpp applied the queued copies before it."""
        self._pending.clear()

    # --- giving a slot back ------------------------------------------------------------------------

    def release(self, seq: Seq, *, keep_prefix: bool) -> None:
        """Free ``seq``'s slot; with ``keep_prefix``, its computed KV stays for reuse (the slot's
        residue, or a prefix-cache entry in the unified layout)."""
        mem = self._model.memory
        if not self._model.shape.kv_unified:
            # The slot keeps its KV as the prefix cache until another sequence takes it.
            if keep_prefix and self._keep_residue and seq.n_kv > 0:
                llama_cpp.llama_memory_seq_rm(mem, seq.slot, seq.n_kv, -1)
                self._residue[seq.slot] = seq.tokens[: seq.n_kv]
            else:
                llama_cpp.llama_memory_seq_rm(mem, seq.slot, -1, -1)
                self._residue.pop(seq.slot, None)
            self.free.append(seq.slot)
            return
        if keep_prefix and seq.n_kv > 0 and (self._free_cache_ids or self._cache):
            if not self._free_cache_ids:
                self.evict_oldest()
            cid = self._free_cache_ids.pop()
            llama_cpp.llama_memory_seq_rm(mem, cid, -1, -1)
            llama_cpp.llama_memory_seq_cp(mem, seq.slot, cid, 0, seq.n_kv)
            self._cache[cid] = seq.tokens[: seq.n_kv]
            self._owner[cid] = seq.spec.adapters
        llama_cpp.llama_memory_seq_rm(mem, seq.slot, -1, -1)
        self.free.append(seq.slot)
