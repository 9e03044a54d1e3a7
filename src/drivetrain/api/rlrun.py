"""The RLRun API (``drivetrain.dev/v1alpha1``): inference graphs and the Ray training beside them.

An RLRun names one or more graphs (a ``manifest`` file, inlined by the CLI, or an inline
``graph``), the ``ray`` block of a KubeRay RayJob or RayCluster, and the image, pull secrets,
ServiceAccount, labels and annotations shared by both (as nrl-k8s's ``InfraConfig``).  Every
model forbids unknown fields, and ``null`` counts as absent (docs/rl.md).

``resolve_graph`` is the one place a run's graph document is made: overrides deep-merged onto
its ``.spec``, the name, labels, annotations, image and pull secrets applied.  Validation, the
renderer, the operator and ``drivetrain up`` all read graphs through it.
"""

from __future__ import annotations

import copy
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from drivetrain import envnames
from drivetrain.api import kinds
from drivetrain.api.enums import RayMode
from drivetrain.api.models import INT_OR_STRING, ObjectMeta, Strict

API_VERSION = kinds.RLRUN.api_version
KIND = kinds.RLRUN.kind
DEFAULT_READY_TIMEOUT_S = 600
DEFAULT_TTL_S = 3600
#: A graph key names the variable ``DRIVETRAIN_FRONTEND_URL_<KEY>`` (upper-cased, ``-`` → ``_``).
GRAPH_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def _text(v: Any) -> Any:
    # `STEPS: 3` in an env mapping means the string "3" (the CRD takes an int or a string).
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return v


EnvValue = Annotated[str, BeforeValidator(_text), WithJsonSchema(INT_OR_STRING)]


class GraphRef(Strict):
    """One graph of the run: where it comes from and how it is changed for this run."""

    #: a GraphDeployment/DGD file, relative to the RLRun file (the CLI inlines it as ``graph``)
    manifest: str | None = None
    #: an inline graph document (apiVersion, kind, metadata, spec)
    graph: dict[str, Any] | None = None
    name: str | None = None
    overrides: dict[str, Any] | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    readyTimeoutS: int = Field(default=DEFAULT_READY_TIMEOUT_S, ge=1)


class RayClusterBlock(Strict):
    name: str | None = None
    #: a raw RayCluster ``.spec`` (KubeRay's schema, checked by ``api.kuberay``)
    spec: dict[str, Any]
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class RayJobBlock(Strict):
    entrypoint: str | None = None
    #: env of the entrypoint (the RayJob's runtime env ``env_vars``; locally, its process env)
    env: dict[str, EnvValue] | None = None
    #: drivetrain: the entrypoint's output is also appended to this file (docs/rl.md)
    logFile: str | None = None
    #: drivetrain: how KubeRay submits the entrypoint (its default K8sJobMode, or HTTPMode)
    submissionMode: Literal["K8sJobMode", "HTTPMode"] = "K8sJobMode"
    shutdownAfterJobFinishes: bool = True
    ttlSecondsAfterFinished: int = Field(default=DEFAULT_TTL_S, ge=0)
    activeDeadlineSeconds: int | None = Field(default=None, ge=1)


class RaySpec(Strict):
    mode: RayMode = RayMode.rayjob
    cluster: RayClusterBlock
    job: RayJobBlock | None = None


class RLRunSpec(Strict):
    image: str | None = None
    imagePullSecrets: list[str] | None = None
    serviceAccount: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    graphs: dict[str, GraphRef] = Field(min_length=1)
    ray: RaySpec
    keepGraphs: bool = False
    #: The Secret (key ``token``) holding the frontends' RL API token (docs/rl.md); unset: the
    #: operator generates ``<run>-admin-token`` once.
    adminTokenSecret: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
    )


class RLRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    apiVersion: Literal["drivetrain.dev/v1alpha1"]
    kind: Literal["RLRun"]
    metadata: ObjectMeta
    spec: RLRunSpec
    status: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def mode(self) -> RayMode:
        return self.spec.ray.mode

    @property
    def ray_kind(self) -> str:
        return kinds.RAY_JOB.kind if self.mode is RayMode.rayjob else kinds.RAY_CLUSTER.kind

    @property
    def ray_name(self) -> str:
        """The RayJob's (or RayCluster's) name: ``ray.cluster.name``, else the run's, as
        nrl-k8s names a RayJob after its training cluster."""
        return self.spec.ray.cluster.name or self.metadata.name


# ------------------------------------------------------------------------------ graphs


def deep_merge(base: Any, overrides: Any) -> Any:
    """``overrides`` onto ``base``: mappings merge recursively (siblings kept, new keys
    added), lists and scalars are replaced whole (OmegaConf's merge, as nrl-k8s uses it)."""
    if isinstance(base, dict) and isinstance(overrides, dict):
        out = dict(base)
        for key, value in overrides.items():
            out[key] = deep_merge(base.get(key), value)
        return out
    return copy.deepcopy(overrides)


def graph_name(run: RLRun, key: str, base: dict[str, Any]) -> str:
    """The graph's name: the entry's ``name``, else the document's, else ``<run>-<key>``."""
    ref = run.spec.graphs[key]
    meta = base.get("metadata") if isinstance(base.get("metadata"), dict) else {}
    return ref.name or (meta or {}).get("name") or f"{run.name}-{key.lower().replace('_', '-')}"


def _fill_images(spec: dict[str, Any], image: str | None, pull_secrets: list[str]) -> None:
    """The run's image where a main container names none, its pull secrets where a pod has
    none: only services that write ``extraPodSpec`` (``mainContainer`` for the image), as
    nrl-k8s patches DGDs, so a drivetrain service keeps its profile's default image."""
    for svc in (spec.get("services") or {}).values():
        eps = svc.get("extraPodSpec") if isinstance(svc, dict) else None
        if not isinstance(eps, dict):
            continue
        main = eps.get("mainContainer")
        if image and isinstance(main, dict) and not main.get("image"):
            main["image"] = image
        if pull_secrets and not eps.get("imagePullSecrets"):
            eps["imagePullSecrets"] = [{"name": s} for s in pull_secrets]


def resolve_graph(run: RLRun, key: str, base: dict[str, Any]) -> dict[str, Any]:
    """The graph document of ``key``: ``base`` (the manifest's or inline document) with the
    overrides merged onto ``.spec`` and the run's name, labels, annotations, image and pull
    secrets applied.  Pure; ``base`` is not changed; no namespace (the caller's)."""
    ref = run.spec.graphs[key]
    doc = copy.deepcopy(base)
    spec = doc.get("spec") if isinstance(doc.get("spec"), dict) else {}
    spec = deep_merge(spec, ref.overrides or {})
    _fill_images(spec, run.spec.image, run.spec.imagePullSecrets or [])
    written: dict[str, Any] = doc["metadata"] if isinstance(doc.get("metadata"), dict) else {}
    meta: dict[str, Any] = {"name": graph_name(run, key, base)}
    labels = {**(run.spec.labels or {}), **(written.get("labels") or {}), **(ref.labels or {})}
    annotations = {
        **(run.spec.annotations or {}),
        **(written.get("annotations") or {}),
        **(ref.annotations or {}),
    }
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    out: dict[str, Any] = {"apiVersion": doc.get("apiVersion"), "kind": doc.get("kind")}
    out["metadata"] = meta
    out["spec"] = spec
    return out


def frontend_variable(key: str) -> str:
    """``DRIVETRAIN_FRONTEND_URL_<KEY>``: the key upper-cased, ``-`` as ``_``."""
    return f"{envnames.FRONTEND_URL}_{key.upper().replace('-', '_')}"
