"""What every source reduces to, and the checks on the raw text it came from.

The checks are deliberately strict (canonical decimal numbers, host names from a fixed
character set) so that the POSIX script can make exactly the same decisions with ``case``
patterns and no locale-dependent tools.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drivetrain.distenv.errors import DistEnvError

DEFAULT_PORT = 29500
MAX_PORT = 65535

# Canonical decimal, at most 9 digits: a leading zero is refused because the reference
# script read "010" as octal in $((...)); 9 digits keep dash's arithmetic far from overflow.
_COUNT = re.compile(r"-?(0|[1-9][0-9]{0,8})")
_NATURAL = re.compile(r"0|[1-9][0-9]{0,8}")
# A DNS name or IPv4 literal. No spaces, no glob characters, no ':' (TF_CONFIG appends
# ':port'), no empty entry: each of those broke the Backend.AI script in its own way.
_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Cluster:
    """One node's view of a multi-node cluster."""

    source: str
    nnodes: int
    node_rank: int
    master_addr: str
    #: Every node's host, in rank order; None where the source cannot name them.
    hosts: tuple[str, ...] | None
    base_port: int


def parse_count(name: str, value: str) -> int:
    """A node count: canonical decimal, negative allowed (it means "not a cluster")."""
    if not _COUNT.fullmatch(value):
        raise DistEnvError(f"{name}={value!r} is not a whole number (e.g. 2)")
    return int(value)


def parse_natural(name: str, value: str) -> int:
    """A rank or index: canonical decimal, zero or more."""
    if not _NATURAL.fullmatch(value):
        raise DistEnvError(f"{name}={value!r} is not a non-negative whole number (e.g. 0)")
    return int(value)


def parse_port(name: str, value: str) -> int:
    if not (_NATURAL.fullmatch(value) and 1 <= int(value) <= MAX_PORT):
        raise DistEnvError(f"{name}={value!r} is not a TCP port (1-{MAX_PORT})")
    return int(value)


def check_host(name: str, value: str) -> str:
    if not _HOST.fullmatch(value):
        raise DistEnvError(
            f"{name}={value!r} is not a host name (letters, digits, '.', '-', '_'; "
            "no spaces, no empty entry)"
        )
    return value


def split_hosts(name: str, value: str) -> tuple[str, ...]:
    """Comma-separated hosts; one trailing comma is tolerated, as POSIX field splitting does."""
    text = value[:-1] if value.endswith(",") else value
    if not text:
        raise DistEnvError(f"{name} is empty; expected comma-separated host names")
    return tuple(check_host(name, host) for host in text.split(","))


def is_ipv4(address: str) -> bool:
    parts = address.split(".")
    return len(parts) == 4 and all(p.isdigit() for p in parts)


def check_cluster(cluster: Cluster, rank_name: str) -> Cluster:
    """Rank in range, hosts matching the count, every TF port a real port."""
    if cluster.node_rank >= cluster.nnodes:
        raise DistEnvError(
            f"{rank_name}={cluster.node_rank} is not below the node count {cluster.nnodes}"
        )
    if cluster.hosts is not None and len(cluster.hosts) != cluster.nnodes:
        raise DistEnvError(
            f"{len(cluster.hosts)} hosts listed for {cluster.nnodes} nodes ({cluster.source})"
        )
    if cluster.base_port + cluster.nnodes - 1 > MAX_PORT:
        raise DistEnvError(
            f"port {cluster.base_port} + {cluster.nnodes - 1} workers passes {MAX_PORT}"
        )
    return cluster
