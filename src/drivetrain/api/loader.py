"""Read graph files: several YAML documents per file, GraphDeployment and DGD alike.

Documents of other kinds (ConfigMaps, PVCs beside a graph in Dynamo's examples) are
reported as ``skipped`` and otherwise left alone; they are not drivetrain's to render.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from drivetrain.api.errors import FieldError, InvalidGraph
from drivetrain.api.models import DYNAMO_KIND, KIND, GraphDeployment
from drivetrain.api.validate import parse_graph

GRAPH_KINDS = (KIND, DYNAMO_KIND)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class LoadedFile:
    path: str
    graphs: list[GraphDeployment] = field(default_factory=list)
    documents: list[int] = field(default_factory=list)  # document index of each graph
    skipped: list[str] = field(default_factory=list)  # "document 2: ConfigMap foo"


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


def load_text(text: str, file: str = "<stdin>") -> LoadedFile:
    """Parse and validate every graph document in ``text``; collect every error."""
    loaded = LoadedFile(path=file)
    errors: list[FieldError] = []
    for index, doc in enumerate(parse_yaml_documents(text, file)):
        if doc is None:
            continue
        kind = doc.get("kind") if isinstance(doc, dict) else None
        if isinstance(doc, dict) and kind not in GRAPH_KINDS and kind is not None:
            name = (doc.get("metadata") or {}).get("name", "")
            loaded.skipped.append(f"document {index + 1}: {kind} {name}".rstrip())
            continue
        try:
            loaded.graphs.append(parse_graph(doc, file=file, document=index))
            loaded.documents.append(index)
        except InvalidGraph as exc:
            errors += exc.errors
    if errors:
        raise InvalidGraph(errors)
    if not loaded.graphs:
        raise InvalidGraph(
            [FieldError("", f"no {KIND} or {DYNAMO_KIND} document found", file=file)]
        )
    return loaded


def load_file(path: str | Path) -> LoadedFile:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidGraph([FieldError("", "file not found", file=str(path))]) from None
    except IsADirectoryError:
        raise InvalidGraph(
            [FieldError("", "is a directory, expected a YAML file", file=str(path))]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidGraph([FieldError("", f"cannot be read: {exc}", file=str(path))]) from None
    return load_text(text, str(path))


def load_graphs(path: str | Path) -> list[GraphDeployment]:
    """The graphs in ``path``; raises ``InvalidGraph`` with every problem found."""
    return load_file(path).graphs
