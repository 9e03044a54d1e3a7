"""Lazy re-exports for a package ``__init__`` (PEP 562); a leaf: imports nothing of drivetrain.

``__getattr__, __dir__ = exports(__name__, globals(), {"name": ("module", "attr"), ...})``
makes each name load its module on first use, so importing the package costs nothing until
then (the CLI's start must not pay for pydantic, aiohttp or lightkube).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def exports(
    package: str, namespace: dict[str, Any], table: dict[str, tuple[str, str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` that load ``table``'s names on demand."""

    def getattr_(name: str) -> Any:
        where = table.get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[0]), where[1])
        namespace[name] = value  # later lookups do not come here again
        return value

    def dir_() -> list[str]:
        return sorted({*namespace, *table})

    return getattr_, dir_
