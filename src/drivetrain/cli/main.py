"""The ``drivetrain`` command: one typer app, commands registered by topic modules.

Each topic module keeps its heavy imports (kopf, aiohttp, torch) inside the command
functions so that ``drivetrain render`` starts fast.
"""

from __future__ import annotations

import typer

from drivetrain.cli import (
    distenv_cmds,
    graph_cmds,
    kube_cmds,
    runtime_cmds,
    snapshot_cmds,
    up_cmds,
)

app = typer.Typer(
    name="drivetrain",
    help="Deploy distributed LLM inference graphs on Kubernetes or on one machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (graph_cmds, runtime_cmds, up_cmds, kube_cmds, distenv_cmds, snapshot_cmds):
    module.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
