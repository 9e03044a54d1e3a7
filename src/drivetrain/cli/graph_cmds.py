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
from drivetrain.api.errors import InvalidGraph
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


GraphsOnlyOption = typer.Option(
    False,
    "--graphs-only",
    help="Render only the graphs; pass over the other documents of the file (ConfigMaps, "
    "PVCs... written beside a graph), whose objects then count as external.",
)


def load_and_render(
    inp: Input,
    namespace: str,
    multinode: str | None,
    *,
    graphs_only: bool = False,
    check_namespaces: bool = True,
) -> tuple[LoadedFile, list[dict[str, Any]]]:
    """Load every graph of a graph file and render them all with the documents beside them
    (``render/siblings.py``), or raise with every error: those of every document, a schema
    error beside the rules and engine errors of the same graph."""
    from drivetrain.api.loader import load_text
    from drivetrain.render.siblings import render_documents

    loaded = load_text(inp.text, inp.file, keep_going=True)
    if graphs_only:
        for sibling in loaded.siblings:
            note(f"{loaded.path}: {sibling.describe()} is not a graph; passed over (--graphs-only)")
    for graph in loaded.graphs:
        if not graph.spec.services:
            note(f"{loaded.path}: graph {graph.name} has no services; nothing to render")
    objects = render_documents(
        loaded,
        namespace=namespace,
        multinode=multinode,
        graphs_only=graphs_only,
        check_namespaces=check_namespaces,
    )
    return loaded, objects


def render_file(
    path: Path,
    namespace: str,
    multinode: str | None,
    *,
    strict: bool = False,
    children: bool = False,
) -> list[dict[str, Any]]:
    """The objects of every graph in ``path`` and of the documents beside them, or of every
    run (its graphs as custom resources, ``children``: with their objects, then the Ray
    object); raises with every error, reports the warnings (``strict``: exits 1 on any) and
    the placeholders."""
    inp = read_input(path)
    if inp.runs:
        objects, _, warnings = run_objects(inp, namespace, multinode, children=children)
        warn(warnings, strict)
        return objects
    loaded, objects = load_and_render(inp, namespace, multinode)
    warn(loaded.warnings, strict)
    note_placeholders(loaded, objects)
    return objects


def note_placeholders(loaded: LoadedFile, objects: list[dict[str, Any]]) -> None:
    """One stderr line per placeholder object (the MPI SSH Secret): what to do instead."""
    from drivetrain.render.companions import placeholder_note

    for obj in objects:
        said = placeholder_note(obj)
        if said:
            note(f"{loaded.path}: {obj['kind']} {obj['metadata']['name']} is a placeholder: {said}")


def print_external(loaded: LoadedFile, objects: list[dict[str, Any]], namespace: str) -> None:
    """One stderr line per external reference: what it is, who uses it, how to create it."""
    from drivetrain.podrefs import object_token
    from drivetrain.render.external import external_lines

    passed_over = {object_token(s.obj): f"{loaded.path} {s.where}" for s in loaded.siblings}
    for line in external_lines(objects, namespace, passed_over):
        err_console.print(f"[cyan]external[/cyan]: {escape(line)}")


def dump_yaml_stream(objects: list[dict[str, Any]]) -> str:
    """A YAML stream; a placeholder object is preceded by comment lines saying what to do."""
    import textwrap

    import yaml

    from drivetrain.render.companions import HOW, placeholder_note

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    out = []
    for obj in objects:
        out.append("---\n")
        said = placeholder_note(obj)
        if said:
            why, _, command = said.partition(HOW)
            lines = textwrap.wrap(f"PLACEHOLDER: {why}", 96, break_on_hyphens=False)
            if command:  # on a line of its own, to copy as it is
                lines += [HOW.strip(), command]
            out.append("".join(f"# {line}\n" for line in lines))
        out.append(yaml.dump(obj, Dumper=dumper, sort_keys=False, width=1000))
    return "".join(out)


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
        graphs_only: bool = GraphsOnlyOption,
        render_children: bool = typer.Option(
            False,
            "--render-children",
            help="RLRun files: also each graph's objects, after the graph's custom resource.",
        ),
    ) -> None:
        """Render a graph into Kubernetes objects (YAML stream or a JSON array), with the
        documents written beside it, saying on stderr what the user must create; an RLRun into
        its graphs' custom resources and its RayJob or RayCluster."""
        loaded: LoadedFile | None = None
        try:
            inp = read_input(file)
            if render_children and not inp.runs:
                error_line(
                    "--render-children applies to RLRun files (a graph file renders its "
                    "objects already)",
                    "usage",
                )
                raise typer.Exit(EXIT_USAGE)
            if inp.runs:
                objects, _, warnings = run_objects(
                    inp, namespace, multinode, children=render_children
                )
            else:
                loaded, objects = load_and_render(
                    inp, namespace, multinode, graphs_only=graphs_only
                )
                warnings = loaded.warnings
        except InvalidGraph as exc:
            fail_invalid(exc)
        warn(warnings, strict)
        if loaded is not None:
            note_placeholders(loaded, objects)
            print_external(loaded, objects, namespace)
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
            # No namespace is rendered into: the documents' own are not checked.
            loaded, _ = load_and_render(inp, "default", None, check_namespaces=False)
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
        report = verify_manifests(objects)
        warn([*warnings, *report.reference_warnings], strict)
        # A pipe gets the whole argv rather than a table squeezed to 80 columns.
        report.render_table(Console(width=None if sys.stdout.isatty() else 250))
        warn(report.contract_warnings, strict)
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
