"""External references: what a graph's pods need that the user creates (pure).

A pod that reads a Secret, mounts a ConfigMap or a PersistentVolumeClaim, pulls with an image
pull secret, runs as a ServiceAccount or claims devices through a ResourceClaimTemplate needs
that object in its namespace (``drivetrain.podrefs`` lists the fields). What the render itself
produces, or what stands beside the graph in the same file (``render/siblings.py``), is
provided; everything else is **external**: the pod template says so in the
``drivetrain.dev/external-refs`` annotation, so ``verify`` and the operator can check it, and
``drivetrain render`` prints one line each on how to create it (docs/rendering.md).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from drivetrain.podrefs import (
    CONFIG_MAP,
    EXTERNAL_REFS_ANNOTATION,
    KINDS,
    PVC,
    RESOURCE_CLAIM,
    RESOURCE_CLAIM_TEMPLATE,
    SECRET,
    SERVICE_ACCOUNT,
    PodReference,
    format_tokens,
    object_token,
    parse_tokens,
    pod_references,
    ref_token,
)

#: How many workloads a line names before it counts the rest.
_USERS_SHOWN = 3


@dataclass(frozen=True)
class PodTemplateRef:
    """One pod template inside a workload: its spec, and where its pods' annotations live."""

    holder: dict[str, Any]  # a template or a Pod (annotations under metadata), or a clique
    spec: dict[str, Any]
    under_metadata: bool = True

    @property
    def annotations(self) -> Mapping[str, Any]:
        meta = self.holder.get("metadata") if self.under_metadata else self.holder
        value = meta.get("annotations") if isinstance(meta, dict) else None
        return value if isinstance(value, dict) else {}

    def set_annotations(self, annotations: dict[str, Any]) -> None:
        meta = self.holder.setdefault("metadata", {}) if self.under_metadata else self.holder
        if annotations or "annotations" in meta:
            meta["annotations"] = annotations


def pod_templates(obj: dict[str, Any]) -> Iterator[PodTemplateRef]:
    """Each pod template of a workload: Deployment, StatefulSet, DaemonSet, ReplicaSet, Job
    (``spec.template``), CronJob, Pod, LeaderWorkerSet (leader and worker templates) and
    PodCliqueSet (each clique, whose ``annotations`` Grove puts on its pods)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    kind = obj.get("kind")
    if kind == "Pod":
        yield PodTemplateRef(obj, spec)
        return
    if kind == "PodCliqueSet":
        for clique in (spec.get("template") or {}).get("cliques") or []:
            pod_spec = (
                (clique.get("spec") or {}).get("podSpec") if isinstance(clique, dict) else None
            )
            if isinstance(pod_spec, dict):
                yield PodTemplateRef(clique, pod_spec, under_metadata=False)
        return
    if kind == "CronJob":
        templates = [((spec.get("jobTemplate") or {}).get("spec") or {}).get("template")]
    elif kind == "LeaderWorkerSet":
        lwt = spec.get("leaderWorkerTemplate") or {}
        templates = [lwt.get("leaderTemplate"), lwt.get("workerTemplate")]
    else:
        templates = [spec.get("template")]
    for template in templates:
        if isinstance(template, dict) and isinstance(template.get("spec"), dict):
            yield PodTemplateRef(template, template["spec"])


def declare(objects: list[dict[str, Any]], provided: Collection[str] = ()) -> list[dict[str, Any]]:
    """Annotate each pod template of ``objects`` with the references neither among ``objects``
    nor in ``provided`` (tokens such as ``configmap/x``, see ``podrefs.ref_token``).

    The objects are the render's own, fresh; only the annotations mapping is replaced (never
    changed in place: it may be the user's, shared with the graph model).
    """
    known = {object_token(obj) for obj in objects} | set(provided)
    for obj in objects:
        for template in pod_templates(obj):
            external = {ref.token for ref in pod_references(template.spec)} - known
            annotations = dict(template.annotations)
            annotations.pop(EXTERNAL_REFS_ANNOTATION, None)
            if external:
                annotations[EXTERNAL_REFS_ANNOTATION] = format_tokens(external)
            template.set_annotations(annotations)
    return objects


@dataclass
class External:
    """One object the user creates, and every place the rendered pods reference it."""

    kind: str
    name: str
    users: list[str] = field(default_factory=list)  # "Deployment/agg-frontend"
    references: list[PodReference] = field(default_factory=list)

    @property
    def token(self) -> str:
        return ref_token(self.kind, self.name)


def externals(objects: list[dict[str, Any]]) -> list[External]:
    """The external references the pod templates of ``objects`` declare, one per object,
    in the order of ``podrefs.KINDS`` then by name."""
    found: dict[str, External] = {}
    for obj in objects:
        user = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name', '')}"
        for template in pod_templates(obj):
            declared = parse_tokens(template.annotations.get(EXTERNAL_REFS_ANNOTATION))
            for ref in pod_references(template.spec):
                if ref.token not in declared:
                    continue
                ext = found.setdefault(ref.token, External(ref.kind, ref.name))
                ext.references.append(ref)
                if user not in ext.users:
                    ext.users.append(user)
    return sorted(found.values(), key=lambda e: (KINDS.index(e.kind), e.name))


def _keys(ext: External) -> tuple[list[str], bool, bool]:
    """The keys read by name, whether every key becomes env (``envFrom``), whether every key
    becomes a file (a volume without ``items``)."""
    keys = list(dict.fromkeys(k for ref in ext.references for k in ref.keys))
    as_env = any(ref.every_key and ref.use == "envFrom" for ref in ext.references)
    as_files = any(ref.every_key and ref.use != "envFrom" for ref in ext.references)
    return keys, as_env, as_files


def _key_value_command(ext: External, create: str, namespace: str) -> str:
    keys, as_env, as_files = _keys(ext)
    words = [f"kubectl create {create} {ext.name} -n {namespace}"]
    words += [f"--from-literal={key}=..." for key in keys]
    notes = []
    if as_env:
        words.append("--from-literal=<NAME>=<value>")
        notes.append("each key becomes an env variable of the containers")
    if as_files:
        words.append("--from-file=<path>")
        notes.append("each key becomes a file in the mounted volume")
    command = " ".join(words)
    return f"{command} ({'; '.join(notes)})" if notes else command


def how_to_create(ext: External, namespace: str) -> str:
    """The command (or the object to apply) that creates ``ext`` in ``namespace``."""
    if ext.kind == SECRET and all(ref.use == "imagePullSecrets" for ref in ext.references):
        return (
            f"kubectl create secret docker-registry {ext.name} -n {namespace} "
            "--docker-server=<registry> --docker-username=<user> --docker-password=<password>"
        )
    if ext.kind == SECRET:
        return _key_value_command(ext, "secret generic", namespace)
    if ext.kind == CONFIG_MAP:
        return _key_value_command(ext, "configmap", namespace)
    if ext.kind == SERVICE_ACCOUNT:
        return f"kubectl create serviceaccount {ext.name} -n {namespace}"
    if ext.kind == PVC:
        return (
            f"kubectl apply -n {namespace} -f <a PersistentVolumeClaim named {ext.name}>, or list "
            "it in the graph's spec.pvcs with create: true, size, storageClass and "
            "volumeAccessMode"
        )
    if ext.kind == RESOURCE_CLAIM_TEMPLATE:
        return (
            f"kubectl apply -n {namespace} -f <a ResourceClaimTemplate (resource.k8s.io) named "
            f"{ext.name}>, or the ComputeDomain that creates it"
        )
    assert ext.kind == RESOURCE_CLAIM, ext.kind
    return f"kubectl apply -n {namespace} -f <a ResourceClaim (resource.k8s.io) named {ext.name}>"


def external_lines(
    objects: list[dict[str, Any]], namespace: str, passed_over: Mapping[str, str] | None = None
) -> list[str]:
    """One line per external reference of ``objects``: what it is, who reads it, how to create
    it. ``passed_over`` maps a token to where the file itself defines that object (documents
    left out by ``--graphs-only``)."""
    lines = []
    for ext in externals(objects):
        users = ", ".join(ext.users[:_USERS_SHOWN])
        if len(ext.users) > _USERS_SHOWN:
            users += f" and {len(ext.users) - _USERS_SHOWN} more"
        line = f"{ext.token} (used by {users}): {how_to_create(ext, namespace)}"
        if passed_over and ext.token in passed_over:
            line += f"; {passed_over[ext.token]} defines it, passed over by --graphs-only"
        lines.append(line)
    return lines
