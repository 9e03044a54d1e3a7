"""The failover lock: of the engines sharing one lock file, only its holder serves.

Two workers of a failover pod (``engine-0``, ``engine-1``) open the same file on a volume they
share and ask for an exclusive ``flock``.  The holder is the active engine; the other blocks in
the kernel, warmed and unregistered, until the lock is free.  The kernel drops an ``flock`` when
the last descriptor of its open file goes, so a holder that dies in any way (SIGKILL, a crash, an
OOM kill) hands over at once, with no lease, TTL or heartbeat to wait for (docs/gms-failover.md).

The blocking ``flock`` runs in a daemon thread of its own: a shadow may wait for hours, and a
default-executor thread would keep the interpreter from exiting.  Giving up the wait (the shadow
is stopped) closes the descriptor; if the kernel later grants the lock to the abandoned call, the
grant dies with that call's reference to the file, so nothing is held.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import threading

from drivetrain.errors import DrivetrainError


class FailoverLockError(DrivetrainError):
    """The lock file cannot be opened or locked (a bad path, a file system without flock)."""


class FailoverLock:
    """An exclusive ``flock`` on ``path``; ``await acquire()`` returns once this process holds it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self.held = False

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise FailoverLockError(
                f"failover lock {self.path}: cannot open: {exc.strerror or exc}"
            ) from None

    def try_acquire(self) -> bool:
        """Take the lock if it is free now (no waiting)."""
        fd = self._fd if self._fd is not None else self._open()
        self._fd = fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as exc:
            self._close()
            raise FailoverLockError(
                f"failover lock {self.path}: flock failed: {exc.strerror or exc}"
            ) from None
        self.held = True
        return True

    async def acquire(self) -> None:
        """Wait until this process holds the lock (cancellable: the wait is then abandoned)."""
        if self.held:
            return
        if self.try_acquire():
            return
        fd = self._fd
        assert fd is not None
        loop = asyncio.get_running_loop()
        granted: asyncio.Future[None] = loop.create_future()

        def report(error: BaseException | None) -> None:
            if granted.done():
                return
            if error is None:
                granted.set_result(None)
            else:
                granted.set_exception(error)

        def wait_in_kernel() -> None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                error: BaseException | None = None
            except OSError as exc:
                error = FailoverLockError(
                    f"failover lock {self.path}: flock failed: {exc.strerror or exc}"
                )
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
                loop.call_soon_threadsafe(report, error)

        threading.Thread(target=wait_in_kernel, name="failover-lock", daemon=True).start()
        try:
            await granted
        except BaseException:
            # Abandoned (cancelled) or failed: the descriptor goes, and with it any late grant.
            self._close()
            raise
        self.held = True

    def describe_holder(self, **facts: object) -> None:
        """Write who holds the lock into the file (for people: ``cat`` shows the active engine)."""
        if self._fd is None or not self.held:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, (json.dumps({"pid": os.getpid(), **facts}) + "\n").encode(), 0)

    def holder(self) -> dict[str, object] | None:
        """What the current holder wrote, if anything (read without taking the lock)."""
        try:
            with open(self.path) as handle:
                text = handle.read().strip()
        except OSError:
            return None
        try:
            facts = json.loads(text) if text else None
        except ValueError:
            return None
        return facts if isinstance(facts, dict) else None

    def release(self) -> None:
        """Give the lock up (closing the descriptor drops the flock)."""
        self._close()

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        self.held = False
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
