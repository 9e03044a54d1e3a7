"""Cluster commands: ``operator``, ``apply``, ``status``, ``delete``.

lightkube and kopf are imported inside the commands so ``drivetrain render`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from drivetrain.api.errors import InvalidGraph
from drivetrain.api.kinds import DYNAMO_GRAPH, GRAPH
from drivetrain.cli.output import err_console, fail, fail_invalid, note

NamespaceOpt = typer.Option(
    None, "-n", "--namespace", help="Namespace (default: the kubeconfig context's)."
)
DynamoOpt = typer.Option(
    False, "--dynamo", help="The graph is a DynamoGraphDeployment (nvidia.com)."
)


def _kind(dynamo: bool) -> str:
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
        file: Path = typer.Option(..., "-f", "--file", help="Graph file (YAML; - reads stdin)."),
        namespace: str | None = NamespaceOpt,
    ) -> None:
        """Validate a graph file and server-side apply every graph in it (the other documents
        of the file are left to you: the operator renders a graph from its spec alone)."""
        from drivetrain.api.loader import load_file
        from drivetrain.kube.errors import KubeError
        from drivetrain.kube.graphs import apply_graph, client_for

        try:
            loaded = load_file(file)
        except InvalidGraph as exc:
            fail_invalid(exc)
        for sibling in loaded.siblings:
            # Not applied on purpose (docs/rendering.md): owned by the graph, a Secret or PVC
            # that other graphs share, or that holds a model cache, would go with it.
            note(
                f"{loaded.path}: {sibling.describe()} is not a graph; not applied (create it "
                "yourself, e.g. kubectl apply -f on this file)"
            )
        try:
            client = client_for(namespace)
            for source in loaded.sources:
                applied = apply_graph(client, source, namespace)
                meta = applied["metadata"]
                err_console.print(
                    f"{applied['kind']} {meta['namespace']}/{meta['name']} applied", markup=False
                )
        except KubeError as exc:
            fail(str(exc))

    @app.command()
    def status(
        name: str = typer.Argument(..., help="Graph name."),
        namespace: str | None = NamespaceOpt,
        dynamo: bool = DynamoOpt,
    ) -> None:
        """Show a graph's state and a table per service: kind, ready/updated/desired, message."""
        from rich.console import Console
        from rich.table import Table

        from drivetrain.kube.errors import KubeError
        from drivetrain.kube.graphs import client_for, get_graph

        try:
            graph = get_graph(client_for(namespace), name, namespace, _kind(dynamo))
        except KubeError as exc:
            fail(str(exc))
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
        name: str = typer.Argument(..., help="Graph name."),
        namespace: str | None = NamespaceOpt,
        dynamo: bool = DynamoOpt,
    ) -> None:
        """Delete a graph; the cluster's garbage collector removes its children."""
        from drivetrain.kube.errors import KubeError
        from drivetrain.kube.graphs import client_for, delete_graph

        try:
            delete_graph(client_for(namespace), name, namespace, _kind(dynamo))
        except KubeError as exc:
            fail(str(exc))
        err_console.print(f"{_kind(dynamo)} {name} deleted", markup=False)
