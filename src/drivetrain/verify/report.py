"""The result of a verification: each process's final argv, and what is wrong with them."""

from __future__ import annotations

import shlex
from typing import Literal

from pydantic import BaseModel, Field
from rich.console import Console
from rich.table import Table
from rich.text import Text

from drivetrain.verify.discovery import PodDiscovery


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


class ReferenceWarning(BaseModel):
    """A Secret or ConfigMap a pod reads that nobody is known to create, or a key it lacks."""

    workload: str
    pod: str
    reference: str = Field(description="secret/<name> or configmap/<name>")
    where: str = Field(description="where the pod spec reads it: container main envFrom...")
    message: str

    def __str__(self) -> str:
        return f"{self.workload} pod {self.pod} ({self.where}): {self.message}"


class VerifyReport(BaseModel):
    processes: list[Process] = Field(default_factory=list)
    problems: list[Problem] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    #: Secrets and ConfigMaps read but neither verified nor declared external
    #: (``verify/references.py``); the CLI reports them as warnings, errors with ``--strict``.
    reference_warnings: list[ReferenceWarning] = Field(default_factory=list)
    not_simulated: list[Skipped] = Field(default_factory=list)
    #: the pods whose runtime discovers through the API server, and what their mode lacks
    discovery: list[PodDiscovery] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def contract_warnings(self) -> list[str]:
        """What the discovery contract lacks, one line each (``--strict`` makes them errors)."""
        return [w for d in self.discovery for w in d.warnings()]

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
        if self.discovery:
            console.print(self._discovery_table())
        for warning in self.warnings:
            console.print(Text("warning: ", style="yellow") + Text(warning))
        if self.not_simulated:
            skipped = ", ".join(str(s) for s in self.not_simulated)
            console.print(Text("not simulated: ", style="dim") + Text(skipped))
        verdict = "[green]ok[/green]" if self.ok else f"[red]{len(self.problems)} problem(s)[/red]"
        lacking = sum(not d.ok for d in self.discovery)
        if lacking:
            verdict += f", [yellow]{lacking} pod(s) lack what their discovery needs[/yellow]"
        console.print(f"verify: {len(self.processes)} process(es), {verdict}")

    def _discovery_table(self) -> Table:
        table = Table(title="discovery per pod", show_lines=False, expand=False)
        for column in ("workload", "pod", "discovery", "service account"):
            table.add_column(column, no_wrap=True)
        table.add_column("in the manifests", overflow="fold")
        for d in self.discovery:
            status = (
                Text("ok", style="green")
                if d.ok
                else Text(f"{len(d.missing)} missing", style="yellow")
            )
            table.add_row(
                Text(d.workload), Text(d.pod), Text(d.mode), Text(d.service_account), status
            )
        return table
