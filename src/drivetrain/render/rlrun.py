"""An RLRun rendered (pure): its graphs as their custom resources, then the RayJob or RayCluster.

* **Graphs**: each graph's resolved document (``api.rlrun.resolve_graph``: overrides merged,
  name applied) in the run's namespace, labelled with the run and its key; with ``children``
  also what ``render_graph`` makes of it (as ``drivetrain render`` of a graph file).
* **Ray**: the ``ray.cluster.spec`` with the run's image and pull secrets where a container or
  pod has none, its ServiceAccount where a pod names none (Ray pods only, never graph pods), its
  labels under the pods' own, and in every Ray container the frontend env (``ray_env``).  In
  rayjob mode a ``ray.io/v1`` RayJob created with ``suspend: true`` (the operator releases it
  once the graphs are ready), its entrypoint carried as ``render.entrypoint`` explains, and a
  submitter pod template with the same env; in raycluster mode a RayCluster.
* **The RL API** (docs/rl.md): every graph's frontend reads its admin token from the run's
  Secret (``adminTokenSecret``, else ``<run>-admin-token``, key ``token``), and every Ray
  container gets the admin listener's URL and the same token.  A generated Secret is the
  operator's (made once, random); ``render`` prints a placeholder without a token (the admin
  listeners stay closed until it exists) and says so.

The owner references are the operator's (they need the uids of live objects).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import yaml

from drivetrain import envnames
from drivetrain.api.enums import ComponentType, RayMode
from drivetrain.api.kinds import RAY_CLUSTER, RAY_JOB
from drivetrain.api.models import GraphDeployment
from drivetrain.api.rlrun import RLRun, frontend_variable
from drivetrain.api.rlrun_validate import RunGraph
from drivetrain.render.companions import HOW, PLACEHOLDER_ANNOTATION
from drivetrain.render.entrypoint import entrypoint_script, submitted_entrypoint
from drivetrain.render.graph import render_graph
from drivetrain.render.naming import resource_name
from drivetrain.render.pod import merge_env
from drivetrain.render.workloads import ADMIN_PORT, FRONTEND_PORT

#: On every object an RLRun creates: the run's name, and the graph's key on its graphs.
RUN_LABEL = "drivetrain.dev/rlrun"
RUN_GRAPH_LABEL = "drivetrain.dev/rlrun-graph"
#: KubeRay's submitter container name (its default pod template uses the same).
SUBMITTER = "ray-job-submitter"
#: KubeRay's default submitter resources (``GetDefaultSubmitterContainer``), kept for ours.
SUBMITTER_RESOURCES = {
    "requests": {"cpu": "500m", "memory": "200Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}


#: The key of the admin token in the run's Secret.
ADMIN_TOKEN_KEY = "token"


@dataclass(frozen=True)
class RenderedRun:
    #: key → the graph's custom resource (GraphDeployment or DynamoGraphDeployment)
    graphs: dict[str, dict[str, Any]]
    #: the RayJob or RayCluster
    ray: dict[str, Any]
    #: key → the graph's children (only when rendered with ``children=True``)
    children: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: the admin token's Secret as a placeholder, when the run does not name its own
    secret: dict[str, Any] | None = None

    def objects(self) -> list[dict[str, Any]]:
        """Every object in order: the token Secret's placeholder, each graph (then its
        children), then the Ray object."""
        out: list[dict[str, Any]] = [self.secret] if self.secret is not None else []
        for key, graph in self.graphs.items():
            out.append(graph)
            out += self.children.get(key, [])
        return [*out, self.ray]


def frontend_service(graph: GraphDeployment) -> str | None:
    """The graph's frontend service (the first with ``componentType: frontend``), if any."""
    return next(
        (n for n, s in graph.spec.services.items() if s.componentType == ComponentType.frontend),
        None,
    )


def frontend_url(graph: GraphDeployment, namespace: str) -> str | None:
    """``http://<graph>-<frontend>.<ns>.svc.cluster.local:8000/v1``: the frontend's Service as
    drivetrain renders it and Dynamo's operator names it (``<dgd>-<service, lower case>``)."""
    service = frontend_service(graph)
    if service is None:
        return None
    host = f"{resource_name(graph, service)}.{namespace}.svc.cluster.local"
    return f"http://{host}:{FRONTEND_PORT}/v1"


def admin_url(graph: GraphDeployment, namespace: str) -> str | None:
    """``http://<graph>-<frontend>.<ns>.svc.cluster.local:8002``: the RL API's listener."""
    service = frontend_service(graph)
    if service is None:
        return None
    host = f"{resource_name(graph, service)}.{namespace}.svc.cluster.local"
    return f"http://{host}:{ADMIN_PORT}"


def admin_token_secret(run: RLRun) -> str:
    """The Secret holding the run's admin token: the run's own, else ``<run>-admin-token``."""
    return run.spec.adminTokenSecret or f"{run.name}-admin-token"


def admin_token_env(secret: str) -> dict[str, Any]:
    """The token from the run's Secret; optional, so that a pod starts without it (its admin
    listener then stays closed) rather than wait for a Secret nobody made."""
    return {
        "name": envnames.ADMIN_TOKEN,
        "valueFrom": {"secretKeyRef": {"name": secret, "key": ADMIN_TOKEN_KEY, "optional": True}},
    }


def admin_env(urls: dict[str, str | None], token: dict[str, Any]) -> list[dict[str, Any]]:
    """``DRIVETRAIN_ADMIN_URL_<KEY>`` per graph with a frontend, without suffix too when the run
    has one graph, and the token (``token``: a literal value or a Secret reference)."""
    env: list[dict[str, Any]] = []
    single = next(iter(urls.values())) if len(urls) == 1 else None
    if single:
        env.append({"name": envnames.ADMIN_URL, "value": single})
    suffix = len(envnames.FRONTEND_URL)
    env += [
        {"name": envnames.ADMIN_URL + frontend_variable(k)[suffix:], "value": u}
        for k, u in urls.items()
        if u
    ]
    return [*env, token]


def token_placeholder(run: RLRun, namespace: str) -> dict[str, Any]:
    """The generated Secret as ``render`` prints it: no token (every admin listener stays
    closed) until the operator, or a person, makes the real one."""
    name = admin_token_secret(run)
    command = (
        f"kubectl create secret generic {name} -n {namespace} "
        f"--from-literal={ADMIN_TOKEN_KEY}=$(openssl rand -hex 32)"
    )
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**(run.spec.labels or {}), RUN_LABEL: run.name},
            "annotations": {
                PLACEHOLDER_ANNOTATION: (
                    "the RL API's admin token (docs/rl.md); the operator generates it once "
                    "with a random value." + HOW + command
                )
            },
        },
        "type": "Opaque",
    }


def frontend_env(urls: dict[str, str | None]) -> list[dict[str, Any]]:
    """``DRIVETRAIN_FRONTEND_URL_<KEY>`` per graph with a frontend; with exactly one graph also
    ``DRIVETRAIN_FRONTEND_URL`` and ``OPENAI_BASE_URL`` (the OpenAI client's own variable)."""
    env: list[dict[str, Any]] = []
    single = next(iter(urls.values())) if len(urls) == 1 else None
    if single:
        env.append({"name": envnames.FRONTEND_URL, "value": single})
    env += [{"name": frontend_variable(k), "value": u} for k, u in urls.items() if u]
    if single:
        env.append({"name": envnames.OPENAI_BASE_URL, "value": single})
    return env


def ray_env(run: RLRun, graphs: dict[str, RunGraph], namespace: str) -> list[dict[str, Any]]:
    """The env every Ray container gets first (a container's own entries win by name).

    The frontend URLs, then the RL API's: each frontend's admin listener and the token from
    the run's Secret (docs/rl.md).
    """
    urls = {key: frontend_url(g.graph, namespace) for key, g in graphs.items()}
    admins = {key: admin_url(g.graph, namespace) for key, g in graphs.items()}
    return [
        *frontend_env(urls),
        *admin_env(admins, admin_token_env(admin_token_secret(run))),
    ]


def graph_object(run: RLRun, graph: RunGraph, namespace: str) -> dict[str, Any]:
    """The graph's custom resource as the run creates it (without owner references)."""
    doc = copy.deepcopy(graph.document)
    meta = doc["metadata"]
    meta["namespace"] = namespace
    meta["labels"] = {**meta.get("labels", {}), RUN_LABEL: run.name, RUN_GRAPH_LABEL: graph.key}
    service = frontend_service(graph.graph)
    if service is not None:
        # The frontend opens the RL API with the run's token; a token the graph sets wins.
        spec = doc["spec"]["services"][service]
        envs = spec.get("envs") or []
        if not any(e.get("name") == envnames.ADMIN_TOKEN for e in envs):
            spec["envs"] = [*envs, admin_token_env(admin_token_secret(run))]
    return doc


# ------------------------------------------------------------------------------ Ray pods


def _pod_templates(cluster_spec: dict[str, Any]) -> list[dict[str, Any]]:
    head = cluster_spec["headGroupSpec"].setdefault("template", {})
    workers = [g.setdefault("template", {}) for g in cluster_spec.get("workerGroupSpecs") or []]
    return [head, *workers]


def _patch_pod(
    template: dict[str, Any], run: RLRun, labels: dict[str, str], env: list[dict[str, Any]]
) -> None:
    meta = dict(template.pop("metadata", None) or {})
    spec = template.pop("spec", None) or {}
    meta["labels"] = {**labels, **(meta.get("labels") or {})}  # the pod's own labels win
    template.update(metadata=meta, spec=spec)
    if run.spec.imagePullSecrets and not spec.get("imagePullSecrets"):
        spec["imagePullSecrets"] = [{"name": s} for s in run.spec.imagePullSecrets]
    if run.spec.serviceAccount and not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = run.spec.serviceAccount
    for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        if run.spec.image and not container.get("image"):
            container["image"] = run.spec.image
    for container in spec.get("containers", []):
        container["env"] = copy.deepcopy(merge_env(env, list(container.get("env") or [])))


def ray_cluster_spec(run: RLRun, graphs: dict[str, RunGraph], namespace: str) -> dict[str, Any]:
    """``ray.cluster.spec`` with the run's image, pull secrets, ServiceAccount, labels and env.

    In rayjob mode every Ray container also carries the entrypoint script
    (``DRIVETRAIN_ENTRYPOINT``): Ray runs the driver on the head unless told otherwise, and a
    driver placed on a worker finds it there too.
    """
    spec = copy.deepcopy(run.spec.ray.cluster.spec)
    labels = {**(run.spec.labels or {}), **(run.spec.ray.cluster.labels or {}), RUN_LABEL: run.name}
    env = ray_env(run, graphs, namespace)
    job = run.spec.ray.job
    if run.mode is RayMode.rayjob and job is not None and job.entrypoint:
        script = entrypoint_script(job.entrypoint, job.logFile)
        env = [*env, {"name": envnames.ENTRYPOINT, "value": script}]
    for template in _pod_templates(spec):
        _patch_pod(template, run, labels, env)
    return spec


def _metadata(run: RLRun, namespace: str) -> dict[str, Any]:
    cluster = run.spec.ray.cluster
    labels = {**(run.spec.labels or {}), **(cluster.labels or {}), RUN_LABEL: run.name}
    meta: dict[str, Any] = {"name": run.ray_name, "namespace": namespace, "labels": labels}
    annotations = {**(run.spec.annotations or {}), **(cluster.annotations or {})}
    if annotations:
        meta["annotations"] = annotations
    return meta


def _submitter(run: RLRun, cluster_spec: dict[str, Any], env: list[dict[str, Any]]) -> dict:
    """K8sJobMode's submitter pod, as KubeRay's default one plus the run's env: the head's
    image and pull secrets; KubeRay fills in the ``ray job submit`` command."""
    head = cluster_spec["headGroupSpec"]["template"]["spec"]
    container = {
        "name": SUBMITTER,
        "image": head["containers"][0].get("image") or run.spec.image,
        "resources": copy.deepcopy(SUBMITTER_RESOURCES),
        "env": copy.deepcopy(env),
    }
    if not container["image"]:
        del container["image"]
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if head.get("imagePullSecrets"):
        spec["imagePullSecrets"] = copy.deepcopy(head["imagePullSecrets"])
    if run.spec.serviceAccount:
        spec["serviceAccountName"] = run.spec.serviceAccount
    labels = {**(run.spec.labels or {}), RUN_LABEL: run.name}
    return {"metadata": {"labels": labels}, "spec": spec}


def ray_object(run: RLRun, graphs: dict[str, RunGraph], namespace: str) -> dict[str, Any]:
    """The RayJob (``suspend: true``) or, in raycluster mode, the RayCluster."""
    cluster_spec = ray_cluster_spec(run, graphs, namespace)
    if run.mode is RayMode.raycluster:
        return {
            "apiVersion": RAY_CLUSTER.api_version,
            "kind": RAY_CLUSTER.kind,
            "metadata": _metadata(run, namespace),
            "spec": cluster_spec,
        }
    job = run.spec.ray.job
    assert job is not None  # validation requires it in rayjob mode
    spec: dict[str, Any] = {
        "suspend": True,
        "entrypoint": submitted_entrypoint(),
        "submissionMode": job.submissionMode,
        "shutdownAfterJobFinishes": job.shutdownAfterJobFinishes,
        "ttlSecondsAfterFinished": job.ttlSecondsAfterFinished,
    }
    if job.activeDeadlineSeconds is not None:
        spec["activeDeadlineSeconds"] = job.activeDeadlineSeconds
    if job.env:
        spec["runtimeEnvYAML"] = yaml.safe_dump({"env_vars": dict(job.env)}, sort_keys=False)
    spec["rayClusterSpec"] = cluster_spec
    if job.submissionMode == "K8sJobMode":
        spec["submitterPodTemplate"] = _submitter(
            run, cluster_spec, ray_env(run, graphs, namespace)
        )
    return {
        "apiVersion": RAY_JOB.api_version,
        "kind": RAY_JOB.kind,
        "metadata": _metadata(run, namespace),
        "spec": spec,
    }


def render_run(
    run: RLRun,
    graphs: dict[str, RunGraph],
    *,
    namespace: str,
    multinode: str | None = None,
    children: bool = False,
) -> RenderedRun:
    """Every object of the run in ``namespace``; ``children``: each graph's rendered objects
    too (``render_graph``; raises ``InvalidGraph`` as it does)."""
    rendered = {key: graph_object(run, g, namespace) for key, g in graphs.items()}
    made = (
        {
            k: render_graph(g.graph, namespace=namespace, multinode=multinode)
            for k, g in graphs.items()
        }
        if children
        else {}
    )
    secret = None if run.spec.adminTokenSecret else token_placeholder(run, namespace)
    return RenderedRun(rendered, ray_object(run, graphs, namespace), made, secret)
