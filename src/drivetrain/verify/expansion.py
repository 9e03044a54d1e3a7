"""The environment the kubelet builds for one container (kubelet ``makeEnvironmentVariables``).

The ``$(VAR)`` expansion itself is ``drivetrain.cmdline.expand``, shared with the renderer and
``drivetrain up``; ``expand`` and ``expand_argv`` are re-exported here for verify's callers.
Rules: kubelet ``makeEnvironmentVariables`` (see docs/verify.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from drivetrain.cmdline import expand, expand_argv

__all__ = [
    "ContainerEnv",
    "ControllerEnv",
    "PodFacts",
    "container_env",
    "expand",
    "expand_argv",
    "resolve_field_ref",
    "service_link_env",
]

# Values the kubelet would read from a Secret or a ConfigMap that verify cannot see. The marker is
# deliberately free of ``$`` so it never looks like an unexpanded reference.
SECRET_MARKER = "<from-secret:{name}/{key}>"
CONFIGMAP_MARKER = "<from-configmap:{name}/{key}>"


@dataclass(frozen=True)
class PodFacts:
    """What the API server and the kubelet know about one concrete pod (values for fieldRef)."""

    name: str
    namespace: str
    ip: str
    hostname: str
    uid: str = "00000000-0000-4000-8000-000000000000"
    node_name: str = "node-0"
    host_ip: str = "192.168.0.10"
    service_account: str = "default"
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ControllerEnv:
    """Env a workload controller puts into every container of a pod, and where it puts it.

    LeaderWorkerSet *prepends* its variables (``addEnvVarsIfNotExists`` in lws
    ``pkg/utils/pod/pod_utils.go``); Grove *appends* (``AddEnvVarsToContainers`` in grove
    ``internal/utils``). Both drop a user entry of the same name (``replace``). The Job
    controller appends ``JOB_COMPLETION_INDEX`` only to a container that does not set it
    (``replace=False``: the container's own entry wins).
    """

    entries: tuple[dict[str, Any], ...] = ()
    placement: Literal["prepend", "append"] = "append"
    replace: bool = True

    def apply(self, env: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        if self.replace:
            taken = {e["name"] for e in self.entries}
            kept, injected = [e for e in env if e.get("name") not in taken], list(self.entries)
        else:
            present = {e.get("name") for e in env}
            kept, injected = list(env), [e for e in self.entries if e["name"] not in present]
        return [*injected, *kept] if self.placement == "prepend" else [*kept, *injected]


@dataclass
class ContainerEnv:
    """The final environment of a container, and what verify could not see."""

    values: dict[str, str]
    opaque_sources: list[str]  # envFrom Secrets/ConfigMaps whose keys verify does not know


def resolve_field_ref(path: str, pod: PodFacts) -> str:
    """The value of a ``fieldRef.fieldPath`` for ``pod``."""
    simple = {
        "metadata.name": pod.name,
        "metadata.namespace": pod.namespace,
        "metadata.uid": pod.uid,
        "spec.nodeName": pod.node_name,
        "spec.serviceAccountName": pod.service_account,
        "status.podIP": pod.ip,
        "status.podIPs": pod.ip,
        "status.hostIP": pod.host_ip,
        "status.hostIPs": pod.host_ip,
    }
    if path in simple:
        return simple[path]
    for prefix, source in (
        ("metadata.labels", pod.labels),
        ("metadata.annotations", pod.annotations),
    ):
        if path.startswith(prefix + "['") and path.endswith("']"):
            return source.get(path[len(prefix) + 2 : -2], "")
    return f"<fieldRef:{path}>"


def _resource_field(ref: Mapping[str, Any], container: Mapping[str, Any]) -> str:
    # requests.cpu -> resources.requests.cpu; the divisor is rarely set on these pods.
    kind, _, resource = str(ref.get("resource", "")).partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(resource)
    return str(value) if value is not None else f"<resourceFieldRef:{ref.get('resource')}>"


def _value_from(
    source: Mapping[str, Any],
    container: Mapping[str, Any],
    pod: PodFacts,
    configmaps: Mapping[str, Mapping[str, str]],
) -> str:
    if "fieldRef" in source:
        return resolve_field_ref(str(source["fieldRef"].get("fieldPath", "")), pod)
    if "resourceFieldRef" in source:
        return _resource_field(source["resourceFieldRef"], container)
    if "configMapKeyRef" in source:
        ref = source["configMapKeyRef"]
        known = configmaps.get(str(ref.get("name")), {})
        key = str(ref.get("key"))
        if key in known:
            return known[key]
        return CONFIGMAP_MARKER.format(name=ref.get("name"), key=key)
    if "secretKeyRef" in source:
        ref = source["secretKeyRef"]
        return SECRET_MARKER.format(name=ref.get("name"), key=ref.get("key"))
    return "<valueFrom>"


def container_env(
    container: Mapping[str, Any],
    controller_env: ControllerEnv,
    pod: PodFacts,
    service_env: Mapping[str, str] | None = None,
    configmaps: Mapping[str, Mapping[str, str]] | None = None,
) -> ContainerEnv:
    """Build the env the kubelet gives ``container`` in ``pod``.

    ``envFrom`` first (ConfigMaps found in ``configmaps`` contribute their keys; Secrets and
    unknown ConfigMaps are recorded as opaque), then the controller-placed ``env`` list in order,
    each plain value expanded against what came before plus the service-link env.
    """
    service_env = dict(service_env or {})
    configmaps = configmaps or {}
    tmp: dict[str, str] = {}
    opaque: list[str] = []
    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix") or "")
        if "configMapRef" in source:
            name = str(source["configMapRef"].get("name"))
            if name in configmaps:
                for key, value in configmaps[name].items():
                    tmp[prefix + key] = value
            else:
                opaque.append(f"configmap/{name}")
        elif "secretRef" in source:
            opaque.append(f"secret/{source['secretRef'].get('name')}")
    for entry in controller_env.apply(container.get("env") or []):
        var = str(entry.get("name"))
        raw = entry.get("value")
        if raw:
            tmp[var] = expand(str(raw), [tmp, service_env])
        elif entry.get("valueFrom"):
            tmp[var] = _value_from(entry["valueFrom"], container, pod, configmaps)
        else:
            tmp[var] = ""
    final = {**service_env, **tmp}
    return ContainerEnv(values=final, opaque_sources=opaque)


def service_link_env(
    services: Sequence[Mapping[str, Any]], ip_of: Mapping[str, str]
) -> dict[str, str]:
    """The ``<SVC>_SERVICE_HOST`` family the kubelet adds when ``enableServiceLinks`` is on."""
    env: dict[str, str] = {
        "KUBERNETES_SERVICE_HOST": "10.96.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443",
        "KUBERNETES_PORT": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_PORT": "443",
        "KUBERNETES_PORT_443_TCP_ADDR": "10.96.0.1",
    }
    for svc in services:
        name = str((svc.get("metadata") or {}).get("name", ""))
        spec = svc.get("spec") or {}
        ports = spec.get("ports") or []
        if not name or not ports or spec.get("clusterIP") == "None":
            continue
        ip = ip_of.get(name, "10.96.1.1")
        base = name.upper().replace("-", "_")
        first = ports[0]
        env[f"{base}_SERVICE_HOST"] = ip
        env[f"{base}_SERVICE_PORT"] = str(first.get("port"))
        env[f"{base}_PORT"] = (
            f"{str(first.get('protocol', 'TCP')).lower()}://{ip}:{first.get('port')}"
        )
        for port in ports:
            proto = str(port.get("protocol", "TCP"))
            number = str(port.get("port"))
            if port.get("name"):
                env[f"{base}_SERVICE_PORT_{str(port['name']).upper().replace('-', '_')}"] = number
            key = f"{base}_PORT_{number}_{proto}"
            env[key] = f"{proto.lower()}://{ip}:{number}"
            env[f"{key}_PROTO"] = proto.lower()
            env[f"{key}_PORT"] = number
            env[f"{key}_ADDR"] = ip
    return env
