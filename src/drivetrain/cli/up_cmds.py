"""Commands of this topic are registered here (see cli/main.py)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this topic's commands to ``app``."""
