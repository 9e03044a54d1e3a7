"""``drivetrain up``: run a graph's frontend and workers as processes on this machine."""

from __future__ import annotations

from pathlib import Path

import typer

from drivetrain.api.errors import InvalidGraph
from drivetrain.cli.output import EXIT_INVALID, EXIT_USAGE, err_console, fail_invalid


def register(app: typer.Typer) -> None:
    @app.command()
    def up(
        graph: Path | None = typer.Argument(None, help="Graph file (or use -f)."),
        file: Path | None = typer.Option(None, "-f", "--file", help="Graph file (YAML)."),
        port: int = typer.Option(8000, "--port", help="The frontend's HTTP port."),
        host: str = typer.Option(
            "127.0.0.1", "--host", help="The frontend's listen address (0.0.0.0: every interface)."
        ),
        discovery: str | None = typer.Option(
            None,
            "--discovery",
            help="Discovery URL for every process (etcd://host:port, file:///dir). "
            "Default: files in a fresh temporary folder.",
        ),
        grace: float | None = typer.Option(
            None,
            "--grace",
            help="Seconds between SIGTERM and SIGKILL when stopping; at least 1 s longer than "
            "the longest drain (default: the longest drain + 5 s).",
        ),
        drain_timeout: float = typer.Option(
            5.0,
            "--drain-timeout",
            help="On stop, seconds each frontend and worker lets requests in flight finish "
            "(DRIVETRAIN_DRAIN_TIMEOUT, unless the graph or a command line sets it).",
        ),
        env_file: Path | None = typer.Option(
            None,
            "--env-file",
            help="NAME=VALUE lines giving what the pods would read from Secrets and ConfigMaps "
            "(valueFrom, envFrom, envFromSecret).",
        ),
    ) -> None:
        """Run every frontend and worker service of a graph on this machine, restarting
        crashed processes; Ctrl-C or SIGTERM stops them all."""
        from rich.markup import escape

        from drivetrain.local.plan import UnrunnableGraph
        from drivetrain.local.run import UpOptions, run_up
        from drivetrain.local.stopping import StopTimingError

        path = file or graph
        if path is None or (file is not None and graph is not None and file != graph):
            err_console.print("[red]error[/red]: give one graph file: `drivetrain up -f GRAPH`")
            raise typer.Exit(2)
        try:
            code = run_up(
                UpOptions(
                    file=path,
                    port=port,
                    host=host,
                    discovery=discovery,
                    grace=grace,
                    env_file=env_file,
                    drain_timeout=drain_timeout,
                )
            )
        except InvalidGraph as exc:
            fail_invalid(exc)
        except StopTimingError as exc:
            err_console.print(f"[red]error[/red]: {escape(str(exc))}")
            raise typer.Exit(EXIT_USAGE) from None
        except UnrunnableGraph as exc:
            for problem in exc.problems:
                # escape: field paths such as env[hf_token] would read as rich markup
                err_console.print(f"[red]error[/red]: {escape(f'{path}: {problem}')}")
            raise typer.Exit(EXIT_INVALID) from None
        raise typer.Exit(code)
