"""The documents beside a graph, rendered with it as ``kubectl apply -f FILE -n NS`` would
apply them (pure; docs/rendering.md, "Documents beside the graph").

Dynamo's examples write a ConfigMap, a PVC or a ResourceClaimTemplate next to the graph that
uses it. Each such document (``api.loader.Sibling``) comes out as written, with three changes:

* **namespace**: a namespaced object gets the namespace the graph renders into; one that names
  another namespace is an error, as ``kubectl apply -n NS`` refuses it (the graph's pods could
  not reference it across namespaces anyway). Cluster-scoped kinds (``CLUSTER_SCOPED_KINDS``)
  are left as written. Kinds this table does not know are taken as namespaced: rendering reads
  no cluster, so it cannot ask discovery as kubectl does.
* **label** ``drivetrain.dev/graph=<name>``: the first graph of the file whose pods reference
  the object, else the first graph of the file.
* **conflicts**: a document with the kind and name of an object a graph renders, or of another
  document, is an error naming both (``kubectl apply`` would let the later replace the earlier).

References to them are then no external references (``render/external.py``); a ComputeDomain
(``resource.nvidia.com``) also provides the ResourceClaimTemplate its controller creates
(``spec.channel.resourceClaimTemplate.name``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from drivetrain.api.errors import FieldError, InvalidGraph
from drivetrain.api.loader import LoadedFile, Sibling
from drivetrain.podrefs import RESOURCE_CLAIM_TEMPLATE, object_token, pod_references, ref_token
from drivetrain.render.external import pod_templates
from drivetrain.render.graph import render_graph
from drivetrain.render.naming import GRAPH_LABEL

#: Built-in kinds that live outside any namespace (``kubectl api-resources --namespaced=false``).
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "APIService",
        "CertificateSigningRequest",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterTrustBundle",
        "ComponentStatus",
        "CSIDriver",
        "CSINode",
        "CustomResourceDefinition",
        "DeviceClass",
        "FlowSchema",
        "IngressClass",
        "IPAddress",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PriorityClass",
        "PriorityLevelConfiguration",
        "ResourceSlice",
        "RuntimeClass",
        "ServiceCIDR",
        "StorageClass",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
        "VolumeAttributesClass",
    }
)
COMPUTE_DOMAIN_GROUP = "resource.nvidia.com"


def provides(obj: Mapping[str, Any]) -> set[str]:
    """The tokens (``configmap/x``) of the objects a document brings into the namespace."""
    tokens = {object_token(obj)}
    group = str(obj.get("apiVersion", "")).split("/")[0]
    spec = obj.get("spec")
    if (
        obj.get("kind") == "ComputeDomain"
        and group == COMPUTE_DOMAIN_GROUP
        and isinstance(spec, dict)
    ):
        channel = spec.get("channel") or {}
        template = (channel.get("resourceClaimTemplate") or {}).get("name")
        if isinstance(template, str) and template:
            tokens.add(ref_token(RESOURCE_CLAIM_TEMPLATE, template))
    return tokens


def provided_tokens(objects: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """Every token the objects written beside a graph provide."""
    return frozenset(token for obj in objects for token in provides(obj))


def _referenced(objects: list[dict[str, Any]]) -> set[str]:
    return {
        ref.token
        for obj in objects
        for template in pod_templates(obj)
        for ref in pod_references(template.spec)
    }


def render_siblings(
    siblings: Sequence[Sibling],
    graphs: Sequence[tuple[str, list[dict[str, Any]]]],
    namespace: str | None,
    file: str | None = None,
) -> list[dict[str, Any]]:
    """Each sibling as it is applied beside ``graphs`` (``(graph name, its objects)`` in file
    order), in the order given; ``namespace`` None keeps every namespace as written.

    Raises ``InvalidGraph`` with every namespace and name conflict.
    """
    if not siblings:
        return []
    if not graphs:
        raise ValueError("documents beside a graph need a graph")
    referenced = [(name, _referenced(objects)) for name, objects in graphs]
    rendered = {object_token(obj): name for name, objects in graphs for obj in objects}
    seen: dict[str, Sibling] = {}
    errors: list[FieldError] = []
    out = []
    for sibling in siblings:
        token = object_token(sibling.obj)

        def error(path: str, message: str, at: Sibling = sibling) -> None:
            errors.append(FieldError(at.field(path), message, file, at.document))

        if token in rendered:
            error(
                "metadata.name",
                f"{sibling.kind} {sibling.name} is also rendered by graph {rendered[token]}; "
                "rename one of them",
            )
        if token in seen:
            first = seen[token]
            error(
                "metadata.name",
                f"{sibling.kind} {sibling.name} is also written in document "
                f"{first.document + 1}; kubectl apply would let this one replace it",
            )
        seen.setdefault(token, sibling)
        obj = copy.deepcopy(sibling.obj)
        meta = obj["metadata"]
        if sibling.kind not in CLUSTER_SCOPED_KINDS and namespace is not None:
            written = meta.get("namespace")
            if written and written != namespace:
                error(
                    "metadata.namespace",
                    f"{written!r} is not the namespace the graph renders into ({namespace!r}); "
                    f"kubectl apply -n {namespace} refuses it too: remove it, or render with "
                    f"-n {written}",
                )
            meta["namespace"] = namespace
        mine = provides(sibling.obj)
        owner = next((name for name, refs in referenced if refs & mine), graphs[0][0])
        meta["labels"] = {**(meta.get("labels") or {}), GRAPH_LABEL: owner}
        out.append(obj)
    if errors:
        raise InvalidGraph(errors)
    return out


def render_documents(
    loaded: LoadedFile,
    *,
    namespace: str,
    multinode: str | None = None,
    graphs_only: bool = False,
    check_namespaces: bool = True,
) -> list[dict[str, Any]]:
    """Every graph of ``loaded`` rendered into ``namespace`` and, unless ``graphs_only``, the
    documents beside them, in the order of the file (as ``kubectl apply -f`` applies it).

    Raises ``InvalidGraph`` with every error: the loader's, each graph's, the siblings'.
    ``check_namespaces`` False keeps the siblings' namespaces as written (``validate``, which
    renders into no namespace in particular).
    """
    provided = frozenset() if graphs_only else provided_tokens(s.obj for s in loaded.siblings)
    errors: list[FieldError] = list(loaded.errors)
    placed: list[tuple[int, list[dict[str, Any]]]] = []
    graphs: list[tuple[str, list[dict[str, Any]]]] = []
    for graph, doc in zip(loaded.graphs, loaded.documents, strict=True):
        try:
            objects = render_graph(
                graph, namespace=namespace, multinode=multinode, provided=provided
            )
        except InvalidGraph as exc:
            errors += [e.located(loaded.path, doc) for e in exc.errors]
            continue
        placed.append((doc, objects))
        graphs.append((graph.name, objects))
    if not graphs_only and loaded.siblings and graphs:
        try:
            rendered = render_siblings(
                loaded.siblings, graphs, namespace if check_namespaces else None, loaded.path
            )
        except InvalidGraph as exc:
            errors += exc.errors
        else:
            placed += [
                (s.document, [obj]) for s, obj in zip(loaded.siblings, rendered, strict=True)
            ]
    if errors:
        raise InvalidGraph(list(dict.fromkeys(errors)))
    placed.sort(key=lambda entry: entry[0])  # stable: the items of a List keep their order
    return [obj for _, objects in placed for obj in objects]
