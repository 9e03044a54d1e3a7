"""Read graph files: several YAML documents per file, GraphDeployment and DGD alike.

Documents of other kinds (ConfigMaps, PVCs beside a graph in Dynamo's examples) are
reported as ``skipped`` and otherwise left alone; they are not drivetrain's to render.
The path ``-`` reads standard input (named ``<stdin>`` in messages), as kubectl does.
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


@dataclass
class LoadedFile:
    path: str
    graphs: list[GraphDeployment] = field(default_factory=list)
    documents: list[int] = field(default_factory=list)  # document index of each graph
    sources: list[dict[str, Any]] = field(default_factory=list)  # each graph as written
    skipped: list[str] = field(default_factory=list)  # "document 2: ConfigMap foo"
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
            name = (doc.get("metadata") or {}).get("name", "")
            loaded.skipped.append(f"document {index + 1}: {kind} {name}".rstrip())
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
