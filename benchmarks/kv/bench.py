"""KV-aware routing under a multi-turn, prefix-heavy workload: drivetrain's four routers and
Dynamo 1.6.1's KV router, side by side (``make bench-kv``; docs/performance.md).

Workload: ``--users`` users talk at once, each ``--turns`` turns in a row (a closed loop: a
user's next turn leaves when the last answer is complete).  Each user has a long system prompt
of their own (``--system-chars``) and a history that grows every turn (a question and a fixed
answer of ``--turn-chars`` each), so every turn's prompt is the previous one plus a little.
Streaming chat, ``--max-tokens`` output tokens.  TTFT is measured by the client at the first
content chunk; throughput is requests per second over the run.

Stacks: one frontend and ``--workers`` mocker workers (``--speedup-ratio``, Dynamo's mocker
timing in both) on the tiny tokenizer, file discovery, each with a KV cache of ``--num-blocks``
blocks of 64 tokens: small enough that one worker cannot hold every user's conversation, large
enough that the workers together can, which is the point of routing by cache.  drivetrain runs
``round-robin``, ``least-loaded``, ``kv-approx`` and ``kv``; Dynamo runs its frontend with
``--router-mode kv`` over its mockers (prefix caching on, KV events over ZMQ).  All stacks are
up for the whole run; each round runs every stack once, in an order reversed every other round,
with prompts of its own (caches start cold for every round).

``--quick``: fewer users, turns and rounds (a few minutes).  ``--decision`` also times the KV
router's decision alone with 1,000 instances indexed (``benchmarks/kv/decision.py``).
Results are printed and written to ``benchmarks/results/kv.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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

from stacks import (  # noqa: E402
    LOGS,
    MODEL,
    ROOT,
    WORK,
    Drivetrain,
    Dynamo,
    System,
    cpu_seconds,
    padded_tokenizer,
)

RESULTS_MD = ROOT / "benchmarks" / "results" / "kv.md"
WORDS = [
    "model",
    "cache",
    "block",
    "token",
    "prefix",
    "route",
    "worker",
    "frontend",
    "decode",
    "prefill",
    "latency",
    "batch",
    "system",
    "prompt",
    "history",
    "answer",
    "question",
    "engine",
    "tensor",
    "layer",
    "attention",
    "memory",
]


CONTEXT = 32768


def long_context_tokenizer() -> Path:
    """The padded tiny tokenizer (``stacks.padded_tokenizer``: Dynamo's mocker's random ids
    decode to words) with a context of ``CONTEXT`` tokens, for long multi-turn prompts."""
    source = padded_tokenizer()
    target = WORK / "models" / f"tiny-kv-{CONTEXT}"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        if (source / name).exists():
            (target / name).write_bytes((source / name).read_bytes())
    config = json.loads((source / "config.json").read_text())
    config["max_position_embeddings"] = CONTEXT
    (target / "config.json").write_text(json.dumps(config))
    return target


@dataclass
class Workload:
    users: int
    turns: int
    system_chars: int
    turn_chars: int
    max_tokens: int
    think_s: float = 0.0

    def text(self, rng: random.Random, chars: int) -> str:
        out: list[str] = []
        size = 0
        while size < chars:
            word = rng.choice(WORDS)
            out.append(word)
            size += len(word) + 1
        return " ".join(out)

    def conversations(self, seed: str) -> list[tuple[str, list[tuple[str, str]]]]:
        """Per user: a system prompt and ``turns`` (question, answer) pairs."""
        rng = random.Random(seed)
        return [
            (
                f"[{seed} user {u}] " + self.text(rng, self.system_chars),
                [
                    (self.text(rng, self.turn_chars), self.text(rng, self.turn_chars))
                    for _ in range(self.turns)
                ],
            )
            for u in range(self.users)
        ]


@dataclass
class Result:
    ttft: list[float] = field(default_factory=list)
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    cached: int = 0
    prompt: int = 0
    cpu_frontend: float = 0.0  # seconds of the frontend's CPU over the run
    cpu_workers: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def one_turn(
    session: aiohttp.ClientSession, url: str, messages: list[dict[str, str]], max_tokens: int
) -> tuple[float, int, int]:
    """TTFT in seconds, prompt tokens and cached prompt tokens of one streamed request."""
    body = {
        "model": MODEL,
        "messages": messages,
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    ttft = -1.0
    prompt = cached = 0
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
            if ttft < 0 and any(
                "content" in (c.get("delta") or {}) or "text" in c
                for c in chunk.get("choices") or []
            ):
                ttft = time.perf_counter() - started
            usage = chunk.get("usage")
            if usage:
                prompt = usage.get("prompt_tokens", 0)
                cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return ttft, prompt, cached


async def run_workload(port: int, workload: Workload, seed: str) -> Result:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    result = Result()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=600)

    async def user(system: str, turns: list[tuple[str, str]]) -> None:
        messages = [{"role": "system", "content": system}]
        think = random.Random(system)
        for question, answer in turns:
            if workload.think_s:  # a user reads the answer, then types: fewer requests at once
                await asyncio.sleep(think.uniform(0.5, 1.5) * workload.think_s)
            messages.append({"role": "user", "content": question})
            try:
                ttft, prompt, cached = await one_turn(session, url, messages, workload.max_tokens)
                result.ttft.append(ttft)
                result.requests += 1
                result.prompt += prompt
                result.cached += cached
            except (TimeoutError, RuntimeError, aiohttp.ClientError) as exc:
                result.errors += 1
                print(f"  error: {exc}", file=sys.stderr)
            messages.append({"role": "assistant", "content": answer})

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        await asyncio.gather(*(user(s, t) for s, t in workload.conversations(seed)))
        result.seconds = time.perf_counter() - started
    return result


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


KV_ROUTERS = ("kv-approx", "kv")


def stacks(args: argparse.Namespace) -> list[System]:
    """drivetrain's routers (the KV ones once per overlap weight) and Dynamo's KV router (once
    per weight), in that order."""
    blocks = str(args.num_blocks)
    model_dir = long_context_tokenizer()
    out: list[System] = []
    for router in args.routers:
        for weight in args.weights if router in KV_ROUTERS else [None]:
            extra = [] if weight is None else ["--kv-overlap-weight", f"{weight:g}"]
            out.append(
                Drivetrain(
                    f"drivetrain-{router}" + ("" if weight is None else f" w={weight:g}"),
                    speedup=args.speedup,
                    model_dir=model_dir,
                    frontend_args=["--router", router, *extra],
                    worker_args=["--num-blocks", blocks, "--block-size", "64"],
                )
            )
    for weight in [] if args.no_dynamo else args.weights:
        out.append(
            Dynamo(
                f"dynamo-kv w={weight:g}",
                speedup=args.speedup,
                model_dir=model_dir,
                router="kv",
                frontend_args=[
                    "--event-plane",
                    "zmq",
                    "--request-plane",
                    "tcp",
                    # Dynamo 1.6.1's name for --router-kv-overlap-score-weight (deprecated
                    # there): the same weight on the prompt tokens left to prefill.
                    "--router-prefill-load-scale",
                    f"{weight:g}",
                ],
                worker_args=["--num-gpu-blocks-override", blocks, "--block-size", "64"],
            )
        )
    return out


def report(results: dict[str, list[Result]], args: argparse.Namespace, loads: list[str]) -> str:
    lines = [
        f"# bench-kv ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.machine()}, {os.cpu_count()} cores)",
        "",
        f"Command: `{' '.join(['make bench-kv', *(['ARGS=--quick'] if args.quick else [])])}`; "
        f"{args.users} users x {args.turns} turns, system prompt {args.system_chars} chars, "
        f"{args.turn_chars} chars per question and answer, {args.max_tokens} output tokens, "
        f"think time {args.think:g} s (0.5-1.5x), KV router overlap weights "
        f"{', '.join(f'{w:g}' for w in args.weights)}, "
        f"{args.workers} mocker workers at --speedup-ratio {args.speedup:g}, "
        f"{args.num_blocks} KV blocks of 64 tokens each, {args.rounds} round(s) alternated.",
        f"Load average before each round: {'; '.join(loads)}.",
        "",
        "| stack | TTFT p50 ms | TTFT p90 ms | req/s | cached prompt tokens "
        "| CPU ms/req frontend + workers | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    summary: dict[str, tuple[float, float, float]] = {}
    for name, runs in results.items():
        ttft = [t for r in runs for t in r.ttft if t >= 0]
        rps = statistics.mean(r.rps for r in runs)
        prompt = sum(r.prompt for r in runs)
        cached = sum(r.cached for r in runs)
        errors = sum(r.errors for r in runs)
        p50, p90 = pct(ttft, 50) * 1000, pct(ttft, 90) * 1000
        summary[name] = (p50, p90, rps)
        share = f"{cached / prompt:.0%}" if prompt else "n/a"
        sent = sum(r.requests + r.errors for r in runs) or 1
        cpu_fe = sum(r.cpu_frontend for r in runs) * 1000 / sent
        cpu_wk = sum(r.cpu_workers for r in runs) * 1000 / sent
        lines.append(
            f"| {name} | {p50:.1f} | {p90:.1f} | {rps:.2f} | {share} | {cpu_fe:.2f} + "
            f"{cpu_wk:.2f} | {errors} |"
        )
    lines.append("")
    rr = summary.get("drivetrain-round-robin")
    for weight in args.weights:
        kv = summary.get(f"drivetrain-kv w={weight:g}")
        dyn = summary.get(f"dynamo-kv w={weight:g}")
        if rr and kv:
            lines.append(
                f"- w={weight:g}: drivetrain kv vs its round-robin: TTFT p90 "
                f"{rr[1] / kv[1]:.2f}x better (goal >= 3x)."
            )
        if kv and dyn:
            lines.append(
                f"- w={weight:g}: drivetrain kv vs Dynamo kv: TTFT p90 {dyn[1] / kv[1]:.2f}x "
                f"better, throughput {kv[2] / dyn[2]:.2f}x (goals: both >= 1)."
            )
    return "\n".join(lines) + "\n"


async def main_async(args: argparse.Namespace) -> None:
    workload = Workload(
        args.users, args.turns, args.system_chars, args.turn_chars, args.max_tokens, args.think
    )
    systems = stacks(args)
    results: dict[str, list[Result]] = {s.name: [] for s in systems}
    loads: list[str] = []
    try:
        for system in systems:
            print(f"starting {system.name}", flush=True)
            await asyncio.to_thread(system.start, args.workers)
        for round_no in range(args.rounds):
            order = systems if round_no % 2 == 0 else list(reversed(systems))
            loads.append(load_average())
            for system in order:
                seed = f"r{round_no}-{system.name}"
                # A short warm-up, so that first-connection costs are not counted.
                await run_workload(system.port, Workload(2, 1, 64, 16, 2), seed + "-warm")
                fe, wk = system.pids("frontend"), system.pids("mocker")
                cpu0 = cpu_seconds(fe), cpu_seconds(wk)
                result = await run_workload(system.port, workload, seed)
                result.cpu_frontend = cpu_seconds(fe) - cpu0[0]
                result.cpu_workers = cpu_seconds(wk) - cpu0[1]
                results[system.name].append(result)
                print(
                    f"round {round_no + 1} {system.name}: TTFT p50 "
                    f"{pct(result.ttft, 50) * 1000:.1f} ms p90 {pct(result.ttft, 90) * 1000:.1f} ms, "
                    f"{result.rps:.2f} req/s, cached {result.cached}/{result.prompt}, "
                    f"errors {result.errors} (load {load_average()})",
                    flush=True,
                )
    finally:
        for system in systems:
            system.stop()
    text = report(results, args, loads)
    if args.decision:
        from decision import run as decision_run

        text += "\n" + decision_run(quick=args.quick)
    print(text)
    RESULTS_MD.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_MD.write_text(text)
    print(f"written to {RESULTS_MD.relative_to(ROOT)} (logs in {LOGS})")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--users", type=int)
    parser.add_argument("--turns", type=int)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--system-chars", type=int, default=10000)
    parser.add_argument("--turn-chars", type=int, default=150)
    parser.add_argument("--think", type=float, default=0.3, help="mean seconds between turns")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--speedup", type=float, default=1.0)
    parser.add_argument("--num-blocks", type=int)
    parser.add_argument(
        "--routers",
        nargs="+",
        default=["round-robin", "least-loaded", "kv-approx", "kv"],
        help="drivetrain routers to run",
    )
    parser.add_argument("--no-dynamo", action="store_true", help="drivetrain only")
    parser.add_argument(
        "--weights",
        type=float,
        nargs="+",
        default=[1.0, 8.0],
        help="overlap weights of both KV routers, each its own stack (drivetrain "
        "--kv-overlap-weight, Dynamo --router-prefill-load-scale; 1 is both defaults)",
    )
    parser.add_argument("--decision", action="store_true", help="also time one decision")
    args = parser.parse_args(argv)
    args.users = args.users or (16 if args.quick else 24)
    # Enough turns that first (cold) turns are under a tenth of the requests: p90 is then a
    # question of routing, not of how many conversations start.
    args.turns = args.turns or (12 if args.quick else 16)
    args.rounds = args.rounds or (1 if args.quick else 2)
    # One worker's cache holds about half of the users' conversations, the four together all.
    args.num_blocks = args.num_blocks or (1536 if args.quick else 2048)
    return args


if __name__ == "__main__":
    asyncio.run(main_async(parse()))
