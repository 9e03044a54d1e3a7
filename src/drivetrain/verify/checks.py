"""Simulate every pod and rank of rendered manifests and check the processes they would start."""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from drivetrain.cmdline import expand_argv, int_flag, is_bare_script
from drivetrain.verify.controllers import Pod, enumerate_pods, object_name, why_not_simulated
from drivetrain.verify.discovery import discovery_contract
from drivetrain.verify.expansion import container_env, service_link_env
from drivetrain.verify.flags import (
    NNODES_FLAGS,
    PORT_ENV,
    PORT_FLAGS,
    RANK_FLAGS,
    UNEXPANDED,
    leader_addresses,
    mpirun_hosts,
    strip_port,
)
from drivetrain.verify.references import Present, check_references
from drivetrain.verify.report import Problem, Process, Skipped, VerifyReport
from drivetrain.verify.shape import InvalidManifests, shape_errors
from drivetrain.verify.shell import (
    SHELLS,
    TIMEOUT_S,
    WATCHED_ENV,
    Toolbox,
    is_process,
    split_shell,
)

_KUBELET_REF = re.compile(r"\$\([A-Za-z_][A-Za-z0-9_]*\)")


@dataclass
class _PodRun:
    """The processes of one pod's regular containers, for the group checks."""

    pod: Pod
    processes: list[Process] = field(default_factory=list)  # regular containers: ranks
    init_processes: list[Process] = field(default_factory=list)  # init too: leader addresses
    #: (container, where, port) for every port a regular container declares or uses.
    ports: list[tuple[str, str, str]] = field(default_factory=list)


def flatten_lists(manifests: Sequence[Any]) -> list[Any]:
    """The objects of ``manifests`` with each ``kind: List`` (``kubectl get -o yaml``) replaced
    by its items."""
    out: list[Any] = []
    for obj in manifests:
        if isinstance(obj, Mapping) and obj.get("kind") == "List":
            out += list(obj.get("items") or [])
        else:
            out.append(obj)
    return out


def verify_manifests(manifests: list[dict[str, Any]], timeout: float = TIMEOUT_S) -> VerifyReport:
    """Build each pod's env as the kubelet would, run its shell scripts, and check final argv.

    ``manifests`` are Kubernetes objects from any source (``render_graph``, Dynamo's operator,
    ``kubectl get -o yaml``); the objects verify does not simulate are listed in
    ``not_simulated``. Raises ``InvalidManifests`` naming every field it cannot read.
    """
    objects = flatten_lists(manifests)
    errors = shape_errors(objects)
    if errors:
        raise InvalidManifests(errors)
    report = VerifyReport()
    report.not_simulated = [
        Skipped(object=object_name(obj), reason=reason)
        for obj in objects
        if (reason := why_not_simulated(obj)) is not None
    ]
    configmaps = {
        str((m.get("metadata") or {}).get("name")): {
            str(k): str(v) for k, v in (m.get("data") or {}).items()
        }
        for m in objects
        if m.get("kind") == "ConfigMap"
    }
    services = [m for m in objects if m.get("kind") == "Service"]
    ips = {
        str((s.get("metadata") or {}).get("name")): f"10.96.{i // 250}.{i % 250 + 10}"
        for i, s in enumerate(services)
    }
    service_env = service_link_env(services, ips)
    runs: list[_PodRun] = []
    pods: list[Pod] = []
    images_seen: set[tuple[str, str, str]] = set()
    present = Present(objects)
    with Toolbox() as toolbox:
        sim = _Simulation(configmaps, toolbox, report, timeout)
        for pod in enumerate_pods(objects):
            pods.append(pod)
            report.reference_warnings.extend(check_references(pod, present))
            run = _PodRun(pod)
            links = service_env if pod.spec.get("enableServiceLinks", True) else {}
            for container, init in _containers(pod.spec):
                procs, env = _simulate(pod, container, init, links, sim)
                report.processes.extend(procs)
                (run.init_processes if init else run.processes).extend(procs)
                report.problems.extend(_image(pod, container, images_seen))
                if not init or _is_sidecar(container):  # they run side by side
                    run.ports += _ports_of(container, env, procs)
            runs.append(run)
            report.problems.extend(check_shared_ports(run))
    for proc in report.processes:
        report.problems.extend(_unexpanded(proc))
        report.problems.extend(_bare_script(proc))
    groups: dict[str, list[_PodRun]] = defaultdict(list)
    for run in runs:
        if run.pod.group is not None:
            groups[run.pod.group.key].append(run)
    for members in groups.values():
        report.problems.extend(check_ranks(members))
        report.problems.extend(check_leader_address(members))
    report.discovery = discovery_contract(objects, pods)
    return report


def _containers(spec: Mapping[str, Any]) -> Iterable[tuple[Mapping[str, Any], bool]]:
    for c in spec.get("initContainers") or []:
        yield c, True
    for c in spec.get("containers") or []:
        yield c, False


def _is_sidecar(container: Mapping[str, Any]) -> bool:
    """A native sidecar: an init container that keeps running beside the others."""
    return container.get("restartPolicy") == "Always"


def _ports_of(
    container: Mapping[str, Any], env: Mapping[str, str], procs: Sequence[Process]
) -> list[tuple[str, str, str]]:
    """Every port one container declares (``ports``) or hands its processes (env, flags);
    each once."""
    name = str(container.get("name", ""))
    found = [
        (name, f"containerPort {p.get('name') or ''}".rstrip(), str(p.get("containerPort")))
        for p in container.get("ports") or []
        if isinstance(p, Mapping) and p.get("containerPort") is not None
    ]
    found += [(name, f"env {k}", env[k]) for k in PORT_ENV if env.get(k)]
    for proc in procs:
        value = int_flag(proc.argv, *PORT_FLAGS)
        if value is not None:
            found.append((name, PORT_FLAGS[0], str(value)))
    return list(dict.fromkeys(found))


def check_shared_ports(run: _PodRun) -> list[Problem]:
    """Two containers of one pod that use the same port: they share the pod's network, so the
    second cannot bind it (a failover pod's engines each need their own)."""
    problems: list[Problem] = []
    first: dict[str, tuple[str, str]] = {}
    reported: set[tuple[str, str]] = set()
    for container, where, port in run.ports:
        if port not in first:
            first[port] = (container, where)
            continue
        other, other_where = first[port]
        if other != container and (container, port) not in reported:
            reported.add((container, port))
            problems.append(
                Problem(
                    workload=run.pod.workload,
                    pod=run.pod.facts.hostname,
                    container=container,
                    token=f"{where}={port}",
                    message=f"port {port} is also used by container {other} ({other_where}): "
                    "the containers of a pod share its network",
                    rank=run.pod.member_index if run.pod.group is not None else None,
                )
            )
    return problems


@dataclass
class _Simulation:
    """What every container simulation of one verify run shares."""

    configmaps: Mapping[str, Mapping[str, str]]
    toolbox: Toolbox
    report: VerifyReport
    timeout: float
    # Scripts that already ran out of time: the same template on the next rank would too, and
    # waiting again for each of a large group's pods only makes verify slow.
    hung: set[tuple[str, str, str]] = field(default_factory=set)


def _simulate(
    pod: Pod,
    container: Mapping[str, Any],
    init: bool,
    service_env: Mapping[str, str],
    sim: _Simulation,
) -> tuple[list[Process], dict[str, str]]:
    """The processes one container starts, and its env as the kubelet builds it."""
    report, timeout = sim.report, sim.timeout
    name = str(container.get("name", ""))
    env = container_env(container, pod.controller_env, pod.facts, service_env, sim.configmaps)
    argv = expand_argv(container, env.values)
    rank = pod.member_index if pod.group is not None else None

    def process(
        source: Literal["exec", "shell"], final: list[str], watched: dict[str, str]
    ) -> Process:
        return Process(
            workload=pod.workload,
            role=pod.role,
            pod=pod.facts.hostname,
            container=name,
            init=init,
            sidecar=init and container.get("restartPolicy") == "Always",
            rank=_rank_of(final, rank),
            source=source,
            argv=final,
            env=watched,
        )

    if not argv:
        report.warnings.append(
            f"{pod.workload} pod {pod.facts.hostname} container {name}: no command or args; the "
            "image's own entrypoint runs and verify cannot see it"
        )
        return [], env.values
    call = split_shell(argv)
    if call is None:
        if env.opaque_sources and any(_KUBELET_REF.search(word) for word in argv):
            report.warnings.append(
                f"{pod.workload} pod {pod.facts.hostname} container {name}: an undefined $(VAR) "
                f"might come from {', '.join(env.opaque_sources)}, whose keys verify cannot see"
            )
        watched = {k: env.values[k] for k in WATCHED_ENV if k in env.values}
        return [process("exec", argv, watched)], env.values
    template = (pod.workload, pod.role, name)
    if template in sim.hung:
        return [], env.values
    runtime_env = {"HOSTNAME": pod.facts.hostname, **env.values}
    result = sim.toolbox.run(call, runtime_env, timeout=timeout)
    if result.timed_out:
        sim.hung.add(template)
        report.problems.append(
            Problem(
                workload=pod.workload,
                pod=pod.facts.hostname,
                container=name,
                token=call.script[:120],
                message=f"the shell script did not finish within {timeout:g}s in simulation "
                "(a wait loop that never ends, or a program verify does not stand in for)",
            )
        )
    elif result.exit_code:
        tail = result.stderr.strip().splitlines()[-1:] or [""]
        report.warnings.append(
            f"{pod.workload} pod {pod.facts.hostname} container {name}: the script exited "
            f"{result.exit_code} in simulation {tail[0]!r}"
        )
    procs = [
        process("shell", rec, watched)
        for rec, watched in zip(result.records[:200], result.envs, strict=False)
        if is_process(rec)
    ]
    if not procs and not result.timed_out:
        report.warnings.append(
            f"{pod.workload} pod {pod.facts.hostname} container {name}: the script started no "
            "program"
        )
    return procs, env.values


def _rank_of(argv: Sequence[str], default: int | None) -> int | None:
    value = int_flag(argv, *RANK_FLAGS)
    return value if isinstance(value, int) else default


def _problem(run: _PodRun, proc: Process | None, token: str, message: str) -> Problem:
    return Problem(
        workload=run.pod.workload,
        pod=run.pod.facts.hostname,
        container=proc.container if proc else "",
        token=token,
        message=message,
        rank=proc.rank if proc else None,
    )


def _image(
    pod: Pod, container: Mapping[str, Any], seen: set[tuple[str, str, str]]
) -> list[Problem]:
    """A reference left in ``image``: the kubelet expands command, args and env, never the
    image, so ``${IMAGE}`` is pulled as written and the pod never starts. Reported once per
    template (every pod of it has the same image)."""
    image = str(container.get("image") or "")
    match = UNEXPANDED.search(image)
    name = str(container.get("name", ""))
    if match is None or (pod.workload, pod.role, name) in seen:
        return []
    seen.add((pod.workload, pod.role, name))
    return [
        Problem(
            workload=pod.workload,
            pod=pod.facts.hostname,
            container=name,
            token=image,
            message=f"{match.group(0)!r} survives in the image: the kubelet never expands an "
            "image reference (a template placeholder left unfilled?)",
            rank=pod.member_index if pod.group is not None else None,
        )
    ]


def _bare_script(proc: Process) -> list[Problem]:
    """A process whose program is ``train.py``: no interpreter, no path (``cmdline``)."""
    if not proc.argv or not is_bare_script(proc.argv[0]):
        return []
    return [
        Problem(
            workload=proc.workload,
            pod=proc.pod,
            container=proc.container,
            token=proc.argv[0],
            message="a Python script is the program, with no interpreter and no path: it is "
            "looked up on PATH and the container fails with 'not found' (run it as "
            "`python3 SCRIPT`, or `./SCRIPT` with a shebang)",
            rank=proc.rank,
        )
    ]


def _inner_scripts(argv: Sequence[str]) -> set[int]:
    """Positions of ``<shell> -c SCRIPT`` scripts inside an argv (``mpirun ... bash -c '...'``):
    their ``${VAR}`` is for that inner shell, which the recorders run and check in turn."""
    found = set()
    for i, word in enumerate(argv):
        call = split_shell(argv[i:]) if os.path.basename(word) in SHELLS else None
        if call is not None:
            found.add(i + 1 + len(call.options))
    return found


def _unexpanded(proc: Process) -> list[Problem]:
    problems = [
        Problem(
            workload=proc.workload,
            pod=proc.pod,
            container=proc.container,
            token=f"{name}={value}",
            message=f"the env of {proc.argv[0]!r} carries an unexpanded reference",
            rank=proc.rank,
        )
        for name, value in proc.env.items()
        if UNEXPANDED.search(value)
    ]
    inner = _inner_scripts(proc.argv)
    for position, token in enumerate(proc.argv):
        match = UNEXPANDED.search(token) if position not in inner else None
        if match:
            problems.append(
                Problem(
                    workload=proc.workload,
                    pod=proc.pod,
                    container=proc.container,
                    token=token,
                    message=f"{match.group(0)!r} survives into the final argv of {proc.argv[0]!r} "
                    "(the kubelet expands only $(VAR) and there is no shell to expand it)"
                    if proc.source == "exec"
                    else f"{match.group(0)!r} survives the shell into the argv of {proc.argv[0]!r}",
                    rank=proc.rank,
                )
            )
    return problems


def _pod_ranks(run: _PodRun) -> list[tuple[Process, str, int | str]]:
    """Every rank a pod's processes claim: ``(process, flag, value)``."""
    found: list[tuple[Process, str, int | str]] = []
    for proc in run.processes:
        rank = int_flag(proc.argv, *RANK_FLAGS)
        if rank is not None:
            found.append((proc, "--node-rank", rank))
            continue
        start = int_flag(proc.argv, "--data-parallel-start-rank")
        local = int_flag(proc.argv, "--data-parallel-size-local")
        if start is None:
            continue
        if isinstance(start, int) and isinstance(local, int) and local > 0:
            found.append(
                (
                    proc,
                    "--data-parallel-start-rank",
                    start // local
                    if start % local == 0
                    else f"{start} (not a multiple of {local})",
                )
            )
        else:
            found.append((proc, "--data-parallel-start-rank", start))
    return found


def check_ranks(members: list[_PodRun]) -> list[Problem]:
    """Ranks in one multinode group must be exactly 0..n-1, the leader's 0, one per pod."""
    problems: list[Problem] = []
    size = members[0].pod.group.size if members[0].pod.group else len(members)
    claims = {id(run): _pod_ranks(run) for run in members}
    if not any(claims.values()):
        return problems  # this engine does not take ranks by flag (Ray, MPI over ssh)
    seen: dict[int, _PodRun] = {}
    for run in members:
        ranks = claims[id(run)]
        values = {value for _, _, value in ranks}
        if not ranks:
            problems.append(
                _problem(run, None, "--node-rank", "this pod of a multinode group passes no rank")
            )
            continue
        proc, flag, value = ranks[0]
        if len(values) > 1:
            problems.append(
                _problem(
                    run,
                    proc,
                    f"{flag} {sorted(map(str, values))}",
                    "processes of one pod claim different ranks",
                )
            )
            continue
        if not isinstance(value, int) or not 0 <= value < size:
            problems.append(
                _problem(
                    run,
                    proc,
                    f"{flag} {value}",
                    f"rank is not in 0..{size - 1} for a group of {size} pods",
                )
            )
            continue
        if value in seen:
            problems.append(
                _problem(
                    run,
                    proc,
                    f"{flag} {value}",
                    f"rank {value} is also claimed by pod {seen[value].pod.facts.hostname}",
                )
            )
            continue
        seen[value] = run
        if run.pod.is_leader and value != 0:
            problems.append(_problem(run, proc, f"{flag} {value}", "the leader's rank is not 0"))
    missing = sorted(set(range(size)) - set(seen))
    if missing and not problems:
        problems.append(
            _problem(
                members[0],
                None,
                str(missing),
                f"ranks {missing} are not taken by any pod of the group",
            )
        )
    for run in members:
        for proc in run.processes:
            nnodes = int_flag(proc.argv, *NNODES_FLAGS)
            if nnodes is not None and nnodes != size:
                problems.append(
                    _problem(run, proc, f"--nnodes {nnodes}", f"the group has {size} pods")
                )
            # Hybrid data parallel: every pod runs `local` ranks, so the total must be local * n,
            # or the engines wait for ranks that no pod starts.
            total = int_flag(proc.argv, "--data-parallel-size")
            local = int_flag(proc.argv, "--data-parallel-size-local")
            if isinstance(total, int) and isinstance(local, int) and total != local * size:
                problems.append(
                    _problem(
                        run,
                        proc,
                        f"--data-parallel-size {total}",
                        f"{size} pods with --data-parallel-size-local {local} run {local * size}",
                    )
                )
    return problems


def _leader(members: list[_PodRun]) -> _PodRun:
    return next(
        (r for r in members if r.pod.is_leader), min(members, key=lambda r: r.pod.member_index)
    )


def _resolves_to(host: str, run: _PodRun) -> bool:
    host = host.lower().rstrip(".")
    return host in run.pod.dns_names or host == run.pod.facts.ip


def check_leader_address(members: list[_PodRun]) -> list[Problem]:
    """Every leader address a group member passes must name the leader pod; mpirun's host list
    must name every pod of the group once."""
    problems: list[Problem] = []
    leader = _leader(members)
    for run in members:
        for proc in [*run.init_processes, *run.processes]:
            named = leader_addresses(proc.argv)
            named += [(f"env {k}", strip_port(v)) for k, v in proc.env.items()]
            for flag, host in named:
                if "$" in host or _resolves_to(host, leader):
                    continue  # a leftover reference is reported by the expansion check
                problems.append(
                    _problem(
                        run,
                        proc,
                        f"{flag} {host}",
                        f"does not name the leader pod {leader.pod.facts.hostname} "
                        f"({min(leader.pod.dns_names, key=len, default=leader.pod.facts.ip)})",
                    )
                )
            hosts = mpirun_hosts(proc.argv)
            if hosts and not any("$" in h for h in hosts):
                problems.extend(_check_hosts(run, proc, hosts, members))
    return problems


def _check_hosts(
    run: _PodRun, proc: Process, hosts: list[str], members: list[_PodRun]
) -> list[Problem]:
    problems = []
    covered: list[_PodRun] = []
    for host in hosts:
        owner = next((m for m in members if _resolves_to(host, m)), None)
        if owner is None:
            problems.append(_problem(run, proc, f"-H {host}", "this host is no pod of the group"))
        elif owner in covered:
            problems.append(_problem(run, proc, f"-H {host}", "this pod is listed twice"))
        else:
            covered.append(owner)
    absent = [m.pod.facts.hostname for m in members if m not in covered]
    if absent and not problems:
        problems.append(
            _problem(
                run,
                proc,
                f"-H {','.join(hosts)}",
                f"pods {absent} of the group are missing from the host list",
            )
        )
    return problems
