"""Aggregated vs disaggregated prefill/decode on a long-prompt workload, drivetrain and Dynamo
1.6.1 side by side (``make bench-disagg``; docs/performance.md).

Workload: ``--concurrency`` clients in a closed loop send ``--requests`` streaming chat requests
in all, each a prompt of its own (``--prompt-chars``, no prefix shared, so nothing is cached)
and ``--max-tokens`` output tokens.  Each system runs two stacks of ``--workers`` mockers
(``--speedup-ratio``, Dynamo's timing model in both) behind a KV-routing frontend (``--router
kv`` / ``--router-mode kv``): **agg**, every worker aggregated; **disagg**, half prefill and half
decode (drivetrain ``--disaggregation-mode``, Dynamo's mocker the same flag; each system's
simulated KV transfer at its default).  Reported: TTFT p50/p90, inter-token latency (each
request's mean gap between chunks) p50/p90, requests and output tokens per second.  All stacks
are up for the whole run; each round runs every stack once, the order reversed every other
round.  ``--quick`` runs fewer requests and one round.  Results are printed and written to
``benchmarks/results/disagg.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # benchmarks/stacks.py
sys.path.insert(0, str(HERE))  # bench.py beside this file

from bench import WORDS, load_average, long_context_tokenizer, pct  # noqa: E402
from stacks import LOGS, MODEL, ROOT, Drivetrain, Dynamo, System  # noqa: E402

RESULTS_MD = ROOT / "benchmarks" / "results" / "disagg.md"


@dataclass
class Result:
    ttft: list[float] = field(default_factory=list)
    itl: list[float] = field(default_factory=list)
    requests: int = 0
    tokens: int = 0
    errors: int = 0
    seconds: float = 0.0


async def one_request(
    session: aiohttp.ClientSession, url: str, prompt: str, max_tokens: int, result: Result
) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    times: list[float] = []
    tokens = 0
    async with session.post(
        url, data=orjson.dumps(body), headers={"content-type": "application/json"}
    ) as resp:
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {(await resp.text())[:200]}")
        async for raw in resp.content:
            line = raw.strip()
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            chunk = orjson.loads(line[6:])
            if any("content" in (c.get("delta") or {}) for c in chunk.get("choices") or []):
                times.append(time.perf_counter())
            usage = chunk.get("usage")
            if usage:
                tokens = usage.get("completion_tokens", 0)
    if not times:
        raise RuntimeError("no token arrived")
    result.ttft.append(times[0] - started)
    if len(times) > 1:
        result.itl.append((times[-1] - times[0]) / (len(times) - 1))
    result.requests += 1
    result.tokens += tokens


async def run_load(port: int, args: argparse.Namespace, seed: str) -> Result:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    rng = random.Random(seed)
    prompts = []
    for i in range(args.requests):
        words: list[str] = [f"[{seed} {i}]"]
        while sum(len(w) + 1 for w in words) < args.prompt_chars:
            words.append(rng.choice(WORDS))
        prompts.append(" ".join(words))
    result = Result()
    queue = list(reversed(prompts))
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=600)
    ) as session:

        async def client() -> None:
            while queue:
                prompt = queue.pop()
                try:
                    await one_request(session, url, prompt, args.max_tokens, result)
                except (RuntimeError, aiohttp.ClientError, TimeoutError) as exc:
                    result.errors += 1
                    print(f"  error: {exc}", file=sys.stderr)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(args.concurrency)))
        result.seconds = time.perf_counter() - started
    return result


def stacks(args: argparse.Namespace) -> list[tuple[System, int]]:
    """Each stack and how many workers it starts; a disagg stack's workers alternate between
    the prefill and the decode role (``worker_roles``)."""
    model_dir = long_context_tokenizer()
    half = args.workers // 2
    out: list[tuple[System, int]] = [
        (
            Drivetrain(
                "drivetrain agg",
                speedup=args.speedup,
                model_dir=model_dir,
                frontend_args=["--router", "kv"],
            ),
            args.workers,
        ),
        (
            RoleStack(
                "drivetrain disagg",
                speedup=args.speedup,
                model_dir=model_dir,
                frontend_args=["--router", "kv"],
                roles=["prefill"] * half + ["decode"] * (args.workers - half),
            ),
            args.workers,
        ),
    ]
    if not args.no_dynamo:
        dynamo_frontend = ["--event-plane", "zmq", "--request-plane", "tcp"]
        out += [
            (
                Dynamo(
                    "dynamo agg",
                    speedup=args.speedup,
                    model_dir=model_dir,
                    router="kv",
                    frontend_args=dynamo_frontend,
                ),
                args.workers,
            ),
            (
                DynamoRoleStack(
                    "dynamo disagg",
                    speedup=args.speedup,
                    model_dir=model_dir,
                    router="kv",
                    frontend_args=dynamo_frontend,
                    roles=["prefill"] * half + ["decode"] * (args.workers - half),
                ),
                args.workers,
            ),
        ]
    return out


@dataclass
class RoleStack(Drivetrain):
    """drivetrain workers started with ``--disaggregation-mode`` from ``roles``, in turn."""

    roles: list[str] = field(default_factory=list)
    started: int = 0

    def worker(self):  # type: ignore[no-untyped-def]
        role = self.roles[self.started % len(self.roles)]
        self.started += 1
        saved = self.worker_args
        self.worker_args = [*saved, "--disaggregation-mode", role]
        try:
            return super().worker()
        finally:
            self.worker_args = saved


@dataclass
class DynamoRoleStack(Dynamo):
    """Dynamo mockers started with ``--disaggregation-mode`` from ``roles``, in turn."""

    roles: list[str] = field(default_factory=list)
    started: int = 0

    def worker(self):  # type: ignore[no-untyped-def]
        role = self.roles[self.started % len(self.roles)]
        self.started += 1
        saved = self.worker_args
        self.worker_args = [*saved, "--disaggregation-mode", role]
        try:
            return super().worker()
        finally:
            self.worker_args = saved


def report(results: dict[str, list[Result]], args: argparse.Namespace, loads: list[str]) -> str:
    lines = [
        f"# bench-disagg ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.machine()}, {os.cpu_count()} cores)",
        "",
        f"Command: `make bench-disagg{' ARGS=--quick' if args.quick else ''}`; "
        f"{args.requests} requests at concurrency {args.concurrency}, prompts of "
        f"{args.prompt_chars} chars (no shared prefix), {args.max_tokens} output tokens, "
        f"{args.workers} mocker workers at --speedup-ratio {args.speedup:g} (disagg: half "
        f"prefill, half decode), KV routers, {args.rounds} round(s) alternated.",
        f"Load average before each round: {'; '.join(loads)}.",
        "",
        "| stack | TTFT p50 ms | TTFT p90 ms | ITL p50 ms | ITL p90 ms | req/s | output tok/s "
        "| errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        ttft = [t for r in runs for t in r.ttft]
        itl = [t for r in runs for t in r.itl]
        rps = statistics.mean(r.requests / r.seconds for r in runs if r.seconds)
        tps = statistics.mean(r.tokens / r.seconds for r in runs if r.seconds)
        errors = sum(r.errors for r in runs)
        lines.append(
            f"| {name} | {pct(ttft, 50) * 1000:.1f} | {pct(ttft, 90) * 1000:.1f} | "
            f"{pct(itl, 50) * 1000:.2f} | {pct(itl, 90) * 1000:.2f} | {rps:.2f} | {tps:.1f} "
            f"| {errors} |"
        )
    return "\n".join(lines) + "\n"


async def main_async(args: argparse.Namespace) -> None:
    systems = stacks(args)
    results: dict[str, list[Result]] = {s.name: [] for s, _ in systems}
    loads: list[str] = []
    try:
        for system, workers in systems:
            print(f"starting {system.name}", flush=True)
            await asyncio.to_thread(system.start, workers)
        for round_no in range(args.rounds):
            order = systems if round_no % 2 == 0 else list(reversed(systems))
            loads.append(load_average())
            for system, _ in order:
                result = await run_load(system.port, args, f"r{round_no}-{system.name}")
                results[system.name].append(result)
                print(
                    f"round {round_no + 1} {system.name}: TTFT p50 "
                    f"{pct(result.ttft, 50) * 1000:.1f} ms, ITL p50 "
                    f"{pct(result.itl, 50) * 1000:.2f} ms, "
                    f"{result.requests / result.seconds:.2f} req/s, errors {result.errors} "
                    f"(load {load_average()})",
                    flush=True,
                )
    finally:
        for system, _ in systems:
            system.stop()
    text = report(results, args, loads)
    print(text)
    RESULTS_MD.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_MD.write_text(text)
    print(f"written to {RESULTS_MD.relative_to(ROOT)} (logs in {LOGS})")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--requests", type=int)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--prompt-chars", type=int, default=12000)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--speedup", type=float, default=1.0)
    parser.add_argument("--no-dynamo", action="store_true", help="drivetrain only")
    args = parser.parse_args(argv)
    args.requests = args.requests or (48 if args.quick else 160)
    args.rounds = args.rounds or (1 if args.quick else 2)
    return args


if __name__ == "__main__":
    asyncio.run(main_async(parse()))
