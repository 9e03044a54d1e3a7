"""One container's control folder: the sentinel files the workload and the agent exchange.

The agent mounts the control volume's root (``--control-root``); a target container's folder is
its ``subPath`` below it, which the container itself sees at ``/snapshot-control``.  The
workload writes ``ready-for-snapshot`` (a workload that writes its PID into it names the process
the default checkpoint step saves, docs/snapshot.md); the agent writes
``snapshot-complete`` and ``restore-complete``.  Files are written whole (a temporary file,
then a rename), so a reader polling for one never sees it half-written.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from drivetrain.snapshot.errors import SnapshotError

#: how often a wait for the workload's file looks again: a checkpoint waits for minutes
#: (a model loading), so ten looks a second cost nothing and add at most 0.1 s
POLL_S = 0.1


class ControlDir:
    def __init__(self, root: Path, subpath: str) -> None:
        self.path = root / subpath if subpath else root

    def file(self, name: str) -> Path:
        return self.path / name

    def write(self, name: str, content: str = "") -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            partial = self.path / f".{name}.tmp"
            partial.write_text(content)
            os.replace(partial, self.file(name))
        except OSError as exc:
            raise SnapshotError(f"{self.file(name)}: cannot write: {exc.strerror or exc}") from None

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.file(name).unlink()

    def read(self, name: str) -> str | None:
        try:
            return self.file(name).read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SnapshotError(f"{self.file(name)}: cannot read: {exc.strerror or exc}") from None

    async def wait_for(self, name: str, timeout: float) -> str:
        """The content of ``name`` once it exists; SnapshotError after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (content := self.read(name)) is None:
            if loop.time() >= deadline:
                raise SnapshotError(
                    f"{self.file(name)}: not written within {timeout:g} s (the workload writes "
                    "it when it is ready to be checkpointed)"
                )
            await asyncio.sleep(POLL_S)
        return content
