"""The result of a verification: each process's final argv, and what is wrong with them."""

from __future__ import annotations

import shlex
from typing import Literal

from pydantic import BaseModel, Field
from rich.console import Console
from rich.table import Table
from rich.text import Text


class Process(BaseModel):
    """One process as it would start in a pod: its final argv after the kubelet and the shell."""

    workload: str
    role: str
    rank: int | None = Field(None, description="node rank in a multinode group; None if single")
    pod: str
    container: str
    init: bool = False
    #: an init container with ``restartPolicy: Always`` (a native sidecar: it keeps running)
    sidecar: bool = False
    source: Literal["exec", "shell"]
    argv: list[str]
    env: dict[str, str] = Field(
        default_factory=dict, description="env that carries a leader address (LEADER_HOST...)"
    )


class Problem(BaseModel):
    """A reason the workload would not start as intended."""

    workload: str
    pod: str
    container: str
    token: str
    message: str
    rank: int | None = Field(default=None, description="the process's rank in its group")

    def __str__(self) -> str:
        where = f"{self.workload} pod {self.pod}"
        if self.rank is not None:
            where += f" (rank {self.rank})"
        if self.container:
            where += f" container {self.container}"
        return f"{where}: {self.message}: {self.token!r}"


class Skipped(BaseModel):
    """An object verify did not simulate, and why (a Service has no pods; an unknown kind)."""

    object: str = Field(description="Kind/name")
    reason: str

    def __str__(self) -> str:
        return f"{self.object} ({self.reason})"


class VerifyReport(BaseModel):
    processes: list[Process] = Field(default_factory=list)
    problems: list[Problem] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    not_simulated: list[Skipped] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def render_table(self, console: Console) -> None:
        """Print the final argv of every process, per workload, role and rank."""
        table = Table(title="final argv per role and rank", show_lines=False, expand=False)
        for column in ("workload", "role", "rank", "pod", "container"):
            table.add_column(column, no_wrap=True)
        table.add_column("argv", overflow="fold")
        for p in self.processes:
            container = (
                f"{p.container} (sidecar)"
                if p.sidecar
                else f"{p.container} (init)"
                if p.init
                else p.container
            )
            rank = "-" if p.rank is None else str(p.rank)
            # Text, not markup: argv often holds '[' (shell tests, JSON) that rich would eat.
            cells = (p.workload, p.role, rank, p.pod, container, shlex.join(p.argv))
            table.add_row(*(Text(c) for c in cells))
        console.print(table)
        for warning in self.warnings:
            console.print(Text("warning: ", style="yellow") + Text(warning))
        if self.not_simulated:
            skipped = ", ".join(str(s) for s in self.not_simulated)
            console.print(Text("not simulated: ", style="dim") + Text(skipped))
        verdict = "[green]ok[/green]" if self.ok else f"[red]{len(self.problems)} problem(s)[/red]"
        console.print(f"verify: {len(self.processes)} process(es), {verdict}")
