"""Read RLRun files: each run validated, its ``manifest`` files read and inlined.

A ``manifest`` path is resolved relative to the RLRun file's folder (standard input: the
current folder); the first ``GraphDeployment`` or ``DynamoGraphDeployment`` document of that
file is the graph, as nrl-k8s reads a DGD manifest.  ``LoadedRun.applied`` is the run as the
cluster gets it: every ``manifest`` replaced by the document it names (``graph``), so the
operator never reads a local path.  Every problem of every run is collected and raised
together (``InvalidGraph``), nothing is half-read.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivetrain.api.errors import FieldError, InvalidGraph
from drivetrain.api.kinds import GRAPH_KINDS, RLRUN
from drivetrain.api.loader import STDIN_NAME, parse_yaml_documents, read_text
from drivetrain.api.rlrun import RLRun
from drivetrain.api.rlrun_validate import GraphSource, RunGraph, check_run, resolve_graphs


@dataclass
class LoadedRun:
    file: str
    document: int
    run: RLRun
    #: the run as applied to a cluster: manifests inlined as ``graph``, nothing else changed
    applied: dict[str, Any]
    graphs: dict[str, RunGraph] = field(default_factory=dict)
    #: the folder relative paths of the run (and of the processes ``up`` starts) are read in
    folder: Path = field(default_factory=Path.cwd)

    @property
    def name(self) -> str:
        return self.run.name


@dataclass
class LoadedRuns:
    runs: list[LoadedRun] = field(default_factory=list)
    warnings: list[FieldError] = field(default_factory=list)


def holds_runs(documents: list[Any]) -> bool:
    """Whether a file's documents are RLRuns (the CLI then reads it with ``load_runs``)."""
    return any(isinstance(d, dict) and d.get("kind") == RLRUN.kind for d in documents)


def _first_graph(docs: list[Any]) -> tuple[int, dict[str, Any]] | None:
    for index, doc in enumerate(docs):
        if isinstance(doc, dict) and doc.get("kind") in GRAPH_KINDS:
            return index, doc
    return None


def read_manifest(
    manifest: str, folder: Path, where: FieldError
) -> tuple[dict[str, Any], GraphSource] | list[FieldError]:
    """The graph document a ``manifest`` names, or the problems (``where``: the field)."""
    path = Path(manifest)
    resolved = path if path.is_absolute() else (folder / path).resolve()
    if not resolved.is_file():
        return [
            FieldError(
                where.path,
                f"{resolved} not found (resolved from {manifest!r} relative to {folder})",
                where.file,
                where.document,
            )
        ]
    try:
        text, name = read_text(resolved)
        docs = parse_yaml_documents(text, str(resolved))
    except InvalidGraph as exc:
        return list(exc.errors)
    found = _first_graph(docs)
    if found is None:
        kinds = [d.get("kind") for d in docs if isinstance(d, dict)]
        return [
            FieldError(
                where.path,
                f"{resolved} has no GraphDeployment or DynamoGraphDeployment document "
                f"(saw kinds: {kinds})",
                where.file,
                where.document,
            )
        ]
    index, doc = found
    return doc, GraphSource(name, index, inline=False)


def _load_one(doc: Any, file: str, index: int, folder: Path) -> tuple[LoadedRun | None, list, list]:
    run, errors = check_run(doc)
    errors = [e.located(file, index) for e in errors]
    if run is None:
        return None, errors, []
    applied = copy.deepcopy(doc)
    bases: dict[str, tuple[dict[str, Any], GraphSource]] = {}
    for key, ref in run.spec.graphs.items():
        if ref.graph is not None and ref.manifest is None:
            bases[key] = (ref.graph, GraphSource(file, index, inline=True))
        elif ref.manifest is not None and ref.graph is None:
            where = FieldError(f"spec.graphs.{key}.manifest", "", file, index)
            found = read_manifest(ref.manifest, folder, where)
            if isinstance(found, list):
                errors += found
                continue
            bases[key] = found
            entry = applied["spec"]["graphs"][key]
            entry.pop("manifest", None)
            entry["graph"] = copy.deepcopy(found[0])
    graphs, graph_errors, warnings = resolve_graphs(run, bases)
    errors += [e.located(file, index) for e in graph_errors]
    warnings = [w.located(file, index) for w in warnings]
    if errors:
        return None, errors, warnings
    return LoadedRun(file, index, run, applied, graphs, folder), [], warnings


def load_runs_text(text: str, file: str, folder: Path) -> LoadedRuns:
    """Every RLRun document of ``text`` (other kinds are an error in a run file)."""
    loaded = LoadedRuns()
    errors: list[FieldError] = []
    for index, doc in enumerate(parse_yaml_documents(text, file)):
        if doc is None:
            continue
        if not isinstance(doc, dict) or doc.get("kind") != RLRUN.kind:
            kind = doc.get("kind") if isinstance(doc, dict) else type(doc).__name__
            errors.append(
                FieldError(
                    "kind",
                    f"a run file holds RLRun documents only (got {kind}); put graphs in "
                    "their own file and name it in spec.graphs.<key>.manifest",
                    file,
                    index,
                )
            )
            continue
        run, found, warnings = _load_one(doc, file, index, folder)
        errors += found
        loaded.warnings += warnings
        if run is not None:
            loaded.runs.append(run)
    if errors:
        raise InvalidGraph(errors)
    return loaded


def load_runs(path: str | Path) -> LoadedRuns:
    """The runs of the file at ``path`` (``-``: standard input, manifests then relative to
    the current folder)."""
    text, name = read_text(path)
    folder = Path.cwd() if name == STDIN_NAME else Path(path).resolve().parent
    return load_runs_text(text, name, folder)
