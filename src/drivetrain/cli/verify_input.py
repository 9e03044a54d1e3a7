"""What ``drivetrain verify -f FILE`` reads: graphs and Kubernetes objects, per document.

An RLRun file is its graphs' rendered objects (the Ray objects are KubeRay's to run).

A ``GraphDeployment`` or ``DynamoGraphDeployment`` document is rendered first (as ``drivetrain
render`` would: what the other documents define is no external reference of its pods); any
other document is taken as Kubernetes objects as written: one object, a
``kind: List`` (``kubectl get -o yaml``) or a list of objects (``drivetrain render -o json``).
Every error of every document is reported together, each naming the file, the document and the
field, before anything is simulated.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from drivetrain.api.errors import FieldError, InvalidGraph
from drivetrain.api.loader import GRAPH_KINDS, parse_yaml_documents
from drivetrain.api.validate import check_document, graph_warnings
from drivetrain.cli.inputs import read_input, run_objects
from drivetrain.cli.output import note
from drivetrain.render import render_graph
from drivetrain.render.siblings import provided_tokens
from drivetrain.verify import shape_errors
from drivetrain.verify.checks import flatten_lists
from drivetrain.verify.controllers import object_name


def _members(doc: Any) -> Iterator[tuple[str, Any]]:
    """``(path inside the document, object)`` for each object a manifest document holds."""
    if isinstance(doc, list):
        for i, item in enumerate(doc):
            yield f"[{i}]", item
    elif isinstance(doc, dict) and doc.get("kind") == "List":
        for i, item in enumerate(flatten_lists([doc])):
            yield f"items[{i}]", item
    else:
        yield "", doc


def _joined(prefix: str, path: str) -> str:
    if not prefix or not path:
        return prefix or path
    return f"{prefix}{path}" if path.startswith("[") else f"{prefix}.{path}"


def read_objects(
    path: Path, namespace: str, multinode: str | None
) -> tuple[list[dict[str, Any]], list[FieldError]]:
    """Every object to verify in ``path`` (``-``: stdin), graphs rendered, and the graphs'
    warnings; ``InvalidGraph`` with every error."""
    inp = read_input(path)
    if inp.runs:
        _, children, run_warnings = run_objects(inp, namespace, multinode, children=True)
        return children, run_warnings
    text, file = inp.text, inp.file
    errors: list[FieldError] = []
    warnings: list[FieldError] = []
    documents = parse_yaml_documents(text, file)
    # Manifests first: what they define is no external reference of the graphs beside them
    # (render/siblings.py), so a graph verifies as `drivetrain render` renders it.
    manifests = {
        index: list(_members(doc))
        for index, doc in enumerate(documents)
        if doc is not None and not (isinstance(doc, dict) and doc.get("kind") in GRAPH_KINDS)
    }
    provided = provided_tokens(
        obj for members in manifests.values() for _, obj in members if isinstance(obj, dict)
    )
    objects: list[dict[str, Any]] = []
    where: list[tuple[int, str]] = []  # (document, path inside it) of each manifest object
    for index, doc in enumerate(documents):
        if index in manifests:
            for inner, obj in manifests[index]:
                objects.append(obj)
                where.append((index, inner))
            continue
        if doc is None:
            continue
        graph, found = check_document(doc, file=file, document=index)
        if graph is None or found:
            errors += found
            continue
        warnings += [w.located(file, index) for w in graph_warnings(graph)]
        if not graph.spec.services:
            note(f"{file}: graph {graph.name} has no services; nothing to render")
        try:
            made = render_graph(graph, namespace=namespace, multinode=multinode, provided=provided)
        except InvalidGraph as exc:
            errors += [e.located(file, index) for e in exc.errors]
            continue
        objects += made
        where += [(index, "")] * len(made)
    for error in shape_errors(objects):
        document, inner = where[error.index]
        message = error.message
        if error.path and error.path != "metadata":
            message = f"{object_name(objects[error.index])}: {message}"
        errors.append(FieldError(_joined(inner, error.path), message, file=file, document=document))
    if errors:
        raise InvalidGraph(sorted(errors, key=lambda e: e.document or 0))
    if all(doc is None for doc in documents):
        raise InvalidGraph([FieldError("", "no graph and no Kubernetes object found", file=file)])
    return objects, warnings
