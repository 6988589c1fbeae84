from __future__ import annotations

import math

import pytest

from llmos.config import Limits
from llmos.errors import InvalidRequest
from llmos.kernel.sampling_params import DEFAULT_MAX_TOKENS, to_sampling, validate
from llmos.kernel.types import GenerationParams


def test_request_values_override_model_defaults_which_override_llmos_defaults() -> None:
    defaults = {"temperature": 0.2, "top_k": 20, "stop": ["<|end|>"], "max_tokens": 64, "bogus": 1}
    sp = to_sampling(GenerationParams(), defaults)
    assert (sp.temperature, sp.top_k, sp.stop, sp.max_tokens) == (0.2, 20, ("<|end|>",), 64)
    sp = to_sampling(GenerationParams(temperature=0.0, stop=("x",), max_tokens=5, top_p=0.5), defaults)
    assert (sp.temperature, sp.stop, sp.max_tokens, sp.top_p) == (0.0, ("<|end|>", "x"), 5, 0.5)
    assert to_sampling(GenerationParams()).max_tokens == DEFAULT_MAX_TOKENS


def test_seed_differs_per_choice_and_logprobs_pass_through() -> None:
    p = GenerationParams(seed=10, logprobs=3, presence_penalty=1.0, frequency_penalty=-1.0)
    assert [to_sampling(p, choice=i).seed for i in range(3)] == [10, 11, 12]
    sp = to_sampling(p)
    assert (sp.logprobs, sp.presence_penalty, sp.frequency_penalty) == (3, 1.0, -1.0)
    assert to_sampling(GenerationParams()).seed is None


@pytest.mark.parametrize(
    ("params", "param"),
    [
        (GenerationParams(n=0), "n"),
        (GenerationParams(n=9), "n"),
        (GenerationParams(max_tokens=0), "max_tokens"),
        (GenerationParams(max_tokens=10**6), "max_tokens"),
        (GenerationParams(temperature=math.nan), "temperature"),
        (GenerationParams(temperature=2.5), "temperature"),
        (GenerationParams(top_p=0.0), "top_p"),
        (GenerationParams(frequency_penalty=2.1), "frequency_penalty"),
        (GenerationParams(logprobs=21), "logprobs"),
        (GenerationParams(stop=tuple("abcdefghi")), "stop"),
        (GenerationParams(stop=("x" * 300,)), "stop"),
    ],
)
def test_invalid_values_name_the_field(params: GenerationParams, param: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        validate(params, Limits())
    assert err.value.param == param


def test_valid_extremes_pass() -> None:
    validate(GenerationParams(n=8, temperature=0, top_p=1, max_tokens=8192, logprobs=20), Limits())
