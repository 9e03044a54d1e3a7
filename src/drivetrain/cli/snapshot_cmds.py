"""``drivetrain snapshot``: the in-pod checkpoint/restore agent (docs/snapshot.md).

Prints the result as ``key=value`` lines on stdout (the keys of Dynamo's ``snapshotctl``);
refusals and failures are one line on stderr and exit 1, usage errors exit 2.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from drivetrain import snapshot_protocol
from drivetrain.cli.output import EXIT_USAGE, error_line, fail

if TYPE_CHECKING:
    from drivetrain.snapshot.agent import Outcome
    from drivetrain.snapshot.annotations import AnnotationSink
    from drivetrain.snapshot.manifest import Pod
    from drivetrain.snapshot.podapi import PodApi
    from drivetrain.snapshot.tools import Tools

app = typer.Typer(
    help="The in-pod checkpoint/restore agent: target containers, control-folder sentinels, "
    "per-container status annotations (docs/snapshot.md).",
    no_args_is_help=True,
)

ANNOTATIONS_HELP = (
    "Where the status annotations go: kube (patch the pod through the API), stdout or "
    "file:PATH (key=value lines); auto: kube in a pod or with --pod, else stdout."
)
CONTROL_ROOT_HELP = (
    "The control volume's root as this agent mounts it (no subPath); each target container's "
    "folder is its subPath below it."
)
STORAGE_HELP = (
    "Checkpoint storage base folder (default: the pod's "
    f"{snapshot_protocol.STORAGE_BASE_PATH_ANNOTATION} annotation)."
)


def _check_annotations(mode: str) -> None:
    if mode not in ("auto", "kube", "stdout") and not (
        mode.startswith("file:") and len(mode) > len("file:")
    ):
        fail(f"--annotations: expected auto, kube, stdout or file:PATH, got {mode!r}", EXIT_USAGE)


def _sink(
    mode: str, pod: Pod, namespace: str | None, api: PodApi | None
) -> tuple[AnnotationSink, PodApi | None]:
    """The sink ``mode`` names, and the API client it uses (``api``, or one it opened)."""
    from drivetrain.runtime.discovery import in_cluster
    from drivetrain.snapshot.annotations import FileAnnotations, PodAnnotations, PrintedAnnotations
    from drivetrain.snapshot.errors import SnapshotError
    from drivetrain.snapshot.podapi import PodApi

    if mode == "auto":
        mode = "kube" if api is not None or in_cluster() else "stdout"
    if mode == "stdout":
        return PrintedAnnotations(sys.stdout), api
    if mode.startswith("file:"):
        return FileAnnotations(Path(mode.removeprefix("file:"))), api
    if pod.name is None:
        raise SnapshotError(f"{pod.source}: metadata.name: required to annotate the pod")
    api = api or PodApi()
    return PodAnnotations(api, namespace or api.default_namespace, pod.name), api


def _print(outcome: Outcome) -> None:
    for key, value in outcome.summary.items():
        sys.stdout.write(f"{key}={value}\n")
    sys.stdout.flush()


def _run(body: Callable[[], Coroutine[object, object, Outcome]]) -> None:
    """Run the operation; its summary on stdout; a refusal or failure on stderr, exit 1."""
    from drivetrain.snapshot.errors import SnapshotError

    try:
        outcome = asyncio.run(body())
    except SnapshotError as exc:
        fail(str(exc))
    _print(outcome)
    if outcome.errors:
        for error in outcome.errors:
            error_line(error)
        raise typer.Exit(1)


def _tools(checkpoint_command: str | None, restore_command: str | None) -> Tools:
    from drivetrain.snapshot.tools import CommandTools, CriuTools

    if checkpoint_command is None and restore_command is None:
        return CriuTools()
    return CommandTools(checkpoint_command, restore_command)


@app.command()
def checkpoint(
    manifest: Path = typer.Option(..., "--manifest", help="The Pod manifest (YAML or JSON)."),
    container: str | None = typer.Option(
        None,
        "--container",
        help=f"The container to checkpoint (or the pod's {snapshot_protocol.TARGET_CONTAINERS_ANNOTATION}).",
    ),
    checkpoint_id: str | None = typer.Option(
        None,
        "--checkpoint-id",
        help=f"Default: the pod's {snapshot_protocol.CHECKPOINT_ID_LABEL} label, else generated.",
    ),
    storage: Path | None = typer.Option(None, "--storage", help=STORAGE_HELP),
    control_root: Path = typer.Option(
        Path(snapshot_protocol.CONTROL_DIR), "--control-root", help=CONTROL_ROOT_HELP
    ),
    namespace: str | None = typer.Option(
        None, "--namespace", help="The pod's namespace (default: the manifest's, else the API's)."
    ),
    pid: int | None = typer.Option(
        None, "--pid", help="The process to checkpoint (default: the PID in ready-for-snapshot)."
    ),
    timeout: float = typer.Option(
        2700.0, "--timeout", help="Seconds to wait for the workload's ready-for-snapshot."
    ),
    annotations: str = typer.Option("auto", "--annotations", help=ANNOTATIONS_HELP),
    checkpoint_command: str | None = typer.Option(
        None,
        "--checkpoint-command",
        help="The checkpoint step as one command line with {container} {pid} {images} "
        "{control} {checkpoint_id} (default: criu, and cuda-checkpoint when installed).",
    ),
) -> None:
    """Checkpoint one container of a pod once its workload is ready for it."""
    if timeout <= 0:
        fail(f"--timeout: expected seconds > 0, got {timeout:g}", EXIT_USAGE)
    if pid is not None and pid <= 0:
        fail(f"--pid: expected a process id, got {pid}", EXIT_USAGE)
    _check_annotations(annotations)

    async def body() -> Outcome:
        from drivetrain.snapshot import agent
        from drivetrain.snapshot import manifest as manifests
        from drivetrain.snapshot.targets import resolve_targets

        tools = _tools(checkpoint_command, None)  # a bad command line is refused first
        pod = manifests.load_manifest(manifest)
        names = resolve_targets(
            container, "--container", pod.annotations, pod.source, at_least=1, at_most=1
        )
        (target,) = manifests.resolve(pod, names)
        where = namespace or pod.namespace
        sink, api = _sink(annotations, pod, where, None)
        opts = agent.Options(control_root, storage, checkpoint_id, timeout, pid)
        try:
            return await agent.checkpoint(pod, target, opts, tools, sink, where)
        finally:
            if api is not None:
                await api.close()

    _run(body)


@app.command()
def restore(
    manifest: Path | None = typer.Option(None, "--manifest", help="The Pod manifest."),
    pod_name: str | None = typer.Option(None, "--pod", help="A pod read through the API."),
    containers: str | None = typer.Option(
        None,
        "--containers",
        help="Comma list of the containers to restore (or the pod's "
        f"{snapshot_protocol.TARGET_CONTAINERS_ANNOTATION}).",
    ),
    checkpoint_id: str | None = typer.Option(
        None,
        "--checkpoint-id",
        help=f"Default: the pod's {snapshot_protocol.CHECKPOINT_ID_LABEL} label.",
    ),
    storage: Path | None = typer.Option(None, "--storage", help=STORAGE_HELP),
    control_root: Path = typer.Option(
        Path(snapshot_protocol.CONTROL_DIR), "--control-root", help=CONTROL_ROOT_HELP
    ),
    namespace: str | None = typer.Option(
        None, "--namespace", help="The pod's namespace (default: the manifest's, else the API's)."
    ),
    annotations: str = typer.Option("auto", "--annotations", help=ANNOTATIONS_HELP),
    restore_command: str | None = typer.Option(
        None,
        "--restore-command",
        help="The restore step as one command line with {container} {images} {control} "
        "{checkpoint_id} (default: criu, and cuda-checkpoint when installed).",
    ),
) -> None:
    """Restore a checkpoint into one or more containers of a pod."""
    if (manifest is None) == (pod_name is None):
        fail("give exactly one of --manifest FILE and --pod NAME", EXIT_USAGE)
    _check_annotations(annotations)

    async def body() -> Outcome:
        from drivetrain.snapshot import agent
        from drivetrain.snapshot import manifest as manifests
        from drivetrain.snapshot.podapi import PodApi
        from drivetrain.snapshot.targets import resolve_targets

        tools = _tools(None, restore_command)  # a bad command line is refused first
        api: PodApi | None = None
        try:
            if manifest is not None:
                pod = manifests.load_manifest(manifest)
                where = namespace or pod.namespace
            else:
                assert pod_name is not None
                api = PodApi()
                where = namespace or api.default_namespace
                pod = manifests.Pod(await api.get_pod(where, pod_name), f"pod {where}/{pod_name}")
            names = resolve_targets(
                containers, "--containers", pod.annotations, pod.source, at_least=1, at_most=None
            )
            targets = manifests.resolve(pod, names)
            sink, api = _sink(annotations, pod, where, api)
            opts = agent.Options(control_root, storage, checkpoint_id)
            return await agent.restore(pod, targets, opts, tools, sink, where)
        finally:
            if api is not None:
                await api.close()

    _run(body)


def register(root: typer.Typer) -> None:
    """Add ``drivetrain snapshot checkpoint|restore`` to ``root``."""
    root.add_typer(app, name="snapshot")
