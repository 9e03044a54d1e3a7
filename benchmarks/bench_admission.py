"""Overload with and without admission control, and what counting prompts costs the frontend.

``make bench-admission``.  A drivetrain frontend and ``--workers`` mocker workers at speed 1
(a GPU's timing: about 6 ms per output token) with ``--max-num-seqs`` each, so the graph runs
``workers x seqs`` requests at once; file discovery, round-robin routing.  Each request is a
non-streaming chat of ``--max-tokens`` tokens.  First the graph's capacity is measured: the
requests per second it completes with exactly ``workers x seqs`` clients sending back to back.
Then, for each overload factor (2x and 10x that rate) and each mode, an open-loop load: requests
arrive at evenly spaced times, whatever happens to earlier ones (as independent users do), for
``--seconds``.  Modes:

* ``admission``: the frontend's defaults, with ``--max-queue`` equal to the capacity: a request
  beyond running plus queued requests is answered 429 at once;
* ``none``: ``--no-admission-control``: every request goes to a worker and waits there.

Reported per run: the p50 and p99 latency of the requests that were served, their count, the
share refused (429), and how long the run took to finish.  Then the per-request cost of the
frontend's context check (``PromptTokens.check``) by prompt size and by how far it had to go,
measured in-process.  Results go to ``benchmarks/results/admission.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from stacks import MODEL, ROOT, Drivetrain, shown, tiny_model_dir  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "admission.md"


def body(max_tokens: int) -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Tell me about admission control, please."}],
        "max_tokens": max_tokens,
    }


async def one(
    session: aiohttp.ClientSession, url: str, payload: dict[str, Any]
) -> tuple[int, float]:
    start = time.monotonic()
    async with session.post(url, json=payload) as resp:
        await resp.read()
        return resp.status, time.monotonic() - start


async def closed_loop(url: str, clients: int, seconds: float, max_tokens: int) -> float:
    """Requests completed per second by ``clients`` clients sending back to back."""
    done = 0
    end = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            nonlocal done
            while time.monotonic() < end:
                status, _ = await one(session, url, body(max_tokens))
                if status == 200:
                    done += 1

        started = time.monotonic()
        await asyncio.gather(*(client() for _ in range(clients)))
        return done / (time.monotonic() - started)


async def open_loop(url: str, rate: float, seconds: float, max_tokens: int) -> dict[str, Any]:
    """``rate`` requests per second for ``seconds``, evenly spaced; every one awaited."""
    count = max(1, round(rate * seconds))
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.monotonic()

        async def at(i: int) -> tuple[int, float]:
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            return await one(session, url, body(max_tokens))

        results = await asyncio.gather(*(at(i) for i in range(count)))
        took = time.monotonic() - start
    served = sorted(t for status, t in results if status == 200)
    refused = sum(1 for status, _ in results if status in (429, 503))
    others = len(results) - len(served) - refused
    return {
        "sent": count,
        "served": len(served),
        "refused": refused,
        "errors": others,
        "p50": statistics.median(served) if served else float("nan"),
        "p99": served[min(len(served) - 1, int(0.99 * len(served)))] if served else float("nan"),
        "took": took,
    }


def start(workers: int, seqs: int, mode: str) -> Drivetrain:
    frontend_args = ["--max-queue", str(workers * seqs)]
    if mode == "none":
        frontend_args = ["--no-admission-control"]
    system = Drivetrain(
        f"drivetrain-{mode}",
        speedup=1.0,
        frontend_args=frontend_args,
        worker_args=["--max-num-seqs", str(seqs)],
    )
    system.start(workers)
    return system


def prompt_costs(rounds: int) -> list[dict[str, Any]]:
    """Microseconds per request of the frontend's context check (``PromptTokens.check``), by
    prompt size and by how far it has to go: the request's size proves that it fits (the usual
    case: nothing rendered or tokenized), its rendered prompt's byte length does (rendered, not
    tokenized), or neither does (rendered and tokenized: ``max_tokens`` near the room left)."""
    import orjson

    from drivetrain.runtime.frontend.tokens import PromptTokens

    folder = str(tiny_model_dir())
    tokens = PromptTokens()
    rows = []

    async def measure() -> None:
        counter = await tokens.counter(MODEL, folder)
        assert counter is not None
        for words in (100, 1500):
            messages = [{"role": "user", "content": " ".join(["word"] * words)}]
            prompt = counter.prompt("chat", {"messages": messages})
            exact = counter.tokenizer.count(prompt)
            rendered = len(prompt.encode())
            # The context decides how far the check goes (max_tokens 16 each time).
            for how, context in (
                ("its size proves it fits: nothing rendered", 32768),
                ("rendered, not tokenized", rendered + 16),
                ("rendered and tokenized", exact + 16),
            ):
                payload = {"model": MODEL, "messages": messages, "max_tokens": 16}
                size = len(orjson.dumps(payload))
                samples = []
                for _ in range(rounds):
                    t0 = time.perf_counter()
                    for _ in range(50):
                        await tokens.check(MODEL, folder, context, "chat", payload, size)
                    samples.append((time.perf_counter() - t0) / 50 * 1e6)
                rows.append(
                    {
                        "prompt": f"{exact} tokens ({rendered} bytes)",
                        "context": context,
                        "how": how,
                        "us": statistics.median(samples),
                        "min": min(samples),
                    }
                )

    asyncio.run(measure())
    return rows


def render(
    args: argparse.Namespace,
    capacity: float,
    runs: list[dict[str, Any]],
    costs: list[dict[str, Any]],
    load: tuple[str, str],
) -> str:
    lines = [
        "# Admission control under overload",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {load[0]} before, "
        f"{load[1]} after.",
        f"One drivetrain frontend and {args.workers} mocker workers at speed 1 with "
        f"`--max-num-seqs {args.seqs}` (capacity {args.workers * args.seqs} requests at once), "
        f"model folder `{shown(tiny_model_dir())}`; non-streaming chat, `max_tokens` "
        f"{args.max_tokens}; open-loop arrivals for {args.seconds:g} s.",
        f"Measured capacity: **{capacity:.1f} requests/s** ({args.workers * args.seqs} clients "
        "back to back).",
        "",
        "| load | admission control | sent | served | refused (429) | errors | p50 s | p99 s "
        "| run took s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        lines.append(
            f"| {r['factor']:g}x ({r['rate']:.0f}/s) | {r['mode']} | {r['sent']} | {r['served']} "
            f"| {r['refused']} ({100 * r['refused'] / r['sent']:.0f} %) | {r['errors']} "
            f"| {r['p50']:.2f} | {r['p99']:.2f} | {r['took']:.1f} |"
        )
    lines += [
        "",
        "The frontend's context check per request (`PromptTokens.check`), in-process, the tiny "
        "tokenizer, `max_tokens` 16, the context chosen to make the check go each distance; "
        f"median of rounds of 50 (load average {load_average()}):",
        "",
        "| prompt | context | what the check needed | µs per request (median) | best |",
        "| --- | ---: | --- | ---: | ---: |",
    ]
    for c in costs:
        lines.append(
            f"| {c['prompt']} | {c['context']} | {c['how']} | {c['us']:.1f} | {c['min']:.1f} |"
        )
    lines += ["", "Command: `make bench-admission` (`benchmarks/bench_admission.py`)."]
    return "\n".join(lines) + "\n"


def load_average() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seqs", type=int, default=4, help="--max-num-seqs of each worker")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0, help="open-loop duration")
    parser.add_argument("--factors", default="2,10", help="overload factors, comma list")
    parser.add_argument("--modes", default="admission,none")
    parser.add_argument("--cost-rounds", type=int, default=20)
    args = parser.parse_args()
    before = load_average()
    runs = []
    capacity = 0.0
    for mode in args.modes.split(","):
        system = start(args.workers, args.seqs, mode)
        try:
            url = f"http://127.0.0.1:{system.port}/v1/chat/completions"
            if not capacity:
                clients = args.workers * args.seqs
                asyncio.run(closed_loop(url, clients, 2.0, args.max_tokens))  # warm-up
                capacity = asyncio.run(closed_loop(url, clients, 8.0, args.max_tokens))
                print(f"capacity {capacity:.1f} requests/s", flush=True)
            for factor in (float(f) for f in args.factors.split(",")):
                rate = factor * capacity
                result = asyncio.run(open_loop(url, rate, args.seconds, args.max_tokens))
                result.update(mode=mode, factor=factor, rate=rate)
                runs.append(result)
                print(
                    f"{factor:g}x {mode:<9} sent {result['sent']} served {result['served']} "
                    f"refused {result['refused']} errors {result['errors']} "
                    f"p50 {result['p50']:.2f} s p99 {result['p99']:.2f} s "
                    f"took {result['took']:.1f} s",
                    flush=True,
                )
        finally:
            system.stop()
    runs.sort(key=lambda r: (r["factor"], r["mode"]))
    costs = prompt_costs(args.cost_rounds)
    text = render(args, capacity, runs, costs, (before, load_average()))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print()
    print(text)


if __name__ == "__main__":
    main()
