"""Sizes as the CLI writes them: binary units, the same figures as the web console."""

from __future__ import annotations

import pytest

from llmos.cli.format import human_size


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (None, "-"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (98_362_432, "94 MiB"),  # SmolLM2's file: 93.8 MiB (98.4 MB in decimal units)
        (444_138_136, "424 MiB"),
        (1_395_864_371, "1.3 GiB"),
        (24 * 1024**3, "24 GiB"),
    ],
)
def test_sizes_are_binary_like_the_console(n: int | None, text: str) -> None:
    assert human_size(n) == text
