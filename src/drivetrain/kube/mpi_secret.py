"""The MPI SSH Secret of TRT-LLM multinode: made once per namespace by the operator, never rewritten.

TRT-LLM's multinode leader runs ``mpirun`` over SSH into its workers (render/engines/trtllm.py):
every pod of every such graph in a namespace mounts one Secret holding one key pair
(``private.key``, ``private.key.pub``; the pods copy it to ``~/.ssh/id_rsa`` whatever its type,
which OpenSSH reads from the file itself).  ``render`` emits a placeholder for it
(render/companions.py); the operator creates the real one instead:

* **once per namespace**: a key pair is generated (ed25519, OpenSSH formats) only when no Secret
  of that name exists; the Secret is not owned by any graph, so deleting a graph leaves the key
  other graphs' running pods use;
* **never rewritten**: an existing Secret is left exactly as it is, whoever made it (a person may
  have put their own key there); a create that loses a race (409) is the same case.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from lightkube import AsyncClient, codecs
from lightkube.resources.core_v1 import Secret

from drivetrain.kube.lightkube_adapter import ApiError

log = logging.getLogger("drivetrain.operator")

MANAGED_BY = {"app.kubernetes.io/managed-by": "drivetrain"}


def generate_key_pair(comment: str) -> tuple[bytes, bytes]:
    """A new ed25519 key pair: (OpenSSH private key, ``authorized_keys`` line)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, public + f" {comment}\n".encode()


def secret_object(name: str, namespace: str, private: bytes, public: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "type": "Opaque",
        "data": {
            "private.key": base64.b64encode(private).decode(),
            "private.key.pub": base64.b64encode(public).decode(),
        },
    }


async def ensure_mpi_secret(client: AsyncClient, name: str, namespace: str) -> bool:
    """Create the Secret with a new key pair unless it exists; True when this call made it."""
    try:
        await client.get(Secret, name, namespace=namespace)
        return False
    except ApiError as exc:
        if exc.status.code != 404:
            raise
    private, public = generate_key_pair(f"{name}@{namespace}")
    try:
        await client.create(codecs.from_dict(secret_object(name, namespace, private, public)))
    except ApiError as exc:
        if exc.status.code == 409:  # made meanwhile (another reconcile, or a person): keep it
            return False
        raise
    log.info("namespace %s: created Secret %s with a new SSH key pair", namespace, name)
    return True
