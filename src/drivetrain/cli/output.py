"""Shared CLI output: errors and warnings to stderr in one form, the exit codes, ``--strict``.

Every message goes through rich's ``escape`` first: a message may hold ``[...]`` (a regex in a
field error, a list in a value) that rich would otherwise take for markup and drop.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from drivetrain.api.errors import InvalidGraph

# The exit codes of every command (the table is in the README; tests/cli/test_exit_codes.py
# checks each command against it).
EXIT_OK = 0
#: Invalid input, a failed check, a cluster or start-up failure the message explains.
EXIT_INVALID = 1
#: Usage: an unknown option, a missing argument, options that contradict each other.
EXIT_USAGE = 2
#: A program a command was to run exists but cannot be run (as sh reports it).
EXIT_CANNOT_RUN = 126
#: A program a command was to run is not found (as sh reports it).
EXIT_NOT_FOUND = 127

err_console = Console(stderr=True, highlight=False, soft_wrap=True)

StrictOption = typer.Option(
    False, "--strict", help="Treat warnings as errors: print them as errors and exit 1."
)


def error_line(message: str, label: str = "error") -> None:
    """``<label>: <message>`` on stderr, the label in red, the message verbatim."""
    err_console.print(f"[red]{escape(label)}[/red]: {escape(message)}")


def fail(message: str, code: int = EXIT_INVALID, label: str = "error") -> NoReturn:
    """Say what is wrong on stderr (``<label>: <message>``) and exit with ``code`` (see the
    table above)."""
    error_line(message, label)
    raise typer.Exit(code)


def fail_invalid(exc: InvalidGraph) -> NoReturn:
    count = len(exc.errors)
    for error in exc.errors:
        error_line(str(error))
    if count > 1:
        err_console.print(f"{count} errors")
    raise typer.Exit(EXIT_INVALID)


def warn(warnings: Sequence[object], strict: bool) -> None:
    """Report every warning (anything whose ``str()`` says where and what) on stderr.

    With ``strict`` the warnings are errors: printed as such, and the command exits 1 here,
    before it writes any output.  Every command that can warn takes ``StrictOption`` and ends
    its checks with this call, so ``--strict`` means the same everywhere.
    """
    for item in warnings:
        if strict:
            error_line(f"{item} (a warning; --strict makes it an error)")
        else:
            err_console.print(f"[yellow]warning[/yellow]: {escape(str(item))}")
    if strict and warnings:
        raise typer.Exit(EXIT_INVALID)


def note(message: str) -> None:
    err_console.print(f"[dim]{escape(message)}[/dim]")


def write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
