"""The engine protocol: what the scheduler and the kernel may ask of any inference backend.

An engine holds one loaded model and a fixed number of *slots*; each admitted sequence
occupies one slot and its KV cells until it finishes, is aborted or is preempted.
The caller drives it step by step: ``step(plan)`` runs exactly one forward pass
(one ``llama_decode`` for the llama.cpp backend) over the sequences the plan names,
prefill chunks and one decode token each, and returns what each produced.

Implementations: ``llamacpp`` (GGUF via llama.cpp's low-level API), ``fake`` (deterministic,
for tests of everything above the engine), ``sentence_transformers`` (embeddings); by name in
:mod:`llmos.engine.backends`. Each loaded model's engine runs inside an engine core
(:mod:`llmos.core`), stepped by its scheduler in one loop.

Threads: one caller at a time, except that ``render_chat`` and ``tokenize`` may be called from one
other thread while the rest runs (the core's frontend thread renders and tokenizes prompts while
its loop decodes); ``unload`` never runs beside them.

Errors: a request-level failure raises :class:`llmos.errors.EngineGenerateError` (or reports
``finish_reason="error"`` for the one sequence); a dead backend raises
:class:`llmos.errors.EngineDeadError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from llmos.config import CpuWeightsMode
from llmos.errors import InvalidRequest
from llmos.types import ChatMessage, FinishReason, SeqId, TokenId


@dataclass(frozen=True)
class LoadSpec:
    """Everything a backend needs to load one model."""

    model_path: Path
    format: str = "gguf"
    n_ctx: int = 8192
    """KV cells shared by all slots."""
    n_slots: int = 16
    n_threads: int = 0
    """0: the backend picks (physical cores)."""
    n_batch: int = 512
    """Upper bound on tokens in one step."""
    embedding: bool = False
    chat_template: str | None = None
    """Overrides the template found in the model file."""
    cpu_weights: CpuWeightsMode = "auto"
    """``auto``: a backend may load a CPU-friendlier encoding of the weights (see
    :mod:`llmos.engine.cpu_weights`); ``native``: the file as it is."""
    derived_dir: Path | None = None
    """Where a backend keeps weights it derives from ``model_path`` (None: a temp folder)."""
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EngineInfo:
    model_path: str
    n_ctx: int
    n_slots: int
    n_batch: int
    n_vocab: int
    n_ctx_train: int
    eos_token_ids: tuple[TokenId, ...]
    bos_token: str
    eos_token: str
    chat_template: str | None
    embedding_dim: int
    backend: str
    weights_path: str = ""
    """The file the weights were mapped from (``model_path`` or a conversion of it)."""
    weights: str = ""
    """How they are encoded, e.g. ``q8_0 (converted from q4_1)``."""


@dataclass(frozen=True)
class SamplingParams:
    """Per-sequence sampling. ``temperature == 0`` means greedy."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False
    logprobs: int | None = None
    """None: no logprobs; 0: the chosen token's; k > 0: also the top k alternatives."""
    grammar: str | None = None
    """A GBNF grammar constraining the output (structured output, tool calls)."""
    logit_bias: tuple[tuple[TokenId, float], ...] = ()
    """``(token id, bias)`` pairs added to those tokens' logits before sampling (OpenAI's
    ``logit_bias``: -100 all but bans a token, 100 all but forces it)."""


@dataclass(frozen=True)
class LoraAdapter:
    """A LoRA adapter a sequence runs with: its file (llama.cpp's adapter GGUF, made for the
    loaded model) and its scale. The path is the identity: adapters are content-addressed blobs."""

    path: str
    scale: float = 1.0


AdapterSet = tuple[LoraAdapter, ...]
"""The adapters a sequence runs with (``()``: the base model alone). A step never decodes two
adapter sets together, and a sequence reuses only KV computed under its own adapter set."""


@dataclass(frozen=True)
class SequenceSpec:
    """A sequence to admit: its id, its prompt as tokens, how to sample it, and the LoRA
    adapters applied to the model for it."""

    seq_id: SeqId
    prompt: tuple[TokenId, ...]
    params: SamplingParams = field(default_factory=SamplingParams)
    adapters: AdapterSet = ()


@dataclass(frozen=True)
class Admission:
    seq_id: SeqId
    slot: int
    cached_tokens: int
    """Prompt tokens whose KV was reused from a resident sequence instead of recomputed."""


@dataclass(frozen=True)
class StepPlan:
    """Which sequences run in one step, and how many tokens each feeds.

    ``tokens[seq_id]`` is 1 for a decoding sequence, or the size of the next prefill chunk
    for a sequence still reading its prompt. Resident sequences missing from the plan stay
    in their slot, untouched. The sum must not exceed ``EngineInfo.n_batch``.
    """

    tokens: Mapping[SeqId, int]


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    token_id: TokenId
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class SeqOutput:
    """What one sequence produced in one step.

    ``text`` is the new, stop-string-safe text (text that might begin a stop string is held
    back until it is known not to). ``finish_reason`` is set on the sequence's last output;
    after it the slot is free.
    """

    seq_id: SeqId
    token_ids: tuple[TokenId, ...] = ()
    text: str = ""
    logprobs: tuple[TokenLogprob, ...] = ()
    finish_reason: FinishReason | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    error: str | None = None


@dataclass(frozen=True)
class StepResult:
    outputs: tuple[SeqOutput, ...]
    n_tokens: int
    """Tokens fed to the model in this step (prefill + decode)."""
    elapsed_s: float
    preempted: tuple[SeqSnapshot, ...] = ()
    """Sequences the engine had to preempt to make KV room in this step (resume with ``restore``)."""


SeqPhase = Literal["prefill", "decode"]


@dataclass(frozen=True)
class SeqStatus:
    seq_id: SeqId
    slot: int
    phase: SeqPhase
    prompt_tokens: int
    prompt_remaining: int
    completion_tokens: int
    kv_tokens: int


@dataclass(frozen=True)
class SeqSnapshot:
    """A preempted sequence: enough to resume it in any free slot without recomputing."""

    spec: SequenceSpec
    state: bytes
    """Backend-specific KV state of the sequence (``llama_state_seq_get_data``)."""
    kv_tokens: tuple[TokenId, ...]
    generated: tuple[TokenId, ...]
    pending_text: str = ""
    sampler_state: bytes = b""
    pending_bytes: bytes = b""
    """Undecoded bytes of a UTF-8 character split across tokens (incremental detokenizer state)."""
    cached_tokens: int = 0


@dataclass(frozen=True)
class EngineHealth:
    ok: bool
    detail: str = ""
    slots_used: int = 0
    slots_total: int = 0
    kv_used: int = 0
    kv_total: int = 0
    rss_bytes: int = 0
    pid: int = 0


@runtime_checkable
class Engine(Protocol):
    """One loaded model, stepped by its caller. One caller at a time, except ``render_chat`` and
    ``tokenize``, which one other thread may call beside the rest (see the module docstring)."""

    def load(self, spec: LoadSpec) -> EngineInfo:
        """Load the model; raises InvalidModelFile or EngineError."""
        ...

    @property
    def info(self) -> EngineInfo: ...

    def tokenize(
        self, text: str, *, add_special: bool = True, parse_special: bool = True
    ) -> list[TokenId]: ...

    def detokenize(self, tokens: Sequence[TokenId]) -> str: ...

    def render_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        add_generation_prompt: bool = True,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> str:
        """Render messages with the model's chat template in a sandbox (untrusted template)."""
        ...

    def can_admit(self, n_prompt_tokens: int) -> bool:
        """Whether a free slot and enough KV cells exist for a new sequence of this size."""
        ...

    def admit(self, spec: SequenceSpec) -> Admission:
        """Give the sequence a slot (reusing a resident prefix computed under the same adapter
        set where one matches), loading its adapters on first use. Raises InvalidRequest for an
        adapter the model cannot take."""
        ...

    def step(self, plan: StepPlan | None = None) -> StepResult:
        """One forward pass. ``None``: every resident sequence, prefill chunked to n_batch."""
        ...

    def abort(self, seq_id: SeqId) -> None:
        """Drop the sequence and free its slot and KV cells now. Unknown ids are ignored."""
        ...

    def preempt(self, seq_id: SeqId) -> SeqSnapshot:
        """Save the sequence's state, then free its slot and KV cells."""
        ...

    def restore(self, snapshot: SeqSnapshot) -> Admission:
        """Resume a preempted sequence in any free slot; it continues as if never stopped."""
        ...

    def sequences(self) -> list[SeqStatus]: ...

    def embed(
        self, inputs: Sequence[str | Sequence[TokenId]], *, normalize: bool = True
    ) -> list[list[float]]: ...

    def health(self) -> EngineHealth: ...

    def unload(self) -> None: ...


def check_embedding_input(toks: Sequence[TokenId], max_tokens: int, n_vocab: int) -> None:
    """Raise InvalidRequest for an input no embedding engine can take: empty, longer than
    ``max_tokens``, or holding a token id outside the vocabulary. (No input index in the
    messages: the kernel embeds a request in chunks.)"""
    if not toks:
        raise InvalidRequest("cannot embed an empty input", param="input")
    if len(toks) > max_tokens:
        raise InvalidRequest(
            f"an input is {len(toks)} tokens; this model's maximum context length for embeddings "
            f"is {max_tokens} tokens",
            param="input",
        )
    if min(toks) < 0 or max(toks) >= n_vocab:
        raise InvalidRequest(
            f"an input holds a token id outside the vocabulary [0, {n_vocab})", param="input"
        )
