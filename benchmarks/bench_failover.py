"""Engine failover under load: SIGKILL the active engine, time the shadow's takeover.

.venv/bin/python benchmarks/bench_failover.py [--kills 20] [--concurrency 8] [--max-tokens 32]
    [--speedup 1] [--settle 1.0] [--record]

One frontend (default ``--retry-window``) and two mocker engines sharing one failover lock, as
``drivetrain up`` runs a failover pod's ``engine-0`` and ``engine-1`` (file discovery, the
tokenizer of examples/models/tiny, Dynamo's timing model at ``--speedup``: 1 is a GPU's pace,
about 6 ms per output token).  A steady stream of streaming chat requests runs throughout
(``--concurrency`` clients, each sending its next request as soon as one ends).  Each round:

1. wait until one engine is active (registered) and the other a warmed shadow, then
   ``--settle`` seconds of steady load;
2. SIGKILL the active engine (the one holding the lock: its PID is in the lock file);
3. start it again, as its container would be restarted: it becomes the new shadow.

After the run every request is classified by its timestamps:

* **takeover** per kill: from the kill to the first successful response that the shadow served
  (the first request whose first token came after the kill, at its end), and to that first
  token; plus kill -> the shadow's "worker ready" line (it registered);
* **errors**: requests that failed before receiving any token (the goal is none: the frontend
  retries them on the shadow) and requests that failed while already streaming (their tokens
  came from the dead engine, so they necessarily fail: there is no mid-stream migration).

``--record`` writes benchmarks/results/failover.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "examples" / "models" / "tiny"
RESULTS = REPO / "benchmarks" / "results" / "failover.md"
DRIVETRAIN = [sys.executable, "-m", "drivetrain.cli.main"]


@dataclass
class Outcome:
    started: float
    first_token: float | None = None
    ended: float = 0.0
    ok: bool = False


@dataclass
class Kill:
    at: float
    pid: int
    registered: float | None = None  # the shadow's "worker ready" line


@dataclass
class Engine:
    index: int
    process: asyncio.subprocess.Process
    lines: list[tuple[float, str]] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.lines.append((time.monotonic(), line.decode(errors="replace")))

    def saw(self, text: str) -> float | None:
        return next((t for t, line in self.lines if text in line), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_average() -> float:
    return os.getloadavg()[0]


async def start_engine(index: int, lock: Path, env: dict[str, str], logs: Path) -> Engine:
    process = await asyncio.create_subprocess_exec(
        *DRIVETRAIN,
        *("worker", "--engine", "mocker", "--model-name", "tiny"),
        *("--model-path", str(TINY), "--speedup-ratio", str(ARGS.speedup)),
        *("--failover-lock", str(lock)),
        env={**env, "ENGINE_ID": str(index)},
        stdout=asyncio.subprocess.PIPE,
        stderr=(logs / f"engine-{index}.log").open("a"),
    )
    engine = Engine(index, process)
    engine.reader = asyncio.create_task(engine.read())
    return engine


async def wait_until(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the stack did not reach the expected state")
        await asyncio.sleep(0.01)


async def client(
    session: aiohttp.ClientSession, url: str, out: list[Outcome], stop: asyncio.Event
) -> None:
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "tell me about failover"}],
        "max_tokens": ARGS.max_tokens,
        "stream": True,
    }
    while not stop.is_set():
        outcome = Outcome(time.monotonic())
        out.append(outcome)
        try:
            async with session.post(url + "/v1/chat/completions", json=body) as resp:
                if resp.status == 200:
                    async for raw in resp.content:
                        line = raw.strip()
                        if line.startswith(b"data: {") and outcome.first_token is None:
                            outcome.first_token = time.monotonic()
                        elif line == b"data: [DONE]":
                            outcome.ok = True
                        elif line.startswith(b"event: error"):
                            break
        except (aiohttp.ClientError, TimeoutError):
            pass
        outcome.ended = time.monotonic()


async def run() -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    logs = REPO / "benchmarks" / ".work" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    lock = work / "failover.lock"
    env = {**os.environ, "DRIVETRAIN_DISCOVERY": f"file://{work / 'discovery'}"}
    env["PYTHONUNBUFFERED"] = "1"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    frontend = await asyncio.create_subprocess_exec(
        *DRIVETRAIN,
        *("frontend", "--port", str(port), "--host", "127.0.0.1"),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=(logs / "failover-frontend.log").open("w"),
    )
    engines = [await start_engine(0, lock, env, logs)]
    await wait_until(lambda: engines[0].saw("worker ready") is not None)
    engines.append(await start_engine(1, lock, env, logs))
    outcomes: list[Outcome] = []
    kills: list[Kill] = []
    loads = [load_average()]
    stop = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=120)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await wait_until(lambda: engines[1].saw("worker standby") is not None)
            clients = [
                asyncio.create_task(client(session, url, outcomes, stop))
                for _ in range(ARGS.concurrency)
            ]
            for n in range(ARGS.kills):
                await asyncio.sleep(ARGS.settle)
                holder = json.loads(lock.read_text())
                active = next(e for e in engines if e.process.pid == holder["pid"])
                shadow = next(e for e in engines if e is not active)
                kill = Kill(time.monotonic(), active.process.pid)
                active.process.send_signal(signal.SIGKILL)
                kills.append(kill)
                await active.process.wait()
                # The shadow says so once it took the lock and registered.
                await wait_until(lambda s=shadow, k=kill: s.saw("worker ready") is not None)
                kill.registered = shadow.saw("worker ready")
                restarted = await start_engine(active.index, lock, env, logs)
                engines[engines.index(active)] = restarted
                await wait_until(lambda r=restarted: r.saw("worker standby") is not None)
                loads.append(load_average())
                print(f"kill {n + 1}/{ARGS.kills} done", file=sys.stderr)
            await asyncio.sleep(ARGS.settle)
            stop.set()
            await asyncio.gather(*clients)
    finally:
        for engine in engines:
            with contextlib.suppress(ProcessLookupError):
                engine.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(ProcessLookupError):
            frontend.send_signal(signal.SIGTERM)
        for process in [frontend, *(e.process for e in engines)]:
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
        shutil.rmtree(work, ignore_errors=True)
    return analyse(outcomes, kills, loads)


def analyse(outcomes: list[Outcome], kills: list[Kill], loads: list[float]) -> dict[str, object]:
    served, first_token, registered = [], [], []
    for kill in kills:
        after = [
            o for o in outcomes if o.ok and o.first_token is not None and o.first_token > kill.at
        ]
        first = min(after, key=lambda o: o.ended)
        served.append(first.ended - kill.at)
        first_token.append(min(o.first_token for o in after if o.first_token) - kill.at)
        if kill.registered is not None:
            registered.append(kill.registered - kill.at)
    failed = [o for o in outcomes if not o.ok]
    return {
        "kills": len(kills),
        "requests": len(outcomes),
        "served_ms": [round(s * 1000, 1) for s in served],
        "first_token_ms": [round(s * 1000, 1) for s in first_token],
        "registered_ms": [round(s * 1000, 1) for s in registered],
        "errors_before_first_token": sum(1 for o in failed if o.first_token is None),
        "errors_while_streaming": sum(1 for o in failed if o.first_token is not None),
        "load": (round(min(loads), 2), round(max(loads), 2)),
    }


def ms(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} / {max(values):.0f}"


def report(result: dict[str, object]) -> str:
    served = result["served_ms"]
    first = result["first_token_ms"]
    registered = result["registered_ms"]
    assert isinstance(served, list) and isinstance(first, list) and isinstance(registered, list)
    low, high = result["load"]  # type: ignore[misc]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        "# Failover benchmark: SIGKILL of the active engine under load",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs; {when}; load average (1 min) "
        f"{low}–{high} during the run.",
        f"Command: `benchmarks/bench_failover.py --kills {ARGS.kills} --concurrency "
        f"{ARGS.concurrency} --max-tokens {ARGS.max_tokens} --speedup {ARGS.speedup:g} "
        f"--settle {ARGS.settle:g}`.",
        "1 frontend (default --retry-window) + 2 mocker engines sharing one --failover-lock, file "
        "discovery; streaming chat requests throughout.",
        "",
        "| what | p50 / max (ms) over the kills |",
        "| --- | ---: |",
        f"| kill → first successful response served by the shadow (complete) | {ms(served)} |",
        f"| kill → first token from the shadow | {ms(first)} |",
        f"| kill → the shadow registered (its `worker ready` line) | {ms(registered)} |",
        "",
        "| kills | requests | errors before the first token | errors while streaming |",
        "| ---: | ---: | ---: | ---: |",
        f"| {result['kills']} | {result['requests']} | {result['errors_before_first_token']} | "
        f"{result['errors_while_streaming']} |",
        "",
        f"Per kill, kill → first complete response (ms): {', '.join(f'{v:.0f}' for v in served)}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    result = asyncio.run(run())
    text = report(result)
    print(text)
    if ARGS.record:
        RESULTS.write_text(text)
        print(f"written to {RESULTS.relative_to(REPO)}", file=sys.stderr)


parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--kills", type=int, default=20)
parser.add_argument("--concurrency", type=int, default=8)
parser.add_argument("--max-tokens", type=int, default=32)
parser.add_argument("--speedup", type=float, default=1.0)
parser.add_argument("--settle", type=float, default=1.0)
parser.add_argument("--record", action="store_true")
ARGS = parser.parse_args() if __name__ == "__main__" else parser.parse_args([])

if __name__ == "__main__":
    main()
