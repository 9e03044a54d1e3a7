"""Trainer pods: run the user's command through the distributed-env script (pure).

``apply_training_env`` takes an assembled pod spec and returns a copy in which the main
container starts as ``sh /etc/drivetrain/distenv.sh -- <original command>`` (args untouched,
so kubelet's ``$(VAR)`` expansion and the image are unchanged), with the script mounted from a
ConfigMap in every container that runs it, plus the ``DRIVETRAIN_*`` values only the renderer
knows: which platform gives the ranks, how many nodes there are, and Grove's clique names.

Why a ConfigMap and ``sh``: it works in any image with a POSIX shell, drivetrain installed or
not; ``sh <file>`` needs no exec bit. Backend.AI's review found its script sourced from a path
that was never mounted; here the mount is added by the same function that adds the call, and
the tests walk every pod to check it.
"""

from __future__ import annotations

import copy
import shlex
from typing import Any

from drivetrain.api.enums import Deployer
from drivetrain.cmdline import is_bare_script
from drivetrain.distenv.shell import SCRIPT_NAME, script_text
from drivetrain.distenv.sources import indexed_job_env
from drivetrain.errors import DrivetrainError
from drivetrain.podcontainers import main_container
from drivetrain.render.engines.detect import is_shell_form
from drivetrain.render.naming import GRAPH_LABEL, service_slug

DISTENV_MOUNT_DIR = "/etc/drivetrain"
DISTENV_SCRIPT = f"{DISTENV_MOUNT_DIR}/{SCRIPT_NAME}"
DISTENV_VOLUME = "drivetrain-distenv"
WRAPPER = ("sh", DISTENV_SCRIPT, "--")


class TrainingEnvError(DrivetrainError, ValueError):
    """The pod cannot be wrapped; the message names the service and what is missing."""


def configmap_name(graph_name: str) -> str:
    return f"{graph_name}-distenv"


def grove_cliques(service_name: str) -> tuple[str, str]:
    """The leader and worker clique names the Grove renderer gives a multinode service."""
    slug = service_slug(service_name)
    return f"{slug}-ldr", f"{slug}-wkr"


def distenv_configmap(graph_name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": configmap_name(graph_name),
            "namespace": namespace,
            "labels": {GRAPH_LABEL: graph_name},
        },
        "data": {SCRIPT_NAME: script_text()},
    }


def renderer_env(
    service_name: str,
    deployer: Deployer | None,
    node_count: int,
    indexed_job: tuple[str, str] | None = None,
) -> list[dict[str, str]]:
    """What the renderer knows and the pod cannot find out: rank source and node count.

    ``indexed_job`` (the Job's name, its headless Service's name): the pod belongs to an
    Indexed Job, whose contract is ``indexed_job_env`` (docs/distenv.md).
    """
    if indexed_job is not None and node_count > 1:
        job, service = indexed_job
        return [
            {"name": k, "value": v} for k, v in indexed_job_env(job, service, node_count).items()
        ]
    if deployer is None:
        return [{"name": "DRIVETRAIN_RANK_SOURCE", "value": "none"}]
    env = [
        {"name": "DRIVETRAIN_RANK_SOURCE", "value": str(deployer)},
        {"name": "DRIVETRAIN_NNODES", "value": str(node_count)},
    ]
    if deployer == "grove":
        leader, worker = grove_cliques(service_name)
        env += [
            {"name": "DRIVETRAIN_GROVE_LEADER_CLIQUE", "value": leader},
            {"name": "DRIVETRAIN_GROVE_WORKER_CLIQUE", "value": worker},
        ]
    return env


def runs_distenv(container: dict[str, Any]) -> bool:
    """Whether the container's command line names anything under the script's mount."""
    words = [*container.get("command", []), *container.get("args", [])]
    return any(DISTENV_MOUNT_DIR + "/" in str(word) for word in words)


def _check(service_name: str, deployer: Deployer | None, node_count: int, indexed: bool) -> None:
    if deployer not in (None, "lws", "grove"):
        raise TrainingEnvError(
            f"service {service_name}: deployer {deployer!r} is not lws, grove or none"
        )
    if indexed and deployer is not None:
        raise TrainingEnvError(
            f"service {service_name}: an Indexed Job has no multinode deployer (got {deployer})"
        )
    if node_count < 1 or (deployer is None and not indexed and node_count > 1):
        raise TrainingEnvError(
            f"service {service_name}: {node_count} nodes cannot run "
            f"{'as a single pod' if deployer is None else 'at all'}"
        )


def _program(command: list[str], args: list[str]) -> str:
    """The program a command line starts: argv[0], or the first command of a ``sh -c`` script
    (after ``exec``); "" when the script does not split as a shell would."""
    if not is_shell_form(command):
        return command[0] if command else ""
    scripts = command[2:3] or args[:1]
    try:
        words = shlex.split(scripts[0]) if scripts else []
    except ValueError:
        return ""
    if words[:1] == ["exec"]:
        words = words[1:]
    return words[0] if words else ""


def _wrap(container: dict[str, Any], service_name: str) -> None:
    command = list(container.get("command") or [])
    if tuple(command[: len(WRAPPER)]) == WRAPPER:
        return
    if not command:
        raise TrainingEnvError(
            f"service {service_name}: a trainer's main container needs an explicit command "
            "(the image's entrypoint is unknown here, so it cannot be run through "
            f"{DISTENV_SCRIPT})"
        )
    args = [str(a) for a in container.get("args") or []]
    program = _program(command, args)
    if is_bare_script(program):
        line = " ".join(shlex.quote(w) for w in [*command, *args])
        raise TrainingEnvError(
            f"service {service_name}: extraPodSpec.mainContainer runs `{line}`, whose program "
            f"{program!r} is a Python script with no interpreter and no path: it is looked up "
            f"on PATH and the pod fails with 'not found'; run it as `python3 {program}` "
            f"(or as ./{program}, with a shebang)"
        )
    container["command"] = [*WRAPPER, *command]


def _mount(container: dict[str, Any], service_name: str) -> None:
    mounts = list(container.get("volumeMounts", []))
    for m in mounts:
        if m.get("mountPath") == DISTENV_MOUNT_DIR:
            if m.get("name") != DISTENV_VOLUME:
                raise TrainingEnvError(
                    f"service {service_name}: container {container.get('name')} already "
                    f"mounts {m.get('name')} at {DISTENV_MOUNT_DIR}, where the distenv "
                    "script goes"
                )
            return
    mounts.append({"name": DISTENV_VOLUME, "mountPath": DISTENV_MOUNT_DIR, "readOnly": True})
    container["volumeMounts"] = mounts


def apply_training_env(
    pod_spec: dict[str, Any],
    *,
    graph_name: str,
    service_name: str,
    deployer: Deployer | None,
    node_count: int,
    namespace: str,
    indexed_job: tuple[str, str] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The pod spec of a trainer with the distenv wrapper, and the ConfigMap it mounts.

    ``indexed_job``: (Job name, headless Service name) when the pod is an Indexed Job's, which
    gives the ranks (``deployer`` is then None). Idempotent; ``pod_spec`` itself is not
    changed. A ``DRIVETRAIN_*`` variable the user set in the container keeps the user's value.
    """
    _check(service_name, deployer, node_count, indexed_job is not None)
    spec = copy.deepcopy(pod_spec)
    containers = spec.get("containers", [])
    main = main_container(spec)
    if main is None:
        raise TrainingEnvError(f"service {service_name}: the pod has no container to train in")
    _wrap(main, service_name)
    env = list(main.get("env", []))
    present = {e.get("name") for e in env}
    injected = renderer_env(service_name, deployer, node_count, indexed_job)
    env += [e for e in injected if e["name"] not in present]
    main["env"] = env

    for container in [*spec.get("initContainers", []), *containers]:
        if container is main or runs_distenv(container):
            _mount(container, service_name)
    volume = {
        "name": DISTENV_VOLUME,
        "configMap": {
            "name": configmap_name(graph_name),
            "items": [{"key": SCRIPT_NAME, "path": SCRIPT_NAME}],
        },
    }
    spec["volumes"] = [
        *(v for v in spec.get("volumes", []) if v.get("name") != DISTENV_VOLUME),
        volume,
    ]
    return spec, [distenv_configmap(graph_name, namespace)]
