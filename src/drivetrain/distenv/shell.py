"""Shell-facing pieces: the shipped POSIX script and ``export`` lines that sh reads back."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path

SCRIPT_NAME = "distenv.sh"


def script_path() -> Path:
    """The POSIX sh version of the derivation (package data)."""
    return Path(str(resources.files("drivetrain.distenv").joinpath(SCRIPT_NAME)))


def script_text() -> str:
    return resources.files("drivetrain.distenv").joinpath(SCRIPT_NAME).read_text("utf-8")


def sh_quote(value: str) -> str:
    """Always single-quoted, ``'`` as ``'\\''``: the form the sh script prints too, so both
    ``--print`` outputs are byte for byte the same."""
    return "'" + value.replace("'", "'\\''") + "'"


def export_lines(variables: Mapping[str, str]) -> str:
    return "".join(f"export {name}={sh_quote(value)}\n" for name, value in variables.items())
