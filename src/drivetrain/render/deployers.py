"""Multinode deployers: how a group's leader address and each pod's node rank are reached.

A deployer answers three questions with typed values (see ``expr``), never strings, so the
engines that build flags from them cannot write a wrong form:

* ``leader_host()``: the address every rank connects to;
* ``node_rank()``: this pod's rank in its group (the leader is 0);
* ``host_names(n)``: every host of the group, leader first (for mpirun's ``-H``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drivetrain.api.enums import Deployer
from drivetrain.render.expr import Env, IntExpr, IntLit, IntVar, Lit, ShellOnly, Word


class MultinodeDeployer:
    #: a ``Deployer`` for the real APIs; other strings for test doubles.
    kind: str = ""
    #: True when workers may start before the leader's DNS name resolves (LWS).
    needs_dns_wait: bool = False

    def leader_host(self, service: str) -> Word:
        raise NotImplementedError

    def node_rank(self) -> IntExpr:
        raise NotImplementedError

    def host_names(self, service: str, node_count: int) -> list[Word]:
        raise NotImplementedError


@dataclass(frozen=True)
class LWSDeployer(MultinodeDeployer):
    """LeaderWorkerSet: the controller injects ``LWS_LEADER_ADDRESS`` and ``LWS_WORKER_INDEX``."""

    kind: str = Deployer.lws
    needs_dns_wait: bool = True

    def leader_host(self, service: str) -> Word:
        return Word((Env("LWS_LEADER_ADDRESS"),))

    def node_rank(self) -> IntExpr:
        return IntVar("LWS_WORKER_INDEX")

    def host_names(self, service: str, node_count: int) -> list[Word]:
        # Worker i's stable name is the leader's first label with "-<i>" appended:
        # <group>-<index>.<svc>.<ns> -> <group>-<index>-<i>.<svc>.<ns>.  Only a shell can
        # compute it from LWS_LEADER_ADDRESS.
        hosts = [self.leader_host(service)]
        for i in range(1, node_count):
            hosts.append(
                Word((ShellOnly(f"$(echo \"$LWS_LEADER_ADDRESS\" | sed 's/\\./-{i}\\./')"),))
            )
        return hosts


@dataclass(frozen=True)
class GroveDeployer(MultinodeDeployer):
    """Grove PodCliqueSet: leader clique ``<svc>-ldr``, worker clique ``<svc>-wkr``."""

    kind: str = Deployer.grove
    needs_dns_wait: bool = False

    def _host(self, service: str, clique: str) -> Word:
        svc = service.lower()
        return Word(
            (
                Env("GROVE_PCSG_NAME"),
                Lit("-"),
                Env("GROVE_PCSG_INDEX"),
                Lit(f"-{svc}-{clique}."),
                Env("GROVE_HEADLESS_SERVICE"),
            )
        )

    def leader_host(self, service: str) -> Word:
        return self._host(service, "ldr-0")

    def node_rank(self) -> IntExpr:
        # Worker pods are indexed from 0 inside the worker clique; the leader is rank 0.
        return IntVar("GROVE_PCLQ_POD_INDEX") + 1

    def host_names(self, service: str, node_count: int) -> list[Word]:
        return [self.leader_host(service)] + [
            self._host(service, f"wkr-{i}") for i in range(node_count - 1)
        ]


@dataclass(frozen=True)
class FixedDeployer(MultinodeDeployer):
    """A deployer with literal answers (tests, and the vectors' mock deployers)."""

    kind: str = "fixed"
    leader: str = "leader"
    rank: str = "1"
    rank_needs_shell: bool = False
    needs_dns_wait: bool = False
    worker_format: str = "worker{i}"

    def leader_host(self, service: str) -> Word:
        return parse_kubelet_refs(self.leader)

    def node_rank(self) -> IntExpr:
        name = self.rank[2:-1] if self.rank.startswith("$(") else self.rank
        if name.isdigit():
            return IntLit(int(name))
        return IntVar(name, shell_only=self.rank_needs_shell)

    def host_names(self, service: str, node_count: int) -> list[Word]:
        return [self.leader_host(service)] + [
            parse_kubelet_refs(self.worker_format.format(i=i)) for i in range(1, node_count)
        ]


_REF = re.compile(r"\$\((\w+)\)")


def parse_kubelet_refs(text: str) -> Word:
    """``"$(A)-x"`` as a typed word: kubelet references become ``Env`` parts."""
    parts: list[Lit | Env] = []
    pos = 0
    for m in _REF.finditer(text):
        if m.start() > pos:
            parts.append(Lit(text[pos : m.start()]))
        parts.append(Env(m.group(1)))
        pos = m.end()
    if pos < len(text):
        parts.append(Lit(text[pos:]))
    return Word(tuple(parts))
