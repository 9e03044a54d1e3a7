"""drivetrain: deploy distributed LLM inference graphs and the RL training beside them.

The stable Python API is the set of names below (``drivetrain.__all__``); see docs/api.md.
Every submodule is internal: it may change between releases without notice, as in httpx and
kopf.  The names load on first use (PEP 562), so ``import drivetrain`` and the CLI's start
import none of the heavy dependencies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from drivetrain.lazy import exports

__version__ = "0.1.0"

if TYPE_CHECKING:  # for type checkers and editors; at run time ``__getattr__`` loads them
    from drivetrain.api.errors import InvalidGraph
    from drivetrain.api.loader import load_graphs
    from drivetrain.api.models import GraphDeployment
    from drivetrain.distenv.derive import derive as derive_env
    from drivetrain.distenv.errors import DistEnvError
    from drivetrain.errors import DrivetrainError
    from drivetrain.local.run import UpOptions
    from drivetrain.local.run import run_up as run_local
    from drivetrain.render.graph import render_graph
    from drivetrain.runtime.engines import make_engine
    from drivetrain.runtime.frontend.server import FrontendConfig
    from drivetrain.runtime.serve import run_frontend, run_worker
    from drivetrain.runtime.worker import WorkerConfig
    from drivetrain.verify.checks import verify_manifests
    from drivetrain.verify.report import VerifyReport

#: public name -> (module, name in it)
_API: dict[str, tuple[str, str]] = {
    "DrivetrainError": ("drivetrain.errors", "DrivetrainError"),
    "InvalidGraph": ("drivetrain.api.errors", "InvalidGraph"),
    "DistEnvError": ("drivetrain.distenv.errors", "DistEnvError"),
    "GraphDeployment": ("drivetrain.api.models", "GraphDeployment"),
    "load_graphs": ("drivetrain.api.loader", "load_graphs"),
    "render_graph": ("drivetrain.render.graph", "render_graph"),
    "verify_manifests": ("drivetrain.verify.checks", "verify_manifests"),
    "VerifyReport": ("drivetrain.verify.report", "VerifyReport"),
    "derive_env": ("drivetrain.distenv.derive", "derive"),
    "UpOptions": ("drivetrain.local.run", "UpOptions"),
    "run_local": ("drivetrain.local.run", "run_up"),
    "FrontendConfig": ("drivetrain.runtime.frontend.server", "FrontendConfig"),
    "WorkerConfig": ("drivetrain.runtime.worker", "WorkerConfig"),
    "make_engine": ("drivetrain.runtime.engines", "make_engine"),
    "run_frontend": ("drivetrain.runtime.serve", "run_frontend"),
    "run_worker": ("drivetrain.runtime.serve", "run_worker"),
}

# Spelled out (not derived from ``_API``) so that linters and editors see the public names;
# tests/package/test_public_api.py checks the two agree.
__all__ = [
    "DistEnvError",
    "DrivetrainError",
    "FrontendConfig",
    "GraphDeployment",
    "InvalidGraph",
    "UpOptions",
    "VerifyReport",
    "WorkerConfig",
    "__version__",
    "derive_env",
    "load_graphs",
    "make_engine",
    "render_graph",
    "run_frontend",
    "run_local",
    "run_worker",
    "verify_manifests",
]


__getattr__, __dir__ = exports(__name__, globals(), _API)
