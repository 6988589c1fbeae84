"""Inference engines: one protocol (``base``), a llama.cpp backend, a deterministic fake, backends by name."""
