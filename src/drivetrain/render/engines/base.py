"""What every engine module receives, and the errors it raises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from drivetrain.api.models import whole_count
from drivetrain.errors import DrivetrainError
from drivetrain.render.deployers import MultinodeDeployer
from drivetrain.render.expr import IntExpr, IntLit, Word

#: The port multinode engines rendezvous on (torch distributed, SGLang's dist-init).
MASTER_PORT = 29500
#: The Secret holding TRT-LLM multinode's SSH key pair (Dynamo's Helm default name).
MPI_SECRET = "mpi-run-ssh-secret"


class EngineChoiceError(DrivetrainError, ValueError):
    """An engine cannot be determined or the command runs more than one.

    (Not the runtime's ``EngineError``, which is an HTTP failure of a running engine.)
    """


#: A GPU quantity as an int; 0 when unset or not a whole number (as Dynamo reads it).
parse_gpu_count = whole_count


@dataclass(frozen=True)
class EngineContext:
    deployer: MultinodeDeployer
    role: Literal["main", "leader", "worker"]
    node_count: int
    service_name: str  # original case
    graph_name: str
    executor: Literal["mp", "ray"] = "mp"  # vLLM's multinode executor
    gpus_limit: int = 0  # resources.limits.gpu
    gpus_request: int = 0  # resources.requests.gpu
    mpi_secret: str = MPI_SECRET
    compilation_cache_mount: str | None = None  # mountPoint of a useAsCompilationCache volume

    @property
    def multinode(self) -> bool:
        """True for the leader and workers of a group of more than one node."""
        return self.node_count > 1 and self.role in ("leader", "worker")

    @property
    def leader_host(self) -> Word:
        return self.deployer.leader_host(self.service_name)

    def rank(self) -> IntExpr:
        """This pod's node rank: 0 on the leader, the deployer's value on workers."""
        return IntLit(0) if self.role == "leader" else self.deployer.node_rank()

    @property
    def gpus_per_node(self) -> int:
        """GPUs of one pod for mpirun's slot count: requests first, then limits (TRT-LLM)."""
        return self.gpus_request or self.gpus_limit
