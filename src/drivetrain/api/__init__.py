"""The graph API: models, loading and validation."""

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
