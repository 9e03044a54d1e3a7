"""A RayCluster spec checked as KubeRay would: its CRD's schema, then its own validation.

The schema is KubeRay's ``ray.io/v1`` RayCluster ``.spec`` (``schemas/raycluster.json``, made
from the CRD by ``scripts/trim-kuberay-schema.py``), walked by ``schemawalk``.  KubeRay's
operator adds rules a schema cannot say (``ValidateRayClusterSpec``, ``ValidateRayJobSpec`` and
the name rules in ray-operator/controllers/ray/utils/validation.go); those that a spec written
for an RLRun can break are repeated here, so that a run fails at ``drivetrain validate`` and
not, minutes later, as a RayJob KubeRay refuses.
"""

from __future__ import annotations

import re
from typing import Any

from drivetrain.api import schemawalk
from drivetrain.api.errors import FieldError

SCHEMA = "raycluster.json"
CLUSTER_SPEC = "RayClusterSpec"
#: KubeRay's name limits: 63 less its longest Service suffix (``-serve-svc``) for a
#: RayCluster, and 6 fewer for a RayJob (its cluster is ``<rayjob>-<5 random>``).
MAX_RAY_CLUSTER_NAME = 53
MAX_RAY_JOB_NAME = MAX_RAY_CLUSTER_NAME - 6
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def check_cluster_spec(spec: Any, path: str) -> list[FieldError]:
    """Every problem of a RayCluster ``.spec`` (also a RayJob's ``rayClusterSpec``)."""
    errors = schemawalk.check(SCHEMA, spec, CLUSTER_SPEC, path)
    if errors or not isinstance(spec, dict):
        return errors
    head = spec["headGroupSpec"]["template"].get("spec") or {}
    if not head.get("containers"):
        errors.append(
            FieldError(
                f"{path}.headGroupSpec.template.spec.containers",
                "needs at least one container (the Ray head)",
            )
        )
    for i, group in enumerate(spec.get("workerGroupSpecs") or []):
        if not ((group.get("template") or {}).get("spec") or {}).get("containers"):
            errors.append(
                FieldError(
                    f"{path}.workerGroupSpecs[{i}].template.spec.containers",
                    "needs at least one container (the Ray worker)",
                )
            )
    return errors


def check_name(name: str, kind: str, path: str) -> list[FieldError]:
    """A RayJob or RayCluster name KubeRay accepts: a DNS-1035 label within its limit."""
    limit = MAX_RAY_JOB_NAME if kind == "RayJob" else MAX_RAY_CLUSTER_NAME
    if len(name) > limit:
        return [FieldError(path, f"the {kind} name {name!r} is longer than KubeRay's {limit}")]
    if not _DNS_1035.match(name):
        return [
            FieldError(
                path,
                f"the {kind} name {name!r} is not a DNS-1035 label (lowercase letters, digits "
                "and '-', starting with a letter)",
            )
        ]
    return []
