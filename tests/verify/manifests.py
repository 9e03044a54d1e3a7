"""Hand-written rendered workloads, shaped like what LWS and Grove receive."""

from __future__ import annotations

from typing import Any

SGLANG = ["python3", "-m", "dynamo.sglang", "--model-path", "Qwen/Qwen3-0.6B", "--tp-size", "8"]


def container(command: list[str], args: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": "main", "image": "engine:1", "command": command, "args": args or [], **extra}


def pod_template(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": list(containers), **spec}}


def lws(
    leader: dict[str, Any],
    worker: dict[str, Any],
    *,
    name: str = "g-worker",
    size: int = 3,
    replicas: int = 2,
) -> dict[str, Any]:
    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": name, "namespace": "dyn"},
        "spec": {
            "replicas": replicas,
            "leaderWorkerTemplate": {
                "size": size,
                "leaderTemplate": pod_template(leader),
                "workerTemplate": pod_template(worker),
            },
        },
    }


def sglang_lws(worker_args: list[str] | None = None, size: int = 3) -> dict[str, Any]:
    """SGLang over LWS in exec form: leader address and rank reach args as kubelet $(VAR)."""
    common = ["--dist-init-addr", "$(LWS_LEADER_ADDRESS):29500", "--nnodes", str(size)]
    leader = container(SGLANG, [*common, "--node-rank", "0"])
    worker = container(SGLANG, worker_args or [*common, "--node-rank", "$(LWS_WORKER_INDEX)"])
    return lws(leader, worker, size=size)


GROVE_LEADER = "$(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-worker-ldr-0.$(GROVE_HEADLESS_SERVICE)"


def pcs(
    cliques: list[dict[str, Any]], groups: list[dict[str, Any]], name: str = "g"
) -> dict[str, Any]:
    return {
        "apiVersion": "grove.io/v1alpha1",
        "kind": "PodCliqueSet",
        "metadata": {"name": name, "namespace": "dyn"},
        "spec": {"replicas": 1, "template": {"cliques": cliques, "podCliqueScalingGroups": groups}},
    }


def clique(
    name: str, replicas: int, main: dict[str, Any], role: str | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "spec": {"roleName": role or name, "replicas": replicas, "podSpec": {"containers": [main]}},
    }


def sglang_grove(
    worker_rank: str = "$((GROVE_PCLQ_POD_INDEX + 1))",
    leader_host: str = GROVE_LEADER,
    sg_replicas: int = 1,
) -> dict[str, Any]:
    """SGLang over Grove: the worker's rank needs shell arithmetic, so it runs under sh -c."""
    leader = container(
        SGLANG, ["--dist-init-addr", f"{GROVE_LEADER}:29500", "--nnodes", "3", "--node-rank", "0"]
    )
    script = (
        f"exec python3 -m dynamo.sglang --model-path Qwen/Qwen3-0.6B --dist-init-addr "
        f"{leader_host}:29500 --nnodes 3 --node-rank {worker_rank}"
    )
    worker = container(["sh", "-c"], [script])
    frontend = container(["python3", "-m", "dynamo.frontend"])
    return pcs(
        [
            clique("frontend", 1, frontend),
            clique("worker-ldr", 1, leader, "leader"),
            clique("worker-wkr", 2, worker, "worker"),
        ],
        [{"name": "worker", "cliqueNames": ["worker-ldr", "worker-wkr"], "replicas": sg_replicas}],
    )
