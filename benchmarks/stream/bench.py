"""Streaming chat under realistic per-token timing: drivetrain vs Dynamo 1.6.1, with aiperf 0.13.0.

Run by ``benchmarks/bench_stream.sh`` (``make bench-stream``; ``make bench-stream-guard`` adds
``--guard``), which installs Dynamo and aiperf once per machine first.  Each system in turn runs
alone: one frontend and two mocker workers at ``--speedup-ratio 10`` on a copy of the tiny
tokenizer padded to 2,048 plain tokens, file discovery, round-robin routing.  aiperf then runs
every scenario against it (streaming chat, 128 input tokens, a fixed number of requests each):

* ``c16``: concurrency 16, 64 output tokens (the headline workload);
* ``c64``: concurrency 64, 64 output tokens;
* ``osl256``: concurrency 16, 256 output tokens;
* ``c1``: concurrency 1, 64 output tokens (ITL against the mocker's simulated inter-token time).

All stacks are up for the whole run; each scenario runs on each system in turn, the order
reversed every other time (A B, B A, ...), and ratios drivetrain / Dynamo are taken within each
round, so drift in the machine's load cancels as far as it can.  Results go to
``benchmarks/results/stream.md`` and ``stream.json`` and are printed.  ``--guard`` compares the
ratios of this run with ``benchmarks/stream/baseline.json`` (docs/performance.md says when to
run it); ``--record`` writes them there.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # benchmarks/stacks.py

from stacks import (  # noqa: E402
    CACHE,
    LOGS,
    MODEL,
    PADDED_VOCAB,
    ROOT,
    WORK,
    Drivetrain,
    Dynamo,
    System,
    cpu_seconds,
    free_port,
    padded_tokenizer,
    write_syscalls,
)

AIPERF_VENV = Path(os.environ.get("AIPERF_VENV") or CACHE / "aiperf-0.13.0")
AIPERF = AIPERF_VENV / "bin" / "aiperf"
PYSPY = Path(os.environ.get("PYSPY_VENV") or CACHE / "py-spy-0.4.3") / "bin" / "py-spy"
RESULTS_MD = ROOT / "benchmarks" / "results" / "stream.md"
RESULTS_JSON = ROOT / "benchmarks" / "results" / "stream.json"
BASELINE = HERE / "baseline.json"

SPEEDUP = 10.0
WORKERS = 2
INPUT_TOKENS = 128
# Dynamo's frontend CI limits: a drop of more than 15 % in the req/s ratio, or a rise of more
# than 25 % in the TTFT p50 ratio, against the recorded ratios fails the guard.
GUARD_RPS_DROP = 0.15
GUARD_TTFT_RISE = 0.25
# The mocker's decode time per token at (almost) empty KV cache, as both mockers model it
# (docs/runtime.md, "Engines"): this is what ITL at concurrency 1 should be.
SIMULATED_ITL_MS = 5.74 / SPEEDUP


@dataclass(frozen=True)
class Scenario:
    name: str
    concurrency: int
    output_tokens: int
    requests: int
    load: bool  # part of the throughput comparison (and the guard); c1 is for ITL only


def scenarios(quick: bool, requests: int | None) -> list[Scenario]:
    n = requests or (100 if quick else 400)
    return [
        Scenario("c16", 16, 64, n, True),
        Scenario("c64", 64, 64, n, True),
        Scenario("osl256", 16, 256, n, True),
        # One request at a time: 200 are plenty for a stable median and keep the run short.
        Scenario("c1", 1, 64, max(20, n // 2), False),
    ]


# ---- the tokenizer both stacks and aiperf read -------------------------------------------------


# ---- aiperf -----------------------------------------------------------------------------------


def aiperf_env() -> dict[str, str]:
    """aiperf treats a local tokenizer folder as a Hub repo id when HF_HUB_OFFLINE is set, so
    the variable is removed; HF_ENDPOINT points at a closed local port so that nothing can be
    fetched from anywhere."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    env["PYTHONPATH"] = ""
    return env


def run_aiperf(port: int, scenario: Scenario, tokenizer: Path, out: Path) -> dict[str, Any]:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    argv = [
        str(AIPERF),
        "profile",
        "--model",
        MODEL,
        "--url",
        f"http://127.0.0.1:{port}",
        "--endpoint-type",
        "chat",
        "--streaming",
        "--concurrency",
        str(scenario.concurrency),
        "--request-count",
        str(scenario.requests),
        "--warmup-request-count",
        str(max(4, scenario.concurrency)),
        "--isl",
        str(INPUT_TOKENS),
        "--osl",
        str(scenario.output_tokens),
        "--tokenizer",
        str(tokenizer),
        # Output is counted from the servers' usage: the padded tokens do not re-encode to one.
        "--use-server-token-count",
        "--random-seed",
        "7",
        "--artifact-dir",
        str(out),
        "--ui",
        "none",
        "--no-server-metrics",
        "--no-gpu-telemetry",
        "--request-timeout-seconds",
        "120",
    ]
    log = out / "aiperf.out"
    with log.open("wb") as sink:
        aiperf = subprocess.Popen(argv, env=aiperf_env(), stdout=sink, stderr=subprocess.STDOUT)
        client = ClientCpu(aiperf.pid)
        client.start()
        try:
            returncode = aiperf.wait(900)
        finally:
            client.stop()
            if aiperf.poll() is None:
                aiperf.kill()
    export = out / "profile_export_aiperf.json"
    if returncode != 0 or not export.exists():
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(
            f"aiperf failed (exit {returncode}) for {scenario.name}; see {log}:\n" + "\n".join(tail)
        )
    data = json.loads(export.read_text())
    result = summarise(data, scenario)
    profiled = [datetime.fromisoformat(data[k]).timestamp() for k in ("start_time", "end_time")]
    client_s, timing_s = client.used(*profiled)
    result["cpu_ms_client"] = client_s * 1000 / scenario.requests
    result["cpu_ms_client_timing"] = timing_s * 1000 / scenario.requests
    return result


class ClientCpu:
    """The CPU time aiperf's own processes use while they load the stack.

    aiperf runs as a tree of processes named ``aiperf <service>`` (HTTP worker, timing manager,
    record processor, records manager, ...).  A thread samples the tree's user + system time
    from /proc every 0.1 s; what counts is what it used during the profiling phase, between the
    ``start_time`` and ``end_time`` aiperf exports (interpolated between samples; its start-up,
    warm-up and exports left out).  On two shared cores this is CPU the stack does not get: once
    client and stacks are CPU-bound, the ratio of req/s between two stacks is bounded by
    (client + stack A) / (client + stack B) per request (docs/performance.md).
    """

    INTERVAL_S = 0.1

    def __init__(self, root: int) -> None:
        self._root = root
        # (wall time, CPU seconds of the whole tree, of its timing manager)
        self._samples: list[tuple[float, float, float]] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stopped.wait(self.INTERVAL_S):
            tree = _process_tree_cpu(self._root).values()
            total = sum(cpu for _, cpu in tree)
            timing = sum(cpu for name, cpu in tree if name.startswith("aiperf timing_"))
            self._samples.append((time.time(), total, timing))

    def used(self, start: float, end: float) -> tuple[float, float]:
        """CPU seconds of the whole client and of its timing manager between two wall times."""

        def at(when: float, column: int) -> float:
            samples = self._samples
            if not samples:
                return 0.0
            for (t0, *v0), (t1, *v1) in itertools.pairwise(samples):
                if t0 <= when <= t1:
                    share = (when - t0) / (t1 - t0) if t1 > t0 else 0.0
                    return v0[column] + (v1[column] - v0[column]) * share
            return samples[0][column + 1] if when < samples[0][0] else samples[-1][column + 1]

        return at(end, 0) - at(start, 0), at(end, 1) - at(start, 1)


def _process_tree_cpu(root: int) -> dict[int, tuple[str, float]]:
    """pid -> (process name, CPU seconds so far) for ``root`` and all its descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, str, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw.rsplit(")", 1)[1].split()
        stats[int(entry)] = (int(fields[1]), name, (int(fields[11]) + int(fields[12])) / tick)
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _, _) in stats.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return {pid: (stats[pid][1], stats[pid][2]) for pid in tree if pid in stats}


def summarise(data: dict[str, Any], scenario: Scenario) -> dict[str, Any]:
    """The figures we report, from aiperf's JSON export."""

    def stat(key: str, name: str) -> float:
        metric = data.get(key) or {}
        value = metric.get(name)
        return float(value) if value is not None else float("nan")

    errors = sum(int(e.get("count", 0)) for e in data.get("error_summary") or [])
    completed = stat("request_count", "avg")
    return {
        "requests": completed,
        "errors": errors + max(0, scenario.requests - int(completed or 0) - errors),
        "rps": stat("request_throughput", "avg"),
        "output_tps": stat("output_token_throughput", "avg"),
        "ttft_p50": stat("time_to_first_token", "p50"),
        "ttft_p99": stat("time_to_first_token", "p99"),
        "itl_p50": stat("inter_token_latency", "p50"),
        "itl_p99": stat("inter_token_latency", "p99"),
        "reads": stat("http_req_chunks_received", "avg"),
        "output_tokens": stat("output_sequence_length", "avg"),
    }


# ---- the stacks' own CPU time -----------------------------------------------------------------


# ---- profiles (--profile) ------------------------------------------------------------------


def start_profiles(system: System, label: str) -> list[tuple[subprocess.Popen[bytes], Path]]:
    """py-spy on the frontend and the first worker (collapsed stacks, sampled without pausing)."""
    targets = [("frontend", system.pids("frontend")[0]), ("worker", system.pids("mocker")[0])]
    running = []
    for role, pid in targets:
        raw = WORK / "profiles" / f"{label}-{role}.txt"
        raw.parent.mkdir(parents=True, exist_ok=True)
        raw.unlink(missing_ok=True)
        argv = [str(PYSPY), "record", "-p", str(pid), "-f", "raw", "-o", str(raw)]
        argv += ["--gil", "--rate", "200", "--duration", "600"]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        running.append((proc, raw))
    return running


def stop_profiles(running: list[tuple[subprocess.Popen[bytes], Path]]) -> None:
    for proc, _ in running:
        proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    for proc, raw in running:
        proc.wait(60)
        if raw.exists():
            summary = RESULTS_MD.parent / f"profile-{raw.stem}.txt"
            summary.write_text(summarise_profile(raw))
            print(f"profile: {summary.relative_to(ROOT)}", flush=True)


def _frame(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (file.py)``: samples add up per function."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit('/', 1)[-1].split(':')[0]})" if where else name


def summarise_profile(raw: Path, top: int = 30) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for row in raw.read_text().splitlines():
        stack, _, count = row.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
    lines = [f"{raw.name}: {total} samples", "", "self %   function"]
    for name, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{n * 100 / max(total, 1):6.1f}   {name}")
    lines += ["", "inclusive %   function"]
    for name, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{n * 100 / max(total, 1):6.1f}   {name}")
    return "\n".join(lines) + "\n"


# ---- one run ----------------------------------------------------------------------------------


def make_system(name: str, model_dir: Path, revisions: dict[str, Path]) -> System:
    if name == "dynamo":
        return Dynamo(name, speedup=SPEEDUP, model_dir=model_dir)
    if name == "drivetrain":
        return Drivetrain(name, speedup=SPEEDUP, model_dir=model_dir)
    return Drivetrain(name, speedup=SPEEDUP, model_dir=model_dir, src=revisions[name])


def revision_src(rev: str) -> tuple[str, Path]:
    """``src/`` of another revision of this repository, extracted under benchmarks/.work."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    target = WORK / "revisions" / sha
    if not (target / "src" / "drivetrain").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", sha, "src"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return f"drivetrain@{sha}", target / "src"


def measure(
    systems: list[str],
    rounds: int,
    plan: list[Scenario],
    tokenizer: Path,
    revisions: dict[str, Path],
    profile: bool = False,
) -> list[dict[str, Any]]:
    """Every stack is started once; then, per round and scenario, each system runs in turn.

    Alternating per scenario (not per whole session) keeps the two halves of each ratio seconds
    apart, which matters on a machine shared with other jobs; the order is reversed every other
    time (A B, B A, ...) so that neither system always goes first.  The idle stacks cost little
    (a few discovery polls a second).
    """
    stacks = {name: make_system(name, tokenizer, revisions) for name in systems}
    rows: list[dict[str, Any]] = []
    turn = 0
    try:
        for system in stacks.values():
            system.start(WORKERS)
        for rnd in range(1, rounds + 1):
            for scenario in plan:
                order = systems if turn % 2 == 0 else list(reversed(systems))
                turn += 1
                for name in order:
                    row = run_one(stacks[name], rnd, scenario, tokenizer, profile)
                    rows.append(row)
                    print(line(row), flush=True)
    finally:
        for system in stacks.values():
            system.stop()
    return rows


def run_one(
    system: System, rnd: int, scenario: Scenario, tokenizer: Path, profile: bool
) -> dict[str, Any]:
    name = system.name
    pids_fe, pids_wk = system.pids("frontend"), system.pids("mocker")
    cpu0 = cpu_seconds(pids_fe), cpu_seconds(pids_wk)
    writes0 = write_syscalls(pids_fe)
    out = WORK / "aiperf" / f"r{rnd}-{name.replace('@', '-')}-{scenario.name}"
    profiling = []
    if profile and rnd == 1 and scenario.name == "c16" and name != "dynamo":
        profiling = start_profiles(system, f"{name.replace('@', '-')}-c16")
    try:
        result = run_aiperf(system.port, scenario, tokenizer, out)
    finally:
        stop_profiles(profiling)
    cpu1 = cpu_seconds(pids_fe), cpu_seconds(pids_wk)
    writes1 = write_syscalls(pids_fe)
    # Warm-up requests included: aiperf sends them through the same stack.
    sent = scenario.requests + max(4, scenario.concurrency)
    result["cpu_ms_frontend"] = (cpu1[0] - cpu0[0]) * 1000 / sent
    result["cpu_ms_workers"] = (cpu1[1] - cpu0[1]) * 1000 / sent
    result["fe_writes"] = (writes1 - writes0) / sent
    result["load"] = os.getloadavg()[0]
    return {"round": rnd, "system": name, "scenario": scenario.name, **result}


def line(r: dict[str, Any]) -> str:
    return (
        f"round {r['round']} {r['system']:<20} {r['scenario']:<6} {r['rps']:7.1f} req/s "
        f"{r['output_tps']:8.0f} tok/s TTFT p50 {r['ttft_p50']:6.1f} p99 {r['ttft_p99']:6.1f} ms "
        f"ITL p50 {r['itl_p50']:5.3f} p99 {r['itl_p99']:5.3f} ms reads {r['reads']:5.1f} "
        f"fe writes {r.get('fe_writes', float('nan')):5.1f} "
        f"cpu/req fe {r['cpu_ms_frontend']:5.2f} wk {r['cpu_ms_workers']:5.2f} "
        f"client {r['cpu_ms_client']:5.2f} ms "
        f"errors {r['errors']} load {r['load']:.2f}"
    )


# ---- ratios, report, guard --------------------------------------------------------------------


def ratios(rows: list[dict[str, Any]], system: str) -> dict[str, dict[str, float]]:
    """Median over rounds of (system / dynamo) per scenario: req/s and TTFT p50."""
    out: dict[str, dict[str, float]] = {}
    for scenario in sorted({r["scenario"] for r in rows}):
        rps: list[float] = []
        ttft: list[float] = []
        for rnd in sorted({r["round"] for r in rows}):
            pair = {r["system"]: r for r in rows if r["round"] == rnd and r["scenario"] == scenario}
            if "dynamo" in pair and system in pair:
                rps.append(pair[system]["rps"] / pair["dynamo"]["rps"])
                ttft.append(pair[system]["ttft_p50"] / pair["dynamo"]["ttft_p50"])
        if rps:
            out[scenario] = {
                "rps_ratio": statistics.median(rps),
                "ttft_p50_ratio": statistics.median(ttft),
            }
    return out


def median_of(rows: list[dict[str, Any]], system: str, scenario: str, key: str) -> float:
    values = [r[key] for r in rows if r["system"] == system and r["scenario"] == scenario]
    return statistics.median(values) if values else float("nan")


def render(
    rows: list[dict[str, Any]], systems: list[str], plan: list[Scenario], command: str
) -> str:
    loads = [r["load"] for r in rows]
    lines = [
        "# Streaming benchmark: drivetrain vs Dynamo 1.6.1 (aiperf 0.13.0)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average (1 min) "
        f"{min(loads):.2f}–{max(loads):.2f} during the runs.",
        f"Command: `{command}`.",
        f"Each system: 1 frontend + {WORKERS} mocker workers at speedup {SPEEDUP:g}, "
        f"tokenizer `tiny` padded to {PADDED_VOCAB} tokens, file discovery, round-robin. "
        f"aiperf: streaming chat, {INPUT_TOKENS} input tokens, output counted from usage. "
        "All stacks are up for the whole run; each scenario runs on each in turn, the order "
        "reversed every other time.",
        "",
        "Scenarios: "
        + "; ".join(
            f"`{s.name}` concurrency {s.concurrency}, {s.output_tokens} output tokens, "
            f"{s.requests} requests"
            for s in plan
        )
        + ".",
        "",
        "| round | system | scenario | req/s | output tok/s | TTFT p50 ms | TTFT p99 ms "
        "| ITL p50 ms | ITL p99 ms | reads/response | frontend writes/req "
        "| CPU ms/req frontend | workers | client (timing manager) | errors | load |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['round']} | {r['system']} | {r['scenario']} | {r['rps']:.1f} | "
            f"{r['output_tps']:.0f} | {r['ttft_p50']:.1f} | {r['ttft_p99']:.1f} | "
            f"{r['itl_p50']:.3f} | {r['itl_p99']:.3f} | {r['reads']:.1f} | "
            f"{r.get('fe_writes', float('nan')):.1f} | {r['cpu_ms_frontend']:.2f} | {r['cpu_ms_workers']:.2f} | "
            f"{r['cpu_ms_client']:.2f} ({r['cpu_ms_client_timing']:.2f}) | {r['errors']} | "
            f"{r['load']:.2f} |"
        )
    others = [s for s in systems if s != "dynamo"]
    if "dynamo" in systems and others:
        lines += [
            "",
            "Ratios to Dynamo, median over the rounds (req/s: higher is better; TTFT p50: "
            "lower is better):",
            "",
            "| system | scenario | req/s ratio | TTFT p50 ratio |",
            "| --- | --- | ---: | ---: |",
        ]
        for system in others:
            for scenario, ratio in ratios(rows, system).items():
                lines.append(
                    f"| {system} | {scenario} | {ratio['rps_ratio']:.2f} | "
                    f"{ratio['ttft_p50_ratio']:.2f} |"
                )
    lines += [
        "",
        f"ITL p50 at concurrency 1 against the mockers' simulated {SIMULATED_ITL_MS:.3f} ms per "
        "token (median over rounds):",
        "",
        "| system | ITL p50 ms | off by |",
        "| --- | ---: | ---: |",
    ]
    for system in systems:
        itl = median_of(rows, system, "c1", "itl_p50")
        lines.append(f"| {system} | {itl:.3f} | {(itl / SIMULATED_ITL_MS - 1) * 100:+.1f} % |")
    lines += [
        "",
        "*reads/response*: aiperf's `http_req_chunks_received`, how often its aiohttp client got "
        "new bytes of a response (iterations of `iter_any()`: one or more uvloop `read()` "
        "syscalls each). *frontend writes/req*: the frontend's write syscalls (``syscw`` in "
        "/proc/<pid>/io) per request sent, nearly all of them to client sockets: how often it "
        "sent a response new bytes, against how often the client read them. *CPU ms/req*: user + system CPU time of the frontend and of the "
        "workers (from /proc) over the run, per request sent; *client*: aiperf's own processes "
        "(its timing manager in brackets) during its profiling phase, per request profiled.",
    ]
    return "\n".join(lines) + "\n"


def guard(current: dict[str, dict[str, float]], baseline: dict[str, Any]) -> list[str]:
    """The ways this run's ratios fall outside the recorded ones (empty: passed)."""
    failures = []
    for scenario, recorded in baseline["ratios"].items():
        now = current.get(scenario)
        if now is None:
            failures.append(f"{scenario}: not measured in this run")
            continue
        floor = recorded["rps_ratio"] * (1 - GUARD_RPS_DROP)
        if now["rps_ratio"] < floor:
            failures.append(
                f"{scenario}: req/s ratio {now['rps_ratio']:.2f} < {floor:.2f} "
                f"(recorded {recorded['rps_ratio']:.2f} − {GUARD_RPS_DROP:.0%})"
            )
        ceiling = recorded["ttft_p50_ratio"] * (1 + GUARD_TTFT_RISE)
        if now["ttft_p50_ratio"] > ceiling:
            failures.append(
                f"{scenario}: TTFT p50 ratio {now['ttft_p50_ratio']:.2f} > {ceiling:.2f} "
                f"(recorded {recorded['ttft_p50_ratio']:.2f} + {GUARD_TTFT_RISE:.0%})"
            )
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round, 100 requests per run")
    parser.add_argument("--rounds", type=int, help="rounds (default 2; --quick: 1)")
    parser.add_argument("--requests", type=int, help="requests per run (default 400)")
    parser.add_argument(
        "--scenarios", help="comma list of c16,c64,osl256,c1 (default: all)", default=""
    )
    parser.add_argument(
        "--systems", default="dynamo,drivetrain", help="comma list (default dynamo,drivetrain)"
    )
    parser.add_argument(
        "--compare-rev",
        action="append",
        default=[],
        metavar="REV",
        help="also run drivetrain as of this git revision (before/after in one run)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the drivetrain frontend and a worker during c16 of round 1",
    )
    parser.add_argument("--guard", action="store_true", help="fail on a regression (baseline)")
    parser.add_argument("--record", action="store_true", help="write this run's ratios as baseline")
    args = parser.parse_args(argv)

    if not AIPERF.exists():
        return fail(f"bench-stream: {AIPERF} missing; run benchmarks/stream/setup_aiperf.sh")
    rounds = args.rounds or (1 if args.quick else 2)
    plan = scenarios(args.quick, args.requests)
    if args.scenarios:
        wanted = args.scenarios.split(",")
        unknown = set(wanted) - {s.name for s in plan}
        if unknown:
            return fail(f"--scenarios: unknown {', '.join(sorted(unknown))}")
        plan = [s for s in plan if s.name in wanted]
    systems = [s for s in args.systems.split(",") if s]
    revisions: dict[str, Path] = {}
    for rev in args.compare_rev:
        name, src = revision_src(rev)
        revisions[name] = src
        systems.append(name)
    if (args.guard or args.record) and not {"dynamo", "drivetrain"} <= set(systems):
        return fail("--guard/--record need both dynamo and drivetrain in --systems")
    if args.guard and not BASELINE.exists():
        return fail(f"--guard: no recorded ratios at {BASELINE.relative_to(ROOT)} (run --record)")

    tokenizer = padded_tokenizer()
    command = "benchmarks/stream/bench.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.profile and not PYSPY.exists():
        return fail(f"--profile: {PYSPY} missing; run benchmarks/stream/setup_pyspy.sh")
    rows = measure(systems, rounds, plan, tokenizer, revisions, args.profile)
    text = render(rows, systems, plan, command.strip())
    RESULTS_MD.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_MD.write_text(text)
    current = ratios(rows, "drivetrain") if "dynamo" in systems else {}
    load_ratios = {k: v for k, v in current.items() if k in {s.name for s in plan if s.load}}
    RESULTS_JSON.write_text(json.dumps({"rows": rows, "ratios": load_ratios}, indent=1) + "\n")
    print()
    print(text)
    print(f"(written to {RESULTS_MD.relative_to(ROOT)}; process logs in {LOGS.relative_to(ROOT)})")
    if args.record:
        BASELINE.write_text(
            json.dumps(
                {
                    "recorded": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "command": command.strip(),
                    "load_average": [
                        round(min(r["load"] for r in rows), 2),
                        round(max(r["load"] for r in rows), 2),
                    ],
                    "ratios": {
                        k: {m: round(v, 3) for m, v in r.items()} for k, r in load_ratios.items()
                    },
                },
                indent=1,
            )
            + "\n"
        )
        print(f"recorded the ratios in {BASELINE.relative_to(ROOT)}")
    if args.guard:
        baseline = json.loads(BASELINE.read_text())
        failures = guard(load_ratios, baseline)
        if failures:
            print("bench-stream guard: FAILED against " + str(BASELINE.relative_to(ROOT)))
            for failure in failures:
                print("  " + failure)
            return 1
        print(f"bench-stream guard: passed (against ratios recorded {baseline['recorded']})")
    return 0


def fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
