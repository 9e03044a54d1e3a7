"""The Secrets and ConfigMaps each pod reads: among the verified objects, or declared external.

A pod that reads a Secret or ConfigMap (env, ``envFrom``, a volume, an image pull secret) that
is neither among the verified objects nor listed in its template's
``drivetrain.dev/external-refs`` annotation (``drivetrain.podrefs``) would wait or fail on a
cluster where nobody created it: a warning per pod and object. So is a key read by name that a
verified Secret or ConfigMap does not hold. ``--strict`` makes them errors (docs/verify.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from drivetrain.podrefs import (
    CONFIG_MAP,
    EXTERNAL_REFS_ANNOTATION,
    SECRET,
    PodReference,
    Use,
    object_token,
    parse_tokens,
    pod_references,
)
from drivetrain.verify.controllers import Pod
from drivetrain.verify.report import ReferenceWarning

CHECKED_KINDS = (SECRET, CONFIG_MAP)
#: Where the data of each checked kind is (every key a pod can read).
_DATA_FIELDS = {SECRET: ("data", "stringData"), CONFIG_MAP: ("data", "binaryData")}

#: What the kubelet does without the object, by how the pod uses it.
_CONSEQUENCE: dict[Use, str] = {
    "envFrom": "the container cannot start (CreateContainerConfigError)",
    "env": "the container cannot start (CreateContainerConfigError)",
    "volume": "the volume cannot be mounted and the pod does not start",
    "volume-credentials": "the volume cannot be mounted and the pod does not start",
    "imagePullSecrets": "pulling a private image fails",
}


class Present:
    """The Secrets and ConfigMaps among the verified objects, by namespace and token."""

    def __init__(self, objects: Sequence[Mapping[str, Any]]) -> None:
        self._objects: dict[tuple[str | None, str], Mapping[str, Any]] = {}
        for obj in objects:
            if obj.get("kind") not in CHECKED_KINDS:
                continue
            meta = obj.get("metadata") or {}
            namespace = meta.get("namespace") if isinstance(meta, Mapping) else None
            self._objects[(namespace or None, object_token(obj))] = obj

    def find(self, namespace: str, token: str) -> Mapping[str, Any] | None:
        """The object a pod in ``namespace`` gets for ``token``; one written without a
        namespace lands in whichever namespace it is applied to."""
        return self._objects.get((namespace, token)) or self._objects.get((None, token))


def _keys(obj: Mapping[str, Any]) -> set[str]:
    keys: set[str] = set()
    for field in _DATA_FIELDS[str(obj.get("kind"))]:
        data = obj.get(field)
        if isinstance(data, Mapping):
            keys |= {str(k) for k in data}
    return keys


def check_references(pod: Pod, present: Present) -> list[ReferenceWarning]:
    """The warnings of one pod: one per object missing, one per key missing."""
    declared = parse_tokens(pod.facts.annotations.get(EXTERNAL_REFS_ANNOTATION))
    by_token: dict[str, list[PodReference]] = {}
    for ref in pod_references(pod.spec):
        if ref.kind in CHECKED_KINDS:
            by_token.setdefault(ref.token, []).append(ref)
    warnings = []
    for token, refs in by_token.items():
        where = ", ".join(dict.fromkeys(ref.where for ref in refs))
        consequence = _CONSEQUENCE.get(refs[0].use, "the pod does not start")
        obj = present.find(pod.facts.namespace, token)
        if obj is None:
            if token in declared:
                continue
            message = (
                f"{token} is neither among the verified objects nor declared external "
                f"({EXTERNAL_REFS_ANNOTATION}); without it {consequence}"
            )
            warnings.append(_warning(pod, token, where, message))
            continue
        have = _keys(obj)
        for ref in refs:
            for key in ref.keys:
                if key not in have:
                    consequence = _CONSEQUENCE.get(ref.use, "the pod does not start")
                    message = f"{token} has no key {key!r}; without it {consequence}"
                    warnings.append(_warning(pod, token, ref.where, message))
    return warnings


def _warning(pod: Pod, token: str, where: str, message: str) -> ReferenceWarning:
    return ReferenceWarning(
        workload=pod.workload, pod=pod.facts.hostname, reference=token, where=where, message=message
    )
