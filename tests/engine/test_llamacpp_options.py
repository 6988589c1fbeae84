"""Load options of the llama.cpp engine that need no model: the KV layout switch."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmos.engine.base import LoadSpec
from llmos.engine.llamacpp.model import kv_unified_option
from llmos.errors import InvalidRequest


def _spec(**kw: object) -> LoadSpec:
    embedding = bool(kw.pop("embedding", False))
    return LoadSpec(model_path=Path("m.gguf"), embedding=embedding, extra=kw)


def test_per_slot_streams_by_default_and_unified_on_request() -> None:
    assert kv_unified_option(_spec()) is False
    assert kv_unified_option(_spec(kv_unified=True)) is True
    assert kv_unified_option(_spec(kv_unified="true")) is True
    assert kv_unified_option(_spec(kv_unified="off")) is False


def test_embedding_contexts_stay_unified() -> None:
    assert kv_unified_option(_spec(embedding=True)) is True
    assert kv_unified_option(_spec(embedding=True, kv_unified=False)) is True


def test_a_garbled_value_is_refused() -> None:
    with pytest.raises(InvalidRequest) as info:
        kv_unified_option(_spec(kv_unified="maybe"))
    assert info.value.param == "kv_unified"
