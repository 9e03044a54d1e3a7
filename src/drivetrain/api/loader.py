"""Read graph files: several YAML documents per file, GraphDeployment and DGD alike.

Documents of other kinds (the ConfigMaps, PVCs and ResourceClaimTemplates beside a graph in
Dynamo's examples) are kept as ``siblings``, each checked for what ``kubectl apply`` needs
(``apiVersion``, ``kind``, ``metadata.name``); ``render/siblings.py`` renders them with the
graphs. A ``kind: List`` contributes its items. The path ``-`` reads standard input (named
``<stdin>`` in messages), as kubectl does.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from drivetrain.api.errors import FieldError, InvalidGraph
from drivetrain.api.models import DYNAMO_KIND, KIND, GraphDeployment
from drivetrain.api.validate import check_document, graph_warnings

GRAPH_KINDS = (KIND, DYNAMO_KIND)
#: The path that means standard input, and its name in messages.
STDIN = "-"
STDIN_NAME = "<stdin>"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Sibling:
    """A document of another kind than a graph, as written (or one item of a ``kind: List``)."""

    document: int  # 0-based index of the YAML document in the file
    path: str  # "" for the document itself, "items[2]" for an item of a List
    obj: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj["kind"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    def field(self, path: str) -> str:
        """A field path of this object inside its document."""
        return f"{self.path}.{path}" if self.path else path

    @property
    def where(self) -> str:
        """``document 2``, or ``document 2 items[0]`` for an item of a List."""
        inner = f" {self.path}" if self.path else ""
        return f"document {self.document + 1}{inner}"

    def describe(self) -> str:
        """``document 2: ConfigMap foo``."""
        return f"{self.where}: {self.kind} {self.name}"


@dataclass
class LoadedFile:
    path: str
    graphs: list[GraphDeployment] = field(default_factory=list)
    documents: list[int] = field(default_factory=list)  # document index of each graph
    sources: list[dict[str, Any]] = field(default_factory=list)  # each graph as written
    #: documents of other kinds, in file order (``render/siblings.py``)
    siblings: list[Sibling] = field(default_factory=list)
    #: every problem found (``keep_going``); the graphs of documents with errors are then
    #: only the parts that could be read, good for finding more errors and nothing else.
    errors: list[FieldError] = field(default_factory=list)
    #: allowed but almost certainly not meant (see ``api.validate.graph_warnings``).
    warnings: list[FieldError] = field(default_factory=list)


def parse_yaml_documents(text: str, file: str) -> list[Any]:
    """All documents of ``text``; a syntax error names the line and column."""
    try:
        return list(yaml.load_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or str(exc)
        if exc.context:
            problem = f"{exc.context}, {problem}"
        raise InvalidGraph(
            [
                FieldError(
                    "",
                    f"YAML does not parse: {problem}",
                    file=file,
                    line=mark.line + 1 if mark else None,
                    column=mark.column + 1 if mark else None,
                )
            ]
        ) from None
    except yaml.YAMLError as exc:
        raise InvalidGraph([FieldError("", f"YAML does not parse: {exc}", file=file)]) from None


def load_text(text: str, file: str = STDIN_NAME, *, keep_going: bool = False) -> LoadedFile:
    """Parse and validate every graph document in ``text``; collect every error.

    Raises ``InvalidGraph`` with all of them, unless ``keep_going``: then they are in
    ``errors`` and the graphs include the valid parts of invalid documents.
    """
    loaded = LoadedFile(path=file)
    for index, doc in enumerate(parse_yaml_documents(text, file)):
        if doc is None:
            continue
        kind = doc.get("kind") if isinstance(doc, dict) else None
        if isinstance(doc, dict) and kind not in GRAPH_KINDS and kind is not None:
            siblings, errors = read_siblings(doc, file, index)
            loaded.siblings += siblings
            loaded.errors += errors
            continue
        graph, errors = check_document(doc, file=file, document=index)
        loaded.errors += errors
        if graph is not None and (keep_going or not errors):
            loaded.graphs.append(graph)
            loaded.documents.append(index)
            loaded.sources.append(doc)
            loaded.warnings += [w.located(file, index) for w in graph_warnings(graph)]
    if not loaded.graphs and not loaded.errors:
        loaded.errors.append(
            FieldError("", f"no {KIND} or {DYNAMO_KIND} document found", file=file)
        )
    if loaded.errors and not keep_going:
        raise InvalidGraph(loaded.errors)
    return loaded


def _sibling_errors(obj: Any, path: str) -> list[tuple[str, str]]:
    """``(field path, what was expected)`` for each field ``kubectl apply`` needs and lacks."""
    join = (lambda p: f"{path}.{p}") if path else (lambda p: p)
    if not isinstance(obj, dict):
        return [(path, f"expected a Kubernetes object (a mapping), got {type(obj).__name__}")]
    problems = []
    for key in ("apiVersion", "kind"):
        if not isinstance(obj.get(key), str) or not obj[key]:
            problems.append((join(key), "a Kubernetes object needs a non-empty string here"))
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return [*problems, (join("metadata"), "expected a mapping with a name")]
    if not isinstance(meta.get("name"), str) or not meta["name"]:
        problems.append(
            (join("metadata.name"), "expected a non-empty string (kubectl apply needs a name)")
        )
    if "namespace" in meta and not isinstance(meta["namespace"], str):
        problems.append((join("metadata.namespace"), "expected a string"))
    for key in ("labels", "annotations"):
        value = meta.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            problems.append((join(f"metadata.{key}"), "expected a mapping of strings"))
            continue
        problems += [
            (join(f"metadata.{key}.{k}"), f"expected a string, got {v!r} (quote it)")
            for k, v in value.items()
            if not isinstance(v, str)
        ]
    return problems


def read_siblings(
    doc: dict[str, Any], file: str, index: int
) -> tuple[list[Sibling], list[FieldError]]:
    """The objects of one non-graph document (the items of a ``kind: List``), or what is
    wrong with them."""
    if doc.get("kind") == "List":
        items = doc.get("items")
        if not isinstance(items, list):
            return [], [FieldError("items", "a List needs a list of items", file, index)]
        members = [(f"items[{i}]", item) for i, item in enumerate(items)]
    else:
        members = [("", doc)]
    siblings, errors = [], []
    for path, obj in members:
        if isinstance(obj, dict) and obj.get("kind") in GRAPH_KINDS:
            message = "a graph inside a List is not rendered; write it as a document of its own"
            errors.append(FieldError(path, message, file, index))
            continue
        problems = _sibling_errors(obj, path)
        errors += [FieldError(p, message, file, index) for p, message in problems]
        if not problems:
            siblings.append(Sibling(index, path, obj))
    return siblings, errors


def read_text(path: str | Path) -> tuple[str, str]:
    """The text at ``path`` (``-``: standard input) and the name messages give it."""
    if str(path) == STDIN:
        try:
            return sys.stdin.read(), STDIN_NAME
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidGraph(
                [FieldError("", f"cannot be read: {exc}", file=STDIN_NAME)]
            ) from None
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8"), str(path)
    except FileNotFoundError:
        raise InvalidGraph([FieldError("", "file not found", file=str(path))]) from None
    except IsADirectoryError:
        raise InvalidGraph(
            [FieldError("", "is a directory, expected a YAML file", file=str(path))]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidGraph([FieldError("", f"cannot be read: {exc}", file=str(path))]) from None


def load_file(path: str | Path, *, keep_going: bool = False) -> LoadedFile:
    """``load_text`` of the file at ``path`` (``-``: standard input)."""
    text, name = read_text(path)
    return load_text(text, name, keep_going=keep_going)


def load_graphs(path: str | Path) -> list[GraphDeployment]:
    """The graphs in ``path`` (``-``: standard input); raises ``InvalidGraph`` with every
    problem found."""
    return load_file(path).graphs
