"""The graph API: models, loading and validation.

The names below load on first use (PEP 562), so that importing a light submodule such as
``drivetrain.api.errors`` or ``drivetrain.api.enums`` does not import pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from drivetrain.lazy import exports

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

_API: dict[str, tuple[str, str]] = {
    "FieldError": ("drivetrain.api.errors", "FieldError"),
    "InvalidGraph": ("drivetrain.api.errors", "InvalidGraph"),
    "LoadedFile": ("drivetrain.api.loader", "LoadedFile"),
    "load_file": ("drivetrain.api.loader", "load_file"),
    "load_graphs": ("drivetrain.api.loader", "load_graphs"),
    "load_text": ("drivetrain.api.loader", "load_text"),
    "API_VERSION": ("drivetrain.api.models", "API_VERSION"),
    "DYNAMO_API_VERSION": ("drivetrain.api.models", "DYNAMO_API_VERSION"),
    "DYNAMO_KIND": ("drivetrain.api.models", "DYNAMO_KIND"),
    "KIND": ("drivetrain.api.models", "KIND"),
    "GraphDeployment": ("drivetrain.api.models", "GraphDeployment"),
    "Service": ("drivetrain.api.models", "Service"),
    "parse_graph": ("drivetrain.api.validate", "parse_graph"),
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


__getattr__, __dir__ = exports(__name__, globals(), _API)
