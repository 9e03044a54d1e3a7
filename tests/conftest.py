"""Fixtures every test package may use."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiny_llama import build_tiny_llama


@pytest.fixture(scope="session")
def tiny_llama() -> Path:
    """The tiny random Llama model folder, built once (cached on disk across sessions)."""
    return build_tiny_llama()
