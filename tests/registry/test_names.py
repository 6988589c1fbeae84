from __future__ import annotations

import pytest

from llmos.errors import InvalidModelName
from llmos.registry.names import parse_name
from llmos.registry.sources.hf import parse_hf_name


@pytest.mark.parametrize(
    ("raw", "family", "tag", "digest"),
    [
        ("smollm2:135m", "smollm2", "135m", None),
        ("smollm2", "smollm2", "latest", None),
        ("Gemma3:270M", "gemma3", "270m", None),
        ("me/model:v1", "me/model", "v1", None),
        ("hf.co/org/repo:q4_k_m", "hf.co/org/repo", "q4_k_m", None),
        ("smollm2@sha256:" + "a" * 64, "smollm2", None, "a" * 64),
    ],
)
def test_valid_names(raw: str, family: str, tag: str | None, digest: str | None) -> None:
    ref = parse_name(raw)
    assert (ref.family, ref.tag, ref.digest) == (family, tag, digest)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "../x",
        "a/../b:c",
        "a:b:c",
        "a:",
        ":b",
        "a/b/c/d:e",
        "-a:b",
        "a b:c",
        "x@sha256:abc",
        "x@sha256:" + "g" * 64,
        "x@sha256:" + "a" * 63,
        "x@md5:" + "a" * 32,
    ],
)
def test_invalid_names(raw: str) -> None:
    with pytest.raises(InvalidModelName) as exc:
        parse_name(raw)
    assert "smollm2:135m" in exc.value.message  # the message shows what a valid name looks like


def test_hub_names() -> None:
    ref = parse_hf_name("hf.co/Org/Repo-GGUF:Model.Q4_K_M.gguf")
    assert ref is not None
    assert (ref.org, ref.repo, ref.file) == ("Org", "Repo-GGUF", "Model.Q4_K_M.gguf")
    assert ref.local_name == "hf.co/org/repo-gguf:model.q4_k_m"
    assert parse_name(ref.local_name).family == "hf.co/org/repo-gguf"
    assert parse_hf_name("smollm2:135m") is None
    assert parse_hf_name(ref.local_name) is None  # the registered name is an ordinary name
    for bad in (
        "hf.co/org:file.gguf",
        "hf.co/org/repo",
        "hf.co/../repo:f.gguf",
        "hf.co/o/r:../f.gguf",
    ):
        with pytest.raises(InvalidModelName):
            parse_hf_name(bad)
