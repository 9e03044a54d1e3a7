"""What a pod spec names but does not create: the Secrets, ConfigMaps, PersistentVolumeClaims,
ServiceAccounts and resource claims it needs, and the annotation that declares which of them
the user creates (docs/rendering.md, "External references").

A leaf module (it imports nothing from drivetrain): the renderer declares references with it
and ``verify`` checks them with it, so the two read a pod spec the same way.

The fields read are those of the kubelet and the API server that make a pod wait or fail when
the object is missing: ``env[].valueFrom.secretKeyRef``/``configMapKeyRef`` and
``envFrom[].secretRef``/``configMapRef`` of every container (init and ephemeral ones too),
``secret``/``configMap``/``projected``/``persistentVolumeClaim`` volumes and the ``secretRef``
of the volume plugins that take one, ``imagePullSecrets``, ``serviceAccountName`` (``default``
excepted: every namespace has it) and ``resourceClaims``. A reference marked ``optional: true``
is left out: the pod starts without the object.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

#: On a pod template: the objects its pods reference that the user creates, as
#: ``secret/hf-token-secret,configmap/x`` (kind lowercased, as ``kubectl get`` takes them).
EXTERNAL_REFS_ANNOTATION = "drivetrain.dev/external-refs"

SECRET = "Secret"
CONFIG_MAP = "ConfigMap"
PVC = "PersistentVolumeClaim"
SERVICE_ACCOUNT = "ServiceAccount"
RESOURCE_CLAIM_TEMPLATE = "ResourceClaimTemplate"
RESOURCE_CLAIM = "ResourceClaim"
#: Every kind a pod spec can reference, in the order references are listed.
KINDS = (SECRET, CONFIG_MAP, PVC, SERVICE_ACCOUNT, RESOURCE_CLAIM_TEMPLATE, RESOURCE_CLAIM)

#: How a pod uses what it references (what the kubelet does without it depends on this).
Use = Literal[
    "env",  # one key as an env variable (``valueFrom``)
    "envFrom",  # every key as env variables
    "volume",  # keys as files
    "volume-credentials",  # a volume plugin's credentials
    "imagePullSecrets",
    "serviceAccountName",
    "resourceClaims",
]

_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
#: Volume plugins whose credentials come from ``<plugin>.secretRef.name``.
_SECRET_REF_VOLUMES = ("cephfs", "rbd", "iscsi", "flexVolume", "scaleIO", "storageos")


@dataclass(frozen=True)
class PodReference:
    """One place in a pod spec that names an object the pod needs."""

    kind: str
    name: str
    #: where the pod spec names it: ``container main envFrom``, ``volume models``...
    where: str
    #: the keys read by name (``secretKeyRef.key``, a volume's ``items``)
    keys: tuple[str, ...] = ()
    #: every key is read: ``envFrom`` (as env variables) or a volume without ``items`` (files)
    every_key: bool = False
    use: Use = "volume"

    @property
    def token(self) -> str:
        return ref_token(self.kind, self.name)


def ref_token(kind: str, name: str) -> str:
    """``secret/hf-token-secret``: how the annotation and messages name an object."""
    return f"{kind.lower()}/{name}"


def object_token(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return ref_token(str(obj.get("kind", "")), str(name or ""))


def format_tokens(tokens: Iterable[str]) -> str:
    """The annotation's value: unique tokens, sorted, comma-separated."""
    return ",".join(sorted(set(tokens)))


def parse_tokens(value: object) -> set[str]:
    """The tokens an annotation value lists (anything else than a string lists none)."""
    if not isinstance(value, str):
        return set()
    return {part.strip() for part in value.split(",") if part.strip()}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _named(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _optional(ref: Mapping[str, Any]) -> bool:
    return ref.get("optional") is True


def _item_keys(source: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(i["key"]) for i in _list(source.get("items")) if _mapping(i).get("key"))


def _container_refs(container: Mapping[str, Any]) -> Iterator[PodReference]:
    cname = str(container.get("name", ""))
    for source in _list(container.get("envFrom")):
        source = _mapping(source)
        for key, kind in (("secretRef", SECRET), ("configMapRef", CONFIG_MAP)):
            ref = _mapping(source.get(key))
            name = _named(ref.get("name"))
            if name and not _optional(ref):
                yield PodReference(
                    kind, name, f"container {cname} envFrom", every_key=True, use="envFrom"
                )
    for entry in _list(container.get("env")):
        entry = _mapping(entry)
        value_from = _mapping(entry.get("valueFrom"))
        for key, kind in (("secretKeyRef", SECRET), ("configMapKeyRef", CONFIG_MAP)):
            ref = _mapping(value_from.get(key))
            name = _named(ref.get("name"))
            if name and not _optional(ref):
                keys = (str(ref["key"]),) if ref.get("key") else ()
                where = f"container {cname} env {entry.get('name', '')}"
                yield PodReference(kind, name, where, keys=keys, use="env")


def _volume_refs(volume: Mapping[str, Any]) -> Iterator[PodReference]:
    where = f"volume {volume.get('name', '')}"
    secret = _mapping(volume.get("secret"))
    if (name := _named(secret.get("secretName"))) and not _optional(secret):
        keys = _item_keys(secret)
        yield PodReference(SECRET, name, where, keys=keys, every_key=not keys, use="volume")
    config_map = _mapping(volume.get("configMap"))
    if (name := _named(config_map.get("name"))) and not _optional(config_map):
        keys = _item_keys(config_map)
        yield PodReference(CONFIG_MAP, name, where, keys=keys, every_key=not keys, use="volume")
    for source in _list(_mapping(volume.get("projected")).get("sources")):
        source = _mapping(source)
        for key, kind in (("secret", SECRET), ("configMap", CONFIG_MAP)):
            ref = _mapping(source.get(key))
            if (name := _named(ref.get("name"))) and not _optional(ref):
                keys = _item_keys(ref)
                yield PodReference(kind, name, where, keys=keys, every_key=not keys, use="volume")
    claim = _named(_mapping(volume.get("persistentVolumeClaim")).get("claimName"))
    if claim:
        yield PodReference(PVC, claim, where, use="volume")
    csi_secret = _named(
        _mapping(_mapping(volume.get("csi")).get("nodePublishSecretRef")).get("name")
    )
    if csi_secret:
        yield PodReference(SECRET, csi_secret, where, every_key=True, use="volume-credentials")
    azure = _named(_mapping(volume.get("azureFile")).get("secretName"))
    if azure:
        yield PodReference(SECRET, azure, where, every_key=True, use="volume-credentials")
    for plugin in _SECRET_REF_VOLUMES:
        name = _named(_mapping(_mapping(volume.get(plugin)).get("secretRef")).get("name"))
        if name:
            yield PodReference(SECRET, name, where, every_key=True, use="volume-credentials")


def pod_references(spec: Mapping[str, Any]) -> list[PodReference]:
    """Every reference of one pod spec, in the order the fields are read (see the module
    docstring); malformed parts are passed over (verify's shape check reports those)."""
    spec = _mapping(spec)
    refs: list[PodReference] = []
    for field in _CONTAINER_LISTS:
        for container in _list(spec.get(field)):
            refs += _container_refs(_mapping(container))
    for volume in _list(spec.get("volumes")):
        refs += _volume_refs(_mapping(volume))
    for entry in _list(spec.get("imagePullSecrets")):
        if name := _named(_mapping(entry).get("name")):
            refs.append(PodReference(SECRET, name, "imagePullSecrets", use="imagePullSecrets"))
    account = _named(spec.get("serviceAccountName")) or _named(spec.get("serviceAccount"))
    if account and account != "default":
        refs.append(
            PodReference(SERVICE_ACCOUNT, account, "serviceAccountName", use="serviceAccountName")
        )
    for claim in _list(spec.get("resourceClaims")):
        claim = _mapping(claim)
        # Kubernetes 1.31+ names the source on the claim itself; 1.30 under ``source``.
        for holder in (claim, _mapping(claim.get("source"))):
            where = f"resourceClaims {claim.get('name', '')}"
            if name := _named(holder.get("resourceClaimTemplateName")):
                refs.append(
                    PodReference(RESOURCE_CLAIM_TEMPLATE, name, where, use="resourceClaims")
                )
            if name := _named(holder.get("resourceClaimName")):
                refs.append(PodReference(RESOURCE_CLAIM, name, where, use="resourceClaims"))
    return refs
