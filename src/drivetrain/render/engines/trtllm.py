"""TRT-LLM multinode: the leader runs ``mpirun`` over SSH into every worker's sshd.

The strings follow Dynamo's operator (docs/engines.md) so that images built for it work
unchanged; host names and env references inside the scripts are rendered for the shell.
"""

from __future__ import annotations

import copy
from typing import Any

from drivetrain.render.engines.base import EngineContext
from drivetrain.render.engines.detect import PYTHON, is_shell_form
from drivetrain.render.engines.inject import append_env, quote_argv, remove_probes
from drivetrain.render.expr import Context, shell_quote

SSH_PORT = 2222
SSH_MOUNT = "/ssh-pk"

FORWARDED_ENV = [
    "CUDA_VISIBLE_DEVICES",
    "MODEL_PATH",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_ENDPOINT",
    "TOKENIZERS_PARALLELISM",
    "NCCL_DEBUG",
    "NCCL_IB_DISABLE",
    "NCCL_P2P_DISABLE",
    "TENSORRT_LLM_CACHE_DIR",
    "HF_HOME",
    "TRANSFORMERS_CACHE",
    "HF_DATASETS_CACHE",
    "PATH",
    "LD_LIBRARY_PATH",
    "PYTHONPATH",
    "HOME",
    "USER",
    "TRTLLM_USE_UCX_KVCACHE",
]

_SSH_KEYS = (
    "ls -la /ssh-pk/ && cp /ssh-pk/private.key $HOME/.ssh/id_rsa && "
    "cp /ssh-pk/private.key.pub $HOME/.ssh/id_rsa.pub && "
    "cp /ssh-pk/private.key.pub $HOME/.ssh/authorized_keys && "
    "chmod 600 $HOME/.ssh/id_rsa $HOME/.ssh/authorized_keys && chmod 644 $HOME/.ssh/id_rsa.pub && "
    "printf 'Host *\\nIdentityFile '$HOME'/.ssh/id_rsa\\nStrictHostKeyChecking no\\nPort 2222\\n' "
    "> $HOME/.ssh/config"
)
LEADER_SSH_SETUP = "mkdir -p $HOME/.ssh && " + _SSH_KEYS
WORKER_SSH_SETUP = (
    "mkdir -p $HOME/.ssh $HOME/.ssh/host_keys $HOME/.ssh/run && "
    + _SSH_KEYS
    + " && ssh-keygen -t rsa -f $HOME/.ssh/host_keys/ssh_host_rsa_key -N '' && "
    "ssh-keygen -t ecdsa -f $HOME/.ssh/host_keys/ssh_host_ecdsa_key -N '' && "
    "ssh-keygen -t ed25519 -f $HOME/.ssh/host_keys/ssh_host_ed25519_key -N '' && "
    "printf 'Port 2222\\nHostKey '$HOME'/.ssh/host_keys/ssh_host_rsa_key\\n"
    "HostKey '$HOME'/.ssh/host_keys/ssh_host_ecdsa_key\\n"
    "HostKey '$HOME'/.ssh/host_keys/ssh_host_ed25519_key\\n"
    "PidFile '$HOME'/.ssh/run/sshd.pid\\nStrictModes no\\nPermitRootLogin yes\\n"
    "PasswordAuthentication no\\nPubkeyAuthentication yes\\n"
    "AuthorizedKeysFile '$HOME'/.ssh/authorized_keys\\n' > $HOME/.ssh/sshd_config"
    " && /usr/sbin/sshd -D -f $HOME/.ssh/sshd_config"
)


def _dns_wait(workers: list[str]) -> str:
    return (
        "TIMEOUT=300; START_TIME=$(date +%s); "
        f"for worker in {' '.join(workers)}; do "
        'echo "Waiting for DNS: $worker"; '
        "until getent hosts $worker >/dev/null 2>&1; do "
        "CURRENT_TIME=$(date +%s); "
        "if [ $((CURRENT_TIME - START_TIME)) -gt $TIMEOUT ]; then "
        'echo "ERROR: Timeout waiting for DNS: $worker"; exit 1; fi; '
        'echo "DNS not ready for $worker, retrying..."; sleep 2; done; '
        'echo "\u2713 DNS resolved: $worker"; done; echo "All workers DNS ready"'
    )


def original_command(container: dict[str, Any]) -> str:
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    if command and PYTHON.match(command[0]):
        return quote_argv([*command, *args])
    if args:
        return " ".join(args)
    return " ".join(command)


def leader_script(container: dict[str, Any], ctx: EngineContext) -> str:
    hosts = [
        h.render(Context.SHELL) for h in ctx.deployer.host_names(ctx.service_name, ctx.node_count)
    ]
    gpus_per_node = ctx.gpus_per_node
    env_names = {e["name"] for e in container.get("env", [])}
    forwarded = " ".join(f"-x {name}" for name in sorted(set(FORWARDED_ENV) | env_names))
    launch = shell_quote(f"trtllm-llmapi-launch {original_command(container)}")
    mpirun = (
        'mpirun $([ "$(id -u)" = "0" ] && echo --allow-run-as-root) --oversubscribe '
        f"-n {ctx.node_count * gpus_per_node} -H {','.join(hosts)} --mca pml ob1 "
        f'--mca plm_rsh_args "-p {SSH_PORT} -o StrictHostKeyChecking=no -i $HOME/.ssh/id_rsa" '
        f"{forwarded} bash -c {launch}"
    )
    steps = [LEADER_SSH_SETUP]
    if ctx.deployer.needs_dns_wait:
        steps.append(_dns_wait(hosts[1:]))
    steps.append(mpirun)
    return " && ".join(steps)


def update_container(container: dict[str, Any], ctx: EngineContext) -> dict[str, Any]:
    out = copy.deepcopy(container)
    if not ctx.multinode:
        return out
    out["volumeMounts"] = [
        *out.get("volumeMounts", []),
        {"name": ctx.mpi_secret, "mountPath": SSH_MOUNT, "readOnly": True},
    ]
    out = append_env(out, {"name": "OMPI_MCA_orte_keep_fqdn_hostnames", "value": "1"})
    if ctx.role == "leader":
        script = leader_script(out, ctx)
        out["command"], out["args"] = ["/bin/sh", "-c"], [script]
    else:
        out["command"], out["args"] = ["/bin/sh", "-c"], [WORKER_SSH_SETUP]
        out = remove_probes(out, "livenessProbe", "startupProbe")
        out["readinessProbe"] = {
            "tcpSocket": {"port": SSH_PORT},
            "initialDelaySeconds": 20,
            "periodSeconds": 20,
            "timeoutSeconds": 5,
            "failureThreshold": 10,
        }
    return out


def update_pod_spec(
    pod_spec: dict[str, Any], ctx: EngineContext
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    spec = copy.deepcopy(pod_spec)
    if not ctx.multinode:
        return spec, []
    volumes = [v for v in spec.get("volumes", []) if v.get("name") != ctx.mpi_secret]
    volumes.append(
        {"name": ctx.mpi_secret, "secret": {"secretName": ctx.mpi_secret, "defaultMode": 0o644}}
    )
    spec["volumes"] = volumes
    return spec, []


__all__ = ["is_shell_form", "leader_script", "update_container", "update_pod_spec"]
