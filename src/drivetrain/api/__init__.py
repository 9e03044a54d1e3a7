"""The graph API: models, loading and validation.

The names below load on first use (PEP 562), so that importing a light submodule such as
``drivetrain.api.errors`` or ``drivetrain.api.enums`` does not import pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from drivetrain.api.errors import FieldError, InvalidGraph
    from drivetrain.api.loader import LoadedFile, load_file, load_graphs, load_text
    from drivetrain.api.models import (
        API_VERSION,
        DYNAMO_API_VERSION,
        DYNAMO_KIND,
        KIND,
        GraphDeployment,
        Service,
    )
    from drivetrain.api.validate import parse_graph

_WHERE = {
    "FieldError": "errors",
    "InvalidGraph": "errors",
    "LoadedFile": "loader",
    "load_file": "loader",
    "load_graphs": "loader",
    "load_text": "loader",
    "API_VERSION": "models",
    "DYNAMO_API_VERSION": "models",
    "DYNAMO_KIND": "models",
    "KIND": "models",
    "GraphDeployment": "models",
    "Service": "models",
    "parse_graph": "validate",
}

__all__ = [
    "API_VERSION",
    "DYNAMO_API_VERSION",
    "DYNAMO_KIND",
    "KIND",
    "FieldError",
    "GraphDeployment",
    "InvalidGraph",
    "LoadedFile",
    "Service",
    "load_file",
    "load_graphs",
    "load_text",
    "parse_graph",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
