"""The checkpoint and restore step itself: a pluggable command, by default CRIU's own CLI.

The agent owns the protocol (targets, sentinels, annotations); what actually saves and revives
a process is a command, because that depends on the node: CRIU and NVIDIA's cuda-checkpoint on
a GPU node, a container runtime's own checkpoint API elsewhere, a fake runtime in the tests.

* ``--checkpoint-command`` / ``--restore-command``: one command line (split as a shell would,
  nothing else of a shell), run once per target container with these placeholders filled in
  and the same values in the environment:

  ======================  ==============================  =====================================
  placeholder             environment                     value
  ======================  ==============================  =====================================
  ``{container}``         ``SNAPSHOT_CONTAINER``          the target container's name
  ``{pid}``               ``SNAPSHOT_PID``                checkpoint: the process to save
  ``{images}``            ``SNAPSHOT_IMAGES_DIR``         the checkpoint's folder
  ``{control}``           ``SNAPSHOT_CONTROL_DIR``        the container's control folder
  ``{checkpoint_id}``     ``SNAPSHOT_CHECKPOINT_ID``      the checkpoint's id
  ======================  ==============================  =====================================

  A restore command may print ``container_id=<id>`` to name what it restored; the pod's own
  container status wins when it has one.
* Default: ``criu`` (and ``cuda-checkpoint`` around it when it is on PATH: the GPU state is
  moved to host memory before the dump and back after), or a clear "not available on this
  node" error when ``criu`` is not on PATH.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from drivetrain.snapshot.errors import SnapshotError

PLACEHOLDERS = ("container", "pid", "images", "control", "checkpoint_id")


@dataclass(frozen=True)
class Step:
    """What one checkpoint or restore of one container is about."""

    container: str
    images: Path
    control: Path
    checkpoint_id: str
    pid: int | None = None

    def values(self) -> dict[str, str | None]:
        return {
            "container": self.container,
            "pid": None if self.pid is None else str(self.pid),
            "images": str(self.images),
            "control": str(self.control),
            "checkpoint_id": self.checkpoint_id,
        }


class Tools(Protocol):
    async def checkpoint(self, step: Step) -> None: ...

    async def restore(self, step: Step) -> str | None:
        """Restore; returns the id of what was restored, when the tool names one."""
        ...


async def run(argv: list[str], what: str, env: dict[str, str] | None = None) -> str:
    """Run ``argv``; its stdout, or SnapshotError naming the command and its last words."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
    except OSError as exc:
        raise SnapshotError(f"{what}: cannot run {argv[0]}: {exc.strerror or exc}") from None
    out, err = await proc.communicate()
    if proc.returncode != 0:
        said = (err or out).decode(errors="replace").strip().splitlines()[-3:]
        detail = f": {' / '.join(said)}" if said else ""
        raise SnapshotError(f"{what}: `{shlex.join(argv)}` exited {proc.returncode}{detail}")
    return out.decode(errors="replace")


def reported_container_id(stdout: str) -> str | None:
    """The last ``container_id=<id>`` line a restore command printed."""
    found = None
    for line in stdout.splitlines():
        if line.startswith("container_id="):
            found = line.removeprefix("container_id=").strip() or None
    return found


class CommandTools:
    """The user's commands (``--checkpoint-command``, ``--restore-command``)."""

    def __init__(self, checkpoint: str | None, restore: str | None) -> None:
        self.templates = {"checkpoint": checkpoint, "restore": restore}
        for flag, template in self.templates.items():
            if template is not None:
                check_template(template, f"--{flag}-command")

    def _argv(self, op: str, step: Step) -> tuple[list[str], dict[str, str]]:
        template = self.templates[op]
        assert template is not None
        values = step.values()
        argv = []
        for word in shlex.split(template):
            for name, value in values.items():
                if "{" + name + "}" in word:
                    if value is None:
                        raise SnapshotError(
                            f"--{op}-command uses {{{name}}}, which is not known for container "
                            f"{step.container} (the workload's ready-for-snapshot file gives its "
                            "PID; or pass --pid)"
                        )
                    word = word.replace("{" + name + "}", value)
            argv.append(word)
        env = {f"SNAPSHOT_{k.upper()}": v for k, v in values.items() if v is not None}
        env["SNAPSHOT_IMAGES_DIR"] = env.pop("SNAPSHOT_IMAGES")
        env["SNAPSHOT_CONTROL_DIR"] = env.pop("SNAPSHOT_CONTROL")
        return argv, env

    async def checkpoint(self, step: Step) -> None:
        argv, env = self._argv("checkpoint", step)
        await run(argv, f"checkpoint of {step.container}", env)

    async def restore(self, step: Step) -> str | None:
        argv, env = self._argv("restore", step)
        return reported_container_id(await run(argv, f"restore of {step.container}", env))


def check_template(template: str, flag: str) -> None:
    """A command template that splits, is not empty, and names only known placeholders."""
    try:
        words = shlex.split(template)
    except ValueError as exc:
        raise SnapshotError(f"{flag}: cannot split {template!r}: {exc}") from None
    if not words:
        raise SnapshotError(f"{flag}: empty command")
    for field in re.findall(r"\{(\w+)\}", template):
        if field not in PLACEHOLDERS:
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise SnapshotError(f"{flag}: unknown placeholder {{{field}}} (known: {known})")


class CriuTools:
    """CRIU's CLI, with cuda-checkpoint around it when that is installed too."""

    def __init__(self) -> None:
        self.criu = shutil.which("criu")
        self.cuda = shutil.which("cuda-checkpoint")

    def _need_criu(self, op: str) -> str:
        if self.criu is None:
            raise SnapshotError(
                f"{op}: CRIU is not available on this node (no `criu` on PATH); install CRIU "
                f"(and cuda-checkpoint for GPU processes) or give --{op}-command"
            )
        return self.criu

    async def _toggle_gpu(self, pid: int, what: str) -> None:
        if self.cuda is not None:
            await run([self.cuda, "--toggle", "--pid", str(pid)], what)

    async def checkpoint(self, step: Step) -> None:
        criu = self._need_criu("checkpoint")
        if step.pid is None:
            raise SnapshotError(
                f"checkpoint of {step.container}: no process to checkpoint (the workload's "
                "ready-for-snapshot file gives no PID; pass --pid)"
            )
        what = f"checkpoint of {step.container}"
        step.images.mkdir(parents=True, exist_ok=True)
        await self._toggle_gpu(step.pid, what)  # GPU memory to the host, CUDA calls paused
        try:
            await run(
                [
                    criu,
                    "dump",
                    "--tree",
                    str(step.pid),
                    "--images-dir",
                    str(step.images),
                    "--leave-running",
                    "--shell-job",
                    "--tcp-established",
                    "--file-locks",
                ],
                what,
            )
        finally:
            await self._toggle_gpu(step.pid, what)  # and back: the source keeps running

    async def restore(self, step: Step) -> str | None:
        criu = self._need_criu("restore")
        what = f"restore of {step.container}"
        pidfile = step.control / "restored.pid"
        await run(
            [
                criu,
                "restore",
                "--images-dir",
                str(step.images),
                "--restore-detached",
                "--shell-job",
                "--tcp-established",
                "--file-locks",
                "--pidfile",
                str(pidfile),
            ],
            what,
        )
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError) as exc:
            raise SnapshotError(f"{what}: criu wrote no usable {pidfile}: {exc}") from None
        await self._toggle_gpu(pid, what)  # the GPU state back onto the device
        return None
