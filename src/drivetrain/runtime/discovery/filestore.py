"""A discovery store in a directory (``file:///dir``): several processes on one machine, no server.

Layout (everything under the directory)::

    rev            the store revision (an integer) and the lock: every write holds an exclusive
                   fcntl.flock on it, every snapshot a shared one
    keys/<key>     one JSON file per key {key, value (base64), lease, rev}, written atomically
                   (temp file + rename); the name is the percent-encoded key, or '#' + its
                   SHA-256 when that would be too long for a file name
    leases/<id>    one heartbeat file per lease, {ttl}; the lease is live while the file's mtime
                   is younger than its TTL; ``refresh`` touches it
    events.log     append-only change log, one JSON line per put/delete {r, t, k, v}; its first
                   line {base} says which revisions it still holds (it is rotated past 1 MiB)

Why a change log rather than diffing the directory: a watcher tails one file (one ``stat`` per
poll when nothing changed), sees every change in revision order, and can resume from a snapshot
revision exactly as with etcd.  Watchers poll every ``poll_interval`` (50 ms by default), so a
change reaches them within about that long.

Leases expire without a server: whoever notices (any process that watches or takes a snapshot,
checked at most every ``sweep_interval``) deletes the expired lease and its keys under the lock,
after re-checking the heartbeat, and logs the deletes.  A worker killed with SIGKILL therefore
leaves the watchers within TTL + sweep_interval + poll_interval.  Times are wall-clock mtimes:
a clock jump on the machine can expire or prolong leases.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from drivetrain.runtime.discovery.base import (
    DiscoveryStore,
    KeyValue,
    Lease,
    LeaseNotFoundError,
    RevisionCompactedError,
    StoreUnavailableError,
    WatchEvent,
)

log = logging.getLogger(__name__)

LOG_MAX_BYTES = 1 << 20
MAX_NAME = 200  # longest key file name before hashing (file systems allow 255 bytes)


def _b64(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode()


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


class _Files:
    """The synchronous file operations; every method runs in a worker thread."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.keys = root / "keys"
        self.leases = root / "leases"
        self.rev_path = root / "rev"
        self.log_path = root / "events.log"
        self.ttls: dict[int, float] = {}  # lease TTLs seen by this process (they never change)

    def init(self) -> None:
        self.keys.mkdir(parents=True, exist_ok=True)
        self.leases.mkdir(exist_ok=True)
        with self.locked(exclusive=True) as fd:
            if not self.log_path.exists():
                self._write_log_header(self._read_rev(fd))

    # ---- locking and revision -------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, exclusive: bool) -> Iterator[int]:
        fd = os.open(self.rev_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield fd
        finally:
            os.close(fd)  # releases the lock

    @staticmethod
    def _read_rev(fd: int) -> int:
        data = os.pread(fd, 64, 0).strip()
        return int(data) if data else 0

    @staticmethod
    def _write_rev(fd: int, revision: int) -> None:
        data = str(revision).encode()
        os.pwrite(fd, data.ljust(20), 0)

    # ---- keys -----------------------------------------------------------------------------

    def key_path(self, key: str) -> Path:
        name = quote(key, safe="")
        if len(name) > MAX_NAME:
            name = "#" + hashlib.sha256(key.encode()).hexdigest()
        return self.keys / name

    def _read_key_file(self, path: Path) -> dict[str, Any] | None:
        try:
            return json.loads(path.read_bytes())  # type: ignore[no-any-return]
        except FileNotFoundError:
            return None
        except ValueError:
            log.warning("ignoring unreadable discovery file %s", path)
            return None

    def _key_files(self, prefix: str = "") -> Iterator[tuple[str, Path]]:
        """(key, path) of every key file whose key may start with ``prefix``."""
        for name in os.listdir(self.keys):
            if name.startswith("."):
                continue  # a temp file being written
            path = self.keys / name
            if name.startswith("#"):
                yield "", path  # hashed: the key is only known once read
            else:
                key = unquote(name)
                if key.startswith(prefix):
                    yield key, path

    def _write_key_file(self, key: str, value: bytes, lease: int | None, revision: int) -> None:
        data = json.dumps({"key": key, "value": _b64(value), "lease": lease, "rev": revision})
        target = self.key_path(key)
        temp = self.keys / f".tmp-{os.getpid()}-{secrets.token_hex(4)}"
        temp.write_text(data)
        os.replace(temp, target)

    # ---- the change log -------------------------------------------------------------------

    def _write_log_header(self, base: int) -> None:
        temp = self.root / f".events-{os.getpid()}-{secrets.token_hex(4)}"
        temp.write_text(json.dumps({"base": base}) + "\n")
        os.replace(temp, self.log_path)

    def _append(self, fd: int, events: list[tuple[str, str, bytes | None]]) -> int:
        """Log ``events`` (type, key, value) under new revisions; returns the last revision.

        The caller holds the exclusive lock; the revision file is written before the log so a
        crash in between leaves a gap in revisions, never a reused one.
        """
        revision = self._read_rev(fd)
        lines = []
        for kind, key, value in events:
            revision += 1
            lines.append(json.dumps({"r": revision, "t": kind, "k": key, "v": _b64(value)}))
        self._write_rev(fd, revision)
        try:
            size = self.log_path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size > LOG_MAX_BYTES:
            self._write_log_header(revision - len(events))
        with open(self.log_path, "ab") as out:
            # A writer killed mid-line leaves no newline: start on a fresh line then.
            if size and not self._ends_with_newline():
                out.write(b"\n")
            out.write(("\n".join(lines) + "\n").encode())
        return revision

    def _ends_with_newline(self) -> bool:
        with open(self.log_path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    # ---- operations -----------------------------------------------------------------------

    def put(self, key: str, value: bytes, lease: int | None) -> int:
        with self.locked(exclusive=True) as fd:
            if lease is not None and not self._lease_alive(lease):
                raise LeaseNotFoundError(f"lease {lease:x} has expired or was revoked")
            revision = self._read_rev(fd) + 1
            self._write_key_file(key, value, lease, revision)
            return self._append(fd, [("put", key, value)])

    def delete(self, key: str) -> None:
        with self.locked(exclusive=True) as fd:
            path = self.key_path(key)
            if path.exists():
                path.unlink()
                self._append(fd, [("delete", key, None)])

    def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        with self.locked(exclusive=False) as fd:
            revision = self._read_rev(fd)
            items = []
            for _, path in self._key_files(prefix):
                data = self._read_key_file(path)
                if data is not None and data["key"].startswith(prefix):
                    items.append(KeyValue(data["key"], _unb64(data["value"]) or b"", data["rev"]))
        items.sort(key=lambda kv: kv.key)
        return items, revision

    def grant(self, ttl: float) -> int:
        # Written aside and linked into place: a sweeper never sees a lease file without its TTL.
        temp = self.leases / f".tmp-{os.getpid()}-{secrets.token_hex(4)}"
        temp.write_text(json.dumps({"ttl": ttl, "pid": os.getpid()}))
        try:
            while True:
                lease = secrets.randbits(63) or 1
                try:
                    os.link(temp, self.leases / f"{lease:x}")
                except FileExistsError:
                    continue
                self.ttls[lease] = ttl
                return lease
        finally:
            temp.unlink()

    def refresh(self, lease: int) -> bool:
        # Under the lock, so that a sweeper's check-then-delete cannot interleave with the touch.
        with self.locked(exclusive=True):
            if not self._lease_alive(lease):
                return False
            os.utime(self.leases / f"{lease:x}")
            return True

    def revoke(self, lease: int) -> None:
        with self.locked(exclusive=True) as fd:
            self._drop_lease(fd, lease)

    def expired(self) -> list[int]:
        """The leases past their TTL (a listdir and a stat per lease; nothing is changed)."""
        now = time.time()
        return [lease for lease in self._lease_ids() if not self._lease_alive(lease, now)]

    def sweep(self) -> int:
        """Delete expired leases and their keys; returns how many leases expired."""
        expired = self.expired()
        if not expired:
            return 0
        with self.locked(exclusive=True) as fd:
            for lease in expired:
                if not self._lease_alive(lease):  # re-check: it may have been refreshed
                    self._drop_lease(fd, lease)
        return len(expired)

    def _lease_ids(self) -> list[int]:
        ids = []
        for name in os.listdir(self.leases):
            with contextlib.suppress(ValueError):
                ids.append(int(name, 16))
        return ids

    def _lease_ttl(self, lease: int) -> float | None:
        ttl = self.ttls.get(lease)
        if ttl is None:
            try:
                ttl = float(json.loads((self.leases / f"{lease:x}").read_text())["ttl"])
            except (OSError, ValueError, KeyError):
                return None
            self.ttls[lease] = ttl
        return ttl

    def _lease_alive(self, lease: int, now: float | None = None) -> bool:
        try:
            mtime = (self.leases / f"{lease:x}").stat().st_mtime
        except FileNotFoundError:
            return False
        ttl = self._lease_ttl(lease)
        return ttl is not None and mtime + ttl > (time.time() if now is None else now)

    def _drop_lease(self, fd: int, lease: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.leases / f"{lease:x}").unlink()
        deleted = []
        for _, path in self._key_files():
            data = self._read_key_file(path)
            if data is not None and data.get("lease") == lease:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                deleted.append(data["key"])
        if deleted:
            self._append(fd, [("delete", key, None) for key in sorted(deleted)])


class _LogReader:
    """Tails events.log after a revision, following rotations.

    ``last`` is the newest revision this reader has passed on (or skipped as already known);
    a rotated log whose base is newer than that means events were rotated away unread (several
    rotations between two polls), which is reported as ``RevisionCompactedError``.
    """

    def __init__(self, path: Path, after: int | None) -> None:
        self.path = path
        self.after = after
        self.last = -1
        self.file: Any = None
        self.inode = -1
        self.buffer = b""

    def _open_current(self) -> int:
        """Open the current log; returns its base revision."""
        self.close()
        self.file = open(self.path, "rb")  # noqa: SIM115 (kept open while tailing)
        self.inode = os.fstat(self.file.fileno()).st_ino
        self.buffer = b""
        return int(json.loads(self.file.readline())["base"])

    def open(self) -> None:
        base = self._open_current()
        if self.after is None:
            # Changes from now on: what is in the log already counts as seen.
            self.last = base
            self._drain()
        elif self.after < base:
            raise RevisionCompactedError(
                f"revision {self.after} is older than the change log ({base})"
            )
        else:
            self.last = self.after

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None

    def read(self) -> list[WatchEvent]:
        """New complete events; switches to the new log once the rotated one is drained."""
        if self.file is None:
            self.open()
        events = self._drain()
        if not events:
            try:
                rotated = os.stat(self.path).st_ino != self.inode
            except FileNotFoundError:
                raise StoreUnavailableError(f"{self.path} disappeared") from None
            if rotated:
                events = self._drain()  # anything written before the rotation
                base = self._open_current()
                if base > self.last:
                    raise RevisionCompactedError(
                        f"the change log was rotated past revision {self.last} before it was read"
                    )
                events += self._drain()
        return events

    def _drain(self) -> list[WatchEvent]:
        chunk = self.file.read()
        if not chunk:
            return []
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        events = []
        for line in lines:
            if not line:
                continue
            try:
                item = json.loads(line)
                event = WatchEvent(item["t"], item["k"], _unb64(item["v"]), int(item["r"]))
            except (ValueError, KeyError, TypeError):
                log.warning("skipping a damaged line in %s", self.path)
                continue
            if event.revision > self.last:
                events.append(event)
                self.last = event.revision
        return events


class FileLease(Lease):
    def __init__(self, store: FileStore, lease_id: int, ttl: float) -> None:
        self._store = store
        self.id = lease_id
        self.ttl = ttl

    async def refresh(self) -> bool:
        return await self._store._call(self._store._files.refresh, self.id)

    async def revoke(self) -> None:
        await self._store._call(self._store._files.revoke, self.id)


class FileStore(DiscoveryStore):
    def __init__(
        self, root: Path, *, poll_interval: float = 0.05, sweep_interval: float = 0.1
    ) -> None:
        self.root = root
        self.poll_interval = poll_interval
        self.sweep_interval = sweep_interval
        self._files = _Files(root)
        self._last_sweep = 0.0
        self._closed = False

    @classmethod
    async def open(
        cls, path: str | Path, *, poll_interval: float = 0.05, sweep_interval: float = 0.1
    ) -> FileStore:
        store = cls(Path(path), poll_interval=poll_interval, sweep_interval=sweep_interval)
        await store._call(store._files.init)
        return store

    async def _call(self, fn: Any, *args: Any) -> Any:
        if self._closed:
            raise StoreUnavailableError("file store is closed")
        try:
            return await asyncio.to_thread(fn, *args)
        except OSError as exc:
            raise StoreUnavailableError(f"{self.root}: {exc}") from exc

    async def _sweep_if_due(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep >= self.sweep_interval:
            self._last_sweep = now
            # Finding nothing expired (the usual case) is a listdir and a few stats: cheaper
            # inline than a hop to a thread, which cost a busy frontend several per cent of its
            # CPU at ten sweeps a second.  Only an actual sweep (lock, deletes) goes to a thread.
            if self._closed:
                raise StoreUnavailableError("file store is closed")
            try:
                expired = self._files.expired()
            except OSError as exc:
                raise StoreUnavailableError(f"{self.root}: {exc}") from exc
            if expired:
                await self._call(self._files.sweep)

    async def grant_lease(self, ttl: float) -> Lease:
        lease_id = await self._call(self._files.grant, ttl)
        return FileLease(self, lease_id, ttl)

    async def put(self, key: str, value: bytes, lease: Lease | None = None) -> int:
        return await self._call(self._files.put, key, value, None if lease is None else lease.id)  # type: ignore[no-any-return]

    async def delete(self, key: str) -> None:
        await self._call(self._files.delete, key)

    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        await self._sweep_if_due()
        return await self._call(self._files.get_prefix, prefix)  # type: ignore[no-any-return]

    async def watch_prefix(
        self, prefix: str, start_revision: int | None = None
    ) -> AsyncIterator[WatchEvent]:
        reader = _LogReader(self._files.log_path, start_revision)
        try:
            while not self._closed:
                await self._sweep_if_due()
                try:
                    events = reader.read()
                except OSError as exc:
                    raise StoreUnavailableError(f"{self.root}: {exc}") from exc
                for event in events:
                    if event.key.startswith(prefix):
                        yield event
                if not events:
                    await asyncio.sleep(self.poll_interval)
        finally:
            reader.close()

    async def close(self) -> None:
        self._closed = True
