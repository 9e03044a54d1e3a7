"""Each platform's variables reduced to a :class:`Cluster`, and the choice of platform.

Sources, in the order ``auto`` tries them:

* ``explicit``: ``DRIVETRAIN_NNODES``, ``DRIVETRAIN_NODE_RANK`` and ``DRIVETRAIN_MASTER_ADDR``
  and/or ``DRIVETRAIN_HOSTS`` (bare metal, tests, anything else);
* ``lws``: LeaderWorkerSet's ``LWS_LEADER_ADDRESS``, ``LWS_GROUP_SIZE``, ``LWS_WORKER_INDEX``;
* ``grove``: Grove's ``GROVE_PCSG_*``/``GROVE_PCLQ_*``/``GROVE_HEADLESS_SERVICE`` plus the two
  clique names the renderer passes (``DRIVETRAIN_GROVE_LEADER_CLIQUE``/``_WORKER_CLIQUE``);
* ``backendai``: ``BACKENDAI_CLUSTER_SIZE``/``_HOSTS``/``_LOCAL_RANK``;
* ``indexedjob``: a Kubernetes Indexed Job's ``JOB_COMPLETION_INDEX`` plus what the renderer
  passes (``DRIVETRAIN_NNODES``, ``DRIVETRAIN_JOB_NAME``, ``DRIVETRAIN_JOB_SERVICE``); see
  :func:`indexed_job_env`.

``DRIVETRAIN_RANK_SOURCE`` names one of them (or ``none``) and turns off the guessing: a pod
the renderer built for LWS fails loudly when the LWS variables are missing instead of
quietly running as one node.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from drivetrain.distenv.cluster import (
    DEFAULT_PORT,
    Cluster,
    check_cluster,
    check_host,
    is_ipv4,
    parse_count,
    parse_natural,
    parse_port,
    split_hosts,
)
from drivetrain.distenv.errors import DistEnvError

Env = Mapping[str, str]

SOURCES = ("explicit", "lws", "grove", "backendai", "indexedjob")
CHOICES = ("auto", "none", *SOURCES)
#: Sources whose node count *is* ``DRIVETRAIN_NNODES`` (no platform count to compare it with).
_COUNTED_BY_DRIVETRAIN = ("explicit", "indexedjob")

#: The Indexed Job source's inputs: Kubernetes sets the first in every pod of an Indexed Job,
#: the renderer passes the others (:func:`indexed_job_env`).
JOB_INDEX = "JOB_COMPLETION_INDEX"
JOB_NAME = "DRIVETRAIN_JOB_NAME"
JOB_SERVICE = "DRIVETRAIN_JOB_SERVICE"


def _get(env: Env, name: str) -> str:
    return env.get(name, "")


def _need(env: Env, name: str, source: str) -> str:
    value = _get(env, name)
    if not value:
        raise DistEnvError(f"{name} is not set (needed for the {source} rank source)")
    return value


def _base_port(env: Env, fallback_name: str | None = None) -> int:
    """``DRIVETRAIN_MASTER_PORT``, else the platform's own port variable, else 29500."""
    for name in ("DRIVETRAIN_MASTER_PORT", fallback_name):
        if name and _get(env, name):
            return parse_port(name, _get(env, name))
    return DEFAULT_PORT


def from_explicit(env: Env) -> Cluster | None:
    nnodes = parse_count("DRIVETRAIN_NNODES", _need(env, "DRIVETRAIN_NNODES", "explicit"))
    if nnodes <= 1:
        return None
    rank = parse_natural("DRIVETRAIN_NODE_RANK", _need(env, "DRIVETRAIN_NODE_RANK", "explicit"))
    hosts = (
        split_hosts("DRIVETRAIN_HOSTS", env["DRIVETRAIN_HOSTS"])
        if _get(env, "DRIVETRAIN_HOSTS")
        else None
    )
    if _get(env, "DRIVETRAIN_MASTER_ADDR"):
        master = check_host("DRIVETRAIN_MASTER_ADDR", env["DRIVETRAIN_MASTER_ADDR"])
    elif hosts:
        master = hosts[0]
    else:
        raise DistEnvError(
            "DRIVETRAIN_MASTER_ADDR is not set (needed for the explicit rank source, "
            "unless DRIVETRAIN_HOSTS lists every node)"
        )
    cluster = Cluster("explicit", nnodes, rank, master, hosts, _base_port(env))
    return check_cluster(cluster, "DRIVETRAIN_NODE_RANK")


def from_lws(env: Env) -> Cluster | None:
    nnodes = parse_count("LWS_GROUP_SIZE", _need(env, "LWS_GROUP_SIZE", "lws"))
    if nnodes <= 1:
        return None
    leader = check_host("LWS_LEADER_ADDRESS", _need(env, "LWS_LEADER_ADDRESS", "lws"))
    rank = parse_natural("LWS_WORKER_INDEX", _need(env, "LWS_WORKER_INDEX", "lws"))
    cluster = Cluster("lws", nnodes, rank, leader, _lws_hosts(leader, nnodes), _base_port(env))
    return check_cluster(cluster, "LWS_WORKER_INDEX")


def _lws_hosts(leader: str, nnodes: int) -> tuple[str, ...] | None:
    """LWS names the leader pod ``<lws>-<g>`` and its workers ``<lws>-<g>-<i>``, all under
    the same subdomain, so worker i's address is the leader's with ``-<i>`` after the first
    label. An IP address (only in simulations) names no pods: no host list then."""
    if is_ipv4(leader):
        return None
    first, dot, rest = leader.partition(".")
    return (leader, *(f"{first}-{i}{dot}{rest}" for i in range(1, nnodes)))


def from_grove(env: Env) -> Cluster | None:
    nnodes = parse_count(
        "GROVE_PCSG_TEMPLATE_NUM_PODS", _need(env, "GROVE_PCSG_TEMPLATE_NUM_PODS", "grove")
    )
    if nnodes <= 1:
        return None
    group = check_host("GROVE_PCSG_NAME", _need(env, "GROVE_PCSG_NAME", "grove"))
    index = parse_natural("GROVE_PCSG_INDEX", _need(env, "GROVE_PCSG_INDEX", "grove"))
    service = check_host("GROVE_HEADLESS_SERVICE", _need(env, "GROVE_HEADLESS_SERVICE", "grove"))
    clique = _need(env, "GROVE_PCLQ_NAME", "grove")
    pod_index = parse_natural("GROVE_PCLQ_POD_INDEX", _need(env, "GROVE_PCLQ_POD_INDEX", "grove"))
    leader_clique = check_host(
        "DRIVETRAIN_GROVE_LEADER_CLIQUE", _need(env, "DRIVETRAIN_GROVE_LEADER_CLIQUE", "grove")
    )
    worker_clique = check_host(
        "DRIVETRAIN_GROVE_WORKER_CLIQUE", _need(env, "DRIVETRAIN_GROVE_WORKER_CLIQUE", "grove")
    )
    # Grove names a clique <scaling group>-<replica>-<clique> and its pods <clique>-<i>; the
    # leader clique holds rank 0, the worker clique's pod i is rank i + 1 (as Dynamo does).
    prefix = f"{group}-{index}-"
    if clique == prefix + leader_clique:
        rank = pod_index
    elif clique == prefix + worker_clique:
        rank = pod_index + 1
    else:
        raise DistEnvError(
            f"GROVE_PCLQ_NAME={clique!r} is neither {prefix + leader_clique!r} (leader) "
            f"nor {prefix + worker_clique!r} (workers)"
        )
    hosts = (
        f"{prefix}{leader_clique}-0.{service}",
        *(f"{prefix}{worker_clique}-{i}.{service}" for i in range(nnodes - 1)),
    )
    cluster = Cluster("grove", nnodes, rank, hosts[0], hosts, _base_port(env))
    return check_cluster(cluster, "GROVE_PCLQ_POD_INDEX")


def from_backendai(env: Env) -> Cluster | None:
    size = _get(env, "BACKENDAI_CLUSTER_SIZE")
    # As the reference script: an empty or <= 1 size is a single container, not an error.
    if not size or parse_count("BACKENDAI_CLUSTER_SIZE", size) <= 1:
        return None
    nnodes = int(size)
    hosts = split_hosts("BACKENDAI_CLUSTER_HOSTS", _get(env, "BACKENDAI_CLUSTER_HOSTS"))
    rank_text = _get(env, "BACKENDAI_CLUSTER_LOCAL_RANK") or "0"
    rank = parse_natural("BACKENDAI_CLUSTER_LOCAL_RANK", rank_text)
    cluster = Cluster(
        "backendai", nnodes, rank, hosts[0], hosts, _base_port(env, "BACKENDAI_DIST_MASTER_PORT")
    )
    return check_cluster(cluster, "BACKENDAI_CLUSTER_LOCAL_RANK")


def from_indexed_job(env: Env) -> Cluster | None:
    nnodes = parse_count("DRIVETRAIN_NNODES", _need(env, "DRIVETRAIN_NNODES", "indexedjob"))
    if nnodes <= 1:
        return None
    job = check_host(JOB_NAME, _need(env, JOB_NAME, "indexedjob"))
    service = check_host(JOB_SERVICE, _need(env, JOB_SERVICE, "indexedjob"))
    rank = parse_natural(JOB_INDEX, _need(env, JOB_INDEX, "indexedjob"))
    # Kubernetes names pod i of an Indexed Job <job>-<i> and, with `subdomain: <service>` and a
    # headless Service of that name, publishes it as <job>-<i>.<service> (JAX's own Kubernetes
    # bootstrap finds its coordinator the same way).
    hosts = tuple(f"{job}-{i}.{service}" for i in range(nnodes))
    cluster = Cluster("indexedjob", nnodes, rank, hosts[0], hosts, _base_port(env))
    return check_cluster(cluster, JOB_INDEX)


def indexed_job_env(job_name: str, service: str, node_count: int) -> dict[str, str]:
    """What the renderer injects into an Indexed Job trainer's container (docs/distenv.md).

    The Job must be ``completionMode: Indexed`` with ``completions = parallelism =
    node_count``, its pods ``subdomain: <service>``, and ``service`` a headless Service that
    selects them (``publishNotReadyAddresses: true``, so rank 0 resolves before it is Ready).
    Kubernetes adds ``JOB_COMPLETION_INDEX`` itself.
    """
    return {
        "DRIVETRAIN_RANK_SOURCE": "indexedjob",
        "DRIVETRAIN_NNODES": str(node_count),
        JOB_NAME: job_name,
        JOB_SERVICE: service,
    }


_READERS: dict[str, Callable[[Env], Cluster | None]] = {
    "explicit": from_explicit,
    "lws": from_lws,
    "grove": from_grove,
    "backendai": from_backendai,
    "indexedjob": from_indexed_job,
}


def _present(env: Env, source: str) -> bool:
    """Whether ``auto`` sees this source (any of its variables set)."""
    names = {
        "explicit": ("DRIVETRAIN_NODE_RANK", "DRIVETRAIN_MASTER_ADDR", "DRIVETRAIN_HOSTS"),
        "lws": ("LWS_LEADER_ADDRESS", "LWS_GROUP_SIZE", "LWS_WORKER_INDEX"),
        "grove": ("GROVE_PCSG_NAME",),
        "backendai": ("BACKENDAI_CLUSTER_SIZE",),
        # Not JOB_COMPLETION_INDEX alone: every Indexed Job has it (JobSet, Kubeflow
        # Trainer), and those bring their own variables.
        "indexedjob": (JOB_NAME, JOB_SERVICE),
    }[source]
    return any(_get(env, n) for n in names)


def chosen_source(env: Env) -> str | None:
    """The source to read, or None for "not a cluster"."""
    choice = _get(env, "DRIVETRAIN_RANK_SOURCE") or "auto"
    if choice not in CHOICES:
        raise DistEnvError(f"DRIVETRAIN_RANK_SOURCE={choice!r} is not one of {', '.join(CHOICES)}")
    if choice == "none":
        return None
    if choice != "auto":
        return choice
    return next((s for s in SOURCES if _present(env, s)), None)


def read_cluster(env: Env) -> Cluster | None:
    """This node's cluster, or None when there is one node (or none to speak of)."""
    source = chosen_source(env)
    if source is None:
        return None
    cluster = _READERS[source](env)
    expected = _get(env, "DRIVETRAIN_NNODES")
    if source not in _COUNTED_BY_DRIVETRAIN and expected:
        want = parse_count("DRIVETRAIN_NNODES", expected)
        got = cluster.nnodes if cluster else 1
        if got != want:
            raise DistEnvError(
                f"the {source} variables describe {got} nodes but DRIVETRAIN_NNODES={want}"
            )
    return cluster
