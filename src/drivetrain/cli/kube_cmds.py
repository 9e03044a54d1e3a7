"""Cluster commands: ``operator``, ``apply``, ``status``, ``delete`` (graphs and RLRuns).

lightkube and kopf are imported inside the commands so ``drivetrain render`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from drivetrain.api.errors import InvalidGraph
from drivetrain.api.kinds import DYNAMO_GRAPH, GRAPH, RLRUN
from drivetrain.cli.output import (
    EXIT_USAGE,
    StrictOption,
    err_console,
    fail,
    fail_invalid,
    note,
    warn,
)

NamespaceOpt = typer.Option(
    None, "-n", "--namespace", help="Namespace (default: the kubeconfig context's)."
)
DynamoOpt = typer.Option(
    False, "--dynamo", help="The graph is a DynamoGraphDeployment (nvidia.com)."
)
RLRunOpt = typer.Option(False, "--rlrun", help="The object is an RLRun (docs/rl.md).")


def _kind(dynamo: bool, rlrun: bool = False) -> str:
    if dynamo and rlrun:
        fail("--dynamo and --rlrun name different kinds; give one", EXIT_USAGE, "usage")
    if rlrun:
        return RLRUN.kind
    return DYNAMO_GRAPH.kind if dynamo else GRAPH.kind


def service_rows(status: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(service, kind/name, ready/updated/desired, message) per service, from a graph status."""
    cond: dict[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {}
    )
    message = cond.get("message", "")
    parts = [p.strip() for p in message.removeprefix("not ready: ").split(";")]
    rows = []
    for svc, s in sorted((status.get("services") or {}).items()):
        child = f"{s.get('componentKind')} {s.get('componentName')}"
        why = next((p.split(": ", 1)[1] for p in parts if p.startswith(child + ":")), "ready")
        counts = f"{s.get('readyReplicas', 0)}/{s.get('updatedReplicas', 0)}/{s.get('replicas', 0)}"
        rows.append((svc, s.get("componentKind", ""), s.get("componentName", ""), counts, why))
    return rows


def _report(line: str) -> None:
    err_console.print(line, markup=False)


def _wait(client: Any, applied: list[tuple[str, str, str]], timeout: float | None) -> None:
    """``apply --wait``: exit 1 naming what failed or what was still awaited."""
    import asyncio

    from drivetrain.kube.client import async_client
    from drivetrain.kube.wait import DEFAULT_GRAPH_TIMEOUT_S, wait_for_graphs, wait_for_run

    runs = [a for a in applied if a[0] == RLRUN.kind]
    graphs = [a for a in applied if a[0] != RLRUN.kind]
    if graphs:

        async def graphs_ready() -> Any:
            client = async_client()
            try:
                limit = DEFAULT_GRAPH_TIMEOUT_S if timeout is None else timeout
                return await wait_for_graphs(client, graphs, limit, _report)
            finally:
                await client.close()

        outcome = asyncio.run(graphs_ready())
        if not outcome.ok:
            fail(outcome.message)
    for _, name, ns in runs:
        outcome = wait_for_run(client, name, ns, timeout, _report)
        if not outcome.ok:
            fail(f"RLRun {ns}/{name} failed: {outcome.message}")


def register(app: typer.Typer) -> None:
    @app.command()
    def operator(
        namespace: list[str] = typer.Option(
            [], "-n", "--namespace", help="Watch only this namespace (repeatable; default all)."
        ),
        claim_dynamo: bool = typer.Option(
            False, "--claim-dynamo", help="Also reconcile DynamoGraphDeployments (nvidia.com)."
        ),
        liveness: str | None = typer.Option(
            None, "--liveness", help="Serve a health endpoint, e.g. http://0.0.0.0:8080/healthz."
        ),
    ) -> None:
        """Run the operator: reconcile GraphDeployments in the cluster until stopped."""
        import asyncio
        import logging

        from drivetrain.kube.errors import KubeError
        from drivetrain.operator.handlers import run

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        try:
            asyncio.run(run(list(namespace), claim_dynamo, liveness))
        except KubeError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            pass

    @app.command()
    def apply(
        file: Path = typer.Option(
            ..., "-f", "--file", help="Graph or RLRun file (YAML; - reads stdin)."
        ),
        namespace: str | None = NamespaceOpt,
        wait: bool = typer.Option(
            False,
            "--wait",
            help="Wait: graphs until they pass their readiness gates, an RLRun until it "
            "succeeds (raycluster mode: runs); exit 1 on a failure or the timeout.",
        ),
        timeout: float | None = typer.Option(
            None,
            "--timeout",
            min=0,
            help="Seconds --wait waits (default: 600 for graphs, no limit for a run).",
        ),
        strict: bool = StrictOption,
    ) -> None:
        """Validate a graph or RLRun file and server-side apply every graph or run in it (the
        other documents of a graph file are left to you: the operator renders a graph from its
        spec alone)."""
        from drivetrain.api.loader import load_text
        from drivetrain.api.rlrun_loader import load_runs_text
        from drivetrain.cli.inputs import read_input
        from drivetrain.kube.errors import KubeError
        from drivetrain.kube.graphs import apply_graph, client_for

        try:
            inp = read_input(file)
            if inp.runs:
                loaded_runs = load_runs_text(inp.text, inp.file, inp.folder)
                warn(loaded_runs.warnings, strict)
                documents = [r.applied for r in loaded_runs.runs]
            else:
                loaded = load_text(inp.text, inp.file)
                warn(loaded.warnings, strict)
                documents = loaded.sources
                for sibling in loaded.siblings:
                    # Not applied on purpose (docs/rendering.md): owned by the graph, a Secret or
                    # PVC that other graphs share, or that holds a model cache, would go with it.
                    note(
                        f"{loaded.path}: {sibling.describe()} is not a graph; not applied "
                        "(create it yourself, e.g. kubectl apply -f on this file)"
                    )
        except InvalidGraph as exc:
            fail_invalid(exc)
        try:
            client = client_for(namespace)
            applied = []
            for source in documents:
                obj = apply_graph(client, source, namespace)
                meta = obj["metadata"]
                applied.append((obj["kind"], meta["name"], meta["namespace"]))
                err_console.print(
                    f"{obj['kind']} {meta['namespace']}/{meta['name']} applied", markup=False
                )
            if wait:
                _wait(client, applied, timeout)
        except KubeError as exc:
            fail(str(exc))

    @app.command()
    def status(
        name: str = typer.Argument(..., help="Graph (or, with --rlrun, RLRun) name."),
        namespace: str | None = NamespaceOpt,
        dynamo: bool = DynamoOpt,
        rlrun: bool = RLRunOpt,
    ) -> None:
        """Show a graph's state and a table per service: kind, ready/updated/desired, message;
        with --rlrun a run's phase, its graphs and Ray objects, and the frontend URLs."""
        from rich.console import Console
        from rich.table import Table

        from drivetrain.kube.errors import KubeError
        from drivetrain.kube.graphs import client_for, get_graph

        kind = _kind(dynamo, rlrun)
        try:
            graph = get_graph(client_for(namespace), name, namespace, kind)
        except KubeError as exc:
            fail(str(exc))
        if rlrun:
            from drivetrain.cli.run_status import print_run

            print_run(graph)
            return
        st = graph.get("status") or {}
        console = Console(highlight=False, soft_wrap=True)
        cond: dict[str, Any] = next(
            (c for c in st.get("conditions") or [] if c.get("type") == "Ready"), {}
        )
        stale = st.get("observedGeneration") != graph["metadata"].get("generation")
        state = st.get("state", "not reconciled yet")
        console.print(
            f"{graph['kind']} {graph['metadata']['namespace']}/{name}: {state}"
            + (" (status is for an older generation)" if stale and st else ""),
            markup=False,
        )
        if cond:
            console.print(
                f"Ready={cond.get('status')} {cond.get('reason')}: {cond.get('message')}",
                markup=False,
            )
        table = Table("SERVICE", "KIND", "NAME", "READY/UPDATED/DESIRED", "MESSAGE")
        for row in service_rows(st):
            table.add_row(*row)
        if table.rows:
            console.print(table)

    @app.command()
    def delete(
        name: str = typer.Argument(..., help="Graph (or, with --rlrun, RLRun) name."),
        namespace: str | None = NamespaceOpt,
        dynamo: bool = DynamoOpt,
        rlrun: bool = RLRunOpt,
    ) -> None:
        """Delete a graph or a run; the cluster's garbage collector removes what they own."""
        from drivetrain.kube.errors import KubeError
        from drivetrain.kube.graphs import client_for, delete_graph

        kind = _kind(dynamo, rlrun)
        try:
            delete_graph(client_for(namespace), name, namespace, kind)
        except KubeError as exc:
            fail(str(exc))
        err_console.print(f"{kind} {name} deleted", markup=False)
