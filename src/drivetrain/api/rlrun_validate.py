"""Turn one parsed RLRun document into an ``RLRun`` and its resolved graphs, or say everything
that is wrong, each problem with its file, document and field path.

Two steps, so that the operator (which reads inline graphs only) and the CLI (which first
reads each ``manifest`` file) share every rule: ``check_run`` (shape, the ray block against
KubeRay's schema and rules, the graph entries), then ``resolve_graphs`` over the graph
documents the caller found (overrides merged, each graph validated as ``drivetrain validate``
validates one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from drivetrain.api import kuberay
from drivetrain.api.enums import RayMode
from drivetrain.api.errors import FieldError
from drivetrain.api.models import GraphDeployment
from drivetrain.api.rlrun import (
    API_VERSION,
    GRAPH_KEY,
    KIND,
    RLRun,
    frontend_variable,
    resolve_graph,
)
from drivetrain.api.validate import check_document, graph_warnings, prune_nulls, pydantic_errors


@dataclass(frozen=True)
class GraphSource:
    """Where a graph document came from, for messages (and for ``up``, its folder)."""

    #: the file the document is in (the manifest, or the RLRun file for an inline graph)
    file: str | None
    #: its index in that file
    document: int | None
    #: True: an inline ``graph``; its field paths are under ``spec.graphs.<key>.graph``
    inline: bool


@dataclass(frozen=True)
class RunGraph:
    """One graph of a run, resolved: the document to create and the validated graph."""

    key: str
    document: dict[str, Any]
    graph: GraphDeployment
    ready_timeout_s: int
    source: GraphSource

    @property
    def name(self) -> str:
        return self.graph.name


def check_run(obj: Any) -> tuple[RLRun | None, list[FieldError]]:
    """Every problem of an RLRun document short of its graphs' contents; the run when its
    shape is valid (the rules then still report the rest)."""
    if not isinstance(obj, dict):
        return None, [FieldError("", "expected a mapping (a Kubernetes object)")]
    if obj.get("kind") != KIND or obj.get("apiVersion") != API_VERSION:
        got = f"{obj.get('apiVersion')} {obj.get('kind')}"
        return None, [FieldError("kind", f"must be {API_VERSION} {KIND} (got {got})")]
    try:
        run = RLRun.model_validate(prune_nulls(obj))
    except ValidationError as exc:
        return None, pydantic_errors(exc)
    return run, _rules(run)


def _rules(run: RLRun) -> list[FieldError]:
    errors: list[FieldError] = []
    spec = run.spec
    variables: dict[str, str] = {}
    for key, ref in spec.graphs.items():
        base = f"spec.graphs.{key}"
        if not GRAPH_KEY.match(key):
            errors.append(
                FieldError(
                    base,
                    "a graph key is letters, digits, '-' and '_', starting with a letter (it "
                    f"names the variable {frontend_variable('KEY')})",
                )
            )
        elif frontend_variable(key) in variables:
            errors.append(
                FieldError(
                    base,
                    f"gives the same variable {frontend_variable(key)} as graph "
                    f"{variables[frontend_variable(key)]}",
                )
            )
        variables.setdefault(frontend_variable(key), key)
        if (ref.manifest is None) == (ref.graph is None):
            errors.append(FieldError(base, "exactly one of manifest or graph is required"))
    ray = spec.ray
    errors += kuberay.check_name(run.ray_name, run.ray_kind, _ray_name_path(run))
    errors += kuberay.check_cluster_spec(ray.cluster.spec, "spec.ray.cluster.spec")
    if ray.mode is RayMode.rayjob:
        if ray.job is None or not (ray.job.entrypoint or "").strip():
            errors.append(
                FieldError("spec.ray.job.entrypoint", "required: the command the RayJob runs")
            )
        if ray.job is not None and not ray.job.shutdownAfterJobFinishes:
            errors.append(
                FieldError(
                    "spec.ray.job.shutdownAfterJobFinishes",
                    "must be true: the run creates its RayJob suspended until the graphs are "
                    "ready, and KubeRay refuses to suspend a RayJob that keeps its cluster",
                )
            )
    elif ray.job is not None:
        errors.append(
            FieldError(
                "spec.ray.job",
                "applies to mode rayjob; a raycluster run brings up a long-lived RayCluster "
                "and you submit jobs to it",
            )
        )
    for i, secret in enumerate(spec.imagePullSecrets or []):
        if not secret:
            errors.append(FieldError(f"spec.imagePullSecrets[{i}]", "a Secret name, not empty"))
    return errors


def _ray_name_path(run: RLRun) -> str:
    return "spec.ray.cluster.name" if run.spec.ray.cluster.name else "metadata.name"


def resolve_graphs(
    run: RLRun, bases: Mapping[str, tuple[dict[str, Any], GraphSource]]
) -> tuple[dict[str, RunGraph], list[FieldError], list[FieldError]]:
    """Each graph resolved (``api.rlrun.resolve_graph``) and validated: (graphs, errors,
    warnings).  ``bases`` maps a key to its graph document as written and where it is from;
    keys missing from it were already reported by the caller."""
    graphs: dict[str, RunGraph] = {}
    errors: list[FieldError] = []
    warnings: list[FieldError] = []
    names: dict[str, str] = {}
    for key, (base, source) in bases.items():
        ref = run.spec.graphs[key]
        unknown = _unknown_services(base, ref.overrides or {})
        errors += [
            FieldError(
                f"spec.graphs.{key}.overrides.services.{svc}",
                f"no service {svc!r} in the graph (its services: {', '.join(known) or 'none'})",
            )
            for svc, known in unknown
        ]
        if unknown:
            continue  # the merged graph would only repeat it (a service with no componentType)
        document = resolve_graph(run, key, base)
        graph, found = check_document(document)
        errors += [locate_graph_error(e, key, source) for e in found]
        if graph is None or found:
            continue
        warnings += [locate_graph_error(w, key, source) for w in graph_warnings(graph)]
        if graph.name in names:
            errors.append(
                FieldError(
                    f"spec.graphs.{key}.name",
                    f"graph {graph.name!r} is also graph {names[graph.name]}'s name",
                )
            )
        names[graph.name] = key
        graphs[key] = RunGraph(key, document, graph, ref.readyTimeoutS, source)
    return graphs, errors, warnings


def _unknown_services(
    base: dict[str, Any], overrides: dict[str, Any]
) -> list[tuple[str, list[str]]]:
    named = overrides.get("services")
    spec = base.get("spec") if isinstance(base.get("spec"), dict) else {}
    known = sorted((spec or {}).get("services") or {})
    if not isinstance(named, dict):
        return []
    return [(svc, known) for svc in named if svc not in known]


def locate_graph_error(error: FieldError, key: str, source: GraphSource) -> FieldError:
    """A problem of a resolved graph, said where the user can find it (an inline graph's
    still to be located in the run's file and document)."""
    if source.inline:
        path = f"spec.graphs.{key}.graph" + (f".{error.path}" if error.path else "")
        return FieldError(path, error.message, None, None, error.line, error.column)
    note = f"{error.message} (the graph of spec.graphs.{key}, overrides merged)"
    return FieldError(error.path, note, source.file, source.document)


def parse_applied_run(obj: Any) -> tuple[RLRun | None, dict[str, RunGraph], list[FieldError]]:
    """A run as the cluster holds it (the operator's input): every graph inline.

    A ``manifest`` here is an error: it is a path on the machine of whoever wrote the run, and
    ``drivetrain apply`` replaces it with the document it names before it sends the run.
    """
    run, errors = check_run(obj)
    if run is None:
        return None, {}, errors
    bases: dict[str, tuple[dict[str, Any], GraphSource]] = {}
    for key, ref in run.spec.graphs.items():
        if ref.manifest is not None:
            errors.append(
                FieldError(
                    f"spec.graphs.{key}.manifest",
                    "is a path on the client's machine, which the cluster cannot read: apply "
                    "the run with `drivetrain apply -f`, which inlines the file as graph",
                )
            )
        elif ref.graph is not None:
            bases[key] = (ref.graph, GraphSource(None, None, inline=True))
    graphs, graph_errors, _ = resolve_graphs(run, bases)
    errors += graph_errors
    return (None if errors else run), graphs, errors
