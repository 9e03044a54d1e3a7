"""The env of a rendered container on this machine, built as the kubelet builds it.

``envFrom`` first, then ``env`` in order, each plain value expanded (``cmdline.expand``) against
the variables before it. What the kubelet would take from the cluster is resolved locally where
that means the same thing, and otherwise must come from ``up --env-file`` or is a problem that
names the graph field it came from:

* ``fieldRef`` to the pod's name, namespace, UID or IP: this machine's values;
* ``configMapKeyRef`` / ``configMapRef`` to a ConfigMap the renderer itself produced: its data;
* any other ``valueFrom`` (Secrets, other ConfigMaps, other fields, resources): the env file's
  value of that variable;
* ``envFrom`` a Secret or another ConfigMap: every variable of the env file (the source's keys
  are unknown here, so the file stands for all of them);
* an ``optional`` reference the env file does not supply is left out, as the kubelet leaves it
  out when the Secret or ConfigMap does not exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from drivetrain.api.models import GraphDeployment
from drivetrain.cmdline import expand

#: Where a ``valueFrom`` reads, by kind, for messages.
_SOURCES = {
    "secretKeyRef": "Secret",
    "configMapKeyRef": "ConfigMap",
    "fieldRef": "the pod's field",
    "resourceFieldRef": "the container's resource",
}


@dataclass(frozen=True)
class ClusterEnv:
    """What the kubelet would read from the cluster, as far as this machine knows it."""

    configmaps: Mapping[str, Mapping[str, str]]
    #: ``--env-file``'s variables; None when no env file was given
    supplied: Mapping[str, str] | None = None

    @classmethod
    def of(cls, objects: list[dict[str, Any]], supplied: Mapping[str, str] | None) -> ClusterEnv:
        configmaps = {
            str(obj["metadata"]["name"]): {
                str(k): str(v) for k, v in (obj.get("data") or {}).items()
            }
            for obj in objects
            if obj.get("kind") == "ConfigMap"
        }
        return cls(configmaps, supplied)

    def container_env(
        self,
        container: Mapping[str, Any],
        pod: Mapping[str, str],
        graph: GraphDeployment,
        service: str,
    ) -> tuple[dict[str, str], list[str]]:
        """The container's env with ``pod``'s downward-API values (by field path), and every
        variable that cannot be given, as messages naming its graph field."""
        env: dict[str, str] = {}
        problems: list[str] = []
        for index, source in enumerate(container.get("envFrom") or []):
            values, missing = self._env_from(source)
            env.update(values)
            if missing:
                problems.append(
                    f"{env_from_field(graph, service, index)} ({missing}) is read from the "
                    f"cluster; {self._advice('its variables')}"
                )
        for entry in container.get("env") or []:
            name = str(entry["name"])
            ref = entry.get("valueFrom")
            if not ref:
                env[name] = expand(str(entry.get("value") or ""), [env])
                continue
            value, missing = self._value_from(name, ref, pod)
            if value is not None:
                env[name] = value
            elif missing:
                problems.append(
                    f"{env_field(graph, service, name)}.valueFrom.{missing} is read from the "
                    f"cluster; {self._advice(name)}"
                )
        return env, problems

    def _advice(self, what: str) -> str:
        if self.supplied is None:
            return f"`drivetrain up` cannot read it: give {what} with --env-file FILE"
        return f"the env file does not give {what}"

    def _env_from(self, source: Mapping[str, Any]) -> tuple[dict[str, str], str | None]:
        """The variables of one ``envFrom`` source, and what is missing when it cannot be read."""
        prefix = str(source.get("prefix") or "")
        ref = source.get("configMapRef") or source.get("secretRef") or {}
        name = str(ref.get("name"))
        if "configMapRef" in source and name in self.configmaps:
            return {prefix + k: v for k, v in self.configmaps[name].items()}, None
        if self.supplied is not None and self.supplied:
            return dict(self.supplied), None
        if ref.get("optional"):
            return {}, None
        return {}, f"{'ConfigMap' if 'configMapRef' in source else 'Secret'} {name}"

    def _value_from(
        self, name: str, ref: Mapping[str, Any], pod: Mapping[str, str]
    ) -> tuple[str | None, str | None]:
        """``(value, None)``, ``(None, None)`` for an optional reference left out, or
        ``(None, what is missing)``."""
        kind = next((k for k in _SOURCES if k in ref), "")
        detail = ref.get(kind) or {}
        if kind == "fieldRef" and detail.get("fieldPath") in pod:
            return pod[str(detail["fieldPath"])], None
        if kind == "configMapKeyRef":
            data = self.configmaps.get(str(detail.get("name")), {})
            if str(detail.get("key")) in data:
                return data[str(detail.get("key"))], None
        if self.supplied is not None and name in self.supplied:
            return self.supplied[name], None
        if detail.get("optional"):
            return None, None
        return None, f"{kind} ({_describe(kind, detail)})"


def _describe(kind: str, detail: Mapping[str, Any]) -> str:
    where = _SOURCES.get(kind, "the cluster")
    if kind in ("secretKeyRef", "configMapKeyRef"):
        return f"{where} {detail.get('name')}, key {detail.get('key')}"
    if kind == "fieldRef":
        return f"{where} {detail.get('fieldPath')}"
    if kind == "resourceFieldRef":
        return f"{where} {detail.get('resource')}"
    return where


def _names(entries: list[Any] | None) -> set[str]:
    return {str(e["name"] if isinstance(e, dict) else e.name) for e in entries or []}


def env_field(graph: GraphDeployment, service: str, name: str) -> str:
    """The graph field a rendered env entry comes from.

    The renderer merges injected env, then ``mainContainer.env``, the graph's ``envs`` and the
    service's ``envs``, the later winning (``render.pod.merge_env``): the last of those lists
    that names the variable is where its entry was written.
    """
    svc = graph.spec.services[service]
    base = f"spec.services.{service}"
    for path, entries in (
        (f"{base}.envs", svc.envs),
        ("spec.envs", graph.spec.envs),
        (f"{base}.extraPodSpec.mainContainer.env", svc.main_container.get("env")),
    ):
        if name in _names(entries):
            return f"{path}[{name}]"
    return f"{base} (env {name}, set by the renderer)"


def env_from_field(graph: GraphDeployment, service: str, index: int) -> str:
    """The graph field of the main container's ``envFrom[index]``: the user's own
    ``mainContainer.envFrom`` entries come first, then ``envFromSecret`` (``render.pod``)."""
    svc = graph.spec.services[service]
    base = f"spec.services.{service}"
    if index < len(svc.main_container.get("envFrom") or []):
        return f"{base}.extraPodSpec.mainContainer.envFrom[{index}]"
    return f"{base}.envFromSecret"
