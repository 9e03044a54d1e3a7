"""``extraPodSpec`` and ``mainContainer`` checked against the Kubernetes PodSpec schema.

The schema ships with the package (``schemas/podspec.json``: the 1.30 PodSpec and what it
reaches, trimmed by ``scripts/trim-podspec-schema.py``) and ``schemawalk`` walks it; a test
checks the walk against the jsonschema library on the example corpus.  The graph's own
``extraPodSpec`` is a partial PodSpec and ``mainContainer`` a partial Container, so their
top-level ``required`` fields are not demanded (drivetrain fills them in).
"""

from __future__ import annotations

from typing import Any

from drivetrain.api import schemawalk
from drivetrain.api.errors import FieldError

SCHEMA = "podspec.json"
POD_SPEC = "io.k8s.api.core.v1.PodSpec"
CONTAINER = "io.k8s.api.core.v1.Container"


def field_names(definition: str) -> frozenset[str]:
    """The fields of a Kubernetes type (``POD_SPEC``, ``CONTAINER``)."""
    return frozenset(schemawalk.definitions(SCHEMA)[definition]["properties"])


def check(value: Any, definition: str, path: str, *, partial: bool = False) -> list[FieldError]:
    """Every problem of ``value`` as a Kubernetes ``definition``, with field paths under ``path``.

    ``partial``: the top level may leave out required fields (someone else sets them).
    """
    return schemawalk.check(SCHEMA, value, definition, path, partial=partial)
