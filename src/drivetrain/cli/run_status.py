"""``drivetrain status NAME --rlrun``: a run's phase, its graphs and Ray objects, its frontends."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def print_run(run: dict[str, Any]) -> None:
    st = run.get("status") or {}
    meta = run["metadata"]
    console = Console(highlight=False, soft_wrap=True)
    stale = st and st.get("observedGeneration") != meta.get("generation")
    phase = st.get("phase") or "Pending (not reconciled yet)"
    console.print(
        f"RLRun {meta['namespace']}/{meta['name']}: {phase}"
        + (" (status is for an older generation)" if stale else ""),
        markup=False,
    )
    if st.get("message"):
        console.print(f"{st.get('reason', '')}: {st['message']}", markup=False)
    graphs = Table("GRAPH", "KIND", "NAME", "STATE", "GATES", "MESSAGE")
    urls = []
    for key, g in sorted((st.get("graphs") or {}).items()):
        gates = "passed" if g.get("ready") else (g.get("gate") or "-")
        message = g.get("message", "")
        graphs.add_row(
            key, g.get("kind", ""), g.get("name", ""), g.get("state") or "-", gates, message
        )
        if g.get("frontendURL"):
            urls.append(f"{key}: {g['frontendURL']}")
    if graphs.rows:
        console.print(graphs)
    ray = Table("RAY", "NAME", "STATUS")
    job = st.get("rayJob")
    if job:
        state = "suspended" if job.get("suspended") else "released"
        detail = " / ".join(x for x in (job.get("jobDeploymentStatus"), job.get("jobStatus")) if x)
        ray.add_row("RayJob", job.get("name", ""), f"{state}" + (f": {detail}" if detail else ""))
    cluster = st.get("rayCluster") or {}
    if cluster.get("name"):
        ray.add_row("RayCluster", cluster["name"], cluster.get("state") or "-")
    if ray.rows:
        console.print(ray)
    for line in urls:
        console.print(f"frontend {line}", markup=False)
