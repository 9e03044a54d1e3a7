"""``drivetrain distenv``: the distributed-training env of this node, shown or applied.

drivetrain distenv --json            the derived variables as one JSON object
drivetrain distenv --print           `export NAME='value'` lines for sh's eval
drivetrain distenv -- CMD ARGS...    exec CMD with them (its exit code is ours)
"""

from __future__ import annotations

import json
import os
import sys
from typing import NoReturn

import typer

#: Malformed cluster variables: the same status the POSIX script uses.
EXIT_BAD_ENV = 2
#: The command after ``--`` could not be run (as sh reports it).
EXIT_NOT_FOUND = 127
EXIT_NOT_EXECUTABLE = 126


def _fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"distenv: {message}\n")
    raise typer.Exit(code)


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
        _fail("give exactly one of --json, --print or -- CMD ARGS...", EXIT_BAD_ENV)
    env = dict(os.environ)
    try:
        derived = derive(env)
    except DistEnvError as exc:
        _fail(str(exc), EXIT_BAD_ENV)
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
        _fail(f"{command[0]}: command not found", EXIT_NOT_FOUND)
    except PermissionError:
        _fail(f"{command[0]}: permission denied", EXIT_NOT_EXECUTABLE)
    except OSError as exc:
        _fail(f"{command[0]}: {exc.strerror}", EXIT_NOT_EXECUTABLE)


def register(app: typer.Typer) -> None:
    """Add this topic's commands to ``app``."""
    app.command("distenv", context_settings={"ignore_unknown_options": True})(distenv)
