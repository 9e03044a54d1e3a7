"""Objects a graph's pods depend on besides their workloads, Services and RBAC (pure).

* ``modelRef`` → the headless model Service (dynamo profile): Dynamo's
  ``generateHeadlessServiceForModel`` (``internal/dynamo/model_service.go``): one Service per
  base model, named ``dynamo-model-<h>`` with ``h`` the first 8 hex digits of the SHA-256 of the
  model name, ``clusterIP: None``, selecting the pods labelled with that hash, port ``system``
  9090; the model name in the annotation ``nvidia.com/dynamo-base-model``.  Dynamo's model
  controller finds a model's endpoints through the EndpointSlices of this Service.
* The MPI SSH Secret of TRT-LLM multinode (both profiles: the pods mount it whatever the
  runtime).  The key pair must be made once per namespace and never rewritten, which a pure
  render cannot do: it emits a placeholder (no data, so ``kubectl apply`` of the render leaves
  an existing Secret's keys alone) marked with ``PLACEHOLDER_ANNOTATION``, which says how to
  create it.  The operator creates the real one instead (``kube/mpi_secret.py``).
"""

from __future__ import annotations

import hashlib
from typing import Any

from drivetrain.api.models import GraphDeployment
from drivetrain.render.engines.base import MPI_SECRET
from drivetrain.render.naming import object_meta
from drivetrain.render.profiles import DYNAMO, profile_of

MODEL_HASH_LABEL = "nvidia.com/dynamo-base-model-hash"
MODEL_ANNOTATION = "nvidia.com/dynamo-base-model"
SYSTEM_PORT = 9090
#: Marks a rendered object a person (or the operator) must create with real content; its value
#: says why, then ``HOW`` and a command.  ``drivetrain render`` prints it as comment lines and a
#: note on stderr.
PLACEHOLDER_ANNOTATION = "drivetrain.dev/placeholder"
HOW = " To make it by hand: "


def model_hash(model: str) -> str:
    """Dynamo's ``HashModelName``: the first 8 hex digits of the SHA-256 of the name."""
    return hashlib.sha256(model.encode()).hexdigest()[:8]


def model_ref(graph: GraphDeployment, service_name: str) -> str | None:
    """The base model a dynamo-profile service serves (``modelRef.name``), or None."""
    if profile_of(graph) is not DYNAMO:
        return None
    ref = graph.spec.services[service_name].modelRef or {}
    name = ref.get("name")
    return name if isinstance(name, str) and name else None


def model_pod_labels(graph: GraphDeployment, service_name: str) -> dict[str, str]:
    """The model hash label on the pods of a service with ``modelRef`` (``AddBaseModelLabel``)."""
    model = model_ref(graph, service_name)
    return {MODEL_HASH_LABEL: model_hash(model)} if model else {}


def model_pod_annotations(graph: GraphDeployment, service_name: str) -> dict[str, str]:
    model = model_ref(graph, service_name)
    return {MODEL_ANNOTATION: model} if model else {}


def model_services(graph: GraphDeployment, namespace: str) -> list[dict[str, Any]]:
    """One headless Service per base model named in the graph's ``modelRef``s."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for name in graph.spec.services:
        model = model_ref(graph, name)
        if model is None or model in seen:
            continue
        seen.add(model)
        digest = model_hash(model)
        meta = object_meta(graph, f"dynamo-model-{digest}", namespace)
        meta["labels"][MODEL_HASH_LABEL] = digest
        meta["annotations"] = {**meta.get("annotations", {}), MODEL_ANNOTATION: model}
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": meta,
                "spec": {
                    "clusterIP": "None",
                    "selector": {MODEL_HASH_LABEL: digest},
                    "publishNotReadyAddresses": False,
                    "ports": [
                        {
                            "name": "system",
                            "port": SYSTEM_PORT,
                            "targetPort": SYSTEM_PORT,
                            "protocol": "TCP",
                        }
                    ],
                },
            }
        )
    return out


def mpi_secret_command(namespace: str, name: str = MPI_SECRET) -> str:
    """How a person creates the MPI SSH Secret (what the operator does by itself)."""
    return (
        f"ssh-keygen -t ed25519 -N '' -C {name} -f ./mpi-key && kubectl create secret generic "
        f"{name} -n {namespace} --from-file=private.key=./mpi-key "
        "--from-file=private.key.pub=./mpi-key.pub"
    )


def mpi_secret_placeholder(
    graph: GraphDeployment, namespace: str, name: str = MPI_SECRET
) -> dict[str, Any]:
    """The placeholder of the MPI SSH Secret (no data): the operator creates the real one."""
    meta = object_meta(graph, name, namespace)
    meta["annotations"] = {
        **meta.get("annotations", {}),
        PLACEHOLDER_ANNOTATION: (
            "TRT-LLM multinode pods mount this Secret's SSH key pair (private.key, "
            "private.key.pub): one per namespace, made once and kept (drivetrain operator "
            "makes it itself)." + HOW + mpi_secret_command(namespace, name)
        ),
    }
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque"}


def placeholder_note(obj: dict[str, Any]) -> str | None:
    """What a placeholder object says must be done, or None for a real object."""
    note = ((obj.get("metadata") or {}).get("annotations") or {}).get(PLACEHOLDER_ANNOTATION)
    return str(note) if note is not None else None


def is_placeholder(obj: dict[str, Any]) -> bool:
    return placeholder_note(obj) is not None
