"""The tiny random Llama model (``make tiny-model``, scripts/tiny_model.py) for tests.

``tiny_llama`` (a session fixture in tests/conftest.py) builds it once into
``examples/models/tiny-llama`` (git-ignored), the folder ``make tiny-model`` and
``examples/real-cpu.yaml`` use, and reuses it while the script and the tokenizer are unchanged.
Tests that need it skip when torch or transformers is not installed (scripts/test-deps.sh
installs both).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from tests.paths import REPO

SCRIPT = REPO / "scripts" / "tiny_model.py"


def builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tiny_model", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def need_transformers() -> None:
    for name in ("torch", "transformers"):
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} is not installed (scripts/test-deps.sh installs it)")


def build_tiny_llama() -> Path:
    need_transformers()
    module = builder()
    return Path(module.build(module.DEFAULT_OUT, module.DEFAULT_TOKENIZER))
