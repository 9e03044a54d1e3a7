from __future__ import annotations

import textwrap
from typing import Any

import pytest

from drivetrain.api import GraphDeployment, load_text
from drivetrain.render import render_graph


def graph_from(text: str) -> GraphDeployment:
    (graph,) = load_text(textwrap.dedent(text)).graphs
    return graph


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in by_kind(objects, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, (
        f"expected one {kind} {name or ''}, got {[o['metadata']['name'] for o in found]}"
    )
    return found[0]


def main_container(pod_spec: dict[str, Any]) -> dict[str, Any]:
    (main,) = [c for c in pod_spec["containers"] if c["name"] == "main"]
    return main


@pytest.fixture
def render():
    def _render(text: str, **kwargs: Any) -> list[dict[str, Any]]:
        return render_graph(graph_from(text), namespace=kwargs.pop("namespace", "ml"), **kwargs)

    return _render
