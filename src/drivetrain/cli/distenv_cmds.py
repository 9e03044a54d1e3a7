"""``drivetrain distenv``: the distributed-training env of this node, shown or applied.

drivetrain distenv --json            the derived variables as one JSON object
drivetrain distenv --print           `export NAME='value'` lines for sh's eval
drivetrain distenv -- CMD ARGS...    exec CMD with them (its exit code is ours)

Exit codes: 1 when the cluster variables are malformed (nothing runs), 2 for usage, 127 when
CMD is not found and 126 when it cannot be run (as sh), else CMD's own.
"""

from __future__ import annotations

import json
import os
import sys

import typer

from drivetrain.cli.output import EXIT_CANNOT_RUN, EXIT_INVALID, EXIT_NOT_FOUND, EXIT_USAGE, fail

#: "distenv: ..." as the POSIX script prints it, so the two say the same.
LABEL = "distenv"


def distenv(
    as_json: bool = typer.Option(False, "--json", help="Print the variables as one JSON object."),
    as_print: bool = typer.Option(
        False, "--print", help="Print them as POSIX `export NAME='value'` lines."
    ),
    command: list[str] | None = typer.Argument(
        None, metavar="[-- CMD ARGS...]", help="Run CMD with the variables set (exec)."
    ),
) -> None:
    """Derive MASTER_ADDR/PORT, torchrun, TF_CONFIG and JAX variables from LWS, Grove,
    Backend.AI, Indexed Job or DRIVETRAIN_* variables. A non-empty value already set is kept;
    one node gets nothing."""
    from drivetrain.cli.output import write_stdout
    from drivetrain.distenv import DistEnvError, derive, export_lines

    modes = sum([as_json, as_print, bool(command)])
    if modes != 1:
        fail("give exactly one of --json, --print or -- CMD ARGS...", EXIT_USAGE, LABEL)
    env = dict(os.environ)
    try:
        derived = derive(env)
    except DistEnvError as exc:
        fail(str(exc), EXIT_INVALID, LABEL)
    if as_json:
        write_stdout(json.dumps(derived, indent=2) + "\n")
        return
    if as_print:
        write_stdout(export_lines(derived))
        return
    assert command
    sys.stdout.flush()
    try:
        os.execvpe(command[0], command, {**env, **derived})
    except FileNotFoundError:
        fail(f"{command[0]}: command not found", EXIT_NOT_FOUND, LABEL)
    except PermissionError:
        fail(f"{command[0]}: permission denied", EXIT_CANNOT_RUN, LABEL)
    except OSError as exc:
        fail(f"{command[0]}: {exc.strerror}", EXIT_CANNOT_RUN, LABEL)


def register(app: typer.Typer) -> None:
    """Add this topic's commands to ``app``."""
    app.command("distenv", context_settings={"ignore_unknown_options": True})(distenv)
