"""What a benchmark sends: the target, the shape of every request, and when requests arrive.

Prompts are synthesized from the seed: request ``i`` of seed ``s`` always gets the same text, on
every machine and Python version, so two servers (or two runs) see identical load. A prompt is
``prompt_tokens`` common English words (each one token in the usual BPE vocabularies, so the
count is close to the target; the server's ``usage`` reports the exact one).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal
from urllib.parse import urlsplit

from llmos.errors import InvalidRequest

Endpoint = Literal["chat", "completions"]

DEFAULT_REQUESTS = 100
"""Requests sent when neither a count nor a duration is given."""

_VOCABULARY = (
    "time year people way day man thing woman life child world school state family student group "
    "country problem hand part place case week company system program question work government number "
    "night point home water room mother area money story fact month lot right study book eye job word "
    "business issue side kind head house service friend father power hour game line end member law car "
    "city community name president team minute idea kid body information back parent face others level "
    "office door health person art war history party result change morning reason research girl guy "
    "moment air teacher force education river stone light garden music paper table window bread tree "
    "road summer winter spring autumn mountain island ocean forest village market letter dream voice"
)
_WORDS = _VOCABULARY.split()


def synthesize_prompt(seed: int, index: int, n_words: int) -> str:
    """The prompt of request ``index``: a fixed instruction and ``n_words`` seeded words."""
    rng = random.Random(f"llmos-bench:{seed}:{index}")
    words = " ".join(rng.choice(_WORDS) for _ in range(max(0, n_words - 8)))
    return f"Request {index}. Continue this text: {words}"


def normalize_url(url: str) -> str:
    """``http://host:port`` → ``http://host:port/v1``; a URL with a path is taken as the API root."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidRequest(f"not an http(s) URL: {url!r}", param="url")
    root = url.rstrip("/")
    return root if parts.path.strip("/") else root + "/v1"


@dataclass(frozen=True)
class Workload:
    """One benchmark's settings.

    Arrivals: without ``rate``, a closed loop of ``concurrency`` clients, each sending its next
    request when the previous one ends. With ``rate``, open-loop Poisson arrivals at ``rate``
    requests/s (exponential gaps drawn from the seed); ``concurrency`` then caps the requests in
    flight (None: no cap). The run ends after ``requests`` requests or once ``duration_s`` has
    passed (no new request starts after it; those in flight finish), whichever comes first.
    """

    url: str
    model: str
    endpoint: Endpoint = "chat"
    api_key: str | None = None
    stream: bool = True
    prompt_tokens: int = 128
    max_tokens: int = 128
    ignore_eos: bool = True
    """Ask for exactly ``max_tokens``: sends ``ignore_eos`` (llmos, vLLM) and ``min_tokens``
    (llama-cpp-python's server, vLLM). OpenAI's own API rejects both: turn this off there."""
    temperature: float = 0.0
    seed: int = 0
    concurrency: int | None = 1
    rate: float | None = None
    requests: int | None = None
    duration_s: float | None = None
    timeout_s: float = 600.0
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    """Fields merged into every request body (a server's own extensions)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", normalize_url(self.url))
        if not self.model:
            raise InvalidRequest("a model name is required", param="model")
        if self.prompt_tokens < 1 or self.max_tokens < 1:
            raise InvalidRequest("prompt and output lengths must be at least 1", param="max_tokens")
        if self.concurrency is not None and self.concurrency < 1:
            raise InvalidRequest("concurrency must be at least 1", param="concurrency")
        if self.rate is None and self.concurrency is None:
            raise InvalidRequest("a closed loop needs a concurrency", param="concurrency")
        if self.rate is not None and not self.rate > 0:
            raise InvalidRequest("rate must be a positive number of requests/s", param="rate")
        if self.requests is not None and self.requests < 1:
            raise InvalidRequest("requests must be at least 1", param="requests")
        if self.duration_s is not None and not self.duration_s > 0:
            raise InvalidRequest("duration must be positive", param="duration")
        if self.requests is None and self.duration_s is None:
            object.__setattr__(self, "requests", DEFAULT_REQUESTS)

    @property
    def path(self) -> str:
        return "/chat/completions" if self.endpoint == "chat" else "/completions"

    def body(self, index: int) -> dict[str, Any]:
        """The JSON body of request ``index``."""
        prompt = synthesize_prompt(self.seed, index, self.prompt_tokens)
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "seed": self.seed + index,
            "stream": self.stream,
        }
        if self.endpoint == "chat":
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        if self.stream:
            body["stream_options"] = {"include_usage": True}
        if self.ignore_eos:
            # llmos and vLLM read ignore_eos; llama-cpp-python's server and vLLM read min_tokens.
            body["ignore_eos"] = True
            body["min_tokens"] = self.max_tokens
        body.update(self.extra_body)
        return body

    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def describe(self) -> dict[str, Any]:
        """The settings as JSON values: every field but the API key, which is never included."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "api_key"}
        out["extra_body"] = dict(self.extra_body)
        return out
