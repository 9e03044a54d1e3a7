"""Shared CLI output: errors to stderr in one consistent form, and exit codes."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.console import Console

from drivetrain.api.errors import InvalidGraph

#: Exit codes: 0 ok, 1 invalid input or failed verification, 2 usage (typer's own).
EXIT_INVALID = 1

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def fail_invalid(exc: InvalidGraph) -> NoReturn:
    count = len(exc.errors)
    for error in exc.errors:
        err_console.print(f"[red]error[/red]: {error}", markup=True, highlight=False)
    if count > 1:
        err_console.print(f"{count} errors")
    raise typer.Exit(EXIT_INVALID)


def note(message: str) -> None:
    err_console.print(f"[dim]{message}[/dim]")


def write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
