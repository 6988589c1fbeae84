"""A reusable ``llama_batch``: filled token by token each step, never reallocated."""

from __future__ import annotations

from typing import Any

import llama_cpp

from llmos.errors import EngineError
from llmos.types import TokenId


class Batch:
    """A fixed-capacity batch of (token, position, sequence id, wants-logits) rows."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._batch: Any = llama_cpp.llama_batch_init(capacity, 0, 1)
        self._token = self._batch.token
        self._pos = self._batch.pos
        self._n_seq_id = self._batch.n_seq_id
        self._seq_id = self._batch.seq_id
        self._logits = self._batch.logits
        self.n_tokens = 0

    @property
    def raw(self) -> Any:
        self._batch.n_tokens = self.n_tokens
        return self._batch

    def clear(self) -> None:
        self.n_tokens = 0

    def add_run(self, tokens: list[TokenId], start_pos: int, seq: int, *, logits_last: bool) -> int:
        """Append consecutive tokens of one sequence; returns the batch index of the last one."""
        n = self.n_tokens
        if n + len(tokens) > self.capacity:
            raise EngineError(f"batch overflow: {n + len(tokens)} > {self.capacity}")
        tok, pos, nsid, sid, lg = self._token, self._pos, self._n_seq_id, self._seq_id, self._logits
        for i, t in enumerate(tokens):
            j = n + i
            tok[j] = t
            pos[j] = start_pos + i
            nsid[j] = 1
            sid[j][0] = seq
            lg[j] = 0
        last = n + len(tokens) - 1
        if logits_last:
            lg[last] = 1
        self.n_tokens = n + len(tokens)
        return last

    def close(self) -> None:
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
