"""The transformers engine's tokens/s, alone (in-process) and behind drivetrain's frontend.

.venv/bin/python benchmarks/bench_transformers.py [--model-path examples/models/tiny-llama]
    [--concurrency 1,8] [--requests 16] [--max-tokens 128] [--rounds 3] [--threads 1]

*Alone*: a ``TransformersEngine`` in this process, ``generate`` called directly.  *Behind the
frontend*: ``drivetrain frontend`` and ``drivetrain worker --engine transformers`` as processes
(file discovery), driven over HTTP (streaming chat, one SSE event per token, usage from the
last chunk; an aiohttp client that parses only that chunk).  Same model, flags, prompts, seeds and concurrency in both; the two alternate in each
round so machine load hits both alike.  tokens/s = completion tokens of all requests / wall
time of the round.  The frontend's overhead is reported as behind / alone (1.0 = none).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.runtime.conftest import free_port  # noqa: E402
from tests.runtime.serving_processes import CliProcess, wait_for_instances  # noqa: E402

from drivetrain.runtime.engines.base import Finish  # noqa: E402
from drivetrain.runtime.engines.hf.engine import TransformersEngine  # noqa: E402

MODEL_NAME = "bench"


def bodies(count: int, max_tokens: int) -> list[dict[str, Any]]:
    return [
        {
            "messages": [{"role": "user", "content": f"request {i}: tell me a story"}],
            "max_tokens": max_tokens,
            "seed": i,
        }
        for i in range(count)
    ]


async def bounded(concurrency: int, jobs: list[Any]) -> list[int]:
    gate = asyncio.Semaphore(concurrency)

    async def one(job: Any) -> int:
        async with gate:
            return int(await job())

    return await asyncio.gather(*(one(j) for j in jobs))


async def alone(engine: TransformersEngine, requests: list[dict[str, Any]], conc: int) -> float:
    async def run(body: dict[str, Any]) -> int:
        tokens = 0
        async for item in engine.generate("chat", body):
            if isinstance(item, Finish):
                tokens = item.completion_tokens
        return tokens

    began = time.perf_counter()
    counts = await bounded(conc, [lambda b=b: run(b) for b in requests])
    return sum(counts) / (time.perf_counter() - began)


async def behind(url: str, requests: list[dict[str, Any]], conc: int) -> float:
    """Streaming chat through the frontend, read with aiohttp: the client parses only the
    usage chunk, so its own cost (on the same 2 cores) stays small next to the frontend's."""
    import aiohttp
    import orjson

    async def run(session: aiohttp.ClientSession, body: dict[str, Any]) -> int:
        payload = dict(body, model=MODEL_NAME, stream=True, stream_options={"include_usage": True})
        tokens = 0
        async with session.post(url + "/v1/chat/completions", json=payload) as resp:
            resp.raise_for_status()
            async for line in resp.content:
                if b'"usage":{' in line:
                    tokens = orjson.loads(line[6:])["usage"]["completion_tokens"]
        return tokens

    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        began = time.perf_counter()
        counts = await bounded(conc, [lambda b=b: run(session, b) for b in requests])
        return sum(counts) / (time.perf_counter() - began)


def start_serving(args: argparse.Namespace, tmp: Path) -> tuple[CliProcess, CliProcess, str]:
    discovery = f"file://{tmp / 'discovery'}"
    port = free_port()
    frontend = CliProcess(
        ["frontend", "--host", "127.0.0.1", "--port", str(port), "--discovery", discovery],
        "frontend listening",
        tmp / "frontend.log",
    ).start()
    worker_args = ["worker", "--engine", "transformers", "--model-name", MODEL_NAME]
    worker_args += ["--model-path", str(args.model_path), "--discovery", discovery]
    worker_args += ["--max-batch", str(args.max_batch), "--log-level", "warning"]
    if args.threads:
        worker_args += ["--threads", str(args.threads)]
    worker = CliProcess(worker_args, "worker ready", tmp / "worker.log").start(timeout=120)
    url = f"http://127.0.0.1:{port}"
    wait_for_instances(url, 1)
    return frontend, worker, url


async def main(args: argparse.Namespace) -> None:
    load_before = os.getloadavg()
    engine = TransformersEngine(
        str(args.model_path), threads=args.threads or None, max_batch=args.max_batch
    )
    await engine.start()
    with tempfile.TemporaryDirectory() as tmp:
        frontend, worker, url = start_serving(args, Path(tmp))
        try:
            warm = bodies(2, 8)
            await alone(engine, warm, 2)
            await behind(url, warm, 2)
            rows = []
            for conc in args.concurrency:
                requests = bodies(args.requests, args.max_tokens)
                mine, theirs = [], []
                for _ in range(args.rounds):
                    mine.append(await alone(engine, requests, conc))
                    theirs.append(await behind(url, requests, conc))
                rows.append(
                    (conc, statistics.median(mine), statistics.median(theirs), mine, theirs)
                )
        finally:
            worker.stop()
            frontend.stop()
    await engine.close()
    load_after = os.getloadavg()

    threads = args.threads or "torch default"
    print(
        f"model {args.model_path}: {args.requests} requests x max_tokens {args.max_tokens}, "
        f"threads {threads}, max batch {args.max_batch}, median of {args.rounds} rounds "
        f"(min-max in brackets); load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after"
    )
    print()
    print("| concurrency | alone (tokens/s) | behind the frontend (tokens/s) | behind / alone |")
    print("| --- | --- | --- | --- |")
    for conc, mine_median, theirs_median, mine, theirs in rows:
        print(
            f"| {conc} | {mine_median:,.0f} ({_spread(mine)}) | {theirs_median:,.0f} "
            f"({_spread(theirs)}) | {theirs_median / mine_median:.2f} |"
        )


def _spread(values: list[float]) -> str:
    return f"{min(values):,.0f}–{max(values):,.0f}"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-path", type=Path, default=REPO / "examples" / "models" / "tiny-llama"
    )
    parser.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8]
    )
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="0: torch's default")
    parser.add_argument("--max-batch", type=int, default=16)
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
