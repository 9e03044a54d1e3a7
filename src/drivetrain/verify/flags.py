"""Read the distributed-setup flags (rank, node count, leader address) out of a final argv."""

from __future__ import annotations

import re
from collections.abc import Sequence

from drivetrain.cmdline import flag_value

# A reference that a shell or the kubelet should have replaced before the process started.
UNEXPANDED = re.compile(r"\$\(|\$\{|\$[A-Za-z_]")

RANK_FLAGS = ("--node-rank", "--node_rank")
NNODES_FLAGS = ("--nnodes",)
ADDRESS_FLAGS = ("--dist-init-addr", "--master-addr", "--master_addr", "--data-parallel-address")
#: Flags and env variables that set a port a process binds or rendezvous on.  The containers of
#: a pod share its network, so two of them (a failover pod's engines) must not use one port.
PORT_FLAGS = ("--master-port", "--master_port")
PORT_ENV = (
    "DYN_SYSTEM_PORT",
    "DRIVETRAIN_RPC_PORT",
    "VLLM_NIXL_SIDE_CHANNEL_PORT",
    "DYN_VLLM_KV_EVENT_PORT",
)


def strip_port(address: str) -> str:
    """``host:port`` → ``host``; a bare IPv6 address is left alone."""
    if address.startswith("["):
        return address[1:].split("]", 1)[0]
    if address.count(":") == 1:
        return address.split(":", 1)[0]
    return address


def leader_addresses(argv: Sequence[str]) -> list[tuple[str, str]]:
    """``(flag, host)`` for every place this argv names the group's leader."""
    out: list[tuple[str, str]] = []
    value = flag_value(argv, *ADDRESS_FLAGS)
    if value is not None:
        flag = next(f for f in ADDRESS_FLAGS if any(w == f or w.startswith(f + "=") for w in argv))
        out.append((flag, strip_port(value)))
    program = argv[0] if argv else ""
    if program == "ray" and "start" in argv:
        ray = flag_value(argv, "--address")
        if ray is not None:
            out.append(("ray start --address", strip_port(ray)))
    hosts = mpirun_hosts(argv)
    if hosts:
        out.append(("mpirun -H (first host)", hosts[0]))
    return out


def mpirun_hosts(argv: Sequence[str]) -> list[str]:
    """The hosts of ``mpirun -H a,b,c`` (slot counts ``a:2`` dropped)."""
    if not argv or argv[0] not in {"mpirun", "mpiexec", "orterun"}:
        return []
    value = flag_value(argv, "-H", "--host", "-host")
    if not value:
        return []
    return [strip_port(h) for h in value.split(",") if h]
