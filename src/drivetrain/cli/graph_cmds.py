"""Graph commands: ``render``, ``validate``, ``verify`` and ``crd`` (graph and RLRun files)."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from drivetrain.api.enums import Deployer
from drivetrain.api.errors import FieldError, InvalidGraph
from drivetrain.cli.inputs import Input, read_input, run_objects
from drivetrain.cli.output import (
    EXIT_INVALID,
    EXIT_USAGE,
    StrictOption,
    err_console,
    error_line,
    fail_invalid,
    note,
    warn,
    write_stdout,
)

if TYPE_CHECKING:
    from drivetrain.api.loader import LoadedFile

FileOption = typer.Option(
    ...,
    "-f",
    "--file",
    help="Graph or RLRun file (YAML, several documents allowed; - reads stdin).",
)
NamespaceOption = typer.Option("default", "-n", "--namespace", help="Kubernetes namespace.")


class OutputFormat(StrEnum):
    yaml = "yaml"
    json = "json"


MultinodeOption = typer.Option(
    None,
    "--multinode",
    help="Multinode API: lws (LeaderWorkerSet) or grove (PodCliqueSet). "
    "Default: the spec's choice, else lws.",
)


def load_and_render(
    inp: Input, namespace: str, multinode: str | None
) -> tuple[LoadedFile, list[dict[str, Any]]]:
    """Load every graph of a graph file and render them all, or raise with every error: those
    of every document, a schema error beside the rules and engine errors of the same graph."""
    from drivetrain.api.loader import load_text
    from drivetrain.render import render_graph

    loaded = load_text(inp.text, inp.file, keep_going=True)
    for skipped in loaded.skipped:
        note(f"{loaded.path}: {skipped} is not a graph; passed over")
    objects: list[dict[str, Any]] = []
    errors: list[FieldError] = list(loaded.errors)
    for graph, doc in zip(loaded.graphs, loaded.documents, strict=True):
        if not graph.spec.services:
            note(f"{loaded.path}: graph {graph.name} has no services; nothing to render")
        try:
            objects += render_graph(graph, namespace=namespace, multinode=multinode)
        except InvalidGraph as exc:
            errors += [e.located(loaded.path, doc) for e in exc.errors]
    if errors:
        raise InvalidGraph(list(dict.fromkeys(errors)))
    return loaded, objects


def render_file(
    path: Path,
    namespace: str,
    multinode: str | None,
    *,
    strict: bool = False,
    children: bool = False,
) -> list[dict[str, Any]]:
    """The objects of every graph in ``path``, or of every run (its graphs as custom
    resources, ``children``: with their objects, then the Ray object); raises with every
    error, reports the warnings (``strict``: exits 1 on any)."""
    inp = read_input(path)
    if inp.runs:
        objects, _, warnings = run_objects(inp, namespace, multinode, children=children)
        warn(warnings, strict)
        return objects
    loaded, objects = load_and_render(inp, namespace, multinode)
    warn(loaded.warnings, strict)
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
        multinode: Deployer | None = MultinodeOption,
        output: OutputFormat = typer.Option(
            OutputFormat.yaml, "-o", "--output", help="yaml or json."
        ),
        strict: bool = StrictOption,
        render_children: bool = typer.Option(
            False,
            "--render-children",
            help="RLRun files: also each graph's objects, after the graph's custom resource.",
        ),
    ) -> None:
        """Render a graph into Kubernetes objects (YAML stream or a JSON array); an RLRun
        into its graphs' custom resources and its RayJob or RayCluster."""
        try:
            if render_children and not read_input(file).runs:
                error_line(
                    "--render-children applies to RLRun files (a graph file renders its "
                    "objects already)",
                    "usage",
                )
                raise typer.Exit(EXIT_USAGE)
            objects = render_file(
                file, namespace, multinode, strict=strict, children=render_children
            )
        except InvalidGraph as exc:
            fail_invalid(exc)
        if output is OutputFormat.json:
            write_stdout(json.dumps(objects, indent=2) + "\n")
        else:
            write_stdout(dump_yaml_stream(objects))

    @app.command()
    def validate(file: Path = FileOption, strict: bool = StrictOption) -> None:
        """Check a graph or RLRun file; list every error with its file, document and field path."""
        try:
            inp = read_input(file)
            if inp.runs:
                _validate_runs(inp, strict)
                return
            loaded, _ = load_and_render(inp, "default", None)
        except InvalidGraph as exc:
            fail_invalid(exc)
        warn(loaded.warnings, strict)
        names = ", ".join(g.name for g in loaded.graphs)
        err_console.print(
            f"[green]ok[/green]: {escape(loaded.path)}: {len(loaded.graphs)} graph(s) valid "
            f"({escape(names)})"
        )

    @app.command()
    def verify(
        file: Path = typer.Option(
            ...,
            "-f",
            "--file",
            help="Graphs (rendered first) and/or Kubernetes objects: Deployment, StatefulSet, Job, "
            "Pod, LeaderWorkerSet, PodCliqueSet... from any source; several documents allowed; "
            "- reads stdin.",
        ),
        namespace: str = typer.Option(
            "default", "-n", "--namespace", help="Kubernetes namespace graphs render into."
        ),
        multinode: Deployer | None = MultinodeOption,
        strict: bool = StrictOption,
    ) -> None:
        """Simulate the kubelet and the shell for every pod and rank; check the final argv."""
        from rich.console import Console

        from drivetrain.cli.verify_input import read_objects
        from drivetrain.verify import verify_manifests

        try:
            objects, warnings = read_objects(file, namespace, multinode)
        except InvalidGraph as exc:
            fail_invalid(exc)
        warn(warnings, strict)
        report = verify_manifests(objects)
        # A pipe gets the whole argv rather than a table squeezed to 80 columns.
        report.render_table(Console(width=None if sys.stdout.isatty() else 250))
        if not report.ok:
            for problem in report.problems:
                error_line(str(problem), "verify")
            raise typer.Exit(EXIT_INVALID)

    def _validate_runs(inp: Input, strict: bool) -> None:
        from drivetrain.api.rlrun_loader import load_runs_text

        run_objects(inp, "default", None, children=False)  # the renderer's errors too
        loaded = load_runs_text(inp.text, inp.file, inp.folder)
        warn(loaded.warnings, strict)
        summary = ", ".join(f"{r.name}: graphs {', '.join(r.graphs)}" for r in loaded.runs)
        err_console.print(
            f"[green]ok[/green]: {escape(inp.file)}: {len(loaded.runs)} run(s) valid "
            f"({escape(summary)})"
        )

    @app.command()
    def crd() -> None:
        """Print the GraphDeployment and RLRun CustomResourceDefinitions generated from the models."""
        from drivetrain.api.crd import crds_yaml

        write_stdout(crds_yaml())
