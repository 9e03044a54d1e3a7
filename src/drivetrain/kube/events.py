"""Kubernetes Events on the objects drivetrain reconciles: one per thing that happened.

Posted by the reconcile itself (not through kopf's per-handler posting), so that an Event is
written exactly when a transition is, and a reconcile that changes nothing posts nothing.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from lightkube import AsyncClient, codecs

from drivetrain.kube.lightkube_adapter import ApiError

log = logging.getLogger("drivetrain.operator")
COMPONENT = "drivetrain-operator"


def event_object(
    involved: dict[str, Any], reason: str, message: str, kind: str = "Normal"
) -> dict[str, Any]:
    """A ``v1`` Event about ``involved`` (a live object with its uid)."""
    meta = involved["metadata"]
    now = datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": involved["apiVersion"],
            "kind": involved["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
        },
        "reason": reason,
        "message": message,
        "type": kind,
        "count": 1,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "source": {"component": COMPONENT},
    }


async def post(
    client: AsyncClient, involved: dict[str, Any], reason: str, message: str, kind: str = "Normal"
) -> None:
    """Post one Event; a refusal is logged, never fatal (an Event is a report, not state)."""
    try:
        await client.create(codecs.from_dict(event_object(involved, reason, message, kind)))
    except ApiError as exc:
        log.warning(
            "could not post the %s event on %s: %s", reason, involved["metadata"]["name"], exc
        )
