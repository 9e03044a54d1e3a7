"""Graph commands: ``render``, ``validate``, ``verify`` and ``crd``."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from drivetrain.api.errors import FieldError, InvalidGraph
from drivetrain.cli.output import EXIT_INVALID, err_console, fail_invalid, note, write_stdout

FileOption = typer.Option(..., "-f", "--file", help="Graph file (YAML, several documents allowed).")
NamespaceOption = typer.Option("default", "-n", "--namespace", help="Kubernetes namespace.")


class MultinodeChoice(StrEnum):
    lws = "lws"
    grove = "grove"


class OutputFormat(StrEnum):
    yaml = "yaml"
    json = "json"


MultinodeOption = typer.Option(
    None,
    "--multinode",
    help="Multinode API: lws (LeaderWorkerSet) or grove (PodCliqueSet). "
    "Default: the spec's choice, else lws.",
)


def render_file(path: Path, namespace: str, multinode: str | None) -> list[dict[str, Any]]:
    """Load every graph in ``path`` and render them all, or raise with every error."""
    from drivetrain.api.loader import load_file
    from drivetrain.render import render_graph

    loaded = load_file(path)
    for skipped in loaded.skipped:
        note(f"{path}: {skipped} is not a graph; passed over")
    objects: list[dict[str, Any]] = []
    errors: list[FieldError] = []
    for graph, doc in zip(loaded.graphs, loaded.documents, strict=True):
        if not graph.spec.services:
            note(f"{path}: graph {graph.name} has no services; nothing to render")
        try:
            objects += render_graph(graph, namespace=namespace, multinode=multinode)
        except InvalidGraph as exc:
            errors += [e.located(str(path), doc) for e in exc.errors]
    if errors:
        raise InvalidGraph(errors)
    return objects


def dump_yaml_stream(objects: list[dict[str, Any]]) -> str:
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return "".join(
        "---\n" + yaml.dump(obj, Dumper=dumper, sort_keys=False, width=1000) for obj in objects
    )


def register(app: typer.Typer) -> None:
    @app.command()
    def render(
        file: Path = FileOption,
        namespace: str = NamespaceOption,
        multinode: MultinodeChoice | None = MultinodeOption,
        output: OutputFormat = typer.Option(
            OutputFormat.yaml, "-o", "--output", help="yaml or json."
        ),
    ) -> None:
        """Render a graph into Kubernetes objects (YAML stream or a JSON array)."""
        try:
            objects = render_file(file, namespace, multinode.value if multinode else None)
        except InvalidGraph as exc:
            fail_invalid(exc)
        if output is OutputFormat.json:
            write_stdout(json.dumps(objects, indent=2) + "\n")
        else:
            write_stdout(dump_yaml_stream(objects))

    @app.command()
    def validate(file: Path = FileOption) -> None:
        """Check a graph file; list every error with its file, document and field path."""
        from drivetrain.api.loader import load_file

        try:
            loaded = load_file(file)
            render_file(file, "default", None)
        except InvalidGraph as exc:
            fail_invalid(exc)
        names = ", ".join(g.name for g in loaded.graphs)
        err_console.print(
            f"[green]ok[/green]: {file}: {len(loaded.graphs)} graph(s) valid ({names})"
        )

    @app.command()
    def verify(
        file: Path = typer.Option(
            ...,
            "-f",
            "--file",
            help="Graphs (rendered first) and/or Kubernetes objects: Deployment, StatefulSet, Job, "
            "Pod, LeaderWorkerSet, PodCliqueSet... from any source; several documents allowed.",
        ),
        namespace: str = typer.Option(
            "default", "-n", "--namespace", help="Kubernetes namespace graphs render into."
        ),
        multinode: MultinodeChoice | None = MultinodeOption,
    ) -> None:
        """Simulate the kubelet and the shell for every pod and rank; check the final argv."""
        from rich.console import Console
        from rich.markup import escape

        from drivetrain.cli.verify_input import read_objects
        from drivetrain.verify import verify_manifests

        try:
            objects = read_objects(file, namespace, multinode.value if multinode else None)
        except InvalidGraph as exc:
            fail_invalid(exc)
        report = verify_manifests(objects)
        # A pipe gets the whole argv rather than a table squeezed to 80 columns.
        report.render_table(Console(width=None if sys.stdout.isatty() else 250))
        if not report.ok:
            for problem in report.problems:
                # escape: a token such as [[ -f x ]] or env[name] would read as rich markup
                err_console.print(f"[red]verify[/red]: {escape(str(problem))}")
            raise typer.Exit(EXIT_INVALID)

    @app.command()
    def crd() -> None:
        """Print the GraphDeployment CustomResourceDefinition generated from the models."""
        from drivetrain.api.crd import graph_crd_yaml

        write_stdout(graph_crd_yaml())
