"""What every engine module receives, and the errors it raises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from drivetrain.render.deployers import MultinodeDeployer

#: The port multinode engines rendezvous on (torch distributed, SGLang's dist-init).
MASTER_PORT = 29500


class EngineError(ValueError):
    """An engine cannot be determined or the command runs more than one."""


@dataclass(frozen=True)
class EngineContext:
    deployer: MultinodeDeployer
    role: Literal["main", "leader", "worker"]
    node_count: int
    service_name: str  # original case
    graph_name: str
    executor: Literal["mp", "ray"] = "mp"  # vLLM's multinode executor
    gpus_limit: int = 0
    gpus_request: int = 0
    mpi_secret: str = "mpi-run-ssh-secret"
    compilation_cache_mount: str | None = None

    @property
    def multinode(self) -> bool:
        return self.node_count > 1 and self.role in ("leader", "worker")

    @property
    def leader_host(self):  # type: ignore[no-untyped-def]
        return self.deployer.leader_host(self.service_name)

    def rank(self):  # type: ignore[no-untyped-def]
        """This pod's node rank: 0 on the leader, the deployer's value on workers."""
        from drivetrain.render.expr import IntLit

        return IntLit(0) if self.role == "leader" else self.deployer.node_rank()
