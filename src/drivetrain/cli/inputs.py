"""What a ``-f FILE`` holds: graphs, or RLRuns (docs/rl.md); read once, so ``-`` works too.

Every command that takes a graph file also takes a run file: a file whose documents are
``RLRun``s is read with ``api.rlrun_loader`` (manifests relative to the file), anything else as
graphs.  ``run_objects`` renders runs for ``render``, ``validate`` and ``verify``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivetrain.api.errors import FieldError, InvalidGraph
from drivetrain.api.loader import STDIN_NAME, parse_yaml_documents, read_text


@dataclass(frozen=True)
class Input:
    text: str
    #: the file's name in messages (``<stdin>`` for ``-``)
    file: str
    #: where relative paths in it are read (the file's folder; the current one for stdin)
    folder: Path
    #: its documents are RLRuns
    runs: bool


def read_input(path: Path) -> Input:
    """Read ``path`` (``-``: stdin) and tell runs from graphs; ``InvalidGraph`` if unreadable."""
    from drivetrain.api.rlrun_loader import holds_runs

    text, file = read_text(path)
    folder = Path.cwd() if file == STDIN_NAME else Path(path).resolve().parent
    return Input(text, file, folder, holds_runs(parse_yaml_documents(text, file)))


def run_objects(
    inp: Input, namespace: str, multinode: str | None, *, children: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[FieldError]]:
    """The runs of ``inp`` rendered: (every object in order, the graphs' children only, the
    warnings); ``InvalidGraph`` with every error, the renderer's included (each graph's
    children are always rendered, so an engine error shows whatever is printed)."""
    from drivetrain.api.rlrun_loader import load_runs_text
    from drivetrain.api.rlrun_validate import locate_graph_error
    from drivetrain.render import render_graph
    from drivetrain.render.rlrun import RenderedRun, render_run

    loaded = load_runs_text(inp.text, inp.file, inp.folder)
    objects: list[dict[str, Any]] = []
    made: list[dict[str, Any]] = []
    errors: list[FieldError] = []
    for run in loaded.runs:
        by_key: dict[str, list[dict[str, Any]]] = {}
        for key, graph in run.graphs.items():
            try:
                by_key[key] = render_graph(graph.graph, namespace=namespace, multinode=multinode)
            except InvalidGraph as exc:
                errors += [
                    locate_graph_error(e, key, graph.source).located(run.file, run.document)
                    for e in exc.errors
                ]
        if not errors:
            rendered = render_run(run.run, run.graphs, namespace=namespace)
            made += [o for key in by_key for o in by_key[key]]
            whole = RenderedRun(
                rendered.graphs, rendered.ray, by_key if children else {}, rendered.secret
            )
            objects += whole.objects()
    if errors:
        raise InvalidGraph(list(dict.fromkeys(errors)))
    return objects, made, loaded.warnings
