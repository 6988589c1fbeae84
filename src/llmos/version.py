"""The package version, in a module of its own: every layer may read it without importing
``llmos`` itself, whose public face reaches for the SDK."""

from __future__ import annotations

__version__ = "0.1.0"
