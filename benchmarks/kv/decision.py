"""The KV router's decision time with 1,000 instances indexed (``make bench-kv-decision``, also
part of ``make bench-kv ARGS=--decision``; docs/performance.md).

Index: 1,000 workers; each holds a shared system prompt (16 blocks, as every worker of a
deployment would) and the conversations routed to it: 4,000 conversations of 20 to 100 blocks,
each cached on one to three workers (KV routing keeps a conversation in few places).  A
decision is one request: a cached conversation plus a few new blocks (or, one time in five, a
new conversation), scored against all 1,000 instances.  Two loads: **idle**, each decision's
load given back at once (every instance idle: scored by overlap level), and **busy**, 1,000
requests in flight (each decision gives back the one made 1,000 decisions before, so most
instances are busy and scored one by one).  Times are per decision, wall clock:
``KvRouter.pick`` alone, and with the block hashes of the prompt's ids computed first (what the
frontend does per request after tokenizing); and the pick's CPU time on its thread, which a
busy machine's scheduler does not stretch (on a shared 2-core machine the wall-clock p99 is
mostly time spent descheduled).
"""

from __future__ import annotations

import gc
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from drivetrain.runtime.frontend.kv_router import KvConfig, KvRouter, make_route  # noqa: E402
from drivetrain.runtime.frontend.registry import Target  # noqa: E402
from drivetrain.runtime.kv.blocks import block_hashes  # noqa: E402
from drivetrain.runtime.transport.client import RequestPlaneClient  # noqa: E402

BLOCK = 64
INSTANCES = 1000


def build(seed: int = 0) -> tuple[KvRouter, list[Target], list[list[int]]]:
    rng = random.Random(seed)
    router = KvRouter(KvConfig(mode="kv", seed=seed))
    targets = []
    for i in range(INSTANCES):
        address = f"10.0.{i // 250}.{i % 250}:9000"
        targets.append(Target(f"i{i}", address, RequestPlaneClient(address)))
    system = [rng.randrange(32000) for _ in range(16 * BLOCK)]
    conversations = []
    held: dict[str, list[int]] = {t.address: list(block_hashes(system, BLOCK)) for t in targets}
    for _ in range(4000):
        ids = system + [rng.randrange(32000) for _ in range(rng.randrange(4, 84) * BLOCK)]
        conversations.append(ids)
        hashes = block_hashes(ids, BLOCK)
        for t in rng.sample(targets, rng.randrange(1, 4)):
            held[t.address].extend(hashes)
    for address, hashes in held.items():
        router.index.apply(address, [0, "a", hashes])
    return router, targets, conversations


def measure(quick: bool, in_flight: int) -> tuple[list[int], list[int], list[int], int]:
    router, targets, conversations = build()
    # The frontend's own collector settings once serving (cli/runtime_cmds.py, ``_tune_gc``):
    # the index built so far is frozen, and young collections are rare.
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    rng = random.Random(1)
    decisions = 2000 if quick else 20000
    pick_ns: list[int] = []
    total_ns: list[int] = []
    cpu_ns: list[int] = []  # this thread's CPU time for the pick: immune to being descheduled
    running: list[object] = []
    for _ in range(decisions + in_flight):
        if rng.random() < 0.2:
            ids = [rng.randrange(32000) for _ in range(rng.randrange(20, 100) * BLOCK)]
        else:
            ids = rng.choice(conversations) + [rng.randrange(32000) for _ in range(3 * BLOCK)]
        start = time.perf_counter_ns()
        route = make_route(ids, BLOCK)
        middle = time.perf_counter_ns()
        cpu = time.thread_time_ns()
        router.pick(targets, route, 0.0)
        cpu = time.thread_time_ns() - cpu
        end = time.perf_counter_ns()
        running.append(route)
        if len(running) > in_flight:
            running.pop(0).release()  # type: ignore[attr-defined]
        if len(running) >= in_flight:  # timed once the load is there
            pick_ns.append(end - middle)
            total_ns.append(end - start)
            cpu_ns.append(cpu)
    blocks = sum(router.index.block_counts().values())
    return pick_ns[:decisions], total_ns[:decisions], cpu_ns[:decisions], blocks


def run(quick: bool = False) -> str:
    def q(values: list[int], p: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] / 1e6

    lines = []
    blocks = 0
    decisions = 0
    for label, in_flight in (("idle", 0), ("busy (1,000 in flight)", 1000)):
        pick_ns, total_ns, cpu_ns, blocks = measure(quick, in_flight)
        decisions = len(pick_ns)
        lines.append(
            f"| {label} | `KvRouter.pick` | {q(pick_ns, 50):.3f} | {q(pick_ns, 99):.3f} | "
            f"{statistics.mean(pick_ns) / 1e6:.3f} |"
        )
        lines.append(
            f"| {label} | block hashes + pick | {q(total_ns, 50):.3f} | {q(total_ns, 99):.3f} | "
            f"{statistics.mean(total_ns) / 1e6:.3f} |"
        )
        lines.append(
            f"| {label} | `KvRouter.pick`, CPU time | {q(cpu_ns, 50):.3f} | {q(cpu_ns, 99):.3f} | "
            f"{statistics.mean(cpu_ns) / 1e6:.3f} |"
        )
    return (
        f"## Routing decision time ({INSTANCES} instances, {blocks:,} blocks indexed, "
        f"{decisions:,} decisions per load)\n\n"
        "| load | | p50 ms | p99 ms | mean ms |\n|---|---|---|---|---|\n" + "\n".join(lines) + "\n"
    )


if __name__ == "__main__":
    import os

    print(run(quick="--quick" in sys.argv))
    print("load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
