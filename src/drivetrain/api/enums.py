"""The API's enumerations, without pydantic: the CLI's options use them at start-up.

``Deployer`` is the one spelling of a multinode API everywhere (the spec's
``multinode.deployer``, ``--multinode``, the renderer, the operator's choice).
"""

from __future__ import annotations

from enum import StrEnum


class ComponentType(StrEnum):
    frontend = "frontend"
    worker = "worker"
    prefill = "prefill"
    decode = "decode"
    planner = "planner"
    trainer = "trainer"


WORKER_TYPES = {"worker", "prefill", "decode"}


class Backend(StrEnum):
    vllm = "vllm"
    sglang = "sglang"
    trtllm = "trtllm"


class Deployer(StrEnum):
    lws = "lws"
    grove = "grove"


class Profile(StrEnum):
    drivetrain = "drivetrain"
    dynamo = "dynamo"


class RayMode(StrEnum):
    """What an RLRun creates beside its graphs: a one-shot RayJob or a long-lived RayCluster."""

    rayjob = "rayjob"
    raycluster = "raycluster"
