"""The two serving stacks the side-by-side benchmarks start: drivetrain's and Dynamo 1.6.1's.

Used by ``benchmarks/frontend/bench.py`` (``make bench-frontend``) and
``benchmarks/stream/bench.py`` (``make bench-stream``).  Each stack is one frontend and N mocker
workers on one tokenizer folder, file-based discovery in a fresh directory, round-robin routing,
every process in its own session so that a stop takes the whole group.  Dynamo runs exactly the
commands of docs/performance.md from its venv (``benchmarks/frontend/setup_dynamo.sh``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"
LOGS = WORK / "logs"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "drivetrain"
# One Dynamo install per machine, shared by every clone (benchmarks/frontend/setup_dynamo.sh).
DYNAMO_VENV = Path(os.environ.get("DYNAMO_VENV") or CACHE / "dynamo-1.6.1")
DYNAMO_PY = DYNAMO_VENV / "bin" / "python"
DRIVETRAIN_PY = Path(sys.executable)
MODEL = "tiny"


def tiny_model_dir() -> Path:
    for candidate in (ROOT / "examples" / "models" / "tiny", ROOT.parent / "shared/models/tiny"):
        if (candidate / "tokenizer.json").exists():
            return candidate
    sys.exit("bench: no tiny model folder (examples/models/tiny or ../shared/models/tiny)")


PADDED_VOCAB = 2048


def padded_tokenizer() -> Path:
    """The tiny tokenizer with plain tokens up to ``PADDED_VOCAB`` ids.

    Dynamo's mocker draws random token ids below the configured vocabulary size; beyond the 334
    tokens of the tiny tokenizer they decode to nothing, and aiperf rejects a stream whose chunks
    carry no text.  The added tokens (``" w<id>"``) are ordinary BPE vocabulary entries, so they
    decode as words; nothing encodes to them (no merges), which does not matter: prompts use the
    original tokens and output is counted from the servers' usage.
    """
    source = tiny_model_dir()
    target = WORK / "models" / f"tiny-{PADDED_VOCAB}"
    stamp = target / ".padded"
    if stamp.exists() and stamp.read_text() == str(source):
        return target
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    tokenizer = json.loads((target / "tokenizer.json").read_text())
    vocab: dict[str, int] = tokenizer["model"]["vocab"]
    for token_id in range(len(vocab), PADDED_VOCAB):
        vocab[f"\u0120w{token_id}"] = token_id  # Ġ: the byte-level BPE's space
    (target / "tokenizer.json").write_text(json.dumps(tokenizer))
    config = json.loads((target / "config.json").read_text())
    config["vocab_size"] = PADDED_VOCAB
    (target / "config.json").write_text(json.dumps(config))
    stamp.write_text(str(source))
    return target


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (all their threads), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def write_syscalls(pids: list[int]) -> int:
    """Write-family syscalls these processes made so far (``syscw`` in /proc/<pid>/io): for a
    frontend, mostly its writes to client sockets."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/io").read_text().splitlines():
                if line.startswith("syscw:"):
                    total += int(line.split(":", 1)[1])
    return total


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_json(url: str, timeout: float = 2.0) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:  # /health may answer 503 with a JSON body
        try:
            return json.loads(exc.read() or b"null")
        except ValueError:
            return None
    except (OSError, ValueError):
        return None


def listed_models(port: int) -> set[str]:
    body = http_json(f"http://127.0.0.1:{port}/v1/models")
    if not isinstance(body, dict):
        return set()
    return {str(m.get("id")) for m in body.get("data") or [] if isinstance(m, dict)}


def health_instances(port: int) -> set[str] | None:
    """Distinct instance ids that /health shows, or None when it does not list them."""
    body = http_json(f"http://127.0.0.1:{port}/health")
    if not isinstance(body, dict) or not isinstance(body.get("instances"), list):
        return None
    ids = set()
    for inst in body["instances"]:
        if isinstance(inst, dict):
            ids.add(str(inst.get("instance_id") or inst.get("id")))
        else:
            ids.add(str(inst))
    return ids


def wait_until(check: Any, timeout: float, what: str, interval: float = 0.1) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(interval)
    raise TimeoutError(f"bench: {what} not reached within {timeout:g} s (logs in {LOGS})")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def stop(self, grace: float = 5.0) -> None:
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):  # stragglers in the group
            os.killpg(self.popen.pid, signal.SIGKILL)

    def kill(self) -> None:
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()


_SPAWNED: list[str] = []  # numbers the log files of one run


def spawn(name: str, argv: list[str], env: dict[str, str]) -> Proc:
    if len(_SPAWNED) <= 1:  # first process of this run: drop the previous run's logs
        for old in LOGS.glob("*.log"):
            old.unlink()
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{name}.log"
    out = log.open("ab")
    popen = subprocess.Popen(
        argv,
        env={**os.environ, **env},
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=ROOT,
    )
    return Proc(name, popen, log)


@dataclass
class System:
    """One serving stack: how to start its frontend and its workers.

    ``speedup`` is the mockers' ``--speedup-ratio``; ``model_dir`` the tokenizer folder both the
    mockers and (for Dynamo) the frontend read.
    """

    name: str
    speedup: float = 1_000_000
    model_dir: Path = field(default_factory=tiny_model_dir)
    port: int = 0
    store: str = ""
    procs: list[Proc] = field(default_factory=list)

    def frontend(self) -> Proc:
        raise NotImplementedError

    def worker(self) -> Proc:
        raise NotImplementedError

    def start(self, workers: int) -> None:
        self.port = free_port()
        self.store = tempfile.mkdtemp(prefix=f"bench-{self.name.replace('@', '-')}-")
        self.procs = [self.frontend()]
        self.procs += [self.worker() for _ in range(workers)]
        wait_until(lambda: MODEL in listed_models(self.port), 120, f"{self.name} serving")
        if workers:
            # Every worker routable, not just the first (round-robin needs them all).
            wait_until(
                lambda: self._instances(workers) >= workers, 60, f"{self.name} {workers} workers"
            )

    def _instances(self, expected: int) -> int:
        ids = health_instances(self.port)
        return len(ids) if ids is not None else expected

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs = []

    def pids(self, role: str) -> list[int]:
        return [p.popen.pid for p in self.procs if p.name.endswith(role)]

    def _next(self, role: str) -> str:
        _SPAWNED.append(role)
        return f"{len(_SPAWNED):03d}-{self.name.replace('@', '-')}-{role}"


@dataclass
class Dynamo(System):
    #: ``--router-mode`` (bench-kv: ``kv``) and more arguments for the frontend and each mocker
    router: str = "round-robin"
    frontend_args: list[str] = field(default_factory=list)
    worker_args: list[str] = field(default_factory=list)

    def _env(self) -> dict[str, str]:
        # Dynamo's defaults otherwise (it logs one INFO line per request, as it does out of the
        # box).
        return {"DYN_FILE_KV": self.store}

    def frontend(self) -> Proc:
        return spawn(
            self._next("frontend"),
            [
                str(DYNAMO_PY),
                "-m",
                "dynamo.frontend",
                "--http-port",
                str(self.port),
                "--discovery-backend",
                "file",
                "--router-mode",
                self.router,
                *self.frontend_args,
            ],
            self._env(),
        )

    def worker(self) -> Proc:
        return spawn(
            self._next("mocker"),
            [
                str(DYNAMO_PY),
                "-m",
                "dynamo.mocker",
                "--model-path",
                str(self.model_dir),
                "--model-name",
                MODEL,
                "--discovery-backend",
                "file",
                "--request-plane",
                "tcp",
                "--event-plane",
                "zmq",
                "--speedup-ratio",
                f"{self.speedup:g}",
                *self.worker_args,
            ],
            self._env(),
        )


@dataclass
class Drivetrain(System):
    """drivetrain from this checkout, or from ``src`` (another revision's ``src/``) when given."""

    src: Path | None = None
    #: more arguments for the frontend and each worker (bench-admission: limits, speeds)
    frontend_args: list[str] = field(default_factory=list)
    worker_args: list[str] = field(default_factory=list)

    def _env(self) -> dict[str, str]:
        env = {"DRIVETRAIN_DISCOVERY": f"file://{self.store}"}
        if self.src is not None:
            # PYTHONPATH comes before the editable install's finder, so this revision's package
            # is the one imported (the venv supplies the same dependencies).
            env["PYTHONPATH"] = str(self.src)
        return env

    def _cli(self, *args: str) -> list[str]:
        return [str(DRIVETRAIN_PY), "-m", "drivetrain.cli.main", *args]

    def frontend(self) -> Proc:
        return spawn(
            self._next("frontend"),
            self._cli(
                "frontend",
                "--port",
                str(self.port),
                "--host",
                "127.0.0.1",
                "--router",
                "round-robin",
                *self.frontend_args,
            ),
            self._env(),
        )

    def worker(self) -> Proc:
        return spawn(
            self._next("mocker"),
            self._cli(
                "worker",
                "--engine",
                "mocker",
                "--model-name",
                MODEL,
                "--model-path",
                str(self.model_dir),
                "--speedup-ratio",
                f"{self.speedup:g}",
                *self.worker_args,
            ),
            self._env(),
        )
