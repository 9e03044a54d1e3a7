"""Fleet weight updates (the RL API, docs/rl.md): from ``update_weights`` to the first request
served on the new version.

.venv/bin/python benchmarks/bench_rl.py [--workers 16] [--updates 20] [--load-ms 200]
    [--concurrency 8] [--max-tokens 16] [--speedup 10] [--record]

One frontend (admin token set) and ``--workers`` mocker workers as processes on file discovery,
each simulating a weight load of ``--load-ms``; ``--concurrency`` clients stream chat requests
without pause.  Each round posts ``update_weights`` (mode keep) for version ``n`` and records:

* **to first token on the new version**: from the moment the update was sent to the first
  token (the response headers, which name the version) of the first request answered by it;
* **beyond the load**: that, less the simulated load time (what the transaction itself costs:
  pausing, the commit in discovery, resuming 16 workers, routing the held requests);
* the update call's own duration, and the requests that failed (the goal is none).

``--record`` writes benchmarks/results/rl.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "examples" / "models" / "tiny"
RESULTS = REPO / "benchmarks" / "results" / "rl.md"
DRIVETRAIN = [sys.executable, "-m", "drivetrain.cli.main"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(argv: list[str], log: Path, ready: str, env: dict[str, str]) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=log.open("w"), text=True, env=env, cwd=REPO
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"{argv[3]} exited: {log.read_text()[-2000:]}")
        if ready in line:
            return process
    raise TimeoutError(f"{argv[3]} not ready")


async def stream(
    session: aiohttp.ClientSession, url: str, max_tokens: int, seen: list[tuple[float, str]]
) -> bool:
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": max_tokens,
        "stream": True,
    }
    try:
        async with session.post(url + "/v1/chat/completions", json=body) as resp:
            if resp.status != 200:
                return False
            seen.append((time.monotonic(), resp.headers["x-drivetrain-weight-version"]))
            async for _ in resp.content:
                pass
        return True
    except aiohttp.ClientError:
        return False


async def run(args: argparse.Namespace, url: str, admin: str, token: str) -> dict[str, object]:
    seen: list[tuple[float, str]] = []
    failures = 0
    stop = asyncio.Event()

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        while not stop.is_set():
            if not await stream(session, url, args.max_tokens, seen):
                failures += 1

    to_first: list[float] = []
    calls: list[float] = []
    connector = aiohttp.TCPConnector(limit=args.concurrency + 4)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        clients = [asyncio.create_task(client(session)) for _ in range(args.concurrency)]
        await asyncio.sleep(1.0)
        for n in range(1, args.updates + 1):
            version = str(n)
            sent = time.monotonic()
            async with session.post(
                admin + "/v1/rl/update_weights",
                json={"model": "tiny", "version": version, "source": {"path": "/"}},
                headers={"Authorization": f"Bearer {token}"},
            ) as resp:
                answer = await resp.json()
                if resp.status != 200:
                    raise RuntimeError(f"update {version} failed: {answer}")
            calls.append(time.monotonic() - sent)
            while not any(v == version for _, v in seen):
                await asyncio.sleep(0.001)
            first = min(t for t, v in seen if v == version)
            to_first.append(first - sent)
            await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*clients)
    load = args.load_ms / 1000.0
    beyond = [t - load for t in to_first]
    return {
        "to_first_p50": statistics.median(to_first),
        "to_first_max": max(to_first),
        "beyond_p50": statistics.median(beyond),
        "beyond_max": max(beyond),
        "call_p50": statistics.median(calls),
        "requests": len(seen),
        "failures": failures,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--load-ms", type=float, default=200.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--speedup", type=float, default=10.0)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-rl-"))
    discovery = f"file://{tmp / 'discovery'}"
    token = secrets.token_urlsafe(16)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    port, admin_port = free_port(), free_port()
    processes: list[subprocess.Popen[str]] = []
    try:
        processes.append(
            spawn(
                [
                    *DRIVETRAIN,
                    "frontend",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--admin-port",
                    str(admin_port),
                    "--admin-token",
                    token,
                    "--discovery",
                    discovery,
                ],
                tmp / "frontend.log",
                "listening",
                env,
            )
        )
        for i in range(args.workers):
            processes.append(
                spawn(
                    [
                        *DRIVETRAIN,
                        "worker",
                        "--engine",
                        "mocker",
                        "--model-name",
                        "tiny",
                        "--model-path",
                        str(TINY),
                        "--speedup-ratio",
                        str(args.speedup),
                        "--weight-load-ms",
                        str(args.load_ms),
                        "--discovery",
                        discovery,
                    ],
                    tmp / f"worker-{i}.log",
                    "worker ready",
                    env,
                )
            )
        url, admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            import json
            import urllib.request

            with urllib.request.urlopen(url + "/health") as resp:
                if len(json.load(resp)["instances"]) == args.workers:
                    break
            time.sleep(0.1)
        result = asyncio.run(run(args, url, admin, token))
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()
    lines = [
        f"{args.updates} fleet updates, {args.workers} mocker workers, simulated load "
        f"{args.load_ms:g} ms, {args.concurrency} streaming clients "
        f"(max_tokens {args.max_tokens}, speedup {args.speedup:g})",
        f"update_weights -> first token on the new version: p50 "
        f"{result['to_first_p50'] * 1000:.0f} ms, max {result['to_first_max'] * 1000:.0f} ms",
        f"beyond the simulated load: p50 {result['beyond_p50'] * 1000:.0f} ms, "
        f"max {result['beyond_max'] * 1000:.0f} ms (goal <= 200 ms)",
        f"update_weights call itself: p50 {result['call_p50'] * 1000:.0f} ms",
        f"requests {result['requests']}, failed {result['failures']}",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
    ]
    print("\n".join(lines))
    if args.record:
        RESULTS.write_text(
            "# Fleet weight updates (make bench-rl)\n\n" + "\n".join(f"- {x}" for x in lines) + "\n"
        )
    return 0 if result["failures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
