"""Turn one parsed YAML document into a ``GraphDeployment``, or say everything that is wrong.

Order: prune ``null`` values (the API server does the same), check apiVersion/kind, let
pydantic check shapes and types, then apply the semantic rules (Dynamo's webhook rules that
apply here, and drivetrain's own).  Every problem is a ``FieldError`` with a dotted path.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from pydantic import ValidationError

from drivetrain.api import podspec
from drivetrain.api.enums import ComponentType, Profile
from drivetrain.api.errors import FieldError, InvalidGraph
from drivetrain.api.feature_rules import feature_rules
from drivetrain.api.models import (
    API_VERSION,
    DYNAMO_API_VERSION,
    DYNAMO_KIND,
    KIND,
    GraphDeployment,
    Service,
)
from drivetrain.podcontainers import ENGINE_NAMES

VLLM_EXECUTOR_ANNOTATION = "nvidia.com/vllm-distributed-executor-backend"
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_SERVICES = 25


def prune_nulls(value: Any) -> Any:
    """Drop mapping keys whose value is null, recursively, as the API server prunes them."""
    if isinstance(value, dict):
        return {k: prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [prune_nulls(v) for v in value]
    return value


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _locations(exc: ValidationError) -> list[tuple[Any, ...]]:
    # Drop pydantic's union/tag bookkeeping from the path (e.g. "literal['a']").
    return [
        tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        for err in exc.errors(include_url=False)
    ]


def pydantic_errors(exc: ValidationError) -> list[FieldError]:
    errors = []
    for err, loc in zip(exc.errors(include_url=False), _locations(exc), strict=True):
        kind = err["type"]
        if kind == "extra_forbidden":
            msg = "unknown field"
        elif kind == "missing":
            msg = "required field is missing"
        elif kind == "literal_error":
            msg = f"{err['msg'].replace('Input should be', 'must be')}"
        else:
            msg = err["msg"].replace("Input should be", "must be")
            given = err.get("input")
            if not isinstance(given, dict | list) and given is not None:
                msg += f" (got {given!r})"
        errors.append(FieldError(_path(loc), msg))
    return errors


def _drop(doc: Any, loc: tuple[Any, ...]) -> None:
    """Remove the field at ``loc`` from ``doc`` (nothing when the path does not lead there)."""
    for part in loc[:-1]:
        if not isinstance(doc, dict) or part not in doc:
            return
        doc = doc[part]
    if isinstance(doc, dict):
        doc.pop(loc[-1], None)


def _valid_part(doc: dict[str, Any], exc: ValidationError) -> GraphDeployment | None:
    """The document without the fields pydantic refused, so that the rules can still check
    the rest (a schema error must not hide the document's other errors).

    First only the refused field of a service or of the spec goes; if that is not enough (a
    required field is missing), the services with errors go whole.  An invalid ``metadata``
    gives up: the rules need the graph's name.
    """
    locations = _locations(exc)
    if any(loc[:1] != ("spec",) or len(loc) < 2 for loc in locations):
        return None
    for depth_of_service in (4, 3):
        part = copy.deepcopy(doc)
        for loc in locations:
            depth = depth_of_service if loc[:2] == ("spec", "services") else 2
            _drop(part, loc[:depth])
        try:
            return GraphDeployment.model_validate(part)
        except ValidationError:
            continue
    return None


def check_document(
    obj: Any, *, file: str | None = None, document: int | None = None
) -> tuple[GraphDeployment | None, list[FieldError]]:
    """Every problem of one document, and the graph (or the part of it that is valid).

    The graph is None when not even a part of it could be read; when there are errors, it is
    only good for finding more errors (``drivetrain validate`` renders it to that end).
    """
    errors = _check_header(obj)
    graph: GraphDeployment | None = None
    if not errors:
        pruned = prune_nulls(obj)
        try:
            graph = GraphDeployment.model_validate(pruned)
        except ValidationError as exc:
            errors = pydantic_errors(exc)
            graph = _valid_part(pruned, exc)
        if graph is not None:
            errors += check_rules(graph)
    return graph, [e.located(file, document) for e in errors]


def parse_graph(
    obj: Any, *, file: str | None = None, document: int | None = None
) -> GraphDeployment:
    """Validate one document; raise ``InvalidGraph`` listing every problem found."""
    graph, errors = check_document(obj, file=file, document=document)
    if errors:
        raise InvalidGraph(errors)
    assert graph is not None
    return graph


def graph_warnings(graph: GraphDeployment) -> list[FieldError]:
    """What is allowed but almost certainly not meant (``--strict`` makes these errors)."""
    warnings: list[FieldError] = []
    services = graph.spec.services
    serving = [n for n, s in services.items() if s.componentType == ComponentType.frontend]
    sidecars = [n for n, s in services.items() if s.frontendSidecar is not None]
    workers = [n for n, s in services.items() if s.is_worker]
    if workers and not serving and not sidecars:
        warnings.append(
            FieldError(
                "spec.services",
                "no frontend (a service with componentType: frontend, or a frontendSidecar): "
                f"nothing serves the models of {', '.join(workers)}",
            )
        )
    for name in serving:
        nodes = services[name].node_count
        if nodes > 1:
            warnings.append(
                FieldError(
                    f"spec.services.{name}.multinode",
                    f"a multinode frontend ({nodes} pods per group): only each group's leader is "
                    f"behind the Service; the other {nodes - 1} pod(s) run frontends nothing "
                    "routes to",
                )
            )
    return warnings


def _check_header(obj: Any) -> list[FieldError]:
    if not isinstance(obj, dict):
        return [
            FieldError("", f"expected a mapping (a Kubernetes object), got {type(obj).__name__}")
        ]
    api, kind = obj.get("apiVersion"), obj.get("kind")
    pairs = {KIND: API_VERSION, DYNAMO_KIND: DYNAMO_API_VERSION}
    if kind not in pairs:
        return [FieldError("kind", f"must be {KIND} or {DYNAMO_KIND} (got {kind!r})")]
    if api != pairs[kind]:
        return [FieldError("apiVersion", f"must be {pairs[kind]} for kind {kind} (got {api!r})")]
    return []


def check_rules(graph: GraphDeployment) -> list[FieldError]:
    """Semantic rules that the models' types cannot express."""
    errors: list[FieldError] = []
    spec = graph.spec
    if len(spec.services) > MAX_SERVICES:
        errors.append(FieldError("spec.services", f"at most {MAX_SERVICES} services"))
    annotations = {**graph.annotations, **(spec.annotations or {})}
    errors += _executor_annotation("metadata.annotations", annotations)
    deployers = {}
    for name, svc in spec.services.items():
        base = f"spec.services.{name}"
        errors += _service_rules(graph, name, svc, base)
        if svc.multinode and svc.multinode.deployer:
            deployers[name] = svc.multinode.deployer.value
    if len(set(deployers.values())) > 1:
        errors.append(
            FieldError(
                "spec.services",
                "services choose different multinode deployers "
                + ", ".join(f"{k}={v}" for k, v in deployers.items())
                + "; one graph is rendered with one deployer",
            )
        )
    return errors


def _executor_annotation(path: str, annotations: dict[str, str]) -> list[FieldError]:
    value = annotations.get(VLLM_EXECUTOR_ANNOTATION)
    if value is not None and value.lower() not in ("mp", "ray"):
        return [
            FieldError(f"{path}[{VLLM_EXECUTOR_ANNOTATION}]", f"must be mp or ray (got {value!r})")
        ]
    return []


def _service_rules(graph: GraphDeployment, name: str, svc: Service, base: str) -> list[FieldError]:
    errors: list[FieldError] = []
    resource_name = f"{graph.name}-{name.lower().replace('.', '-')}"
    if not _DNS_LABEL.match(resource_name) or len(resource_name) > 63:
        errors.append(
            FieldError(
                base,
                f"gives the Kubernetes name {resource_name!r}, which is not a DNS-1035 "
                "label (lowercase letters, digits and '-', starting with a letter, at most "
                "63 characters)",
            )
        )
    if not graph.is_dynamo and svc.componentType not in ComponentType.__members__:
        allowed = ", ".join(ComponentType.__members__)
        errors.append(
            FieldError(
                f"{base}.componentType", f"must be one of {allowed} (got {svc.componentType!r})"
            )
        )
    errors += feature_rules(graph, name, svc)
    errors += _trainer_rules(svc, base)
    errors += _executor_annotation(f"{base}.annotations", svc.annotations or {})
    if svc.sharedMemory is not None:
        shm = svc.sharedMemory
        if shm.disabled and shm.size:
            errors.append(FieldError(f"{base}.sharedMemory.size", "must not be set when disabled"))
        if not shm.disabled and not shm.size:
            errors.append(FieldError(f"{base}.sharedMemory.size", "required unless disabled"))
    for i, vm in enumerate(svc.volumeMounts or []):
        if not vm.useAsCompilationCache and not vm.mountPoint:
            errors.append(
                FieldError(
                    f"{base}.volumeMounts[{i}].mountPoint",
                    "required unless useAsCompilationCache is true",
                )
            )
    if svc.ingress and svc.ingress.get("enabled") and not svc.ingress.get("host"):
        errors.append(FieldError(f"{base}.ingress.host", "required when ingress is enabled"))
    if svc.componentType == "epp":
        errors += _epp_rules(svc, base)
    errors += _pod_spec_fields(svc, base)
    if svc.failover_enabled:
        for i, c in enumerate(_user_containers(svc)):
            if c.get("name") in ENGINE_NAMES:
                errors.append(
                    FieldError(
                        f"{base}.extraPodSpec.containers[{i}].name",
                        f"{c.get('name')!r} is the name of a failover engine; rename this one",
                    )
                )
    if svc.engineServer is not None:
        if graph.profile is not Profile.drivetrain:
            errors.append(
                FieldError(
                    f"{base}.engineServer",
                    "only under the drivetrain profile (Dynamo's workers run their own runtime)",
                )
            )
        elif not svc.is_worker:
            errors.append(
                FieldError(
                    f"{base}.engineServer",
                    f"only for worker, prefill and decode services (got {svc.componentType!r})",
                )
            )
    if svc.frontendSidecar is not None:
        names = [c.get("name") for c in _user_containers(svc)]
        if "sidecar-frontend" in names:
            errors.append(
                FieldError(
                    f"{base}.extraPodSpec.containers",
                    "a container named sidecar-frontend collides with frontendSidecar",
                )
            )
    return errors


def _trainer_rules(svc: Service, base: str) -> list[FieldError]:
    """A trainer runs to completion as one Job (an Indexed Job when multinode), docs/api.md."""
    if svc.componentType != ComponentType.trainer:
        if svc.backoffLimit is not None:
            return [FieldError(f"{base}.backoffLimit", "applies to trainer services only")]
        return []
    errors = []
    if svc.replica_count > 1:
        errors.append(
            FieldError(
                f"{base}.replicas",
                f"a trainer runs as one Job: at most 1 (got {svc.replica_count}); "
                "use multinode.nodeCount for more pods",
            )
        )
    policy = (svc.extraPodSpec.model_extra or {}).get("restartPolicy") if svc.extraPodSpec else None
    if policy not in (None, "Never"):
        errors.append(
            FieldError(
                f"{base}.extraPodSpec.restartPolicy",
                f"a trainer's pods run once (Never; backoffLimit retries failed pods), got {policy!r}",
            )
        )
    return errors


def _epp_rules(svc: Service, base: str) -> list[FieldError]:
    errors = []
    if svc.multinode is not None:
        errors.append(FieldError(f"{base}.multinode", "an EPP service cannot be multinode"))
    if svc.replica_count != 1:
        errors.append(FieldError(f"{base}.replicas", "an EPP service must have exactly 1 replica"))
    cfg = svc.eppConfig or {}
    if ("configMapRef" in cfg) == ("config" in cfg):
        errors.append(
            FieldError(f"{base}.eppConfig", "exactly one of configMapRef or config is required")
        )
    return errors


def _user_containers(svc: Service) -> list[dict[str, Any]]:
    extra = svc.extraPodSpec.model_extra if svc.extraPodSpec else None
    containers = (extra or {}).get("containers") or []
    return [c for c in containers if isinstance(c, dict)]


def _pod_spec_fields(svc: Service, base: str) -> list[FieldError]:
    """``extraPodSpec`` as a partial PodSpec and ``mainContainer`` as a partial Container."""
    if svc.extraPodSpec is None:
        return []
    eps = f"{base}.extraPodSpec"
    extra = svc.extraPodSpec.model_extra or {}
    errors = podspec.check(extra, podspec.POD_SPEC, eps, partial=True)
    errors += podspec.check(
        svc.extraPodSpec.mainContainer or {},
        podspec.CONTAINER,
        f"{eps}.mainContainer",
        partial=True,
    )
    containers = extra.get("containers")
    for i, c in enumerate(containers if isinstance(containers, list) else []):
        if isinstance(c, dict) and c.get("name") == "main":
            errors.append(
                FieldError(
                    f"{eps}.containers[{i}].name",
                    "'main' is the name of the workload container; rename this one",
                )
            )
    return errors
