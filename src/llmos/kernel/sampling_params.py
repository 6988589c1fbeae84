"""OpenAI's sampling parameters → the engine's :class:`SamplingParams`, in one place.

Precedence: what the request gives, then the model's defaults (its manifest's ``parameters``,
e.g. a recommended temperature or stop strings), then llmos's defaults. Values are checked
against the configured limits here, so every caller (HTTP, SDK, CLI in-process) gets the same
:class:`llmos.errors.InvalidRequest` for the same bad input.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from llmos.config import Limits
from llmos.engine.base import SamplingParams
from llmos.errors import InvalidRequest
from llmos.kernel.types import GenerationParams

DEFAULT_MAX_TOKENS = 512
MAX_LOGIT_BIAS = 1024
"""Tokens one request's ``logit_bias`` may name."""


def validate(params: GenerationParams, limits: Limits) -> None:
    """Raise InvalidRequest (naming the field) for a value OpenAI would reject or over a limit."""
    if not 1 <= params.n <= limits.max_n:
        raise InvalidRequest(f"n must be between 1 and {limits.max_n}", param="n")
    if params.max_tokens is not None and not 1 <= params.max_tokens <= limits.max_tokens:
        raise InvalidRequest(f"max_tokens must be between 1 and {limits.max_tokens}", param="max_tokens")
    _range("temperature", params.temperature, 0.0, 2.0)
    _range("top_p", params.top_p, 0.0, 1.0, low_open=True)
    _range("presence_penalty", params.presence_penalty, -2.0, 2.0)
    _range("frequency_penalty", params.frequency_penalty, -2.0, 2.0)
    if params.logprobs is not None and not 0 <= params.logprobs <= limits.max_logprobs:
        raise InvalidRequest(f"logprobs must be between 0 and {limits.max_logprobs}", param="logprobs")
    if len(params.stop) > limits.max_stop:
        raise InvalidRequest(f"at most {limits.max_stop} stop sequences are allowed", param="stop")
    if len(params.logit_bias) > MAX_LOGIT_BIAS:
        raise InvalidRequest(f"logit_bias may name at most {MAX_LOGIT_BIAS} tokens", param="logit_bias")
    for token, bias in params.logit_bias:
        if token < 0:
            raise InvalidRequest("logit_bias keys must be token ids (0 or more)", param="logit_bias")
        _range("logit_bias", bias, -100.0, 100.0)
    for s in params.stop:
        if not s:
            raise InvalidRequest("stop sequences must not be empty", param="stop")
        if len(s) > limits.max_stop_chars:
            raise InvalidRequest(
                f"a stop sequence may be at most {limits.max_stop_chars} characters", param="stop"
            )


def _range(name: str, value: float | None, low: float, high: float, *, low_open: bool = False) -> None:
    if value is None:
        return
    if math.isnan(value) or value > high or value < low or (low_open and value == low):
        bound = f"({low}, {high}]" if low_open else f"[{low}, {high}]"
        raise InvalidRequest(f"{name} must be in {bound}", param=name)


def to_sampling(
    params: GenerationParams,
    model_defaults: Mapping[str, Any] | None = None,
    *,
    choice: int = 0,
) -> SamplingParams:
    """The engine's sampling parameters for choice ``choice`` of a request.

    With a seed and ``n > 1`` each choice gets ``seed + choice``: reproducible, yet not n copies.
    """
    base = _defaults(model_defaults or {})
    stop = tuple(dict.fromkeys((*base.stop, *params.stop)))
    seed = None if params.seed is None else params.seed + choice
    return replace(
        base,
        temperature=base.temperature if params.temperature is None else params.temperature,
        top_p=base.top_p if params.top_p is None else params.top_p,
        presence_penalty=base.presence_penalty
        if params.presence_penalty is None
        else params.presence_penalty,
        frequency_penalty=(
            base.frequency_penalty if params.frequency_penalty is None else params.frequency_penalty
        ),
        seed=seed,
        max_tokens=params.max_tokens or base.max_tokens,
        stop=stop,
        logprobs=params.logprobs,
        grammar=params.grammar,
        ignore_eos=params.ignore_eos,
        logit_bias=params.logit_bias,
    )


def _defaults(d: Mapping[str, Any]) -> SamplingParams:
    """llmos's defaults overlaid with the manifest's (unknown or malformed keys ignored)."""
    out = SamplingParams(max_tokens=DEFAULT_MAX_TOKENS)
    floats = ("temperature", "top_p", "min_p", "repeat_penalty", "presence_penalty", "frequency_penalty")
    ints = ("top_k", "repeat_last_n", "max_tokens")
    changes: dict[str, Any] = {}
    for key in floats:
        if isinstance(d.get(key), int | float) and not isinstance(d.get(key), bool):
            changes[key] = float(d[key])
    for key in ints:
        if isinstance(d.get(key), int) and not isinstance(d.get(key), bool):
            changes[key] = int(d[key])
    stop = d.get("stop")
    if isinstance(stop, str):
        changes["stop"] = (stop,)
    elif isinstance(stop, list | tuple):
        changes["stop"] = tuple(s for s in stop if isinstance(s, str) and s)
    return replace(out, **changes)
